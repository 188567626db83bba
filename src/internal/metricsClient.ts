/**
 * A client connection's metrics (`Socket.connect`): the attempt's outcome
 * (connected, or failed by the error's tag) and its duration up to a usable
 * socket (TCP connect and TLS handshake), and the bytes it moved, counted
 * when it closes.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Address from "../Address.js"
import { type Meters, metersOf, tagOf } from "./metrics.js"
import type { NodeSocket } from "./nodeSocket.js"

export class ClientMeter {
  readonly startedAt = performance.now()
  done = false
  isConnected = false

  constructor(readonly meters: Meters, readonly address: Address.Address) {}

  /** Records a failed attempt's tag (once). */
  readonly attempt = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.tapError(effect, (error) =>
      Effect.sync(() => {
        if (this.done) return
        this.done = true
        this.meters.clientConnect(this.address, (performance.now() - this.startedAt) / 1000, tagOf(error))
      }))

  connected(): void {
    if (this.done) return
    this.done = true
    this.isConnected = true
    this.meters.clientConnect(this.address, (performance.now() - this.startedAt) / 1000, undefined)
  }

  /** A finalizer, run after the socket closed: its bytes. */
  closed(socket: NodeSocket): Effect.Effect<void> {
    return Effect.sync(() => {
      if (this.isConnected) this.meters.clientBytes(this.address, socket.raw.bytesRead, socket.raw.bytesWritten)
    })
  }
}

/** The meter of one client connection, or undefined when metrics are off. */
export const clientMeter = (context: Context.Context<never>, address: Address.Address): ClientMeter | undefined => {
  const meters = metersOf(context)
  return meters === undefined ? undefined : new ClientMeter(meters, address)
}
