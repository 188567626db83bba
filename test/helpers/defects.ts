/**
 * Asserting defects in tests: what an effect dies with, the shape of an
 * option defect (Effect's `IllegalArgumentError`, whose message names the
 * option; see src/internal/options.ts), and what a function throws.
 */
import { assert } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"

/** The defect `effect` dies with (failing the test when it does not die). */
export const defectOf = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<unknown, never, R> =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return assert.fail("expected a defect, the effect succeeded")
    const defect = Cause.findDefect(exit.cause)
    if (Result.isFailure(defect)) return assert.fail(`expected a defect, got ${Cause.pretty(exit.cause)}`)
    return defect.success
  })

/** Asserts an option defect: an `IllegalArgumentError` whose message includes every part. */
export const assertOptionDefect = (defect: unknown, ...parts: ReadonlyArray<string>): void => {
  assert.isTrue(Cause.isIllegalArgumentError(defect), `not an IllegalArgumentError: ${String(defect)}`)
  for (const part of parts) assert.include((defect as Error).message, part)
}

/** The instance of `type` that `f` throws (failing the test when it returns, or throws anything else). */
export const thrownBy = <E>(type: new(...args: Array<any>) => E, f: () => unknown, because: string): E => {
  try {
    f()
  } catch (error) {
    assert.instanceOf(error, type)
    return error as E
  }
  return assert.fail(because)
}
