/**
 * `Socket.pump` on a node:net socket: the handler runs inside Node's 'data'
 * callback and its answer is written in the same callback, with no fiber;
 * reading pauses while the peer does not read what we write.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"
import { clear } from "./bytes.js"
import { heldBy } from "./memoryBudget.js"
import type { CallbackReader, NodeSocket } from "./nodeSocket.js"
import { type Deadline, deadlineOf } from "./pumpDeadline.js"
import { ONE_READER } from "./socketContract.js"

/**
 * A `Socket.pump` in progress: each 'data' event goes through the handler
 * and its answer is written at once, in the same callback. Reading pauses
 * while Node's write buffer is over its high-water mark and resumes on
 * 'drain', as `socket.pipe(socket)` does. No fiber is involved: `onDone` is
 * called once, with the outcome. A handler with a deadline (`frameTimeout`)
 * gets one timer, re-armed only when it fires early: a frame that begins
 * just moves the time it checks against.
 */
export class Pumping<E> implements CallbackReader {
  readonly out: Array<Uint8Array> = []
  done = false
  awaitingDrain = false
  signal: AbortSignal | undefined = undefined

  /** Inside the handler: an abort raised from there waits until its output is sent. */
  busy = false
  abortPending = false

  readonly deadline: Deadline<E> | undefined
  /** When the work in progress must be done (`performance.now()`); 0 when none is in progress. */
  expiresAt = 0
  timer: ReturnType<typeof setTimeout> | undefined = undefined

  constructor(
    readonly s: NodeSocket,
    readonly handler: Socket.PumpHandler<E>,
    readonly onDone: (exit: Exit.Exit<void, E | NetError.ReadError | NetError.WriteError>) => void
  ) {
    this.deadline = deadlineOf(handler)
  }

  /** After a read: start, keep or stop the clock of the handler's work in progress. */
  watch(deadline: Deadline<E>): void {
    const progress = deadline.progress()
    if (progress === "idle") this.expiresAt = 0
    else if (progress === "begun") {
      this.expiresAt = performance.now() + deadline.millis
      if (this.timer === undefined) this.arm(deadline.millis)
    }
  }

  arm(millis: number): void {
    // One function for every pump (the pump rides along as its argument): no closure per connection.
    this.timer = setTimeout(onTimer, millis, this)
    // The socket keeps the process alive while it matters; the timer never needs to.
    this.timer.unref()
  }

  onTimer(): void {
    this.timer = undefined
    if (this.done || this.expiresAt === 0) return
    const left = this.expiresAt - performance.now()
    if (left > 0) return this.arm(left)
    this.finish(Exit.fail(this.deadline!.expired()))
  }

  /** The listener given to `signal`, made only when there is one (a server's pumps have none). */
  abortListener: (() => void) | undefined = undefined

  /** The signal aborted, or the server ends its pumps (no signal): stop answering and half-close. */
  onAbort(): void {
    if (this.done) return
    if (this.busy) {
      this.abortPending = true
      return
    }
    // Stop answering; what was written goes out before the FIN.
    this.detach()
    this.halfClose(true)
  }

  start(signal: AbortSignal | undefined): void {
    const s = this.s
    if (signal !== undefined) {
      if (signal.aborted) return this.onAbort()
      this.signal = signal
      this.abortListener = () => this.onAbort()
      signal.addEventListener("abort", this.abortListener, { once: true })
    }
    // Bytes a reader (or an earlier pump, while its handler waited) left queued come first, one read at
    // a time: what is still queued when this pump ends (a handler that waits again) stays for the next.
    for (let bytes = s.shiftQueue(); bytes !== undefined; bytes = s.shiftQueue()) {
      this.read(bytes)
      if (this.done) return
    }
    if (s.failure !== undefined) return this.finish(Exit.fail(s.readError()))
    if (s.isClosing) return this.finish(Exit.void)
    if (s.isEof) return this.end()
    // Unless answering the queue filled Node's write buffer: then 'drain' starts reading.
    if (!this.awaitingDrain) s.startReading()
  }

  read(bytes: Buffer): void {
    if (!this.handle(bytes)) return
    const budget = this.s.budget
    if (budget !== undefined) budget.update(this.s)
    if (this.deadline !== undefined) this.watch(this.deadline)
    if (this.abortPending) this.onAbort()
  }

  end(): void {
    if (!this.handle(undefined)) return
    this.detach()
    this.halfClose(false)
  }

  /**
   * Runs the handler on `bytes` (its `onEnd` when undefined) and sends what it
   * wrote; false when that finished the pump (a defect, a socket that can no
   * longer be written, or the handler's error).
   */
  handle(bytes: Buffer | undefined): boolean {
    let error: E | undefined
    this.busy = true
    try {
      error = bytes === undefined ? this.handler.onEnd(this.out) : this.handler.onRead(bytes, this.out)
    } catch (defect) {
      this.busy = false
      clear(this.out)
      this.finish(Exit.die(defect))
      return false
    }
    this.busy = false
    if (!this.send()) return false
    if (error === undefined) return true
    this.finish(Exit.fail(error))
    return false
  }

  /**
   * Half-close, then report once Node handed everything to the kernel, as
   * `socket.end` does. `lenient` (the drain's half-close): a socket that can
   * no longer be written counts as done.
   */
  halfClose(lenient: boolean): void {
    this.s.endWith((exit) => this.onDone(lenient ? Exit.void : exit))
  }

  /** Writes `out` as one batch; false when the socket can no longer be written (then finished). */
  send(): boolean {
    const out = this.out
    const n = out.length
    if (n === 0) return true
    const s = this.s
    if (!s.canWrite()) {
      clear(out)
      this.finish(Exit.fail(s.writeError()))
      return false
    }
    const raw = s.raw
    let ok: boolean
    if (n === 1) ok = raw.write(out[0]!)
    else {
      raw.cork()
      ok = true
      for (let i = 0; i < n; i++) ok = raw.write(out[i]!)
      raw.uncork()
    }
    clear(out)
    if (s.stall === undefined) s.watchStall()
    if (!ok && !this.awaitingDrain && !s.flushed()) {
      this.awaitingDrain = true
      s.pauseReading()
    }
    return true
  }

  held(): number {
    return heldBy(this.handler)
  }

  drained(): void {
    if (!this.awaitingDrain) return
    this.awaitingDrain = false
    if (!this.done) this.s.startReading()
  }

  finish(exit: Exit.Exit<void, E | NetError.ReadError | NetError.WriteError>): void {
    if (this.done) return
    this.detach()
    this.onDone(exit)
  }

  /** Leaves the socket to `reads` again (after the end, or when the pump is interrupted). */
  detach(): void {
    this.done = true
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    if (this.s.direct === this) this.s.direct = undefined
    if (this.signal !== undefined) {
      this.signal.removeEventListener("abort", this.abortListener!)
      this.signal = undefined
      this.abortListener = undefined
    }
  }
}

const onTimer = (pumping: { onTimer(): void }): void => pumping.onTimer()

/**
 * Starts a pump without a fiber: `done` is called once, with how it ended
 * (on success, after the final half-close was flushed). Undefined when
 * someone already reads this socket (then `done` got the defect).
 */
export const startPump = <E>(
  socket: NodeSocket,
  handler: Socket.PumpHandler<E>,
  signal: AbortSignal | undefined,
  done: (exit: Exit.Exit<void, E | NetError.ReadError | NetError.WriteError>) => void
): Pumping<E> | undefined => {
  if (socket.isRead) {
    done(Exit.die(new Error(ONE_READER)))
    return undefined
  }
  const pumping = new Pumping(socket, handler, done)
  socket.direct = pumping
  pumping.start(signal)
  return pumping
}

/** `Socket.pump` on a node:net socket, as an Effect that completes with the pump. */
export const pumpEffect = <E>(
  socket: NodeSocket,
  handler: Socket.PumpHandler<E>,
  signal: AbortSignal | undefined
): Effect.Effect<void, E | NetError.ReadError | NetError.WriteError> =>
  Effect.callback((resume) => {
    // The half-close after EOF or abort may report after an interruption: ignore it then.
    let waiting = true
    const pumping = startPump(socket, handler, signal, (exit) => {
      if (waiting) resume(exit)
    })
    if (pumping === undefined) return
    return Effect.sync(() => {
      waiting = false
      pumping.detach()
    })
  })
