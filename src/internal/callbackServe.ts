/**
 * Effect handlers served in Node's callbacks (`Protocol.serve`): each read
 * is answered synchronously when the handler's Effects complete at once, and
 * a fiber is started only when one really waits. That fiber "parks" the
 * connection: its pump stops (reading pauses once the socket's read buffer
 * fills), the fiber finishes the read, and the pump starts again. A server
 * that can (node:net's listener) runs such a connection with no fiber, scope
 * or finalizer of its own while it does not wait; anywhere else the handler
 * is an ordinary Effect and parks inside its own fiber.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import type * as Socket from "../Socket.js"

/**
 * What a handler served in callbacks is given by its server: the drain
 * signal, and the way to run its Effects with the server's services (and a
 * `Scope` that lives as long as the connection, as `Effect.scoped` gives a
 * handler in a fiber). A runtime made in a fiber has that fiber's services.
 */
export interface CallbackRuntime {
  readonly signal: AbortSignal | undefined
  /** The services the connection runs with (where its metrics are recorded). */
  readonly services?: Context.Context<never> | undefined
  /** Start `effect` with the connection's services; it is not supervised (called as a method). */
  runFork<A, E>(effect: Effect.Effect<A, E, any>): Fiber.Fiber<A, E>
}

/**
 * A pump handler's "error" that is not one: finish the read in `rest`, in a
 * fiber, then pump again when it succeeds with true (false: the connection
 * ended, half-closed by `rest`).
 */
export class Park {
  constructor(readonly rest: Effect.Effect<boolean, unknown, any>) {}
}

/** The key under which a handler offers to be served in callbacks. */
export const CallbackServeKey: unique symbol = Symbol.for("effect-wire/internal/CallbackServe") as never

/** Makes a connection's pump handler; its errors may be {@link Park}s. */
export type CallbackServe = (socket: Socket.Socket, runtime: CallbackRuntime) => Socket.PumpHandler<unknown>

/** The callback form of a handler, when it has one. */
export const callbackServeOf = (handler: unknown): CallbackServe | undefined =>
  typeof handler === "function" && CallbackServeKey in handler
    ? (handler as unknown as Record<typeof CallbackServeKey, CallbackServe>)[CallbackServeKey]
    : undefined

/**
 * A server's runtime for one connection served in callbacks: its services
 * are the server's, plus a `Scope` made (with the context holding it) only
 * when the handler first runs an Effect that is not already complete, and
 * closed by `release` when the connection ends.
 */
export class ConnectionRuntime implements CallbackRuntime {
  private scope: Scope.Closeable | undefined = undefined
  private run: (<A, E>(effect: Effect.Effect<A, E, any>) => Fiber.Fiber<A, E>) | undefined = undefined
  constructor(
    readonly signal: AbortSignal | undefined,
    readonly services: Context.Context<never>,
    /** Puts a parked connection's fiber under the server's supervision (the drain interrupts it). */
    private readonly supervise: (fiber: Fiber.Fiber<unknown, unknown>) => void
  ) {}

  runFork<A, E>(effect: Effect.Effect<A, E, any>): Fiber.Fiber<A, E> {
    if (this.run === undefined) {
      this.scope = Scope.makeUnsafe()
      this.run = Effect.runForkWith(Context.add(this.services, Scope.Scope, this.scope)) as never
    }
    return this.run!(effect)
  }

  /** Runs a park's `rest`, supervised. */
  park(rest: Effect.Effect<boolean, unknown, any>): Fiber.Fiber<boolean, unknown> {
    const fiber = this.runFork(rest)
    this.supervise(fiber)
    return fiber
  }

  /** The connection ended: close its scope, if it has one, with how it ended. */
  release(exit: Exit.Exit<unknown, unknown>): void {
    const scope = this.scope
    if (scope === undefined) return
    this.scope = undefined
    Effect.runFork(Scope.close(scope, exit))
  }
}
