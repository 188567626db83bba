/**
 * A time limit a pump handler may carry on the work it is in the middle of
 * (the frame of a framed byte server, `frameTimeout`). Both pumps keep it
 * (Node's callbacks with a timer, `nodePump.ts`; a fiber on Effect's clock,
 * `pump.ts`), so that a peer sending one byte at a time, which an idle
 * timeout never closes, cannot hold a connection for long.
 *
 * @internal
 */
import type * as Socket from "../Socket.js"
import type { Progress } from "./codecs/core.js"

/** The key under which a `Socket.PumpHandler` carries its {@link Deadline}. */
export const DeadlineKey: unique symbol = Symbol.for("effect-wire/internal/PumpDeadline")

/** A handler's time limit on its work in progress. */
export interface Deadline<E> {
  /** The limit, in milliseconds. */
  readonly millis: number
  /** Asked after each read (or batch of reads): is work in progress, and did it begin since the last look? */
  readonly progress: () => Progress
  /** The error that ends the connection once the limit passed. */
  readonly expired: () => E
}

/** A pump handler with a deadline. */
export interface WithDeadline<E> extends Socket.PumpHandler<E> {
  readonly [DeadlineKey]: Deadline<E>
}

/** The handler's deadline, if it has one. */
export const deadlineOf = <E>(handler: Socket.PumpHandler<E>): Deadline<E> | undefined =>
  DeadlineKey in handler ? (handler as WithDeadline<E>)[DeadlineKey] : undefined
