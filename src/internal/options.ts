/**
 * The one way options are checked. Each check returns the reason a value is
 * unusable, phrased to follow the option's name ("must be a positive
 * integer, got -1"), or `undefined` when the value is fine; the caller
 * decides what a reason becomes:
 *
 * - a defect ({@link defect}, Effect's `IllegalArgumentError`) for options
 *   given in code to `Server`, `Socket` and `Datagram`: a programming error,
 *   like a wrong argument;
 * - a typed error for codec builders (`InvalidCodecOptions`, thrown by the
 *   builder) and the exec server (`InvalidExecOptions`, its failure), whose
 *   options often come from configuration.
 *
 * The rule for zero and "never" is the command line's: a count, a size and a
 * duration are above 0, and 0 is refused, never read as "no limit" (nor as
 * "at once"). `Duration.infinity` lifts a time limit where the option allows
 * it (`never: true`), and is refused where a wait must end.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/** Why a value is unusable, to follow the option's name; `undefined` when it is fine. */
export type Reason = string | undefined

const show = (value: unknown): string => typeof value === "string" ? JSON.stringify(value) : String(value)

const NOT_NO_LIMIT = "0 does not mean \"no limit\""

/**
 * A whole number from 1 to `max`: a count or a size. 0 is refused: there is
 * no "unlimited" count, only the most one means to allow.
 */
export const positiveInt = (value: unknown, max: number = Number.MAX_SAFE_INTEGER): Reason => {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 1 && value <= max) return undefined
  const expected = max === Number.MAX_SAFE_INTEGER ? "a positive integer" : `a positive integer up to ${max}`
  const zero = value === 0
    ? ` (${NOT_NO_LIMIT}: give the most you mean to allow, or leave the option out for its default)`
    : ""
  return `must be ${expected}, got ${show(value)}${zero}`
}

/** A whole number from `min` to `max`: an offset or an adjustment, where 0 is a value like any other. */
export const integer = (value: unknown, min: number, max: number): Reason =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max
    ? undefined
    : `must be an integer from ${min} to ${max}, got ${show(value)}`

/** What a duration option allows besides a finite duration above 0. */
export interface DurationRule {
  /** Whether `Duration.infinity` is allowed, meaning no limit. */
  readonly never: boolean
  /** Why the duration must be finite, when `never` is false (said after "must be finite: "). */
  readonly finite?: string | undefined
}

/**
 * A duration above 0 (any `Duration.Input`: `"30 seconds"`, milliseconds, a
 * `Duration`); `Duration.infinity` only with `never: true`. Decode it with
 * `Duration.fromInputUnsafe` once it passed.
 */
export const duration = (value: unknown, rule: DurationRule): Reason => {
  const decoded = typeof value === "number" && Number.isNaN(value)
    ? Option.none()
    : Duration.fromInput(value as Duration.Input)
  if (Option.isNone(decoded)) return `must be a duration such as "30 seconds", got ${show(value)}`
  const d = decoded.value
  const got = Duration.isDuration(value) ? Duration.format(d) : show(value)
  if (Duration.isNegative(d)) return `must be above 0, got ${got}`
  if (Duration.isZero(d)) {
    return rule.never ? `must be above 0, got ${got} (${NOT_NO_LIMIT}: use Duration.infinity for none)` : `must be above 0, got ${got}`
  }
  if (!Duration.isFinite(d) && !rule.never) {
    return rule.finite === undefined ? `must be finite, got ${got}` : `must be finite: ${rule.finite}`
  }
  return undefined
}

/** One of a few strings. */
export const oneOf = (value: unknown, choices: ReadonlyArray<string>): Reason =>
  typeof value === "string" && choices.includes(value)
    ? undefined
    : `must be ${choices.map(show).join(" or ")}, got ${show(value)}`

/**
 * The defect for an option given in code: Effect's `IllegalArgumentError`
 * (a wrong argument), its message `where: name reason`.
 */
export const defect = (where: string, name: string, reason: string): Cause.IllegalArgumentError =>
  new Cause.IllegalArgumentError(`${where}: ${name} ${reason}`)
