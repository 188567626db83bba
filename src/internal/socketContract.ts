/**
 * What every `Socket` implementation shares: the TypeId (created here, once;
 * `Socket.TypeId` re-exports it), the one-reader rule, and the keys under
 * which a socket offers what it can do in its own callbacks: run a
 * `Socket.pump`, close, and fail a wait in `reads` from outside.
 *
 * @internal
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"

/** Socket's TypeId, created here once; `Socket.TypeId` re-exports it. */
export const TypeId: unique symbol = Symbol.for("effect-wire/Socket")

/** The defect of a second reader (or pump) on one socket. */
export const ONE_READER = "socket.reads is already being pulled (or pumped) by another fiber; read from one fiber at a time"

/** The key of {@link PumpsInCallbacks}. */
export const PumpInCallbacks: unique symbol = Symbol.for("effect-wire/internal/PumpInCallbacks")

/**
 * A socket that runs a pump from its own I/O callbacks (node:net's does), with
 * no fiber step per read; `Socket.pump` uses it when a socket has it.
 */
export interface PumpsInCallbacks {
  readonly [PumpInCallbacks]: <E>(
    handler: Socket.PumpHandler<E>,
    signal: AbortSignal | undefined
  ) => Effect.Effect<void, E | NetError.ReadError | NetError.WriteError>
}

/** Does this socket run pumps in its own callbacks? */
export const pumpsInCallbacks = (socket: Socket.Socket): socket is Socket.Socket & PumpsInCallbacks =>
  PumpInCallbacks in socket

/** The key of {@link ClosesInCallbacks}. */
export const CloseInCallbacks: unique symbol = Symbol.for("effect-wire/internal/CloseInCallbacks")

/**
 * A socket that closes from its own callbacks: `close`'s work, calling `done`
 * once the handle is released (at once when nothing is left to flush), and
 * returning how to cut a wait short. `Server` uses it to free a connection's
 * slot with no Effect step of its own.
 */
export interface ClosesInCallbacks {
  readonly [CloseInCallbacks]: (done: () => void) => (() => void) | undefined
}

/** Does this socket close in its own callbacks? */
export const closesInCallbacks = (socket: Socket.Socket): socket is Socket.Socket & ClosesInCallbacks =>
  CloseInCallbacks in socket

/** The key of {@link CutsReadWaits}. */
export const CutReadWait: unique symbol = Symbol.for("effect-wire/internal/CutReadWait")

/** The key of {@link CutsReadWaits}' pull. */
export const PullReads: unique symbol = Symbol.for("effect-wire/internal/PullReads")

/**
 * A socket whose wait in `reads` can be ended from outside:
 * `[CutReadWait](error)` fails the pull waiting now, or else the next one to
 * wait, with `error` (typed as the caller's, not as a `ReadError`: only its
 * caller sees it), until `[CutReadWait](undefined)` clears it.
 * `PlatformSocket.fromSocket` uses it to fail a pull suspended in another
 * fiber when its reader's scope closes, without racing every pull against
 * that scope. `[PullReads]` is the pull `reads` is made of (the next batch,
 * `Cause.done()` at the end; one reader at a time, `ONE_READER`): pulled
 * directly, it spares a reader `Stream.toPull`'s context switch and
 * semaphore on every read.
 */
export interface CutsReadWaits {
  readonly [CutReadWait]: (error: unknown) => void
  readonly [PullReads]: Pull.Pull<NonEmptyReadonlyArray<Uint8Array>, NetError.ReadError>
}

/** Can this socket's wait in `reads` be cut from outside? */
export const cutsReadWaits = (socket: Socket.Socket): socket is Socket.Socket & CutsReadWaits => CutReadWait in socket

/**
 * The pull of `socket.reads` for a reader that makes one pull at a time (its
 * own turns, or a lock): the socket's own `[PullReads]` where it offers one,
 * else `Stream.toPull`'s, tied to the current scope.
 */
export const readsPull = (
  socket: Socket.Socket
): Effect.Effect<Pull.Pull<NonEmptyReadonlyArray<Uint8Array>, NetError.ReadError>, never, Scope.Scope> =>
  cutsReadWaits(socket) ? Effect.succeed(socket[PullReads]) : Stream.toPull(socket.reads)
