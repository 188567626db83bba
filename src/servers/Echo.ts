/**
 * The echo server (RFC 862): every byte it receives goes back to the sender
 * unchanged; over UDP ({@link layerUdp}) each datagram goes back to its sender.
 *
 * Everything else (options, framing, half-close, drain, the clients and
 * their errors) is the same for Echo and Upper: both are one definition,
 * documented once in `servers/internal/byteServer.ts` and in
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
import type * as DatagramServer from "../DatagramServer.js"
import type * as Server from "../Server.js"
import * as internal from "./internal/byteServer.js"

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
 * const dropped = (yield* (yield* Echo.EchoUdp).stats).dropped
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class EchoUdp
  extends Context.Service<EchoUdp, DatagramServer.RunningDatagramServer>()("effect-wire/servers/EchoUdp")
{}

const echo = internal.define({ name: "Echo", service: Echo, udpService: EchoUdp })

/** @since 0.1.0 */
export const { client, handler, layer, layerTest, layerUdp, layerUdpTest, make, makeUdp, udpClient } = echo

/** @since 0.1.0 */
export { ConnectionClosed } from "./internal/byteServer.js"

/** @since 0.1.0 */
export type {
  Client, ClientError, ClientOptions, FramingOption, HandlerOptions, Options, UdpClient, UdpOptions
} from "./internal/byteServer.js"
