/**
 * `effect-wire exec ADDRESS -- CMD ARGS…`: run a command on an exec server
 * (`effect-wire serve exec`), copy its stdout and stderr to ours, and exit
 * with its exit status. The codes follow `timeout(1)` and the shell:
 *
 * | code | meaning |
 * |---|---|
 * | 0–255 | the command's own exit code |
 * | 128+n | the command died by signal n (e.g. 137 for SIGKILL) |
 * | 122 | the peer is not an exec server: its answer is not an exec response |
 * | 123 | no answer within `--timeout` (default 30 s): the connection is reset, so the server stops the command |
 * | 124 | the server's timeout stopped the command (its output so far is printed), or no slot freed in time |
 * | 125 | this client failed: cannot connect, the connection broke, the token variable is unset, … |
 * | 126 | the server refused the request: command not allowed, wrong token, request malformed or too large |
 * | 127 | the server could not start the command |
 * | 130, 143 | this command was interrupted by SIGINT or SIGTERM (the server stops the remote command) |
 *
 * A Unix socket file that another user (not this one, not root) owns or
 * could have put there is refused before anything is sent (125):
 * `--allow-foreign-socket` connects anyway.
 *
 * `--tls` speaks TLS to a server started with `serve exec --tls-cert/--tls-key`
 * (the flags are `connect`'s: `--tls-ca`, `--tls-servername`, `--tls-cert`
 * with `--tls-key` for a server that requires a client certificate,
 * `--tls-insecure`); a handshake that fails is one error line naming why
 * (125). A token is never sent in clear text beyond loopback: without
 * `--tls` such an address is refused (125) unless `--insecure-plaintext`.
 *
 * Codes 122 to 127 come with one `error: …` line on stderr. A mistyped
 * command line (an unknown flag, a bad value) exits 1 with one line too; 1
 * is also an ordinary exit code of many commands. A reader of our stdout
 * that goes away (`… | head -c 10`) is not an error: the rest of the output
 * is dropped and the exit code is still the command's.
 *
 * ```sh
 * effect-wire exec 127.0.0.1:9002 -- uname -s
 * EXEC_TOKEN=s3cret effect-wire exec 10.0.0.5:9002 --tls --tls-ca ca.pem --token-env EXEC_TOKEN -- df -h /
 * effect-wire exec 127.0.0.1:9002 --timeout 10m -- make test   # for a server started with a longer --timeout
 * effect-wire exec unix:$XDG_RUNTIME_DIR/effect-wire/exec.sock -- uptime
 * ```
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { constants } from "node:os"
import * as Address from "../Address.js"
import type * as Exec from "../servers/Exec.js"
import { CliError, durationOption, errorLine, isBrokenPipe, limitRule, messageOf, oneLine } from "./common.js"
import { addressArg } from "./connect.js"
import { connectTls, connectTlsFlags, execPlaintext, insecurePlaintextFlag } from "./tls.js"
import { formatDuration } from "./units.js"

/**
 * The exit codes of `effect-wire exec` besides the command's own (see the
 * module doc).
 *
 * ```ts
 * if (code === ExitCode.refused) console.error("the server would not run it")
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const ExitCode = {
  /** The peer answered something that is not an exec response: it is not an exec server. */
  notAnExecServer: 122,
  /** No answer within the client's `--timeout`. */
  noAnswer: 123,
  /** The server's timeout stopped the command, or no slot freed in time. */
  timeout: 124,
  /** This client failed (connect, transport, configuration). */
  clientFailed: 125,
  /** The server refused the request. */
  refused: 126,
  /** The server could not start the command. */
  spawnFailed: 127,
  /** Added to the number of the signal that killed the command. */
  signalBase: 128
} as const

/**
 * Longer than a default exec server takes to answer (10 s in the queue, 10 s
 * of run time, 1 s to kill), so that only a server that will never answer,
 * such as one speaking another protocol, runs into it.
 */
const DEFAULT_TIMEOUT = Duration.seconds(30)

const options = {
  address: addressArg,
  argv: Argument.String("COMMAND").pipe(
    Argument.withDescription("The command and its arguments, after `--` so that its flags are not taken for ours."),
    Argument.atLeast(1),
    // at least one, as the type says
    Argument.map((argv) => argv as NonEmptyReadonlyArray<string>)
  ),
  tokenEnv: Flag.String("token-env").pipe(
    Flag.withMetavar("VAR"),
    Flag.withDescription("Send the token held by this environment variable (for servers started with --token-env)."),
    Flag.optional
  ),
  allowForeignSocket: Flag.Boolean("allow-foreign-socket").pipe(
    Flag.withDescription(
      "Connect to a Unix socket file even if another user (not you, not root) owns it or could have put it " +
        "there. Without it such a file is refused before the token is sent: whoever owns it receives the request."
    ),
    Flag.withDefault(false)
  ),
  timeout: durationOption("timeout", { example: "30s", never: true }).pipe(
    Flag.withDescription(
      "Give up after this long without an answer, e.g. 10m for a server started with a longer --timeout; " +
        `never waits for the server (default ${formatDuration(DEFAULT_TIMEOUT)}; ${limitRule(true)}). Exit 123.`
    ),
    Flag.withDefault(DEFAULT_TIMEOUT)
  ),
  ...connectTlsFlags,
  insecurePlaintext: insecurePlaintextFlag("client")
} as const

type ExecOptions = Command.Command.Config.Infer<typeof options>

/** Streams whose broken pipe (EPIPE) is already taken care of. */
const watched = new WeakSet<NodeJS.WriteStream>()

/**
 * Write all of `bytes` and wait until Node has handed them to the OS. A
 * reader that went away (EPIPE) is not our failure: what it no longer reads
 * is dropped, as `cat` does, and the exit code stays the command's.
 */
const writeTo = (stream: NodeJS.WriteStream, bytes: Uint8Array): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (!watched.has(stream)) {
      watched.add(stream)
      // Node reports the broken pipe after the write's callback, as an 'error' event.
      stream.on("error", (cause) => {
        if (!isBrokenPipe(cause)) throw cause
      })
    }
    if (bytes.length === 0 || stream.destroyed) return resume(Effect.void)
    stream.write(bytes, () => resume(Effect.void))
  })

const say = (line: string): Effect.Effect<void> => writeTo(process.stderr, new TextEncoder().encode(`${line}\n`))

/** The exit code of a response, and the error line to print with it, if any. */
const outcome = (header: Exec.ExecResponseHeader): { readonly code: number; readonly error?: string } => {
  const error = header.error
  if (error !== undefined) {
    switch (error._tag) {
      case "Timeout":
        return { code: ExitCode.timeout, error: error.message }
      case "SpawnFailed":
        return { code: ExitCode.spawnFailed, error: error.message }
      default:
        return { code: ExitCode.refused, error: `${error._tag}: ${error.message}` }
    }
  }
  if (header.exitCode !== null) return { code: header.exitCode }
  const signal = header.signal === null ? undefined : constants.signals[header.signal as NodeJS.Signals]
  return signal === undefined
    ? {
      code: ExitCode.clientFailed,
      error: `the server reported neither an exit code nor a signal this machine knows (${header.signal})`
    }
    : { code: ExitCode.signalBase + signal }
}

/** Runs the command remotely, prints its output, and returns the exit code. */
const run = (address: Address.Address, options: ExecOptions): Effect.Effect<number, unknown> =>
  Effect.gen(function*() {
    let token: Redacted.Redacted<string> | undefined
    if (Option.isSome(options.tokenEnv)) {
      const name = options.tokenEnv.value
      const value = process.env[name]
      if (value === undefined || value === "") {
        return yield* new CliError({ message: `--token-env ${name}: the environment variable ${name} is not set or empty` })
      }
      token = Redacted.make(value)
    }
    const tls = yield* connectTls(options)
    const plaintext = yield* execPlaintext("client", address, {
      tls: tls !== undefined,
      token: token !== undefined,
      insecurePlaintext: options.insecurePlaintext
    })
    if (plaintext !== undefined) yield* say(plaintext)
    const ExecModule = yield* Effect.promise(() => import("../servers/Exec.js"))
    const timeout = Duration.isFinite(options.timeout) ? options.timeout : undefined
    const client = yield* ExecModule.client(address, {
      token,
      timeout,
      unixOwner: options.allowForeignSocket ? "any" : "self",
      tls
    })
    // `request` rather than `run`: a timed-out command's output so far is in the response.
    const result = yield* client.request({ argv: options.argv })
    yield* writeTo(process.stdout, result.stdout)
    yield* writeTo(process.stderr, result.stderr)
    const { code, error } = outcome(result.header)
    if (error !== undefined) yield* say(errorLine(error))
    if (result.header.truncated) {
      yield* say("warning: the output was cut at the server's output limit and the command was stopped")
    }
    return code
  }).pipe(Effect.scoped)

const tagOf = (e: unknown): unknown => typeof e === "object" && e !== null && "_tag" in e ? e._tag : undefined

/** The exit code and the one error line of a failure of this client. */
const failure = (address: Address.Address, options: ExecOptions, e: unknown): { code: number; line: string } => {
  const at = Address.format(address)
  switch (tagOf(e)) {
    case "MalformedResponse":
      return {
        code: ExitCode.notAnExecServer,
        line: `${at} is not an effect-wire exec server: its answer is not an exec response (${
          oneLine((e as { readonly reason: string }).reason)
        })`
      }
    case "ResponseTimeout":
      return {
        code: ExitCode.noAnswer,
        line: `no answer from ${at} within ${formatDuration(options.timeout)} (--timeout): is it an effect-wire exec ` +
          "server? A longer command needs a larger --timeout (or never); the connection was reset, so the server " +
          "stops the command"
      }
    case "UntrustedSocketOwner":
      return {
        code: ExitCode.clientFailed,
        line: `refusing to connect to ${at}: ${
          (e as { readonly detail?: string | undefined }).detail ?? "its socket file belongs to another user"
        }; whoever owns it would receive the request (and its token). If you trust it, add --allow-foreign-socket`
      }
    default:
      return { code: ExitCode.clientFailed, line: messageOf(e) }
  }
}

const exec = (options: ExecOptions) =>
  run(options.address, options).pipe(
    Effect.catch((e) => {
      const { code, line } = failure(options.address, options, e)
      return Effect.as(say(errorLine(line)), code)
    }),
    // The code is left for Node to exit with once the event loop is empty:
    // `process.exit` here could cut output still flowing into a pipe.
    Effect.flatMap((code) => Effect.sync(() => void (process.exitCode = code)))
  )

/**
 * The `exec` command (see the module doc for its exit codes).
 *
 * ```ts
 * const cli = Command.make("effect-wire").pipe(Command.withSubcommands([exec.command]))
 * ```
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("exec", options, exec).pipe(
  Command.withDescription(
    [
      "Run a command on an exec server (effect-wire serve exec): effect-wire exec ADDRESS -- CMD ARGS... " +
      "Its stdout and stderr are copied to ours, and the exit code is the command's, or:",
      "  - 128+n: the command died by signal n (137 for SIGKILL)",
      "  - 122: the peer is not an exec server (its answer is not an exec response)",
      "  - 123: no answer within --timeout (default 30s); the server stops the command",
      "  - 124: the server's timeout stopped it (its output so far is printed), or no slot freed in time",
      "  - 125: this client failed: cannot connect, the TLS handshake failed, the connection broke, the token " +
        "variable is unset, the Unix socket file belongs to another user (--allow-foreign-socket), a token would " +
        "go beyond loopback without --tls (--insecure-plaintext)",
      "  - 126: the server refused: command not allowed, wrong token, malformed or oversized request",
      "  - 127: the server could not start the command",
      "  - 130, 143: this command was interrupted by SIGINT or SIGTERM (the server stops the command)",
      "  - 1: this command line is wrong (unknown flag, bad value)",
      "  122 to 127 and 1 come with one error line on stderr."
    ].join("\n")
  ),
  Command.withShortDescription("Run a command on an exec server and exit with its exit code (the codes: exec --help).")
)
