/**
 * What `ClusterSocket`'s layers are made of, loaded when the first of them is
 * built: Effect's cluster and `effect/rpc` modules stay out of a program that
 * imports `ClusterSocket` (or effect-wire's root entry) and runs no runner.
 * The options were checked by `ClusterSocket`, which also passes its
 * `RunnerServer` tag in (a static import of it from here would keep
 * `ClusterSocket` in a bundle that does not use it).
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as MessageStorage from "effect/cluster/MessageStorage"
import * as RunnerAddress from "effect/cluster/RunnerAddress"
import * as RunnerHealth from "effect/cluster/RunnerHealth"
import * as Runners from "effect/cluster/Runners"
import * as RunnerStorage from "effect/cluster/RunnerStorage"
import * as ShardingConfig from "effect/cluster/ShardingConfig"
import * as SocketRunner from "effect/cluster/SocketRunner"
import type { ConfigError } from "effect/Config"
import * as RpcClient from "effect/rpc/RpcClient"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as EffectSocket from "effect/socket/Socket"
import * as SocketServer from "effect/socket/SocketServer"
import * as Address from "../Address.js"
import type * as ClusterSocket from "../ClusterSocket.js"
import type { RunnerServer } from "../ClusterSocket.js"
import type { ListenError } from "../NetError.js"
import * as PlatformSocket from "../PlatformSocket.js"
import * as Socket from "../Socket.js"
import * as internal from "./clusterServer.js"
import * as Check from "./options.js"

const DEFAULT_CONNECT_TIMEOUT = "1 second"

/** See `ClusterSocket.layerSocketServer`. */
export const layerSocketServer = (
  runnerServer: typeof RunnerServer,
  options?: ClusterSocket.ServerOptions | undefined
): Layer.Layer<SocketServer.SocketServer | RunnerServer, ListenError, ShardingConfig.ShardingConfig> =>
  Layer.effectContext(Effect.gen(function*() {
    const config = yield* ShardingConfig.ShardingConfig
    const listenAddress = Option.orElse(config.runnerListenAddress, () => config.runnerAddress)
    if (Option.isNone(listenAddress)) {
      return yield* Effect.die(
        Check.defect(
          "ClusterSocket",
          "layerSocketServer",
          "needs ShardingConfig.runnerAddress or runnerListenAddress (a runner with neither is client-only: use layer({ clientOnly: true }))"
        )
      )
    }
    const address = Address.tcp(listenAddress.value.host, listenAddress.value.port)
    const listener = yield* Socket.listen(address, {
      ...options?.listen,
      tls: options?.tls,
      idleTimeout: options?.idleTimeout,
      writeTimeout: options?.writeTimeout ?? "30 seconds"
    })
    const { server, socketServer } = yield* internal.make(listener, {
      maxConnections: options?.maxConnections,
      overflow: options?.overflow,
      memoryBudget: options?.memoryBudget,
      shutdownTimeout: options?.shutdownTimeout,
      logLevel: options?.logLevel,
      name: options?.name ?? `cluster runner ${Address.format(listener.address)}`
    })
    return Context.make(SocketServer.SocketServer, socketServer).pipe(Context.add(runnerServer, server))
  }))

/** See `ClusterSocket.layerClientProtocol`. */
export const layerClientProtocol = (
  options?: ClusterSocket.ClientOptions | undefined
): Layer.Layer<Runners.RpcClientProtocol, never, RpcSerialization.RpcSerialization> =>
  Layer.effect(
    Runners.RpcClientProtocol,
    Effect.gen(function*() {
      const serialization = yield* RpcSerialization.RpcSerialization
      const connectOptions: Socket.ConnectOptions = { ...options, timeout: options?.timeout ?? DEFAULT_CONNECT_TIMEOUT }
      return {
        codecFor: serialization.codecFor,
        make: (address) =>
          RpcClient.makeProtocolSocket().pipe(
            Effect.provideService(
              EffectSocket.Socket,
              PlatformSocket.reconnecting(Address.tcp(address.host, address.port), connectOptions)
            ),
            Effect.provideService(RpcSerialization.RpcSerialization, serialization)
          )
      }
    })
  )

/** See `ClusterSocket.layer`: its options, checked. */
export const layer = (
  runnerServer: typeof RunnerServer,
  options: ClusterSocket.Options<boolean, "local" | "byo"> | undefined
): Layer.Layer<any, ListenError | ConfigError, any> => {
  const serialization = options?.serialization === "ndjson"
    ? RpcSerialization.layerNdjsonWith({ maxBufferSize: options.serializationMaxBufferSize })
    : RpcSerialization.layerSchemaBinary({ maxFrameSize: options?.serializationMaxBufferSize })
  const tls = options?.tls
  const client = layerClientProtocol({
    ...options?.client,
    tls: options?.client?.tls ?? (tls === undefined ? undefined : {
      ca: tls.ca,
      identity: tls.identity,
      minVersion: tls.minVersion
    })
  })
  // Typed by the signature's conditional types, as NodeClusterSocket does.
  const messageStorage: Layer.Layer<any, never, any> = options?.storage === "local"
    ? MessageStorage.layerNoop
    : Layer.empty as any
  const runnerStorage: Layer.Layer<any, never, any> = options?.storage === "local"
    ? RunnerStorage.layerMemory
    : Layer.empty as any
  const config = ShardingConfig.layerFromEnv(options?.shardingConfig)

  if (options?.clientOnly === true) {
    return Layer.fresh(SocketRunner.layerClientOnly.pipe(
      Layer.provide(client),
      Layer.provideMerge(messageStorage),
      Layer.provide(runnerStorage),
      Layer.provide(config),
      Layer.provide(serialization)
    )) as never
  }

  const server = layerSocketServer(runnerServer, {
    ...options?.server,
    tls: options?.server?.tls ?? (tls === undefined ? undefined : {
      identity: tls.identity,
      clientCa: tls.ca,
      clientCertificate: "required",
      minVersion: tls.minVersion
    })
  })
  // The ShardingConfig everyone else reads: the bound port when port 0 was asked for.
  const transport = Layer.effect(ShardingConfig.ShardingConfig, advertised(runnerServer)).pipe(
    Layer.provideMerge(server),
    Layer.provide(config)
  )
  const health: Layer.Layer<any, never, any> = options?.runnerHealth === "byo"
    ? Layer.empty as any
    : RunnerHealth.layerPing.pipe(Layer.provide(Runners.layerRpc), Layer.provide(client))
  // Fresh: each call is its own runner, even beside another in one program
  // (SocketRunner.layer and Runners.layerRpc are constants a memo map would share).
  return Layer.fresh(SocketRunner.layer.pipe(
    Layer.provide(client),
    Layer.provide(health),
    Layer.provideMerge(messageStorage),
    Layer.provide(runnerStorage),
    Layer.provideMerge(transport),
    Layer.provide(serialization)
  )) as never
}

/** The config with `runnerAddress`'s port 0 replaced by the port the runner's server bound. */
const advertised = (runnerServer: typeof RunnerServer) =>
  Effect.gen(function*() {
    const config = yield* ShardingConfig.ShardingConfig
    const server = yield* runnerServer
    const runnerAddress = config.runnerAddress
    if (Option.isNone(runnerAddress) || runnerAddress.value.port !== 0 || server.address._tag !== "TcpAddress") {
      return config
    }
    return {
      ...config,
      runnerAddress: Option.some(RunnerAddress.make(runnerAddress.value.host, server.address.port))
    }
  })
