/**
 * The root entry: every public module as a namespace, for those who prefer
 * one import line. Each module is also its own entry (`effect-wire/Socket`,
 * `effect-wire/servers/Echo`, …), and both give the same objects.
 *
 * ```ts
 * import { Address, Server, Socket } from "effect-wire"
 *
 * const EchoLive = Server.layer({
 *   address: Address.tcp("127.0.0.1", 0),
 *   handler: (socket: Socket.Socket) => Stream.run(socket.reads, socket.writes)
 * })
 * ```
 *
 * Run unbundled, the root loads every module it names (Schema, Effect's
 * socket modules): a server started with plain `node` starts faster from
 * the subpaths. A bundler keeps only what a program uses (package.json
 * `"sideEffects"`); see docs/performance.md.
 *
 * The test kits stay out of the root, as Effect keeps `TestClock` out of
 * `effect`: import them from `effect-wire/testing/MemorySocket` and
 * `effect-wire/testing/CodecLaws`, so a server that imports the root does not
 * load fast-check or an in-memory network it never uses.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Address from "./Address.js"
/** @since 0.2.0 */
export * as AddressSchema from "./AddressSchema.js"
/** @since 0.1.0 */
export * as NetError from "./NetError.js"
/** @since 0.1.0 */
export * as Socket from "./Socket.js"
/** @since 0.1.0 */
export * as Datagram from "./Datagram.js"
/** @since 0.1.0 */
export * as Framing from "./Framing.js"
/** @since 0.1.0 */
export * as Message from "./Message.js"
/** @since 0.1.0 */
export * as Protocol from "./Protocol.js"
/** @since 0.1.0 */
export * as Server from "./Server.js"
/** @since 0.2.0 */
export * as Tls from "./Tls.js"
/** @since 0.2.0 */
export * as ProxyProtocol from "./ProxyProtocol.js"
/** @since 0.1.0 */
export * as DatagramServer from "./DatagramServer.js"
/** @since 0.1.0 */
export * as PlatformSocket from "./PlatformSocket.js"
/** @since 0.2.0 */
export * as ClusterSocket from "./ClusterSocket.js"
/** @since 0.2.0 */
export * as Workers from "./Workers.js"
/** @since 0.1.0 */
export * as Echo from "./servers/Echo.js"
/** @since 0.1.0 */
export * as Upper from "./servers/Upper.js"
/** @since 0.1.0 */
export * as Exec from "./servers/Exec.js"
/** @since 0.2.0 */
export * as Metrics from "./Metrics.js"
/** @since 0.2.0 */
export * as Observability from "./Observability.js"
