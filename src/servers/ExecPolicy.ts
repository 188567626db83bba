/**
 * What the exec server may run and how: its options, their validation into an
 * {@link ExecPolicy} (the allowlist resolved once to absolute executables, the
 * token kept as a digest), the check that a reachable address has a token, and
 * the configuration errors.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { constants as bufferConstants } from "node:buffer"
import { createHash, timingSafeEqual } from "node:crypto"
import { lookup as dnsLookup } from "node:dns/promises"
import { accessSync, constants as fsConstants, readFileSync, realpathSync, statSync } from "node:fs"
import { isIP } from "node:net"
import * as NodePath from "node:path"
import * as Address from "../Address.js"
import { CommandNotAllowed, Unauthorized } from "./ExecWire.js"
import { duration, positiveInt } from "./internal/execOptions.js"

// ---------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------

/**
 * The server was configured without any allowed command. Nothing is allowed
 * by default, on purpose.
 *
 * ```ts
 * Exec.makePolicy({ allow: [] }) // fails with MissingAllowlist
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingAllowlist extends Data.TaggedError("MissingAllowlist")<{}> {
  override get message(): string {
    return "the exec server runs only allowlisted commands and none were given: pass --allow cmd1,cmd2 " +
      "(or the `allow` option) with command names or absolute paths"
  }
}

/**
 * An allowed command name was not found as an executable file in any
 * absolute PATH directory, or an allowed absolute path is not an executable file.
 *
 * ```ts
 * Exec.makePolicy({ allow: ["no-such-tool"] }) // fails with CommandNotFound
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CommandNotFound extends Data.TaggedError("CommandNotFound")<{
  readonly command: string
  readonly searched: ReadonlyArray<string>
}> {
  override get message(): string {
    return NodePath.isAbsolute(this.command)
      ? `allowed command ${JSON.stringify(this.command)} is not an executable file: fix the path or remove it from --allow`
      : `allowed command ${JSON.stringify(this.command)} was not found as an executable in PATH (${
        this.searched.join(NodePath.delimiter) || "no absolute directories"
      }): install it, fix PATH, or list it by absolute path`
  }
}

/**
 * An option has a value the server cannot work with; `option` names it and
 * `reason` says what is expected.
 *
 * ```ts
 * Exec.makePolicy({ allow: ["ls"], maxOutput: 0 }) // fails with InvalidExecOptions
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidExecOptions extends Data.TaggedError("InvalidExecOptions")<{
  readonly option: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid exec server option \`${this.option}\`: ${this.reason}`
  }
}

/**
 * The platform has no POSIX process groups (Windows), which the server needs
 * to kill everything a command started.
 *
 * ```ts
 * Effect.catchTag("UnsupportedPlatform", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedPlatform extends Data.TaggedError("UnsupportedPlatform")<{
  readonly platform: string
}> {
  override get message(): string {
    return `the exec server needs POSIX process groups to kill timed-out commands; ${this.platform} has none (use Linux or macOS)`
  }
}

/**
 * Refused to serve commands on an address other machines can reach without
 * requiring a token.
 *
 * ```ts
 * Exec.checkBind(policy, Address.tcp("0.0.0.0", 9000)) // Result.fail(InsecureBind) when policy has no token
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class InsecureBind extends Data.TaggedError("InsecureBind")<{
  readonly address: Address.Address
  /** For a host name: the addresses it resolved to. */
  readonly resolved?: ReadonlyArray<string> | undefined
}> {
  override get message(): string {
    const resolved = this.resolved === undefined ? "" : ` (it resolves to ${this.resolved.join(", ")})`
    return `refusing to serve commands on ${
      Address.format(this.address)
    }${resolved} without a token: anyone who can reach it could run the allowed commands; pass --token ` +
      "(or the `token` option), or bind to 127.0.0.1, [::1] or a unix: socket"
  }
}

/**
 * Every way building an exec policy can fail.
 *
 * ```ts
 * Exec.makePolicy(options).pipe(Effect.catch((e: Exec.ExecConfigError) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ExecConfigError =
  | MissingAllowlist
  | CommandNotFound
  | InvalidExecOptions
  | UnsupportedPlatform
  | UnsafeCommand

/**
 * An allowed command is a known escape hatch: given the right arguments it
 * runs any program or prints any file the server can read (`sed -n '1e id'`,
 * `tar --checkpoint-action=exec=…`, `date -f /etc/shadow`, a shell, an
 * interpreter…), so allowing it allows everything. Refused at start unless
 * `allowUnsafe` (`--allow-unsafe`) names it too.
 *
 * ```ts
 * Exec.makePolicy({ allow: ["sed"] })                          // fails with UnsafeCommand
 * Exec.makePolicy({ allow: ["sed"], allowUnsafe: ["sed"] })    // every client may run anything
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class UnsafeCommand extends Data.TaggedError("UnsafeCommand")<{
  readonly command: string
  /** How it runs other programs or reads files. */
  readonly how: string
}> {
  override get message(): string {
    return `allowed command ${JSON.stringify(this.command)} ${this.how}, so allowing it allows everything: ` +
      `remove it from --allow, or, if every client may run anything, add --allow-unsafe ${this.command}`
  }
}

const RUNS = "can run any program from its arguments"
/** Known escape hatches, by command name: how each escapes. */
const ESCAPE_HATCHES: ReadonlyMap<string, string> = new Map([
  ...["sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox"].map((c) => [c, "is a shell"] as const),
  ["env", `${RUNS} (env CMD)`],
  ["xargs", `${RUNS} (xargs CMD)`],
  ["find", `${RUNS} (find -exec)`],
  ...["awk", "gawk", "mawk", "nawk"].map((c) => [c, `${RUNS} (awk's system())`] as const),
  ["sed", `${RUNS} (sed's e command: sed -n '1e id')`],
  ["tar", `${RUNS} (tar --checkpoint-action=exec=…, --to-command, -I)`],
  ["sort", `${RUNS} (sort --compress-program=…)`],
  ["date", "prints any file it can read (date -f /etc/shadow)"],
  ["git", `${RUNS} (git -c core.sshCommand=…, -c core.pager=…, aliases)`],
  ...["ssh", "scp", "sftp"].map((c) => [c, `${RUNS} (ssh -o ProxyCommand=…)`] as const),
  ["rsync", `${RUNS} (rsync -e …)`],
  ["zip", `${RUNS} (zip -TT …)`],
  ...["vi", "vim", "nvim", "view", "ex", "ed", "emacs", "nano", "less", "more", "most", "man", "pager"].map((c) =>
    [c, `${RUNS} (a shell escape such as :!cmd, !cmd, or a pager's)`] as const
  ),
  ...[
    "nice", "nohup", "timeout", "watch", "stdbuf", "setsid", "flock", "chroot", "nsenter", "unshare", "ionice",
    "taskset", "chrt", "time", "strace", "ltrace", "gdb", "sudo", "su", "doas", "runuser", "pkexec", "script",
    "expect", "make", "socat", "nc", "ncat", "netcat", "tmux", "screen", "systemd-run", "at", "crontab", "docker",
    "podman", "kubectl", "dd"
  ].map((c) => [c, c === "dd" ? "reads and writes any file it can (dd if=… of=…)" : RUNS] as const)
])
const INTERPRETER = /^(python|python[0-9.]+|perl|perl[0-9.]+|ruby|ruby[0-9.]+|node|nodejs|deno|bun|php|php[0-9.]+|lua|lua[0-9.]+|luajit|tclsh|wish|Rscript|R|java|jshell|osascript|pwsh|guile|racket|ocaml|ghci|irb|scala|groovy)$/

/** How an allowed command escapes, if it is a known escape hatch (by its name and by the file it resolved to). */
const escapeHatch = (entry: string, file: string): string | undefined => {
  for (const name of new Set([NodePath.basename(entry), NodePath.basename(file), NodePath.basename(realpathOr(file))])) {
    const how = ESCAPE_HATCHES.get(name)
    if (how !== undefined) return how
    if (INTERPRETER.test(name)) return `is an interpreter: ${RUNS}`
  }
  return undefined
}

const realpathOr = (file: string): string => {
  try {
    return realpathSync(file)
  } catch {
    return file
  }
}

// ---------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------

/**
 * What the exec server may run and how. Only `allow` is required.
 *
 * - `allow`: command names (looked up in the server's PATH once, at startup)
 *   or absolute paths. A request's `argv[0]` must equal an entry exactly.
 * - `token`: when set, every request must carry it.
 * - `timeout` (10 s): run time per command, from spawn; then its process group
 *   gets SIGTERM, and SIGKILL after `killGrace` (1 s).
 * - `maxOutput` (8 MiB): stdout + stderr bytes kept per command; past it the
 *   group is killed and the response says `truncated`.
 * - `concurrency` (4): commands running at once; further requests wait up to
 *   `queueTimeout` (default: `timeout`) and then get `Timeout`.
 * - `maxRequestBytes` (64 KiB): the longest request frame.
 * - `env`: the child's whole environment (default: `PATH` and `LANG` only).
 * - `cwd`: the child's working directory (default: the server's).
 * - `user`, `group`: the account commands run as (a name or an id; a user's
 *   primary group unless `group` says otherwise). Needs the server to run
 *   as root; then a command cannot read the server's `/proc/<pid>/environ`
 *   or its files. Default: the server's own account.
 * - `allowUnsafe`: entries of `allow` that are known escape hatches (shells,
 *   interpreters, `env`, `xargs`, `find`, `awk`, `sed`, `tar`, `sort`,
 *   `date`, `git`, `ssh`, `rsync`, `zip`, editors and pagers, …: see
 *   docs/exec-protocol.md) and are allowed anyway. Without it such an entry
 *   fails with {@link UnsafeCommand}: allowing one allows everything.
 *
 * Counts and sizes are positive integers and durations are above 0 and
 * finite: 0 is refused, never read as "no limit". These options often come
 * from configuration, so a bad value is a typed error: {@link makePolicy}
 * fails with {@link InvalidExecOptions} naming the option, not a defect.
 *
 * ```ts
 * const options: Exec.ExecOptions = { allow: ["uptime", "/usr/local/bin/report"], token: Redacted.make("s3cret") }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecOptions {
  readonly allow: ReadonlyArray<string>
  readonly token?: string | Redacted.Redacted<string> | undefined
  readonly timeout?: Duration.Input | undefined
  readonly killGrace?: Duration.Input | undefined
  readonly maxOutput?: number | undefined
  readonly concurrency?: number | undefined
  readonly queueTimeout?: Duration.Input | undefined
  readonly maxRequestBytes?: number | undefined
  readonly env?: Readonly<Record<string, string>> | undefined
  readonly cwd?: string | undefined
  readonly allowUnsafe?: ReadonlyArray<string> | undefined
  readonly user?: string | number | undefined
  readonly group?: string | number | undefined
}

/**
 * A validated {@link ExecOptions} with every allowed command resolved to an
 * absolute executable. The token is kept only as a digest.
 *
 * ```ts
 * const policy = yield* Exec.makePolicy({ allow: ["date"] })
 * policy.commands.get("date") // "/usr/bin/date"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecPolicy {
  /** Allowed `argv[0]` → the absolute executable that runs for it. */
  readonly commands: ReadonlyMap<string, string>
  readonly requiresToken: boolean
  readonly timeout: Duration.Duration
  readonly killGrace: Duration.Duration
  readonly maxOutput: number
  readonly concurrency: number
  readonly queueTimeout: Duration.Duration
  readonly maxRequestBytes: number
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** The account commands run as (`user`, `group`); undefined: the server's own. */
  readonly uid: number | undefined
  readonly gid: number | undefined
  /** Check a request's token: constant time, and nothing about the token leaks through timing. */
  readonly authorize: (token: string | undefined) => Result.Result<void, Unauthorized>
  /** The executable for `argv[0]`, if it is exactly an allowed entry. */
  readonly resolve: (argv0: string) => Result.Result<string, CommandNotAllowed>
}

/**
 * The defaults of {@link ExecOptions}.
 *
 * ```ts
 * Exec.defaults.maxOutput // 8388608
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  timeout: Duration.seconds(10),
  killGrace: Duration.seconds(1),
  maxOutput: 8 * 1024 * 1024,
  concurrency: 4,
  maxRequestBytes: 64 * 1024
} as const

const invalid = (option: string, reason: string) => new InvalidExecOptions({ option, reason })

/** The policy's durations bound a command's run: none may be lifted. */
const FINITE = { never: false, finite: "a command's run, its kill and its wait for a slot must end" } as const

const checked = <A>(option: string, result: Result.Result<A, string>): Effect.Effect<A, InvalidExecOptions> =>
  Effect.fromResult(Result.mapError(result, (reason) => invalid(option, reason)))

const isExecutableFile = (path: string): boolean => {
  try {
    if (!statSync(path).isFile()) return false
    accessSync(path, fsConstants.X_OK)
    return true
  } catch {
    return false
  }
}

const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/**
 * The absolute directories of a PATH string, in order. Empty and relative
 * entries are dropped: POSIX reads them as the current directory, which would
 * let whoever controls the working directory pick what an allowed name runs.
 */
const searchDirectories = (pathEnv: string | undefined): ReadonlyArray<string> =>
  (pathEnv ?? "").split(NodePath.delimiter).filter((dir) => dir.length > 0 && NodePath.isAbsolute(dir))

const resolveExecutable = (name: string, directories: ReadonlyArray<string>): string | undefined => {
  for (const dir of directories) {
    const candidate = NodePath.join(dir, name)
    if (isExecutableFile(candidate)) return candidate
  }
  return undefined
}

const tokenDigest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

/**
 * Compares digests, not the tokens, so both sides are always 32 bytes: neither
 * the comparison time nor an early length check tells an attacker how long the
 * token is or how much of a guess was right.
 */
const tokenMatches = (expected: Buffer, given: string): boolean => timingSafeEqual(expected, tokenDigest(given))

const allowEntryProblem = (entry: string): string | undefined => {
  if (entry.length === 0) return "an entry is empty"
  if (/[\s\u0000]/.test(entry)) return `${JSON.stringify(entry)} contains whitespace or NUL`
  if (entry.includes("/")) {
    if (!NodePath.isAbsolute(entry)) {
      return `${JSON.stringify(entry)} is a relative path; use a bare command name or an absolute path`
    }
    const normal = NodePath.normalize(entry)
    if (normal !== entry) return `${JSON.stringify(entry)} is not a normalized path; write ${JSON.stringify(normal)}`
    return undefined
  }
  if (entry === "." || entry === "..") return `${JSON.stringify(entry)} is not a command name`
  return undefined
}

/** The entries of /etc/passwd or /etc/group: name → [id, primary group id]. */
const accounts = (file: string): Map<string, readonly [number, number]> => {
  const out = new Map<string, readonly [number, number]>()
  try {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const fields = line.split(":")
      if (fields.length >= 3) out.set(fields[0]!, [Number(fields[2]), Number(fields[3])])
    }
  } catch {
    // No such file: only numeric ids can be given.
  }
  return out
}

const isId = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffff_fffe

/**
 * `user`/`group` to the uid and gid given to `spawn`: numbers as they are,
 * names through /etc/passwd and /etc/group; a user without a group gets the
 * user's primary group. Only root can start a process as another account.
 */
const accountOf = (
  user: string | number | undefined,
  group: string | number | undefined
): Result.Result<{ readonly uid: number | undefined; readonly gid: number | undefined }, InvalidExecOptions> => {
  if (user === undefined && group === undefined) return Result.succeed({ uid: undefined, gid: undefined })
  const euid = process.geteuid?.()
  if (euid !== 0) {
    return Result.fail(invalid(
      user !== undefined ? "user" : "group",
      `running commands as another account needs the server to run as root (it runs as uid ${euid}); ` +
        "start it as root, or leave user and group out"
    ))
  }
  let uid: number | undefined
  let gid: number | undefined
  if (user !== undefined) {
    const found = typeof user === "number" ? undefined : accounts("/etc/passwd").get(user)
    if (typeof user === "number") uid = user
    else if (found !== undefined) [uid, gid] = found
    else if (/^[0-9]+$/.test(user)) uid = Number(user)
    else return Result.fail(invalid("user", `no user named ${JSON.stringify(user)} in /etc/passwd`))
    if (!isId(uid!)) return Result.fail(invalid("user", `${JSON.stringify(user)} is not a user id`))
  }
  if (group !== undefined) {
    const found = typeof group === "number" ? undefined : accounts("/etc/group").get(group)
    if (typeof group === "number") gid = group
    else if (found !== undefined) gid = found[0]
    else if (/^[0-9]+$/.test(group)) gid = Number(group)
    else return Result.fail(invalid("group", `no group named ${JSON.stringify(group)} in /etc/group`))
    if (!isId(gid!)) return Result.fail(invalid("group", `${JSON.stringify(group)} is not a group id`))
  }
  if (uid === 0) return Result.fail(invalid("user", "root is the server's own account: name an unprivileged user"))
  return Result.succeed({ uid, gid })
}

const defaultEnv = (): Record<string, string> => {
  const path = searchDirectories(process.env.PATH).join(NodePath.delimiter)
  return { PATH: path.length > 0 ? path : "/usr/bin:/bin", LANG: process.env.LANG ?? "C.UTF-8" }
}

const validateEnv = (env: Readonly<Record<string, string>>): Result.Result<Record<string, string>, InvalidExecOptions> => {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(env)) {
    if (typeof value !== "string") return Result.fail(invalid("env", `the value of ${key} is not a string`))
    if (key.length === 0 || key.includes("=") || key.includes("\u0000") || value.includes("\u0000")) {
      return Result.fail(invalid("env", `${JSON.stringify(key)} is not a valid variable (no "=" or NUL in names, no NUL in values)`))
    }
    out[key] = value
  }
  return Result.succeed(out)
}

/**
 * Validate options and resolve the allowlist once: each name through the
 * server's PATH (absolute directories only) to an absolute executable, each
 * absolute path checked to be an executable file. Fails with a
 * {@link ExecConfigError} saying what to change.
 *
 * ```ts
 * const policy = yield* Exec.makePolicy({ allow: ["git", "/opt/tools/report"], token: process.env.EXEC_TOKEN })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePolicy = (options: ExecOptions): Effect.Effect<ExecPolicy, ExecConfigError> =>
  Effect.gen(function*() {
    if (process.platform === "win32") return yield* new UnsupportedPlatform({ platform: process.platform })
    // Also guards JavaScript callers and configuration readers that leave `allow` out altogether.
    if (options.allow === undefined || options.allow.length === 0) return yield* new MissingAllowlist()
    for (const entry of options.allow) {
      const problem = allowEntryProblem(entry)
      if (problem !== undefined) return yield* invalid("allow", problem)
    }
    const timeout = yield* checked("timeout", duration(options.timeout, defaults.timeout, FINITE))
    const killGrace = yield* checked("killGrace", duration(options.killGrace, defaults.killGrace, FINITE))
    const queueTimeout = yield* checked("queueTimeout", duration(options.queueTimeout, timeout, FINITE))
    const maxOutput = yield* checked(
      "maxOutput",
      positiveInt(options.maxOutput, defaults.maxOutput, bufferConstants.MAX_LENGTH)
    )
    const concurrency = yield* checked("concurrency", positiveInt(options.concurrency, defaults.concurrency, 1024))
    const maxRequestBytes = yield* checked(
      "maxRequestBytes",
      // The most a request frame's 4-byte length can say.
      positiveInt(options.maxRequestBytes, defaults.maxRequestBytes, 0xffff_ffff)
    )
    const env = yield* Effect.fromResult(validateEnv(options.env ?? defaultEnv()))
    const account = yield* Effect.fromResult(accountOf(options.user, options.group))
    const cwd = NodePath.resolve(options.cwd ?? process.cwd())
    if (!(yield* Effect.sync(() => isDirectory(cwd)))) {
      return yield* invalid("cwd", `${JSON.stringify(cwd)} is not a directory`)
    }
    const rawToken = options.token === undefined
      ? undefined
      : Redacted.isRedacted(options.token)
      ? Redacted.value(options.token)
      : options.token
    if (rawToken !== undefined && rawToken.length === 0) {
      return yield* invalid("token", "an empty token protects nothing; pass a long random string or leave it out")
    }

    const searched = searchDirectories(process.env.PATH)
    const commands = new Map<string, string>()
    for (const entry of options.allow) {
      const file = yield* Effect.sync(() =>
        NodePath.isAbsolute(entry)
          ? (isExecutableFile(entry) ? entry : undefined)
          : resolveExecutable(entry, searched)
      )
      if (file === undefined) return yield* new CommandNotFound({ command: entry, searched })
      const how = yield* Effect.sync(() => escapeHatch(entry, file))
      if (how !== undefined && !(options.allowUnsafe ?? []).includes(entry)) {
        return yield* new UnsafeCommand({ command: entry, how })
      }
      commands.set(entry, file)
    }

    const digest = rawToken === undefined ? undefined : tokenDigest(rawToken)
    const allowedList = [...commands.keys()].join(", ")
    const policy: ExecPolicy = {
      commands,
      requiresToken: digest !== undefined,
      timeout,
      killGrace,
      maxOutput,
      concurrency,
      queueTimeout,
      maxRequestBytes,
      env,
      cwd,
      uid: account.uid,
      gid: account.gid,
      authorize: (token) => {
        if (digest === undefined) return Result.void
        if (token === undefined) {
          return Result.fail(new Unauthorized({ message: "this server requires a token: send it in the request's \"token\" field" }))
        }
        return tokenMatches(digest, token)
          ? Result.void
          : Result.fail(new Unauthorized({ message: "the token is wrong" }))
      },
      resolve: (argv0) => {
        const file = commands.get(argv0)
        return file !== undefined
          ? Result.succeed(file)
          : Result.fail(
            new CommandNotAllowed({
              message: `command ${JSON.stringify(argv0)} is not allowed; argv[0] must be exactly one of: ${allowedList}`
            })
          )
      }
    }
    return policy
  })

/**
 * The check the server makes before it listens: an address other machines
 * can reach (not loopback, not a Unix socket) needs a token. Only a Unix
 * socket or a loopback IP (127.0.0.0/8, `::1`) is trusted here; a host name,
 * `localhost` included, is trusted by what it resolves to, which
 * {@link checkBindResolved} (what the server runs) looks up.
 *
 * ```ts
 * yield* Effect.fromResult(Exec.checkBind(policy, Address.tcp("0.0.0.0", 9000)))
 * ```
 *
 * @since 0.1.0
 * @category policy
 */
export const checkBind = (policy: ExecPolicy, address: Address.Address): Result.Result<void, InsecureBind> =>
  policy.requiresToken || address._tag === "UnixAddress" ||
    (isIP(unbracket(address.host)) !== 0 && Address.isLoopback(address))
    ? Result.void
    : Result.fail(new InsecureBind({ address }))

const unbracket = (host: string): string => host.replace(/^\[(.*)\]$/, "$1")

/**
 * Every address a host name resolves to (`dns.lookup` with `all`, as the
 * listener resolves it): what {@link checkBindResolved} trusts.
 *
 * ```ts
 * const hijacked: Exec.HostLookup = () => Promise.resolve(["127.0.0.1", "192.0.2.7"])
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type HostLookup = (host: string) => Promise<ReadonlyArray<string>>

const lookupAll: HostLookup = (host) => dnsLookup(host, { all: true }).then((all) => all.map((a) => a.address))

/**
 * {@link checkBind} for any address: a host name is trusted as loopback
 * only if every address it resolves to is (127.0.0.0/8 or ::1), so a
 * `localhost` that a hosts file or resolver maps elsewhere is refused
 * without a token. A name that does not resolve is left to the listener,
 * which fails with `HostNotFound`. `lookup` replaces the system resolver
 * (for tests).
 *
 * ```ts
 * yield* Exec.checkBindResolved(policy, Address.tcp("localhost", 9000))
 * ```
 *
 * @since 0.2.0
 * @category policy
 */
export const checkBindResolved = (
  policy: ExecPolicy,
  address: Address.Address,
  lookup: HostLookup = lookupAll
): Effect.Effect<void, InsecureBind> => {
  if (policy.requiresToken || address._tag === "UnixAddress" || isIP(unbracket(address.host)) !== 0) {
    return Effect.fromResult(checkBind(policy, address))
  }
  return Effect.promise(() => lookup(address.host).then((all) => all, () => undefined)).pipe(
    Effect.flatMap((resolved) => {
      if (resolved === undefined) return Effect.void
      const loopback = resolved.length > 0 &&
        resolved.every((ip) => Address.isLoopback(Address.tcp(ip, 0)) && isIP(ip) !== 0)
      return loopback ? Effect.void : Effect.fail(new InsecureBind({ address, resolved }))
    })
  )
}
