import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import * as Socket from "../src/Socket.js"
import { readAll, tempDir } from "./helpers/sockets.js"

const echo = (socket: Socket.Socket) => Stream.run(socket.reads, socket.writes)

/** Listen at `address`, echo every connection, return the bound address. */
const echoServer = (address: Address.Address, options?: Socket.ListenOptions) =>
  Effect.gen(function*() {
    const listener = yield* Socket.listen(address, options)
    yield* listener.accept.pipe(
      Stream.runForEach((socket) => Effect.fork(Effect.ensuring(Effect.ignore(echo(socket)), socket.close))),
      Effect.forkScoped
    )
    return listener
  })

const transports: ReadonlyArray<[string, Effect.Effect<Address.Address, never, import("effect/Scope").Scope>]> = [
  ["TCP IPv4", Effect.succeed(Address.tcp("127.0.0.1", 0))],
  ["TCP IPv6", Effect.succeed(Address.tcp("::1", 0))],
  ["Unix", Effect.map(tempDir, (dir) => Address.unix(Path.join(dir, "echo.sock")))]
]

describe("Socket", () => {
  for (const [name, makeAddress] of transports) {
    describe(name, () => {
      it.scopedLive("echoes a round trip and half-closes", () =>
        Effect.gen(function*() {
          const listener = yield* echoServer(yield* makeAddress)
          const client = yield* Socket.connect(listener.address)
          const payload = Buffer.from("hello, wire")
          yield* client.write(payload)
          yield* client.end
          const reply = yield* readAll(client)
          assert.strictEqual(reply.toString(), "hello, wire")
        }))
    })
  }
})
