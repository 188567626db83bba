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
 * A request/response service is one function: {@link serve} answers each
 * request with the Effect of its response (or, with {@link serveStream}, a
 * Stream of responses), and the result is a `Server` handler.
 *
 * ```ts
 * const EchoLive = Server.layer({
 *   address: Address.tcp("127.0.0.1", 0),
 *   handler: Protocol.serve(Chat, ({ text }) => Effect.succeed({ echo: text }))
 * })
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
 * {@link serve} and {@link serveStream} take two time limits
 * ({@link ServeOptions}): `frameTimeout`, the longest a frame may take from
 * its first byte to its last, and `requestTimeout`, the longest one handler
 * call may take ({@link HandlerTimeout}).
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Channel from "effect/Channel"
import type * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
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
import { frameTimeoutOf, FrameWatch } from "./internal/codecs/core.js"
import { type CallbackRuntime, type CallbackServe, CallbackServeKey, Park } from "./internal/callbackServe.js"
import { HeldKey } from "./internal/memoryBudget.js"
import { clear } from "./internal/bytes.js"
import { metersOf, type ProtocolMeter } from "./internal/metrics.js"
import { requestTracing } from "./internal/tracing.js"
import * as Check from "./internal/options.js"
import { DeadlineKey, type WithDeadline } from "./internal/pumpDeadline.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-wire/Protocol")

/** @since 0.1.0 */
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
  /** The protocol's name in metrics and spans (`effect_wire.protocol`; default `"unnamed"`). */
  readonly name?: string | undefined
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
  /** See `Options.name`. */
  readonly name?: string | undefined
  /** Bytes to typed messages (a fresh framing decoder per run). */
  readonly decode: <E2, R>(bytes: Stream.Stream<Uint8Array, E2, R>) => Stream.Stream<In, E2 | Framing.FrameError | E, R>
  /** One frame to one message, synchronously: what `decode` does to each frame. */
  readonly decodeFrame: (frame: Uint8Array) => Result.Result<In, E>
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
    name: options.name,
    decode: onMalformed === "surface"
      ? (bytes) => bytes.pipe(Framing.decode(framing), Message.decodeResult(incoming))
      : (bytes) => bytes.pipe(Framing.decode(framing), Message.decode(incoming)),
    decodeFrame: onMalformed === "surface"
      ? (frame) => Result.succeed(incoming.decode(frame))
      : incoming.decode
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
    // Requests take turns under `lock`, so one pull runs at a time: the channel's own pull serves,
    // without `Stream.toPull`'s context switch and second semaphore per read (`messages` needs no
    // services, and its channel is tied to this scope).
    const pull = yield* Channel.toPullScoped(connection.messages.channel, yield* Effect.scope)
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

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

/**
 * What a {@link serve} handler knows of its connection: the socket, and a
 * way to push messages that are not replies (notifications, a subscription's
 * events). A pushed message goes out after the replies to the requests
 * before the one being handled, so the peer sees everything in the order it
 * happened; `send` may also be called from a fiber the handler forked.
 *
 * ```ts
 * Protocol.serve(Kv, (request, connection) =>
 *   Effect.as(connection.send({ _tag: "Notice", text: "working on it" }), answer(request)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ServeConnection<Out> {
  readonly socket: Socket.Socket
  readonly send: (message: Out) => Effect.Effect<void, SendError>
  /** Several messages in one write, all or nothing, like `Connection.sendAll`. */
  readonly sendAll: (messages: Iterable<Out>) => Effect.Effect<void, SendError>
}

/**
 * A connection handler made by {@link serve}: give it to `Server.layer` or
 * `Server.make` as `handler`, or call it on any socket. The optional second
 * argument is what `Server` passes: when its `signal` aborts (the server
 * starts draining), the connection answers the requests already read,
 * half-closes and ends.
 *
 * ```ts
 * const handler: Protocol.ServeHandler<Protocol.ServeError<Message.MessageDecodeError>, never> =
 *   Protocol.serve(Kv, answer)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ServeHandler<E, R> = (
  socket: Socket.Socket,
  connection?: { readonly signal?: AbortSignal | undefined } | undefined
) => Effect.Effect<void, E, R>

/**
 * What serving a connection can fail with besides the handler's own error:
 * the socket's errors, a framing error, the protocol's decode error
 * (`MessageDecodeError`, or `never` when malformed messages are surfaced), a
 * reply that cannot be sent, and the time limits of {@link ServeOptions}
 * (`FrameTimeout`, {@link HandlerTimeout}).
 *
 * ```ts
 * type Failure = Protocol.ServeError<Message.MessageDecodeError> // ReadError | WriteError | FrameError | ...
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ServeError<E> = ReadError | Framing.FrameError | Framing.FrameTimeout | HandlerTimeout | E | SendError

/**
 * The time limits of {@link serve} and {@link serveStream}. Each is above 0;
 * `Duration.infinity`, like leaving it out, means none; 0 is refused (a
 * defect naming the option, raised when the handler is made).
 *
 * ```ts
 * const options: Protocol.ServeOptions = { frameTimeout: "30 seconds", requestTimeout: "10 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ServeOptions {
  /**
   * The longest a frame may take from its first byte to its last. A peer
   * that sends slower fails its connection with `Framing.FrameTimeout`, after
   * the requests before the frame are answered: it bounds what a client
   * that dribbles bytes, which an idle timeout never closes, can hold.
   * Between frames no limit runs (that is `Server`'s `idleTimeout`). While a
   * handler waits nothing is read, so that time is not the peer's: a frame
   * whose first bytes came in the same read as such a request starts its
   * clock at the next read.
   */
  readonly frameTimeout?: Duration.Input | undefined
  /**
   * The longest one handler call may take: for {@link serve}, until its
   * response; for {@link serveStream}, until its stream ends. A handler that
   * takes longer is interrupted and the connection ends with
   * {@link HandlerTimeout}, after the replies before it are written.
   * Handlers that answer at once (`Effect.succeed`) cost nothing extra.
   */
  readonly requestTimeout?: Duration.Input | undefined
  /**
   * Make a span per request (`effect_wire.protocol.request`, a child of the
   * connection's span when there is one, with `effect_wire.protocol`): off by
   * default, as it costs a fiber per read even for handlers that answer at
   * once (docs/observability.md gives the figure).
   */
  readonly traceRequests?: boolean | undefined
}

/**
 * A handler of {@link serve} or {@link serveStream} took longer than
 * `requestTimeout`: the connection ended with it, after the replies to the
 * requests before it were written. (`DatagramServer`'s `RequestTimeout` is
 * another thing: a UDP request left unanswered.)
 *
 * ```ts
 * Protocol.serve(Kv, answer, { requestTimeout: "5 seconds" })(socket).pipe(
 *   Effect.catchTag("HandlerTimeout", (e) => Effect.logWarning(`slow handler: over ${Duration.format(e.limit)}`)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class HandlerTimeout extends Data.TaggedError("HandlerTimeout")<{
  /** The `requestTimeout` that passed. */
  readonly limit: Duration.Duration
}> {
  override get message(): string {
    return `a request handler took longer than ${Duration.format(this.limit)} (requestTimeout): the connection was ended`
  }
}

/** The time limits of one `serve` call, checked when the handler is made (a bad one is a defect). */
interface Limits {
  readonly frameTimeout: Duration.Duration | undefined
  readonly requestTimeout: Duration.Duration | undefined
}

const limitsOf = (where: string, options: ServeOptions | undefined): Limits => {
  const frameTimeout = frameTimeoutOf(where, options?.frameTimeout)
  const input = options?.requestTimeout
  if (input === undefined) return { frameTimeout, requestTimeout: undefined }
  const reason = Check.duration(input, { never: true })
  if (reason !== undefined) throw Check.defect(where, "requestTimeout", reason)
  const requestTimeout = Duration.fromInputUnsafe(input)
  return { frameTimeout, requestTimeout: Duration.isFinite(requestTimeout) ? requestTimeout : undefined }
}

/** A handler call bounded by `requestTimeout` (as it is without one). */
const bounded = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  limit: Duration.Duration | undefined
): Effect.Effect<A, E | HandlerTimeout, R> =>
  limit === undefined
    ? effect
    : Effect.timeoutOrElse(effect, { duration: limit, orElse: () => Effect.fail(new HandlerTimeout({ limit })) })

/** Replies waiting past this many bytes are written before more requests are answered. */
const FLUSH_AT = 64 * 1024

/**
 * The replies not written yet (message-encoded frames), and how to write
 * them; it is also the handler's `ServeConnection`.
 */
class Replies<Out> implements ServeConnection<Out> {
  readonly pending: Array<Uint8Array> = []
  pendingBytes = 0
  /**
   * While a read is being answered synchronously, a stream's responses wait
   * in `pending` (up to `FLUSH_AT`) and leave with the read's other replies;
   * otherwise each batch a stream emits is written at once.
   */
  holding = false
  /** Set when a reply cannot be framed: the connection ends with it. */
  failure: SendError | undefined = undefined
  /** Frames and messages counted (internal/metrics.ts), unless metrics are off. */
  meter: ProtocolMeter | undefined = undefined
  constructor(readonly socket: Socket.Socket, readonly protocol: Protocol<unknown, Out, unknown>) {}

  /** Queue one reply; a value that does not encode is returned as the error. */
  add(message: Out): Message.MessageEncodeError | undefined {
    const frame = this.protocol.outgoing.encode(message)
    if (Result.isFailure(frame)) return frame.failure
    this.queue(frame.success)
    return undefined
  }

  private queue(frame: Uint8Array): void {
    this.pending.push(frame)
    this.pendingBytes += frame.length
  }

  /**
   * Move every queued reply into `out` as wire bytes. A reply too large for
   * the codec is the error: the replies before it are moved, and `failure`
   * remembers it.
   */
  takeInto(out: Array<Uint8Array>): SendError | undefined {
    const frames = this.pending
    if (frames.length === 0) return undefined
    this.pendingBytes = 0
    const framing = this.protocol.framing
    // Encoding copies the frames into `out` (or refers to them from it): `pending` is emptied and kept.
    const error = framing.encode(frames, out)
    if (error === undefined) {
      if (this.meter !== undefined) this.meter.framesEncoded.n += frames.length
      clear(frames)
      return undefined
    }
    this.failure = error
    for (let i = 0; i < frames.length; i++) {
      if (framing.encode([frames[i]!], out) !== undefined) break
    }
    clear(frames)
    return error
  }

  /** Write every queued reply as one batch (undefined when none is queued). */
  flush(): Effect.Effect<void, SendError> | undefined {
    if (this.pending.length === 0) return undefined
    const out: Array<Uint8Array> = []
    const error = this.takeInto(out)
    if (error === undefined) return this.socket.writeAll(out)
    return out.length === 0 ? Effect.fail(error) : Effect.andThen(this.socket.writeAll(out), Effect.fail(error))
  }

  private sendAllFn: ((messages: Iterable<Out>) => Effect.Effect<void, SendError>) | undefined = undefined
  /** `ServeConnection.sendAll`, made when first asked for (most handlers never push). */
  get sendAll(): (messages: Iterable<Out>) => Effect.Effect<void, SendError> {
    return this.sendAllFn ??= (messages) =>
      Effect.suspend(() => {
        const frames: Array<Uint8Array> = []
        for (const message of messages) {
          const frame = this.protocol.outgoing.encode(message)
          if (Result.isFailure(frame)) return Effect.fail(frame.failure)
          frames.push(frame.success)
        }
        for (let i = 0; i < frames.length; i++) this.queue(frames[i]!)
        return this.flush() ?? Effect.void
      })
  }

  private sendFn: ((message: Out) => Effect.Effect<void, SendError>) | undefined = undefined
  /** `ServeConnection.send`, made when first asked for. */
  get send(): (message: Out) => Effect.Effect<void, SendError> {
    return this.sendFn ??= (message) => this.sendAll([message])
  }
}

/**
 * The protocol's meter in `services`' metric registry (undefined with
 * metrics off): every connection of a server has the same services, so the
 * last answer is kept instead of looking it up per connection.
 */
let lastMeter: { readonly services: unknown; readonly protocol: unknown; readonly meter: ProtocolMeter | undefined } | undefined
const protocolMeterOf = (
  protocol: Protocol<any, any, any>,
  services: Context.Context<never> | undefined
): ProtocolMeter | undefined => {
  if (services === undefined) return undefined
  if (lastMeter !== undefined && lastMeter.services === services && lastMeter.protocol === protocol) return lastMeter.meter
  const meter = metersOf(services)?.protocol(protocol.name ?? "unnamed", protocol.framing.name)
  lastMeter = { services, protocol, meter }
  return meter
}

/**
 * The engine of {@link serve} and {@link serveStream}. Reads are answered by
 * a pump handler, in Node's own callbacks on a Node socket: per read, cut
 * its frames, decode each, answer them in order, and hand all the replies to
 * the pump, which writes them as one batch. A `respond` that completes
 * synchronously (it returns `undefined` or a successful Exit) costs no fiber;
 * the first one in a read that does not runs, with the rest of that read, in
 * a fiber forked there, and if that fiber finishes at once nothing else
 * changes. If it waits, the handler returns a `Park` (`internal/callbackServe.ts`):
 * the pump stops (so nothing more is read), a fiber finishes the read, writes
 * the replies, and the pump starts again. A `Server` on node:net runs this
 * with no fiber per connection (the park's fiber is the only one); anywhere
 * else the connection's own fiber runs the pump and the parks
 * (`serveInFiber`). With a frame timeout the decoder is watched and the pump
 * keeps the deadline (`pumpDeadline.ts`); a frame in progress when a read is
 * parked starts its clock again at the next read, since nothing was read
 * while the handler worked.
 */
const serveWith = <In, Out, PE, E, R>(
  protocol: Protocol<In, Out, PE>,
  frameTimeout: Duration.Duration | undefined,
  respond: Respond<In, Out, E, R>
): ServeHandler<E | ServeError<PE>, R> => {
  const inCallbacks: CallbackServe = (socket, runtime) => {
    const serving = new Serving(protocol, respond, socket, runtime, frameTimeout)
    const watch = serving.watch
    if (watch === undefined) return serving
    // A literal with the deadline, made only with a frame timeout (a second object per connection otherwise).
    const timed: WithDeadline<Park> & { readonly [HeldKey]: number } = {
      onRead: (bytes, out) => serving.onRead(bytes, out),
      onEnd: (out) => serving.onEnd(out),
      get [HeldKey]() {
        return serving[HeldKey]
      },
      [DeadlineKey]: {
        millis: watch.millis,
        progress: () => watch.progress(),
        // Every frame before this one was answered and written when the pump waits for a read.
        expired: () => new Park(serving.finish(Effect.fail(watch.expired())))
      }
    }
    return timed
  }
  return Object.assign(serveInFiber(inCallbacks), { [CallbackServeKey]: inCallbacks }) as never
}

/** How {@link serve} and {@link serveStream} answer one request: undefined when done at once. */
type Respond<In, Out, E, R> = (
  request: In,
  connection: ServeConnection<Out>,
  replies: Replies<Out>
) => Effect.Effect<void, E | SendError, R> | undefined

/** A decoded frame, counted: a message, or one its Schema rejected (surfaced or not). */
const countMessage = (
  meter: ProtocolMeter,
  request: Result.Result<unknown, unknown>,
  onMalformed: OnMalformed
): void => {
  const rejected = Result.isFailure(request) ||
    (onMalformed === "surface" && Result.isFailure(request.success as Result.Result<unknown, unknown>))
  if (rejected) meter.rejected.n++
  else meter.decoded.n++
}

/**
 * One connection of {@link serveWith}: its pump handler. A class, not
 * closures: an idle connection keeps one object.
 */
class Serving<In, Out, PE, E, R> implements Socket.PumpHandler<Park> {
  readonly decoder: Framing.Decoder<Uint8Array>
  readonly watch: FrameWatch<Uint8Array> | undefined
  readonly replies: Replies<Out>
  readonly frames: Array<Uint8Array> = []
  /** What ends the read in hand once its frames are answered: a frame error, or the end of input. */
  tail: Framing.FrameError | undefined = undefined
  ended = false

  constructor(
    readonly protocol: Protocol<In, Out, PE>,
    readonly respond: Respond<In, Out, E, R>,
    readonly socket: Socket.Socket,
    readonly runtime: CallbackRuntime,
    frameTimeout: Duration.Duration | undefined
  ) {
    this.decoder = protocol.framing.decoder()
    this.watch = frameTimeout === undefined
      ? undefined
      : new FrameWatch(this.decoder, protocol.framing.name, frameTimeout)
    this.replies = new Replies<Out>(socket, protocol as Protocol<unknown, Out, unknown>)
    this.replies.meter = protocolMeterOf(protocol, runtime.services)
  }

  /**
   * What the server's memory budget counts for this connection: the
   * decoder's unfinished frame, three times over, as for the byte servers
   * (its buffer doubles as it grows; the ones it outgrew wait for a GC);
   * and, while a handler waits, the frames of the read in hand and the
   * replies not written yet (empty otherwise: a read is answered in full).
   */
  get [HeldKey](): number {
    const frames = this.frames
    let held = 3 * this.decoder.buffered + this.replies.pendingBytes
    for (let i = 0; i < frames.length; i++) held += frames[i]!.length
    return held
  }

  onRead(bytes: Uint8Array, out: Array<Uint8Array>): Park | undefined {
    this.tail = (this.watch ?? this.decoder).push(bytes, this.frames)
    if (this.replies.meter !== undefined) this.replies.meter.framesDecoded.n += this.frames.length
    return this.answerInPump(out)
  }

  onEnd(out: Array<Uint8Array>): Park | undefined {
    this.ended = true
    this.tail = this.decoder.end(this.frames)
    return this.answerInPump(out)
  }

  /**
   * Answers frames[start..] in order. The synchronous part runs right here,
   * as a plain loop; the result is `Effect.void` when every frame was
   * answered that way, a failed Exit, or an Effect that answers the rest.
   */
  answerFrom(start: number): Effect.Effect<void, E | ServeError<PE>, R> {
    const { frames, protocol, replies } = this
    for (let i = start; i < frames.length; i++) {
      // Large replies go out before the rest of the read is answered: memory stays bounded.
      if (replies.pendingBytes >= FLUSH_AT) return Effect.flatMap(replies.flush()!, () => this.answerFrom(i))
      const request = protocol.decodeFrame(frames[i]!)
      if (replies.meter !== undefined) countMessage(replies.meter, request, protocol.onMalformed)
      if (Result.isFailure(request)) return Effect.fail(request.failure)
      const step = this.respond(request.success, replies, replies)
      if (step === undefined) continue
      if (Exit.isExit(step)) {
        if (Exit.isSuccess(step)) continue
        return step
      }
      return Effect.flatMap(step, () => this.answerFrom(i + 1))
    }
    return Effect.void
  }

  /**
   * Answers every frame of the read in hand, without a fiber where it can:
   * undefined when all are answered, else what a fiber must run to finish
   * (await a handler, or fail). The first step that is not synchronous
   * runs, with the rest of the read, in a fiber forked here; if it
   * completes at once, nothing else was needed.
   */
  answerNow(): Effect.Effect<void, E | ServeError<PE>, R> | undefined {
    const replies = this.replies
    replies.holding = true
    const step = this.answerFrom(0)
    if (Exit.isExit(step)) {
      replies.holding = false
      return Exit.isSuccess(step) ? undefined : step
    }
    const fiber = this.runtime.runFork(step)
    replies.holding = false
    const exit = fiber.pollUnsafe()
    if (exit === undefined) return Effect.onInterrupt(Fiber.join(fiber), () => Fiber.interrupt(fiber))
    return Exit.isSuccess(exit) ? undefined : exit
  }

  /** One read (or the end of input) in the pump: answers go to `out`, or it parks. */
  answerInPump(out: Array<Uint8Array>): Park | undefined {
    let rest: Effect.Effect<void, E | ServeError<PE>, R> | undefined
    try {
      rest = this.answerNow()
    } catch (defect) {
      rest = Effect.die(defect)
    }
    // The replies so far go out first (the pump writes `out`), whatever happens next.
    const error = this.replies.takeInto(out) ?? this.replies.failure
    if (rest === undefined) {
      if (error !== undefined) rest = Effect.fail(error)
      else if (this.tail !== undefined) rest = Effect.fail(this.tail)
      else {
        // Answered. At the end of input the pump half-closes once `out` is written.
        clear(this.frames)
        return undefined
      }
    }
    return new Park(this.finish(rest))
  }

  /** Write the replies so far, then `after`. */
  flushThen<A>(after: Effect.Effect<A, E | ServeError<PE>>): Effect.Effect<A, E | ServeError<PE>> {
    const write = this.replies.flush()
    return write === undefined ? after : Effect.andThen(write, after)
  }

  /** In a fiber: finish the read the pump parked; true to pump again. */
  finish(rest: Effect.Effect<void, E | ServeError<PE>, R>): Effect.Effect<boolean, E | ServeError<PE>, R> {
    return Effect.matchCauseEffect(rest, {
      onFailure: (cause) => this.flushThen(Effect.failCause(cause)),
      onSuccess: () => {
        clear(this.frames)
        if (this.replies.failure !== undefined) return this.flushThen(Effect.fail(this.replies.failure))
        if (this.tail !== undefined) return this.flushThen(Effect.fail(this.tail))
        // The peer's EOF, or the server draining: the read in hand is answered; half-close.
        if (this.ended || this.runtime.signal?.aborted === true) return this.flushThen(Effect.as(this.socket.end, false))
        return this.flushThen(Effect.succeed(true))
      }
    })
  }
}

/**
 * A handler served in callbacks, as an ordinary connection handler: the
 * connection's fiber runs its pump, and each park in place.
 */
const serveInFiber = (inCallbacks: CallbackServe) =>
(
  socket: Socket.Socket,
  server?: { readonly signal?: AbortSignal | undefined } | undefined
): Effect.Effect<void, unknown, unknown> =>
  Effect.flatMap(Effect.context<never>(), (context) => {
    const run = Effect.runForkWith(context)
    const signal = server?.signal
    const handler = inCallbacks(socket, { signal, runFork: run as CallbackRuntime["runFork"], services: context })
    const pumping: Effect.Effect<void, unknown, unknown> = Socket.pump(socket, handler, { signal }).pipe(
      Effect.catch((error) =>
        error instanceof Park
          ? Effect.flatMap(error.rest, (again) => again ? pumping : Effect.void)
          : Effect.fail(error)
      )
    )
    return pumping
  })

/**
 * Serve a protocol, one response per request: the handler gets each request
 * (in order) and the connection, and returns the Effect of the response.
 * The result is a connection handler for `Server.layer`.
 *
 * - Replies go out strictly in request order. The requests that arrived in
 *   one socket read are answered one after the other and their replies
 *   leave as one write (one `writev`; every 64 KiB when they are large). On
 *   a Node socket this happens in Node's own callbacks (`Socket.pump`), not
 *   in the connection's fiber: handlers whose Effects complete at once run
 *   in one short fiber per read, and `Effect.succeed` needs none at all.
 * - While a handler waits (a `Deferred`, `Effect.sleep`, a slow dependency)
 *   nothing more is read: the socket's read buffer fills, then the kernel
 *   slows the peer. Memory stays bounded however fast the peer pipelines.
 * - A malformed message follows the protocol's `onMalformed`: `"fail"` ends
 *   the connection with the `MessageDecodeError`; `"surface"` hands the
 *   handler a `Result` to answer. A framing error ends the connection, after
 *   the requests before it are answered.
 * - At the peer's EOF, the requests read are answered, then the connection
 *   half-closes and the effect succeeds. When the server starts draining
 *   (`Server`'s `signal`), the same happens after the read in hand.
 * - A handler failure ends the connection with its error, after the replies
 *   to the requests before it are written; `Server` logs it.
 * - Time limits ({@link ServeOptions}): `frameTimeout` ends the connection
 *   with `Framing.FrameTimeout` when a frame takes longer from its first
 *   byte to its last; `requestTimeout` ends it with {@link HandlerTimeout}
 *   when a handler call takes longer. Both after the replies before them.
 *
 * ```ts
 * const KvLive = Server.layer({
 *   address: Address.tcp("127.0.0.1", 0),
 *   handler: Protocol.serve(Kv, (request) =>
 *     request._tag === "Get" ? Effect.map(Ref.get(store), (map) => found(map, request.key)) : put(request))
 * })
 * ```
 *
 * @since 0.1.0
 * @category serving
 */
export const serve = <In, Out, PE, E, R>(
  protocol: Protocol<In, Out, PE>,
  handler: (request: In, connection: ServeConnection<Out>) => Effect.Effect<Out, E, R>,
  options?: ServeOptions | undefined
): ServeHandler<E | ServeError<PE>, R> => {
  const { frameTimeout, requestTimeout } = limitsOf("Protocol.serve", options)
  const traced = requestTracing("Protocol.serve", protocol.name, options?.traceRequests)
  return serveWith(protocol, frameTimeout, (request, connection, replies) => {
    const response = traced === undefined ? handler(request, connection) : traced(handler(request, connection), replies.socket)
    // `Effect.succeed` and `Effect.fail` are Exits already: answer without running an Effect.
    if (Exit.isExit(response)) {
      const exit = response as Exit.Exit<Out, E>
      if (Exit.isFailure(exit)) return exit
      const error = replies.add(exit.value)
      return error === undefined ? undefined : Effect.fail(error)
    }
    return Effect.flatMap(bounded(response, requestTimeout), (value) => {
      const error = replies.add(value)
      return error === undefined ? Effect.void : Effect.fail(error)
    })
  })
}

/**
 * Serve a protocol where one request is answered by a stream of responses
 * (a listing, a subscription, progress then a result). Each request's
 * stream runs to its end before the next request is handled, so responses
 * stay in request order, and reading pauses until it ends. Streams that end
 * at once leave with the other responses of their read, as one write; a
 * stream that waits first sends what it has, then each batch it emits as it
 * comes. Everything else is as in {@link serve}.
 *
 * ```ts
 * const handler = Protocol.serveStream(Feed, (request) =>
 *   Stream.range(1, request.count).pipe(Stream.map((n) => ({ n }))))
 * ```
 *
 * @since 0.1.0
 * @category serving
 */
export const serveStream = <In, Out, PE, E, R>(
  protocol: Protocol<In, Out, PE>,
  handler: (request: In, connection: ServeConnection<Out>) => Stream.Stream<Out, E, R>,
  options?: ServeOptions | undefined
): ServeHandler<E | ServeError<PE>, R> => {
  const { frameTimeout, requestTimeout } = limitsOf("Protocol.serveStream", options)
  return serveWith(protocol, frameTimeout, (request, connection, replies) =>
    bounded(
      Stream.runForEachArray(handler(request, connection), (batch) =>
        Effect.suspend(() => {
          for (let i = 0; i < batch.length; i++) {
            const error = replies.add(batch[i]!)
            if (error !== undefined) return Effect.fail(error)
          }
          return replies.holding && replies.pendingBytes < FLUSH_AT ? Effect.void : replies.flush() ?? Effect.void
        })),
      requestTimeout
    ))
}
