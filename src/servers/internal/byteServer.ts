/**
 * What the Echo and Upper servers share: a server, a client and a UDP server
 * for a pure byte transform, raw or per frame. The two modules differ only in
 * the transform and the names of their services, so each is one call of
 * {@link define}, and the exports and types they re-export are documented
 * here, once (the examples say `Echo`; `Upper` is the same).
 *
 * @since 0.1.0
 * @internal
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import type * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Pull from "effect/Pull"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Address from "../../Address.js"
import type * as Datagram from "../../Datagram.js"
import * as DatagramServer from "../../DatagramServer.js"
import type * as Framing from "../../Framing.js"
import type * as NetError from "../../NetError.js"
import * as Server from "../../Server.js"
import * as Socket from "../../Socket.js"
import { clear, concat } from "../../internal/bytes.js"
// The two codecs themselves, not Framing: its `header` codec would load Schema into every byte server.
import { lines } from "../../internal/codecs/delimited.js"
import { lengthPrefixed } from "../../internal/codecs/lengthPrefixed.js"
import {
  type FrameClock,
  frameTimedOut,
  frameTimeoutOf,
  progressOf,
  type Progress,
  pushWatched
} from "../../internal/codecs/core.js"
import { HeldKey } from "../../internal/memoryBudget.js"
import { type Meters, metersOf, type Tally } from "../../internal/metrics.js"
import { type Deadline, DeadlineKey, type WithDeadline } from "../../internal/pumpDeadline.js"
import { readsPull } from "../../internal/socketContract.js"

/**
 * How a built-in server cuts the byte stream: `"raw"` (default) transforms
 * bytes as they come; `"length"` (4-byte big-endian length prefix) and
 * `"lines"` (`\n` or `\r\n`) work per frame; or any codec of byte frames.
 *
 * ```ts
 * const options: Echo.Options = { address: Address.tcp("127.0.0.1", 9000), framing: "lines" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type FramingOption = "raw" | "length" | "lines" | Framing.Codec<Uint8Array>

/** The codec of a framing option; `undefined` for raw bytes. */
export const codecOf = (framing: FramingOption | undefined): Framing.Codec<Uint8Array> | undefined => {
  if (framing === undefined || framing === "raw") return undefined
  if (framing === "length") return lengthPrefixed()
  if (framing === "lines") return lines()
  return framing
}

/** A transform of bytes; `undefined` is the identity, which lets raw echo skip every per-chunk step. */
export type Transform = ((bytes: Uint8Array) => Uint8Array) | undefined

const echoHandler: Socket.PumpHandler<never> = {
  onRead: (bytes, out) => void out.push(bytes),
  onEnd: () => undefined
}

const transformHandler = (transform: (bytes: Uint8Array) => Uint8Array): Socket.PumpHandler<never> => ({
  onRead: (bytes, out) => void out.push(transform(bytes)),
  onEnd: () => undefined
})

/** What a framed byte server's connection can fail with. */
export type HandlerError = Framing.FrameError | Framing.FrameTimeout

/** What every connection of one framed server shares (one object per server, not per connection). */
interface FramedConfig {
  readonly codec: Framing.Codec<Uint8Array>
  readonly transform: Transform
  /** The frame timeout, if any. */
  readonly limit: Duration.Duration | undefined
  readonly millis: number
  /** Frames decoded and encoded (internal/metrics.ts), unless metrics are off. */
  readonly decoded: Tally | undefined
  readonly encoded: Tally | undefined
}

/**
 * Decode, transform each frame, encode: the frames completed by one read
 * become one batch. One object per connection, its methods on the prototype
 * (no closure per connection).
 */
class FramedHandler implements Socket.PumpHandler<HandlerError> {
  readonly decoder: Framing.Decoder<Uint8Array>
  readonly frames: Array<Uint8Array> = []
  constructor(readonly config: FramedConfig) {
    this.decoder = config.codec.decoder()
  }

  onRead(bytes: Uint8Array, out: Array<Uint8Array>): HandlerError | undefined {
    return this.flush(out, this.decoder.push(bytes, this.frames))
  }

  onEnd(out: Array<Uint8Array>): HandlerError | undefined {
    return this.flush(out, this.decoder.end(this.frames))
  }

  /**
   * The memory an unfinished frame can pin, for a server's memory budget:
   * three times its bytes. A decoder's buffer grows by doubling, so it may
   * be up to twice what it holds, and the buffers it outgrew (together about
   * its size again) stay until the garbage collector runs. Measured: 200
   * clients sending 8 MiB without a newline to `serve echo --framing lines`
   * keep its RSS under the 256 MiB default budget this way, not with the
   * bytes alone (test/reliability/hardening.bytes.test.ts).
   */
  get [HeldKey](): number {
    return 3 * this.decoder.buffered
  }

  flush(out: Array<Uint8Array>, decodeError: Framing.FrameError | undefined): Framing.FrameError | undefined {
    const frames = this.frames
    if (frames.length === 0) return decodeError
    const { codec, transform, decoded } = this.config
    if (decoded !== undefined) decoded.n += frames.length
    if (transform !== undefined) {
      for (let i = 0; i < frames.length; i++) frames[i] = transform(frames[i]!)
    }
    const encodeError = codec.encode(frames, out)
    const n = frames.length
    clear(frames)
    if (encodeError !== undefined) {
      // All or nothing: a batch that cannot be encoded sends none of it.
      clear(out)
      return encodeError
    }
    if (this.config.encoded !== undefined) this.config.encoded.n += n
    return decodeError
  }
}

/**
 * A framed handler with a frame timeout: the handler is its own deadline and
 * its own `FrameClock` (found under `DeadlineKey` on the prototype), so a
 * connection costs one object and one boolean more, and every connection's
 * handler has the same shape.
 */
class TimedFramedHandler extends FramedHandler
  implements WithDeadline<HandlerError>, Deadline<HandlerError>, FrameClock<Uint8Array>
{
  /** The frame in progress began since the last look. */
  begun = false

  get [DeadlineKey](): Deadline<HandlerError> {
    return this
  }

  get millis(): number {
    return this.config.millis
  }

  override onRead(bytes: Uint8Array, out: Array<Uint8Array>): HandlerError | undefined {
    return this.flush(out, pushWatched(this, bytes, this.frames))
  }

  progress(): Progress {
    return progressOf(this)
  }

  expired(): Framing.FrameTimeout {
    return frameTimedOut(this, this.config.codec.name, this.config.limit!)
  }
}

/** A framed handler per connection, for one server's codec, transform and frame timeout. */
const framedHandler = (
  codec: Framing.Codec<Uint8Array>,
  transform: Transform,
  frameTimeout: Duration.Duration | undefined,
  meters: Meters | undefined
): () => Socket.PumpHandler<HandlerError> => {
  const config: FramedConfig = {
    codec,
    transform,
    limit: frameTimeout,
    millis: frameTimeout === undefined ? 0 : Duration.toMillis(frameTimeout),
    decoded: meters?.frames(codec.name, "decoded"),
    encoded: meters?.frames(codec.name, "encoded")
  }
  return frameTimeout === undefined ? () => new FramedHandler(config) : () => new TimedFramedHandler(config)
}

/**
 * Options of a byte server's connection handler alone.
 *
 * ```ts
 * const handler = Echo.handler("lines", { frameTimeout: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HandlerOptions {
  /**
   * With a framing: the longest a frame may take from its first byte to its
   * last (default: no limit). A peer that sends slower fails its connection
   * with `Framing.FrameTimeout`, logged at debug like an idle timeout: it
   * bounds what a client that dribbles bytes, which an idle timeout never
   * closes, can hold. Above 0; `Duration.infinity`, like leaving it out,
   * means none; 0 is refused. Raw bytes have no frames: it does not apply.
   */
  readonly frameTimeout?: Duration.Input | undefined
}

/**
 * Serves one connection: answers what the peer sends until it half-closes,
 * then finishes writing and half-closes too (`Socket.pump`: on a Node socket
 * every read is answered inside Node's callback, with no fiber step). A
 * frame error ends the connection (after the frames before it were answered)
 * and is logged by the server. When the server starts draining, the
 * connection ends at once with a half-close: an echo has no request in hand
 * worth waiting for, so an idle client does not hold the shutdown for
 * `shutdownTimeout`. With a frame timeout, a frame that takes longer ends
 * the connection with `FrameTimeout`. `server` names the server in the
 * defect of an invalid option.
 */
export const handler = (
  server: string,
  transform: Transform,
  framing: FramingOption | undefined,
  options?: HandlerOptions | undefined,
  meters?: Meters | undefined
): Server.PumpedHandler<HandlerError> => {
  const codec = codecOf(framing)
  const frameTimeout = frameTimeoutOf(server, options?.frameTimeout)
  return Server.pump<HandlerError>(
    codec !== undefined
      ? framedHandler(codec, transform, frameTimeout, meters)
      : transform !== undefined
      ? () => transformHandler(transform)
      : () => echoHandler
  )
}

/**
 * Options of a built-in byte server: those of `Server.make` without the
 * handler, plus `framing` and `frameTimeout` (see {@link HandlerOptions}).
 *
 * ```ts
 * const options: Echo.Options = { address: Address.unix("/tmp/echo.sock"), maxConnections: 100 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<Server.Options<never, never>, "handler">, HandlerOptions {
  /** How the byte stream is cut (default `"raw"`): see {@link FramingOption}. */
  readonly framing?: FramingOption | undefined
}

/** Starts a TCP/Unix server for `transform` in the current scope; `server` names it in the defect of a bad option. */
export const make = (
  server: string,
  transform: Transform,
  options: Options
): Effect.Effect<Server.RunningServer, NetError.ListenError, Scope.Scope> =>
  Effect.contextWith((context: Context.Context<never>) => {
    const { frameTimeout, framing, ...serverOptions } = options
    // Built before listening, so a bad option fails before the port is taken.
    const serve = handler(server, transform, framing, { frameTimeout }, metersOf(context))
    return Server.make({ ...serverOptions, handler: serve })
  })

/** Starts a UDP server for `transform` in the current scope: each datagram is answered to its sender. */
export const makeUdp = (
  transform: Transform,
  address: Datagram.UdpAddress,
  options: UdpOptions = {}
): Effect.Effect<DatagramServer.RunningDatagramServer, NetError.ListenError, Scope.Scope> => {
  const reply = transform ?? ((bytes: Uint8Array) => bytes)
  return DatagramServer.make({ ...options, address, handler: (datagram) => Effect.succeed(reply(datagram.payload)) })
}

/**
 * Options of a built-in UDP server: those of `DatagramServer.make` without
 * the address and the handler.
 *
 * ```ts
 * const options: Echo.UdpOptions = { socket: { receiveBufferSize: 4096 } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type UdpOptions = Omit<DatagramServer.Options<never, never>, "address" | "handler">

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/**
 * The server closed the connection before its reply was complete: it shut
 * down, cut the connection (a frame it could not read, an idle timeout), or
 * is not the server the client expects.
 *
 * ```ts
 * client.request("hi").pipe(Effect.catchTag("ConnectionClosed", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly address: Address.Address
  /** Reply bytes received before the end (raw mode). */
  readonly received: number
  /** Reply bytes expected (raw mode); undefined when a frame was expected. */
  readonly expected?: number | undefined
}> {
  override get message(): string {
    const progress = this.expected === undefined
      ? this.received === 0 ? "before replying" : `in the middle of a reply frame`
      : `after ${this.received} of the ${this.expected} reply bytes`
    return `the server at ${Address.format(this.address)} closed the connection ${progress}: ` +
      "it may have shut down, timed out the connection, or rejected the request (check that both sides use the same --framing)"
  }
}

/**
 * What a request of a TCP/Unix client can fail with.
 *
 * ```ts
 * const reply: Effect.Effect<Uint8Array, Echo.ClientError> = client.request("hi")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ClientError =
  | NetError.ConnectError
  | NetError.ReadError
  | NetError.WriteError
  | Framing.FrameError
  | ConnectionClosed

/**
 * A client on one connection. Requests run one at a time, in order; each
 * waits for its whole reply: as many bytes as were sent in raw mode (both
 * servers answer byte for byte), one frame in framed mode. A request that
 * fails or is interrupted (a timeout) drops the connection, whose replies
 * would be out of step; the next request connects again.
 *
 * ```ts
 * const reply: Uint8Array = yield* client.request(new Uint8Array([1, 2, 3]))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Client {
  /** The server's address. */
  readonly remoteAddress: Address.Address
  /** Send `payload` (a string is sent as UTF-8) and wait for the reply. */
  readonly request: (payload: Uint8Array | string) => Effect.Effect<Uint8Array, ClientError>
}

/**
 * Options of a TCP/Unix client: the socket's connect options and the framing,
 * which must be the server's.
 *
 * ```ts
 * const options: Echo.ClientOptions = { framing: "length", timeout: "2 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions extends Socket.ConnectOptions {
  /** How requests and replies are cut (default `"raw"`); must match the server. */
  readonly framing?: FramingOption | undefined
}

const encoder = new TextEncoder()
const toBytes = (payload: Uint8Array | string): Uint8Array =>
  typeof payload === "string" ? encoder.encode(payload) : payload

/** The next batch of reply bytes; `undefined` at the server's EOF. */
type Read = Effect.Effect<NonEmptyReadonlyArray<Uint8Array> | undefined, NetError.ReadError>

/** One connection of a client: its socket and how it answers one request. */
interface Session {
  readonly socket: Socket.Socket
  readonly scope: Scope.Closeable
  readonly request: (payload: Uint8Array) => Effect.Effect<Uint8Array, ClientError>
}

/**
 * Below Node's write high-water mark a write never waits for `drain` (the
 * previous reply was complete, so the buffer is empty): the reply is read
 * after the write. A larger payload is written while the reply is read, or
 * both sides would stop, each waiting for the other to read.
 */
const SEQUENTIAL_WRITE = 16 * 1024

const exchange = (
  write: Effect.Effect<void, NetError.WriteError>,
  size: number,
  reply: Effect.Effect<Uint8Array, ClientError>
): Effect.Effect<Uint8Array, ClientError> =>
  size < SEQUENTIAL_WRITE
    ? Effect.andThen(write, reply)
    : Effect.map(Effect.zip(write, reply, { concurrent: true }), ([, bytes]) => bytes)

/** Raw mode: the reply is as many bytes as the request. */
const rawSession = (socket: Socket.Socket, read: Read) => {
  // Bytes read beyond a reply; a well-behaved server sends none.
  let buffered: Array<Uint8Array> = []
  return (payload: Uint8Array): Effect.Effect<Uint8Array, ClientError> => {
    const size = payload.length
    if (size === 0) return Effect.succeed(payload)
    const parts: Array<Uint8Array> = []
    let received = 0
    const take = (chunks: ReadonlyArray<Uint8Array>): void => {
      for (let i = 0; i < chunks.length; i++) {
        const bytes = chunks[i]!
        const want = size - received
        if (bytes.length >= want) {
          parts.push(bytes.length === want ? bytes : bytes.subarray(0, want))
          received = size
          buffered = bytes.length === want ? chunks.slice(i + 1) : [bytes.subarray(want), ...chunks.slice(i + 1)]
          return
        }
        parts.push(bytes)
        received += bytes.length
      }
    }
    const loop: Effect.Effect<Uint8Array, ClientError> = Effect.suspend(() => {
      if (received === size) return Effect.succeed(concat(parts, size))
      return Effect.flatMap(read, (chunk) => {
        if (chunk === undefined) {
          return Effect.fail(new ConnectionClosed({ address: socket.remoteAddress, received, expected: size }))
        }
        take(chunk)
        return loop
      })
    })
    return Effect.suspend(() => {
      const early = buffered
      buffered = []
      take(early)
      return exchange(socket.write(payload), size, loop)
    })
  }
}

/** Framed mode: the reply is the next frame. */
const framedSession = (socket: Socket.Socket, read: Read, codec: Framing.Codec<Uint8Array>) => {
  const decoder = codec.decoder()
  // Frames decoded beyond a reply; a well-behaved server sends none.
  let frames: Array<Uint8Array> = []
  const loop: Effect.Effect<Uint8Array, ClientError> = Effect.suspend(() => {
    const frame = frames.shift()
    if (frame !== undefined) return Effect.succeed(frame)
    return Effect.flatMap(read, (chunk) => {
      if (chunk === undefined) {
        return Effect.fail(new ConnectionClosed({ address: socket.remoteAddress, received: decoder.buffered }))
      }
      for (const bytes of chunk) {
        const error = decoder.push(bytes, frames)
        if (error !== undefined) return Effect.fail(error)
      }
      return loop
    })
  })
  return (payload: Uint8Array): Effect.Effect<Uint8Array, ClientError> =>
    Effect.suspend(() => {
      const out: Array<Uint8Array> = []
      const error = codec.encode([payload], out)
      if (error !== undefined) return Effect.fail(error)
      return exchange(socket.writeAll(out), payload.length, loop)
    })
}

const openSession = (
  address: Address.Address,
  options: ClientOptions
): Effect.Effect<Session, NetError.ConnectError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const { framing, ...connectOptions } = options
      const codec = codecOf(framing)
      const scope = yield* Scope.make()
      const opened = yield* restore(Socket.connect(address, connectOptions)).pipe(
        Effect.flatMap((socket) =>
          // Requests take turns under the client's lock: one pull at a time.
          Effect.map(readsPull(socket), (pull): Session => {
            const read: Read = Pull.catchDone(pull, () => Effect.succeed(undefined))
            const request = codec === undefined ? rawSession(socket, read) : framedSession(socket, read, codec)
            return { socket, scope, request }
          })
        ),
        Scope.provide(scope),
        Effect.onError(() => Scope.close(scope, Exit.void))
      )
      return opened
    })
  )

/** Aborts a session whose connection is out of step (a request was cut short) or broken. */
const discard = (session: Session): Effect.Effect<void> =>
  Effect.andThen(session.socket.reset, Scope.close(session.scope, Exit.void))

/**
 * One connection at a time, opened at once so that a wrong address fails
 * here. A request that fails or is interrupted leaves the connection out of
 * step with its replies, so it is dropped and the next request connects again.
 */
export const client = (
  address: Address.Address,
  options: ClientOptions = {}
): Effect.Effect<Client, NetError.ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    let session: Session | undefined = yield* openSession(address, options)
    const remoteAddress = session.socket.remoteAddress
    const lock = yield* Semaphore.make(1)
    yield* Effect.addFinalizer(() => session === undefined ? Effect.void : Scope.close(session.scope, Exit.void))

    const request = (payload: Uint8Array): Effect.Effect<Uint8Array, ClientError | NetError.ConnectError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(
          session === undefined ? restore(openSession(address, options)) : Effect.succeed(session),
          (current) => {
            session = current
            return restore(current.request(payload)).pipe(
              Effect.onExit((exit) => {
                if (Exit.isSuccess(exit)) return Effect.void
                session = undefined
                return discard(current)
              })
            )
          }
        )
      )
    return {
      remoteAddress,
      request: (payload) => lock.withPermits(1)(request(toBytes(payload)))
    } satisfies Client
  })

/**
 * A UDP client: each request is one datagram, answered by one datagram;
 * lost ones are sent again on timeout (see `DatagramServer.RequestOptions`).
 *
 * ```ts
 * const reply = yield* udp.request("ping", { timeout: "200 millis" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface UdpClient {
  /** The server, its host name resolved. */
  readonly remoteAddress: Datagram.UdpAddress
  /** Send `payload` (a string is sent as UTF-8) and wait for the reply, retrying on timeout. */
  readonly request: (
    payload: Uint8Array | string,
    options?: DatagramServer.RequestOptions
  ) => Effect.Effect<Uint8Array, DatagramServer.RequestError>
}

/** A {@link UdpClient} on its own socket, closed with the scope. */
export const udpClient = (
  address: Datagram.UdpAddress,
  options: DatagramServer.ClientOptions = {}
): Effect.Effect<UdpClient, NetError.ConnectError | NetError.ListenError, Scope.Scope> =>
  Effect.map(DatagramServer.client(address, options), (client) => ({
    remoteAddress: client.remoteAddress,
    request: (payload, requestOptions) => client.request(toBytes(payload), requestOptions)
  }))

// ---------------------------------------------------------------------------
// One server module
// ---------------------------------------------------------------------------

/**
 * What a byte server module exports besides its two services and the types:
 * `Self` is its TCP/Unix service (`Echo.Echo`), `UdpSelf` its UDP one
 * (`Echo.EchoUdp`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ByteServer<Self, UdpSelf> {
  /**
   * The connection handler alone, for a server of your own; a bad
   * `frameTimeout` throws the defect (`IllegalArgumentError`).
   *
   * ```ts
   * const server = yield* Server.fromListener(yield* MemorySocket.listen(), { handler: Echo.handler() })
   * ```
   */
  readonly handler: (
    framing?: FramingOption | undefined,
    options?: HandlerOptions | undefined
  ) => Server.PumpedHandler<HandlerError>
  /**
   * Start the server in the current scope; closing the scope drains it.
   *
   * ```ts
   * const server = yield* Echo.make({ address: Address.tcp("127.0.0.1", 0) })
   * ```
   */
  readonly make: (options: Options) => Effect.Effect<Server.RunningServer, NetError.ListenError, Scope.Scope>
  /**
   * The server as a Layer providing its service (`Echo.Echo`).
   *
   * ```ts
   * NodeRuntime.runMain(Layer.launch(Echo.layer({ address: Address.tcp("127.0.0.1", 9000) })))
   * ```
   */
  readonly layer: (options: Options) => Layer.Layer<Self, NetError.ListenError>
  /**
   * `layer` on 127.0.0.1 with a free port, for tests.
   *
   * ```ts
   * it.live("echoes", () =>
   *   Effect.gen(function*() {
   *     const client = yield* Echo.client((yield* Echo.Echo).address)
   *     assert.deepStrictEqual(yield* client.request("hi"), new TextEncoder().encode("hi"))
   *   }).pipe(Effect.provide(Echo.layerTest())))
   * ```
   */
  readonly layerTest: (options?: Omit<Options, "address"> | undefined) => Layer.Layer<Self, NetError.ListenError>
  /**
   * Start the UDP server in the current scope: each datagram is answered to its sender.
   *
   * ```ts
   * const server = yield* Echo.makeUdp(Address.tcp("127.0.0.1", 0))
   * ```
   */
  readonly makeUdp: (
    address: Datagram.UdpAddress,
    options?: UdpOptions | undefined
  ) => Effect.Effect<DatagramServer.RunningDatagramServer, NetError.ListenError, Scope.Scope>
  /**
   * The UDP server as a Layer providing its service (`Echo.EchoUdp`).
   *
   * ```ts
   * const EchoLive = Layer.merge(Echo.layer({ address }), Echo.layerUdp(address))
   * ```
   */
  readonly layerUdp: (
    address: Datagram.UdpAddress,
    options?: UdpOptions | undefined
  ) => Layer.Layer<UdpSelf, NetError.ListenError>
  /**
   * `layerUdp` on 127.0.0.1 with a free port, for tests.
   *
   * ```ts
   * Effect.provide(program, Echo.layerUdpTest())
   * ```
   */
  readonly layerUdpTest: (options?: UdpOptions | undefined) => Layer.Layer<UdpSelf, NetError.ListenError>
  /**
   * Connect a {@link Client} to the server; the connection closes with the scope.
   *
   * ```ts
   * const program = Effect.scoped(Effect.gen(function*() {
   *   const echo = yield* Echo.client(Address.tcp("127.0.0.1", 9000), { framing: "lines" })
   *   return new TextDecoder().decode(yield* echo.request("ping")) // "ping"
   * }))
   * ```
   */
  readonly client: (
    address: Address.Address,
    options?: ClientOptions | undefined
  ) => Effect.Effect<Client, NetError.ConnectError, Scope.Scope>
  /**
   * Open a {@link UdpClient} to the UDP server; its socket closes with the scope.
   *
   * ```ts
   * const udp = yield* Echo.udpClient(Address.tcp("127.0.0.1", 9000), { timeout: "500 millis" })
   * const reply = yield* udp.request("ping")
   * ```
   */
  readonly udpClient: (
    address: Datagram.UdpAddress,
    options?: DatagramServer.ClientOptions | undefined
  ) => Effect.Effect<UdpClient, NetError.ConnectError | NetError.ListenError, Scope.Scope>
}

/**
 * A byte server module from its name (in the defects of bad options), its
 * transform (none: the bytes go back as they are) and its two services.
 *
 * ```ts
 * export class Upper extends Context.Service<Upper, Server.RunningServer>()("effect-wire/servers/Upper") {}
 * const upper = define({ name: "Upper", transform: upperBytes, service: Upper, udpService: UpperUdp })
 * export const { make, layer } = upper
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const define = <Self, UdpSelf>(spec: {
  readonly name: string
  readonly transform?: Transform
  readonly service: Context.Key<Self, Server.RunningServer>
  readonly udpService: Context.Key<UdpSelf, DatagramServer.RunningDatagramServer>
}): ByteServer<Self, UdpSelf> => {
  const { name, transform, service, udpService } = spec
  const self: ByteServer<Self, UdpSelf> = {
    handler: (framing, options) => handler(name, transform, framing, options),
    make: (options) => make(name, transform, options),
    layer: (options) => Layer.effect(service, make(name, transform, options)),
    layerTest: (options = {}) => self.layer({ ...options, address: Address.tcp("127.0.0.1", 0) }),
    makeUdp: (address, options) => makeUdp(transform, address, options),
    layerUdp: (address, options) => Layer.effect(udpService, makeUdp(transform, address, options)),
    layerUdpTest: (options) => self.layerUdp(Address.tcp("127.0.0.1", 0), options),
    client,
    udpClient
  }
  return self
}
