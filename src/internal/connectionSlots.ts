/**
 * A server's one slot and counter mechanism, shared by both ways a
 * connection runs (in a fiber, or in a listener's callbacks): who may be
 * served under `maxConnections`, the counters, the wait for the last open
 * connection on drain, and the server's log lines: the warning when the
 * limit is hit, one warning per failed connection, and the endings that are
 * part of serving (a peer's reset, an idle or frame timeout, a refusal at
 * the limit) at debug level, counted and summarised at info at most once a
 * minute. Every line goes to stderr with Effect's built-in loggers.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import * as Address from "../Address.js"
import type * as Socket from "../Socket.js"
import { LimitWarning, RATE_NOTE } from "./limitWarning.js"
import { formatBytes, type MemoryBudget } from "./memoryBudget.js"
import { type ServerMeter, tagOf } from "./metrics.js"
import { endConnectionSpan } from "./tracing.js"

/** See `Server.Overflow`. */
export type Overflow = "queue" | "refuse"

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
 * How a connection may end that is part of serving, not a failure of the
 * server: the peer reset it (or was gone when we wrote), it was idle too
 * long, a frame of it took too long, the peer did not take what we wrote
 * (`WriteTimeout`), or the server cut it to stay within its memory budget
 * (which also logs a limit warning). Logged at debug and summarised.
 */
const EXPECTED_ENDINGS: ReadonlySet<string> = new Set([
  "ConnectionReset",
  "BrokenPipe",
  "IdleTimeout",
  "FrameTimeout",
  "WriteTimeout",
  "MemoryBudgetExceeded"
])

/** The tag of an expected ending, or undefined for a failure worth a warning (a defect always is). */
const expectedEnding = (cause: Cause.Cause<unknown>): string | undefined => {
  if (Cause.hasDies(cause)) return undefined
  const failure = Cause.findErrorOption(cause)
  if (failure._tag === "None") return undefined
  const e = failure.value
  return typeof e === "object" && e !== null && "_tag" in e && typeof e._tag === "string" &&
      EXPECTED_ENDINGS.has(e._tag)
    ? e._tag
    : undefined
}

/** A failed connection's `error.type`: its error's tag, or `Defect`. */
const failureTag = (cause: Cause.Cause<unknown>): string => {
  if (Cause.hasDies(cause)) return "Defect"
  const failure = Cause.findErrorOption(cause)
  return failure._tag === "Some" ? tagOf(failure.value) : "Defect"
}

/** How often, at most, the expected endings are summarised. */
export const SUMMARY_INTERVAL_MS = 60_000

const REFUSED_AT_LIMIT = "refused (maxConnections)"
const REFUSED_QUEUE_FULL = "refused (accept queue full)"

const connections = (n: number) => n === 1 ? "1 new connection" : `${n} new connections`
const were = (n: number) => n === 1 ? "was" : "were"
const plural = (n: number, what: string) => n === 1 ? `1 ${what}` : `${n} ${what}s`

export class ConnectionSlots {
  accepted = 0
  active = 0
  completed = 0
  failed = 0
  refused = 0
  /**
   * Connections served whose socket is not closed yet. Each holds a slot:
   * with `"queue"`, a new connection is served only while fewer than
   * `maxConnections` are open.
   */
  open = 0
  /**
   * Called when a slot frees, by whoever takes the connections waiting for
   * one (the accept loop while it waits, or a listener's callbacks).
   */
  onFree: (() => void) | undefined = undefined
  /** The server's memory budget, when it has one: every Node socket served joins it. */
  budget: MemoryBudget | undefined = undefined
  /** The server is draining (its connection spans say so). */
  draining = false
  /** The server's metrics (internal/metrics.ts), unless they are off. */
  meter: ServerMeter | undefined = undefined

  private emptyWaiters: Array<() => void> = []
  private readonly warning: LimitWarning
  // Counted since the last warning.
  private waited = 0
  private refusedSinceWarning = 0
  private queueRefused = 0
  private acceptQueueSize = 0
  /** Expected endings by kind since the last summary, in the order first seen. */
  private early = new Map<string, number>()
  private earlySince: number
  private readonly budgetWarning: LimitWarning
  // Counted since the last budget warning.
  private budgetPauses = 0
  private budgetCuts = 0
  private budgetUsed = 0

  constructor(
    readonly maxConnections: number,
    readonly overflow: Overflow,
    /** The server's name in log lines. */
    readonly name: string,
    /** Runs an effect from a callback, with the server's logger. */
    readonly fork: (effect: Effect.Effect<void>) => void,
    private readonly clock: Clock.Clock,
    /** The server's `logLevel`: the least severe of its own lines written; undefined: the program's minimum. */
    private readonly logLevel?: LogLevel.LogLevel | undefined
  ) {
    this.earlySince = clock.currentTimeMillisUnsafe()
    this.warning = new LimitWarning(
      clock,
      (since) => this.describeLimit(since),
      (message) => fork(this.logged(Effect.logWarning(message)))
    )
    this.budgetWarning = new LimitWarning(
      clock,
      (since) => this.describeBudget(since),
      (message) => fork(this.logged(Effect.logWarning(message)))
    )
  }

  /** The memory budget was hit: every connection stopped reading (warned about once the episode's outcome is known). */
  budgetPaused(used: number): void {
    this.budgetPauses++
    this.budgetUsed = Math.max(this.budgetUsed, used)
  }

  /** Back under the memory budget, reading resumed. */
  budgetResumed(): void {
    if (this.budgetPauses > 0 || this.budgetCuts > 0) this.budgetWarning.hit()
  }

  /** The memory budget cut `n` connections (each also ends as `MemoryBudgetExceeded`, logged at debug). */
  budgetCut(n: number, used: number): void {
    this.budgetCuts += n
    this.budgetUsed = Math.max(this.budgetUsed, used)
    this.budgetWarning.hit()
  }

  private describeBudget(since: string): string {
    const limit = this.budget?.limit ?? 0
    const pauses = this.budgetPauses
    const cuts = this.budgetCuts
    const used = this.budgetUsed
    this.budgetPauses = 0
    this.budgetCuts = 0
    this.budgetUsed = 0
    return `${this.name}: its connections hold more than its memory budget (memoryBudget: ${formatBytes(limit)}; ` +
      `input not yet framed or read, and output the peers have not taken): reading paused ${plural(pauses, "time")}, ` +
      `${plural(cuts, "connection")} holding the most closed with MemoryBudgetExceeded ${since} (at most ${
        formatBytes(used)
      } held). Raise memoryBudget (--memory-budget on the command line) if this machine has the memory, or ` +
      `lower the longest frame (--max-frame). ${RATE_NOTE}`
  }

  /**
   * One of the server's own log lines, as it is written: annotated with the
   * server, to stderr for Effect's built-in console loggers (a program's
   * stdout is its own; loggers of your own are untouched), at the server's
   * `logLevel` when it has one.
   */
  logged(log: Effect.Effect<void>, annotations?: Record<string, string>): Effect.Effect<void> {
    const annotated = Effect.annotateLogs(log, { server: this.name, ...annotations })
    const toStderr = Effect.provideService(annotated, References.LogToStderr, true)
    return this.logLevel === undefined
      ? toStderr
      : Effect.provideService(toStderr, References.MinimumLogLevel, this.logLevel)
  }

  /** May a new connection be served now? */
  hasRoom(): boolean {
    return this.overflow === "queue" ? this.open < this.maxConnections : this.active < this.maxConnections
  }

  /** A connection is served: counted, and holds a slot until {@link gone}. Returns its id, from 1. */
  admit(): number {
    const meter = this.meter
    if (meter !== undefined) {
      meter.opened.n++
      meter.active.n++
    }
    this.active++
    this.open++
    return ++this.accepted
  }

  /**
   * `n` new connections found no room: with `"refuse"` they are refused (the
   * caller closes them), with `"queue"` they wait for a slot. Counted, and
   * warned about.
   */
  full(n = 1): void {
    if (this.overflow === "refuse") {
      if (this.meter !== undefined) this.meter.closedWith("refused", "MaxConnections").n += n
      this.refused += n
      this.refusedSinceWarning += n
      this.countEarly(REFUSED_AT_LIMIT, n)
      this.fork(this.logged(Effect.logDebug(
        `${this.name}: refused ${plural(n, "connection")}: all ${this.maxConnections} connection slots are taken ` +
          `(maxConnections, overflow: "refuse")`
      )))
    } else {
      this.waited += n
    }
    this.warning.hit()
  }

  /** The listener refused a connection because its accept queue was full (it counts it). */
  acceptQueueFull(acceptQueueSize: number): void {
    this.queueRefused++
    if (this.meter !== undefined) this.meter.closedWith("refused", "AcceptQueueFull").n++
    this.acceptQueueSize = acceptQueueSize
    this.countEarly(REFUSED_QUEUE_FULL, 1)
    this.fork(this.logged(Effect.logDebug(
      `${this.name}: refused a connection: all ${this.maxConnections} connection slots are taken and the accept ` +
        `queue (listen.acceptQueueSize: ${acceptQueueSize}) is full`
    )))
    this.warning.hit()
  }

  /** How the handler ended, counted; the cause to log when it failed (an interruption is not a failure). */
  ended(exit: Exit.Exit<unknown, unknown>, socket?: Socket.Socket): Cause.Cause<unknown> | undefined {
    this.active--
    const meter = this.meter
    if (meter !== undefined) meter.active.n--
    if (Exit.isSuccess(exit)) {
      this.completed++
      if (meter !== undefined) meter.completed.n++
      endConnectionSpan(socket, "completed", exit, this.draining)
      return undefined
    }
    if (Exit.hasInterrupts(exit)) {
      // Only the drain interrupts a connection's handler.
      if (meter !== undefined) meter.cut.n++
      endConnectionSpan(socket, "cut", undefined)
      return undefined
    }
    endConnectionSpan(socket, "failed", exit, this.draining)
    this.failed++
    if (meter !== undefined) meter.closedWith("failed", failureTag(exit.cause)).n++
    return exit.cause
  }

  /** The drain cut a connection whose handler had not ended: it counts as interrupted. */
  cut(socket?: Socket.Socket): void {
    endConnectionSpan(socket, "cut", undefined)
    this.active--
    if (this.meter !== undefined) {
      this.meter.active.n--
      this.meter.cut.n++
    }
  }

  /** A served connection's socket is closed: its slot frees. */
  gone(): void {
    this.open--
    this.onFree?.()
    if (this.open === 0 && this.emptyWaiters.length > 0) {
      const waiters = this.emptyWaiters
      this.emptyWaiters = []
      for (const wake of waiters) wake()
    }
  }

  /** Completes once no served connection is open. */
  readonly awaitEmpty: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.open === 0) return resume(Effect.void)
    const wake = () => resume(Effect.void)
    this.emptyWaiters.push(wake)
    return Effect.sync(() => {
      this.emptyWaiters = this.emptyWaiters.filter((w) => w !== wake)
    })
  })

  /**
   * The log line of a connection whose handler failed, with the peer: an
   * expected ending (see `EXPECTED_ENDINGS`) is counted now for the summary
   * and logged at debug; any other failure is a warning.
   */
  logEnding(socket: Socket.Socket, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const peer = Address.format(socket.remoteAddress)
    const expected = expectedEnding(cause)
    if (expected !== undefined) {
      this.countEarly(expected, 1)
      return this.logged(
        Effect.logDebug(`${this.name}: connection from ${peer} ended early: ${describeCause(cause)}`),
        { peer }
      )
    }
    return this.logged(
      Effect.logWarning(`${this.name}: connection from ${peer} failed: ${describeCause(cause)}`),
      { peer }
    )
  }

  private countEarly(kind: string, n: number): void {
    this.early.set(kind, (this.early.get(kind) ?? 0) + n)
  }

  /**
   * The summary of the expected endings since the last one, at info, if
   * there were any: `N connections ended early in the last minute: 12
   * ConnectionReset, 3 IdleTimeout`. The server runs it every minute, and
   * once more when it shuts down.
   */
  readonly summarise: Effect.Effect<void> = Effect.suspend(() => {
    const now = this.clock.currentTimeMillisUnsafe()
    const elapsed = now - this.earlySince
    this.earlySince = now
    if (this.early.size === 0) return Effect.void
    const counts = Array.from(this.early)
    this.early = new Map()
    const total = counts.reduce((sum, [, n]) => sum + n, 0)
    // The periodic summary covers a minute; the last one, at shutdown, what came since.
    const window = elapsed >= SUMMARY_INTERVAL_MS - 500
      ? "the last minute"
      : `the last ${Math.max(1, Math.round(elapsed / 1000))} s`
    return this.logged(Effect.logInfo(
      `${this.name}: ${plural(total, "connection")} ended early in ${window}: ` +
        `${counts.map(([kind, n]) => `${n} ${kind}`).join(", ")} (expected endings, each logged at debug level)`
    ))
  })

  private describeLimit(since: string): string {
    const what: Array<string> = []
    if (this.waited > 0) {
      what.push(`${connections(this.waited)} had to wait in the accept queue for one to close`)
    }
    if (this.refusedSinceWarning > 0) {
      what.push(`${connections(this.refusedSinceWarning)} ${were(this.refusedSinceWarning)} refused (overflow: "refuse")`)
    }
    if (this.queueRefused > 0) {
      what.push(
        `${connections(this.queueRefused)} ${were(this.queueRefused)} refused because the accept queue ` +
          `(listen.acceptQueueSize: ${this.acceptQueueSize}) was full`
      )
    }
    this.waited = 0
    this.refusedSinceWarning = 0
    this.queueRefused = 0
    return `${this.name}: all ${this.maxConnections} connection slots are taken (maxConnections): ` +
      `${what.join("; ")} ${since}. Raise the limit with the maxConnections option ` +
      `(--max-connections on the command line) if this machine can serve more at once. ${RATE_NOTE}`
  }
}
