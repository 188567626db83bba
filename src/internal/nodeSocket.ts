/**
 * The node:net adapter behind `Socket.connect` and `Socket.listen`.
 *
 * Hot paths (every read, every write) are plain JS: one small state object
 * per socket, event handlers shared by all sockets (they find their state
 * through a symbol on the Node socket), no Effect queue or fiber per socket.
 * Effect only appears where a caller has to wait.
 *
 * This module must not import values from ../Socket.js (Socket.ts imports it).
 *
 * @internal
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Pull from "effect/Pull"
import * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { pipeArguments } from "effect/Pipeable"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Address from "../Address.js"
import * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"

/** Socket's TypeId, created here once; `Socket.TypeId` re-exports it. */
export const TypeId: unique symbol = Symbol.for("effect-wire/Socket")

const END_VOID: Sink.End<void> = [undefined]

/** Where a Node socket keeps its wrapper, so shared handlers need no closure per socket. */
const kOwner = Symbol.for("effect-wire/internal/NodeSocket")

type Raw = Net.Socket & { [kOwner]?: NodeSocket }

const DEFAULT_READ_BUFFER = 64 * 1024
const DEFAULT_KEEPALIVE_MS = 60_000
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000
const DEFAULT_ACCEPT_QUEUE = 1024
const DEFAULT_BACKLOG = 511
const UNIX_PROBE_TIMEOUT_MS = 1_000

// ---------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------

/** Socket options after defaults and validation; shared by every socket of a listener. */
interface SocketConfig {
  readonly noDelay: boolean
  /** 0: off; otherwise the initial delay in ms (Node's 0 means "OS default"). */
  readonly keepAlive: number | false
  /** 0: no idle timeout. */
  readonly idleTimeoutMs: number
  readonly readBufferSize: number
  readonly closeTimeoutMs: number
}

interface CommonOptions {
  readonly noDelay?: boolean | undefined
  readonly keepAlive?: boolean | Duration.Input | undefined
  readonly idleTimeout?: Duration.Input | undefined
  readonly readBufferSize?: number | undefined
  readonly closeTimeout?: Duration.Input | undefined
}

class InvalidOption {
  constructor(readonly message: string) {}
}

const positiveInt = (name: string, value: number | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidOption(`${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}

/** Milliseconds of a duration option; `undefined` for "not set", 0 for zero or infinite. */
const millis = (name: string, value: Duration.Input | undefined): number | undefined => {
  if (value === undefined) return undefined
  const decoded = Duration.fromInput(value)
  if (Option.isNone(decoded)) throw new InvalidOption(`${name} is not a duration: ${String(value)}`)
  const duration = decoded.value
  if (!Duration.isFinite(duration)) return 0
  return Math.max(0, Math.ceil(Duration.toMillis(duration)))
}

const closeTimeout = (value: Duration.Input | undefined): number => {
  if (value === undefined) return DEFAULT_CLOSE_TIMEOUT_MS
  const ms = millis("closeTimeout", value)!
  if (ms === 0 && !Duration.isZero(Duration.fromInputUnsafe(value))) {
    throw new InvalidOption("closeTimeout must be finite: close must not wait forever on a peer that does not read")
  }
  return ms
}

const socketConfig = (options: CommonOptions): SocketConfig => {
  const keepAlive = options.keepAlive
  return {
    noDelay: options.noDelay ?? true,
    keepAlive: keepAlive === undefined || keepAlive === false
      ? false
      : keepAlive === true
      ? DEFAULT_KEEPALIVE_MS
      : millis("keepAlive", keepAlive)!,
    idleTimeoutMs: millis("idleTimeout", options.idleTimeout) ?? 0,
    readBufferSize: positiveInt("readBufferSize", options.readBufferSize, DEFAULT_READ_BUFFER),
    closeTimeoutMs: closeTimeout(options.closeTimeout)
  }
}

/** Invalid options are programming errors: a defect whose message names the option. */
const withOptions = <A, E, R>(build: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    try {
      return build()
    } catch (e) {
      if (e instanceof InvalidOption) return Effect.die(new Error(e.message))
      throw e
    }
  })

// ---------------------------------------------------------------------------
// addresses
// ---------------------------------------------------------------------------

// Validation is skipped: Node reports well-formed hosts and ports.
const tcpAddress = (host: string | undefined, port: number | undefined, fallback: Address.Address): Address.Address =>
  host === undefined || host.length === 0 || port === undefined
    ? fallback
    : new Address.TcpAddress({ host, port }, { disableChecks: true })

// ---------------------------------------------------------------------------
// the socket
// ---------------------------------------------------------------------------

/** @internal */
export const ONE_READER = "socket.reads is already being pulled (or pumped) by another fiber; read from one fiber at a time"

const READING = 1 // we asked Node to flow; cleared while the read buffer is full
const EOF = 2 // the peer's FIN arrived
const CLOSED = 4 // Node's 'close' fired: the handle is gone
const CLOSING = 8 // close/reset was called: reads end, incoming bytes are discarded
const ENDED = 16 // end was called: no more writes
const CONNECTED = 32

type Resume<A, E> = (effect: Effect.Effect<A, E>) => void
/** One element per pull: everything received since the last pull; the end is `Cause.Done`. */
type ReadPull = Pull.Pull<NonEmptyReadonlyArray<Uint8Array>, NetError.ReadError>

/** The listener side of an accepted socket: told when the socket closes. */
interface Owner {
  readonly release: (socket: NodeSocket) => void
}

/**
 * One connected socket. Reads: Node flows into `queue` until `readBufferSize`
 * bytes wait, then it is paused until a pull takes the queue as one element.
 * Writes go straight to Node and wait only when `write()` returns false.
 */
class NodeSocket implements Socket.Socket {
  declare readonly [TypeId]: Socket.TypeId
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
  localAddress: Address.Address
  remoteAddress: Address.Address
  /** Received buffers nobody pulled yet; undefined while empty so idle sockets stay small. */
  queue: Array<Buffer> | undefined = undefined
  queued = 0
  flags = 0
  /** The first failure: a Node error, or our IdleTimeout. */
  failure: unknown = undefined
  reader: Resume<NonEmptyReadonlyArray<Uint8Array>, NetError.ReadError | Cause.Done> | undefined = undefined
  /** A `Socket.pump` driving this socket from Node's callbacks, if one runs. */
  direct: Pumping<any> | undefined = undefined
  drainWaiters: Array<Resume<void, NetError.WriteError>> | undefined = undefined

  constructor(
    readonly raw: Raw,
    readonly config: SocketConfig,
    readonly isTcp: boolean,
    address: Address.Address,
    readonly owner: Owner | undefined
  ) {
    this.localAddress = address
    this.remoteAddress = address
    raw[kOwner] = this
    raw.on("data", onData)
    raw.on("end", onEnd)
    raw.on("error", onError)
    raw.on("close", onClose)
    raw.on("drain", onDrain)
  }

  /** Called once the connection exists (at once for accepted sockets). */
  established(listenerAddress: Address.Address | undefined): void {
    const raw = this.raw
    const config = this.config
    this.flags |= CONNECTED
    if (this.isTcp) {
      const fallback = listenerAddress ?? this.remoteAddress
      this.localAddress = tcpAddress(raw.localAddress, raw.localPort, fallback)
      this.remoteAddress = tcpAddress(raw.remoteAddress, raw.remotePort, this.remoteAddress)
      raw.setNoDelay(config.noDelay)
      if (config.keepAlive !== false) raw.setKeepAlive(true, config.keepAlive)
    }
    if (config.idleTimeoutMs > 0) {
      raw.setTimeout(config.idleTimeoutMs)
      raw.on("timeout", onTimeout)
    }
  }

  // -- reads ----------------------------------------------------------------

  startReading(): void {
    if ((this.flags & (READING | EOF | CLOSED)) === 0) {
      this.flags |= READING
      this.raw.resume()
    }
  }

  wakeReader(): void {
    const reader = this.reader
    if (reader !== undefined) {
      this.reader = undefined
      // Effect 4 resumes the waiting fiber right here, inside Node's callback.
      reader(Effect.suspend(() => this.poll()))
    }
  }

  /** Everything queued as one element; else the failure; else the end; else wait. */
  poll(): ReadPull {
    const queued = this.takeQueued()
    if (queued !== undefined) return Effect.succeed(queued)
    if (this.failure !== undefined) return Effect.fail(this.readError())
    if ((this.flags & (EOF | CLOSED | CLOSING)) !== 0) return Cause.done()
    if (this.reader !== undefined || this.direct !== undefined) {
      return Effect.die(new Error(ONE_READER))
    }
    this.startReading()
    return Effect.callback((resume) => {
      this.reader = resume
      return Effect.sync(() => {
        if (this.reader === resume) this.reader = undefined
      })
    })
  }

  get reads(): Stream.Stream<Uint8Array, NetError.ReadError> {
    // The pull is the socket's own state: a stream run again continues where the last run stopped.
    return Stream.fromPull(Effect.succeed(Effect.suspend(() => this.poll())))
  }

  takeQueued(): NonEmptyReadonlyArray<Uint8Array> | undefined {
    const queue = this.queue
    if (queue === undefined) return undefined
    const queued = this.queued
    this.queue = undefined
    this.queued = 0
    this.startReading()
    // One element per Stream chunk: an operator that stops early (take, runHead)
    // must not drop bytes that were pulled along with the ones it wanted.
    return [queue.length === 1 ? queue[0]! : Buffer.concat(queue, queued)]
  }

  readError(): NetError.ReadError {
    const failure = this.failure
    if (failure instanceof NetError.IdleTimeout) return failure
    // A write failed with EPIPE: the peer is gone, which is what reads know as a reset.
    if (errnoOf(failure) === "EPIPE") {
      return new NetError.ConnectionReset({
        address: this.remoteAddress,
        code: "EPIPE",
        syscall: (failure as NodeJS.ErrnoException).syscall,
        cause: failure,
        detail: "the peer closed the connection while we were writing"
      })
    }
    return NetError.fromSystemError(failure, { phase: "read", address: this.remoteAddress })
  }

  // -- writes ---------------------------------------------------------------

  writeError(): NetError.WriteError {
    const failure = this.failure
    if (failure !== undefined) {
      return failure instanceof NetError.IdleTimeout
        ? failure
        : NetError.fromSystemError(failure, { phase: "write", address: this.remoteAddress })
    }
    return new NetError.BrokenPipe({
      address: this.remoteAddress,
      detail: (this.flags & (CLOSED | CLOSING)) === 0 && (this.flags & ENDED) !== 0
        ? "this side already half-closed the connection with end"
        : "the socket is closed"
    })
  }

  canWrite(): boolean {
    return this.failure === undefined && (this.flags & (CLOSED | CLOSING | ENDED)) === 0 && !this.raw.destroyed
  }

  /**
   * `write()` answers from the buffer size before the write; a large chunk
   * that the kernel took at once still reports false. Below the high-water
   * mark now means there is room: no need to wait a tick for 'drain'.
   */
  flushed(): boolean {
    const raw = this.raw
    return raw.writableLength < raw.writableHighWaterMark
  }

  awaitDrain(): Effect.Effect<void, NetError.WriteError> {
    return Effect.callback((resume) => {
      if (!this.raw.writableNeedDrain) return resume(Effect.void)
      if ((this.flags & CLOSED) !== 0) return resume(Effect.fail(this.writeError()))
      const waiters = this.drainWaiters ??= []
      waiters.push(resume)
      return Effect.sync(() => {
        const i = waiters.indexOf(resume)
        if (i >= 0) waiters.splice(i, 1)
      })
    })
  }

  settleDrainWaiters(result: Effect.Effect<void, NetError.WriteError>): void {
    const waiters = this.drainWaiters
    if (waiters === undefined || waiters.length === 0) return
    this.drainWaiters = undefined
    for (const resume of waiters) resume(result)
  }

  readonly write = (bytes: Uint8Array): Effect.Effect<void, NetError.WriteError> =>
    Effect.suspend(() => {
      if (!this.canWrite()) return Effect.fail(this.writeError())
      return this.raw.write(bytes) || this.flushed() ? Effect.void : this.awaitDrain()
    })

  readonly writeAll = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, NetError.WriteError> =>
    Effect.suspend(() => this.writeBatch(chunks))

  writeBatch(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, NetError.WriteError> {
    if (!this.canWrite()) return Effect.fail(this.writeError())
    const raw = this.raw
    const n = chunks.length
    if (n === 0) return Effect.void
    if (n === 1) return raw.write(chunks[0]!) || this.flushed() ? Effect.void : this.awaitDrain()
    // Corked writes leave as one writev on uncork.
    raw.cork()
    let ok = true
    for (let i = 0; i < n; i++) ok = raw.write(chunks[i]!)
    raw.uncork()
    return ok || this.flushed() ? Effect.void : this.awaitDrain()
  }

  get writes(): Sink.Sink<void, Uint8Array, never, NetError.WriteError> {
    // An upstream failure never reaches a sink in Effect 4 (the stream restores
    // it after the sink): only a normal end half-closes.
    return Sink.fromTransform((upstream) =>
      upstream.pipe(
        Effect.flatMap((chunks) => this.writeBatch(chunks)),
        Effect.forever({ disableYield: true }),
        Pull.catchDone(() => Effect.as(this.end, END_VOID))
      )
    )
  }

  // -- lifecycle ------------------------------------------------------------

  /**
   * Half-close: send FIN after everything written, then call `done` once Node
   * handed it all to the kernel (at once when there is nothing to wait for).
   * Returns how to stop waiting, when there is a wait.
   */
  endWith(done: (exit: Exit.Exit<void, NetError.WriteError>) => void): (() => void) | undefined {
    const raw = this.raw
    if (raw.writableFinished) return void done(Exit.void)
    if (this.failure !== undefined) return void done(Exit.fail(this.writeError()))
    if ((this.flags & (CLOSED | CLOSING)) !== 0 || raw.destroyed) return void done(Exit.void)
    if ((this.flags & ENDED) === 0) {
      this.flags |= ENDED
      raw.end()
    }
    if (raw.writableFinished) return void done(Exit.void)
    const cleanup = () => {
      raw.off("finish", onFinish)
      raw.off("close", onClosed)
    }
    const onFinish = () => {
      cleanup()
      done(Exit.void)
    }
    const onClosed = () => {
      cleanup()
      done(raw.writableFinished ? Exit.void : Exit.fail(this.writeError()))
    }
    raw.once("finish", onFinish)
    raw.once("close", onClosed)
    return cleanup
  }

  get end(): Effect.Effect<void, NetError.WriteError> {
    return Effect.callback((resume) => {
      const cancel = this.endWith(resume)
      return cancel === undefined ? undefined : Effect.sync(cancel)
    })
  }

  get reset(): Effect.Effect<void> {
    return Effect.sync(() => this.unsafeReset())
  }

  unsafeReset(): void {
    const raw = this.raw
    this.beginClosing()
    if (raw.destroyed) return
    if (this.isTcp && (this.flags & CONNECTED) !== 0) {
      try {
        raw.resetAndDestroy()
        return
      } catch {
        // Not a TCP handle after all: a plain destroy is the closest abort.
      }
    }
    raw.destroy()
  }

  /** Reads end at once; what is still queued or arrives from now on is dropped. */
  beginClosing(): void {
    if ((this.flags & CLOSING) !== 0) return
    this.flags |= CLOSING
    this.queue = undefined
    this.queued = 0
    this.wakeReader()
    // Like reads, a pump ends normally when the socket is closed under it.
    this.direct?.finish(Exit.void)
  }

  /** `Socket.pump` on this socket: Node's callbacks drive the handler. */
  pump<E>(
    handler: Socket.PumpHandler<E>,
    signal: AbortSignal | undefined
  ): Effect.Effect<void, E | NetError.ReadError | NetError.WriteError> {
    return Effect.callback((resume) => {
      // The half-close after EOF or abort may report after an interruption: ignore it then.
      let waiting = true
      const pumping = this.startPump(handler, signal, (exit) => {
        if (waiting) resume(exit)
      })
      if (pumping === undefined) return
      return Effect.sync(() => {
        waiting = false
        pumping.detach()
      })
    })
  }

  /**
   * Starts a pump without a fiber: `done` is called once, with how it ended
   * (on success, after the final half-close was flushed). Undefined when
   * someone already reads this socket (then `done` got the defect).
   */
  startPump<E>(
    handler: Socket.PumpHandler<E>,
    signal: AbortSignal | undefined,
    done: (exit: Exit.Exit<void, E | NetError.ReadError | NetError.WriteError>) => void
  ): Pumping<E> | undefined {
    if (this.reader !== undefined || this.direct !== undefined) {
      done(Exit.die(new Error(ONE_READER)))
      return undefined
    }
    const pumping = new Pumping(this, handler, done)
    this.direct = pumping
    pumping.start(signal)
    return pumping
  }

  get close(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const cancel = this.closeWith(() => resume(Effect.void))
      return cancel === undefined ? undefined : Effect.sync(cancel)
    })
  }

  /**
   * End the write side, wait until Node flushed what it accepted (bounded by
   * `closeTimeout`), then destroy; `done` is called then (at once when there
   * is nothing to wait for). Incoming bytes are read and dropped meanwhile,
   * so the kernel closes with FIN rather than RST. Returns how to cut the
   * wait short (destroying at once), when there is a wait.
   */
  closeWith(done: () => void): (() => void) | undefined {
    const raw = this.raw
    this.beginClosing()
    if (raw.destroyed) return void done()
    if ((this.flags & CONNECTED) === 0 || this.failure !== undefined) {
      raw.destroy()
      return void done()
    }
    if ((this.flags & READING) === 0 && (this.flags & EOF) === 0) {
      this.flags |= READING
      raw.resume()
    }
    if (!raw.writableEnded) {
      this.flags |= ENDED
      raw.end()
    }
    if (raw.writableFinished) {
      raw.destroy()
      return void done()
    }
    const cleanup = () => {
      clearTimeout(timer)
      raw.off("finish", finished)
      raw.off("close", finished)
    }
    const finished = () => {
      cleanup()
      raw.destroy()
      done()
    }
    // A Node timer, not Effect's Clock: the bound on holding an OS handle
    // must also hold under a TestClock that nobody advances.
    const timer = setTimeout(finished, this.config.closeTimeoutMs)
    raw.once("finish", finished)
    raw.once("close", finished)
    return () => {
      cleanup()
      raw.destroy()
    }
  }

  /** Immediate destroy, for listener shutdown. */
  unsafeDestroy(): void {
    this.beginClosing()
    this.raw.destroy()
  }
}

function onData(this: Raw, chunk: Buffer): void {
  const s = this[kOwner]!
  if ((s.flags & CLOSING) !== 0) return
  const direct = s.direct
  if (direct !== undefined) return direct.read(chunk)
  const queue = s.queue
  if (queue === undefined) s.queue = [chunk]
  else queue.push(chunk)
  s.queued += chunk.length
  if (s.queued > s.config.readBufferSize) {
    s.flags &= ~READING
    this.pause()
  }
  s.wakeReader()
}

function onEnd(this: Raw): void {
  const s = this[kOwner]!
  s.flags |= EOF
  s.wakeReader()
  s.direct?.end()
}

function onError(this: Raw, error: Error): void {
  const s = this[kOwner]!
  if (s.failure === undefined) s.failure = error
  s.wakeReader()
  s.direct?.finish(Exit.fail(s.readError()))
}

function onClose(this: Raw): void {
  const s = this[kOwner]!
  s.flags |= CLOSED
  // Released first: a fiber woken below runs inside this callback and must see the socket gone.
  s.owner?.release(s)
  s.wakeReader()
  s.direct?.finish(s.failure === undefined ? Exit.void : Exit.fail(s.readError()))
  s.settleDrainWaiters(Effect.suspend(() => Effect.fail(s.writeError())))
}

function onDrain(this: Raw): void {
  const s = this[kOwner]!
  s.settleDrainWaiters(Effect.void)
  s.direct?.drained()
}

/**
 * A `Socket.pump` in progress: each 'data' event goes through the handler
 * and its answer is written at once, in the same callback. Reading pauses
 * while Node's write buffer is over its high-water mark and resumes on
 * 'drain', as `socket.pipe(socket)` does. No fiber is involved: `onDone` is
 * called once, with the outcome.
 */
class Pumping<E> {
  readonly out: Array<Uint8Array> = []
  done = false
  awaitingDrain = false
  signal: AbortSignal | undefined = undefined

  /** Inside the handler: an abort raised from there waits until its output is sent. */
  busy = false
  abortPending = false

  constructor(
    readonly s: NodeSocket,
    readonly handler: Socket.PumpHandler<E>,
    readonly onDone: (exit: Exit.Exit<void, E | NetError.ReadError | NetError.WriteError>) => void
  ) {}

  readonly onAbort = (): void => {
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
      signal.addEventListener("abort", this.onAbort, { once: true })
    }
    // Bytes a reader left queued come first.
    const queue = s.queue
    if (queue !== undefined) {
      s.queue = undefined
      s.queued = 0
      for (let i = 0; i < queue.length && !this.done; i++) this.read(queue[i]!)
      if (this.done) return
    }
    if (s.failure !== undefined) return this.finish(Exit.fail(s.readError()))
    if ((s.flags & (CLOSED | CLOSING)) !== 0) return this.finish(Exit.void)
    if ((s.flags & EOF) !== 0) return this.end()
    s.startReading()
  }

  read(bytes: Buffer): void {
    let error: E | undefined
    this.busy = true
    try {
      error = this.handler.onRead(bytes, this.out)
    } catch (defect) {
      this.busy = false
      this.out.length = 0
      return this.finish(Exit.die(defect))
    }
    this.busy = false
    if (!this.send()) return
    if (error !== undefined) return this.finish(Exit.fail(error))
    if (this.abortPending) this.onAbort()
  }

  end(): void {
    let error: E | undefined
    this.busy = true
    try {
      error = this.handler.onEnd(this.out)
    } catch (defect) {
      this.busy = false
      this.out.length = 0
      return this.finish(Exit.die(defect))
    }
    this.busy = false
    if (!this.send()) return
    if (error !== undefined) return this.finish(Exit.fail(error))
    this.detach()
    this.halfClose(false)
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
      out.length = 0
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
    out.length = 0
    if (!ok && !this.awaitingDrain && !s.flushed()) {
      this.awaitingDrain = true
      s.flags &= ~READING
      raw.pause()
    }
    return true
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
    if (this.s.direct === this) this.s.direct = undefined
    this.signal?.removeEventListener("abort", this.onAbort)
    this.signal = undefined
  }
}

function onTimeout(this: Raw): void {
  const s = this[kOwner]!
  if (s.failure === undefined) {
    s.failure = new NetError.IdleTimeout({
      address: s.remoteAddress,
      detail: `no byte moved either way for ${s.config.idleTimeoutMs} ms`
    })
  }
  this.destroy()
}

// ---------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------

const errnoOf = (error: unknown): unknown => (error as NodeJS.ErrnoException | undefined)?.code

/**
 * A Unix path without a socket file means nobody listens there: the same
 * situation as ECONNREFUSED, so `catchTag("ConnectionRefused")` retry loops
 * also cover a server that has not created its socket yet.
 */
const connectError = (failure: unknown, address: Address.Address): NetError.ConnectError => {
  if (address._tag === "UnixAddress" && errnoOf(failure) === "ENOENT") {
    return new NetError.ConnectionRefused({
      address,
      code: "ENOENT",
      syscall: "connect",
      cause: failure,
      detail: "no socket file exists at this path"
    })
  }
  return NetError.fromSystemError(failure, { phase: "connect", address })
}

const awaitConnect = (socket: NodeSocket, address: Address.Address): Effect.Effect<void, NetError.ConnectError> =>
  Effect.callback((resume) => {
    const raw = socket.raw
    const cleanup = () => {
      raw.off("connect", onConnect)
      raw.off("close", onClosed)
    }
    const onConnect = () => {
      cleanup()
      socket.established(undefined)
      resume(Effect.void)
    }
    const onClosed = () => {
      cleanup()
      resume(Effect.fail(connectError(socket.failure, address)))
    }
    raw.once("connect", onConnect)
    raw.once("close", onClosed)
    return Effect.sync(cleanup)
  })

/** @internal */
export const connect = (
  address: Address.Address,
  options: Socket.ConnectOptions = {}
): Effect.Effect<Socket.Socket, NetError.ConnectError, Scope.Scope> =>
  withOptions(() => {
    const config = socketConfig(options)
    const timeoutMs = millis("timeout", options.timeout) ?? 0
    return Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        // A scope of its own, so a failed attempt leaves nothing behind in the caller's scope.
        const scope = yield* Scope.fork(yield* Effect.scope, "sequential")
        const isTcp = address._tag === "TcpAddress"
        const raw: Raw = isTcp
          ? Net.createConnection({ host: address.host, port: address.port, allowHalfOpen: true })
          : Net.createConnection({ path: address.path, allowHalfOpen: true })
        // Paused until the first pull: nothing is read that nobody asked for.
        raw.pause()
        const socket = new NodeSocket(raw, config, isTcp, address, undefined)
        yield* Scope.addFinalizer(scope, socket.close)
        const attempt = timeoutMs === 0 ? awaitConnect(socket, address) : awaitConnect(socket, address).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(timeoutMs),
            orElse: () =>
              Effect.fail(
                new NetError.ConnectTimeout({
                  address,
                  detail: `no connection within ${Duration.format(Duration.millis(timeoutMs))}`
                })
              )
          })
        )
        yield* restore(attempt).pipe(Effect.onError(() => Scope.close(scope, Exit.void)))
        return socket as Socket.Socket
      })
    )
  })

// ---------------------------------------------------------------------------
// listen
// ---------------------------------------------------------------------------

/**
 * The accept side: a bounded queue between Node's 'connection' events and the
 * consumer of `accept`, and the set of accepted sockets still open.
 */
class NodeListener implements Socket.Listener, Owner {
  address: Address.Address
  readonly open = new Set<NodeSocket>()
  /** Accepted sockets not yet pulled; `head` avoids O(n) shifts. */
  pending: Array<NodeSocket> = []
  head = 0
  refusedCount = 0
  stopped = false
  waiters: Array<Resume<NonEmptyReadonlyArray<Socket.Socket>, Cause.Done>> = []
  unixInode: number | undefined = undefined
  /**
   * Takes connections in Node's 'connection' callback, instead of `accept`
   * (a server whose connections need no fiber). It returns false to leave
   * the socket in the queue, where `take` finds it later.
   */
  acceptor: ((socket: NodeSocket) => boolean) | undefined = undefined

  constructor(
    readonly server: Net.Server,
    readonly config: SocketConfig,
    readonly acceptQueueSize: number,
    readonly requested: Address.Address
  ) {
    this.address = requested
    server.on("connection", (raw: Raw) => this.onConnection(raw))
  }

  onConnection(raw: Raw): void {
    if (this.stopped || this.pending.length - this.head >= this.acceptQueueSize) {
      this.refusedCount++
      raw.destroy()
      return
    }
    const socket = new NodeSocket(raw, this.config, this.requested._tag === "TcpAddress", this.address, this)
    socket.established(this.address)
    this.open.add(socket)
    if (this.acceptor !== undefined && this.head >= this.pending.length && this.acceptor(socket)) return
    this.pending.push(socket)
    const waiter = this.waiters.shift()
    if (waiter !== undefined) waiter(Effect.suspend(() => this.pollAccept()))
  }

  release(socket: NodeSocket): void {
    this.open.delete(socket)
  }

  take(): NodeSocket | undefined {
    if (this.head >= this.pending.length) return undefined
    const socket = this.pending[this.head]!
    this.pending[this.head++] = undefined as unknown as NodeSocket
    if (this.head === this.pending.length) {
      this.pending = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head)
      this.head = 0
    }
    return socket
  }

  /** The next socket, one per pull; `Cause.Done` once stopped and drained (the end of `accept`). */
  pollAccept(): Pull.Pull<NonEmptyReadonlyArray<Socket.Socket>> {
    const socket = this.take()
    if (socket !== undefined) return Effect.succeed([socket])
    if (this.stopped) return Cause.done()
    return Effect.callback((resume) => {
      this.waiters.push(resume)
      return Effect.sync(() => {
        const i = this.waiters.indexOf(resume)
        if (i >= 0) this.waiters.splice(i, 1)
      })
    })
  }

  get accept(): Stream.Stream<Socket.Socket> {
    return Stream.fromPull(Effect.succeed(Effect.suspend(() => this.pollAccept())))
  }

  get connections(): Effect.Effect<number> {
    return Effect.sync(() => this.open.size)
  }

  get refused(): Effect.Effect<number> {
    return Effect.sync(() => this.refusedCount)
  }

  get stopAccepting(): Effect.Effect<void> {
    return Effect.sync(() => this.unsafeStop())
  }

  unsafeStop(): void {
    if (this.stopped) return
    this.stopped = true
    this.server.close()
    if (this.head >= this.pending.length) {
      const waiters = this.waiters
      this.waiters = []
      for (const resume of waiters) resume(Cause.done())
    }
  }

  /** Scope end: stop listening, destroy every accepted socket, remove our Unix socket file. */
  shutdown(): void {
    this.unsafeStop()
    for (const socket of this.open) socket.unsafeDestroy()
    this.open.clear()
    this.pending = []
    this.head = 0
    const waiters = this.waiters
    this.waiters = []
    for (const resume of waiters) resume(Cause.done())
    if (this.address._tag === "UnixAddress" && this.unixInode !== undefined) {
      removeOwnSocketFile(this.address.path, this.unixInode)
    }
  }
}

const removeOwnSocketFile = (path: string, inode: number): void => {
  try {
    const stat = Fs.lstatSync(path)
    // Only the file we created: another server may have bound the path since.
    if (stat.isSocket() && stat.ino === inode) Fs.unlinkSync(path)
  } catch {
    // Already gone (libuv unlinks it when the server handle closes).
  }
}

/**
 * A Unix path may hold a socket file left by a server that died: nobody
 * accepts there (ECONNREFUSED), so it is removed. A live one is AddressInUse;
 * any other kind of file is never touched.
 */
const prepareUnixPath = (address: Address.UnixAddress): Effect.Effect<void, NetError.ListenError> =>
  Effect.callback((resume) => {
    const path = address.path
    let stat: Fs.Stats
    try {
      stat = Fs.lstatSync(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return resume(Effect.void)
      return resume(Effect.fail(NetError.fromSystemError(e, { phase: "listen", address })))
    }
    if (!stat.isSocket()) {
      return resume(Effect.fail(
        new NetError.AddressInUse({
          address,
          code: "EADDRINUSE",
          detail: `${path} exists and is not a socket; it was left untouched: remove it or choose another path`
        })
      ))
    }
    const probe = Net.createConnection({ path })
    let settled = false
    const settle = (effect: Effect.Effect<void, NetError.ListenError>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      probe.destroy()
      resume(effect)
    }
    const live = (detail: string) =>
      Effect.fail(new NetError.AddressInUse({ address, code: "EADDRINUSE", detail }))
    // A live server with a full backlog may not answer; that still means "in use".
    const timer = setTimeout(
      () => settle(live("a server holds this socket file but did not answer")),
      UNIX_PROBE_TIMEOUT_MS
    )
    probe.once("connect", () => settle(live("a server is accepting connections on this socket file")))
    probe.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") {
        try {
          Fs.unlinkSync(path)
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
            return settle(Effect.fail(NetError.fromSystemError(e, {
              phase: "listen",
              address,
              detail: "cannot remove the stale socket file"
            })))
          }
        }
        return settle(Effect.void)
      }
      if (err.code === "EAGAIN") return settle(live("a server holds this socket file and its backlog is full"))
      settle(Effect.fail(NetError.fromSystemError(err, { phase: "listen", address })))
    })
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      probe.destroy()
    })
  })

/**
 * libuv reports binding in a missing directory as EACCES, whose message
 * speaks of privileges; say what is really wrong.
 */
const missingDirectory = (path: string): string | undefined => {
  const directory = Path.dirname(path)
  return Fs.existsSync(directory) ? undefined : `the directory ${directory} does not exist`
}

const startListening = (
  address: Address.Address,
  options: Socket.ListenOptions,
  config: SocketConfig,
  acceptQueueSize: number,
  backlog: number
): Effect.Effect<NodeListener, NetError.ListenError> =>
  Effect.callback((resume) => {
    const server = Net.createServer({ allowHalfOpen: true, pauseOnConnect: true })
    const listener = new NodeListener(server, config, acceptQueueSize, address)
    const onFailure = (err: Error) => {
      server.off("listening", onListening)
      const detail = address._tag === "UnixAddress" ? missingDirectory(address.path) : undefined
      resume(Effect.fail(NetError.fromSystemError(err, { phase: "listen", address, detail })))
    }
    const onListening = () => {
      server.off("error", onFailure)
      // Accept errors (EMFILE, ECONNABORTED) are transient and Node keeps
      // listening; without a handler they would crash the process.
      server.on("error", () => {})
      const bound = server.address()
      if (address._tag === "TcpAddress") {
        if (bound !== null && typeof bound === "object") {
          listener.address = new Address.TcpAddress({ host: bound.address, port: bound.port }, { disableChecks: true })
        }
      } else {
        try {
          listener.unixInode = Fs.lstatSync(address.path).ino
        } catch {
          // Unlinked by someone else already: nothing of ours to remove later.
        }
      }
      resume(Effect.succeed(listener))
    }
    server.once("error", onFailure)
    server.once("listening", onListening)
    if (address._tag === "TcpAddress") {
      server.listen({ host: address.host, port: address.port, backlog, ipv6Only: options.ipv6Only ?? false })
    } else {
      server.listen({ path: address.path, backlog })
    }
  })

/** @internal */
export const listen = (
  address: Address.Address,
  options: Socket.ListenOptions = {}
): Effect.Effect<Socket.Listener, NetError.ListenError, Scope.Scope> =>
  withOptions(() => {
    const config = socketConfig(options)
    const acceptQueueSize = positiveInt("acceptQueueSize", options.acceptQueueSize, DEFAULT_ACCEPT_QUEUE)
    const backlog = positiveInt("backlog", options.backlog, DEFAULT_BACKLOG)
    const acquire = address._tag === "UnixAddress"
      ? Effect.andThen(prepareUnixPath(address), startListening(address, options, config, acceptQueueSize, backlog))
      : startListening(address, options, config, acceptQueueSize, backlog)
    return Effect.acquireRelease(acquire, (listener) => Effect.sync(() => listener.shutdown())) as Effect.Effect<
      Socket.Listener,
      NetError.ListenError,
      Scope.Scope
    >
  })

Object.defineProperty(NodeSocket.prototype, TypeId, { value: TypeId })

/** @internal */
export type DirectSocket = Socket.Socket & Pick<NodeSocket, "pump" | "startPump" | "closeWith">

/** @internal A socket of node:net, on which a pump runs from Node's callbacks. */
export const isNodeSocket = (socket: Socket.Socket): socket is DirectSocket => socket instanceof NodeSocket

/** @internal A listener of node:net, whose connections can be taken in Node's callback. */
export type DirectListener = Socket.Listener & Pick<NodeListener, "acceptor" | "take">

/** @internal */
export const isNodeListener = (listener: Socket.Listener): listener is DirectListener =>
  listener instanceof NodeListener

/** @internal A pump started with `startPump`. */
export type DirectPump = Pick<Pumping<unknown>, "onAbort" | "detach" | "done">
