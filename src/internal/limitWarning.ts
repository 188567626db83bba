/**
 * The warning of a bound that is hit: logged the first time it is hit, then
 * at most once every 10 seconds while it keeps being hit, so that a server
 * at its limit says so, and what to change, without flooding its log.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"

/** How often, at most, one bound's warning is logged. */
export const WARNING_INTERVAL_MS = 10_000

/** The sentence that ends every such warning. */
export const RATE_NOTE = "This warning is logged at most once every 10 seconds."

export class LimitWarning {
  private lastAt: number | undefined = undefined

  /**
   * `describe` builds the message when one is due (and resets the caller's
   * counts): `since` reads "since the server started" the first time, then
   * "since the last warning".
   */
  constructor(
    private readonly clock: Clock.Clock,
    private readonly describe: (since: string) => string,
    private readonly log: (message: string) => void
  ) {}

  /** The bound was hit (the caller counted it): log now unless a warning went out less than 10 s ago. */
  hit(): void {
    const now = this.clock.currentTimeMillisUnsafe()
    const last = this.lastAt
    if (last !== undefined && now - last < WARNING_INTERVAL_MS) return
    this.lastAt = now
    this.log(this.describe(last === undefined ? "since the server started" : "since the last warning"))
  }
}
