/**
 * Checks of the exec server's numeric and duration options, shared by its
 * policy and its server: each returns the value (or its default) or the reason
 * it is unusable, and the caller makes that an `InvalidExecOptions`.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Result from "effect/Result"

/** @internal */
export const positiveInt = (value: number | undefined, fallback: number, max: number): Result.Result<number, string> => {
  if (value === undefined) return Result.succeed(fallback)
  return Number.isSafeInteger(value) && value > 0 && value <= max
    ? Result.succeed(value)
    : Result.fail(`expected a whole number from 1 to ${max}, got ${value}`)
}

/** @internal */
export const positiveDuration = (
  value: Duration.Input | undefined,
  fallback: Duration.Duration,
  allowZero = false
): Result.Result<Duration.Duration, string> => {
  if (value === undefined) return Result.succeed(fallback)
  const decoded = Duration.fromInput(value)
  if (Option.isNone(decoded)) return Result.fail(`${JSON.stringify(value)} is not a duration`)
  const d = decoded.value
  const millis = Duration.toMillis(d)
  return Duration.isFinite(d) && (millis > 0 || (allowZero && millis === 0))
    ? Result.succeed(d)
    : Result.fail(`expected a finite duration ${allowZero ? "of zero or more" : "above zero"}, got ${Duration.format(d)}`)
}
