/**
 * `effect/rpc` servers (see bench/effectServers.ts): one `RpcServer` with
 * ndjson serialization and an `Echo` call, on effect-wire's listener
 * (`PlatformSocket.layerServer`) and on Effect 4's `NodeSocketServer`.
 */
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Rpc from "effect/rpc/Rpc"
import * as RpcGroup from "effect/rpc/RpcGroup"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as RpcServer from "effect/rpc/RpcServer"
import * as SocketServer from "effect/socket/SocketServer"
import * as Address from "../../src/Address.js"
import * as PlatformSocket from "../../src/PlatformSocket.js"
import { JsonMessage } from "../messages.js"
import { type Listen, listeningAt, type Programs } from "./common.js"

class Api extends RpcGroup.make(
  Rpc.make("Echo", { payload: JsonMessage, success: JsonMessage })
) {}

const serve =
  (socketServer: (listen: Listen) => Layer.Layer<SocketServer.SocketServer, unknown>) => (listen: Listen) =>
    Effect.gen(function*() {
      const server = yield* SocketServer.SocketServer
      yield* listeningAt(server.address, listen.host)
      return yield* Layer.launch(
        RpcServer.layer(Api).pipe(
          Layer.provide(Api.toLayer({ Echo: (message) => Effect.succeed(message) })),
          Layer.provide(RpcServer.layerProtocolSocketServer),
          Layer.provide(RpcSerialization.layerNdjson),
          Layer.provide(Layer.succeed(SocketServer.SocketServer, server))
        )
      )
    }).pipe(Effect.provide(socketServer(listen)))

export const programs: Programs = {
  "rpc-wire": serve(({ host, port }) => PlatformSocket.layerServer(Address.tcp(host, port))),
  "rpc-effect": serve(({ host, port }) => NodeSocketServer.layer({ host, port, noDelay: true }))
}
