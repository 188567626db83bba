/**
 * Typed messages from frames (or datagrams): a {@link Format} turns one
 * `Uint8Array` into one value of a Schema and back, synchronously, and
 * {@link decode}/{@link encode} apply it to a stream. A frame that does not
 * decode is a {@link MessageDecodeError} carrying Schema's `ParseError`.
 * Message knows nothing of sockets or framing: one frame in, one value out.
 *
 * ```ts
 * const Ping = Schema.Struct({ seq: Schema.Number })
 * const format = Message.json(Ping)
 *
 * format.encode({ seq: 1 })                        // Right(Uint8Array '{"seq":1}')
 * format.decode(new TextEncoder().encode("{}"))   // Left(MessageDecodeError)
 *
 * frames.pipe(Message.decode(format))              // Stream<{ seq: number }, E | MessageDecodeError>
 * ```
 *
 * @since 0.1.0
 */
import * as MsgPack from "@effect/platform/MsgPack"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import * as ParseResult from "effect/ParseResult"
import type { ParseOptions } from "effect/SchemaAST"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-wire/Message/Format")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

// A 1 MiB frame must not make a 1 MiB log line.
const MAX_DETAIL = 2000

const clip = (text: string): string =>
  text.length <= MAX_DETAIL ? text : `${text.slice(0, MAX_DETAIL)}… (${text.length - MAX_DETAIL} more characters)`

/**
 * A frame that is not a valid message: bad syntax (not JSON, not
 * MessagePack, not UTF-8) or a value the Schema rejects. `cause` is Schema's
 * `ParseError`, for `ParseResult.ArrayFormatter` and friends; `frame` holds
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
  readonly cause: ParseResult.ParseError
}> {
  override get message(): string {
    return clip(`cannot decode a ${this.format} message of ${this.frame.length} bytes: ${this.cause.message}`)
  }
}

/**
 * A value that the format cannot encode: the Schema rejects it, or the
 * encoded form has no representation in the format (NaN or a BigInt in JSON).
 * `cause` is Schema's `ParseError`.
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
  readonly cause: ParseResult.ParseError
}> {
  override get message(): string {
    return clip(`cannot encode a ${this.format} message: ${this.cause.message}`)
  }
}

/**
 * How one frame becomes one typed value and back. Both directions are
 * synchronous: nothing on the per-message path allocates an Effect.
 *
 * ```ts
 * const format: Message.Format<Ping> = Message.msgpack(Ping)
 * const bytes = Either.getOrThrow(format.encode({ seq: 1 }))
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
  readonly schema: Schema.Schema<A, Uint8Array>
  /** Decode one frame. */
  readonly decode: (frame: Uint8Array) => Either.Either<A, MessageDecodeError>
  /** Encode one value. */
  readonly encode: (value: A) => Either.Either<Uint8Array, MessageEncodeError>
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
  /** Passed to Schema, e.g. `{ onExcessProperty: "error", errors: "all" }`. */
  readonly parseOptions?: ParseOptions | undefined
}

/**
 * A format from any Schema whose encoded side is bytes (protobuf, CBOR, a
 * hand-written binary layout...).
 *
 * ```ts
 * const utf8 = Message.make("utf8", Schema.transform(Schema.Uint8ArrayFromSelf, Schema.String, {
 *   decode: (bytes) => new TextDecoder().decode(bytes),
 *   encode: (text) => new TextEncoder().encode(text)
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A>(name: string, schema: Schema.Schema<A, Uint8Array>, options?: FormatOptions): Format<A> => {
  const decodeEither = ParseResult.decodeUnknownEither(schema, options?.parseOptions)
  const encodeEither = ParseResult.encodeEither(schema, options?.parseOptions)
  return {
    [TypeId]: TypeId,
    name,
    schema,
    decode: (frame) =>
      Either.mapLeft(
        decodeEither(frame),
        (issue) => new MessageDecodeError({ format: name, frame, cause: ParseResult.parseError(issue) })
      ),
    encode: (value) =>
      Either.mapLeft(
        encodeEither(value),
        (issue) => new MessageEncodeError({ format: name, value, cause: ParseResult.parseError(issue) })
      )
  }
}

const describe = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "message" in cause ? String(cause.message) : String(cause)

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false })
const textEncoder = new TextEncoder()

// JSON.stringify writes NaN and ±Infinity as null, which the peer then rejects
// with a confusing message; refuse them where the value is made instead.
const finiteOnly = (_key: string, value: unknown): unknown => {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new TypeError(`${value} has no JSON representation`)
  }
  return value
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
 * format.decode(new TextEncoder().encode('{"id":1,"method":"ping"}')) // Right({ id: 1, method: "ping" })
 * ```
 *
 * @since 0.1.0
 * @category formats
 */
export const json = <A, I>(schema: Schema.Schema<A, I>, options?: FormatOptions): Format<A> =>
  make(
    "json",
    Schema.transformOrFail(Schema.Uint8ArrayFromSelf, schema, {
      strict: false,
      decode: (bytes, _, ast) => {
        try {
          return ParseResult.succeed(JSON.parse(utf8.decode(bytes)))
        } catch (cause) {
          return ParseResult.fail(new ParseResult.Type(ast, bytes, `not JSON: ${describe(cause)}`))
        }
      },
      encode: (value, _, ast) => {
        try {
          const text = JSON.stringify(value)
          // JSON.stringify gives undefined for undefined, functions and symbols.
          if (text === undefined) return ParseResult.fail(new ParseResult.Type(ast, value, "no JSON representation"))
          // Only output with a `null` can hide a non-finite number: check those again, slowly.
          if (text.includes("null")) JSON.stringify(value, finiteOnly)
          return ParseResult.succeed(textEncoder.encode(text))
        } catch (cause) {
          return ParseResult.fail(new ParseResult.Type(ast, value, `cannot write as JSON: ${describe(cause)}`))
        }
      }
    }),
    options
  )

/**
 * MessagePack, one value per frame (through `@effect/platform`'s `MsgPack`
 * and msgpackr), validated by the Schema. Bytes after the value, a truncated
 * value or invalid MessagePack are a {@link MessageDecodeError}.
 *
 * ```ts
 * const format = Message.msgpack(Schema.Struct({ id: Schema.Number, body: Schema.Uint8ArrayFromSelf }))
 * const frame = Either.getOrThrow(format.encode({ id: 1, body: new Uint8Array([1, 2]) }))
 * ```
 *
 * @since 0.1.0
 * @category formats
 */
export const msgpack = <A, I>(schema: Schema.Schema<A, I>, options?: FormatOptions): Format<A> =>
  make("msgpack", MsgPack.schema(schema), options)

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

const mapChunks = <In, Out, E>(
  f: (input: In) => Either.Either<Out, E>
) => {
  const loop: Channel.Channel<Chunk.Chunk<Out>, Chunk.Chunk<In>, unknown, unknown, unknown, unknown> = Channel
    .readWithCause({
      onInput: (input: Chunk.Chunk<In>) => {
        const out: Array<Out> = []
        for (const element of input) {
          const result = f(element)
          if (Either.isLeft(result)) {
            // The values before the bad one still go out, in order, then the stream fails.
            const fail = Channel.fail(result.left)
            return out.length === 0 ? fail : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), fail)
          }
          out.push(result.right)
        }
        return out.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), loop)
      },
      onFailure: Channel.failCause,
      onDone: () => Channel.void
    })
  return loop
}

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
    Stream.pipeThroughChannel(
      self,
      mapChunks(format.decode) as Channel.Channel<
        Chunk.Chunk<A>,
        Chunk.Chunk<Uint8Array>,
        E | MessageDecodeError,
        E,
        unknown,
        unknown
      >
    )
)

/**
 * Decode every frame, keeping failures as values: `Left(MessageDecodeError)`
 * for a bad frame, and the stream goes on. For protocols that answer a bad
 * request instead of dropping the connection.
 *
 * ```ts
 * frames.pipe(Message.decodeEither(format), Stream.map(Either.match({ onLeft: badRequest, onRight: handle })))
 * ```
 *
 * @since 0.1.0
 * @category stream pipes
 */
export const decodeEither: {
  <A>(
    format: Format<A>
  ): <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Either.Either<A, MessageDecodeError>, E, R>
  <E, R, A>(
    self: Stream.Stream<Uint8Array, E, R>,
    format: Format<A>
  ): Stream.Stream<Either.Either<A, MessageDecodeError>, E, R>
} = dual(
  2,
  <E, R, A>(
    self: Stream.Stream<Uint8Array, E, R>,
    format: Format<A>
  ): Stream.Stream<Either.Either<A, MessageDecodeError>, E, R> => Stream.map(self, format.decode)
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
    Stream.pipeThroughChannel(
      self,
      mapChunks(format.encode) as Channel.Channel<
        Chunk.Chunk<Uint8Array>,
        Chunk.Chunk<A>,
        E | MessageEncodeError,
        E,
        unknown,
        unknown
      >
    )
)
