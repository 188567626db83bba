/**
 * The exec server's memory budget: one count, shared by every connection, of
 * the bytes the server holds for its peers. It counts request frames read
 * ahead, the output room reserved for each command that runs (its
 * `maxOutput`) and, once the command is done, its answer until the peer has
 * taken it. Over the budget, readers pause and new commands wait; when a
 * command finds no room, the connections whose answers have waited longest
 * for their peer (at least {@link STALL_GRACE_MS}) are cut, the largest
 * first, with `MemoryBudgetExceeded`.
 *
 * Plain integer arithmetic per request: no allocation but the waiters' own.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * How long an answer must have waited for its peer before the budget may cut
 * its connection: a peer that reads is never cut for being in the middle of
 * taking a large answer.
 */
export const STALL_GRACE_MS = 250

/** One connection's share of the budget. */
export class Holder {
  /** Bytes this connection holds in the budget. */
  bytes = 0
  /** When its answer in hand started waiting for the peer (ms), or undefined when it is not writing. */
  writingSince: number | undefined = undefined
  /** Cut already: its bytes are freed when its handler ends. */
  cut = false

  constructor(
    /** Ends the connection with `MemoryBudgetExceeded`; called at most once. */
    readonly onCut: (held: number) => void
  ) {}
}

export class ExecBudget {
  /** Bytes held by all connections together. */
  used = 0
  /** Connections cut so far. */
  cuts = 0
  private readonly holders = new Set<Holder>()
  private waiters: Array<() => void> = []

  constructor(
    /** The budget in bytes. */
    readonly limit: number,
    /** Called for every connection cut, with its share and the bytes held by all (to log and count). */
    private readonly onCut: (held: number, used: number) => void,
    private readonly now: () => number = () => performance.now()
  ) {}

  /** A connection's share, to give back with {@link leave} when the connection ends. */
  join(onCut: (held: number) => void): Holder {
    const holder = new Holder(onCut)
    this.holders.add(holder)
    return holder
  }

  leave(holder: Holder): void {
    this.holders.delete(holder)
    this.release(holder, holder.bytes)
  }

  add(holder: Holder, n: number): void {
    holder.bytes += n
    this.used += n
  }

  release(holder: Holder, n: number): void {
    if (n <= 0) return
    holder.bytes -= n
    this.used -= n
    const waiters = this.waiters
    if (waiters.length === 0) return
    this.waiters = []
    for (const wake of waiters) wake()
  }

  /** Completes at the next release (or at once if there is room). */
  private readonly released = Effect.callback<void>((resume) => {
    const wake = () => resume(Effect.void)
    this.waiters.push(wake)
    return Effect.sync(() => {
      const i = this.waiters.indexOf(wake)
      if (i >= 0) this.waiters.splice(i, 1)
    })
  })

  /** Waits while the budget is full: readers pause here. */
  readonly belowLimit: Effect.Effect<void> = Effect.suspend(() =>
    this.used < this.limit ? Effect.void : Effect.andThen(this.released, this.belowLimit)
  )

  /**
   * Cut stalled writers, the largest first, until `n` more bytes would fit
   * once their shares are freed. Returns how long until the next writer
   * becomes eligible (ms), or undefined when no writer waits.
   */
  private cutFor(n: number): number | undefined {
    const now = this.now()
    let freeing = 0
    for (const h of this.holders) if (h.cut) freeing += h.bytes
    if (this.used - freeing + n <= this.limit) return 0
    const stalled: Array<Holder> = []
    let nextEligible: number | undefined = undefined
    for (const h of this.holders) {
      if (h.cut || h.writingSince === undefined) continue
      const waited = now - h.writingSince
      if (waited >= STALL_GRACE_MS) stalled.push(h)
      else nextEligible = Math.min(nextEligible ?? Infinity, STALL_GRACE_MS - waited)
    }
    stalled.sort((a, b) => b.bytes - a.bytes)
    for (const h of stalled) {
      if (this.used - freeing + n <= this.limit) break
      h.cut = true
      freeing += h.bytes
      this.cuts++
      this.onCut(h.bytes, this.used)
      h.onCut(h.bytes)
    }
    return nextEligible
  }

  /**
   * Take `n` bytes for `holder`, waiting at most `within` for room; cuts
   * stalled writers to make it. False when no room came in time.
   */
  reserve(holder: Holder, n: number, within: Duration.Duration): Effect.Effect<boolean> {
    const attempt: Effect.Effect<void> = Effect.suspend(() => {
      if (this.used + n <= this.limit) {
        this.add(holder, n)
        return Effect.void
      }
      const next = this.cutFor(n)
      const wait = next === undefined || next === 0
        ? this.released
        : Effect.raceFirst(this.released, Effect.sleep(Math.ceil(next)))
      return Effect.andThen(wait, attempt)
    })
    return Effect.timeoutOption(attempt, within).pipe(Effect.map((got) => got._tag === "Some"))
  }
}
