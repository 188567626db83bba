/**
 * The typed duplex handlers use: a {@link Protocol} joins a framing codec and
 * two message Schemas (what we receive, what we send) in one format, and
 * {@link attach} puts it on a connected socket, giving a stream of typed
 * incoming messages and a `send` for outgoing ones.
 *
 * ```ts
 * const Chat = Protocol.make({
 *   framing: Framing.lengthPrefixed(),
 *   incoming: Schema.Struct({ text: Schema.String }),
 *   outgoing: Schema.Struct({ echo: Schema.String }),
 *   format: "msgpack"
 * })
 *
 * const handler = (socket: Socket.Socket) => {
 *   const connection = Protocol.attach(socket, Chat)
 *   return connection.messages.pipe(Stream.runForEach(({ text }) => connection.send({ echo: text })))
 * }
 * ```
 *
 * Malformed input has two policies. A frame that is not a valid message
 * (bad JSON, a value the Schema rejects) fails `messages` with a
 * `MessageDecodeError` by default (`onMalformed: "fail"`); with
 * `onMalformed: "surface"` it becomes a `Result.fail` in `messages` and the stream
 * goes on, so the handler can answer a bad request and read the next one.
 * A framing error (`FrameTooLarge`, `IncompleteFrame`, `MalformedFrame`)
 * always fails `messages`: after it the byte stream cannot be trusted.
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import type * as Schema from "effect/Schema"
import type { ParseOptions } from "effect/SchemaAST"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Address from "./Address.js"
import * as Framing from "./Framing.js"
import * as Message from "./Message.js"
import type { ReadError, WriteError } from "./NetError.js"
import * as Socket from "./Socket.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-wire/Protocol")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A way to make a message format from a Schema, such as `Message.json` or
 * `Message.msgpack`.
 *
 * ```ts
 * const format: Protocol.FormatFactory = Message.msgpack
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type FormatFactory = <A, I>(schema: Schema.Codec<A, I>, options?: Message.FormatOptions) => Message.Format<A>

/**
 * What a malformed message does: `"fail"` ends `messages` with the
 * `MessageDecodeError`; `"surface"` delivers it as a `Result.fail` and goes on.
 *
 * ```ts
 * const policy: Protocol.OnMalformed = "surface"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type OnMalformed = "fail" | "surface"

/**
 * Options of {@link make}.
 *
 * ```ts
 * const options: Protocol.Options<Ping, PingEncoded, Pong, PongEncoded> = {
 *   framing: Framing.lengthPrefixed(),
 *   incoming: Ping,
 *   outgoing: Pong,
 *   format: "msgpack"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<In, InI, Out, OutI> {
  /** How frames are cut from the byte stream, e.g. `Framing.lengthPrefixed()`. */
  readonly framing: Framing.Codec<Uint8Array>
  /** The messages we receive. */
  readonly incoming: Schema.Codec<In, InI>
  /** The messages we send. */
  readonly outgoing: Schema.Codec<Out, OutI>
  /**
   * How a message is written in a frame (default `"json"`). MessagePack bytes
   * may contain `\n`, so pair `"msgpack"` with a length-prefixed framing,
   * not with `lines`.
   */
  readonly format?: "json" | "msgpack" | FormatFactory | undefined
  /** Passed to Schema in both directions, e.g. `{ onExcessProperty: "error" }`. */
  readonly parseOptions?: ParseOptions | undefined
  /** See {@link OnMalformed} (default `"fail"`). */
  readonly onMalformed?: OnMalformed | undefined
}

/**
 * A protocol: a framing, the incoming and outgoing formats, and the
 * malformed-message policy. `In` is what `messages` yields (`Result<A,
 * MessageDecodeError>` when malformed messages are surfaced) and
 * `E` what decoding can fail with (`never` when surfaced).
 *
 * A protocol is a value, independent of any socket: `decode` and `encode`
 * also work on plain streams and arrays, e.g. to test it without a socket.
 *
 * ```ts
 * const frames = Protocol.encode(Chat, [{ echo: "hi" }]) // Result<Array<Uint8Array>, ...>
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Protocol<In, Out, E = Message.MessageDecodeError> {
  readonly [TypeId]: TypeId
  readonly framing: Framing.Codec<Uint8Array>
  readonly outgoing: Message.Format<Out>
  readonly onMalformed: OnMalformed
  /** Bytes to typed messages (a fresh framing decoder per run). */
  readonly decode: <E2, R>(bytes: Stream.Stream<Uint8Array, E2, R>) => Stream.Stream<In, E2 | Framing.FrameError | E, R>
}

const formatFactory = (format: Options<unknown, unknown, unknown, unknown>["format"]): FormatFactory =>
  format === undefined || format === "json" ? Message.json : format === "msgpack" ? Message.msgpack : format

/**
 * Define a protocol. Nothing is checked per connection: the formats and the
 * codec are built once here.
 *
 * ```ts
 * const Kv = Protocol.make({
 *   framing: Framing.lines({ maxLength: 64 * 1024 }),
 *   incoming: Schema.Union([Get, Put]),
 *   outgoing: Reply,
 *   onMalformed: "surface" // messages: Stream<Result<Get | Put, MessageDecodeError>, ...>
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <In, InI, Out, OutI>(
    options: Options<In, InI, Out, OutI> & { readonly onMalformed: "surface" }
  ): Protocol<Result.Result<In, Message.MessageDecodeError>, Out, never>
  <In, InI, Out, OutI>(
    options: Options<In, InI, Out, OutI> & { readonly onMalformed?: "fail" | undefined }
  ): Protocol<In, Out, Message.MessageDecodeError>
} = <In, InI, Out, OutI>(options: Options<In, InI, Out, OutI>): any => {
  const factory = formatFactory(options.format as Options<unknown, unknown, unknown, unknown>["format"])
  const formatOptions = { parseOptions: options.parseOptions }
  const incoming = factory(options.incoming, formatOptions)
  const outgoing = factory(options.outgoing, formatOptions)
  const framing = options.framing
  const onMalformed = options.onMalformed ?? "fail"
  const protocol: Protocol<unknown, Out, unknown> = {
    [TypeId]: TypeId,
    framing,
    outgoing,
    onMalformed,
    decode: onMalformed === "surface"
      ? (bytes) => bytes.pipe(Framing.decode(framing), Message.decodeResult(incoming))
      : (bytes) => bytes.pipe(Framing.decode(framing), Message.decode(incoming))
  }
  return protocol
}

/**
 * Is this value a {@link Protocol}?
 *
 * ```ts
 * Protocol.isProtocol(Chat) // true
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isProtocol = (u: unknown): u is Protocol<unknown, unknown, unknown> =>
  typeof u === "object" && u !== null && TypeId in u

/**
 * The wire bytes of a batch of messages, ready for one `writeAll`, or why
 * one of them cannot be sent (then nothing is returned for any of them).
 *
 * ```ts
 * const bytes = Protocol.encode(Chat, [{ echo: "a" }, { echo: "b" }])
 * ```
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = <Out>(
  protocol: Protocol<unknown, Out, unknown>,
  messages: Iterable<Out>
): Result.Result<Array<Uint8Array>, Message.MessageEncodeError | Framing.FrameError> => {
  const frames: Array<Uint8Array> = []
  for (const message of messages) {
    const frame = protocol.outgoing.encode(message)
    if (Result.isFailure(frame)) return Result.fail(frame.failure)
    frames.push(frame.success)
  }
  const out: Array<Uint8Array> = []
  const error = protocol.framing.encode(frames, out)
  return error === undefined ? Result.succeed(out) : Result.fail(error)
}

/**
 * What sending can fail with: the socket's `WriteError`, a message that does
 * not encode, or a frame the codec cannot send (too large, say).
 *
 * ```ts
 * connection.send(reply).pipe(Effect.catchTag("FrameTooLarge", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SendError = WriteError | Message.MessageEncodeError | Framing.FrameError

/**
 * A protocol attached to a socket.
 *
 * - `messages` yields the incoming messages in order, many per socket read
 *   when the peer sent many in one write. Run it once, from one fiber: each
 *   run starts a fresh framing decoder. It ends when the peer half-closes
 *   between frames; EOF inside a frame is `IncompleteFrame`.
 * - `send` writes one message as one batch; `sendAll` writes many as one
 *   batch (one `writev`), all or nothing: if one does not encode, none is
 *   sent. Each call is one socket write, so several fibers may send at once
 *   without interleaving frames.
 * - `sends` is a Sink sending each Stream batch as one socket batch, then
 *   half-closing.
 *
 * ```ts
 * const connection = Protocol.attach(socket, Chat)
 * yield* connection.sendAll([{ echo: "a" }, { echo: "b" }])
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection<In, Out, E = Message.MessageDecodeError> {
  readonly socket: Socket.Socket
  readonly protocol: Protocol<In, Out, E>
  readonly messages: Stream.Stream<In, ReadError | Framing.FrameError | E>
  readonly send: (message: Out) => Effect.Effect<void, SendError>
  readonly sendAll: (messages: Iterable<Out>) => Effect.Effect<void, SendError>
  readonly sends: Sink.Sink<void, Out, never, SendError>
}

const attachImpl = <In, Out, E>(socket: Socket.Socket, protocol: Protocol<In, Out, E>): Connection<In, Out, E> => {
  const sendAll = (messages: Iterable<Out>): Effect.Effect<void, SendError> =>
    Effect.suspend((): Effect.Effect<void, SendError> => {
      const bytes = encode(protocol, messages)
      return Result.isFailure(bytes) ? Effect.fail(bytes.failure) : socket.writeAll(bytes.success)
    })
  return {
    socket,
    protocol,
    messages: protocol.decode(socket.reads),
    send: (message) => sendAll([message]),
    sendAll,
    sends: Sink.forEachArray((batch: NonEmptyReadonlyArray<Out>) => sendAll(batch)).pipe(
      Sink.mapEffect(() => Effect.suspend(() => socket.end))
    )
  }
}

/**
 * Put a protocol on a connected socket. Both argument orders work, and so
 * does the pipe form, `socket.pipe(Protocol.attach(Chat))`.
 *
 * ```ts
 * const connection = Protocol.attach(socket, Chat)
 * yield* connection.messages.pipe(Stream.runForEach((m) => connection.send({ echo: m.text })))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const attach: {
  <In, Out, E>(protocol: Protocol<In, Out, E>): (socket: Socket.Socket) => Connection<In, Out, E>
  <In, Out, E>(socket: Socket.Socket, protocol: Protocol<In, Out, E>): Connection<In, Out, E>
  <In, Out, E>(protocol: Protocol<In, Out, E>, socket: Socket.Socket): Connection<In, Out, E>
} = dual(
  2,
  <In, Out, E>(a: Socket.Socket | Protocol<In, Out, E>, b: Socket.Socket | Protocol<In, Out, E>) =>
    isProtocol(a) ? attachImpl(b as Socket.Socket, a) : attachImpl(a as Socket.Socket, b as Protocol<In, Out, E>)
)

/**
 * The peer ended the connection before answering a request.
 *
 * ```ts
 * client.request(ping).pipe(Effect.catchTag("NoResponse", () => reconnect))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class NoResponse extends Data.TaggedError("NoResponse")<{
  /** The peer. */
  readonly address: Address.Address
}> {
  override get message(): string {
    return `${Address.format(this.address)} closed the connection before answering the request`
  }
}

/**
 * A request/response client for strictly sequential protocols: each request
 * gets exactly one response, in order.
 *
 * ```ts
 * const client: Protocol.Client<Reply, Request> = yield* Protocol.client(socket, KvClient)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Client<In, Out, E = Message.MessageDecodeError> {
  readonly connection: Connection<In, Out, E>
  /**
   * Send one message and wait for the next incoming one. Requests from
   * several fibers take turns. Interrupting a request whose message was sent
   * makes the next request skip the response it left behind.
   */
  readonly request: (message: Out) => Effect.Effect<In, SendError | ReadError | Framing.FrameError | E | NoResponse>
}

type ClientError<E> = ReadError | Framing.FrameError | E | NoResponse

const clientImpl = <In, Out, E>(
  socket: Socket.Socket,
  protocol: Protocol<In, Out, E>
): Effect.Effect<Client<In, Out, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connection = attachImpl(socket, protocol)
    const pull = yield* Stream.toPull(connection.messages)
    const lock = yield* Semaphore.make(1)
    const noResponse = new NoResponse({ address: socket.remoteAddress })
    let buffer: ReadonlyArray<In> = []
    let index = 0
    /** Responses that interrupted requests left on the wire. */
    let skip = 0
    /** Once `messages` failed or ended, every request fails the same way. */
    let over: ClientError<E> | undefined

    const next: Effect.Effect<In, ClientError<E>> = Effect.suspend(() => {
      if (index < buffer.length) return Effect.succeed(buffer[index++]!)
      if (over !== undefined) return Effect.fail(over)
      return pull.pipe(
        // The end of `messages` (the peer's EOF between frames): no response is coming.
        Pull.catchDone(() => Effect.fail(noResponse)),
        Effect.matchEffect({
          onFailure: (error: ClientError<E>) => {
            over = error
            return Effect.fail(error)
          },
          onSuccess: (batch) => {
            buffer = batch
            index = 0
            return next
          }
        })
      )
    })

    const skipStale: Effect.Effect<void, ClientError<E>> = Effect.suspend(() =>
      skip === 0 ? Effect.void : Effect.andThen(next, Effect.sync(() => void skip--)).pipe(Effect.andThen(skipStale))
    )

    const request = (message: Out) =>
      lock.withPermits(1)(Effect.suspend(() => {
        let sent = false
        return skipStale.pipe(
          Effect.andThen(Effect.suspend((): Effect.Effect<void, SendError> => {
            const bytes = encode(protocol, [message])
            if (Result.isFailure(bytes)) return Effect.fail(bytes.failure)
            // From here the bytes reach the socket (even if we stop waiting for drain): a response will follow.
            sent = true
            return socket.writeAll(bytes.success)
          })),
          Effect.andThen(next),
          Effect.onInterrupt(() => Effect.sync(() => (sent ? void skip++ : undefined)))
        )
      }))

    return { connection, request }
  })

/**
 * Make a request/response {@link Client} over a socket: `request(out)` sends
 * one message and returns the next incoming one. For protocols that answer
 * each request with exactly one response, in order; the scope owns the
 * reading side.
 *
 * ```ts
 * const client = yield* Protocol.client(socket, Kv)
 * const reply = yield* client.request({ _tag: "Get", key: "a" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const client: {
  <In, Out, E>(protocol: Protocol<In, Out, E>): (socket: Socket.Socket) => Effect.Effect<Client<In, Out, E>, never, Scope.Scope>
  <In, Out, E>(socket: Socket.Socket, protocol: Protocol<In, Out, E>): Effect.Effect<Client<In, Out, E>, never, Scope.Scope>
  <In, Out, E>(protocol: Protocol<In, Out, E>, socket: Socket.Socket): Effect.Effect<Client<In, Out, E>, never, Scope.Scope>
} = dual(
  2,
  <In, Out, E>(a: Socket.Socket | Protocol<In, Out, E>, b: Socket.Socket | Protocol<In, Out, E>) =>
    isProtocol(a) ? clientImpl(b as Socket.Socket, a) : clientImpl(a as Socket.Socket, b as Protocol<In, Out, E>)
)
