/**
 * `Socket.pump`: on a socket that runs pumps in its own callbacks (node:net's,
 * see nodePump.ts) the handler runs there; on any other `Socket` the same
 * contract is kept over `reads` and `writeAll`, one sink step per read.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Pull from "effect/Pull"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"
import { clear } from "./bytes.js"
import { formatBytes } from "./memoryBudget.js"
import * as Check from "./options.js"
import { deadlineOf } from "./pumpDeadline.js"
import { ONE_READER, PumpInCallbacks, pumpsInCallbacks } from "./socketContract.js"

/** Whether the pump waits for the next read (then an abort may interrupt it) or is answering one. */
interface Idle {
  value: boolean
}

const END_VOID: Sink.End<void> = [undefined]

/**
 * A sink that answers each batch of reads with one `writeAll`, then
 * half-closes at the end of input. Once `signal` aborted it half-closes at
 * the next read boundary instead, so the answer to a read the handler saw is
 * never cut off. (A read error never reaches a sink: the stream fails with it
 * after the sink stopped, without a half-close.) A handler with a deadline
 * (`frameTimeout`) bounds the wait for the next read while its work is in
 * progress, on Effect's clock.
 */
const answering = <E>(
  socket: Socket.Socket,
  handler: Socket.PumpHandler<E>,
  signal: AbortSignal | undefined,
  idle: Idle,
  clock: Clock.Clock,
  writeTimeoutMs: number
): Sink.Sink<void, Uint8Array, never, E | NetError.WriteError> =>
  Sink.fromTransform((upstream) => {
    type Step = Effect.Effect<Sink.End<void>, E | NetError.WriteError>
    const deadline = deadlineOf(handler)
    // When the handler's work in progress must be done, in the clock's milliseconds; undefined when none is.
    let expiresAt: number | undefined
    const expired = Effect.suspend(() => Effect.fail(deadline!.expired()))
    const next = () => {
      if (expiresAt === undefined) return upstream
      const left = expiresAt - clock.currentTimeMillisUnsafe()
      return left <= 0 ? expired : Effect.timeoutOrElse(upstream, { duration: left, orElse: () => expired })
    }
    const watch = () => {
      const progress = deadline!.progress()
      if (progress === "idle") expiresAt = undefined
      else if (progress === "begun") expiresAt = clock.currentTimeMillisUnsafe() + deadline!.millis
    }
    const out: Array<Uint8Array> = []
    const send = (error: E | undefined, next: Step): Step => {
      const after = error === undefined ? next : Effect.fail(error)
      if (out.length === 0) return after
      const batch = out.slice()
      clear(out)
      const write = socket.writeAll(batch)
      return Effect.andThen(writeTimeoutMs === 0 ? write : Effect.timeoutOrElse(write, {
        duration: writeTimeoutMs,
        orElse: () => Effect.fail(writeTimedOut(socket, batch, writeTimeoutMs))
      }), after)
    }
    const stopped: Step = Effect.as(Effect.ignore(socket.end), END_VOID)
    const ended: Step = Effect.as(socket.end, END_VOID)
    const loop: Step = Effect.suspend(() => {
      if (signal?.aborted === true) return stopped
      idle.value = true
      return Pull.matchEffect(next(), {
        onSuccess: (input): Step => {
          idle.value = false
          let error: E | undefined
          for (const bytes of input) {
            if (bytes.length === 0) continue
            error = handler.onRead(bytes, out)
            if (error !== undefined) break
          }
          if (deadline !== undefined && error === undefined) watch()
          return send(error, loop)
        },
        onFailure: (cause) => {
          idle.value = false
          return Effect.failCause(cause)
        },
        onDone: () => {
          idle.value = false
          return send(handler.onEnd(out), ended)
        }
      })
    })
    return loop
  })

const writeTimedOut = (socket: Socket.Socket, batch: ReadonlyArray<Uint8Array>, millis: number) => {
  let bytes = 0
  for (const part of batch) bytes += part.length
  return new NetError.WriteTimeout({
    address: socket.remoteAddress,
    detail: `a write of ${formatBytes(bytes)} was still waiting after ${millis} ms (writeTimeout: ${millis} ms)`
  })
}

/** The `writeTimeout` option in milliseconds, 0 for none; an invalid one is a defect naming it. */
const writeTimeoutOf = (value: Duration.Input | undefined): number => {
  if (value === undefined) return 0
  const reason = Check.duration(value, { never: true })
  if (reason !== undefined) throw Check.defect("Socket.pump", "writeTimeout", reason)
  const duration = Duration.fromInputUnsafe(value)
  return Duration.isFinite(duration) ? Duration.toMillis(duration) : 0
}

const aborted = (signal: AbortSignal): Effect.Effect<void> =>
  Effect.callback((resume) => {
    if (signal.aborted) return resume(Effect.void)
    const onAbort = () => resume(Effect.void)
    signal.addEventListener("abort", onAbort, { once: true })
    return Effect.sync(() => signal.removeEventListener("abort", onAbort))
  })

/** Generic sockets being pumped: a second pump is a defect, not a reader of half the bytes. */
const pumping = new WeakSet<Socket.Socket>()

/** @internal */
export const pump = <E>(
  socket: Socket.Socket,
  handler: Socket.PumpHandler<E>,
  options?: Socket.PumpOptions
): Effect.Effect<void, E | NetError.ReadError | NetError.WriteError> => {
  const signal = options?.signal
  if (pumpsInCallbacks(socket)) return socket[PumpInCallbacks](handler, signal)
  return Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      if (pumping.has(socket)) return Effect.die(new Error(ONE_READER))
      if (signal?.aborted === true) return Effect.ignore(socket.end)
      let writeTimeoutMs: number
      try {
        writeTimeoutMs = writeTimeoutOf(options?.writeTimeout)
      } catch (defect) {
        return Effect.die(defect)
      }
      pumping.add(socket)
      const idle: Idle = { value: false }
      const run = Effect.clockWith((clock) =>
        Stream.run(socket.reads, answering(socket, handler, signal, idle, clock, writeTimeoutMs))
      )
      // An abort interrupts only a pump waiting for its next read; one answering
      // a read stops by itself once that answer is written.
      const stoppable = signal === undefined ? run : Effect.raceFirst(
        run,
        Effect.flatMap(aborted(signal), () => idle.value ? Effect.ignore(socket.end) : Effect.never)
      )
      return Effect.ensuring(restore(stoppable), Effect.sync(() => pumping.delete(socket)))
    })
  )
}
