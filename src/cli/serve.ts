/**
 * `effect-wire serve echo|upper|exec`: run a built-in server until SIGINT or
 * SIGTERM, then drain and exit 0 (not the 130 of an interrupted command). Once a listener is ready it prints one
 * line on stdout (`listening tcp 127.0.0.1:9000`, `listening unix /tmp/x.sock`,
 * `listening udp 127.0.0.1:9000`). Only the option definitions load at
 * startup; each server's code is imported when its subcommand runs.
 *
 * ```sh
 * effect-wire serve echo --port 0 --framing lines
 * effect-wire serve upper --unix /tmp/upper.sock
 * EXEC_TOKEN=s3cret effect-wire serve exec --allow date,uptime --token-env EXEC_TOKEN
 * ```
 *
 * @since 0.1.0
 */
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Address from "../Address.js"
import {
  choiceOption,
  CliError,
  durationOption,
  positiveIntegerOption,
  portOption,
  printListening,
  sizeOption,
  untilSignal
} from "./common.js"

const DEFAULT_HOST = "127.0.0.1"

/** Where and how every server listens. */
const listenOptions = {
  host: Flag.String("host").pipe(
    Flag.withMetavar("HOST"),
    Flag.withDescription(`Address to listen on (default ${DEFAULT_HOST}: this machine only). IPv6 as ::1.`),
    Flag.optional
  ),
  port: portOption.pipe(Flag.withDescription("Port to listen on; 0 picks a free one."), Flag.optional),
  unix: Flag.String("unix").pipe(
    Flag.withMetavar("PATH"),
    Flag.withDescription("Listen on this Unix socket file instead of TCP (a stale file is replaced)."),
    Flag.optional
  ),
  maxConnections: positiveIntegerOption("max-connections").pipe(
    Flag.withDescription("Connections served at once (default 1024); further ones wait."),
    Flag.optional
  ),
  idleTimeout: durationOption("idle-timeout").pipe(
    Flag.withDescription("Close a connection idle this long, e.g. 30s (default: never)."),
    Flag.optional
  ),
  shutdownTimeout: durationOption("shutdown-timeout").pipe(
    Flag.withDescription("On SIGINT/SIGTERM, how long open connections may finish, e.g. 10s (default 10s)."),
    Flag.optional
  )
} as const

type ListenOptions = Command.Command.Config.Infer<typeof listenOptions>

/** The options of the byte servers, echo and upper. */
const byteOptions = {
  ...listenOptions,
  udp: Flag.Boolean("udp").pipe(Flag.withDescription("Also serve UDP on the same host and port."), Flag.withDefault(false)),
  framing: choiceOption("framing", ["raw", "length", "lines"] as const).pipe(
    Flag.withDescription("raw bytes, length-prefixed frames (4-byte big-endian), or lines (default raw)."),
    Flag.withDefault("raw" as const)
  )
} as const

type ByteOptions = Command.Command.Config.Infer<typeof byteOptions>

const fail = (message: string) => Effect.fail(new CliError({ message }))

/** The address from `--host`/`--port` or `--unix`. */
const listenAddress = (options: ListenOptions, defaultPort: number): Effect.Effect<Address.Address, CliError> => {
  if (Option.isSome(options.unix)) {
    if (Option.isSome(options.host) || Option.isSome(options.port)) {
      return fail("--unix listens on a socket file: drop --host and --port, or drop --unix")
    }
    return Result.match(Address.parse(`unix:${options.unix.value}`), {
      onFailure: (e) => fail(`--unix: ${e.message}`),
      onSuccess: Effect.succeed
    })
  }
  const host = Option.getOrElse(options.host, () => DEFAULT_HOST).replace(/^\[(.*)\]$/, "$1")
  const port = Option.getOrElse(options.port, () => defaultPort)
  return Result.match(Address.parse(host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`), {
    onFailure: (e) => fail(`--host: ${e.message}`),
    onSuccess: Effect.succeed
  })
}

/** The server options that every server takes from the listen flags. */
const serverOptions = (options: ListenOptions) => ({
  maxConnections: Option.getOrUndefined(options.maxConnections),
  idleTimeout: Option.getOrUndefined<Duration.Duration>(options.idleTimeout),
  shutdownTimeout: Option.getOrUndefined<Duration.Duration>(options.shutdownTimeout)
})

const serveBytes = (kind: "echo" | "upper", defaultPort: number) => (options: ByteOptions) =>
  Effect.gen(function*() {
    const address = yield* listenAddress(options, defaultPort)
    if (options.udp && address._tag === "UnixAddress") {
      return yield* fail("--udp needs a host and port: it cannot be combined with --unix")
    }
    const servers = kind === "echo"
      ? yield* Effect.promise(() => import("../servers/Echo.js"))
      : yield* Effect.promise(() => import("../servers/Upper.js"))
    const server = yield* servers.make({ address, framing: options.framing, ...serverOptions(options) })
    yield* printListening("tcp", server.address)
    if (options.udp && server.address._tag === "TcpAddress") {
      // The same port as TCP, so one number reaches both; with --port 0 the
      // kernel may have given TCP a port that UDP cannot have.
      const sameAddress = server.address
      const udp = yield* servers.makeUdp(sameAddress).pipe(
        Effect.catchTag("AddressInUse", (e) =>
          address._tag === "TcpAddress" && address.port === 0
            ? servers.makeUdp(Address.tcp(sameAddress.host, 0))
            : Effect.fail(e))
      )
      yield* printListening("udp", udp.address)
    }
    return yield* untilSignal
  }).pipe(Effect.scoped)

const echo = Command.make("echo", byteOptions, serveBytes("echo", 9000)).pipe(
  Command.withDescription("Echo server: every byte (or frame) goes back to the sender. Default port 9000.")
)

const upper = Command.make("upper", byteOptions, serveBytes("upper", 9001)).pipe(
  Command.withDescription("Upper-case server: ASCII letters come back upper-cased, other bytes unchanged. Default port 9001.")
)

const execOptions = {
  ...listenOptions,
  allow: Flag.String("allow").pipe(
    Flag.withMetavar("CMD,CMD"),
    Flag.withDescription("Required: commands clients may run, by name (looked up in PATH) or absolute path."),
    Flag.optional
  ),
  tokenEnv: Flag.String("token-env").pipe(
    Flag.withMetavar("VAR"),
    Flag.withDescription("Require the token held by this environment variable in every request."),
    Flag.optional
  ),
  timeout: durationOption("timeout").pipe(
    Flag.withDescription("Run time per command before it is killed, e.g. 10s (default 10s)."),
    Flag.optional
  ),
  maxOutput: sizeOption("max-output").pipe(
    Flag.withDescription("stdout + stderr kept per command, e.g. 8MiB (default 8MiB)."),
    Flag.optional
  ),
  concurrency: positiveIntegerOption("concurrency").pipe(
    Flag.withDescription("Commands running at once (default 4); further requests wait."),
    Flag.optional
  )
} as const

type ExecOptions = Command.Command.Config.Infer<typeof execOptions>

const serveExec = (options: ExecOptions) =>
  Effect.gen(function*() {
    const allow = Option.getOrElse(options.allow, () => "").split(",").map((s) => s.trim()).filter((s) => s !== "")
    if (allow.length === 0) {
      return yield* fail(
        "serve exec runs only the commands you allow: add --allow with their names, e.g. --allow date,uptime"
      )
    }
    let token: Redacted.Redacted<string> | undefined = undefined
    if (Option.isSome(options.tokenEnv)) {
      const name = options.tokenEnv.value
      const value = process.env[name]
      if (value === undefined || value === "") {
        return yield* fail(`--token-env ${name}: the environment variable ${name} is not set or empty`)
      }
      token = Redacted.make(value)
    }
    const address = yield* listenAddress(options, 9002)
    const Exec = yield* Effect.promise(() => import("../servers/Exec.js"))
    const server = yield* Exec.make({
      address,
      allow,
      token,
      timeout: Option.getOrUndefined<Duration.Duration>(options.timeout),
      maxOutput: Option.getOrUndefined(options.maxOutput),
      concurrency: Option.getOrUndefined(options.concurrency),
      ...serverOptions(options)
    }).pipe(
      // The library's message names the `token` option; on the command line it is --token-env.
      Effect.catchTag("InsecureBind", (e) =>
        fail(
          `refusing to serve commands on ${Address.format(e.address)} without a token: anyone who can reach it ` +
            "could run the allowed commands; add --token-env VAR, or listen on 127.0.0.1, ::1 or --unix"
        ))
    )
    yield* printListening("tcp", server.address)
    return yield* untilSignal
  }).pipe(Effect.scoped)

const exec = Command.make("exec", execOptions, serveExec).pipe(
  Command.withDescription("Exec server: runs allowlisted commands for its clients. Default port 9002.")
)

/**
 * The `serve` command with its `echo`, `upper` and `exec` subcommands.
 *
 * ```ts
 * const cli = Command.make("effect-wire").pipe(Command.withSubcommands([serve.command]))
 * ```
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("serve").pipe(
  Command.withDescription("Run a built-in server until SIGINT/SIGTERM, then drain and exit."),
  Command.withSubcommands([echo, upper, exec])
)
