/**
 * What every `effect-wire` subcommand shares: the one-line failure the
 * entry point prints, option parsers for the human units, the
 * `listening …` line that scripts wait for, and the exit code of a command
 * stopped by a signal.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as EffectCliError from "effect/cli/CliError"
import * as Flag from "effect/cli/Flag"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Runtime from "effect/Runtime"
import { constants } from "node:os"
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

/**
 * A message on one line, as the command line prints every error: line
 * breaks (and the indentation after them) become `; `.
 *
 * ```ts
 * oneLine("bad header\n  at exitCode") // "bad header; at exitCode"
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const oneLine = (text: string): string => text.trim().replace(/\s*\n\s*/g, "; ")

/**
 * Characters a terminal acts on instead of showing: C0 controls (ESC starts
 * the sequences that retitle or clear a terminal), DEL, C1 controls (0x9b is
 * a one-byte CSI), the bidi controls that reorder what is shown (U+202A–202E,
 * U+2066–2069, and the marks U+061C, U+200E, U+200F) and the Unicode line and
 * paragraph separators.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

const escapeOne = (c: string): string => {
  const code = c.charCodeAt(0)
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/**
 * Text shown as it is, with every character a terminal would act on written
 * as an escape (`\x1b`, `\x07`, `\u202e`): what the command line does to any
 * text that may come from a peer (a server's error message) before printing
 * it, so that a hostile server cannot retitle, clear or rewrite the
 * terminal, nor reorder what a line shows. Escaping twice changes nothing.
 *
 * ```ts
 * printable("\u001b]0;pwned\u0007") // "\\x1b]0;pwned\\x07"
 * ```
 *
 * @since 0.2.0
 * @category formatting
 */
export const printable = (text: string): string => text.replace(UNPRINTABLE, escapeOne)

/**
 * What the command line prints of a failure after `error: `: its message
 * (or the value itself), on one line, {@link printable}.
 *
 * ```ts
 * messageOf(new CliError({ message: "--unix cannot be combined with --udp" })) // "--unix cannot be combined with --udp"
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const messageOf = (e: unknown): string =>
  printable(oneLine(
    typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" && e.message !== ""
      ? e.message
      : String(e)
  ))

/**
 * The one line the command line prints for a failure, built from any text,
 * a peer's included: `error: ` and the text on one line, {@link printable}.
 * Every `error:` line goes through it.
 *
 * ```ts
 * errorLine(`the server said: ${remote.message}`) // "error: the server said: \\x1b[2J…"
 * ```
 *
 * @since 0.2.0
 * @category formatting
 */
export const errorLine = (text: string): string => `error: ${printable(oneLine(text))}`

/**
 * Whether a write failed because nobody reads the other end any more
 * (`effect-wire connect … | head -c 10`): the command then ends quietly, as
 * `nc` does, instead of reporting an error.
 *
 * ```ts
 * process.stdout.on("error", (e) => isBrokenPipe(e) ? stop() : fail(e))
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const isBrokenPipe = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "EPIPE"

/** A bad flag value: the entry point prints it as `error: --flag: reason`. */
const invalid = (flag: string, reason: string) =>
  Effect.fail(new EffectCliError.ValidationError({ message: `--${flag}: ${reason}` }))

/**
 * The rule for every duration, size and count flag, in the words of the
 * help text. 0 is never a hidden "no limit" (nor "at once"): it is refused
 * with a line saying what to write. A time limit that may be lifted takes
 * `never`; sizes, counts and the other durations must be above 0.
 *
 * ```ts
 * Flag.withDescription(`Close a connection idle this long (default never; ${limitRule(true)}).`)
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const limitRule = (never: boolean): string => never ? "never for no limit, 0 is refused" : "must be above 0"

/**
 * A flag holding a duration above zero such as `30s`, `500ms`, `2m` (a bare
 * number is seconds), and with `never: true` also `never`, read as
 * `Duration.infinity`. A bad value, 0 included, is a validation error naming
 * the flag and saying what to write (`example` is the flag's default).
 *
 * ```ts
 * const idleTimeout = durationOption("idle-timeout", { example: "30s", never: true })
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const durationOption = (
  name: string,
  options: { readonly example: string; readonly never?: boolean | undefined }
): Flag.Flag<Duration.Duration> => {
  const expected = `write a duration above 0, e.g. ${options.example}${options.never === true ? ", or never for no limit" : ""}`
  return Flag.String(name).pipe(
    Flag.withMetavar("DURATION"),
    Flag.mapEffect((text) => {
      if (text.trim() === "never") {
        return options.never === true ? Effect.succeed(Duration.infinity) : invalid(name, `cannot be never: ${expected}`)
      }
      return Result.match(parseDuration(text), {
        onFailure: (e) => invalid(name, e),
        onSuccess: (duration) =>
          Duration.isZero(duration) ? invalid(name, `0 is not a limit: ${expected}`) : Effect.succeed(duration)
      })
    })
  )
}

/**
 * A flag holding a byte size above zero such as `8MiB`, `64KiB` or `4096`.
 *
 * ```ts
 * const maxOutput = sizeOption("max-output", "8MiB")
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const sizeOption = (name: string, example: string): Flag.Flag<number> =>
  Flag.String(name).pipe(
    Flag.withMetavar("SIZE"),
    Flag.mapEffect((text) =>
      Result.match(parseSize(text), {
        onFailure: (e) => invalid(name, e),
        onSuccess: (size) =>
          size === 0 ? invalid(name, `0 is not a limit: write a size above 0, e.g. ${example}`) : Effect.succeed(size)
      })
    )
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
 * A flag holding a count above zero; 0 is refused with a line saying what
 * to write (`example` is the flag's default).
 *
 * ```ts
 * const concurrency = positiveIntegerOption("concurrency", "4")
 * ```
 *
 * @since 0.1.0
 * @category options
 */
export const positiveIntegerOption = (name: string, example: string): Flag.Flag<number> =>
  Flag.String(name).pipe(
    Flag.withMetavar("N"),
    Flag.mapEffect((text) => {
      const n = Number(text)
      if (!INTEGER.test(text.trim()) || !Number.isSafeInteger(n)) {
        return invalid(name, `expected a whole number above 0, got ${JSON.stringify(text)}`)
      }
      return n === 0 ? invalid(name, `0 is not a limit: write a whole number above 0, e.g. ${example}`) : Effect.succeed(n)
    })
  )

const MODE = /^(?:0o?)?([0-7]{1,3})$/

/**
 * A flag holding file permission bits in octal, as `chmod` takes them:
 * `600`, `0660` or `0o660` (at most 777; setuid, setgid and sticky bits are
 * refused).
 *
 * ```ts
 * const unixMode = modeOption("unix-mode").pipe(Flag.optional)
 * ```
 *
 * @since 0.2.0
 * @category options
 */
export const modeOption = (name: string): Flag.Flag<number> =>
  Flag.String(name).pipe(
    Flag.withMetavar("MODE"),
    Flag.mapEffect((text) => {
      const match = MODE.exec(text.trim())
      return match === null
        ? invalid(name, `expected permission bits in octal from 000 to 777, e.g. 660, got ${JSON.stringify(text)}`)
        : Effect.succeed(parseInt(match[1]!, 8))
    })
  )

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
 * `listening tcp [::1]:40123`, `listening unix /run/app/echo.sock` or
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
 * released: the servers drained) instead of 130 or 143.
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

/** The first of SIGINT and SIGTERM received, while {@link watchSignals} listens. */
let received: "SIGINT" | "SIGTERM" | undefined
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const
const onSignal = (signal: NodeJS.Signals) => {
  if (received === undefined && (signal === "SIGINT" || signal === "SIGTERM")) received = signal
}

/**
 * Note which signal stops the command, for {@link teardown}'s exit code.
 * `NodeRuntime.runMain` interrupts the program on SIGINT and SIGTERM alike;
 * call this before it, so that the signal is known by the time the
 * interrupted program tears down.
 *
 * ```ts
 * watchSignals()
 * program.pipe(NodeRuntime.runMain({ disableErrorReporting: true, teardown }))
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const watchSignals = (): void => {
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal)
}

/**
 * How long a server stopped by a signal, every scope released, waits for
 * Node to exit by itself before it calls `process.exit`. Node's
 * `process.exit` can hang for good when V8 is compiling on a background
 * thread at that moment (nodejs/node#54918: it joins V8's worker threads
 * while a compile job waits for a collection only the main thread could
 * run; seen here after a server was flooded, about one stop in seven). A
 * process whose event loop is empty tears V8 down first and does not; the
 * timer, unref'd, only fires when something else still holds the loop.
 */
const EXIT_FALLBACK_MS = 1_000

/** Exit with `code` once the event loop is empty, or through `onExit` after {@link EXIT_FALLBACK_MS}. */
const exitWhenIdle = (code: number, onExit: (code: number) => void): void => {
  process.exitCode = code
  setTimeout(() => onExit(code), EXIT_FALLBACK_MS).unref()
}

/**
 * The exit code of the command line: 0 on success, the failure's own code
 * otherwise, and for a command interrupted by a signal 128 + its number, as
 * shells and netcat report it: 130 for SIGINT, 143 for SIGTERM. A command
 * stopped by a signal while waiting in {@link untilSignal} exits 0 instead
 * (once every scope has been released: the servers drained), when Node's
 * event loop is empty rather than through `process.exit`; a failure while
 * draining is still a failure.
 *
 * ```ts
 * program.pipe(NodeRuntime.runMain({ disableErrorReporting: true, teardown }))
 * ```
 *
 * @since 0.1.0
 * @category running
 */
export const teardown: Runtime.Teardown = (exit, onExit) => {
  for (const signal of STOP_SIGNALS) process.off(signal, onSignal)
  if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) {
    if (servingUntilSignal) return exitWhenIdle(0, onExit)
    if (received !== undefined) return onExit(128 + constants.signals[received])
  }
  return Runtime.defaultTeardown(exit, onExit)
}
