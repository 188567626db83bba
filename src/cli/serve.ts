/**
 * `effect-wire serve echo|upper|exec`: run a built-in server until SIGINT or
 * SIGTERM, then drain and exit 0 (not the 130 or 143 of an interrupted
 * command). Once a listener is ready it prints one line on stdout
 * (`listening tcp 127.0.0.1:9000`, `listening unix /run/app/echo.sock`,
 * `listening udp 127.0.0.1:9000`); then one line on stderr names every
 * limit it runs with, as the flags that change them
 * (`limits max-connections=1024 overflow=queue idle-timeout=never …`), so
 * that none is silent. Only the option definitions load at startup; each
 * server's code is imported when its subcommand runs.
 *
 * ```sh
 * effect-wire serve echo --port 0 --framing lines --max-frame 64KiB --frame-timeout 10s
 * effect-wire serve upper --unix "$XDG_RUNTIME_DIR/effect-wire/upper.sock" --unix-mode 660 --idle-timeout 30s
 * EXEC_TOKEN=s3cret effect-wire serve exec --allow uname,uptime --token-env EXEC_TOKEN
 * ```
 *
 * @since 0.1.0
 */
import * as EffectCliError from "effect/cli/CliError"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Address from "../Address.js"
import type * as Scope from "effect/Scope"
import * as Framing from "../Framing.js"
import { proxyConfig } from "../internal/proxyAccept.js"
import type * as Server from "../Server.js"
import * as Echo from "../servers/Echo.js"
import * as Upper from "../servers/Upper.js"
import {
  choiceOption,
  CliError,
  durationOption,
  limitRule,
  messageOf,
  positiveIntegerOption,
  portOption,
  printListening,
  modeOption,
  sizeOption,
  untilSignal
} from "./common.js"
import { observabilityFlags, publishWorkersMetrics, withObservability } from "./observability.js"
import { execPlaintext, insecurePlaintextFlag, serveTls, serveTlsFlags } from "./tls.js"
import { formatDuration, formatSize } from "./units.js"

const DEFAULT_HOST = "127.0.0.1"

/**
 * The limits `serve` runs with unless told otherwise. They are passed to the
 * library explicitly, so that what the help says and what `serve` prints
 * at start is what runs.
 */
const DEFAULTS = {
  maxConnections: 1024,
  overflow: "queue",
  idleTimeout: Duration.infinity,
  shutdownTimeout: Duration.seconds(10),
  maxFrame: 8 * 1024 * 1024,
  frameTimeout: Duration.seconds(30),
  timeout: Duration.seconds(10),
  maxOutput: 8 * 1024 * 1024,
  concurrency: 4,
  maxRequest: 64 * 1024,
  // serve exec: an operator's defaults (issue 18). A client that sends
  // nothing for 5 minutes is gone; one that takes none of an answer for 30 s
  // is cut; all answers waiting for their clients share 256 MiB.
  execIdleTimeout: Duration.minutes(5),
  writeTimeout: Duration.seconds(30),
  memoryBudget: 256 * 1024 * 1024
} as const

/** `--workers`: a whole number from 1 to 1024, or `auto`. */
const workersOf = (text: string): Effect.Effect<number | "auto", EffectCliError.ValidationError> => {
  const n = Number(text)
  if (text.trim() === "auto") return Effect.succeed("auto")
  return /^\d+$/.test(text.trim()) && n >= 1 && n <= 1024
    ? Effect.succeed(n)
    : Effect.fail(
      new EffectCliError.ValidationError({
        message: `--workers: expected a number of processes from 1 to 1024, or auto (one per core), got ${JSON.stringify(text)}`
      })
    )
}

/**
 * Start the server here (`--workers 1`), or in worker processes sharing its
 * address: in a worker this serves and never returns, so the lines printed
 * after it come from this process alone.
 */
const startServer = <E>(
  options: ListenOptions,
  address: Address.Address,
  make: Effect.Effect<Server.RunningServer, E, Scope.Scope>,
  forwardSignals: ReadonlyArray<NodeJS.Signals>
) =>
  Effect.gen(function*() {
    if (options.workers === 1) return yield* make
    if (address._tag === "UnixAddress") {
      return yield* fail(
        "--workers needs a TCP address: worker processes cannot share a Unix socket file (--unix); run one process " +
          "per socket file, or listen on --host/--port"
      )
    }
    const Workers = yield* Effect.promise(() => import("../Workers.js"))
    const group = yield* Workers.make(make, {
      workers: options.workers,
      // Each worker drains within --shutdown-timeout; a little more for the processes to end.
      shutdownTimeout: Duration.sum(options.shutdownTimeout, Duration.seconds(5)),
      forwardSignals
    })
    // --metrics HOST:PORT serves the workers' sums.
    yield* publishWorkersMetrics(group.metrics)
    return group
  })

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
  unixMode: modeOption("unix-mode").pipe(
    Flag.withDescription(
      "With --unix: the socket file's permission bits in octal, whatever the umask (default 600: only this " +
        "user and root can connect; 660 adds the file's group, 666 any local user)."
    ),
    Flag.optional
  ),
  maxConnections: positiveIntegerOption("max-connections", String(DEFAULTS.maxConnections)).pipe(
    Flag.withDescription(
      `Connections served at once; past it --overflow decides (default ${DEFAULTS.maxConnections}; ${
        limitRule(false)
      }).`
    ),
    Flag.withDefault(DEFAULTS.maxConnections)
  ),
  overflow: choiceOption("overflow", ["queue", "refuse"] as const).pipe(
    Flag.withDescription(
      "Past --max-connections: queue waits in the accept queue until a connection ends (closed once that " +
        "queue is full too); refuse closes at once (default queue)."
    ),
    Flag.withDefault(DEFAULTS.overflow)
  ),
  idleTimeout: durationOption("idle-timeout", { example: "30s", never: true }).pipe(
    Flag.withDescription(`Close a connection idle this long, e.g. 30s (default never; ${limitRule(true)}).`),
    Flag.withDefault(DEFAULTS.idleTimeout)
  ),
  workers: Flag.String("workers").pipe(
    Flag.withMetavar("N|auto"),
    Flag.withDescription(
      "Serve in N worker processes sharing the address (auto: one per core; default 1, this process alone). " +
        "A worker that dies is restarted; SIGINT/SIGTERM drains them all. TCP (and --udp), not --unix."
    ),
    Flag.mapEffect(workersOf),
    Flag.withDefault(1 as number | "auto")
  ),
  shutdownTimeout: durationOption("shutdown-timeout", { example: formatDuration(DEFAULTS.shutdownTimeout) }).pipe(
    Flag.withDescription(
      `On SIGINT/SIGTERM, how long open connections may finish, e.g. 30s (default ${
        formatDuration(DEFAULTS.shutdownTimeout)
      }; ${limitRule(false)}).`
    ),
    Flag.withDefault(DEFAULTS.shutdownTimeout)
  ),
  ...observabilityFlags
} as const

type ListenOptions = Command.Command.Config.Infer<typeof listenOptions>

/**
 * The default `--max-frame` is at most this share of `--memory-budget`, so
 * that at least this many connections can each hold an unfinished frame.
 */
const BUDGET_PER_FRAME = 32

/** Where a PROXY header may come from unless --proxy-trusted says: a load balancer on this machine. */
const DEFAULT_PROXY_TRUSTED = "127.0.0.1,::1"

/** The PROXY protocol flags of the byte servers. */
const proxyFlags = {
  proxyProtocol: Flag.Boolean("proxy-protocol").pipe(
    Flag.withDescription(
      "Behind a load balancer: read a PROXY protocol header (v1 or v2, HAProxy's send-proxy/send-proxy-v2) at the " +
        "start of every connection; the client is the one it names. Connections without a valid header, or not " +
        "from --proxy-trusted, are closed."
    ),
    Flag.withDefault(false)
  ),
  proxyTrusted: Flag.String("proxy-trusted").pipe(
    Flag.withMetavar("CIDR,CIDR"),
    Flag.withDescription(
      `With --proxy-protocol: the load balancers' addresses or networks, e.g. 10.0.0.0/8,fd00::/8 (default ${DEFAULT_PROXY_TRUSTED}).`
    ),
    Flag.optional
  )
} as const

/** The options of the byte servers, echo and upper. */
const byteOptions = {
  ...listenOptions,
  ...serveTlsFlags,
  udp: Flag.Boolean("udp").pipe(Flag.withDescription("Also serve UDP on the same host and port."), Flag.withDefault(false)),
  ...proxyFlags,
  framing: choiceOption("framing", ["raw", "length", "lines"] as const).pipe(
    Flag.withDescription("raw bytes, length-prefixed frames (4-byte big-endian), or lines (default raw)."),
    Flag.withDefault("raw" as const)
  ),
  maxFrame: sizeOption("max-frame", formatSize(DEFAULTS.maxFrame)).pipe(
    Flag.withDescription(
      `With --framing length or lines: the longest frame; a longer one closes the connection (default ${
        formatSize(DEFAULTS.maxFrame)
      }, or --memory-budget / ${BUDGET_PER_FRAME} when that is less: ${BUDGET_PER_FRAME} unfinished frames fit in ` +
        `the budget; ${limitRule(false)}).`
    ),
    Flag.optional
  ),
  writeTimeout: durationOption("write-timeout", { example: formatDuration(DEFAULTS.writeTimeout), never: true }).pipe(
    Flag.withDescription(
      `Disconnect a client that leaves what the server wrote to it waiting this long, e.g. 1m: it stopped ` +
        `reading (default ${formatDuration(DEFAULTS.writeTimeout)}; ${limitRule(true)}).`
    ),
    Flag.withDefault(DEFAULTS.writeTimeout)
  ),
  memoryBudget: sizeOption("memory-budget", formatSize(DEFAULTS.memoryBudget)).pipe(
    Flag.withDescription(
      `Bytes all connections together may hold: unfinished frames and output their clients have not taken. ` +
        `Past it every connection stops reading; then those holding the most are disconnected (default ${
          formatSize(DEFAULTS.memoryBudget)
        }; ${limitRule(false)}).`
    ),
    Flag.withDefault(DEFAULTS.memoryBudget)
  ),
  frameTimeout: durationOption("frame-timeout", { example: formatDuration(DEFAULTS.frameTimeout), never: true }).pipe(
    Flag.withDescription(
      `With --framing length or lines: the longest a frame may take from its first byte to its last; a slower ` +
        `client is disconnected, which --idle-timeout never does while bytes trickle in (default ${
          formatDuration(DEFAULTS.frameTimeout)
        }; ${limitRule(true)}).`
    ),
    Flag.optional
  )
} as const

type ByteOptions = Command.Command.Config.Infer<typeof byteOptions>

/** The server's `proxyProtocol` from --proxy-protocol and --proxy-trusted, and their limits-line entries. */
const proxyOf = (options: ByteOptions) =>
  Effect.gen(function*() {
    if (!options.proxyProtocol) {
      if (Option.isSome(options.proxyTrusted)) {
        return yield* fail("--proxy-trusted applies to --proxy-protocol: add it, or drop --proxy-trusted")
      }
      return { proxyProtocol: undefined, limits: [] as Limits }
    }
    const trustedSources = Option.getOrElse(options.proxyTrusted, () => DEFAULT_PROXY_TRUSTED).split(",")
      .map((s) => s.trim()).filter((s) => s !== "")
    if (options.udp) return yield* fail("--udp cannot be combined with --proxy-protocol: a datagram has no header")
    yield* Effect.try({
      try: () => proxyConfig("serve", { trustedSources }),
      catch: (e) =>
        new CliError({ message: `--proxy-trusted: ${messageOf(e).replace(/^serve: proxyProtocol\.trustedSources /, "")}` })
    })
    return {
      proxyProtocol: { trustedSources },
      limits: [["proxy-protocol", "v1,v2"], ["proxy-trusted", trustedSources.join(",")]] as Limits
    }
  })

const fail = (message: string) => Effect.fail(new CliError({ message }))

/** The address from `--host`/`--port` or `--unix`. */
const listenAddress = (options: ListenOptions, defaultPort: number): Effect.Effect<Address.Address, CliError> => {
  if (Option.isSome(options.unixMode) && Option.isNone(options.unix)) {
    return fail("--unix-mode applies to --unix: a TCP port has no file mode")
  }
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
  maxConnections: options.maxConnections,
  overflow: options.overflow,
  // never: the library's default, no idle timeout.
  idleTimeout: Duration.isFinite(options.idleTimeout) ? options.idleTimeout : undefined,
  shutdownTimeout: options.shutdownTimeout
})

/** The `name=value` pairs of the limits line, named as the flags that change them. */
type Limits = ReadonlyArray<readonly [flag: string, value: string | number]>

/** The limits the server reports it runs with (`RunningServer.limits`), named as their flags. */
const serverLimits = (limits: Server.Limits): Limits => [
  ["max-connections", limits.maxConnections],
  ["overflow", limits.overflow],
  ["idle-timeout", formatDuration(limits.idleTimeout)],
  ["shutdown-timeout", formatDuration(limits.shutdownTimeout)]
]

/**
 * The limits a server runs with, on one line on stderr once it listens
 * (stdout keeps only the `listening …` lines), so that none is silent:
 * `limits max-connections=1024 overflow=queue idle-timeout=never …`.
 */
const printLimits = (limits: Limits): Effect.Effect<void> =>
  Effect.sync(() =>
    void process.stderr.write(`limits ${limits.map(([flag, value]) => `${flag}=${value}`).join(" ")}\n`)
  )

/** The codec of `--framing` with the `--max-frame` limit, and the `--frame-timeout`; `"raw"` has no frames. */
const framingOf = (options: ByteOptions) =>
  Effect.gen(function*() {
    if (options.framing === "raw") {
      const given = Option.isSome(options.maxFrame)
        ? "--max-frame"
        : Option.isSome(options.frameTimeout)
        ? "--frame-timeout"
        : undefined
      if (given !== undefined) {
        return yield* fail(`${given} applies to --framing length or lines: raw bytes have no frames`)
      }
      return { framing: "raw" as const, frameTimeout: undefined, limits: [] as Limits }
    }
    const frameTimeout = Option.getOrElse(options.frameTimeout, () => DEFAULTS.frameTimeout)
    const max = Option.getOrElse(
      options.maxFrame,
      () => Math.max(1, Math.min(DEFAULTS.maxFrame, Math.floor(options.memoryBudget / BUDGET_PER_FRAME)))
    )
    const framing = yield* Effect.try({
      try: () =>
        options.framing === "lines" ? Framing.lines({ maxLength: max }) : Framing.lengthPrefixed({ maxFrameLength: max }),
      catch: (e) => new CliError({ message: `--max-frame: ${messageOf(e)}` })
    })
    return {
      framing,
      frameTimeout,
      limits: [["max-frame", formatSize(max)], ["frame-timeout", formatDuration(frameTimeout)]] as Limits
    }
  })

const serveBytes = (kind: "echo" | "upper", defaultPort: number) => (options: ByteOptions) =>
  Effect.gen(function*() {
    const address = yield* listenAddress(options, defaultPort)
    if (options.udp && address._tag === "UnixAddress") {
      return yield* fail("--udp needs a host and port: it cannot be combined with --unix")
    }
    const { frameTimeout, framing, limits } = yield* framingOf(options)
    const proxy = yield* proxyOf(options)
    // TLS certificates from files, reloaded on SIGHUP.
    const { tls } = yield* serveTls(options)
    if (tls !== undefined && options.udp) {
      return yield* fail("--udp cannot be combined with --tls-cert: UDP would carry the same bytes unencrypted")
    }
    const servers = kind === "echo" ? Echo : Upper
    const udpInWorkers = options.udp && options.workers !== 1
    if (udpInWorkers && !["linux", "freebsd"].includes(process.platform)) {
      return yield* fail(
        "--udp cannot be combined with --workers here: the workers share a UDP port with SO_REUSEPORT, which " +
          `${process.platform} does not have; start the UDP server apart`
      )
    }
    const tcp = servers.make({
      address,
      framing,
      frameTimeout,
      ...serverOptions(options),
      writeTimeout: options.writeTimeout,
      memoryBudget: options.memoryBudget,
      listen: { unixMode: Option.getOrUndefined(options.unixMode) },
      tls,
      proxyProtocol: proxy.proxyProtocol
    })
    // With --workers, every worker binds UDP on its TCP port (the group's), shared with SO_REUSEPORT.
    const make = udpInWorkers
      ? Effect.tap(tcp, (s) => s.address._tag === "TcpAddress" ? servers.makeUdp(s.address) : Effect.void)
      : tcp
    // Each worker reloads its certificates on SIGHUP.
    const server = yield* startServer(options, address, make, tls === undefined ? [] : ["SIGHUP"])
    yield* printListening("tcp", server.address)
    if (udpInWorkers) yield* printListening("udp", server.address)
    else if (options.udp && server.address._tag === "TcpAddress") {
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
    yield* printLimits([
      ...serverLimits(server.limits),
      ["write-timeout", formatDuration(options.writeTimeout)],
      ["memory-budget", formatSize(options.memoryBudget)],
      ...limits,
      ...proxy.limits
    ])
    return yield* untilSignal
  }).pipe(withObservability(options), Effect.scoped)

const echo = Command.make("echo", byteOptions, serveBytes("echo", 9000)).pipe(
  Command.withDescription("Echo server: every byte (or frame) goes back to the sender. Default port 9000.")
)

const upper = Command.make("upper", byteOptions, serveBytes("upper", 9001)).pipe(
  Command.withDescription("Upper-case server: ASCII letters come back upper-cased, other bytes unchanged. Default port 9001.")
)

const execOptions = {
  ...listenOptions,
  ...serveTlsFlags,
  insecurePlaintext: insecurePlaintextFlag("server"),
  allow: Flag.String("allow").pipe(
    Flag.withMetavar("CMD,CMD"),
    Flag.withDescription(
      "The commands clients may run, comma-separated: names (looked up in PATH) or absolute paths; " +
        "serve exec does not start without it. WARNING: a command that runs other programs or reads files " +
        "from its arguments allows everything (sh, env, xargs, find -exec, awk, sed's e, tar " +
        "--checkpoint-action, sort --compress-program, date -f, git -c, ssh -o, rsync -e, zip -TT, vim, less, " +
        "man, interpreters, ...); such known escape hatches are refused unless --allow-unsafe names them."
    ),
    Flag.optional
  ),
  allowUnsafe: Flag.String("allow-unsafe").pipe(
    Flag.withMetavar("CMD,CMD"),
    Flag.withDescription(
      "Entries of --allow that are known escape hatches (a shell, env, sed, tar, ...) to allow anyway: every " +
        "client that may run one may run anything."
    ),
    Flag.optional
  ),
  tokenEnv: Flag.String("token-env").pipe(
    Flag.withMetavar("VAR"),
    Flag.withDescription(
      "Require the token held by this environment variable in every request. Prefer --token-file: a command " +
        "that can read /proc/<server pid>/environ (the server's user, or root) reads the token there."
    ),
    Flag.optional
  ),
  tokenFile: Flag.String("token-file").pipe(
    Flag.withMetavar("FILE"),
    Flag.withDescription(
      "Require the token held by this file (read once at start; one trailing newline is dropped) in every " +
        "request. Keep it readable by the server's user only (chmod 600)."
    ),
    Flag.optional
  ),
  user: Flag.String("user").pipe(
    Flag.withMetavar("USER"),
    Flag.withDescription(
      "Run commands as this user (name or uid; its primary group unless --group): they cannot read the " +
        "server's environment or files. Needs serve exec to run as root."
    ),
    Flag.optional
  ),
  group: Flag.String("group").pipe(
    Flag.withMetavar("GROUP"),
    Flag.withDescription("Run commands with this group (name or gid). Needs serve exec to run as root."),
    Flag.optional
  ),
  timeout: durationOption("timeout", { example: formatDuration(DEFAULTS.timeout) }).pipe(
    Flag.withDescription(
      `Run time per command before it is killed, and the longest a request waits for a slot, e.g. 1m (default ${
        formatDuration(DEFAULTS.timeout)
      }; ${limitRule(false)}).`
    ),
    Flag.withDefault(DEFAULTS.timeout)
  ),
  maxOutput: sizeOption("max-output", formatSize(DEFAULTS.maxOutput)).pipe(
    Flag.withDescription(
      `stdout + stderr kept per command; past it the command is stopped, e.g. 64MiB (default ${
        formatSize(DEFAULTS.maxOutput)
      }; ${limitRule(false)}).`
    ),
    Flag.withDefault(DEFAULTS.maxOutput)
  ),
  concurrency: positiveIntegerOption("concurrency", String(DEFAULTS.concurrency)).pipe(
    Flag.withDescription(
      `Commands running at once; further requests wait (default ${DEFAULTS.concurrency}; ${limitRule(false)}).`
    ),
    Flag.withDefault(DEFAULTS.concurrency)
  ),
  maxRequest: sizeOption("max-request", formatSize(DEFAULTS.maxRequest)).pipe(
    Flag.withDescription(
      `The longest request (command line and token) accepted (default ${formatSize(DEFAULTS.maxRequest)}; ${
        limitRule(false)
      }).`
    ),
    Flag.withDefault(DEFAULTS.maxRequest)
  ),
  // Replaces the listen flag of the same name: exec has a default.
  idleTimeout: durationOption("idle-timeout", { example: "30s", never: true }).pipe(
    Flag.withDescription(
      `Close a connection that sends no request, or takes none of an answer, this long, e.g. 30s (default ${
        formatDuration(DEFAULTS.execIdleTimeout)
      }; a running command never counts as idle; ${limitRule(true)}).`
    ),
    Flag.withDefault(DEFAULTS.execIdleTimeout)
  ),
  writeTimeout: durationOption("write-timeout", { example: formatDuration(DEFAULTS.writeTimeout), never: true }).pipe(
    Flag.withDescription(
      `Cut a client that takes none of a 256KiB piece of its answer this long (default ${
        formatDuration(DEFAULTS.writeTimeout)
      }; ${limitRule(true)}).`
    ),
    Flag.withDefault(DEFAULTS.writeTimeout)
  ),
  memoryBudget: sizeOption("memory-budget", formatSize(DEFAULTS.memoryBudget)).pipe(
    Flag.withDescription(
      `Bytes held for all clients together: requests read ahead, running commands' output room (2 × --max-output ` +
        `each), answers not yet taken. Over it reading pauses and commands wait; clients that do not take their ` +
        `answers are cut, largest first (default ${formatSize(DEFAULTS.memoryBudget)}; at least 2 × --max-output + ` +
        `--max-request + 4KiB; ${limitRule(false)}).`
    ),
    Flag.withDefault(DEFAULTS.memoryBudget)
  )
} as const

type ExecOptions = Command.Command.Config.Infer<typeof execOptions>

/** One line on stderr: a warning about how the server was started. */
const warn = (line: string): Effect.Effect<void> => Effect.sync(() => void process.stderr.write(`${line}\n`))

/**
 * The token of --token-file: read once, one trailing newline dropped, kept
 * Redacted. A missing or empty file is an error; a file others can read is a
 * warning.
 */
const readTokenFile = (file: string) =>
  Effect.gen(function*() {
    const Fs = yield* Effect.promise(() => import("node:fs"))
    const read = yield* Effect.try({
      try: () => ({ text: Fs.readFileSync(file, "utf8"), mode: Fs.statSync(file).mode }),
      catch: (e) => new CliError({ message: `--token-file ${file}: cannot read it (${messageOf(e)})` })
    })
    const value = read.text.replace(/\r?\n$/, "")
    if (value.length === 0) return yield* fail(`--token-file ${file}: the file is empty; put a long random token in it`)
    const token = Redacted.make(value)
    const warning = (read.mode & 0o004) !== 0
      ? `warning: --token-file ${file} is readable by every user (mode ${(read.mode & 0o777).toString(8)}): chmod 600 it`
      : undefined
    return { token, warning }
  })

const serveExec = (options: ExecOptions) =>
  Effect.gen(function*() {
    const allow = Option.getOrElse(options.allow, () => "").split(",").map((s) => s.trim()).filter((s) => s !== "")
    if (allow.length === 0) {
      return yield* fail(
        "serve exec runs only the commands you allow: add --allow with their names, e.g. --allow uname,uptime"
      )
    }
    let token: Redacted.Redacted<string> | undefined = undefined
    if (Option.isSome(options.tokenEnv) && Option.isSome(options.tokenFile)) {
      return yield* fail("--token-env and --token-file both give the token: keep one (--token-file is safer)")
    }
    if (Option.isSome(options.tokenEnv)) {
      const name = options.tokenEnv.value
      const value = process.env[name]
      if (value === undefined || value === "") {
        return yield* fail(`--token-env ${name}: the environment variable ${name} is not set or empty`)
      }
      token = Redacted.make(value)
      // Gone from process.env (and from what this process passes on), but /proc/<pid>/environ keeps
      // the environment the process started with: only --token-file keeps the token out of it.
      delete process.env[name]
      yield* warn(
        `warning: the token comes from the environment variable ${name}: a command running as this server's user ` +
          `can read it in /proc/${process.pid}/environ; use --token-file FILE (and --user) instead`
      )
    }
    if (Option.isSome(options.tokenFile)) {
      const read = yield* readTokenFile(options.tokenFile.value)
      token = read.token
      if (read.warning !== undefined) yield* warn(read.warning)
    }
    const address = yield* listenAddress(options, 9002)
    // TLS certificates from files, reloaded on SIGHUP; beyond loopback, a token travels only inside TLS.
    const { tls } = yield* serveTls(options)
    const plaintext = yield* execPlaintext("server", address, {
      tls: tls !== undefined,
      token: token !== undefined,
      insecurePlaintext: options.insecurePlaintext
    })
    const Exec = yield* Effect.promise(() => import("../servers/Exec.js"))
    // Descriptors inherited without close-on-exec would reach every command: nothing here needs them. (With
    // --workers this runs first here, before the workers are started, then in each worker; node opens a
    // worker's IPC channel close-on-exec, so it is not among them, and no command inherits it.)
    const closed = Exec.closeInheritedDescriptors()
    const server = yield* startServer(options, address, Exec.make({
      address,
      allow,
      user: Option.getOrUndefined(options.user),
      group: Option.getOrUndefined(options.group),
      allowUnsafe: Option.getOrElse(options.allowUnsafe, () => "").split(",").map((s) => s.trim()).filter((s) =>
        s !== ""
      ),
      token,
      timeout: options.timeout,
      maxOutput: options.maxOutput,
      concurrency: options.concurrency,
      maxRequestBytes: options.maxRequest,
      unixMode: Option.getOrUndefined(options.unixMode),
      ...serverOptions(options),
      writeTimeout: options.writeTimeout,
      memoryBudget: options.memoryBudget,
      tls
    }).pipe(
      // The library's message names the `token` option; on the command line it is --token-env.
      Effect.catchTag("InsecureBind", (e) =>
        fail(
          `refusing to serve commands on ${Address.format(e.address)}${
            e.resolved === undefined ? "" : ` (it resolves to ${e.resolved.join(", ")})`
          } without a token: anyone who can reach it ` +
            "could run the allowed commands; add --token-env VAR, or listen on 127.0.0.1, ::1 or --unix"
        ))
    ), tls === undefined ? [] : ["SIGHUP"])
    yield* printListening("tcp", server.address)
    yield* printLimits([
      ...serverLimits(server.limits),
      ["timeout", formatDuration(options.timeout)],
      ["max-output", formatSize(options.maxOutput)],
      ["concurrency", options.concurrency],
      ["max-request", formatSize(options.maxRequest)],
      ["write-timeout", formatDuration(options.writeTimeout)],
      ["memory-budget", formatSize(options.memoryBudget)]
    ])
    if (plaintext !== undefined) yield* warn(plaintext)
    if (closed.length > 0) {
      yield* warn(
        `closed ${closed.length} inherited descriptor(s) that every command would have inherited: ${
          closed.map((d) => `fd ${d.fd} ${d.target}`).join(", ")
        }`
      )
    }
    return yield* untilSignal
  }).pipe(withObservability(options), Effect.scoped)

const exec = Command.make("exec", execOptions, serveExec).pipe(
  Command.withDescription(
    "Exec server: runs allowlisted commands for its clients. Default port 9002. Beyond loopback it needs a token, " +
      "and TLS (--tls-cert/--tls-key) so that the token never crosses the network in clear text."
  )
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
  Command.withDescription(
    "Run a built-in server until SIGINT/SIGTERM, then drain and exit 0. It prints where it listens on stdout and " +
      "its limits on stderr. Limits: 0 is refused; never lifts a time limit where the flag says so."
  ),
  Command.withSubcommands([echo, upper, exec])
)
