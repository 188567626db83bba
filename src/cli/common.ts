/**
 * What every `effect-wire` subcommand shares: the one-line failure the
 * entry point prints, option parsers for the human units, and the
 * `listening …` line that scripts wait for.
 *
 * @since 0.1.0
 */
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
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

const invalid = (flag: string, reason: string) =>
  Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${flag}: ${reason}`)))

/**
 * A flag holding a duration such as `30s`, `500ms`, `2m` (a bare number is
 * seconds); a bad value is a validation error naming the flag.
 *
 * ```ts
 * const idleTimeout = durationOption("idle-timeout").pipe(Options.optional)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const durationOption = (name: string): Options.Options<Duration.Duration> =>
  Options.text(name).pipe(
    Options.withPseudoName("DURATION"),
    Options.mapEffect((text) => Either.match(parseDuration(text), { onLeft: (e) => invalid(name, e), onRight: Effect.succeed }))
  )

/**
 * A flag holding a byte size such as `8MiB`, `64KiB` or `4096`.
 *
 * ```ts
 * const maxOutput = sizeOption("max-output").pipe(Options.optional)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const sizeOption = (name: string): Options.Options<number> =>
  Options.text(name).pipe(
    Options.withPseudoName("SIZE"),
    Options.mapEffect((text) => Either.match(parseSize(text), { onLeft: (e) => invalid(name, e), onRight: Effect.succeed }))
  )

/**
 * A flag holding one of `choices`. Unlike `Options.choice`, a bad value's
 * message names the flag.
 *
 * ```ts
 * const framing = choiceOption("framing", ["raw", "length", "lines"] as const)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const choiceOption = <const A extends string>(name: string, choices: ReadonlyArray<A>): Options.Options<A> =>
  Options.text(name).pipe(
    Options.withPseudoName(choices.join("|")),
    Options.mapEffect((text) =>
      choices.includes(text as A)
        ? Effect.succeed(text as A)
        : invalid(name, `expected one of ${choices.join(", ")}, got ${JSON.stringify(text)}`)
    )
  )

const INTEGER = /^\d+$/

/** A flag holding a whole number from `min` to `max`; `describe` says what it is for the error message. */
const integerOption = (name: string, pseudoName: string, min: number, max: number, describe: string) =>
  Options.text(name).pipe(
    Options.withPseudoName(pseudoName),
    Options.mapEffect((text) => {
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
 * const concurrency = positiveIntegerOption("concurrency").pipe(Options.optional)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const positiveIntegerOption = (name: string): Options.Options<number> =>
  integerOption(name, "N", 1, Number.MAX_SAFE_INTEGER, "a positive integer")

/**
 * A flag holding a port number, 0 to 65535 (0: the kernel picks a free one).
 *
 * ```ts
 * const port = portOption.pipe(Options.withDefault(9000))
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const portOption: Options.Options<number> = integerOption(
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
