/**
 * A server is a Layer: it listens when the Layer is built (failing with the
 * typed `ListenError`), runs every connection in its own supervised fiber, keeps
 * the number of connections bounded, and on release stops accepting, lets open
 * connections finish for `shutdownTimeout`, then interrupts the rest.
 *
 * ```ts
 * const EchoLive = Server.layer({
 *   address: Address.tcp("127.0.0.1", 0),
 *   handler: (socket) => Stream.run(socket.reads, socket.writes)
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "./Address.js"
import type { ListenError } from "./NetError.js"
import * as Socket from "./Socket.js"

/**
 * What a handler learns about its connection besides the socket.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** Sequence number of the connection on this server, from 1. */
  readonly id: number
  /** The peer's address. */
  readonly remoteAddress: Address.Address
  /** Completes when the server starts draining: finish the request in hand, then return. */
  readonly draining: Effect.Effect<void>
  /** Whether the server is draining now. */
  readonly isDraining: Effect.Effect<boolean>
}

/**
 * What to do with a connection when `maxConnections` are already open:
 * `"queue"` leaves it waiting in the listener's bounded accept queue
 * (`listen.acceptQueueSize`, default 1024) until a slot frees; once that
 * queue is full too, further connections are closed at once and counted in
 * `refused`. `"refuse"` closes it at once (counted in `refused`).
 *
 * @since 0.1.0
 * @category models
 */
export type Overflow = "queue" | "refuse"

/**
 * Options of {@link make} and {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E, R> {
  /** Where to listen. Port 0 picks a free port; read the real one from the service. */
  readonly address: Address.Address
  /** Serves one connection. The socket is closed when it returns, fails or is interrupted. */
  readonly handler: (socket: Socket.Socket, connection: Connection) => Effect.Effect<void, E, R | Scope.Scope>
  /** At most this many connections are served at once (default 1024). */
  readonly maxConnections?: number | undefined
  /** What happens past `maxConnections` (default `"queue"`). */
  readonly overflow?: Overflow | undefined
  /** A connection with no traffic either way for this long fails with `IdleTimeout` (default: none). */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** How long open connections may finish after shutdown begins (default 10 seconds). */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** Name used in log lines (default: the address). */
  readonly name?: string | undefined
  /** Further socket options for the listener and accepted sockets. */
  readonly listen?: Omit<Socket.ListenOptions, "idleTimeout"> | undefined
}

/**
 * Counters of a running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Connections accepted so far. */
  readonly accepted: number
  /** Connections being served now. */
  readonly active: number
  /** Connections whose handler returned normally. */
  readonly completed: number
  /** Connections whose handler failed or died (logged with the typed error). */
  readonly failed: number
  /** Connections closed at once because the server was full (`overflow: "refuse"`) or its queue was. */
  readonly refused: number
}

/**
 * How a graceful shutdown went: connections that finished within
 * `shutdownTimeout` and connections that were interrupted after it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ShutdownReport {
  readonly finished: number
  readonly cut: number
}

/**
 * A running server: its bound address and counters.
 *
 * ```ts
 * const server = yield* Server.Server
 * console.log(Address.format(server.address))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningServer {
  /** The address actually bound (port 0 resolved). */
  readonly address: Address.Address
  /** Current counters. */
  readonly stats: Effect.Effect<Stats>
  /** Completes with the shutdown report once the server has drained. */
  readonly shutdown: Effect.Effect<ShutdownReport>
}

/**
 * The service a {@link layer} provides. Built-in servers provide their own
 * tags (`Echo.Echo`, …) with the same shape, so several compose in one program.
 *
 * ```ts
 * const address = yield* Effect.map(Server.Server, (s) => s.address)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Server extends Context.Tag("effect-wire/Server")<Server, RunningServer>() {}

const DEFAULT_MAX_CONNECTIONS = 1024
const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(10)

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const e = failure.value
    return typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e)
  }
  return Cause.pretty(cause)
}

/**
 * Options of {@link fromListener}: a server on a listener you already have.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenerOptions<E, R> = Omit<Options<E, R>, "address" | "idleTimeout" | "listen">

/**
 * Start a server in the current scope: listen, accept, serve each connection
 * in its own fiber. Closing the scope drains it (see the module doc).
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* Server.make({ address: Address.tcp("127.0.0.1", 0), handler })
 *   yield* Console.log(`listening on ${Address.format(server.address)}`)
 *   return yield* Effect.never
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E, R>(
  options: Options<E, R>
): Effect.Effect<RunningServer, ListenError, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.flatMap(
    Socket.listen(options.address, { ...options.listen, idleTimeout: options.idleTimeout }),
    (listener) => fromListener(listener, options)
  )

/**
 * Serve the connections of an existing {@link Socket.Listener} — a real one, or
 * `MemorySocket.listen()` to test a whole server without the network.
 *
 * ```ts
 * const listener = yield* MemorySocket.listen()
 * const server = yield* Server.fromListener(listener, { handler })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromListener = <E, R>(
  listener: Socket.Listener,
  options: ListenerOptions<E, R>
): Effect.Effect<RunningServer, never, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    if (!Number.isInteger(maxConnections) || maxConnections < 1) {
      return yield* Effect.dieMessage(`maxConnections must be a positive integer, got ${maxConnections}`)
    }
    const overflow = options.overflow ?? "queue"
    const shutdownTimeout = options.shutdownTimeout === undefined
      ? DEFAULT_SHUTDOWN_TIMEOUT
      : Duration.decode(options.shutdownTimeout)
    const name = options.name ?? Address.format(listener.address)
    const counters = { accepted: 0, active: 0, completed: 0, failed: 0, refused: 0 }
    const drainSignal = yield* Deferred.make<void>()
    const shutdownReport = yield* Deferred.make<ShutdownReport>()
    // One fiber per connection, supervised here: a connection's failure ends only that fiber.
    const connections = yield* FiberSet.make<void, never>()
    const runConnection = yield* FiberSet.runtime(connections)<Exclude<R, Scope.Scope>>()
    // A permit is taken before pulling the next connection when queueing, so a
    // full server stops accepting and connections wait in bounded queues.
    const permits = yield* Effect.makeSemaphore(maxConnections)

    // The same two effects serve every connection.
    const draining = Deferred.await(drainSignal)
    const isDraining = Deferred.isDone(drainSignal)

    const serve = (socket: Socket.Socket): Effect.Effect<void, never, Exclude<R, Scope.Scope>> => {
      const connection: Connection = { id: counters.accepted, remoteAddress: socket.remoteAddress, draining, isDraining }
      return options.handler(socket, connection).pipe(
        Effect.scoped,
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            counters.active--
            if (Exit.isSuccess(exit)) {
              counters.completed++
              return Effect.void
            }
            if (Exit.isInterrupted(exit)) return Effect.void
            counters.failed++
            const peer = Address.format(socket.remoteAddress)
            return Effect.logWarning(`${name}: connection from ${peer} failed: ${describeCause(exit.cause)}`).pipe(
              Effect.annotateLogs({ server: name, peer })
            )
          })
        ),
        Effect.ensuring(socket.close),
        Effect.catchAllCause(() => Effect.void)
      ) as Effect.Effect<void, never, Exclude<R, Scope.Scope>>
    }

    const accept = (socket: Socket.Socket, release: Effect.Effect<unknown>) =>
      Effect.sync(() => {
        counters.accepted++
        counters.active++
        runConnection(Effect.ensuring(serve(socket), release))
      })
    const acceptLoop = Stream.runForEach(
      listener.accept,
      overflow === "queue"
        // Wait for a free slot before taking the next connection: meanwhile new
        // connections wait in the listener's bounded queue and the kernel backlog.
        ? (socket) => Effect.zipRight(permits.take(1), accept(socket, permits.release(1)))
        : (socket) =>
          Effect.suspend(() => {
            if (counters.active < maxConnections) return accept(socket, Effect.void)
            counters.refused++
            return socket.close
          })
    )
    // A daemon, interrupted by the drain below, so that accepting stops before
    // connections are waited for.
    const acceptFiber = yield* Effect.forkDaemon(acceptLoop)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* listener.stopAccepting
        yield* Fiber.interrupt(acceptFiber)
        yield* Deferred.succeed(drainSignal, void 0)
        const open = yield* FiberSet.size(connections)
        // Finalizers run uninterruptibly; the wait must be interruptible for the timeout to cut it.
        const drained = yield* Effect.interruptible(FiberSet.awaitEmpty(connections)).pipe(
          Effect.timeoutOption(shutdownTimeout)
        )
        const cut = drained._tag === "Some" ? 0 : yield* FiberSet.size(connections)
        // All at once: FiberSet.clear interrupts one fiber after another, and each
        // cut connection's close may wait up to its closeTimeout for a flush.
        yield* Fiber.interruptAll(Array.from(connections))
        const report: ShutdownReport = { finished: open - cut, cut }
        yield* Deferred.succeed(shutdownReport, report)
        if (open > 0) {
          yield* Effect.logInfo(`${name}: shut down; ${report.finished} connection(s) finished, ${report.cut} cut`)
        }
      })
    )

    return {
      address: listener.address,
      stats: Effect.map(listener.refused, (queueRefused) => ({
        accepted: counters.accepted,
        active: counters.active,
        completed: counters.completed,
        failed: counters.failed,
        refused: counters.refused + queueRefused
      })),
      shutdown: Deferred.await(shutdownReport)
    }
  })

/**
 * A server as a Layer providing the {@link Server} service. Building it
 * listens; releasing it drains.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const server = yield* Server.Server
 *   yield* Console.log(`listening tcp ${Address.format(server.address)}`)
 * }).pipe(Effect.provide(Server.layer({ address: Address.tcp("127.0.0.1", 0), handler })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(options: Options<E, R>): Layer.Layer<Server, ListenError, Exclude<R, Scope.Scope>> =>
  Layer.scoped(Server, make(options))
