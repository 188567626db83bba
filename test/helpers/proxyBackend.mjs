// A server behind a load balancer, for test/haproxy.test.ts: run from the
// built package (dist/). Each connection sends one line; the answer is the
// backend's name, the client address the server sees, and the line. v2
// LOCAL health checks are counted, not answered. It prints "listening PORT"
// once ready, "accepted CLIENT" for each connection its handler takes, drains
// on SIGTERM, then prints "served N checks N refused N".
//
// node test/helpers/proxyBackend.mjs NAME
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Address, Framing, ProxyProtocol, Server } from "../../dist/src/index.js"

const name = process.argv[2] ?? "backend"
let served = 0
let checks = 0
let running

const handler = (socket) =>
  Effect.gen(function*() {
    const header = ProxyProtocol.headerOf(socket)
    if (Option.isSome(header) && header.value.command === "LOCAL") {
      checks++
      return
    }
    process.stdout.write(`accepted ${Address.format(socket.remoteAddress)}\n`)
    const lines = yield* socket.reads.pipe(
      Framing.decode(Framing.lines({ as: "string", maxLength: 1024 })),
      Stream.take(1),
      Stream.runCollect
    )
    if (lines.length === 0) return
    yield* socket.write(new TextEncoder().encode(`${name} ${Address.format(socket.remoteAddress)} ${lines[0]}\n`))
    served++
  })

const program = Effect.gen(function*() {
  const server = yield* Server.Server
  running = server
  process.stdout.write(`listening ${server.address.port}\n`)
  return yield* Effect.never
}).pipe(
  Effect.provide(Server.layer({
    address: Address.tcp("127.0.0.1", 0),
    handler,
    name,
    shutdownTimeout: "5 seconds",
    proxyProtocol: { trustedSources: ["127.0.0.1"], versions: ["v2"] }
  })),
  Effect.ensuring(Effect.gen(function*() {
    const stats = running === undefined ? undefined : yield* running.stats
    process.stdout.write(`served ${served} checks ${checks} refused ${stats?.refused}\n`)
  }))
)

NodeRuntime.runMain(program)
