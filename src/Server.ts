/**
 * A server is a Layer: it listens when the Layer is built (failing with the
 * typed `ListenError`), runs every connection in its own supervised fiber (or,
 * for a {@link pump} handler on a Node socket, in Node's callbacks with no
 * fiber at all), keeps the number of connections bounded, and on release stops
 * accepting, lets open connections finish for `shutdownTimeout`, then
 * interrupts the rest.
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
import { setMaxListeners } from "node:events"
import * as Address from "./Address.js"
import { type DirectPump, type DirectSocket, isNodeListener, isNodeSocket } from "./internal/nodeSocket.js"
import type { ListenError, ReadError, WriteError } from "./NetError.js"
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
  /**
   * Aborts when the server starts draining, like `draining` completes: for
   * code driven by callbacks rather than a fiber, such as `Socket.pump`.
   */
  readonly signal: AbortSignal
}

const PumpTypeId: unique symbol = Symbol.for("effect-wire/Server/Pump") as never

/**
 * A connection handler made of a synchronous {@link Socket.PumpHandler}
 * (see {@link pump}). It is an ordinary handler (call it with a socket), and
 * a server recognises it: on a Node socket the server runs it without a fiber
 * of its own, driven by Node's callbacks.
 *
 * ```ts
 * const handler: Server.PumpedHandler<never> = Server.pump(() => ({
 *   onRead: (bytes, out) => void out.push(bytes),
 *   onEnd: () => undefined
 * }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PumpedHandler<E> {
  (
    socket: Socket.Socket,
    connection?: Pick<Connection, "signal"> | undefined
  ): Effect.Effect<void, E | ReadError | WriteError>
  readonly [PumpTypeId]: (socket: Socket.Socket) => Socket.PumpHandler<E>
}

/**
 * Make a connection handler from a synchronous {@link Socket.PumpHandler},
 * made fresh for each connection by `make`. Each read is answered inside
 * Node's 'data' callback (`Socket.pump`), and a server runs such a
 * connection without a fiber, a scope or a finalizer of its own: an idle
 * connection costs about what node:net's own socket costs. Supervision is
 * the same as for any handler: a failure is logged and counted, the socket is
 * closed, `maxConnections` and the drain apply (on drain the connection
 * half-closes and ends). On any other socket (`MemorySocket`, a wrapper) it
 * runs as an ordinary handler, on `Socket.pump`'s generic path.
 *
 * ```ts
 * const server = yield* Server.make({
 *   address: Address.tcp("127.0.0.1", 0),
 *   handler: Server.pump(() => ({ onRead: (bytes, out) => void out.push(bytes), onEnd: () => undefined }))
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const pump = <E>(make: (socket: Socket.Socket) => Socket.PumpHandler<E>): PumpedHandler<E> =>
  Object.assign(
    (socket: Socket.Socket, connection?: Pick<Connection, "signal"> | undefined) =>
      Effect.suspend(() => Socket.pump(socket, make(socket), { signal: connection?.signal })),
    { [PumpTypeId]: make }
  )

const pumpOf = (handler: unknown): ((socket: Socket.Socket) => Socket.PumpHandler<unknown>) | undefined =>
  typeof handler === "function" && PumpTypeId in handler ? (handler as PumpedHandler<unknown>)[PumpTypeId] : undefined

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
  readonly idleTimeout?: Duration.Input | undefined
  /** How long open connections may finish after shutdown begins (default 10 seconds). */
  readonly shutdownTimeout?: Duration.Input | undefined
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
export class Server extends Context.Service<Server, RunningServer>()("effect-wire/Server") {}

const DEFAULT_MAX_CONNECTIONS = 1024
const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(10)

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.findErrorOption(cause)
  if (failure._tag === "Some") {
    const e = failure.value
    if (typeof e !== "object" || e === null || !("message" in e)) return String(e)
    // The tag first, so that a log search for `IdleTimeout` finds it.
    return "_tag" in e && typeof e._tag === "string" ? `${e._tag}: ${String(e.message)}` : String(e.message)
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
      return yield* Effect.die(new Error(`maxConnections must be a positive integer, got ${maxConnections}`))
    }
    const overflow = options.overflow ?? "queue"
    const shutdownTimeout = options.shutdownTimeout === undefined
      ? DEFAULT_SHUTDOWN_TIMEOUT
      : Duration.fromInputUnsafe(options.shutdownTimeout)
    const name = options.name ?? Address.format(listener.address)
    const counters = { accepted: 0, active: 0, completed: 0, failed: 0, refused: 0 }
    const drainSignal = yield* Deferred.make<void>()
    const shutdownReport = yield* Deferred.make<ShutdownReport>()
    // One fiber per connection, supervised here: a connection's failure ends only that fiber.
    const connections = yield* FiberSet.make<void, never>()
    const runConnection = yield* FiberSet.runtime(connections)<Exclude<R, Scope.Scope>>()
    // For logging from Node's callbacks, with the caller's logger.
    const runFork = Effect.runForkWith(yield* Effect.context<never>())

    // The same two effects and the same signal serve every connection.
    const draining = Deferred.await(drainSignal)
    const isDraining = Deferred.isDone(drainSignal)
    const drainController = new AbortController()
    const signal = drainController.signal
    // Every connection's handler may listen to it; that is no leak.
    setMaxListeners(0, signal)

    // Slots: the accept loop takes one before pulling the next connection when
    // queueing, so a full server stops accepting and connections wait in
    // bounded queues. Released from a fiber's end or from a Node callback.
    let freeSlots = maxConnections
    let slotWaiter: (() => void) | undefined
    const takeSlot = Effect.callback<void>((resume) => {
      if (freeSlots > 0) {
        freeSlots--
        return resume(Effect.void)
      }
      slotWaiter = () => {
        freeSlots--
        resume(Effect.void)
      }
      return Effect.sync(() => {
        slotWaiter = undefined
      })
    })
    const releaseSlot = () => {
      freeSlots++
      const waiter = slotWaiter
      slotWaiter = undefined
      waiter?.()
    }
    const noSlot = () => {}

    const logFailure = (socket: Socket.Socket, cause: Cause.Cause<unknown>) => {
      const peer = Address.format(socket.remoteAddress)
      return Effect.logWarning(`${name}: connection from ${peer} failed: ${describeCause(cause)}`).pipe(
        Effect.annotateLogs({ server: name, peer })
      )
    }

    const serve = (socket: Socket.Socket): Effect.Effect<void, never, Exclude<R, Scope.Scope>> => {
      const connection: Connection = {
        id: counters.accepted,
        remoteAddress: socket.remoteAddress,
        draining,
        isDraining,
        signal
      }
      return options.handler(socket, connection).pipe(
        Effect.scoped,
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            counters.active--
            if (Exit.isSuccess(exit)) {
              counters.completed++
              return Effect.void
            }
            if (Exit.hasInterrupts(exit)) return Effect.void
            counters.failed++
            return logFailure(socket, exit.cause)
          })
        ),
        Effect.ensuring(socket.close),
        Effect.catchCause(() => Effect.void)
      ) as Effect.Effect<void, never, Exclude<R, Scope.Scope>>
    }

    // Connections of a `pump` handler on Node sockets: no fiber, only callbacks.
    const makePump = pumpOf(options.handler)
    const direct = new Map<DirectSocket, DirectConnection>()
    let directWaiters: Array<() => void> = []
    /** Once its socket is closed: forget it, free its slot, wake the drain when it was the last. */
    const directGone = (socket: DirectSocket, state: DirectConnection) => {
      if (state.gone) return
      state.gone = true
      direct.delete(socket)
      state.release()
      if (direct.size === 0 && directWaiters.length > 0) {
        const waiters = directWaiters
        directWaiters = []
        for (const wake of waiters) wake()
      }
    }
    const serveDirect = (
      socket: DirectSocket,
      make: (socket: Socket.Socket) => Socket.PumpHandler<unknown>,
      release: () => void
    ) => {
      const state: DirectConnection = { pump: undefined, ended: false, cut: false, gone: false, release }
      direct.set(socket, state)
      const ended = (exit: Exit.Exit<void, unknown>) => {
        if (state.ended) return
        state.ended = true
        // A cut connection was counted by the drain, like an interrupted fiber.
        if (!state.cut) {
          counters.active--
          if (Exit.isSuccess(exit)) counters.completed++
          else {
            counters.failed++
            runFork(logFailure(socket, exit.cause))
          }
        }
        socket.closeWith(() => directGone(socket, state))
      }
      let handler: Socket.PumpHandler<unknown>
      try {
        handler = make(socket)
      } catch (defect) {
        return ended(Exit.die(defect))
      }
      state.pump = socket.startPump(handler, undefined, ended)
    }

    const accept = (socket: Socket.Socket, release: () => void) =>
      Effect.sync(() => {
        counters.accepted++
        counters.active++
        if (makePump !== undefined && isNodeSocket(socket)) serveDirect(socket, makePump, release)
        else runConnection(Effect.ensuring(serve(socket), Effect.sync(release)))
      })
    const acceptLoop = Stream.runForEach(
      listener.accept,
      overflow === "queue"
        // Wait for a free slot before taking the next connection: meanwhile new
        // connections wait in the listener's bounded queue and the kernel backlog.
        ? (socket) => Effect.andThen(takeSlot, accept(socket, releaseSlot))
        : (socket) =>
          Effect.suspend(() => {
            if (counters.active < maxConnections) return accept(socket, noSlot)
            counters.refused++
            return socket.close
          })
    )

    // A pump handler on a Node listener: connections are taken in Node's
    // 'connection' callback, with no fiber and no stream step at all. The
    // rules are the same: a free slot serves it; past `maxConnections` it
    // waits in the listener's bounded queue (taken when a slot frees) or is
    // refused.
    const directListener = makePump !== undefined && isNodeListener(listener) ? listener : undefined
    let accepting = true
    const acceptDirect = (socket: DirectSocket): boolean => {
      if (overflow === "queue") {
        if (freeSlots === 0) return false
        freeSlots--
        counters.accepted++
        counters.active++
        serveDirect(socket, makePump!, releaseDirect)
        return true
      }
      // Refuse: as on the fiber path, the limit is on connections being served.
      if (counters.active < maxConnections) {
        counters.accepted++
        counters.active++
        serveDirect(socket, makePump!, noSlot)
        return true
      }
      counters.refused++
      socket.closeWith(noSlot)
      return true
    }
    const releaseDirect = () => {
      freeSlots++
      if (!accepting) return
      const next = directListener!.take()
      if (next !== undefined) acceptDirect(next)
    }

    // A daemon, interrupted by the drain below, so that accepting stops before
    // connections are waited for.
    const acceptFiber = directListener === undefined ? yield* Effect.forkDetach(acceptLoop) : undefined
    if (directListener !== undefined) {
      // Connections that arrived before this point are waiting in the queue.
      while (overflow === "refuse" || freeSlots > 0) {
        const next = directListener.take()
        if (next === undefined) break
        acceptDirect(next)
      }
      directListener.acceptor = acceptDirect
    }

    const directDrained = Effect.callback<void>((resume) => {
      if (direct.size === 0) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      directWaiters.push(wake)
      return Effect.sync(() => {
        directWaiters = directWaiters.filter((w) => w !== wake)
      })
    })
    // Cut the direct connections still open: each is closed (flushing within
    // its closeTimeout), as an interrupted fiber's socket is.
    const cutDirect = Effect.callback<void>((resume) => {
      if (direct.size === 0) return resume(Effect.void)
      let open = direct.size
      for (const [socket, state] of Array.from(direct)) {
        if (!state.ended && !state.cut) {
          state.cut = true
          counters.active--
        }
        state.pump?.detach()
        socket.closeWith(() => {
          directGone(socket, state)
          if (--open === 0) resume(Effect.void)
        })
      }
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* listener.stopAccepting
        accepting = false
        if (directListener !== undefined) directListener.acceptor = undefined
        if (acceptFiber !== undefined) yield* Fiber.interrupt(acceptFiber)
        yield* Deferred.succeed(drainSignal, void 0)
        drainController.abort()
        const open = (yield* FiberSet.size(connections)) + direct.size
        // Direct connections end the way the built-in byte servers do on drain: half-close.
        for (const state of Array.from(direct.values())) state.pump?.onAbort()
        // Finalizers run uninterruptibly; the wait must be interruptible for the timeout to cut it.
        const drained = yield* Effect.interruptible(
          Effect.andThen(FiberSet.awaitEmpty(connections), directDrained)
        ).pipe(Effect.timeoutOption(shutdownTimeout))
        const cut = drained._tag === "Some" ? 0 : (yield* FiberSet.size(connections)) + direct.size
        // All at once: FiberSet.clear interrupts one fiber after another, and each
        // cut connection's close may wait up to its closeTimeout for a flush.
        yield* Effect.zip(Fiber.interruptAll(Array.from(connections)), cutDirect, { concurrent: true })
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

/** A connection served by a pump, without a fiber. */
interface DirectConnection {
  pump: DirectPump | undefined
  /** Its pump reported how it ended. */
  ended: boolean
  /** Cut by the drain's timeout. */
  cut: boolean
  /** Its socket is closed and its slot released. */
  gone: boolean
  readonly release: () => void
}

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
  Layer.effect(Server, make(options))
