import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { pipe } from "effect/Function"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Message from "../src/Message.js"
import * as Protocol from "../src/Protocol.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"

const Request = Schema.Union([
  Schema.TaggedStruct("Add", { a: Schema.Int, b: Schema.Int }),
  Schema.TaggedStruct("Echo", { text: Schema.String })
])
type Request = typeof Request.Type

const Response = Schema.Union([
  Schema.TaggedStruct("Sum", { value: Schema.Int }),
  Schema.TaggedStruct("Echoed", { text: Schema.String }),
  Schema.TaggedStruct("BadRequest", { reason: Schema.String })
])
type Response = typeof Response.Type

const answer = (request: Request): Response =>
  request._tag === "Add" ? { _tag: "Sum", value: request.a + request.b } : { _tag: "Echoed", text: request.text }

const framing = Framing.lengthPrefixed({ maxFrameLength: 1024 })

const protocols = (format: "json" | "msgpack", codec: Framing.Codec<Uint8Array> = framing) => ({
  server: Protocol.make({ framing: codec, incoming: Request, outgoing: Response, format }),
  surfacing: Protocol.make({ framing: codec, incoming: Request, outgoing: Response, format, onMalformed: "surface" }),
  client: Protocol.make({ framing: codec, incoming: Response, outgoing: Request, format })
})

const { client: ClientP, server: ServerP, surfacing: SurfacingP } = protocols("msgpack")

/** Answers every request; each Stream batch of answers goes out as one socket batch. */
const serve = (socket: Socket.Socket, protocol: Protocol.Protocol<Request, Response> = ServerP) => {
  const connection = pipe(socket, Protocol.attach(protocol))
  return connection.messages.pipe(Stream.map(answer), Stream.run(connection.sends))
}

/** Answers bad requests instead of dropping the connection. */
const serveSurfacing = (socket: Socket.Socket) => {
  const connection = Protocol.attach(SurfacingP, socket)
  return connection.messages.pipe(
    Stream.map(Result.match({
      onFailure: (error): Response => ({ _tag: "BadRequest", reason: error.message }),
      onSuccess: answer
    })),
    Stream.run(connection.sends)
  )
}

const msgpackFrame = (value: unknown) =>
  Result.getOrThrow(Framing.encodeAll(framing, [Result.getOrThrow(Message.msgpack(Schema.Unknown).encode(value))]))

/** A socket that counts its write calls. */
const counting = (socket: Socket.Socket) => {
  const counter = { writes: 0 }
  const wrapped: Socket.Socket = {
    ...socket,
    write: (bytes) => Effect.suspend(() => (counter.writes++, socket.write(bytes))),
    writeAll: (chunks) => Effect.suspend(() => (counter.writes++, socket.writeAll(chunks)))
  }
  return [wrapped, counter] as const
}

const requests: ReadonlyArray<Request> = Array.from({ length: 30 }, (_, i) =>
  i % 2 === 0 ? { _tag: "Add", a: i, b: 1000 } : { _tag: "Echo", text: `héllo ${i}` })

describe("Protocol", () => {
  describe("over an in-memory pair", () => {
    for (const format of ["json", "msgpack"] as const) {
      it.effect(`${format}: typed request/response with every byte its own read, both ways`, () =>
        Effect.gen(function*() {
          const p = protocols(format)
          const [a, b] = yield* MemorySocket.makePair({ aToB: { maxChunkSize: 1 }, bToA: { maxChunkSize: 1 } })
          yield* Effect.forkScoped(serve(b, p.server))
          const client = yield* Protocol.client(a, p.client)
          for (const request of requests) {
            assert.deepStrictEqual(yield* client.request(request), answer(request))
          }
        }))
    }

    it.effect("json over lines framing", () =>
      Effect.gen(function*() {
        const p = protocols("json", Framing.lines({ maxLength: 256 }))
        const [a, b] = yield* MemorySocket.makePair({ aToB: { maxChunkSize: 3 } })
        yield* Effect.forkScoped(serve(b, p.server))
        const client = yield* Protocol.client(p.client, a)
        yield* client.connection.socket.write(new TextEncoder().encode(`{"_tag":"Echo","text":"raw"}\n`))
        assert.deepStrictEqual(yield* client.request({ _tag: "Add", a: 1, b: 2 }), { _tag: "Echoed", text: "raw" })
        assert.deepStrictEqual(yield* client.request({ _tag: "Echo", text: "x" }), { _tag: "Sum", value: 3 })
      }))

    it.effect("many messages in one write arrive as separate typed messages, in order", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const [socket, counter] = counting(a)
        const batch = Array.from({ length: 200 }, (_, i): Request => ({ _tag: "Add", a: i, b: i }))
        yield* Protocol.attach(socket, ClientP).sendAll(batch)
        assert.strictEqual(counter.writes, 1)
        yield* a.end
        const received = yield* Stream.runCollect(Protocol.attach(b, ServerP).messages)
        assert.deepStrictEqual(received, batch)
      }))

    it.effect("the sends sink writes each Stream batch as one socket batch", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const [socket, counter] = counting(a)
        yield* Stream.range(1, 50).pipe(
          Stream.map((i): Request => ({ _tag: "Echo", text: String(i) })),
          Stream.rechunk(25),
          Stream.run(Protocol.attach(socket, ClientP).sends)
        )
        assert.strictEqual(counter.writes, 2)
        const received = yield* Stream.runCollect(Protocol.attach(b, ServerP).messages)
        assert.strictEqual(received.length, 50)
      }))
  })

  describe("malformed input", () => {
    it.effect("fail (default): messages fail with MessageDecodeError after the good ones", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* a.writeAll([
          msgpackFrame({ _tag: "Add", a: 1, b: 2 }),
          msgpackFrame({ _tag: "Add", a: "one", b: 2 }),
          msgpackFrame({ _tag: "Add", a: 3, b: 4 })
        ])
        yield* a.end
        const seen: Array<Request> = []
        const error = yield* Protocol.attach(b, ServerP).messages.pipe(
          Stream.runForEach((m) => Effect.sync(() => seen.push(m))),
          Effect.flip
        )
        assert.deepStrictEqual(seen, [{ _tag: "Add", a: 1, b: 2 }])
        assert.strictEqual(error._tag, "MessageDecodeError")
        if (error._tag === "MessageDecodeError") {
          assert.isTrue(Schema.isSchemaError(error.cause))
          assert.include(error.message, "cannot decode a msgpack message")
        }
      }))

    it.effect("surface: a bad request is answered and the connection goes on", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { maxChunkSize: 2 } })
        yield* Effect.forkScoped(serveSurfacing(b))
        const connection = Protocol.attach(a, ClientP)
        yield* a.write(msgpackFrame({ _tag: "Nope" }))
        yield* connection.send({ _tag: "Add", a: 1, b: 1 })
        // Not MessagePack at all: a value followed by stray bytes.
        yield* a.write(Result.getOrThrow(Framing.encodeAll(framing, [new Uint8Array([0x01, 0xff, 0xff])])))
        yield* connection.send({ _tag: "Echo", text: "x" })
        yield* a.end
        const replies = yield* Stream.runCollect(connection.messages)
        assert.deepStrictEqual(replies.map((r) => r._tag), ["BadRequest", "Sum", "BadRequest", "Echoed"])
        assert.include(replies[0]!._tag === "BadRequest" ? replies[0]!.reason : "", "cannot decode a msgpack message")
      }))

    it.effect("framing errors fail the connection even when malformed messages are surfaced", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* a.write(msgpackFrame({ _tag: "Echo", text: "ok" }))
        yield* a.write(new Uint8Array([0, 0, 0x10, 0])) // announces 4096 bytes > maxFrameLength 1024
        const received: Array<unknown> = []
        const error = yield* Protocol.attach(b, SurfacingP).messages.pipe(
          Stream.runForEach((m) => Effect.sync(() => received.push(m))),
          Effect.flip
        )
        assert.strictEqual(received.length, 1)
        assert.strictEqual(error._tag, "FrameTooLarge")
      }))

    it.effect("EOF inside a frame is IncompleteFrame", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const whole = msgpackFrame({ _tag: "Echo", text: "cut short" })
        yield* a.write(whole.subarray(0, whole.length - 3))
        yield* a.end
        const error = yield* Effect.flip(Stream.runDrain(Protocol.attach(b, ServerP).messages))
        assert.strictEqual(error._tag, "IncompleteFrame")
      }))

    it.effect("a reset in the middle of a frame is ConnectionReset, after the whole messages", () =>
      Effect.gen(function*() {
        const first = msgpackFrame({ _tag: "Echo", text: "first" })
        const [a, b] = yield* MemorySocket.makePair({ aToB: { resetAfter: first.length + 5, maxChunkSize: 4 } })
        const error = yield* Effect.flip(Protocol.attach(a, ClientP).sendAll([
          { _tag: "Echo", text: "first" },
          { _tag: "Echo", text: "second" }
        ]))
        assert.strictEqual(error._tag, "ConnectionReset")
        const received: Array<Request> = []
        const readError = yield* Protocol.attach(b, ServerP).messages.pipe(
          Stream.runForEach((m) => Effect.sync(() => received.push(m))),
          Effect.flip
        )
        assert.deepStrictEqual(received, [{ _tag: "Echo", text: "first" }])
        assert.strictEqual(readError._tag, "ConnectionReset")
      }))
  })

  describe("sending", () => {
    it.effect("a message that does not encode, or a frame too large, sends nothing", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const connection = Protocol.attach(a, ClientP)
        const notInt = yield* Effect.flip(connection.sendAll([
          { _tag: "Echo", text: "fine" },
          { _tag: "Add", a: 1.5, b: 0 }
        ]))
        assert.strictEqual(notInt._tag, "MessageEncodeError")
        const tooLarge = yield* Effect.flip(connection.send({ _tag: "Echo", text: "x".repeat(2000) }))
        assert.strictEqual(tooLarge._tag, "FrameTooLarge")
        yield* a.end
        assert.strictEqual((yield* Stream.runCollect(b.reads)).length, 0)
      }))

    it("Protocol.encode gives the wire bytes of a batch", () => {
      const bytes = Result.getOrThrow(Protocol.encode(ClientP, [{ _tag: "Echo", text: "a" }, { _tag: "Echo", text: "b" }]))
      const frames = Result.getOrThrow(Framing.decodeAll(framing, bytes))
      assert.strictEqual(frames.length, 2)
      assert.deepStrictEqual(Result.getOrThrow(Message.msgpack(Request).decode(frames[1]!)), { _tag: "Echo", text: "b" })
    })
  })

  describe("client", () => {
    it.effect("a closed connection is NoResponse, for every later request too", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* Effect.forkScoped(Effect.andThen(
          Protocol.attach(b, ServerP).messages.pipe(Stream.take(1), Stream.runDrain),
          b.close
        ))
        const client = yield* Protocol.client(a, ClientP)
        const error = yield* Effect.flip(client.request({ _tag: "Echo", text: "hi" }))
        assert.strictEqual(error._tag, "NoResponse")
        assert.include(error.message, "memory:b closed the connection before answering")
        assert.strictEqual((yield* Effect.flip(client.request({ _tag: "Echo", text: "again" })))._tag, "BrokenPipe")
      }))

    it.effect("an interrupted request leaves its response for nobody: the next request gets its own", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const slow = Protocol.attach(b, ServerP)
        yield* slow.messages.pipe(
          Stream.mapEffect((r) => Effect.as(Effect.sleep("1 second"), answer(r))),
          Stream.run(slow.sends),
          Effect.forkScoped
        )
        const client = yield* Protocol.client(a, ClientP)
        const first = yield* Effect.forkChild(client.request({ _tag: "Echo", text: "one" }).pipe(Effect.timeout("500 millis")))
        yield* TestClock.adjust("500 millis")
        const firstExit = yield* Fiber.await(first)
        assert.isTrue(Exit.isFailure(firstExit))
        const second = yield* Effect.forkChild(client.request({ _tag: "Echo", text: "two" }))
        yield* TestClock.adjust("3 seconds")
        assert.deepStrictEqual(yield* Fiber.join(second), { _tag: "Echoed", text: "two" })
      }).pipe(Effect.scoped))

    it.effect("requests from many fibers take turns and each gets its own answer", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { maxChunkSize: 5 }, bToA: { maxChunkSize: 7 } })
        yield* Effect.forkScoped(serve(b))
        const client = yield* Protocol.client(a, ClientP)
        const results = yield* Effect.forEach(requests, (r) => client.request(r), { concurrency: 8 })
        assert.deepStrictEqual(results, requests.map(answer))
      }))
  })

  describe("over a real loopback socket", () => {
    it.live("request/response and a 1000-message batch over 127.0.0.1", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
        yield* listener.accept.pipe(
          Stream.runForEach((socket) => Effect.forkScoped(serve(socket))),
          Effect.forkScoped
        )
        const socket = yield* Socket.connect(listener.address)
        const client = yield* Protocol.client(socket, ClientP)
        for (const request of requests) {
          assert.deepStrictEqual(yield* client.request(request), answer(request))
        }
        // Sticky packets for real: one write of 1000 frames, answered in order.
        const batch = Array.from({ length: 1000 }, (_, i): Request => ({ _tag: "Add", a: i, b: 1 }))
        yield* client.connection.sendAll(batch)
        const answers = yield* client.connection.messages.pipe(Stream.take(1000), Stream.runCollect)
        assert.deepStrictEqual(answers, batch.map(answer))
      }), { timeout: 15_000 })

    it.live("surfaced bad requests over 127.0.0.1", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
        yield* listener.accept.pipe(
          Stream.runForEach((socket) => Effect.forkScoped(serveSurfacing(socket))),
          Effect.forkScoped
        )
        const socket = yield* Socket.connect(listener.address)
        const client = yield* Protocol.client(socket, ClientP)
        yield* socket.write(msgpackFrame({ _tag: "Add", a: "x", b: 1 }))
        const bad = yield* client.request({ _tag: "Echo", text: "next" })
        assert.strictEqual(bad._tag, "BadRequest")
        assert.include(bad._tag === "BadRequest" ? bad.reason : "", `["a"]`)
        assert.deepStrictEqual(yield* client.request({ _tag: "Echo", text: "next" }), { _tag: "Echoed", text: "next" })
      }), { timeout: 15_000 })
  })
})
