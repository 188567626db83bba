/**
 * What a listener may offer a `Server` beyond `Socket.Listener`, under a key
 * the public interface does not show: to tell the server of the connections
 * its full accept queue refuses, and to serve a pump handler's connections in
 * its own callbacks, with no fiber, and to count a TLS listener's failed
 * handshakes (node:net's listener offers all of it; MemorySocket's nothing,
 * and its connections run in fibers).
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type * as Socket from "../Socket.js"
import type { ConnectionRuntime } from "./callbackServe.js"
import type { ConnectionSlots } from "./connectionSlots.js"

/** The key of {@link ServerCapability}. */
export const ServerCapability: unique symbol = Symbol.for("effect-wire/internal/ServerCapability")

/** What {@link ServerCapability} holds. */
export interface ServerCapability {
  /** From now on, tell `slots` of every connection refused because the accept queue is full. */
  readonly reportRefusals: (slots: ConnectionSlots) => void
  /**
   * Serve every connection, from now on and those already waiting, with a
   * pump made by `make`, in the listener's callbacks; admission, counters and
   * failures go through `slots`. With `runtime` (a handler served in
   * callbacks, `callbackServe.ts`), each connection gets one, the handler
   * may park, and the runtime is released when the connection ends.
   */
  readonly servePumps: (
    make: (socket: Socket.Socket, runtime: ConnectionRuntime | undefined) => Socket.PumpHandler<unknown>,
    slots: ConnectionSlots,
    runtime?: (() => ConnectionRuntime) | undefined
  ) => PumpConnections
  /**
   * Take every connection, from now on and those already waiting, in the
   * listener's callbacks and hand it to `serve` (which starts its fiber),
   * under `slots`' admission: no accept stream, no fiber step per
   * connection. `stop` takes no more. A later taker (another
   * `PlatformSocket.fromListener` `run`) takes over until it stops, and
   * then the latest earlier one still taking takes again.
   */
  readonly acceptInCallbacks: (
    serve: (socket: Socket.Socket) => void,
    slots: ConnectionSlots
  ) => { readonly stop: () => void }
  /** A TLS listener's failed handshakes by the tag of their error; undefined for a plaintext one. */
  readonly tlsHandshakeFailures: () => ReadonlyMap<string, number> | undefined
  /** Connections refused for their PROXY header, by tag; undefined without `proxyProtocol`. */
  readonly proxyHeaderFailures: () => ReadonlyMap<string, number> | undefined
}

/** The connections {@link ServerCapability.servePumps} serves, as the drain sees them. */
export interface PumpConnections {
  /** Take no more connections: the drain began. */
  readonly stop: () => void
  /** Half-close every connection once its answer in hand is written, as on the drain signal. */
  readonly endAll: () => void
  /** Close the connections still open (each flushing within its `closeTimeout`); counted as cut. */
  readonly cut: Effect.Effect<void>
}

/** The capability of `listener`, when it has one (its own, not a wrapped listener's). */
export const serverCapabilityOf = (listener: Socket.Listener): ServerCapability | undefined =>
  (listener as Partial<Record<typeof ServerCapability, ServerCapability>>)[ServerCapability]
