/**
 * The echo server (RFC 862): every byte it receives goes back to the sender
 * unchanged; over UDP ({@link layerUdp}) each datagram goes back to its sender.
 *
 * Everything else (options, framing, half-close, drain, the clients and
 * their errors) is the same for Echo and Upper and is described once in
 * docs/byte-servers.md.
 *
 * ```ts
 * import * as Echo from "effect-wire/servers/Echo"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* Echo.Echo
 *   const client = yield* Echo.client(server.address)
 *   return yield* client.request("hello") // the bytes of "hello"
 * }).pipe(Effect.scoped, Effect.provide(Echo.layerTest()))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Address from "../Address.js"
import type * as Datagram from "../Datagram.js"
import type * as DatagramServer from "../DatagramServer.js"
import type * as Framing from "../Framing.js"
import type * as NetError from "../NetError.js"
import type * as Server from "../Server.js"
import * as internal from "./internal/byteServer.js"

/**
 * How the server cuts the byte stream: `"raw"` (default), `"length"`,
 * `"lines"` or any `Framing.Codec<Uint8Array>`.
 *
 * ```ts
 * const options: Echo.Options = { address: Address.tcp("127.0.0.1", 9000), framing: "lines" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type FramingOption = internal.FramingOption

/**
 * Options of {@link handler}: `frameTimeout`, the longest a frame may take
 * from its first byte to its last (with a framing; none by default), past
 * which the connection fails with `Framing.FrameTimeout`.
 *
 * ```ts
 * const handler = Echo.handler("lines", { frameTimeout: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HandlerOptions extends internal.HandlerOptions {}

/**
 * Options of {@link make} and {@link layer}: those of `Server.make` without
 * the handler, plus `framing` and `frameTimeout` (see {@link HandlerOptions}).
 *
 * ```ts
 * const options: Echo.Options = { address: Address.unix("/tmp/echo.sock"), maxConnections: 100 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends internal.ServerOptions {}

/**
 * The running echo server that {@link layer} provides.
 *
 * ```ts
 * const server = yield* Echo.Echo
 * yield* Console.log(`echo on ${Address.format(server.address)}`)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Echo extends Context.Service<Echo, Server.RunningServer>()("effect-wire/servers/Echo") {}

/**
 * The running UDP echo server that {@link layerUdp} provides.
 *
 * ```ts
 * const server = yield* Echo.EchoUdp
 * const dropped = (yield* server.stats).dropped
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class EchoUdp extends Context.Service<EchoUdp, DatagramServer.RunningDatagramServer>()(
  "effect-wire/servers/EchoUdp"
) {}

/**
 * The connection handler alone, for a server of your own; a bad
 * `frameTimeout` throws the defect (`IllegalArgumentError`).
 *
 * ```ts
 * const server = yield* Server.fromListener(yield* MemorySocket.listen(), { handler: Echo.handler() })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const handler = (
  framing?: FramingOption | undefined,
  options?: HandlerOptions | undefined
): Server.PumpedHandler<Framing.FrameError | Framing.FrameTimeout> =>
  internal.handler("Echo", undefined, framing, options)

/**
 * Start an echo server in the current scope; closing the scope drains it.
 *
 * ```ts
 * const server = yield* Echo.make({ address: Address.tcp("127.0.0.1", 0) })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Server.RunningServer, NetError.ListenError, Scope.Scope> =>
  internal.make("Echo", undefined, options)

/**
 * The echo server as a Layer providing {@link Echo}.
 *
 * ```ts
 * NodeRuntime.runMain(Layer.launch(Echo.layer({ address: Address.tcp("127.0.0.1", 9000) })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Echo, NetError.ListenError> => Layer.effect(Echo, make(options))

/**
 * {@link layer} on 127.0.0.1 with a free port, for tests.
 *
 * ```ts
 * it.live("echoes", () =>
 *   Effect.gen(function*() {
 *     const client = yield* Echo.client((yield* Echo.Echo).address)
 *     assert.deepStrictEqual(yield* client.request("hi"), new TextEncoder().encode("hi"))
 *   }).pipe(Effect.provide(Echo.layerTest())))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (options: Omit<Options, "address"> = {}): Layer.Layer<Echo, NetError.ListenError> =>
  layer({ ...options, address: Address.tcp("127.0.0.1", 0) })

/**
 * Options of {@link layerUdp}: those of `DatagramServer.make` without the
 * address and the handler.
 *
 * ```ts
 * const options: Echo.UdpOptions = { socket: { receiveBufferSize: 4096 } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type UdpOptions = internal.UdpServerOptions

/**
 * Start a UDP echo server in the current scope.
 *
 * ```ts
 * const server = yield* Echo.makeUdp(Address.tcp("127.0.0.1", 0))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeUdp = (
  address: Datagram.UdpAddress,
  options?: UdpOptions | undefined
): Effect.Effect<DatagramServer.RunningDatagramServer, NetError.ListenError, Scope.Scope> =>
  internal.makeUdp(undefined, address, options)

/**
 * The UDP echo server as a Layer providing {@link EchoUdp}.
 *
 * ```ts
 * const EchoLive = Layer.merge(Echo.layer({ address }), Echo.layerUdp(address))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUdp = (
  address: Datagram.UdpAddress,
  options?: UdpOptions | undefined
): Layer.Layer<EchoUdp, NetError.ListenError> => Layer.effect(EchoUdp, makeUdp(address, options))

/**
 * {@link layerUdp} on 127.0.0.1 with a free port, for tests.
 *
 * ```ts
 * Effect.provide(program, Echo.layerUdpTest())
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUdpTest = (options?: UdpOptions | undefined): Layer.Layer<EchoUdp, NetError.ListenError> =>
  layerUdp(Address.tcp("127.0.0.1", 0), options)

/**
 * The server closed the connection before a reply was complete.
 *
 * ```ts
 * client.request("hi").pipe(Effect.catchTag("ConnectionClosed", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const ConnectionClosed: typeof internal.ConnectionClosed = internal.ConnectionClosed

/**
 * @since 0.1.0
 * @category errors
 */
export type ConnectionClosed = internal.ConnectionClosed

/**
 * @since 0.1.0
 * @category models
 */
export type ClientError = internal.ClientError

/**
 * A client on one connection: one request at a time, each waiting for its whole reply.
 *
 * ```ts
 * const reply: Uint8Array = yield* client.request(new Uint8Array([1, 2, 3]))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Client extends internal.Client {}

/**
 * Options of {@link client}: the socket's connect options and the server's framing.
 *
 * ```ts
 * const options: Echo.ClientOptions = { framing: "length", timeout: "2 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions extends internal.ClientOptions {}

/**
 * Connect a {@link Client} to an echo server; the connection closes with the
 * scope.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const echo = yield* Echo.client(Address.tcp("127.0.0.1", 9000), { framing: "lines" })
 *   return new TextDecoder().decode(yield* echo.request("ping")) // "ping"
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const client = (
  address: Address.Address,
  options?: ClientOptions | undefined
): Effect.Effect<Client, NetError.ConnectError, Scope.Scope> => internal.client(address, options)

/**
 * A client of the UDP echo server: one datagram per request, sent again
 * when no reply comes in time.
 *
 * ```ts
 * const reply = yield* udp.request("ping", { timeout: "200 millis" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface UdpClient extends internal.UdpClient {}

/**
 * Open a {@link UdpClient} to a UDP echo server; its socket closes with the
 * scope.
 *
 * ```ts
 * const udp = yield* Echo.udpClient(Address.tcp("127.0.0.1", 9000), { timeout: "500 millis" })
 * const reply = yield* udp.request("ping")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const udpClient = (
  address: Datagram.UdpAddress,
  options?: DatagramServer.ClientOptions | undefined
): Effect.Effect<UdpClient, NetError.ConnectError | NetError.ListenError, Scope.Scope> =>
  internal.udpClient(address, options)
