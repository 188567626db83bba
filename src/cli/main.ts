#!/usr/bin/env node
/**
 * The `effect-wire` command line. Failures print one line on stderr,
 * `error: <what to do>`, and exit 1; @effect/cli's own validation messages
 * are kept as they are (also short); only defects (bugs) print a trace.
 * Logs go to stderr, so stdout carries nothing but the commands' output.
 *
 * ```sh
 * effect-wire serve echo --port 0
 * effect-wire --help
 * ```
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"

/**
 * The subcommands, one line each. A subcommand module exports `command`
 * and keeps its heavy code behind `import()` in its handler, so that startup
 * stays fast whichever subcommand runs.
 */
const subcommands = [
  (await import("./serve.js")).command,
  (await import("./connect.js")).command,
  (await import("./exec.js")).command,
  (await import("./demo.js")).command
] as const

const cli = Command.make("effect-wire").pipe(
  Command.withDescription("Typed TCP/Unix/UDP servers and clients on Effect."),
  Command.withSubcommands(subcommands)
)

const run = Command.run(cli, { name: "effect-wire", version: "0.1.0" })

/**
 * @effect/cli finds its built-in `--log-level` only before a command's own
 * options; moving it to the front lets it stand anywhere, as `--help` does.
 */
const logLevelFirst = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const [node = "node", script = "effect-wire", ...args] = argv
  const front: Array<string> = []
  const rest: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") {
      rest.push(...args.slice(i))
      break
    }
    if (arg === "--log-level" && i + 1 < args.length) front.push(arg, args[++i]!)
    else if (arg.startsWith("--log-level=")) front.push("--log-level", arg.slice("--log-level=".length))
    else rest.push(arg)
  }
  return [node, script, ...front, ...rest]
}

/** One line per failure; the exit code comes from the failure left in place. */
const report = <E>(cause: Cause.Cause<E>): Effect.Effect<never, E> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
  const failure = Cause.failureOption(cause)
  const say = Option.match(failure, {
    // @effect/cli printed its own message already.
    onSome: (e) => ValidationError.isValidationError(e) ? "" : `error: ${messageOf(e)}`,
    onNone: () => Cause.pretty(cause)
  })
  return Effect.zipRight(
    Effect.sync(() => {
      if (say !== "") process.stderr.write(`${say}\n`)
    }),
    Effect.failCause(cause)
  )
}

const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" && e.message !== ""
    ? e.message
    : String(e)

/**
 * @effect/cli prints its validation errors through `Console.error`, as a
 * paragraph and a blank line; this makes them the same one line as ours.
 * Logs therefore bypass the Console service and go straight to stderr, and
 * so must a subcommand's own stderr output (write to `process.stderr`).
 */
const withErrorLines = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (base) =>
    Effect.withConsole(effect, {
      ...base,
      error: (...args: ReadonlyArray<unknown>) =>
        typeof args[0] === "string" ? base.error(`error: ${args[0].trim()}`, ...args.slice(1)) : base.error(...args)
    }))

const Environment = Layer.mergeAll(
  NodeFileSystem.layer,
  NodePath.layer,
  NodeTerminal.layer,
  Logger.replace(
    Logger.defaultLogger,
    Logger.map(Logger.logfmtLogger, (line) => void process.stderr.write(`${line}\n`))
  )
)

run(logLevelFirst(process.argv)).pipe(
  withErrorLines,
  Effect.catchAllCause(report),
  Effect.provide(Environment),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
