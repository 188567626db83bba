/**
 * The exec server's numeric and duration options, shared by its policy and
 * its server: each returns the value (or its default) or the reason
 * `internal/options` found it unusable, and the caller makes that an
 * `InvalidExecOptions` (a typed error: these options often come from
 * configuration).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Result from "effect/Result"
import * as Check from "../../internal/options.js"

/** @internal */
export const positiveInt = (value: number | undefined, fallback: number, max: number): Result.Result<number, string> => {
  const n = value ?? fallback
  const reason = Check.positiveInt(n, max)
  return reason === undefined ? Result.succeed(n) : Result.fail(reason)
}

/** @internal */
export const duration = (
  value: Duration.Input | undefined,
  fallback: Duration.Duration,
  rule: Check.DurationRule
): Result.Result<Duration.Duration, string> => {
  if (value === undefined) return Result.succeed(fallback)
  const reason = Check.duration(value, rule)
  return reason === undefined ? Result.succeed(Duration.fromInputUnsafe(value)) : Result.fail(reason)
}
