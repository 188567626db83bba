/**
 * The exec protocol's wire format (docs/exec-protocol.md): the request and
 * response schemas, the six refusals a response can carry, and the codecs that
 * turn them into bytes and back, built on `Framing.lengthPrefixed` (requests)
 * and `Framing.header` (responses).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"
import * as Framing from "../Framing.js"
import { clear, concat } from "../internal/bytes.js"

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
 * closes the connection after this answer. On the wire its `_tag` is
 * `"FrameTooLarge"` (the protocol's name for it); in TypeScript it is
 * `RequestTooLarge`, so it never meets `Framing.FrameTooLarge` in a `catchTag`.
 *
 * ```ts
 * client.run(argv).pipe(Effect.catchTag("RequestTooLarge", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RequestTooLarge extends Schema.TaggedError<RequestTooLarge>()("RequestTooLarge", {
  message: Schema.String
}) {}

// The five other refusals are their own wire form: `{"_tag", "message"}`, in that order.
const RequestTooLargeOnTheWire = Schema.Struct({ _tag: Schema.Literal("FrameTooLarge"), message: Schema.String }).pipe(
  Schema.decodeTo(
    RequestTooLarge,
    SchemaTransformation.transform({
      decode: ({ message }) => ({ _tag: "RequestTooLarge" as const, message }),
      encode: ({ message }) => ({ _tag: "FrameTooLarge" as const, message })
    })
  )
)

/**
 * The `error` field of a response: one of the six refusals, as a yieldable
 * tagged error, so a client can `yield*` it. It decodes the wire's tags
 * (`"FrameTooLarge"` becomes a {@link RequestTooLarge}) and encodes back to them.
 *
 * ```ts
 * Schema.decodeUnknownSync(Exec.ExecError)({ _tag: "Timeout", message: "took too long" })
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const ExecError = Schema.Union([
  CommandNotAllowed,
  Unauthorized,
  Timeout,
  SpawnFailed,
  BadRequest,
  RequestTooLargeOnTheWire
])

/**
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
// Requests
// ---------------------------------------------------------------------------

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder("utf-8", { fatal: true })
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

/** The largest length a 4-byte length field can hold. */
const MAX_U32 = 0xffff_ffff

/**
 * Request frames: a 4-byte big-endian length, then that many bytes of JSON
 * (`Framing.lengthPrefixed`). `maxRequestBytes` (default 64 KiB, the server's
 * default) bounds a frame; a longer one fails with `Framing.FrameTooLarge`
 * before its body is buffered.
 *
 * ```ts
 * const frames = socket.reads.pipe(Framing.decode(Exec.requestCodec({ maxRequestBytes: 4096 })))
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const requestCodec = (options?: { readonly maxRequestBytes?: number | undefined }): Framing.Codec<Uint8Array> =>
  Framing.lengthPrefixed({ lengthBytes: 4, maxFrameLength: options?.maxRequestBytes ?? 64 * 1024 })

// Encodes whatever a 4-byte length can say: the receiving server decides what it accepts.
const anyRequest = requestCodec({ maxRequestBytes: MAX_U32 })

/**
 * One complete request frame: the 4-byte big-endian length, then the JSON.
 * The bytes may be a view into a larger buffer (read `byteOffset`).
 *
 * ```ts
 * socket.write(Exec.encodeRequest({ argv: ["uname", "-a"] }))
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const encodeRequest = (request: ExecRequest): Uint8Array =>
  Result.getOrThrow(Framing.encodeAll(anyRequest, [utf8Encoder.encode(JSON.stringify(encodeRequestSync(request)))]))

/**
 * Check a request that is already a JavaScript value (e.g. parsed JSON, or a
 * request about to be sent): the {@link ExecRequest} it is, or a
 * {@link BadRequest} that says, on one line, what is wrong and where.
 *
 * ```ts
 * Exec.checkRequest({ argv: ["ls", 1] }) // Result.fail(BadRequest: "... Expected string at argv[1]")
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const checkRequest = (value: unknown): Result.Result<ExecRequest, BadRequest> => {
  const problem = shapeProblem(value)
  return problem !== undefined
    ? Result.fail(badShape(problem))
    : Result.mapError(decodeRequestResult(value), (error) => badShape(bounded(describeSchemaError(error))))
}

const badShape = (problem: string) =>
  new BadRequest({ message: `the request must be {"argv": ["command", "arg", ...], "token"?: "..."}: ${problem}` })

/** The longest problem text a BadRequest carries: it goes into a response header and maybe a log line. */
const MAX_PROBLEM = 200

const bounded = (s: string): string => s.length <= MAX_PROBLEM ? s : `${s.slice(0, MAX_PROBLEM)}…`

const kindOf = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : typeof value

/**
 * The request's shape, checked by hand before Schema sees it: one level of
 * object, one of array, strings. Whatever a hostile client nests inside
 * (arrays 30,000 deep fit in 64 KiB) is refused here without recursion, so
 * no Schema walk or error formatter ever meets it.
 */
const shapeProblem = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return `Expected object, got ${kindOf(value)}`
  const { argv, token } = value as { readonly argv?: unknown; readonly token?: unknown }
  if (!Array.isArray(argv)) return `Expected array at argv, got ${kindOf(argv)}`
  for (let i = 0; i < argv.length; i++) {
    if (typeof argv[i] !== "string") return `Expected string at argv[${i}], got ${kindOf(argv[i])}`
  }
  if (token !== undefined && typeof token !== "string") return `Expected string at token, got ${kindOf(token)}`
  return undefined
}

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
    return Result.fail(`is not JSON (${bounded((err as Error).message)})`)
  }
}

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
    checkRequest
  )

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

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
 * The most a reader of responses buffers: `maxHeaderBytes` (default 64 KiB)
 * bounds the header frame and `maxBodyBytes` (default 64 MiB, at most 4 GiB)
 * bounds stdout + stderr, so a hostile peer cannot make it buffer without
 * limit. Nonsense values (negative, fractional) throw
 * `Framing.InvalidCodecOptions`.
 *
 * ```ts
 * const limits: Exec.ResponseLimits = { maxHeaderBytes: 4096, maxBodyBytes: 1024 * 1024 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ResponseLimits {
  /** The largest response header accepted (default 64 KiB). */
  readonly maxHeaderBytes?: number | undefined
  /** The largest stdout + stderr accepted (default 64 MiB). */
  readonly maxBodyBytes?: number | undefined
}

const bodyLength = (header: ExecResponseHeader): number => header.stdoutLength + header.stderrLength

const responseFrames = (
  limits: ResponseLimits | undefined,
  onHeader?: (header: ExecResponseHeader) => void
): Framing.Codec<Framing.HeaderFrame<ExecResponseHeader>> =>
  Framing.header({
    header: ExecResponseHeader,
    bodyLength: onHeader === undefined ? bodyLength : (header) => {
      onHeader(header)
      return bodyLength(header)
    },
    maxHeaderLength: limits?.maxHeaderBytes ?? 64 * 1024,
    maxBodyLength: limits?.maxBodyBytes ?? 64 * 1024 * 1024
  })

const toResult = ({ body, header }: Framing.HeaderFrame<ExecResponseHeader>): ExecResult => ({
  header,
  stdout: body.subarray(0, header.stdoutLength),
  stderr: body.subarray(header.stdoutLength)
})

/**
 * stdout and stderr as one body. The runner keeps them side by side in one
 * buffer, so this is a view, not a copy; other bodies are joined (one copy).
 */
const joinBodies = (stdout: Uint8Array, stderr: Uint8Array): Uint8Array => {
  if (stderr.byteLength === 0) return stdout
  if (stdout.byteLength === 0) return stderr
  return stdout.buffer === stderr.buffer && stdout.byteOffset + stdout.byteLength === stderr.byteOffset
    ? new Uint8Array(stdout.buffer, stdout.byteOffset, stdout.byteLength + stderr.byteLength)
    : concat([stdout, stderr], stdout.byteLength + stderr.byteLength)
}

// The header's lengths are taken from the bodies, so the frame cannot disagree with what follows it.
const toFrame = ({ header, stderr, stdout }: ExecResult): Framing.HeaderFrame<ExecResponseHeader> => ({
  header: { ...header, stdoutLength: stdout.byteLength, stderrLength: stderr.byteLength },
  body: joinBodies(stdout, stderr)
})

/**
 * Responses as a codec: `Framing.header` with {@link ExecResponseHeader} as
 * the header and stdout + stderr as the body, whose `stdoutLength` and
 * `stderrLength` are set from the bodies when encoding. A decoded response's
 * stdout and stderr are views of one body buffer (no copy when the response
 * lies inside one read, one copy otherwise). The limits bound both directions
 * (see {@link ResponseLimits}); {@link malformedResponse} says what a decode
 * error means.
 *
 * ```ts
 * const decoder = Exec.responseCodec({ maxBodyBytes: 1024 * 1024 }).decoder()
 * const results: Array<Exec.ExecResult> = []
 * const error = decoder.push(bytes, results)
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const responseCodec = (limits?: ResponseLimits): Framing.Codec<ExecResult> => {
  const frames = responseFrames(limits)
  return Framing.make({
    name: `exec response (${frames.name})`,
    decoder: () => {
      const decoder = frames.decoder()
      const decoded: Array<Framing.HeaderFrame<ExecResponseHeader>> = []
      const deliver = (out: Array<ExecResult>, error: Framing.FrameError | undefined) => {
        for (let i = 0; i < decoded.length; i++) out.push(toResult(decoded[i]!))
        clear(decoded)
        return error
      }
      return {
        push: (bytes, out) => deliver(out, decoder.push(bytes, decoded)),
        end: (out) => deliver(out, decoder.end(decoded)),
        get buffered() {
          return decoder.buffered
        },
        get pending() {
          return decoder.pending
        },
        get failed() {
          return decoder.failed
        }
      }
    },
    encode: (results, out) => frames.encode(results.map(toFrame), out)
  })
}

/**
 * What a response decoder's error means to a client, as a
 * {@link MalformedResponse} whose `reason` fits on one line (the frame error
 * is its `cause`).
 *
 * ```ts
 * const error = decoder.push(bytes, results)
 * if (error !== undefined) return Effect.fail(Exec.malformedResponse(error))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const malformedResponse = (error: Framing.FrameError): MalformedResponse => {
  switch (error._tag) {
    case "FrameTooLarge":
      return new MalformedResponse({
        reason: error.what === "header"
          ? `header frame of ${error.size} bytes exceeds the limit of ${error.limit}`
          : `bodies of ${error.size} bytes exceed the limit of ${error.limit}`,
        cause: error
      })
    case "MalformedFrame":
      return new MalformedResponse({
        reason: Schema.isSchemaError(error.cause)
          ? `the header does not match the schema: ${describeSchemaError(error.cause)}`
          : error.reason,
        cause: error
      })
    case "IncompleteFrame":
      return new MalformedResponse({ reason: `the input ended inside a response, ${error.remaining} bytes into it`, cause: error })
  }
}

// Encodes whatever the wire can carry: the reader decides what it accepts.
const anyResponse = responseCodec({ maxHeaderBytes: MAX_U32, maxBodyBytes: 2 ** 32 })

/**
 * A response as the chunks to write, in order (one `writev`): the header
 * frame, then stdout and stderr. Bodies of 16 KiB or more are not copied
 * (do not change them until written), and neither are stdout and stderr that
 * lie side by side in one buffer, as the runner's do. The header's
 * `stdoutLength` and `stderrLength` are taken from the bodies, so the frame
 * cannot disagree with what follows it. Throws the `Framing.FrameError` of a
 * header that does not match {@link ExecResponseHeader}.
 *
 * ```ts
 * socket.writeAll(Exec.encodeResponse(result))
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const encodeResponse = (result: ExecResult): ReadonlyArray<Uint8Array> => {
  const out: Array<Uint8Array> = []
  const error = anyResponse.encode([result], out)
  if (error !== undefined) throw error
  return out
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

const needMore = (needed: number): Result.Result<ResponseStep, MalformedResponse> =>
  Result.succeed({ _tag: "NeedMore", needed })

/**
 * Read the first response at the start of a buffer you hold, with the
 * checks of {@link responseCodec} (use its decoder on a stream of reads).
 * Incomplete input is `NeedMore` with the total byte count needed so far
 * (read until you have it, then call again); nothing of an incomplete body is
 * copied, and a complete response's bodies are `subarray`s of `bytes`.
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
  limits?: ResponseLimits
): Result.Result<ResponseStep, MalformedResponse> => {
  if (bytes.byteLength < 4) return needMore(4)
  const headerEnd = 4 + new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false)
  // The decoder holds a header until its bodies are in; this one hands it over as soon as it is
  // read, so the bytes still needed are known without pushing (and buffering) a partial body.
  let header: ExecResponseHeader | undefined
  const decoder = responseFrames(limits, (h) => {
    header = h
  }).decoder()
  const frames: Array<Framing.HeaderFrame<ExecResponseHeader>> = []
  const pushed = decoder.push(bytes.subarray(0, Math.min(headerEnd, bytes.byteLength)), frames)
  if (pushed !== undefined) return Result.fail(malformedResponse(pushed))
  if (header === undefined) return needMore(headerEnd)
  const end = headerEnd + bodyLength(header)
  if (frames.length === 0) {
    if (bytes.byteLength < end) return needMore(end)
    const rest = decoder.push(bytes.subarray(headerEnd, end), frames)
    if (rest !== undefined) return Result.fail(malformedResponse(rest))
  }
  return Result.succeed({ _tag: "Complete", result: toResult(frames[0]!), consumed: end })
}
