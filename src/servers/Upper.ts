/**
 * The upper-case server: every byte it receives goes back with the ASCII
 * letters `a`-`z` upper-cased and every other byte unchanged, exactly like
 * Python's `bytes.upper()`, so binary data and UTF-8 pass through intact and
 * the answer does not depend on how the bytes were chunked; over UDP
 * ({@link layerUdp}) each datagram is answered to its sender.
 *
 * Everything else (options, framing, half-close, drain, the clients and
 * their errors) is the same for Echo and Upper: both are one definition,
 * documented once in `servers/internal/byteServer.ts` and in
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
import type * as DatagramServer from "../DatagramServer.js"
import { upperBytes } from "../internal/bytes.js"
import type * as Server from "../Server.js"
import * as internal from "./internal/byteServer.js"

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
 * const dropped = (yield* (yield* Upper.UpperUdp).stats).dropped
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class UpperUdp
  extends Context.Service<UpperUdp, DatagramServer.RunningDatagramServer>()("effect-wire/servers/UpperUdp")
{}

const upper = internal.define({ name: "Upper", transform: upperBytes, service: Upper, udpService: UpperUdp })

/** @since 0.1.0 */
export const { client, handler, layer, layerTest, layerUdp, layerUdpTest, make, makeUdp, udpClient } = upper

/** @since 0.1.0 */
export { ConnectionClosed } from "./internal/byteServer.js"

/** @since 0.1.0 */
export type {
  Client, ClientError, ClientOptions, FramingOption, HandlerOptions, Options, UdpClient, UdpOptions
} from "./internal/byteServer.js"
