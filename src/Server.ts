/**
 * A server is a Layer: it listens when the Layer is built (failing with the
 * typed `ListenError`), runs every connection in its own supervised fiber (or,
 * for a {@link pump} handler on a Node socket, in Node's callbacks with no
 * fiber at all), keeps the number of connections bounded (and says so in
 * its log when the bound is reached), and on release stops accepting, lets
 * open connections finish for `shutdownTimeout`, then interrupts the rest.
 * The server itself is transport-neutral: it serves any `Socket.Listener`
 * (node:net's, `MemorySocket`'s).
 *
 * Its log lines go to stderr with Effect's built-in loggers (a program's
 * stdout stays its own; a logger of your own is used as it is). A
 * connection that fails is one warning naming the peer; the endings that
 * are part of serving (the peer reset, an idle or frame timeout, a refusal
 * at `maxConnections`) are debug lines, counted and summarised at info at
 * most once a minute (see {@link Options}'s `logLevel`).
 *
 * Its options are given in code, so an invalid one is a defect (Effect's
 * `IllegalArgumentError`, naming the option), not a typed error: a count or a
 * duration is above 0, and 0 is refused, never read as "no limit";
 * `Duration.infinity` lifts the idle timeout (see {@link Options}).
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
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { setMaxListeners } from "node:events"
import * as Address from "./Address.js"
import { callbackServeOf, ConnectionRuntime } from "./internal/callbackServe.js"
import { ConnectionSlots, SUMMARY_INTERVAL_MS } from "./internal/connectionSlots.js"
import * as FiberGroup from "./internal/fiberGroup.js"
import { serverCapabilityOf } from "./internal/listenerCapability.js"
import { joinBudget, MemoryBudget } from "./internal/memoryBudget.js"
import { metersOf } from "./internal/metrics.js"
import { CloseInCallbacks, closesInCallbacks } from "./internal/socketContract.js"
import { spanOf } from "./internal/tracing.js"
import * as Check from "./internal/options.js"
import type { ListenError, ReadError, WriteError } from "./NetError.js"
import * as Socket from "./Socket.js"
import type * as ProxyProtocol from "./ProxyProtocol.js"
import type * as Tls from "./Tls.js"

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
  /**
   * The server's `writeTimeout` (`Duration.infinity`: none). A Node socket
   * applies it by itself; {@link pump} handlers apply it on other sockets
   * (`MemorySocket`, a wrapper), on Effect's clock.
   */
  readonly writeTimeout: Duration.Duration
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
    connection?: Partial<Pick<Connection, "signal" | "writeTimeout">> | undefined
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
    (socket: Socket.Socket, connection?: Partial<Pick<Connection, "signal" | "writeTimeout">> | undefined) =>
      Effect.suspend(() =>
        Socket.pump(socket, make(socket), { signal: connection?.signal, writeTimeout: connection?.writeTimeout })
      ),
    { [PumpTypeId]: make }
  )

const pumpOf = (handler: unknown): ((socket: Socket.Socket) => Socket.PumpHandler<unknown>) | undefined =>
  typeof handler === "function" && PumpTypeId in handler ? (handler as PumpedHandler<unknown>)[PumpTypeId] : undefined

/**
 * What to do with a connection when `maxConnections` are already open:
 * `"queue"` leaves it waiting in the listener's bounded accept queue
 * (`listen.acceptQueueSize`, default 1024) until a slot frees; once that
 * queue is full too, further connections are closed at once and counted in
 * `refused`. `"refuse"` closes it at once (counted in `refused`). Either way
 * it is never silent: the first time, and then at most once every 10
 * seconds while it goes on, a warning names the limit, the option that
 * raises it, and how many connections waited or were refused since the
 * last warning.
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
  /**
   * At most this many connections are served at once (default 1024: a bound
   * on one process's memory and file descriptors that a small server never
   * reaches; raise it for many long-lived connections). Reaching it is logged
   * (see {@link Overflow}). A positive integer: 0 is refused, there is no
   * "unlimited".
   */
  readonly maxConnections?: number | undefined
  /** What happens past `maxConnections` (default `"queue"`). */
  readonly overflow?: Overflow | undefined
  /**
   * A connection with no traffic either way for this long fails with
   * `IdleTimeout`. Above 0; `Duration.infinity`, like leaving it out, means
   * none (the default). 0 is refused.
   */
  readonly idleTimeout?: Duration.Input | undefined
  /**
   * A connection whose peer leaves bytes we wrote waiting this long (it
   * stopped reading, or reads far too slowly) fails with `WriteTimeout`, a
   * debug line like an idle timeout. Default 30 seconds: far longer than a
   * live client pauses between reads, short enough that a peer that never
   * reads does not hold its connection slot and the output waiting for it
   * for long (each such peer holds Node's buffer, 16 KiB and the last write,
   * besides the kernel's). Checked once per timeout, so a cut comes between
   * once and twice it. Above 0; `Duration.infinity` means none; 0 is
   * refused. With {@link fromListener}, a Node listener keeps the
   * `writeTimeout` it was made with (none unless given), and the option
   * applies to {@link pump} handlers on other sockets.
   */
  readonly writeTimeout?: Duration.Input | undefined
  /**
   * The most memory, in bytes, the server's connections may hold at once
   * (default: no budget): input read but not yet framed or pulled (a
   * decoder's unfinished frame, a socket's read queue) and output written
   * that the peers have not taken (Node's write buffers). Past it every
   * connection stops reading (backpressure, as for a full read buffer);
   * if it is still over 100 ms later, the connections holding the most are
   * closed with `MemoryBudgetExceeded` until it is under 90 % of the budget,
   * then reading resumes. Each cut is counted (in `Stats.failed`, and in the
   * summary of expected endings) and logged at debug, and a warning names
   * the budget (at most every 10 seconds). Node sockets count (both paths: a
   * pump handler's decoder when it says what it holds, as the built-in
   * byte servers' do, and an Effect handler's read queue); memory the
   * handler keeps elsewhere is its own. A positive integer; 0 is refused.
   */
  readonly memoryBudget?: number | undefined
  /**
   * How long open connections may finish after shutdown begins (default 10
   * seconds). Above 0 and finite: a drain must end.
   */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Name used in log lines (default: the address). */
  readonly name?: string | undefined
  /**
   * The least severe of the server's own log lines to write (default: the
   * program's minimum, `Info` unless changed); the handler's lines are not
   * affected. `"Debug"` adds a line per connection that ended early in an
   * expected way (the peer reset it, an idle or frame timeout, a refusal at
   * `maxConnections`); at `"Info"` they show only as a summary, at most once
   * a minute (`N connections ended early in the last minute: 12
   * ConnectionReset, 3 IdleTimeout`); `"Warn"` keeps the failures and the
   * limit warnings; `"None"` silences the server.
   */
  readonly logLevel?: LogLevel.LogLevel | undefined
  /** Further socket options for the listener and accepted sockets. */
  readonly listen?: Omit<Socket.ListenOptions, "idleTimeout" | "writeTimeout"> | undefined
  /**
   * Speak TLS (see `Tls.ServerOptions`): a connection reaches the handler
   * (and counts against `maxConnections`) once its handshake succeeded; a
   * failed one is logged with its typed reason (a client of ours that cannot
   * connect as a warning, a port scanner's noise at debug) and never disturbs
   * the listener. To swap certificates while the server runs, give
   * `credentials` from `Tls.serverCredentials` and `reload` them.
   */
  readonly tls?: Tls.ServerOptions | undefined
  /**
   * Behind a load balancer that speaks the PROXY protocol (HAProxy's
   * `send-proxy`/`send-proxy-v2`): every connection's header is read before
   * the handler runs, whatever the handler, and `remoteAddress` (the
   * connection's and the socket's) is the client's the header names; a v2
   * `LOCAL` header (a health check) keeps the real peer. A peer not in
   * `trustedSources`, or a malformed, oversized or slow header, closes the
   * connection before it takes a slot (counted by
   * `ProxyProtocol.headerFailures`, logged); the server goes on. See
   * `ProxyProtocol.ServerOptions` and docs/proxy-protocol.md.
   */
  readonly proxyProtocol?: ProxyProtocol.ServerOptions | undefined
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
  /**
   * A TLS server's handshakes that failed (each logged with its typed reason;
   * those connections never reached the handler nor `accepted`). Absent on a
   * plaintext server.
   */
  readonly tlsHandshakesFailed?: number | undefined
  /** The same by the tag of their error, e.g. `{ NotTls: 3, HandshakeTimeout: 1 }`. Absent on a plaintext server. */
  readonly tlsHandshakeFailures?: Readonly<Record<string, number>> | undefined
  /**
   * With `proxyProtocol`: connections closed for their PROXY header, by the
   * tag of their error (`{ UntrustedProxySource: 2 }`; they never reached the
   * handler nor `accepted`). Absent without `proxyProtocol`.
   */
  readonly proxyHeaderFailures?: Readonly<Record<string, number>> | undefined
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
 * The limits a running server applies, after defaults: what `effect-wire
 * serve` prints at start.
 *
 * ```ts
 * const { maxConnections, idleTimeout } = (yield* Server.Server).limits
 * console.log(`up to ${maxConnections} connections, idle timeout ${Duration.format(idleTimeout)}`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Limits {
  readonly maxConnections: number
  readonly overflow: Overflow
  /**
   * `Duration.infinity`: none. {@link fromListener} sets none: a listener of
   * your own keeps whatever idle timeout it was made with.
   */
  readonly idleTimeout: Duration.Duration
  readonly shutdownTimeout: Duration.Duration
}

/**
 * A running server: its bound address, its limits and its counters.
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
  /** The limits it runs with. */
  readonly limits: Limits
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
const DEFAULT_WRITE_TIMEOUT = Duration.seconds(30)

/** The limits of the options after defaults, with those `Limits` does not report. */
interface Checked extends Limits {
  /** `Duration.infinity`: none. */
  readonly writeTimeout: Duration.Duration
  /** In bytes; undefined: no budget. */
  readonly memoryBudget: number | undefined
}

/** The limits of the options after defaults; an invalid one is a defect naming it. */
const limitsOf = (
  options: Pick<
    Options<unknown, unknown>,
    "maxConnections" | "overflow" | "idleTimeout" | "writeTimeout" | "memoryBudget" | "shutdownTimeout"
  >,
  defaultWriteTimeout: Duration.Input
): Effect.Effect<Checked> =>
  Effect.suspend(() => {
    const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    const overflow = options.overflow ?? "queue"
    const idleTimeout = options.idleTimeout ?? Duration.infinity
    const writeTimeout = options.writeTimeout ?? defaultWriteTimeout
    const memoryBudget = options.memoryBudget
    const shutdownTimeout = options.shutdownTimeout ?? DEFAULT_SHUTDOWN_TIMEOUT
    const invalid = (name: string, reason: Check.Reason) =>
      reason === undefined ? undefined : Check.defect("Server", name, reason)
    const defect = invalid("maxConnections", Check.positiveInt(maxConnections)) ??
      invalid("overflow", Check.oneOf(overflow, ["queue", "refuse"])) ??
      invalid("idleTimeout", Check.duration(idleTimeout, { never: true })) ??
      invalid("writeTimeout", Check.duration(writeTimeout, { never: true })) ??
      (memoryBudget === undefined ? undefined : invalid("memoryBudget", Check.positiveInt(memoryBudget))) ??
      invalid(
        "shutdownTimeout",
        Check.duration(shutdownTimeout, { never: false, finite: "a drain must end, even with a client that never does" })
      )
    if (defect !== undefined) return Effect.die(defect)
    return Effect.succeed({
      maxConnections,
      overflow,
      idleTimeout: Duration.fromInputUnsafe(idleTimeout),
      writeTimeout: Duration.fromInputUnsafe(writeTimeout),
      memoryBudget,
      shutdownTimeout: Duration.fromInputUnsafe(shutdownTimeout)
    })
  })

/** The `logLevel` option, checked: an invalid one is a defect naming it. */
const logLevelOf = (logLevel: unknown): Effect.Effect<LogLevel.LogLevel | undefined> => {
  if (logLevel === undefined) return Effect.succeed(undefined)
  const reason = Check.oneOf(logLevel, LogLevel.values)
  return reason === undefined
    ? Effect.succeed(logLevel as LogLevel.LogLevel)
    : Effect.die(Check.defect("Server", "logLevel", reason))
}

/**
 * Options of {@link fromListener}: a server on a listener you already have.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenerOptions<E, R> = Omit<Options<E, R>, "address" | "idleTimeout" | "listen" | "tls" | "proxyProtocol">

/**
 * Start a server in the current scope: listen, accept, serve each connection
 * in its own fiber. Closing the scope drains it (see the module doc). An
 * invalid option is a defect, found before anything listens.
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
  Effect.flatMap(limitsOf(options, DEFAULT_WRITE_TIMEOUT), (limits) =>
    Effect.flatMap(
      Socket.listen(options.address, {
        ...options.listen,
        tls: options.tls ?? options.listen?.tls,
        proxyProtocol: options.proxyProtocol ?? options.listen?.proxyProtocol,
        idleTimeout: options.idleTimeout,
        writeTimeout: Duration.isFinite(limits.writeTimeout) ? limits.writeTimeout : undefined
      }),
      (listener) => run(listener, options, limits)
    ))

/**
 * Serve the connections of an existing {@link Socket.Listener} — a real one, or
 * `MemorySocket.listen()` to test a whole server without the network. The
 * listener keeps its own socket options (an idle timeout included); an
 * invalid option is a defect.
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
  Effect.flatMap(
    limitsOf({
      maxConnections: options.maxConnections,
      overflow: options.overflow,
      writeTimeout: options.writeTimeout,
      memoryBudget: options.memoryBudget,
      shutdownTimeout: options.shutdownTimeout
    }, Duration.infinity),
    (limits) => run(listener, options, limits)
  )

/** Serve a listener's connections under limits already checked: what `make` and `fromListener` share. */
const run = <E, R>(
  listener: Socket.Listener,
  options: ListenerOptions<E, R>,
  checked: Checked
): Effect.Effect<RunningServer, never, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    const { maxConnections, overflow, shutdownTimeout, writeTimeout, memoryBudget, ...rest } = checked
    const limits: Limits = { maxConnections, overflow, idleTimeout: rest.idleTimeout, shutdownTimeout }
    const logLevel = yield* logLevelOf(options.logLevel)
    const name = options.name ?? Address.format(listener.address)
    // For logging from Node's callbacks, with the caller's logger.
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    // Slots and counters for every connection, however it runs, and the server's log lines.
    const slots = new ConnectionSlots(
      maxConnections,
      overflow,
      name,
      (effect) => void runFork(effect),
      yield* Clock.clockWith(Effect.succeed),
      logLevel
    )
    // The memory budget, if any, counts every Node socket served (see memoryBudget.ts).
    const budget = memoryBudget === undefined ? undefined : new MemoryBudget(memoryBudget, {
      paused: (used) => slots.budgetPaused(used),
      cut: (n, used) => slots.budgetCut(n, used),
      resumed: () => slots.budgetResumed()
    })
    slots.budget = budget
    slots.meter = metersOf(yield* Effect.context<never>())?.server(listener.address)
    const drainSignal = yield* Deferred.make<void>()
    const shutdownReport = yield* Deferred.make<ShutdownReport>()
    // One fiber per connection, supervised here: a connection's failure ends only that fiber.
    const connections = yield* FiberGroup.make<Exclude<R, Scope.Scope>>()
    // What a handler served in Node's callbacks runs its Effects with (see internal/callbackServe.ts).
    const services = yield* Effect.context<Exclude<R, Scope.Scope>>()
    const supervise = (fiber: Fiber.Fiber<unknown, unknown>) => connections.add(fiber)

    // The same two effects and the same signal serve every connection.
    const draining = Deferred.await(drainSignal)
    const isDraining = Deferred.isDone(drainSignal)
    const drainController = new AbortController()
    const signal = drainController.signal
    // Every connection's handler may listen to it; that is no leak.
    setMaxListeners(0, signal)

    // The fiber ends as the handler did; nothing reads a connection fiber's exit (FiberGroup keeps none).
    const serve = (socket: Socket.Socket, id: number): Effect.Effect<void, E, Exclude<R, Scope.Scope>> => {
      joinBudget(socket, budget)
      const connection: Connection = {
        id,
        remoteAddress: socket.remoteAddress,
        draining,
        isDraining,
        signal,
        writeTimeout
      }
      // The handler's spans are children of the connection's, when it has one (internal/tracing.ts).
      const span = spanOf(socket)
      let handled = Effect.scoped(options.handler(socket, connection))
      if (span !== undefined) handled = Effect.withParentSpan(handled, span)
      // One finalizer does the whole ending (an idle connection's fiber keeps every frame it waits in).
      return Effect.onExit(handled, (exit) => end(socket, exit)) as Effect.Effect<void, E, Exclude<R, Scope.Scope>>
    }
    const releaseSlot = Effect.sync(() => slots.gone())
    /** Close the socket, then free its slot (in the socket's own callbacks when it can). */
    const closeAndRelease = (socket: Socket.Socket): Effect.Effect<void> =>
      closesInCallbacks(socket)
        ? Effect.callback<void>((resume) => {
          const cut = socket[CloseInCallbacks](() => {
            slots.gone()
            resume(Effect.void)
          })
          return cut === undefined ? undefined : Effect.sync(() => {
            cut()
            slots.gone()
          })
        })
        : Effect.ensuring(socket.close, releaseSlot)
    /** A connection's handler ended: count it, log a failure, close the socket, free the slot. */
    const end = (socket: Socket.Socket, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      const failure = slots.ended(exit, socket)
      const close = closeAndRelease(socket)
      return failure === undefined ? close : Effect.ensuring(slots.logEnding(socket, failure), close)
    }
    const start = (socket: Socket.Socket) => Effect.sync(() => void connections.run(serve(socket, slots.admit())))

    // Waits until a slot is free, for the connection in hand: meanwhile new
    // connections wait in the listener's bounded queue and the kernel backlog.
    const freeSlot = Effect.callback<void>((resume) => {
      if (slots.hasRoom()) return resume(Effect.void)
      slots.onFree = () => {
        if (!slots.hasRoom()) return
        slots.onFree = undefined
        resume(Effect.void)
      }
      return Effect.sync(() => {
        slots.onFree = undefined
      })
    })
    const acceptLoop = Stream.runForEach(listener.accept, (socket) =>
      Effect.suspend(() => {
        if (slots.hasRoom()) return start(socket)
        slots.full()
        return overflow === "queue" ? Effect.andThen(freeSlot, start(socket)) : socket.close
      }))

    // A listener that can tell of its accept queue's refusals, and that can
    // serve a pump handler's connections in its own callbacks (node:net's):
    // then no fiber and no stream step is involved at all, under the same
    // slots and counters.
    const capability = serverCapabilityOf(listener)
    capability?.reportRefusals(slots)
    const makePump = pumpOf(options.handler)
    const inCallbacks = makePump === undefined ? callbackServeOf(options.handler) : undefined
    const pumps = capability === undefined
      ? undefined
      : makePump !== undefined
      ? capability.servePumps(makePump, slots)
      : inCallbacks !== undefined
      ? capability.servePumps(inCallbacks as never, slots, () => new ConnectionRuntime(signal, services, supervise))
      : undefined
    // Any other handler: its connections are still taken in the listener's
    // callbacks (no accept stream step per connection), each in its own fiber.
    const taken = pumps === undefined && capability !== undefined
      ? capability.acceptInCallbacks((socket) => void connections.run(serve(socket, slots.admit())), slots)
      : undefined
    // Elsewhere, a daemon, interrupted by the drain below, so that accepting
    // stops before connections are waited for.
    const acceptFiber = pumps === undefined && taken === undefined ? yield* Effect.forkDetach(acceptLoop) : undefined
    // The summary of the expected endings, every minute while there are any.
    const summaries = yield* Effect.forkDetach(
      Effect.forever(Effect.andThen(Effect.sleep(SUMMARY_INTERVAL_MS), slots.summarise))
    )

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* listener.stopAccepting
        pumps?.stop()
        taken?.stop()
        if (acceptFiber !== undefined) yield* Fiber.interrupt(acceptFiber)
        yield* Deferred.succeed(drainSignal, void 0)
        slots.draining = true
        drainController.abort()
        const open = slots.open
        pumps?.endAll()
        // Finalizers run uninterruptibly; the wait must be interruptible for the timeout to cut it.
        const drained = yield* Effect.interruptible(slots.awaitEmpty).pipe(Effect.timeoutOption(shutdownTimeout))
        const cut = drained._tag === "Some" ? 0 : slots.open
        // All at once: each cut connection's close may wait up to its closeTimeout for a flush.
        yield* Effect.zip(connections.close, pumps?.cut ?? Effect.void, { concurrent: true })
        const report: ShutdownReport = { finished: open - cut, cut }
        budget?.stop()
        yield* Fiber.interrupt(summaries)
        yield* slots.summarise
        yield* Deferred.succeed(shutdownReport, report)
        if (open > 0) {
          yield* slots.logged(
            Effect.logInfo(`${name}: shut down; ${report.finished} connection(s) finished, ${report.cut} cut`)
          )
        }
      })
    )

    return {
      address: listener.address,
      limits,
      stats: Effect.map(listener.refused, (queueRefused): Stats => {
        const stats = {
          accepted: slots.accepted,
          active: slots.active,
          completed: slots.completed,
          failed: slots.failed,
          refused: slots.refused + queueRefused
        }
        const proxy = capability?.proxyHeaderFailures()
        if (proxy !== undefined) Object.assign(stats, { proxyHeaderFailures: Object.fromEntries(proxy) })
        const tls = capability?.tlsHandshakeFailures()
        if (tls === undefined) return stats
        let total = 0
        for (const n of tls.values()) total += n
        return { ...stats, tlsHandshakesFailed: total, tlsHandshakeFailures: Object.fromEntries(tls) }
      }),
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
  Layer.effect(Server, make(options))
