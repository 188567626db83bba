import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import * as Server from "../src/Server.js"
import { byteServerSuite } from "./helpers/byteServerSuite.js"
import { readAll } from "./helpers/sockets.js"

byteServerSuite("Echo", Echo, (bytes) => bytes)

describe("Echo", () => {
  it.live("layerTest binds 127.0.0.1 on a free port", () =>
    Effect.gen(function*() {
      const server = yield* Echo.Echo
      assert.strictEqual(server.address._tag, "TcpAddress")
      if (server.address._tag === "TcpAddress") {
        assert.strictEqual(server.address.host, "127.0.0.1")
        assert.notStrictEqual(server.address.port, 0)
      }
      const client = yield* Echo.client(server.address)
      assert.strictEqual(new TextDecoder().decode(yield* client.request("hello")), "hello")
    }).pipe(Effect.provide(Echo.layerTest())))

  it.live("half-close: the server keeps echoing after the client ends, then ends too", () =>
    Effect.gen(function*() {
      const server = yield* Echo.Echo
      const socket = yield* Socket.connect(server.address)
      // Everything is written and the write side closed before a single byte is read back.
      const payload = Buffer.alloc(3 * 1024 * 1024, 7)
      const reading = yield* Effect.forkChild(readAll(socket))
      yield* socket.write(payload)
      yield* socket.end
      const reply = yield* Fiber.join(reading)
      assert.isTrue(reply.equals(payload))
    }).pipe(Effect.provide(Echo.layerTest())))

  it.live("the handler serves in-memory connections too", () =>
    Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      yield* Server.fromListener(listener, { handler: Echo.handler("lines") })
      const socket = yield* listener.connect()
      yield* socket.write(new TextEncoder().encode("a\r\nb\n"))
      yield* socket.end
      const reply = yield* Stream.runCollect(socket.reads)
      assert.strictEqual(Buffer.concat([...reply]).toString(), "a\nb\n")
    }))

  it.live("UDP layer: layerUdpTest and the retrying client", () =>
    Effect.gen(function*() {
      const server = yield* Echo.EchoUdp
      const client = yield* Echo.udpClient(server.address)
      assert.strictEqual(new TextDecoder().decode(yield* client.request("ping")), "ping")
      assert.strictEqual((yield* server.stats).replied, 1)
    }).pipe(Effect.provide(Echo.layerUdpTest())))
})
