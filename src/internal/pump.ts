/**
 * `Socket.pump`: on a Node socket the handler runs in Node's callbacks
 * (see `NodeSocket.pump`); on any other `Socket` the same contract is kept
 * over `reads` and `writeAll`, one channel step per read.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import type * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"
import { isNodeSocket, ONE_READER } from "./nodeSocket.js"

type Step<E> = Channel.Channel<never, Chunk.Chunk<Uint8Array>, E | NetError.WriteError, never, void, unknown>

/** Whether the pump waits for the next read (then an abort may interrupt it) or is answering one. */
interface Idle {
  value: boolean
}

/**
 * A sink that answers each chunk of reads with one `writeAll`, then
 * half-closes at the end of input. Once `signal` aborted it half-closes at
 * the next read boundary instead, so the answer to a read the handler saw is
 * never cut off.
 */
const answering = <E>(
  socket: Socket.Socket,
  handler: Socket.PumpHandler<E>,
  signal: AbortSignal | undefined,
  idle: Idle
): Sink.Sink<void, Uint8Array, never, E | NetError.WriteError> =>
  Sink.fromChannel(Channel.suspend(() => {
    const out: Array<Uint8Array> = []
    const send = (error: E | undefined, next: Step<E>): Step<E> => {
      const after = error === undefined ? next : Channel.fail(error)
      if (out.length === 0) return after
      const batch = out.slice()
      out.length = 0
      return Channel.flatMap(Channel.fromEffect(socket.writeAll(batch)), () => after)
    }
    const stopped: Step<E> = Channel.fromEffect(Effect.ignore(socket.end))
    const next: Step<E> = Channel.suspend(() => {
      if (signal?.aborted === true) return stopped
      idle.value = true
      return loop
    })
    const loop: Step<E> = Channel.readWithCause({
      onInput: (input: Chunk.Chunk<Uint8Array>) => {
        idle.value = false
        let error: E | undefined
        for (const bytes of input) {
          if (bytes.length === 0) continue
          error = handler.onRead(bytes, out)
          if (error !== undefined) break
        }
        return send(error, next)
      },
      onFailure: (cause: Cause.Cause<never>) => {
        idle.value = false
        return Channel.failCause(cause)
      },
      onDone: () => {
        idle.value = false
        return send(handler.onEnd(out), Channel.fromEffect(socket.end))
      }
    })
    return next
  }))

const aborted = (signal: AbortSignal): Effect.Effect<void> =>
  Effect.async((resume) => {
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
  if (isNodeSocket(socket)) return socket.pump(handler, signal)
  return Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      if (pumping.has(socket)) return Effect.dieMessage(ONE_READER)
      if (signal?.aborted === true) return Effect.ignore(socket.end)
      pumping.add(socket)
      const idle: Idle = { value: false }
      const run = Stream.run(socket.reads, answering(socket, handler, signal, idle))
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
