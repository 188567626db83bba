/**
 * `effect/cluster`'s runners talking over effect-wire: the runner's
 * `SocketServer` is an effect-wire listener served by a `Server` (a bound on
 * connections, idle and write timeouts, a memory budget, a drain with a
 * report, stats, typed `ListenError`s), and the client protocol reaches every
 * other runner with `Socket.connect` (typed `ConnectError`s as the socket
 * errors' causes), both optionally over mutual TLS. {@link layer} is a
 * drop-in for `@effect/platform-node`'s `NodeClusterSocket.layer`.
 *
 * ```ts
 * import { Layer } from "effect"
 * import * as ClusterSocket from "effect-wire/ClusterSocket"
 *
 * // One runner: entities in Layers, Sharding from effect-wire's transport.
 * const RunnerLive = CounterLive.pipe(
 *   Layer.provideMerge(ClusterSocket.layer({
 *     storage: "byo", // with SqlMessageStorage.layer and SqlRunnerStorage.layer, say
 *     shardingConfig: { runnerAddress: Option.some(RunnerAddress.make("10.0.0.5", 34431)) },
 *     tls: { ca: caPem, identity: { cert: runnerPem, key: Redacted.make(keyPem) } }
 *   }))
 * )
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as MessageStorage from "effect/cluster/MessageStorage"
import type * as RunnerHealth from "effect/cluster/RunnerHealth"
import type * as Runners from "effect/cluster/Runners"
import type * as RunnerStorage from "effect/cluster/RunnerStorage"
import type * as Sharding from "effect/cluster/Sharding"
import type * as ShardingConfig from "effect/cluster/ShardingConfig"
import type { ConfigError } from "effect/Config"
import type * as LogLevel from "effect/LogLevel"
import type * as RpcSerialization from "effect/rpc/RpcSerialization"
import type * as SocketServer from "effect/socket/SocketServer"
import * as Check from "./internal/options.js"
import type { ListenError } from "./NetError.js"
import type * as Server from "./Server.js"
import type * as Socket from "./Socket.js"
import type * as Tls from "./Tls.js"

/**
 * The runner's own effect-wire server, for its stats, limits and drain
 * report: provided by {@link layerSocketServer} and {@link layer}.
 *
 * ```ts
 * const { accepted, active } = yield* (yield* ClusterSocket.RunnerServer).stats
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export class RunnerServer extends Context.Service<RunnerServer, Server.RunningServer>()(
  "effect-wire/ClusterSocket/RunnerServer"
) {}

/**
 * Options of the runner's server ({@link layerSocketServer}): `Server`'s
 * limits, with the same defaults (1024 connections, a 30-second write
 * timeout, a 10-second drain) and the same checks (an invalid one is a
 * defect). Other runners' clients ping every 5 seconds, so an `idleTimeout`
 * above that only cuts runners that went silent.
 *
 * ```ts
 * ClusterSocket.layerSocketServer({ maxConnections: 64, idleTimeout: "30 seconds" })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ServerOptions {
  /** At most this many runner connections at once (default 1024); reaching it is logged. */
  readonly maxConnections?: number | undefined
  /** What happens past `maxConnections` (default `"queue"`). */
  readonly overflow?: Server.Overflow | undefined
  /** A connection with no traffic for this long is closed (default none). */
  readonly idleTimeout?: Duration.Input | undefined
  /** A peer that leaves our writes waiting this long is cut (default 30 seconds). */
  readonly writeTimeout?: Duration.Input | undefined
  /** The most memory the connections may hold at once, in bytes (default none). */
  readonly memoryBudget?: number | undefined
  /** How long connections may finish once the runner stops (default 10 seconds). */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** The server's own log lines from this level (see `Server.Options`). */
  readonly logLevel?: LogLevel.LogLevel | undefined
  /** Name used in log lines (default `cluster runner <address>`). */
  readonly name?: string | undefined
  /** Further listener options (backlog, keep-alive, read buffer, …). */
  readonly listen?: Omit<Socket.ListenOptions, "tls" | "idleTimeout" | "writeTimeout"> | undefined
  /** Speak TLS; with `clientCertificate: "required"` and `clientCa`, only runners with a certificate get in. */
  readonly tls?: Tls.ServerOptions | undefined
}

/**
 * Options of the client side ({@link layerClientProtocol}): `Socket.connect`'s,
 * with `timeout` defaulting to 1 second (as `NodeClusterSocket`'s).
 *
 * ```ts
 * ClusterSocket.layerClientProtocol({ timeout: "2 seconds", tls: { ca: caPem, identity } })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type ClientOptions = Socket.ConnectOptions

/**
 * Mutual TLS between runners, both ways at once: every runner presents
 * `identity` to the runners it calls and to those that call it, and accepts
 * only peers whose certificate chains to `ca`. A runner's certificate must
 * name the host of its `runnerAddress` (DNS or IP SAN) and allow both
 * server and client authentication (`extendedKeyUsage = serverAuth,
 * clientAuth`).
 *
 * ```ts
 * const tls: ClusterSocket.MutualTls = { ca: caPem, identity: { cert: runnerPem, key: Redacted.make(keyPem) } }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface MutualTls {
  /** The CAs runner certificates must chain to. */
  readonly ca: Tls.Pem | ReadonlyArray<Tls.Pem>
  /** This runner's certificate chain and key. */
  readonly identity: Tls.Identity
  /** Default `"TLSv1.2"`. */
  readonly minVersion?: Tls.MinVersion | undefined
}

/**
 * The layers' own code, with Effect's cluster and `effect/rpc`: loaded when
 * the first layer is built, so that importing this module (or the root
 * entry) loads neither.
 */
const fromLayers = <A>(f: (layers: typeof import("./internal/clusterLayers.js")) => A): Effect.Effect<A> =>
  Effect.map(Effect.promise(() => import("./internal/clusterLayers.js")), f)

/**
 * The runner's `SocketServer` as an effect-wire listener on
 * `ShardingConfig.runnerListenAddress` (or `runnerAddress`), its connections
 * served by a `Server` under `options`; it also provides {@link RunnerServer}.
 * Building it listens (failing with a typed `ListenError`, e.g.
 * `AddressInUse`); releasing it drains: the listener stops accepting, and
 * each open connection ends (by then the runner's RPC server is gone).
 * A `ShardingConfig` without either address is a defect.
 *
 * ```ts
 * const ServerLive = ClusterSocket.layerSocketServer({ maxConnections: 64 }).pipe(
 *   Layer.provide(ShardingConfig.layer({ runnerAddress: Option.some(RunnerAddress.make("127.0.0.1", 34431)) }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSocketServer = (
  options?: ServerOptions | undefined
): Layer.Layer<SocketServer.SocketServer | RunnerServer, ListenError, ShardingConfig.ShardingConfig> =>
  Layer.unwrap(fromLayers((m) => m.layerSocketServer(RunnerServer, options)))

/**
 * The client side of the runner transport: for each runner address, an
 * `effect/rpc` socket protocol over {@link PlatformSocket.reconnecting}, so
 * each (re)connect is a `Socket.connect` (`timeout` default 1 second). A
 * runner that cannot be reached fails its pending calls, which `Sharding`
 * sees as `RunnerUnavailable`; the cause of the socket error is our typed
 * `ConnectError` (`ConnectionRefused`, `ConnectTimeout`, a
 * `Tls.HandshakeError`, …).
 *
 * ```ts
 * const ClientLive = ClusterSocket.layerClientProtocol({ tls: { ca: caPem, identity } }).pipe(
 *   Layer.provide(RpcSerialization.layerNdjson)
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerClientProtocol = (
  options?: ClientOptions | undefined
): Layer.Layer<Runners.RpcClientProtocol, never, RpcSerialization.RpcSerialization> =>
  Layer.unwrap(fromLayers((m) => m.layerClientProtocol(options)))

/**
 * Options of {@link layer}: those of `NodeClusterSocket.layer` that apply,
 * and effect-wire's server, client and TLS options.
 *
 * - `storage`: `"local"` (no message persistence, runners known only to this
 *   process: one runner) or `"byo"` (the default: provide `MessageStorage`
 *   and `RunnerStorage` yourself, e.g. `SqlMessageStorage.layer` and
 *   `SqlRunnerStorage.layer` with your SQL client; forgetting them is a
 *   compile error, never a silent fallback).
 * - `runnerHealth`: `"ping"` (the default: the runner that checks health
 *   pings the others over this transport) or `"byo"` (provide
 *   `RunnerHealth`, e.g. `RunnerHealth.layerK8s`).
 *
 * ```ts
 * const options: ClusterSocket.Options<false, "local"> = { storage: "local", serialization: "ndjson" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options<ClientOnly extends boolean = false, Storage extends "local" | "byo" = "byo"> {
  /** `"binary"` (Effect's SchemaBinary, the default, as `NodeClusterSocket`'s) or `"ndjson"`. */
  readonly serialization?: "binary" | "ndjson" | undefined
  /** The largest frame the serialization buffers (default 16 MiB). */
  readonly serializationMaxBufferSize?: number | "unbounded" | undefined
  /** Join without a server and without shards: send to entities only. */
  readonly clientOnly?: ClientOnly | undefined
  readonly storage?: Storage | undefined
  readonly runnerHealth?: "ping" | "byo" | undefined
  /** Over the environment's `ShardingConfig` (`ShardingConfig.layerFromEnv`). A `runnerAddress` with port 0 advertises the port bound. */
  readonly shardingConfig?: Partial<ShardingConfig.ShardingConfig["Service"]> | undefined
  /** Mutual TLS between runners (both sides); `server.tls`/`client.tls` replace its halves. */
  readonly tls?: MutualTls | undefined
  readonly server?: ServerOptions | undefined
  readonly client?: ClientOptions | undefined
}

/** What {@link layer} needs besides its options: the storage it was told to leave to the caller. */
type LayerIn<Storage, Health> =
  | ("byo" extends Storage ? MessageStorage.MessageStorage | RunnerStorage.RunnerStorage : never)
  | ("byo" extends Health ? RunnerHealth.RunnerHealth : never)

/**
 * A runner (or, with `clientOnly`, a client) of `effect/cluster` whose
 * runners talk over effect-wire: `Sharding` and `Runners` over
 * {@link layerSocketServer} and {@link layerClientProtocol}, with the storage,
 * health check, serialization and `ShardingConfig` the options pick, as
 * `NodeClusterSocket.layer` does. A runner also provides the
 * {@link RunnerServer}, the `SocketServer` and the `ShardingConfig` it
 * advertised (with the bound port when `runnerAddress` asked for port 0).
 * An invalid option is a defect.
 *
 * ```ts
 * const RunnerLive = CounterLive.pipe(
 *   Layer.provideMerge(ClusterSocket.layer({
 *     storage: "byo",
 *     shardingConfig: { runnerAddress: Option.some(RunnerAddress.make("127.0.0.1", 0)) }
 *   })),
 *   Layer.provide([SqlMessageStorage.layer, SqlRunnerStorage.layer]),
 *   Layer.provide(SqlLive)
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <
  const ClientOnly extends boolean = false,
  const Storage extends "local" | "byo" = "byo",
  const Health extends "ping" | "byo" = "ping"
>(
  options?: Options<ClientOnly, Storage> & { readonly runnerHealth?: Health | undefined } | undefined
): ClientOnly extends true ? Layer.Layer<
    Sharding.Sharding | Runners.Runners | ("local" extends Storage ? MessageStorage.MessageStorage : never),
    ConfigError,
    LayerIn<Storage, never>
  > :
  Layer.Layer<
    | Sharding.Sharding
    | Runners.Runners
    | RunnerServer
    | SocketServer.SocketServer
    | ShardingConfig.ShardingConfig
    | ("local" extends Storage ? MessageStorage.MessageStorage : never),
    ListenError | ConfigError,
    LayerIn<Storage, Health>
  > =>
{
  const invalid = checkOptions(options)
  if (invalid !== undefined) return Layer.effectDiscard(Effect.die(invalid)) as never
  // Fresh, as the layer it loads (internal/clusterLayers.ts): each use of this value is its own runner.
  return Layer.fresh(Layer.unwrap(fromLayers((m) => m.layer(RunnerServer, options)))) as never
}

const checkOptions = (options: Options<boolean, "local" | "byo"> | undefined) => {
  if (options === undefined) return undefined
  const invalid = (name: string, reason: Check.Reason) =>
    reason === undefined ? undefined : Check.defect("ClusterSocket.layer", name, reason)
  const maxBuffer = options.serializationMaxBufferSize
  return (options.serialization === undefined
    ? undefined
    : invalid("serialization", Check.oneOf(options.serialization, ["binary", "ndjson"]))) ??
    (options.storage === undefined ? undefined : invalid("storage", Check.oneOf(options.storage, ["local", "byo"]))) ??
    (options.runnerHealth === undefined
      ? undefined
      : invalid("runnerHealth", Check.oneOf(options.runnerHealth, ["ping", "byo"]))) ??
    (maxBuffer === undefined || maxBuffer === "unbounded"
      ? undefined
      : invalid("serializationMaxBufferSize", Check.positiveInt(maxBuffer)))
}
