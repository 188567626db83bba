/**
 * Typed messages from frames (or datagrams): a {@link Format} turns one
 * `Uint8Array` into one value of a Schema and back, synchronously, and
 * {@link decode}/{@link encode} apply it to a stream. A frame that does not
 * decode is a {@link MessageDecodeError} carrying Schema's `SchemaError`.
 * Message knows nothing of sockets or framing: one frame in, one value out.
 *
 * ```ts
 * const Ping = Schema.Struct({ seq: Schema.Number })
 * const format = Message.json(Ping)
 *
 * format.encode({ seq: 1 })                        // Result.succeed(Uint8Array '{"seq":1}')
 * format.decode(new TextEncoder().encode("{}"))   // Result.fail(MessageDecodeError)
 *
 * frames.pipe(Message.decode(format))              // Stream<{ seq: number }, E | MessageDecodeError>
 * ```
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { ParseOptions } from "effect/SchemaAST"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"
import * as Stream from "effect/Stream"
import * as Msgpackr from "msgpackr"
import { encodeUtf8 } from "./internal/bytes.js"
import { compiledDecoder, compiledEncoder } from "./internal/schemaJit.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-wire/Message/Format")

/** @since 0.1.0 */
export type TypeId = typeof TypeId

// A 1 MiB frame must not make a 1 MiB log line.
const MAX_DETAIL = 2000

const clip = (text: string): string =>
  text.length <= MAX_DETAIL ? text : `${text.slice(0, MAX_DETAIL)}… (${text.length - MAX_DETAIL} more characters)`

/**
 * A frame that is not a valid message: bad syntax (not JSON, not
 * MessagePack, not UTF-8) or a value the Schema rejects. `cause` is Schema's
 * `SchemaError`: its `issue` feeds `SchemaIssue`'s formatters; `frame` holds
 * the bytes.
 *
 * ```ts
 * messages.pipe(Stream.catchTag("MessageDecodeError", (e) => Stream.fromEffect(Console.error(e.message))))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class MessageDecodeError extends Data.TaggedError("MessageDecodeError")<{
  /** The format's name, e.g. "json". */
  readonly format: string
  /** The frame that did not decode. */
  readonly frame: Uint8Array
  readonly cause: Schema.SchemaError
}> {
  override get message(): string {
    return clip(`cannot decode a ${this.format} message of ${this.frame.length} bytes: ${this.cause.message}`)
  }
}

/**
 * A value that the format cannot encode: the Schema rejects it, or the
 * encoded form has no representation in the format (NaN or a BigInt in JSON).
 * `cause` is Schema's `SchemaError`.
 *
 * ```ts
 * protocol.send(reply).pipe(Effect.catchTag("MessageEncodeError", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class MessageEncodeError extends Data.TaggedError("MessageEncodeError")<{
  /** The format's name, e.g. "json". */
  readonly format: string
  /** The value that did not encode. */
  readonly value: unknown
  readonly cause: Schema.SchemaError
}> {
  override get message(): string {
    return clip(`cannot encode a ${this.format} message: ${this.cause.message}`)
  }
}

/**
 * How one frame becomes one typed value and back. Both directions are
 * synchronous and return a `Result`.
 *
 * ```ts
 * const format: Message.Format<Ping> = Message.msgpack(Ping)
 * const bytes = Result.getOrThrow(format.encode({ seq: 1 }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Format<A> {
  readonly [TypeId]: TypeId
  /** For messages: "json", "msgpack" or the name given to {@link make}. */
  readonly name: string
  /** The whole transformation as a Schema from bytes, to compose further. */
  readonly schema: Schema.Codec<A, Uint8Array>
  /** Decode one frame. */
  readonly decode: (frame: Uint8Array) => Result.Result<A, MessageDecodeError>
  /** Encode one value. */
  readonly encode: (value: A) => Result.Result<Uint8Array, MessageEncodeError>
}

/**
 * Options of {@link json}, {@link msgpack} and {@link make}.
 *
 * ```ts
 * const strict = Message.json(Request, { parseOptions: { onExcessProperty: "error" } })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface FormatOptions {
  /**
   * Passed to Schema, e.g. `{ onExcessProperty: "error", errors: "all" }`.
   * Messages report the rejected input (`reportInput: true`) unless this says
   * `reportInput: false`.
   */
  readonly parseOptions?: ParseOptions | undefined
}

// Schema 4 leaves the rejected value out of its messages by default; a peer's
// bad message is easier to debug with it (and `clip` bounds the text).
const parseOptionsOf = (options: FormatOptions | undefined): ParseOptions => ({
  reportInput: true,
  ...options?.parseOptions
})

/**
 * A format from any Schema whose encoded side is bytes (protobuf, CBOR, a
 * hand-written binary layout...).
 *
 * ```ts
 * const Utf8 = Schema.Uint8Array.pipe(Schema.decodeTo(
 *   Schema.String,
 *   SchemaTransformation.transform<string, Uint8Array>({
 *     decode: (bytes) => new TextDecoder().decode(bytes),
 *     encode: (text) => new TextEncoder().encode(text)
 *   })
 * ))
 * const utf8 = Message.make("utf8", Utf8)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(name: string, schema: Schema.Codec<A, Uint8Array>, options?: FormatOptions): Format<A> =>
  formatOf(name, schema, options, true)

const formatOf = <A>(
  name: string,
  schema: Schema.Codec<A, Uint8Array>,
  options: FormatOptions | undefined,
  compile: boolean
): Format<A> => {
  const parseOptions = parseOptionsOf(options)
  const decodeResult = compile
    ? compiledDecoder(schema, parseOptions)
    : Schema.decodeUnknownResult(schema, parseOptions)
  const encodeResult = compile
    ? compiledEncoder(schema, parseOptions)
    : Schema.encodeUnknownResult(schema, parseOptions)
  return {
    [TypeId]: TypeId,
    name,
    schema,
    decode: (frame) =>
      Result.mapError(decodeResult(frame), (cause) => new MessageDecodeError({ format: name, frame, cause })),
    encode: (value) =>
      Result.mapError(encodeResult(value), (cause) => new MessageEncodeError({ format: name, value, cause }))
  }
}

const describe = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "message" in cause ? String(cause.message) : String(cause)

const invalid = (input: unknown, message: string, options: ParseOptions) =>
  Effect.fail(new SchemaIssue.InvalidValue({ message }, input, options))

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false })

// JSON.stringify writes NaN and ±Infinity as null, which the peer then rejects
// with a confusing message; refuse them where the value is made instead.
const finiteOnly = (_key: string, value: unknown): unknown => {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new TypeError(`${value} has no JSON representation`)
  }
  return value
}

/**
 * A format whose bytes are parsed outside Schema (JSON, MessagePack). The
 * whole transformation is `format.schema`, and it makes every error; but a
 * frame that parses and decodes takes the direct way: parse, then Schema's
 * synchronous decoder on the parsed value (and the other way round when
 * encoding), about twice as fast as running the composed Schema. Only a
 * frame or value that fails goes through the composed Schema, to get its
 * error. The message Schema is compiled by Schema's JIT (`internal/schemaJit.ts`):
 * a three-field Struct decodes in 30 ns instead of 230.
 */
const parsed = <A, I>(
  name: string,
  schema: Schema.Codec<A, I>,
  options: FormatOptions | undefined,
  /** Throws on bytes that are not a value. */
  parse: (bytes: Uint8Array) => unknown,
  /** Throws, or returns a reason, when the value cannot be written. */
  write: (value: unknown) => Uint8Array | string
): Format<A> => {
  // Only a frame or value that fails runs the composed Schema; its root is not compiled.
  const composed = formatOf(
    name,
    Schema.Uint8Array.pipe(Schema.decodeTo(
      schema,
      SchemaTransformation.transformEffect<I, Uint8Array>({
        decode: (bytes, options) => {
          try {
            return Effect.succeed(parse(bytes) as I)
          } catch (cause) {
            return invalid(bytes, name === "json" ? `not JSON: ${describe(cause)}` : describe(cause), options)
          }
        },
        encode: (value, options) => {
          try {
            const bytes = write(value)
            return typeof bytes === "string" ? invalid(value, bytes, options) : Effect.succeed(bytes)
          } catch (cause) {
            return invalid(value, name === "json" ? `cannot write as JSON: ${describe(cause)}` : describe(cause), options)
          }
        }
      })
    )),
    options,
    false
  )
  const parseOptions = parseOptionsOf(options)
  const decodeValue = compiledDecoder(schema, parseOptions)
  const encodeValue = compiledEncoder(schema, parseOptions)
  return {
    ...composed,
    decode: (frame) => {
      let value: unknown
      try {
        value = parse(frame)
      } catch {
        return composed.decode(frame)
      }
      const decoded = decodeValue(value)
      return Result.isSuccess(decoded) ? decoded as Result.Result<A, never> : composed.decode(frame)
    },
    encode: (value) => {
      const encoded = encodeValue(value)
      if (Result.isSuccess(encoded)) {
        try {
          const bytes = write(encoded.success)
          if (typeof bytes !== "string") return Result.succeed(bytes)
        } catch {
          // The composed Schema says why.
        }
      }
      return composed.encode(value)
    }
  }
}

const parseJson = (bytes: Uint8Array): unknown => JSON.parse(utf8.decode(bytes))

const writeJson = (value: unknown): Uint8Array | string => {
  const text = JSON.stringify(value)
  // JSON.stringify gives undefined for undefined, functions and symbols.
  if (text === undefined) return "no JSON representation"
  // Only output with a `null` can hide a non-finite number: check those again, slowly.
  if (text.includes("null")) JSON.stringify(value, finiteOnly)
  return encodeUtf8(text)
}

/**
 * JSON in UTF-8, one value per frame, validated by the Schema. Invalid
 * UTF-8, JSON syntax errors and Schema failures are all a
 * {@link MessageDecodeError}; values whose encoded form JSON cannot hold
 * (NaN, Infinity, BigInt, cycles) are a {@link MessageEncodeError} instead of
 * turning into `null` on the wire.
 *
 * ```ts
 * const Request = Schema.Struct({ id: Schema.Number, method: Schema.String })
 * const format = Message.json(Request)
 * format.decode(new TextEncoder().encode('{"id":1,"method":"ping"}')) // Result.succeed({ id: 1, method: "ping" })
 * ```
 *
 * @since 0.1.0
 * @category formats
 */
export const json = <A, I>(schema: Schema.Codec<A, I>, options?: FormatOptions): Format<A> =>
  parsed("json", schema, options, parseJson, writeJson)

/**
 * MessagePack, one value per frame (msgpackr's default `pack`/`unpack`, the
 * same bytes as Effect 3's `@effect/platform/MsgPack`), validated by the
 * Schema. Bytes after the value, a truncated value or invalid MessagePack are
 * a {@link MessageDecodeError}.
 *
 * ```ts
 * const format = Message.msgpack(Schema.Struct({ id: Schema.Number, body: Schema.Uint8Array }))
 * const frame = Result.getOrThrow(format.encode({ id: 1, body: new Uint8Array([1, 2]) }))
 * ```
 *
 * @since 0.1.0
 * @category formats
 */
export const msgpack = <A, I>(schema: Schema.Codec<A, I>, options?: FormatOptions): Format<A> =>
  parsed("msgpack", schema, options, Msgpackr.decode, Msgpackr.encode)

/**
 * Is this value a {@link Format}?
 *
 * ```ts
 * Message.isFormat(Message.json(Schema.String)) // true
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isFormat = (u: unknown): u is Format<unknown> => typeof u === "object" && u !== null && TypeId in u

/**
 * Maps each element with `f`; the elements before the first failure go out
 * (in order, in one batch), then the stream fails with it.
 */
const mapOrFail = <In, Out, E, E2, R>(
  self: Stream.Stream<In, E2, R>,
  f: (input: In) => Result.Result<Out, E>
): Stream.Stream<Out, E | E2, R> =>
  Stream.transformPull(self, (pull) =>
    Effect.sync(() => {
      let failed = false
      let error: E
      return Effect.suspend(() =>
        failed ? Effect.fail(error) : Effect.flatMap(pull, (batch) => {
          const out: Array<Out> = []
          for (const input of batch) {
            const result = f(input)
            if (Result.isFailure(result)) {
              if (out.length === 0) return Effect.fail(result.failure)
              failed = true
              error = result.failure
              break
            }
            out.push(result.success)
          }
          // A batch is never empty, so neither is `out` here.
          return Effect.succeed(out as unknown as NonEmptyReadonlyArray<Out>)
        })
      )
    }))

/**
 * Decode every frame of a stream; the first frame that does not decode fails
 * the stream with a {@link MessageDecodeError} (the messages before it are
 * emitted). For datagrams, map `payload` first.
 *
 * ```ts
 * const requests = frames.pipe(Message.decode(Message.json(Request)))
 * ```
 *
 * @since 0.1.0
 * @category stream pipes
 */
export const decode: {
  <A>(format: Format<A>): <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<A, E | MessageDecodeError, R>
  <E, R, A>(self: Stream.Stream<Uint8Array, E, R>, format: Format<A>): Stream.Stream<A, E | MessageDecodeError, R>
} = dual(
  2,
  <E, R, A>(self: Stream.Stream<Uint8Array, E, R>, format: Format<A>): Stream.Stream<A, E | MessageDecodeError, R> =>
    mapOrFail(self, format.decode)
)

/**
 * Decode every frame, keeping failures as values: `Result.fail(MessageDecodeError)`
 * for a bad frame, and the stream goes on. For protocols that answer a bad
 * request instead of dropping the connection.
 *
 * ```ts
 * frames.pipe(Message.decodeResult(format), Stream.map(Result.match({ onFailure: badRequest, onSuccess: handle })))
 * ```
 *
 * @since 0.1.0
 * @category stream pipes
 */
export const decodeResult: {
  <A>(
    format: Format<A>
  ): <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Result.Result<A, MessageDecodeError>, E, R>
  <E, R, A>(
    self: Stream.Stream<Uint8Array, E, R>,
    format: Format<A>
  ): Stream.Stream<Result.Result<A, MessageDecodeError>, E, R>
} = dual(
  2,
  <E, R, A>(
    self: Stream.Stream<Uint8Array, E, R>,
    format: Format<A>
  ): Stream.Stream<Result.Result<A, MessageDecodeError>, E, R> => Stream.map(self, (frame) => format.decode(frame))
)

/**
 * Encode every value of a stream into one frame each; a value that does not
 * encode fails the stream with a {@link MessageEncodeError}.
 *
 * ```ts
 * replies.pipe(Message.encode(Message.json(Reply)), Framing.encode(Framing.lines()), Stream.run(socket.writes))
 * ```
 *
 * @since 0.1.0
 * @category stream pipes
 */
export const encode: {
  <A>(format: Format<A>): <E, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<Uint8Array, E | MessageEncodeError, R>
  <A, E, R>(self: Stream.Stream<A, E, R>, format: Format<A>): Stream.Stream<Uint8Array, E | MessageEncodeError, R>
} = dual(
  2,
  <A, E, R>(self: Stream.Stream<A, E, R>, format: Format<A>): Stream.Stream<Uint8Array, E | MessageEncodeError, R> =>
    mapOrFail(self, format.encode)
)
