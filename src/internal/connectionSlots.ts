/**
 * A server's one slot and counter mechanism, shared by both ways a
 * connection runs (in a fiber, or in a listener's callbacks): who may be
 * served under `maxConnections`, the counters, the wait for the last open
 * connection on drain, and the warning when the limit is hit.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Address from "../Address.js"
import type * as Socket from "../Socket.js"
import { LimitWarning, RATE_NOTE } from "./limitWarning.js"

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

const connections = (n: number) => n === 1 ? "1 new connection" : `${n} new connections`
const were = (n: number) => n === 1 ? "was" : "were"

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

  private emptyWaiters: Array<() => void> = []
  private readonly warning: LimitWarning
  // Counted since the last warning.
  private waited = 0
  private refusedSinceWarning = 0
  private queueRefused = 0
  private acceptQueueSize = 0

  constructor(
    readonly maxConnections: number,
    readonly overflow: Overflow,
    /** The server's name in log lines. */
    readonly name: string,
    /** Runs an effect from a callback, with the server's logger. */
    readonly fork: (effect: Effect.Effect<void>) => void,
    clock: Clock.Clock
  ) {
    this.warning = new LimitWarning(
      clock,
      (since) => this.describeLimit(since),
      (message) => fork(Effect.annotateLogs(Effect.logWarning(message), { server: name }))
    )
  }

  /** May a new connection be served now? */
  hasRoom(): boolean {
    return this.overflow === "queue" ? this.open < this.maxConnections : this.active < this.maxConnections
  }

  /** A connection is served: counted, and holds a slot until {@link gone}. Returns its id, from 1. */
  admit(): number {
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
      this.refused += n
      this.refusedSinceWarning += n
    } else {
      this.waited += n
    }
    this.warning.hit()
  }

  /** The listener refused a connection because its accept queue was full (it counts it). */
  acceptQueueFull(acceptQueueSize: number): void {
    this.queueRefused++
    this.acceptQueueSize = acceptQueueSize
    this.warning.hit()
  }

  /** How the handler ended, counted; the cause to log when it failed (an interruption is not a failure). */
  ended(exit: Exit.Exit<unknown, unknown>): Cause.Cause<unknown> | undefined {
    this.active--
    if (Exit.isSuccess(exit)) {
      this.completed++
      return undefined
    }
    if (Exit.hasInterrupts(exit)) return undefined
    this.failed++
    return exit.cause
  }

  /** The drain cut a connection whose handler had not ended: it counts as interrupted. */
  cut(): void {
    this.active--
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

  /** The warning line of a failed connection, with the peer. */
  logFailure(socket: Socket.Socket, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const peer = Address.format(socket.remoteAddress)
    return Effect.logWarning(`${this.name}: connection from ${peer} failed: ${describeCause(cause)}`).pipe(
      Effect.annotateLogs({ server: this.name, peer })
    )
  }

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
