import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Stream } from "effect"
import { Address, Server, Socket } from "effect-wire"

// An echo server on a free loopback port, and a client that talks to it.
const EchoServer = Server.layer({
  address: Address.tcp("127.0.0.1", 0),
  handler: (socket) => Stream.run(socket.reads, socket.writes)
})

const client = Effect.gen(function*() {
  const { address } = yield* Server.Server
  const socket = yield* Socket.connect(address, { timeout: "2 seconds" })
  yield* socket.write(new TextEncoder().encode("hello, wire"))
  yield* socket.end // half-close: the server echoes what it has, then ends
  const reply = yield* Stream.decodeText(socket.reads).pipe(Stream.mkString)
  yield* Console.log(`${Address.format(address)} answered: ${reply}`)
})

client.pipe(Effect.scoped, Effect.provide(EchoServer), NodeRuntime.runMain)
