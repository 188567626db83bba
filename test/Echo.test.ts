import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Framing from "../src/Framing.js"
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

  describe("frameTimeout on the generic pump (MemorySocket, TestClock)", () => {
    const frame = (text: string) => {
      const body = Buffer.from(text)
      const header = Buffer.alloc(4)
      header.writeUInt32BE(body.length)
      return Buffer.concat([header, body])
    }

    it.effect("a frame dribbled a byte a second fails its connection with FrameTimeout at the deadline", () =>
      Effect.gen(function*() {
        const [client, server] = yield* MemorySocket.makePair()
        const served = yield* Effect.forkChild(Echo.handler("length", { frameTimeout: "3 seconds" })(server))
        // A whole frame, answered; then 10 s without a byte: no deadline runs between frames.
        yield* client.write(frame("ok"))
        const reply = yield* Stream.runHead(client.reads)
        assert.isTrue(reply._tag === "Some" && Buffer.from(reply.value).equals(frame("ok")))
        yield* TestClock.adjust("10 seconds")
        assert.isUndefined(served.pollUnsafe(), "no frame in progress, nothing cut")
        // A frame of 28 bytes, one byte a second: cut 3 s after its first byte.
        const dribbled = frame("twenty-eight bytes of a body")
        let sent = 0
        while (served.pollUnsafe() === undefined && sent < dribbled.length) {
          yield* client.write(dribbled.subarray(sent, sent + 1))
          sent++
          yield* TestClock.adjust("1 second")
        }
        const exit = yield* Fiber.await(served)
        assert.isTrue(Exit.isFailure(exit), String(exit))
        const error = Cause.findErrorOption((exit as Exit.Failure<void, unknown>).cause)
        assert.isTrue(error._tag === "Some" && error.value instanceof Framing.FrameTimeout, String(exit))
        const timeout = (error as { readonly value: Framing.FrameTimeout }).value
        assert.strictEqual(sent, 3, "cut when the third second after the first byte ran out")
        assert.strictEqual(timeout.received, 3)
        assert.strictEqual(Duration.toMillis(timeout.limit), 3000)
        assert.include(timeout.message, "longer than 3s from its first byte (frameTimeout): 3 bytes of it had arrived")
      }))

    it.effect("a steady stream of complete frames is never cut, over many times the limit", () =>
      Effect.gen(function*() {
        const [client, server] = yield* MemorySocket.makePair()
        const served = yield* Effect.forkChild(Echo.handler("length", { frameTimeout: "3 seconds" })(server))
        for (let i = 0; i < 30; i++) {
          // Each frame in two halves 2 s apart: within the limit, 60 s in all.
          const whole = frame(`frame ${i}`)
          yield* client.write(whole.subarray(0, 5))
          yield* TestClock.adjust("2 seconds")
          yield* client.write(whole.subarray(5))
          const reply = yield* Stream.runHead(client.reads)
          assert.isTrue(reply._tag === "Some" && Buffer.from(reply.value).equals(whole), `frame ${i}`)
        }
        yield* client.end
        assert.isTrue(Exit.isSuccess(yield* Fiber.await(served)))
      }))

    it.effect("through Server.fromListener: the connection is counted as failed and closed", () =>
      Effect.gen(function*() {
        const listener = yield* MemorySocket.listen()
        const server = yield* Server.fromListener(listener, {
          handler: Echo.handler("lines", { frameTimeout: "5 seconds" })
        })
        const client = yield* listener.connect()
        yield* client.write(Buffer.from("no end of line in sight"))
        const reading = yield* Effect.forkChild(Stream.runCollect(client.reads))
        yield* TestClock.adjust("4 seconds")
        assert.isUndefined(reading.pollUnsafe(), "still open within the limit")
        yield* TestClock.adjust("1 second")
        const rest = yield* Fiber.join(reading)
        assert.strictEqual(rest.length, 0, "closed without an answer")
        const stats = yield* server.stats
        assert.deepStrictEqual(stats, { accepted: 1, active: 0, completed: 0, failed: 1, refused: 0 })
      }))

    it("an invalid frameTimeout is a defect naming it; Duration.infinity means none", () => {
      assert.throws(() => Echo.handler("lines", { frameTimeout: 0 }), /Echo: frameTimeout must be above 0/)
      assert.throws(() => Echo.handler("lines", { frameTimeout: "soon" as never }), /Echo: frameTimeout must be a duration/)
      assert.doesNotThrow(() => Echo.handler("lines", { frameTimeout: Duration.infinity }))
    })
  })

  it.live("UDP layer: layerUdpTest and the retrying client", () =>
    Effect.gen(function*() {
      const server = yield* Echo.EchoUdp
      const client = yield* Echo.udpClient(server.address)
      assert.strictEqual(new TextDecoder().decode(yield* client.request("ping")), "ping")
      assert.strictEqual((yield* server.stats).replied, 1)
    }).pipe(Effect.provide(Echo.layerUdpTest())))
})
