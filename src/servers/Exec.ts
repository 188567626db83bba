/**
 * The remote command server, made safe: a client sends `argv`, the server runs
 * it, without a shell, only if `argv[0]` is on an allowlist, with a deadline,
 * an output cap and a concurrency limit, and answers with the exit status and
 * the raw stdout and stderr. The wire format is in docs/exec-protocol.md.
 *
 * This module holds the wire schemas and codecs, the policy (what may run and
 * how), the runner that turns one request into one response, the server as a
 * Layer ({@link layer}) and its typed, pipelining {@link client}.
 *
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Console, Effect } from "effect"
 * import * as Exec from "effect-wire/servers/Exec"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* Exec.Exec
 *   const client = yield* Exec.client(server.address)
 *   const result = yield* client.run(["echo", "hello"])
 *   yield* Console.log(new TextDecoder().decode(result.stdout)) // "hello\n"
 * }).pipe(Effect.scoped, Effect.provide(Exec.layerTest({ allow: ["echo", "uname"] })))
 *
 * NodeRuntime.runMain(program)
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import { constants as bufferConstants } from "node:buffer"
import * as NodePath from "node:path"
import * as Address from "../Address.js"
import * as Framing from "../Framing.js"
import * as internal from "../internal/execRunner.js"
import type { ConnectError, ListenError, ReadError, WriteError } from "../NetError.js"
import * as Server from "../Server.js"
import * as Socket from "../Socket.js"

// ---------------------------------------------------------------------------
// Wire errors
// ---------------------------------------------------------------------------

/**
 * `argv[0]` is not exactly one of the allowed entries (the message lists them).
 *
 * ```ts
 * if (result.header.error?._tag === "CommandNotAllowed") console.error(result.header.error.message)
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class CommandNotAllowed extends Schema.TaggedError<CommandNotAllowed>()("CommandNotAllowed", {
  message: Schema.String
}) {}

/**
 * The server requires a token and the request's was missing or wrong. Nothing ran.
 *
 * ```ts
 * Effect.catchTag("Unauthorized", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}) {}

/**
 * The command ran past the server's timeout and its process group was killed
 * (the output so far is included), or no slot freed up within the queue
 * timeout (nothing ran).
 *
 * ```ts
 * Effect.catchTag("Timeout", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  message: Schema.String
}) {}

/**
 * The operating system could not start the command (e.g. the executable was
 * removed after startup, or the process limit was reached).
 *
 * ```ts
 * Effect.catchTag("SpawnFailed", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class SpawnFailed extends Schema.TaggedError<SpawnFailed>()("SpawnFailed", {
  message: Schema.String
}) {}

/**
 * The request frame was not UTF-8 JSON of the form `{"argv": [...], "token"?: "..."}`.
 *
 * ```ts
 * Effect.catchTag("BadRequest", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  message: Schema.String
}) {}

/**
 * The request frame was longer than the server's `maxRequestBytes`; the server
 * closes the connection after this answer. Its `_tag` equals the one of
 * `Framing`'s local frame error, so tell them apart by class when both can occur.
 *
 * ```ts
 * if (result.header.error instanceof Exec.FrameTooLarge) reconnect()
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class FrameTooLarge extends Schema.TaggedError<FrameTooLarge>()("FrameTooLarge", {
  message: Schema.String
}) {}

/**
 * The `error` field of a response: one of the six refusals, as a yieldable
 * tagged error, so a client can `yield*` it.
 *
 * ```ts
 * Schema.decodeUnknownSync(Exec.ExecError)({ _tag: "Timeout", message: "took too long" })
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const ExecError = Schema.Union([CommandNotAllowed, Unauthorized, Timeout, SpawnFailed, BadRequest, FrameTooLarge])

/**
 * One of the six refusals a response can carry.
 *
 * ```ts
 * const retryable = (e: Exec.ExecError) => e._tag === "Timeout" || e._tag === "SpawnFailed"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ExecError = typeof ExecError.Type

// ---------------------------------------------------------------------------
// Wire schemas
// ---------------------------------------------------------------------------

// The kernel's argv is NUL-terminated: a NUL would silently cut an argument short.
const Argument = Schema.String.check(
  Schema.makeFilter((s: string) => !s.includes("\u0000") || "an argument must not contain a NUL byte")
)

/**
 * A request: the command line as an array (no shell ever parses it) and the
 * token, if the server requires one.
 *
 * ```ts
 * const request: Exec.ExecRequest = { argv: ["ls", "-l", "/tmp"], token: "s3cret" }
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const ExecRequest = Schema.Struct({
  argv: Schema.NonEmptyArray(Argument),
  token: Schema.optionalKey(Schema.String)
})

/**
 * A decoded request.
 *
 * ```ts
 * const command = (r: Exec.ExecRequest) => r.argv[0]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ExecRequest = typeof ExecRequest.Type

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * The JSON header of a response. `stdoutLength` bytes of stdout and then
 * `stderrLength` bytes of stderr follow it on the wire. `exitCode` is null when
 * the command died by `signal` or never ran; `durationMs` is the command's run
 * time (0 when nothing ran).
 *
 * ```ts
 * const ok = (h: Exec.ExecResponseHeader) => h.error === undefined && h.exitCode === 0
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const ExecResponseHeader = Schema.Struct({
  exitCode: Schema.NullOr(Schema.Int),
  signal: Schema.NullOr(Schema.String),
  stdoutLength: NonNegativeInt,
  stderrLength: NonNegativeInt,
  truncated: Schema.Boolean,
  durationMs: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  error: Schema.optionalKey(ExecError)
})

/**
 * A decoded response header.
 *
 * ```ts
 * const killed = (h: Exec.ExecResponseHeader) => h.signal !== null
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ExecResponseHeader = typeof ExecResponseHeader.Type

/**
 * One response: the header and the two bodies.
 *
 * ```ts
 * const text = (r: Exec.ExecResult) => new TextDecoder().decode(r.stdout)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecResult {
  readonly header: ExecResponseHeader
  readonly stdout: Uint8Array
  readonly stderr: Uint8Array
}

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder("utf-8", { fatal: true })
const MAX_FRAME_LENGTH = 0xffff_ffff

const frameOf = (json: string): Uint8Array => {
  const body = utf8Encoder.encode(json)
  if (body.byteLength > MAX_FRAME_LENGTH) throw new RangeError(`a frame of ${body.byteLength} bytes does not fit a 4-byte length`)
  const out = new Uint8Array(4 + body.byteLength)
  new DataView(out.buffer).setUint32(0, body.byteLength, false)
  out.set(body, 4)
  return out
}

const readLength = (bytes: Uint8Array): number =>
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, false)

const encodeHeaderSync = Schema.encodeSync(ExecResponseHeader)
const decodeHeaderResult = Schema.decodeUnknownResult(ExecResponseHeader)
const encodeRequestSync = Schema.encodeSync(ExecRequest)
const decodeRequestResult = Schema.decodeUnknownResult(ExecRequest)

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

// `["argv", 1]` reads `argv[1]`, as the field would be written in JavaScript.
const formatPath = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined): string =>
  (path ?? []).reduce<string>((out, segment) => {
    const key = typeof segment === "object" ? segment.key : segment
    if (typeof key === "number") return `${out}[${key}]`
    if (typeof key === "string" && IDENTIFIER.test(key)) return out === "" ? key : `${out}.${key}`
    return `${out}[${typeof key === "string" ? JSON.stringify(key) : String(key)}]`
  }, "")

/**
 * What a Schema error says is wrong, on one line (a response header or a log
 * line has no room for Effect's multi-line tree): `Expected string at argv[1]`.
 */
const describeSchemaError = (error: Schema.SchemaError): string =>
  formatIssues(error.issue).issues.map((issue) => {
    const message = issue.message.replace(/\s*\n\s*/g, " ")
    const where = formatPath(issue.path)
    return where === "" ? message : `${message} at ${where}`
  }).join("; ")

const invalidRequest = (error: Schema.SchemaError): BadRequest =>
  new BadRequest({
    message: `the request must be {"argv": ["command", "arg", ...], "token"?: "..."}: ${describeSchemaError(error)}`
  })

const parseJson = (payload: Uint8Array): Result.Result<unknown, string> => {
  let text: string
  try {
    text = utf8Decoder.decode(payload)
  } catch {
    return Result.fail("is not valid UTF-8")
  }
  try {
    return Result.succeed(JSON.parse(text))
  } catch (err) {
    return Result.fail(`is not JSON (${(err as Error).message})`)
  }
}

/**
 * One complete request frame: the 4-byte big-endian length, then the JSON.
 *
 * ```ts
 * socket.write(Exec.encodeRequest({ argv: ["uname", "-a"] }))
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const encodeRequest = (request: ExecRequest): Uint8Array => frameOf(JSON.stringify(encodeRequestSync(request)))

/**
 * Parse a request frame's payload (the bytes after the length). Anything that
 * is not UTF-8 JSON matching {@link ExecRequest} is a {@link BadRequest} whose
 * message says what is wrong. Unknown fields are ignored.
 *
 * ```ts
 * Exec.decodeRequest(new TextEncoder().encode('{"argv":["ls"]}')) // Result.succeed({ argv: ["ls"] })
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const decodeRequest = (payload: Uint8Array): Result.Result<ExecRequest, BadRequest> =>
  Result.flatMap(
    Result.mapError(parseJson(payload), (reason) => new BadRequest({ message: `the request ${reason}` })),
    (json) => Result.mapError(decodeRequestResult(json), invalidRequest)
  )

/**
 * A response as the chunks to write, in order: the header frame, stdout,
 * stderr. The bodies are not copied (write them with one `writeAll`). The
 * header's `stdoutLength` and `stderrLength` are taken from the bodies, so the
 * frame cannot disagree with what follows it.
 *
 * ```ts
 * socket.writeAll(Exec.encodeResponse(result))
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const encodeResponse = (result: ExecResult): ReadonlyArray<Uint8Array> => {
  const { error, ...header } = encodeHeaderSync({
    ...result.header,
    stdoutLength: result.stdout.byteLength,
    stderrLength: result.stderr.byteLength
  })
  // The error is written as exactly `{"_tag", "message"}`, in that order (docs/exec-protocol.md), whatever
  // the Schema library's encoding of error classes holds or however it orders their keys.
  const json = error === undefined ? header : { ...header, error: { _tag: error._tag, message: error.message } }
  return [frameOf(JSON.stringify(json)), result.stdout, result.stderr]
}

/**
 * A response could not be read: a header frame over the limit, a header that
 * is not the expected JSON, or bodies longer than the caller accepts.
 *
 * ```ts
 * Effect.catchTag("MalformedResponse", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class MalformedResponse extends Data.TaggedError("MalformedResponse")<{
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `malformed exec response: ${this.reason}; is the peer an effect-wire exec server?`
  }
}

/**
 * What {@link decodeResponse} found at the start of a buffer: a whole response
 * (and how many bytes it took), or the number of bytes needed to go on.
 *
 * ```ts
 * const done = (s: Exec.ResponseStep) => s._tag === "Complete"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ResponseStep =
  | { readonly _tag: "NeedMore"; readonly needed: number }
  | { readonly _tag: "Complete"; readonly result: ExecResult; readonly consumed: number }

/**
 * Read one response from the start of `bytes`. Incomplete input is
 * `NeedMore` with the total byte count needed so far (read until you have
 * it, then call again); the bodies are `subarray`s of `bytes`, not copies.
 * `maxHeaderBytes` (default 64 KiB) bounds the header frame and `maxBodyBytes`
 * (default 64 MiB) bounds stdout + stderr, so a hostile peer cannot make the
 * client buffer without limit.
 *
 * ```ts
 * const step = Result.getOrThrow(Exec.decodeResponse(buffer))
 * if (step._tag === "Complete") buffer = buffer.subarray(step.consumed)
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const decodeResponse = (
  bytes: Uint8Array,
  options?: {
    readonly maxHeaderBytes?: number | undefined
    readonly maxBodyBytes?: number | undefined
  }
): Result.Result<ResponseStep, MalformedResponse> => {
  const maxHeaderBytes = options?.maxHeaderBytes ?? 64 * 1024
  const maxBodyBytes = options?.maxBodyBytes ?? 64 * 1024 * 1024
  if (bytes.byteLength < 4) return Result.succeed({ _tag: "NeedMore", needed: 4 })
  const headerLength = readLength(bytes)
  if (headerLength > maxHeaderBytes) {
    return Result.fail(
      new MalformedResponse({ reason: `header frame of ${headerLength} bytes exceeds the limit of ${maxHeaderBytes}` })
    )
  }
  const bodyStart = 4 + headerLength
  if (bytes.byteLength < bodyStart) return Result.succeed({ _tag: "NeedMore", needed: bodyStart })
  const json = parseJson(bytes.subarray(4, bodyStart))
  if (Result.isFailure(json)) return Result.fail(new MalformedResponse({ reason: `the header ${json.failure}` }))
  const decoded = decodeHeaderResult(json.success)
  if (Result.isFailure(decoded)) {
    return Result.fail(
      new MalformedResponse({
        reason: `the header does not match the schema: ${describeSchemaError(decoded.failure)}`,
        cause: decoded.failure
      })
    )
  }
  const header = decoded.success
  const bodyLength = header.stdoutLength + header.stderrLength
  if (bodyLength > maxBodyBytes) {
    return Result.fail(
      new MalformedResponse({ reason: `bodies of ${bodyLength} bytes exceed the limit of ${maxBodyBytes}` })
    )
  }
  const end = bodyStart + bodyLength
  if (bytes.byteLength < end) return Result.succeed({ _tag: "NeedMore", needed: end })
  const stdoutEnd = bodyStart + header.stdoutLength
  return Result.succeed({
    _tag: "Complete",
    result: { header, stdout: bytes.subarray(bodyStart, stdoutEnd), stderr: bytes.subarray(stdoutEnd, end) },
    consumed: end
  })
}

/**
 * A response for a request that ran nothing: no output, no exit status.
 *
 * ```ts
 * Exec.failureResult(new Exec.BadRequest({ message: "argv is missing" }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const failureResult = (error: ExecError): ExecResult => ({
  header: {
    exitCode: null,
    signal: null,
    stdoutLength: 0,
    stderrLength: 0,
    truncated: false,
    durationMs: 0,
    error
  },
  stdout: new Uint8Array(0),
  stderr: new Uint8Array(0)
})

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
}> {
  override get message(): string {
    return `refusing to serve commands on ${
      Address.format(this.address)
    } without a token: anyone who can reach it could run the allowed commands; pass --token ` +
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
export type ExecConfigError = MissingAllowlist | CommandNotFound | InvalidExecOptions | UnsupportedPlatform

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

const positiveInt = (
  option: string,
  value: number | undefined,
  fallback: number,
  max: number
): Result.Result<number, InvalidExecOptions> => {
  if (value === undefined) return Result.succeed(fallback)
  return Number.isSafeInteger(value) && value > 0 && value <= max
    ? Result.succeed(value)
    : Result.fail(invalid(option, `expected a whole number from 1 to ${max}, got ${value}`))
}

const positiveDuration = (
  option: string,
  value: Duration.Input | undefined,
  fallback: Duration.Duration,
  allowZero = false
): Result.Result<Duration.Duration, InvalidExecOptions> => {
  if (value === undefined) return Result.succeed(fallback)
  const decoded = Duration.fromInput(value)
  if (Option.isNone(decoded)) return Result.fail(invalid(option, `${JSON.stringify(value)} is not a duration`))
  const d = decoded.value
  const millis = Duration.toMillis(d)
  return Duration.isFinite(d) && (millis > 0 || (allowZero && millis === 0))
    ? Result.succeed(d)
    : Result.fail(
      invalid(option, `expected a finite duration ${allowZero ? "of zero or more" : "above zero"}, got ${Duration.format(d)}`)
    )
}

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

const defaultEnv = (): Record<string, string> => {
  const path = internal.searchDirectories(process.env.PATH).join(NodePath.delimiter)
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
    const timeout = yield* Effect.fromResult(positiveDuration("timeout", options.timeout, defaults.timeout))
    const killGrace = yield* Effect.fromResult(positiveDuration("killGrace", options.killGrace, defaults.killGrace))
    const queueTimeout = yield* Effect.fromResult(positiveDuration("queueTimeout", options.queueTimeout, timeout))
    const maxOutput = yield* Effect.fromResult(
      positiveInt("maxOutput", options.maxOutput, defaults.maxOutput, bufferConstants.MAX_LENGTH)
    )
    const concurrency = yield* Effect.fromResult(
      positiveInt("concurrency", options.concurrency, defaults.concurrency, 1024)
    )
    const maxRequestBytes = yield* Effect.fromResult(
      positiveInt("maxRequestBytes", options.maxRequestBytes, defaults.maxRequestBytes, MAX_FRAME_LENGTH)
    )
    const env = yield* Effect.fromResult(validateEnv(options.env ?? defaultEnv()))
    const cwd = NodePath.resolve(options.cwd ?? process.cwd())
    if (!(yield* Effect.sync(() => internal.isDirectory(cwd)))) {
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

    const searched = internal.searchDirectories(process.env.PATH)
    const commands = new Map<string, string>()
    for (const entry of options.allow) {
      const file = yield* Effect.sync(() =>
        NodePath.isAbsolute(entry)
          ? (internal.isExecutableFile(entry) ? entry : undefined)
          : internal.resolveExecutable(entry, searched)
      )
      if (file === undefined) return yield* new CommandNotFound({ command: entry, searched })
      commands.set(entry, file)
    }

    const digest = rawToken === undefined ? undefined : internal.tokenDigest(rawToken)
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
      authorize: (token) => {
        if (digest === undefined) return Result.void
        if (token === undefined) {
          return Result.fail(new Unauthorized({ message: "this server requires a token: send it in the request's \"token\" field" }))
        }
        return internal.tokenMatches(digest, token)
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
 * can reach (not loopback, not a Unix socket) needs a token.
 *
 * ```ts
 * yield* Effect.fromResult(Exec.checkBind(policy, Address.tcp("0.0.0.0", 9000)))
 * ```
 *
 * @since 0.1.0
 * @category policy
 */
export const checkBind = (policy: ExecPolicy, address: Address.Address): Result.Result<void, InsecureBind> =>
  policy.requiresToken || Address.isLoopback(address) ? Result.void : Result.fail(new InsecureBind({ address }))

// ---------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------

/**
 * Turns requests into responses under an {@link ExecPolicy}. Its effects never
 * fail: every refusal or failure is a response whose header has `error`.
 * Interrupting a run kills the command's process group and waits for it.
 *
 * ```ts
 * const result = yield* runner.run({ argv: ["uname", "-s"] })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecRunner {
  readonly policy: ExecPolicy
  /** Check the token, then the allowlist; wait for a slot; run; collect. */
  readonly run: (request: ExecRequest) => Effect.Effect<ExecResult>
  /** {@link decodeRequest} then {@link ExecRunner.run}; a bad payload is a `BadRequest` response. */
  readonly runFrame: (payload: Uint8Array) => Effect.Effect<ExecResult>
  /** The answer to a request frame announced with `length` bytes, over `maxRequestBytes`. */
  readonly frameTooLarge: (length: number) => ExecResult
}

const describeSpawnError = (argv0: string, file: string, cwd: string, err: NodeJS.ErrnoException): string => {
  const code = err.code === undefined ? "" : ` (${err.code})`
  const hint = err.code === "ENOENT"
    ? `: ${file} or the working directory ${cwd} no longer exists`
    : err.code === "EACCES"
    ? `: ${file} is no longer executable, or ${cwd} is not accessible`
    : err.code === "EAGAIN" || err.code === "ENOMEM"
    ? ": the machine is out of processes or memory; try again later"
    : `: ${err.message}`
  return `could not start ${JSON.stringify(argv0)}${code}${hint}`
}

/**
 * A runner for a policy, with its own concurrency limit.
 *
 * ```ts
 * const runner = yield* Exec.makeRunner(yield* Exec.makePolicy({ allow: ["echo"] }))
 * const result = yield* runner.runFrame(payload)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRunner = (policy: ExecPolicy): Effect.Effect<ExecRunner> =>
  Effect.map(Semaphore.make(policy.concurrency), (slots) => {
    const timeoutMillis = Duration.toMillis(policy.timeout)
    const killGraceMillis = Duration.toMillis(policy.killGrace)

    const busy = failureResult(
      new Timeout({
        message: `no free slot within ${Duration.format(policy.queueTimeout)}: all ${policy.concurrency} ` +
          "slots are running commands; try again later (the server's --concurrency sets the slots)"
      })
    )

    // A request waits for a slot at most `queueTimeout`. The timer gives up only
    // if the slot was not taken yet, so a started command is never abandoned;
    // withPermits releases the slot however the run ends.
    const withSlot = (self: Effect.Effect<ExecResult>): Effect.Effect<ExecResult> =>
      Effect.flatMap(Deferred.make<void>(), (started) =>
        Effect.race(
          slots.withPermits(1)(Effect.andThen(Deferred.succeed(started, undefined), self)),
          Effect.sleep(policy.queueTimeout).pipe(
            Effect.andThen(Deferred.isDone(started)),
            Effect.flatMap((isStarted) => isStarted ? Effect.never : Effect.succeed(busy))
          )
        ))

    const execute = (argv0: string, file: string, args: ReadonlyArray<string>): Effect.Effect<ExecResult> =>
      Effect.map(
        internal.runProcess({
          file,
          argv0,
          args,
          env: policy.env,
          cwd: policy.cwd,
          timeoutMillis,
          killGraceMillis,
          maxOutput: policy.maxOutput
        }),
        (outcome): ExecResult => {
          if (outcome.spawnError !== undefined) {
            return failureResult(
              new SpawnFailed({ message: describeSpawnError(argv0, file, policy.cwd, outcome.spawnError) })
            )
          }
          const error = outcome.timedOut
            ? new Timeout({
              message: `${JSON.stringify(argv0)} did not finish within ${
                Duration.format(policy.timeout)
              }; its process group was killed and the output so far is included`
            })
            : undefined
          return {
            header: {
              exitCode: outcome.exitCode,
              signal: outcome.signal,
              stdoutLength: outcome.stdout.byteLength,
              stderrLength: outcome.stderr.byteLength,
              truncated: outcome.truncated,
              // Microseconds are as precise as a process's run time gets; more digits are noise on the wire.
              durationMs: Math.round(outcome.durationMs * 1000) / 1000,
              ...(error === undefined ? {} : { error })
            },
            stdout: outcome.stdout,
            stderr: outcome.stderr
          }
        }
      )

    const run = (request: ExecRequest): Effect.Effect<ExecResult> =>
      Effect.suspend(() => {
        const authorized = policy.authorize(request.token)
        if (Result.isFailure(authorized)) return Effect.succeed(failureResult(authorized.failure))
        const [argv0, ...args] = request.argv
        const file = policy.resolve(argv0)
        if (Result.isFailure(file)) return Effect.succeed(failureResult(file.failure))
        return withSlot(execute(argv0, file.success, args))
      })

    return {
      policy,
      run,
      runFrame: (payload) =>
        Effect.suspend(() => {
          const request = decodeRequest(payload)
          return Result.isFailure(request) ? Effect.succeed(failureResult(request.failure)) : run(request.success)
        }),
      frameTooLarge: (length) =>
        failureResult(
          new FrameTooLarge({
            message: `the request frame of ${length} bytes exceeds the server's limit of ${policy.maxRequestBytes} ` +
              "bytes; the connection is closed"
          })
        )
    }
  })

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/**
 * Options of {@link make} and {@link layer}: the {@link ExecOptions} and where
 * and how to listen.
 *
 * - `address` (default `127.0.0.1`, port 0): an address other machines can
 *   reach needs a `token`, or the server refuses to start ({@link InsecureBind}).
 * - `maxConnections` (1024): connections served at once; further ones wait.
 *   The `concurrency` limit on commands is shared by all connections.
 * - `idleTimeout` (none): close a connection that sends no request for this
 *   long while nothing runs for it. A long command never counts as idle.
 * - `shutdownTimeout` (10 s): on release, how long each connection may finish
 *   the request in hand; then its command is killed.
 *
 * ```ts
 * const options: Exec.ServerOptions = {
 *   allow: ["uptime", "df"],
 *   address: Address.tcp("127.0.0.1", 9000),
 *   timeout: "5 seconds",
 *   idleTimeout: "1 minute"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions extends ExecOptions {
  /** Where to listen (default `127.0.0.1`, port 0). */
  readonly address?: Address.Address | undefined
  /** Connections served at once (default 1024); further ones wait. */
  readonly maxConnections?: number | undefined
  /** Close a connection that sent no request for this long while nothing ran for it (default: never). */
  readonly idleTimeout?: Duration.Input | undefined
  /** On release, how long the request in hand may finish (default 10 seconds). */
  readonly shutdownTimeout?: Duration.Input | undefined
}

/**
 * Every way starting an exec server can fail: the address cannot be bound,
 * the options are unusable, or the bind would expose commands without a token.
 *
 * ```ts
 * Exec.make(options).pipe(Effect.catch((e: Exec.ServeError) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ServeError = ListenError | ExecConfigError | InsecureBind

/**
 * The running exec server that {@link layer} provides: its bound address,
 * counters and shutdown report. Its own tag, so it composes with the other
 * built-in servers in one program.
 *
 * ```ts
 * const server = yield* Exec.Exec
 * yield* Console.log(`exec server on ${Address.format(server.address)}`)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Exec extends Context.Service<Exec, Server.RunningServer>()("effect-wire/servers/Exec") {}

const DEFAULT_ADDRESS = Address.tcp("127.0.0.1", 0)
const DEFAULT_MAX_CONNECTIONS = 1024
const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(10)
// Request frames read ahead of the one running: enough for a pipelining client,
// few enough that a connection holds about this many frames (or socket reads)
// at most. While they are full, reading pauses, and a reset is noticed only
// when the answer in hand is written.
const READ_AHEAD = 16
// After refusing an oversized frame, how long the rest of it is read and
// dropped before the socket is closed: closing with unread bytes makes the
// kernel send RST, which can destroy the answer before the client read it.
const LINGER = Duration.seconds(1)

type Inbound =
  | { readonly _tag: "Request"; readonly payload: Uint8Array }
  | { readonly _tag: "TooLarge"; readonly size: number }
  | { readonly _tag: "End" }

const END: Inbound = { _tag: "End" }

/**
 * Read request frames into `inbox`, in order, until EOF (then `End`) or an
 * oversized frame (then `TooLarge`, after which bytes are read and dropped
 * without buffering, so a reset is still noticed).
 */
const readRequests = (
  socket: Socket.Socket,
  decoder: Framing.Decoder<Uint8Array>,
  inbox: Queue.Enqueue<Inbound>
): Effect.Effect<void, ReadError> =>
  Effect.suspend(() => {
    const frames: Array<Uint8Array> = []
    let stopped = false
    const onBytes = (bytes: Uint8Array): Effect.Effect<void> => {
      if (stopped) return Effect.void
      const error = decoder.push(bytes, frames)
      const items: Array<Inbound> = frames.map((payload) => ({ _tag: "Request", payload }))
      frames.length = 0
      if (error !== undefined) {
        stopped = true
        // With the default adjustment lengthPrefixed fails only with FrameTooLarge; anything else ends the connection.
        items.push(error instanceof Framing.FrameTooLarge ? { _tag: "TooLarge", size: error.size } : END)
      }
      return items.length === 0 ? Effect.void : Queue.offerAll(inbox, items)
    }
    return Stream.runForEach(socket.reads, onBytes).pipe(
      // A frame cut short by the half-close gets no answer: the peer said it sends nothing more.
      Effect.andThen(Effect.suspend(() => stopped ? Effect.void : Queue.offer(inbox, END)))
    )
  })

const answerRequests = (
  runner: ExecRunner,
  socket: Socket.Socket,
  connection: Server.Connection,
  inbox: Queue.Dequeue<Inbound>,
  readerDone: Deferred.Deferred<void>,
  idleTimeout: Duration.Duration | undefined
): Effect.Effect<void, WriteError> => {
  const next = Effect.raceFirst(Queue.take(inbox), Effect.as(connection.draining, END))
  const nextRequest = idleTimeout === undefined
    ? next
    : Effect.timeoutOrElse(next, { duration: idleTimeout, orElse: () => Effect.succeed(END) })
  return Effect.gen(function*() {
    // Draining: the request in hand was answered; the ones read ahead are not started.
    while (!(yield* connection.isDraining)) {
      const item = yield* nextRequest
      if (item._tag === "End") return
      if (item._tag === "TooLarge") {
        yield* socket.writeAll(encodeResponse(runner.frameTooLarge(item.size)))
        yield* socket.end
        yield* Effect.timeoutOption(Deferred.await(readerDone), LINGER)
        return
      }
      const result = yield* runner.runFrame(item.payload)
      yield* socket.writeAll(encodeResponse(result))
    }
  })
}

const connectionHandler = (runner: ExecRunner, idleTimeout: Duration.Duration | undefined) => {
  const codec = Framing.lengthPrefixed({ maxFrameLength: runner.policy.maxRequestBytes })
  return (socket: Socket.Socket, connection: Server.Connection) =>
    Effect.gen(function*() {
      const inbox = yield* Queue.bounded<Inbound>(READ_AHEAD)
      const readerDone = yield* Deferred.make<void>()
      const reader = readRequests(socket, codec.decoder(), inbox).pipe(
        Effect.andThen(Deferred.succeed(readerDone, undefined)),
        Effect.andThen(Effect.never)
      )
      // Reading goes on while a command runs, so a client that resets the
      // connection fails the reader, and the race interrupts the command
      // (which kills its process group and waits for it).
      yield* Effect.raceFirst(answerRequests(runner, socket, connection, inbox, readerDone, idleTimeout), reader)
    }).pipe(
      Effect.catchTags({
        // The client went away: an ordinary end of a connection, not a server failure.
        ConnectionReset: (e) => Effect.logDebug(`exec: ${e.message}`),
        BrokenPipe: (e) => Effect.logDebug(`exec: ${e.message}`)
      })
    )
}

const prepare = (options: ServerOptions, address: Address.Address) =>
  Effect.gen(function*() {
    const policy = yield* makePolicy(options)
    yield* Effect.fromResult(checkBind(policy, address))
    const maxConnections = yield* Effect.fromResult(
      positiveInt("maxConnections", options.maxConnections, DEFAULT_MAX_CONNECTIONS, Number.MAX_SAFE_INTEGER)
    )
    const idleTimeout = options.idleTimeout === undefined
      ? undefined
      : yield* Effect.fromResult(positiveDuration("idleTimeout", options.idleTimeout, Duration.infinity))
    const shutdownTimeout = yield* Effect.fromResult(
      positiveDuration("shutdownTimeout", options.shutdownTimeout, DEFAULT_SHUTDOWN_TIMEOUT, true)
    )
    const runner = yield* makeRunner(policy)
    return { handler: connectionHandler(runner, idleTimeout), maxConnections, shutdownTimeout }
  })

/**
 * Start an exec server in the current scope: check the options and the
 * allowlist, refuse a reachable address without a token, then listen. Each
 * connection's requests are answered one at a time, in order; commands of all
 * connections share the `concurrency` slots. Closing the scope stops
 * accepting, lets each connection finish the request in hand (within
 * `shutdownTimeout`), then closes it.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* Exec.make({ allow: ["uptime"], address: Address.tcp("127.0.0.1", 9000) })
 *   yield* Console.log(`listening on ${Address.format(server.address)}`)
 *   return yield* Effect.never
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: ServerOptions): Effect.Effect<Server.RunningServer, ServeError, Scope.Scope> =>
  Effect.suspend(() => {
    const address = options.address ?? DEFAULT_ADDRESS
    return Effect.flatMap(prepare(options, address), (prepared) => Server.make({ address, ...prepared }))
  })

/**
 * Serve exec requests on a listener you already have, such as
 * `MemorySocket.listen()` to test without the network. The bind check uses
 * the listener's address.
 *
 * ```ts
 * const listener = yield* MemorySocket.listen()
 * yield* Exec.fromListener(listener, { allow: ["echo"] })
 * const client = yield* Exec.clientFromSocket(yield* listener.connect())
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromListener = (
  listener: Socket.Listener,
  options: Omit<ServerOptions, "address">
): Effect.Effect<Server.RunningServer, ExecConfigError | InsecureBind, Scope.Scope> =>
  Effect.flatMap(prepare(options, listener.address), (prepared) => Server.fromListener(listener, prepared))

/**
 * The exec server as a Layer providing {@link Exec}: building it checks the
 * options and listens, releasing it drains (see {@link make}).
 *
 * ```ts
 * const ExecLive = Exec.layer({
 *   allow: ["uptime", "df"],
 *   address: Address.tcp("0.0.0.0", 9000),
 *   token: Redacted.make(process.env.EXEC_TOKEN ?? "")
 * })
 * NodeRuntime.runMain(Layer.launch(ExecLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ServerOptions): Layer.Layer<Exec, ServeError> => Layer.effect(Exec, make(options))

/**
 * {@link layer} on 127.0.0.1 with a free port, for tests: read the port from
 * the {@link Exec} service.
 *
 * ```ts
 * it.live("runs echo", () =>
 *   Effect.gen(function*() {
 *     const client = yield* Exec.client((yield* Exec.Exec).address)
 *     assert.strictEqual((yield* client.run(["echo", "hi"])).header.exitCode, 0)
 *   }).pipe(Effect.provide(Exec.layerTest({ allow: ["echo"] }))))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (options: Omit<ServerOptions, "address">): Layer.Layer<Exec, ServeError> =>
  layer({ ...options, address: DEFAULT_ADDRESS })

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/**
 * The connection ended before every request was answered: the server closed
 * it (shutting down, idle, or after refusing an oversized frame), it ended in
 * the middle of a response, or this client reset it after an interrupted or
 * timed-out request. `reason` says which. The client cannot be used again.
 *
 * ```ts
 * client.run(["uptime"]).pipe(Effect.catchTag("ConnectionClosed", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly address: Address.Address
  readonly reason: string
}> {
  override get message(): string {
    return `the connection to the exec server at ${Address.format(this.address)} is closed: ${this.reason}`
  }
}

/**
 * No answer within the client's `timeout`. The client reset the connection,
 * so the server killed what it was running for it; make a new client to retry.
 *
 * ```ts
 * client.run(["make"]).pipe(Effect.catchTag("ResponseTimeout", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ResponseTimeout extends Data.TaggedError("ResponseTimeout")<{
  readonly address: Address.Address
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `no answer from the exec server at ${Address.format(this.address)} within ${
      Duration.format(this.timeout)
    }; the connection was reset so the server stops the command; raise the client's timeout or shorten the command`
  }
}

/**
 * What can go wrong between the client and the server, as opposed to the
 * server's refusals ({@link ExecError}).
 *
 * ```ts
 * const retryable = (e: Exec.TransportError) => e._tag === "ConnectionClosed" || e._tag === "ConnectionReset"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TransportError = ReadError | WriteError | MalformedResponse | ConnectionClosed | ResponseTimeout

/**
 * Everything {@link ExecClient.run} can fail with: a refusal of the server
 * (with the server's tag, e.g. `CommandNotAllowed`) or a transport error.
 *
 * ```ts
 * client.run(["ls"]).pipe(Effect.catchTags({ CommandNotAllowed: () => Effect.succeed(undefined) }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ClientError = ExecError | TransportError

/**
 * Options of {@link client} and {@link clientFromSocket}.
 *
 * - `token`: sent with every request that has none of its own.
 * - `timeout` (none): the longest a connect and each call (`run`, `runAll`,
 *   `request`) may take; past it the call fails with {@link ResponseTimeout}
 *   (or `ConnectTimeout`) and the connection is reset.
 * - `maxHeaderBytes` (64 KiB) and `maxBodyBytes` (64 MiB): the largest
 *   response header and stdout + stderr the client accepts; a larger one is
 *   a {@link MalformedResponse}. What the client buffers stays within them.
 *
 * ```ts
 * const client = yield* Exec.client(address, { token: Redacted.make("s3cret"), timeout: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /** Sent with every request that carries no token of its own. */
  readonly token?: string | Redacted.Redacted<string> | undefined
  /** The longest a connect and each call may take (default: no limit). */
  readonly timeout?: Duration.Input | undefined
  /** The largest response header accepted (default 64 KiB). */
  readonly maxHeaderBytes?: number | undefined
  /** The largest stdout + stderr accepted (default 64 MiB). */
  readonly maxBodyBytes?: number | undefined
}

/**
 * A client on one connection. Calls may overlap, from one fiber (`runAll`)
 * or several: requests are sent as they come and pipelined, and each gets
 * its own answer (the server answers in order).
 *
 * - `run(argv)`: the result of a command that ran, whatever its exit code
 *   (exit 1 is a success with `header.exitCode === 1`); a refusal fails with
 *   the server's error (`CommandNotAllowed`, `Unauthorized`, `Timeout`, …).
 * - `runAll(argvs)`: sends every request in one write, then collects the
 *   answers in order, each a refusal or a result; only transport errors fail it.
 * - `request(request)`: the raw response, refusals included (a timed-out
 *   command's partial output is in it).
 *
 * Interrupting a call whose request was sent resets the connection, so the
 * server kills the command (and anything else pipelined on this connection).
 * So does closing the client's scope while answers are outstanding.
 *
 * ```ts
 * const result = yield* client.run(["uname", "-s"])
 * const [a, b] = yield* client.runAll([["date"], ["uptime"]])
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecClient {
  /** The server's address. */
  readonly address: Address.Address
  /** Run one command: its result, or the server's refusal as a typed error. */
  readonly run: (argv: ExecRequest["argv"]) => Effect.Effect<ExecResult, ClientError>
  /** Send all in one write, then collect the answers in order. */
  readonly runAll: (
    argvs: ReadonlyArray<ExecRequest["argv"]>
  ) => Effect.Effect<Array<Result.Result<ExecResult, ExecError>>, TransportError>
  /** One request, answered with the raw response (refusals in `header.error`). */
  readonly request: (request: ExecRequest) => Effect.Effect<ExecResult, TransportError>
}


type Waiter = Deferred.Deferred<ExecResult, TransportError>

/**
 * An exec client over a socket you already have (e.g. one end of
 * `MemorySocket.makePair`). The client reads the socket from a fiber of the
 * current scope; closing the scope with answers outstanding resets it.
 *
 * ```ts
 * const socket = yield* Socket.connect(address)
 * const client = yield* Exec.clientFromSocket(socket, { token: "s3cret" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientFromSocket = (
  socket: Socket.Socket,
  options?: ClientOptions
): Effect.Effect<ExecClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const address = socket.remoteAddress
    const token = options?.token === undefined
      ? undefined
      : Redacted.isRedacted(options.token)
      ? Redacted.value(options.token)
      : options.token
    const timeout = options?.timeout === undefined ? undefined : Duration.fromInputUnsafe(options.timeout)
    const decodeOptions = { maxHeaderBytes: options?.maxHeaderBytes, maxBodyBytes: options?.maxBodyBytes }
    // Answers come in request order: the head of `waiting` gets the next one.
    const waiting: Array<Waiter> = []
    let broken: TransportError | undefined
    const sendLock = yield* Semaphore.make(1)

    const breakWith = (error: TransportError): void => {
      broken ??= error
      for (const waiter of waiting.splice(0)) Deferred.doneUnsafe(waiter, Exit.fail(error))
    }

    // Bytes of the response being read. They are joined only once `needed`
    // bytes arrived (at most three times per response), so a large response
    // costs one copy, and what is held stays within the decode limits plus one read.
    let chunks: Array<Uint8Array> = []
    let buffered = 0
    let needed = 4
    const feed = (bytes: Uint8Array): MalformedResponse | undefined => {
      chunks.push(bytes)
      buffered += bytes.byteLength
      while (buffered >= needed) {
        const buffer = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, buffered)
        chunks = [buffer]
        const step = decodeResponse(buffer, decodeOptions)
        if (Result.isFailure(step)) return step.failure
        if (step.success._tag === "NeedMore") {
          needed = step.success.needed
          return undefined
        }
        const waiter = waiting.shift()
        if (waiter === undefined) return new MalformedResponse({ reason: "a response arrived for no request" })
        Deferred.doneUnsafe(waiter, Exit.succeed(step.success.result))
        const rest = buffer.subarray(step.success.consumed)
        chunks = rest.byteLength === 0 ? [] : [rest]
        buffered = rest.byteLength
        needed = 4
      }
      return undefined
    }

    const reader = Stream.runForEach(socket.reads, (bytes) => {
      const error = feed(bytes)
      return error === undefined ? Effect.void : Effect.fail(error)
    }).pipe(
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.sync(() => breakWith(error)).pipe(
            // A malformed stream cannot be resynchronised; a failed read means the socket is gone anyway.
            Effect.andThen(error._tag === "MalformedResponse" ? socket.reset : Effect.void)
          ),
        onSuccess: () =>
          Effect.sync(() =>
            breakWith(
              new ConnectionClosed({
                address,
                reason: buffered > 0
                  ? `the server closed it in the middle of a response, after ${buffered} bytes of it`
                  : waiting.length > 0
                  ? `the server closed it before answering ${waiting.length} request(s); it may be shutting ` +
                    "down, idle-closing, or have refused an oversized request"
                  : "the server closed it"
              })
            )
          ).pipe(
            // The server sends nothing more; ending our side lets it close at once.
            Effect.andThen(Effect.ignore(socket.end))
          )
      })
    )
    yield* Effect.forkScoped(reader)

    const abandon = (reason: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (broken !== undefined) return Effect.void
        return Effect.andThen(socket.reset, Effect.sync(() => breakWith(new ConnectionClosed({ address, reason }))))
      })
    const abandonInterrupted = abandon(
      "this client reset it to abandon an interrupted or timed-out request; make a new client"
    )

    // Added after the reader fork, so it runs before the reader is interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => waiting.length > 0 ? abandon("the client's scope was closed") : Effect.void).pipe(
        Effect.andThen(Effect.sync(() => breakWith(new ConnectionClosed({ address, reason: "the client's scope was closed" }))))
      )
    )

    const send = (requests: ReadonlyArray<ExecRequest>): Effect.Effect<Array<Waiter>, TransportError> =>
      sendLock.withPermits(1)(
        Effect.suspend(() => {
          if (broken !== undefined) return Effect.fail(broken)
          const waiters = requests.map(() => Deferred.makeUnsafe<ExecResult, TransportError>())
          waiting.push(...waiters)
          return socket.writeAll(requests.map(encodeRequest)).pipe(
            // A frame cut short by interruption would garble every later request.
            Effect.onInterrupt(() => abandonInterrupted),
            Effect.tapError((error) => Effect.sync(() => breakWith(error))),
            Effect.as(waiters)
          )
        })
      )

    const exchange = (requests: ReadonlyArray<ExecRequest>): Effect.Effect<Array<ExecResult>, TransportError> => {
      const exchanged = Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(send(requests)), (waiters) =>
          restore(Effect.forEach(waiters, (waiter) => Deferred.await(waiter))).pipe(
            Effect.onInterrupt(() => abandonInterrupted)
          ))
      )
      return timeout === undefined ? exchanged : Effect.timeoutOrElse(exchanged, {
        duration: timeout,
        orElse: () => Effect.fail(new ResponseTimeout({ address, timeout }))
      })
    }

    const withToken = (request: ExecRequest): Result.Result<ExecRequest, BadRequest> =>
      Result.mapError(
        decodeRequestResult(request.token === undefined && token !== undefined ? { ...request, token } : request),
        invalidRequest
      )

    const request = (request: ExecRequest): Effect.Effect<ExecResult, TransportError> => {
      const checked = withToken(request)
      return Result.isFailure(checked)
        ? Effect.succeed(failureResult(checked.failure))
        : Effect.map(exchange([checked.success]), (results) => results[0]!)
    }

    const client: ExecClient = {
      address,
      request,
      run: (argv) =>
        Effect.flatMap(request({ argv }), (result) =>
          result.header.error === undefined ? Effect.succeed(result) : Effect.fail(result.header.error)),
      runAll: (argvs) =>
        Effect.suspend(() => {
          const checked = argvs.map((argv) => withToken({ argv }))
          const valid = checked.flatMap((c) => Result.isSuccess(c) ? [c.success] : [])
          return Effect.map(valid.length === 0 ? Effect.succeed([]) : exchange(valid), (results) => {
            let next = 0
            return checked.map((c): Result.Result<ExecResult, ExecError> => {
              if (Result.isFailure(c)) return Result.fail(c.failure)
              const result = results[next++]!
              return result.header.error === undefined ? Result.succeed(result) : Result.fail(result.header.error)
            })
          })
        }),
    }
    return client
  })

/**
 * Connect to an exec server and make a client on the connection, closed with
 * the scope (see {@link ExecClient}).
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const client = yield* Exec.client(Address.tcp("127.0.0.1", 9000), { token: "s3cret" })
 *   const result = yield* client.run(["uname", "-s"])
 *   return result.header.exitCode === 0 ? new TextDecoder().decode(result.stdout) : "failed"
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const client = (
  address: Address.Address,
  options?: ClientOptions
): Effect.Effect<ExecClient, ConnectError, Scope.Scope> =>
  Effect.flatMap(Socket.connect(address, { timeout: options?.timeout }), (socket) => clientFromSocket(socket, options))
