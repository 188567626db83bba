/**
 * One server on several cores: the same server runs in N worker processes
 * that share one address, and this process, their parent, starts them,
 * restarts one that dies (with backoff, logged, up to a limit), sums their
 * counters and metrics and drains them all when its scope closes (SIGTERM or SIGINT under
 * `NodeRuntime.runMain`).
 *
 * A worker is this same program started again by `node:cluster` (same script,
 * same arguments): code before {@link make} runs in every process, and in a
 * worker `make` runs the server and never returns. On Linux and FreeBSD each
 * worker binds the address itself with `reusePort` (SO_REUSEPORT: the kernel
 * spreads connections over the workers); elsewhere the cluster's primary
 * shares its listening socket (`sharing: "cluster"`). Several workers cannot
 * share a Unix socket file: such a server is refused (a defect naming the
 * path); run one process per socket file.
 *
 * ```ts
 * import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
 * import { Address, Workers } from "effect-wire"
 * import * as Echo from "effect-wire/servers/Echo"
 *
 * // Every worker runs Echo on port 9000; SIGTERM drains them all.
 * Workers.run(Echo.make({ address: Address.tcp("127.0.0.1", 9000) }), { workers: "auto" }).pipe(
 *   NodeRuntime.runMain
 * )
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import type * as Address from "./Address.js"
import { makeGroup, workerRole } from "./internal/workers.js"
import { runWorker } from "./internal/workersChild.js"
import type * as Server from "./Server.js"

/**
 * How the workers share the address. `"reusePort"`: each worker binds it
 * with SO_REUSEPORT and the kernel balances new connections (Linux,
 * FreeBSD; a port-0 address binds the port the first worker got).
 * `"cluster"`: node:cluster's primary (this process) binds it and hands
 * connections to the workers in turn. `"auto"` (the default): `"reusePort"`
 * where the platform has it, `"cluster"` elsewhere.
 *
 * ```ts
 * Workers.make(server, { workers: 4, sharing: "cluster" }) // round robin by the parent, on any platform
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Sharing = "auto" | "reusePort" | "cluster"

/**
 * Options of {@link make}, {@link layer} and {@link run}. A bad value is a
 * defect (Effect's `IllegalArgumentError`, naming the option).
 *
 * ```ts
 * const options: Workers.Options = { workers: "auto", restart: { maxRestarts: 10 }, shutdownTimeout: "40 seconds" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** How many worker processes: a positive integer, or `"auto"` for one per core (`os.availableParallelism()`). */
  readonly workers: number | "auto"
  /** How they share the address (default `"auto"`). */
  readonly sharing?: Sharing | undefined
  /**
   * A worker that exits while the group runs is replaced after a delay that
   * doubles with each failure in a row, from `initialDelay` (default 100
   * millis) up to `maxDelay` (default 10 seconds). A worker that stayed up
   * `stableAfter` (default 10 seconds) ends the run of failures. After
   * `maxRestarts` failures in a row (default 5) the group gives up: an error
   * is logged and {@link WorkerGroup}'s `failure` (and {@link run}) fails
   * with {@link WorkersGaveUp}.
   */
  readonly restart?: {
    readonly initialDelay?: Duration.Input | undefined
    readonly maxDelay?: Duration.Input | undefined
    readonly stableAfter?: Duration.Input | undefined
    readonly maxRestarts?: number | undefined
  } | undefined
  /** How long a worker may take to listen (default 30 seconds). */
  readonly startTimeout?: Duration.Input | undefined
  /**
   * How long the drain of every worker may take before the ones left are
   * killed (SIGKILL; counted in the report's `killed`). Default 15 seconds:
   * above the server's own default `shutdownTimeout` of 10.
   */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** How long {@link WorkerGroup}'s `stats` waits for each worker's answer (default 2 seconds). */
  readonly statsTimeout?: Duration.Input | undefined
  /** Signals this process passes on to every worker, e.g. `["SIGHUP"]` for servers that reload on it. */
  readonly forwardSignals?: ReadonlyArray<NodeJS.Signals> | undefined
}

/**
 * One worker's counters, as its server reports them (see {@link Stats}).
 *
 * ```ts
 * const busiest = (yield* group.stats).workers.reduce((a, b) => (b.active > a.active ? b : a))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface WorkerStats extends Server.Stats {
  /** The worker's slot, from 1 to `workers` (a replacement takes the slot of the one it replaces). */
  readonly worker: number
  readonly pid: number
}

/**
 * The group's counters: each field the sum over the workers that answered,
 * and each worker's own. A worker that does not answer within
 * `statsTimeout` (it is starting, or stuck) is left out of both.
 *
 * ```ts
 * const { accepted, workers } = yield* group.stats
 * for (const w of workers) yield* Effect.log(`worker ${w.worker} (pid ${w.pid}): ${w.accepted} of ${accepted}`)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Stats extends Server.Stats {
  readonly workers: ReadonlyArray<WorkerStats>
}

/**
 * How the group's drain went: `finished` and `cut` summed over the workers,
 * each worker's own report (`undefined` for one that did not report: it was
 * killed at `shutdownTimeout`, or had died), and how many were killed.
 *
 * ```ts
 * const { finished, cut, killed } = yield* group.shutdown
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ShutdownReport extends Server.ShutdownReport {
  readonly workers: ReadonlyArray<{
    readonly worker: number
    readonly pid: number
    readonly report: Server.ShutdownReport | undefined
  }>
  readonly killed: number
}

/**
 * A running group of workers. It is a `Server.RunningServer` (the shared
 * address, the workers' limits, summed `stats`, the summed drain report) with
 * what only a group has.
 *
 * ```ts
 * const group = yield* Workers.make(Echo.make({ address }), { workers: 2 })
 * const { accepted, workers } = yield* group.stats
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface WorkerGroup extends Server.RunningServer {
  /** Every address the server bound, in order (`address` is the first). */
  readonly addresses: ReadonlyArray<Address.Address>
  /** How the workers share them (`"auto"` resolved). */
  readonly sharing: "reusePort" | "cluster"
  /** The number of workers. */
  readonly size: number
  /** The live workers' process ids, by slot. */
  readonly pids: Effect.Effect<ReadonlyArray<number>>
  /** Summed counters (IPC: each worker is asked). */
  readonly stats: Effect.Effect<Stats>
  /**
   * The group's metrics as one `Metric` snapshot (IPC: each worker is asked
   * for its `MetricRegistry`'s): every series summed over the workers and
   * this process's own registry. Counters, gauges and frequencies add up,
   * histograms bucket by bucket, summaries their count and sum (not their
   * quantiles, which several processes' cannot give). A worker that does not
   * answer within `statsTimeout` adds the snapshot it gave last; one that
   * ended keeps its last counts in the sums (not its gauges), so that a
   * restart never makes a counter go backwards. Serve it to Prometheus with
   * `Observability.servePrometheus({ snapshot: group.metrics })`.
   */
  readonly metrics: Effect.Effect<ReadonlyArray<Metric.Metric.Snapshot>>
  /** Completes with the summed report once every worker has drained. */
  readonly shutdown: Effect.Effect<ShutdownReport>
  /** Fails once the group gives up restarting a worker; never completes otherwise. */
  readonly failure: Effect.Effect<never, WorkersGaveUp>
}

/**
 * A worker could not start its server: it failed to listen (`tag` is the
 * error's, e.g. `AddressInUse`, and `message` says why), died, or did not
 * listen within `startTimeout`. The group is not started (every other
 * worker is stopped).
 *
 * ```ts
 * Workers.make(server, { workers: 2 }).pipe(
 *   Effect.catchTag("WorkerStartFailed", (e) => Console.error(e.message))
 * )
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class WorkerStartFailed extends Data.TaggedError("WorkerStartFailed")<{
  readonly worker: number
  readonly pid: number | undefined
  /** The tag of the worker's own error (`AddressInUse`, …), `"Defect"`, `"Exited"` or `"StartTimeout"`. */
  readonly reason: string
  readonly detail: string
}> {
  override get message(): string {
    return `worker ${this.worker}${this.pid === undefined ? "" : ` (pid ${this.pid})`} did not start its server: ${this.detail}`
  }
}

/**
 * The group stopped replacing a worker: it failed `restarts` times in a row
 * (each within `stableAfter` of its start). The server keeps failing in its
 * workers; their log says why.
 *
 * ```ts
 * Workers.run(server, { workers: 2 }).pipe(Effect.catchTag("WorkersGaveUp", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class WorkersGaveUp extends Data.TaggedError("WorkersGaveUp")<{
  readonly worker: number
  readonly restarts: number
  /** How the last one ended: `exit code 1`, `signal SIGKILL`, or why it did not start. */
  readonly lastExit: string
}> {
  override get message(): string {
    return `worker ${this.worker} failed ${this.restarts} times in a row (last: ${this.lastExit}); ` +
      "the group gave up restarting it: see the workers' log, or raise restart.maxRestarts"
  }
}

/**
 * The group a {@link layer} provides.
 *
 * ```ts
 * const stats = yield* Effect.flatMap(Workers.Workers, (group) => group.stats)
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class Workers extends Context.Service<Workers, WorkerGroup>()("effect-wire/Workers") {}

/**
 * Whether this process is a worker of a group (started by {@link make} in
 * its parent): code that must run once, such as printing where the server
 * listens, runs where it is false.
 *
 * ```ts
 * if (!Workers.isWorker()) console.log("starting 4 workers")
 * ```
 *
 * @since 0.2.0
 * @category running
 */
export const isWorker = (): boolean => workerRole() !== undefined

/**
 * Run `server` (a scoped Effect that starts one, such as `Server.make` or
 * `Echo.make`) in worker processes sharing its address, in the current
 * scope; closing the scope drains every worker and completes `shutdown` with
 * the summed report. In a worker process it runs the server instead, until
 * its parent tells it to drain (or goes away), and never returns: the
 * program is then interrupted, so that its finalizers run and the worker
 * exits.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const group = yield* Workers.make(Server.make({ address: Address.tcp("127.0.0.1", 0), handler }), {
 *     workers: 2
 *   })
 *   yield* Console.log(`listening tcp ${Address.format(group.address)}`)
 *   return yield* group.failure
 * }))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <E, R>(
  server: Effect.Effect<Server.RunningServer, E, R>,
  options: Options
): Effect.Effect<WorkerGroup, WorkerStartFailed, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.suspend(() => {
    const role = workerRole()
    return role === undefined
      ? makeGroup(options, {
        make: (...args) => new WorkerStartFailed(...args),
        gaveUp: (...args) => new WorkersGaveUp(...args)
      })
      : Effect.andThen(runWorker(server as Effect.Effect<Server.RunningServer, E, Scope.Scope>, role), Effect.interrupt)
  }) as never

/**
 * The group as a Layer providing {@link Workers}: building it starts the
 * workers, releasing it drains them.
 *
 * ```ts
 * const WorkersLive = Workers.layer(Echo.make({ address: Address.tcp("127.0.0.1", 9000) }), { workers: 4 })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <E, R>(
  server: Effect.Effect<Server.RunningServer, E, R>,
  options: Options
): Layer.Layer<Workers, WorkerStartFailed, Exclude<R, Scope.Scope>> => Layer.effect(Workers, make(server, options))

/**
 * Run the group until interrupted (SIGINT/SIGTERM under
 * `NodeRuntime.runMain`), then drain every worker; it fails if a worker
 * cannot start or the group gives up restarting one. In a worker process it
 * serves until the parent says to drain, then succeeds.
 *
 * ```ts
 * Workers.run(Echo.make({ address: Address.tcp("127.0.0.1", 9000) }), { workers: "auto" }).pipe(
 *   NodeRuntime.runMain
 * )
 * ```
 *
 * @since 0.2.0
 * @category running
 */
export const run = <E, R>(
  server: Effect.Effect<Server.RunningServer, E, R>,
  options: Options
): Effect.Effect<void, WorkerStartFailed | WorkersGaveUp, Exclude<R, Scope.Scope>> =>
  Effect.suspend(() => {
    const role = workerRole()
    return role === undefined
      ? Effect.scoped(Effect.flatMap(make(server, options), (group) => group.failure))
      : runWorker(server as Effect.Effect<Server.RunningServer, E, Scope.Scope>, role)
  }) as never
