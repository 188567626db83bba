/**
 * The upper-case server: every byte it receives goes back with the ASCII
 * letters `a`-`z` upper-cased and every other byte unchanged, exactly like
 * Python's `bytes.upper()`, so binary data and UTF-8 pass through intact and
 * the answer does not depend on how the bytes were chunked; over UDP
 * ({@link layerUdp}) each datagram is answered to its sender.
 *
 * Everything else (options, framing, half-close, drain, the clients and
 * their errors) is the same for Echo and Upper and is described once in
 * docs/byte-servers.md.
 *
 * ```ts
 * import * as Upper from "effect-wire/servers/Upper"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* Upper.Upper
 *   const client = yield* Upper.client(server.address)
 *   return new TextDecoder().decode(yield* client.request("héllo")) // "HéLLO"
 * }).pipe(Effect.scoped, Effect.provide(Upper.layerTest()))
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
import { upperBytes } from "../internal/bytes.js"
import * as internal from "./internal/byteServer.js"

/**
 * How the server cuts the byte stream: `"raw"` (default), `"length"`,
 * `"lines"` or any `Framing.Codec<Uint8Array>`.
 *
 * ```ts
 * const options: Upper.Options = { address: Address.tcp("127.0.0.1", 9001), framing: "lines" }
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
 * const handler = Upper.handler("lines", { frameTimeout: "30 seconds" })
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
 * const options: Upper.Options = { address: Address.unix("/tmp/upper.sock"), maxConnections: 100 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends internal.ServerOptions {}

/**
 * The running upper-case server that {@link layer} provides.
 *
 * ```ts
 * const server = yield* Upper.Upper
 * yield* Console.log(`upper on ${Address.format(server.address)}`)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Upper extends Context.Service<Upper, Server.RunningServer>()("effect-wire/servers/Upper") {}

/**
 * The running UDP upper-case server that {@link layerUdp} provides.
 *
 * ```ts
 * const server = yield* Upper.UpperUdp
 * const dropped = (yield* server.stats).dropped
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class UpperUdp extends Context.Service<UpperUdp, DatagramServer.RunningDatagramServer>()(
  "effect-wire/servers/UpperUdp"
) {}

/**
 * The connection handler alone, for a server of your own; a bad
 * `frameTimeout` throws the defect (`IllegalArgumentError`).
 *
 * ```ts
 * const server = yield* Server.fromListener(yield* MemorySocket.listen(), { handler: Upper.handler() })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const handler = (
  framing?: FramingOption | undefined,
  options?: HandlerOptions | undefined
): Server.PumpedHandler<Framing.FrameError | Framing.FrameTimeout> =>
  internal.handler("Upper", upperBytes, framing, options)

/**
 * Start an upper-case server in the current scope; closing the scope drains it.
 *
 * ```ts
 * const server = yield* Upper.make({ address: Address.tcp("127.0.0.1", 0) })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Server.RunningServer, NetError.ListenError, Scope.Scope> =>
  internal.make("Upper", upperBytes, options)

/**
 * The upper-case server as a Layer providing {@link Upper}.
 *
 * ```ts
 * NodeRuntime.runMain(Layer.launch(Upper.layer({ address: Address.tcp("127.0.0.1", 9001) })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Upper, NetError.ListenError> => Layer.effect(Upper, make(options))

/**
 * {@link layer} on 127.0.0.1 with a free port, for tests.
 *
 * ```ts
 * it.live("upper-cases", () =>
 *   Effect.gen(function*() {
 *     const client = yield* Upper.client((yield* Upper.Upper).address)
 *     assert.deepStrictEqual(yield* client.request("hi"), new TextEncoder().encode("HI"))
 *   }).pipe(Effect.provide(Upper.layerTest())))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (options: Omit<Options, "address"> = {}): Layer.Layer<Upper, NetError.ListenError> =>
  layer({ ...options, address: Address.tcp("127.0.0.1", 0) })

/**
 * Options of {@link layerUdp}: those of `DatagramServer.make` without the
 * address and the handler.
 *
 * ```ts
 * const options: Upper.UdpOptions = { socket: { receiveBufferSize: 4096 } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type UdpOptions = internal.UdpServerOptions

/**
 * Start a UDP upper-case server in the current scope.
 *
 * ```ts
 * const server = yield* Upper.makeUdp(Address.tcp("127.0.0.1", 0))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeUdp = (
  address: Datagram.UdpAddress,
  options?: UdpOptions | undefined
): Effect.Effect<DatagramServer.RunningDatagramServer, NetError.ListenError, Scope.Scope> =>
  internal.makeUdp(upperBytes, address, options)

/**
 * The UDP upper-case server as a Layer providing {@link UpperUdp}.
 *
 * ```ts
 * const UpperLive = Layer.merge(Upper.layer({ address }), Upper.layerUdp(address))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUdp = (
  address: Datagram.UdpAddress,
  options?: UdpOptions | undefined
): Layer.Layer<UpperUdp, NetError.ListenError> => Layer.effect(UpperUdp, makeUdp(address, options))

/**
 * {@link layerUdp} on 127.0.0.1 with a free port, for tests.
 *
 * ```ts
 * Effect.provide(program, Upper.layerUdpTest())
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUdpTest = (options?: UdpOptions | undefined): Layer.Layer<UpperUdp, NetError.ListenError> =>
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
 * const options: Upper.ClientOptions = { framing: "length", timeout: "2 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions extends internal.ClientOptions {}

/**
 * Connect a {@link Client} to an upper-case server; the connection closes with the
 * scope.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const upper = yield* Upper.client(Address.tcp("127.0.0.1", 9001), { framing: "lines" })
 *   return new TextDecoder().decode(yield* upper.request("ping")) // "PING"
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
 * A client of the UDP upper-case server: one datagram per request, sent again
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
 * Open a {@link UdpClient} to a UDP upper-case server; its socket closes with the
 * scope.
 *
 * ```ts
 * const udp = yield* Upper.udpClient(Address.tcp("127.0.0.1", 9001), { timeout: "500 millis" })
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
