#!/usr/bin/env node
/**
 * The `effect-wire` command line. Failures print one line on stderr,
 * `error: <what to do>`, and exit non-zero (1, or a subcommand's own code);
 * effect/cli's parse and validation messages are kept as they are, on that
 * one line, without the help text. Only defects (bugs) print a trace. A
 * command stopped by SIGINT or SIGTERM exits 130 or 143, as the shell
 * reports it (`serve`, which a signal is how one stops, drains and exits 0).
 * `--help` and `--version` print on stdout. Logs go to stderr, so stdout
 * carries nothing but the commands' output.
 *
 * ```sh
 * effect-wire serve echo --port 0
 * effect-wire --help
 * ```
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { errorLine, messageOf, teardown, watchSignals } from "./common.js"
import { command as connect } from "./connect.js"
import { command as demo } from "./demo.js"
import { command as exec } from "./exec.js"
import { NodeServices } from "./nodeServices.js"
import { command as serve } from "./serve.js"

/**
 * The subcommands. A subcommand module exports `command` and keeps the code
 * only some of its runs need (the exec server, workers, exporters, the demo)
 * behind `import()` in its handler, so that startup stays fast whichever
 * subcommand runs. What every run of a subcommand loads is imported
 * statically: a start loads all of it as one file of the bundle
 * (scripts/bundle-cli.mjs), and a file behind `import()` is one more load.
 */
const subcommands = [serve, connect, exec, demo] as const

const cli = Command.make("effect-wire").pipe(
  Command.withDescription("Typed TCP/Unix/UDP servers and clients on Effect."),
  Command.withSubcommands(subcommands)
)

const run = Command.runWith(cli, { version: "0.1.0" })

const say = (line: string): void => void process.stderr.write(`${line}\n`)

/**
 * effect/cli's message for a parse error, on one line: the "Did you mean"
 * block of an unknown flag or subcommand becomes a parenthesis.
 */
const describeCliError = (error: CliError.NonShowHelpErrors): string => {
  const [first = ""] = error.message.split("\n\n")
  const line = first.split("\n").map((part) => part.trim()).filter((part) => part !== "").join(" ")
  return "suggestions" in error && error.suggestions.length > 0
    ? `${line} (did you mean ${error.suggestions.join(" or ")}?)`
    : line
}

/**
 * effect/cli prints help on stdout and the errors of a wrong command line
 * under it; we print those errors as one line on stderr and no help (it is
 * one `--help` away). Help and version requests keep the default output.
 */
const Presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.sync(() => say(errorLine(event.errors.map(describeCliError).join("; "))))
      : CliOutput.defaultPresenter.present(event)
})

/** One line per failure; the exit code comes from the failure left in place. */
const report = <E>(cause: Cause.Cause<E>): Effect.Effect<never, E> =>
  Effect.suspend(() => {
    if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
    const line = Option.match(Cause.findErrorOption(cause), {
      // effect/cli's errors went through the Presenter already.
      onSome: (e) => CliError.isCliError(e) ? "" : errorLine(messageOf(e)),
      onNone: () => Cause.pretty(cause)
    })
    if (line !== "") say(line)
    return Effect.failCause(cause)
  })

/** Log lines in logfmt, on stderr. */
const StderrLogger = Logger.map(Logger.formatLogFmt, (line) => say(line))

const Environment = Layer.mergeAll(
  NodeServices,
  Presenter,
  Logger.layer([StderrLogger, Logger.tracerLogger])
)

watchSignals()
run(process.argv.slice(2)).pipe(
  Effect.catchCause(report),
  Effect.provide(Environment),
  NodeRuntime.runMain({ disableErrorReporting: true, teardown })
)
