/**
 * What every `effect-wire` subcommand shares: the one-line failure the
 * entry point prints, option parsers for the human units, the
 * `listening …` line that scripts wait for, and the exit code of a server
 * stopped by a signal.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as EffectCliError from "effect/cli/CliError"
import * as Flag from "effect/cli/Flag"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Runtime from "effect/Runtime"
import * as Address from "../Address.js"
import { parseDuration, parseSize } from "./units.js"

/**
 * A failure the command line reports as one line, `error: <message>`, and
 * exits non-zero: a bad combination of flags, a missing environment
 * variable. (Failures of the library, such as `AddressInUse`, are reported
 * the same way through their own message.)
 *
 * ```ts
 * Effect.fail(new CliError({ message: "--unix cannot be combined with --udp" }))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string }> {}

/** A bad flag value: the entry point prints it as `error: --flag: reason`. */
const invalid = (flag: string, reason: string) =>
  Effect.fail(new EffectCliError.ValidationError({ message: `--${flag}: ${reason}` }))

/**
 * A flag holding a duration such as `30s`, `500ms`, `2m` (a bare number is
 * seconds); a bad value is a validation error naming the flag.
 *
 * ```ts
 * const idleTimeout = durationOption("idle-timeout").pipe(Flag.optional)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const durationOption = (name: string): Flag.Flag<Duration.Duration> =>
  Flag.String(name).pipe(
    Flag.withMetavar("DURATION"),
    Flag.mapEffect((text) => Result.match(parseDuration(text), { onFailure: (e) => invalid(name, e), onSuccess: Effect.succeed }))
  )

/**
 * A flag holding a byte size such as `8MiB`, `64KiB` or `4096`.
 *
 * ```ts
 * const maxOutput = sizeOption("max-output").pipe(Flag.optional)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const sizeOption = (name: string): Flag.Flag<number> =>
  Flag.String(name).pipe(
    Flag.withMetavar("SIZE"),
    Flag.mapEffect((text) => Result.match(parseSize(text), { onFailure: (e) => invalid(name, e), onSuccess: Effect.succeed }))
  )

/**
 * A flag holding one of `choices`. Unlike `Flag.Literals`, a bad value's
 * message names the flag in our words.
 *
 * ```ts
 * const framing = choiceOption("framing", ["raw", "length", "lines"] as const)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const choiceOption = <const A extends string>(name: string, choices: ReadonlyArray<A>): Flag.Flag<A> =>
  Flag.String(name).pipe(
    Flag.withMetavar(choices.join("|")),
    Flag.mapEffect((text) =>
      choices.includes(text as A)
        ? Effect.succeed(text as A)
        : invalid(name, `expected one of ${choices.join(", ")}, got ${JSON.stringify(text)}`)
    )
  )

const INTEGER = /^\d+$/

/** A flag holding a whole number from `min` to `max`; `describe` says what it is for the error message. */
const integerOption = (name: string, metavar: string, min: number, max: number, describe: string) =>
  Flag.String(name).pipe(
    Flag.withMetavar(metavar),
    Flag.mapEffect((text) => {
      const n = Number(text)
      return INTEGER.test(text.trim()) && n >= min && n <= max
        ? Effect.succeed(n)
        : invalid(name, `expected ${describe}, got ${JSON.stringify(text)}`)
    })
  )

/**
 * A flag holding a positive integer.
 *
 * ```ts
 * const concurrency = positiveIntegerOption("concurrency").pipe(Flag.optional)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const positiveIntegerOption = (name: string): Flag.Flag<number> =>
  integerOption(name, "N", 1, Number.MAX_SAFE_INTEGER, "a positive integer")

/**
 * A flag holding a port number, 0 to 65535 (0: the kernel picks a free one).
 *
 * ```ts
 * const port = portOption.pipe(Flag.withDefault(9000))
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const portOption: Flag.Flag<number> = integerOption(
  "port",
  "PORT",
  0,
  65535,
  "a port number from 0 to 65535 (0 picks a free port)"
)

/**
 * The line a server prints on stdout once a listener is ready, which
 * scripts and tests wait for: `listening tcp 127.0.0.1:40123`,
 * `listening tcp [::1]:40123`, `listening unix /tmp/x.sock` or
 * `listening udp 127.0.0.1:40124`.
 *
 * ```ts
 * listeningLine("tcp", server.address) // "listening tcp 127.0.0.1:40123"
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const listeningLine = (transport: "tcp" | "udp", address: Address.Address): string =>
  address._tag === "UnixAddress"
    ? `listening unix ${address.path}`
    : `listening ${transport} ${Address.format(address)}`

/**
 * Print the `listening …` line of a ready listener.
 *
 * ```ts
 * yield* printListening("tcp", server.address)
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const printListening = (transport: "tcp" | "udp", address: Address.Address): Effect.Effect<void> =>
  Effect.sync(() => void process.stdout.write(`${listeningLine(transport, address)}\n`))

/** Set once a command is serving until a signal stops it (see {@link untilSignal}). */
let servingUntilSignal = false

/**
 * Wait for SIGINT or SIGTERM, which `NodeRuntime.runMain` turns into an
 * interruption: for a server that is the documented way to stop, so that
 * {@link teardown} makes the interruption exit 0 (once every scope has been
 * released: the servers drained) instead of 130.
 *
 * ```ts
 * yield* printListening("tcp", server.address)
 * return yield* untilSignal
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const untilSignal: Effect.Effect<never> = Effect.suspend(() => {
  servingUntilSignal = true
  return Effect.never
})

/**
 * The exit code of the command line: `Runtime.defaultTeardown`'s (0 on
 * success, 130 when a signal interrupted the command, the failure's own code
 * otherwise), except that a command stopped by a signal while waiting in
 * {@link untilSignal} exits 0. A failure while draining is still a failure.
 *
 * ```ts
 * program.pipe(NodeRuntime.runMain({ disableErrorReporting: true, teardown }))
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const teardown: Runtime.Teardown = (exit, onExit) =>
  servingUntilSignal && Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
    ? onExit(0)
    : Runtime.defaultTeardown(exit, onExit)
