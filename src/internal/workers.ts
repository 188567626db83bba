/**
 * The parent side of `Workers`: worker processes started with node:cluster
 * (the same script and arguments, plus the role in the environment), the
 * messages they exchange with this process, restarts with backoff, summed
 * stats and the drain of the whole group.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as References from "effect/References"
import type * as Scope from "effect/Scope"
import Cluster from "node:cluster"
import type { Worker as ClusterWorker } from "node:cluster"
import * as Os from "node:os"
import * as Address from "../Address.js"
import type * as Server from "../Server.js"
import type * as Workers from "../Workers.js"
import * as Check from "./options.js"
import { decodeSnapshot, type Encoded, mergeSnapshots } from "./workersMetrics.js"

export { ROLE_ENV, type Role, workerRole } from "./workersListen.js"
import { ROLE_ENV, type Role } from "./workersListen.js"

/** Milliseconds, `null` for none (JSON has no Infinity). */
type Millis = number | null

/** From a worker to its parent. */
export type FromWorker =
  | {
    readonly type: "ready"
    readonly addresses: ReadonlyArray<string>
    readonly limits: {
      readonly maxConnections: number
      readonly overflow: Server.Overflow
      readonly idleTimeout: Millis
      readonly shutdownTimeout: Millis
    }
  }
  | { readonly type: "failed"; readonly reason: string; readonly detail: string }
  | { readonly type: "stats"; readonly id: number; readonly stats: Server.Stats }
  | { readonly type: "metrics"; readonly id: number; readonly snapshot: Encoded }
  | { readonly type: "drained"; readonly report: Server.ShutdownReport }

/** From the parent to a worker. */
export type ToWorker =
  | { readonly type: "stats"; readonly id: number }
  | { readonly type: "metrics"; readonly id: number }
  | { readonly type: "drain" }

/** Every message of ours is wrapped in this key, so that a program's own IPC messages pass by. */
export const KEY = "effect-wire/Workers"

export const toMillis = (d: Duration.Duration): Millis => Duration.isFinite(d) ? Duration.toMillis(d) : null
const fromMillis = (ms: Millis): Duration.Duration => ms === null ? Duration.infinity : Duration.millis(ms)

/** The error constructors of the public module (imported here as types only). */
export interface Errors {
  readonly make: (args: ConstructorParameters<typeof Workers.WorkerStartFailed>[0]) => Workers.WorkerStartFailed
  readonly gaveUp: (args: ConstructorParameters<typeof Workers.WorkersGaveUp>[0]) => Workers.WorkersGaveUp
}

interface Config {
  readonly size: number
  readonly reusePort: boolean
  readonly initialDelay: number
  readonly maxDelay: number
  readonly stableAfter: number
  readonly maxRestarts: number
  readonly startTimeout: number
  readonly shutdownTimeout: number
  readonly statsTimeout: number
  readonly forwardSignals: ReadonlyArray<NodeJS.Signals>
}

const REUSE_PORT_PLATFORMS: ReadonlyArray<string> = ["linux", "freebsd"]

const configOf = (options: Workers.Options): Config => {
  const defect = (name: string, reason: Check.Reason) => {
    if (reason !== undefined) throw Check.defect("Workers", name, reason)
  }
  if (typeof options !== "object" || options === null) throw Check.defect("Workers", "options", "must be an object")
  const size = options.workers === "auto" ? Os.availableParallelism() : options.workers
  if (options.workers !== "auto") defect("workers", Check.positiveInt(options.workers, 1024))
  const sharing = options.sharing ?? "auto"
  defect("sharing", Check.oneOf(sharing, ["auto", "reusePort", "cluster"]))
  const millis = (name: string, value: Duration.Input | undefined, fallback: Duration.Input) => {
    const v = value ?? fallback
    defect(name, Check.duration(v, { never: false }))
    return Duration.toMillis(Duration.fromInputUnsafe(v))
  }
  const restart = options.restart ?? {}
  const maxRestarts = restart.maxRestarts ?? 5
  defect("restart.maxRestarts", Check.positiveInt(maxRestarts))
  const forwardSignals = options.forwardSignals ?? []
  if (!Array.isArray(forwardSignals)) throw Check.defect("Workers", "forwardSignals", "must be an array of signal names")
  for (const signal of forwardSignals) {
    if (!(signal in Os.constants.signals) || signal === "SIGKILL" || signal === "SIGSTOP") {
      throw Check.defect("Workers", "forwardSignals", `must name signals a process can handle, got ${String(signal)}`)
    }
  }
  return {
    size,
    reusePort: sharing === "reusePort" || (sharing === "auto" && REUSE_PORT_PLATFORMS.includes(process.platform)),
    initialDelay: millis("restart.initialDelay", restart.initialDelay, "100 millis"),
    maxDelay: millis("restart.maxDelay", restart.maxDelay, "10 seconds"),
    stableAfter: millis("restart.stableAfter", restart.stableAfter, "10 seconds"),
    maxRestarts,
    startTimeout: millis("startTimeout", options.startTimeout, "30 seconds"),
    shutdownTimeout: millis("shutdownTimeout", options.shutdownTimeout, "15 seconds"),
    statsTimeout: millis("statsTimeout", options.statsTimeout, "2 seconds"),
    forwardSignals
  }
}

/** Why a worker did not start, as the public error's fields. */
interface StartFailure {
  readonly reason: string
  readonly detail: string
}

/** One worker process and what the parent knows of it. */
interface Member {
  readonly slot: number
  readonly process: ClusterWorker
  readonly pid: number
  readyAt: number | undefined
  report: Server.ShutdownReport | undefined
  /** Its latest metric snapshot: what it adds to the group's sums if it stops answering, or dies. */
  metrics: ReadonlyArray<Metric.Metric.Snapshot> | undefined
  exited: boolean
  /** Resolves when it listens, or with why it did not start. */
  onStart: ((failure: StartFailure | undefined) => void) | undefined
  readonly onExit: Array<() => void>
}

/** How a worker ended, in words: `exit code 1`, `signal SIGKILL`. */
const describeExit = (code: number | null, signal: string | null): string =>
  signal !== null ? `signal ${signal}` : `exit code ${code}`

let groups = 0

/** @internal */
export const makeGroup = (
  options: Workers.Options,
  errors: Errors
): Effect.Effect<Workers.WorkerGroup, Workers.WorkerStartFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* Effect.try({ try: () => configOf(options), catch: (e) => e }).pipe(Effect.orDie)
    if (groups > 0) {
      return yield* Effect.die(
        Check.defect("Workers", "make", "runs one group per process: its workers are this program started again")
      )
    }
    if (!Cluster.isPrimary) {
      return yield* Effect.die(
        Check.defect("Workers", "make", "cannot start workers from a node:cluster worker that is not one of ours")
      )
    }
    groups++
    yield* Effect.addFinalizer(() => Effect.sync(() => void groups--))
    const logLevel = yield* References.MinimumLogLevel
    const context = yield* Effect.context<never>()
    const runFork = Effect.runForkWith(context)
    const log = (level: "Info" | "Warn" | "Error", message: string) =>
      void runFork(
        (level === "Info" ? Effect.logInfo(message) : level === "Warn" ? Effect.logWarning(message) : Effect.logError(
          message
        )).pipe(Effect.annotateLogs({ workers: config.size }))
      )
    const gaveUp = yield* Deferred.make<never, Workers.WorkersGaveUp>()
    const shutdownReport = yield* Deferred.make<Workers.ShutdownReport>()

    const slots: Array<Member | undefined> = new Array(config.size).fill(undefined)
    const failures: Array<number> = new Array(config.size).fill(0)
    const timers = new Set<ReturnType<typeof setTimeout>>()
    let ports: ReadonlyArray<number> = []
    let first: { addresses: ReadonlyArray<Address.Address>; limits: Server.Limits } | undefined
    let stopping = false
    /** Set once every worker listens: a group that never started has nothing to report. */
    let started = false
    let nextStatsId = 0
    const statsWaiters = new Map<number, (stats: Server.Stats | undefined) => void>()
    const metricsWaiters = new Map<number, () => void>()
    /** The counts of the workers that ended (their last snapshots, gauges at zero): they stay in the sums. */
    let retired: ReadonlyArray<Metric.Metric.Snapshot> = []

    const send = (member: Member, message: ToWorker) => {
      if (member.exited || !member.process.isConnected()) return false
      try {
        member.process.send({ [KEY]: message })
        return true
      } catch {
        return false
      }
    }

    /** Start a worker in `slot`; `onStart` learns whether it listens. */
    const spawn = (slot: number, onStart: (member: Member, failure: StartFailure | undefined) => void) => {
      const worker: Role = { worker: slot + 1, reusePort: config.reusePort, ports, shared: config.size > 1, logLevel }
      const child = Cluster.fork({ [ROLE_ENV]: JSON.stringify(worker) })
      const member: Member = {
        slot,
        process: child,
        pid: child.process.pid ?? -1,
        readyAt: undefined,
        report: undefined,
        metrics: undefined,
        exited: false,
        onStart: undefined,
        onExit: []
      }
      slots[slot] = member
      const timer = setTimeout(() => {
        timers.delete(timer)
        member.onStart?.({
          reason: "StartTimeout",
          detail: `it did not listen within ${config.startTimeout} ms (startTimeout)`
        })
        child.process.kill("SIGKILL")
      }, config.startTimeout)
      timers.add(timer)
      member.onStart = (failure) => {
        member.onStart = undefined
        clearTimeout(timer)
        timers.delete(timer)
        onStart(member, failure)
      }
      child.on("message", (raw: unknown) => {
        if (typeof raw !== "object" || raw === null || !(KEY in raw)) return
        const message = (raw as Record<string, FromWorker>)[KEY]!
        switch (message.type) {
          case "ready": {
            member.readyAt = Date.now()
            if (first === undefined) {
              first = {
                addresses: message.addresses.map((a) => Address.parse(a)).flatMap((r) => r._tag === "Success" ? [r.success] : []),
                limits: {
                  maxConnections: message.limits.maxConnections,
                  overflow: message.limits.overflow,
                  idleTimeout: fromMillis(message.limits.idleTimeout),
                  shutdownTimeout: fromMillis(message.limits.shutdownTimeout)
                }
              }
            }
            member.onStart?.(undefined)
            break
          }
          case "failed":
            member.onStart?.({ reason: message.reason, detail: message.detail })
            break
          case "stats": {
            const waiter = statsWaiters.get(message.id)
            statsWaiters.delete(message.id)
            waiter?.(message.stats)
            break
          }
          case "metrics": {
            member.metrics = decodeSnapshot(message.snapshot) ?? member.metrics
            const waiter = metricsWaiters.get(message.id)
            metricsWaiters.delete(message.id)
            waiter?.()
            break
          }
          case "drained":
            member.report = message.report
            break
        }
      })
      // A worker's IPC channel may break as it exits; the exit says the rest.
      child.on("error", () => {})
      child.on("exit", (code, signal) => {
        member.exited = true
        if (member.metrics !== undefined) {
          retired = mergeSnapshots([{ snapshot: retired, live: false }, { snapshot: member.metrics, live: false }])
          member.metrics = undefined
        }
        member.onStart?.({ reason: "Exited", detail: `it exited before listening (${describeExit(code, signal)})` })
        for (const f of member.onExit.splice(0)) f()
        if (!stopping && member.readyAt !== undefined) replace(member, describeExit(code, signal))
      })
      return member
    }

    /** A worker that was serving ended while the group runs: start another in its slot, after a backoff. */
    const replace = (member: Member, how: string) => {
      if (slots[member.slot] !== member || stopping) return
      if (member.readyAt !== undefined && Date.now() - member.readyAt >= config.stableAfter) failures[member.slot] = 0
      const n = ++failures[member.slot]!
      if (n > config.maxRestarts) {
        log(
          "Error",
          `worker ${member.slot + 1} (pid ${member.pid}) ended (${how}) after ${config.maxRestarts} restart(s) in a row ` +
            "that did not last: giving up on it (the group stops; see the worker's log, or raise restart.maxRestarts)"
        )
        void runFork(Deferred.fail(gaveUp, errors.gaveUp({ worker: member.slot + 1, restarts: config.maxRestarts, lastExit: how })))
        return
      }
      const delay = Math.min(config.maxDelay, config.initialDelay * 2 ** (n - 1))
      log(
        "Warn",
        `worker ${member.slot + 1} (pid ${member.pid}) ended (${how}); a new one starts in ${delay} ms ` +
          `(restart ${n} in a row, at most ${config.maxRestarts})`
      )
      const timer = setTimeout(() => {
        timers.delete(timer)
        if (stopping) return
        spawn(member.slot, (started, failure) => {
          if (failure === undefined) {
            log("Info", `worker ${started.slot + 1} started again (pid ${started.pid})`)
          } else {
            // It never served: another failure in a row, once it is gone.
            const retry = () => replace(started, failure.detail)
            if (started.exited) retry()
            else {
              started.onExit.push(retry)
              started.process.process.kill("SIGKILL")
            }
          }
        })
      }, delay)
      timers.add(timer)
    }

    /** Start the worker of `slot` and wait until it listens. */
    const start = (slot: number): Effect.Effect<Member, Workers.WorkerStartFailed> =>
      Effect.callback((resume) => {
        spawn(slot, (member, failure) =>
          resume(
            failure === undefined
              ? Effect.succeed(member)
              : Effect.fail(errors.make({ worker: slot + 1, pid: member.pid, reason: failure.reason, detail: failure.detail }))
          ))
      })

    const live = () => slots.filter((m): m is Member => m !== undefined && !m.exited)

    /** Wait until `member` has exited. */
    const exited = (member: Member): Effect.Effect<void> =>
      Effect.callback((resume) => {
        if (member.exited) return resume(Effect.void)
        member.onExit.push(() => resume(Effect.void))
      })

    const forward = (signal: NodeJS.Signals) => {
      for (const member of live()) member.process.process.kill(signal)
    }

    const statsOf = (member: Member): Effect.Effect<Workers.WorkerStats | undefined> =>
      Effect.callback<Workers.WorkerStats | undefined>((resume) => {
        const id = nextStatsId++
        const timer = setTimeout(() => {
          statsWaiters.delete(id)
          resume(Effect.succeed(undefined))
        }, config.statsTimeout)
        statsWaiters.set(id, (stats) => {
          clearTimeout(timer)
          resume(Effect.succeed(stats === undefined ? undefined : { ...stats, worker: member.slot + 1, pid: member.pid }))
        })
        if (!send(member, { type: "stats", id })) statsWaiters.get(id)!(undefined)
      })

    const stats = Effect.suspend(() =>
      Effect.map(
        Effect.forEach(slots, (m) => m === undefined || m.exited ? Effect.succeed(undefined) : statsOf(m), {
          concurrency: "unbounded"
        }),
        (all): Workers.Stats => {
          const workers = all.filter((s): s is Workers.WorkerStats => s !== undefined)
          const sum = (f: (s: Server.Stats) => number) => workers.reduce((n, s) => n + f(s), 0)
          return {
            accepted: sum((s) => s.accepted),
            active: sum((s) => s.active),
            completed: sum((s) => s.completed),
            failed: sum((s) => s.failed),
            refused: sum((s) => s.refused),
            workers
          }
        }
      )
    )

    /** Ask `member` for its metric snapshot; within statsTimeout, else the one it gave last is used. */
    const refreshMetrics = (member: Member): Effect.Effect<void> =>
      Effect.callback<void>((resume) => {
        const id = nextStatsId++
        const timer = setTimeout(() => {
          metricsWaiters.delete(id)
          resume(Effect.void)
        }, config.statsTimeout)
        metricsWaiters.set(id, () => {
          clearTimeout(timer)
          resume(Effect.void)
        })
        if (!send(member, { type: "metrics", id })) metricsWaiters.get(id)!()
      })

    const metrics = Effect.suspend(() =>
      Effect.map(
        Effect.forEach(live(), refreshMetrics, { concurrency: "unbounded", discard: true }),
        () =>
          mergeSnapshots([
            { snapshot: Metric.snapshotUnsafe(context), live: true },
            ...slots.flatMap((m) => m === undefined || m.metrics === undefined ? [] : [{ snapshot: m.metrics, live: true }]),
            { snapshot: retired, live: false }
          ])
      )
    )

    /** Drain every worker, kill those left at shutdownTimeout, and sum their reports. */
    const stop = Effect.gen(function*() {
      stopping = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      for (const signal of config.forwardSignals) process.off(signal, forward)
      const members = slots.filter((m): m is Member => m !== undefined)
      // The final count of each worker's connections, for the log line: how the load was spread.
      const final = started ? yield* stats : undefined
      for (const member of members) send(member, { type: "drain" })
      const all = Effect.forEach(members, exited, { concurrency: "unbounded", discard: true })
      const done = yield* all.pipe(Effect.timeoutOption(Duration.millis(config.shutdownTimeout)))
      let killed = 0
      if (done._tag === "None") {
        for (const member of members) {
          if (member.exited) continue
          killed++
          member.process.process.kill("SIGKILL")
        }
        yield* all.pipe(Effect.timeoutOption(Duration.seconds(5)))
      }
      const workers = members.map((m) => ({ worker: m.slot + 1, pid: m.pid, report: m.report }))
      const finished = workers.reduce((n, w) => n + (w.report?.finished ?? 0), 0)
      const cut = workers.reduce((n, w) => n + (w.report?.cut ?? 0), 0)
      const report: Workers.ShutdownReport = { finished, cut, workers, killed }
      const silent = workers.filter((w) => w.report === undefined).length
      if (started) {
        log(
          killed > 0 ? "Warn" : "Info",
          `${members.length} worker(s) shut down; ${finished} connection(s) finished, ${cut} cut` +
            (killed > 0 ? `; ${killed} worker(s) killed after the shutdownTimeout of ${config.shutdownTimeout} ms` : "") +
            (silent > killed ? `; ${silent - killed} worker(s) gave no report` : "") +
            (final === undefined ? "" : `; connections accepted: ${
              final.workers.map((w) => `worker ${w.worker} (pid ${w.pid}) ${w.accepted}`).join(", ")
            }`)
        )
      }
      yield* Deferred.succeed(shutdownReport, report)
    })
    yield* Effect.addFinalizer(() => stop)

    for (const signal of config.forwardSignals) process.on(signal, forward)

    // The first worker binds, and tells the ports of a port-0 address to the others.
    yield* start(0)
    if (config.reusePort) ports = first!.addresses.flatMap((a) => a._tag === "TcpAddress" ? [a.port] : [])
    yield* Effect.forEach(Array.from({ length: config.size - 1 }, (_, i) => i + 1), start, {
      concurrency: "unbounded",
      discard: true
    })
    started = true
    const pids = slots.map((m) => m!.pid)
    log(
      "Info",
      `${config.size} worker(s) serving ${first!.addresses.map(Address.format).join(", ")} (${
        config.reusePort ? "reusePort" : "cluster"
      }): pid ${pids.join(", ")}`
    )

    return {
      address: first!.addresses[0]!,
      addresses: first!.addresses,
      limits: first!.limits,
      sharing: config.reusePort ? "reusePort" : "cluster",
      size: config.size,
      pids: Effect.sync(() => live().map((m) => m.pid)),
      stats,
      metrics,
      shutdown: Deferred.await(shutdownReport),
      failure: Deferred.await(gaveUp)
    } satisfies Workers.WorkerGroup
  })

/** The log level of a role, checked (a worker started by another version may send anything). */
export const logLevelOf = (role: Role): LogLevel.LogLevel =>
  LogLevel.values.includes(role.logLevel) ? role.logLevel : "Info"
