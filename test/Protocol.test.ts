import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { pipe } from "effect/Function"
import * as Logger from "effect/Logger"
import { pipeArguments } from "effect/Pipeable"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Message from "../src/Message.js"
import * as Protocol from "../src/Protocol.js"
import * as Server from "../src/Server.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { eventually } from "./helpers/sockets.js"

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

/**
 * A handler that waits on `gate` for the request `Echo "wait"` (telling `waiting` it does) and
 * answers every other request at once.
 */
const waitingAtGate = (gate: Deferred.Deferred<void>, waiting: Deferred.Deferred<void>) => (request: Request) =>
  request._tag === "Echo" && request.text === "wait"
    ? Effect.andThen(Deferred.succeed(waiting, undefined), Effect.as(Deferred.await(gate), answer(request)))
    : Effect.succeed(answer(request))

/**
 * Against a server answering with {@link waitingAtGate}: send "wait" and 8 MB behind it, check
 * (after `whileHeld`) that flow control holds the client's write back while the handler waits,
 * then open the gate and expect every reply, in order.
 */
const burstWhileWaiting = (
  address: Address.Address,
  gate: Deferred.Deferred<void>,
  waiting: Deferred.Deferred<void>,
  whileHeld: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function*() {
    const socket = yield* Socket.connect(address)
    const client = Protocol.attach(socket, ClientP)
    const replies = yield* Effect.forkScoped(Stream.runCollect(client.messages))
    const text = "x".repeat(900)
    const burst: ReadonlyArray<Request> = [
      { _tag: "Echo", text: "wait" },
      ...Array.from({ length: 9000 }, (_, i): Request => i % 10 === 0 ? { _tag: "Add", a: i, b: 0 } : { _tag: "Echo", text })
    ]
    const sent = yield* Effect.forkScoped(client.sendAll(burst))
    // The handler waits; give the burst time to fill every buffer on the way.
    yield* Deferred.await(waiting)
    yield* Effect.sleep("300 millis")
    yield* whileHeld
    assert.isUndefined(sent.pollUnsafe(), "the client's write is held back by flow control")
    yield* Deferred.succeed(gate, undefined)
    yield* Fiber.join(sent)
    yield* socket.end
    assert.deepStrictEqual(yield* Fiber.join(replies), burst.map(answer))
  })

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

  describe("serve", () => {
    /** A socket that counts the reads its user pulls and the batches it writes. */
    const observed = (socket: Socket.Socket) => {
      const counter = { reads: 0, writes: 0 }
      const wrapped: Socket.Socket = {
        [Socket.TypeId]: Socket.TypeId,
        localAddress: socket.localAddress,
        remoteAddress: socket.remoteAddress,
        reads: Stream.map(socket.reads, (bytes) => (counter.reads++, bytes)),
        write: (bytes) => Effect.suspend(() => (counter.writes++, socket.write(bytes))),
        writeAll: (chunks) => Effect.suspend(() => (counter.writes++, socket.writeAll(chunks))),
        writes: socket.writes,
        end: socket.end,
        reset: socket.reset,
        close: socket.close,
        pipe() {
          return pipeArguments(this, arguments)
        }
      }
      return [wrapped, counter] as const
    }

    /** Cuts every write at random places (seeded), so frames straddle reads and reads hold many frames. */
    const randomSplit = (seed: number) => {
      let state = seed
      const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648
      return (bytes: Uint8Array): ReadonlyArray<Uint8Array> => {
        const pieces: Array<Uint8Array> = []
        let at = 0
        while (at < bytes.length) {
          const size = 1 + Math.floor(random() * 300)
          pieces.push(bytes.subarray(at, at + size))
          at += size
        }
        return pieces
      }
    }

    const pipelined: ReadonlyArray<Request> = Array.from({ length: 1000 }, (_, i) =>
      i % 3 === 0 ? { _tag: "Echo", text: `r${i}` } : { _tag: "Add", a: i, b: -1 })

    /** Send `batch` in one write, half-close, and collect every reply until the server half-closes. */
    const exchange = (socket: Socket.Socket, batch: ReadonlyArray<Request>, p: Protocol.Protocol<Response, Request> = ClientP) =>
      Effect.gen(function*() {
        const connection = Protocol.attach(socket, p)
        const replies = yield* Effect.forkChild(Stream.runCollect(connection.messages), { startImmediately: true })
        yield* connection.sendAll(batch)
        yield* socket.end
        return yield* Fiber.join(replies)
      })

    const handlers = {
      "Effect.succeed": (request: Request) => Effect.succeed(answer(request)),
      "Effect.sync": (request: Request) => Effect.sync(() => answer(request)),
      "an async step": (request: Request) => Effect.as(Effect.yieldNow, answer(request))
    }

    for (const format of ["json", "msgpack"] as const) {
      for (const [kind, handler] of Object.entries(handlers)) {
        it.effect(`${format}, ${kind}: 1,000 pipelined requests cut at random are answered in order, then EOF half-closes`, () =>
          Effect.gen(function*() {
            const p = protocols(format)
            const [a, b] = yield* MemorySocket.makePair({ aToB: { split: randomSplit(7) }, bToA: { coalesce: true } })
            const [server, counter] = observed(b)
            const served = yield* Effect.forkChild(Protocol.serve(p.server, handler)(server), { startImmediately: true })
            const replies = yield* exchange(a, pipelined, p.client)
            assert.deepStrictEqual(replies, pipelined.map(answer))
            assert.isTrue(Exit.isSuccess(yield* Fiber.await(served)))
            // Several frames per read: one write per read that completed a frame, never one per request.
            assert.isAbove(counter.reads, 10)
            assert.isAtMost(counter.writes, counter.reads)
          }))
      }
    }

    it.effect("the requests of one read are answered with one write", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const [server, counter] = observed(b)
        yield* Effect.forkChild(Protocol.serve(ServerP, (r) => Effect.sync(() => answer(r)))(server), { startImmediately: true })
        const replies = yield* exchange(a, requests)
        assert.deepStrictEqual(replies, requests.map(answer))
        assert.strictEqual(counter.reads, 1)
        assert.strictEqual(counter.writes, 1)
      }))

    it.effect("large replies are written every 64 KiB, not held until the whole read is answered", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const [server, counter] = observed(b)
        yield* Effect.forkChild(Protocol.serve(ServerP, (r) => Effect.succeed(answer(r)))(server), { startImmediately: true })
        const batch = Array.from({ length: 200 }, (_, i): Request => ({ _tag: "Echo", text: `${i}`.padEnd(900, ".") }))
        assert.deepStrictEqual(yield* exchange(a, batch), batch.map(answer))
        assert.strictEqual(counter.reads, 1)
        // About 185 KB of replies: three writes at 64 KiB, the rest with the end of the read.
        assert.strictEqual(counter.writes, 3)
      }))

    it.effect("a handler that waits: replies stay in order and nothing more is read meanwhile", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const [server, counter] = observed(b)
        const gate = yield* Deferred.make<void>()
        const handler = (request: Request) =>
          request._tag === "Echo" && request.text === "wait"
            ? Effect.as(Deferred.await(gate), answer(request))
            : Effect.succeed(answer(request))
        yield* Effect.forkChild(Protocol.serve(ServerP, handler)(server), { startImmediately: true })
        const client = Protocol.attach(a, ClientP)
        const replies = yield* Effect.forkChild(Stream.runCollect(client.messages), { startImmediately: true })
        const first: Request = { _tag: "Echo", text: "wait" }
        yield* client.send(first)
        // Each of these is a read of its own: none may be pulled while the first request waits.
        for (const request of requests.slice(0, 5)) yield* client.send(request)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.strictEqual(counter.reads, 1)
        assert.strictEqual(counter.writes, 0)
        yield* Deferred.succeed(gate, undefined)
        yield* a.end
        assert.deepStrictEqual(yield* Fiber.join(replies), [first, ...requests.slice(0, 5)].map(answer))
        assert.strictEqual(counter.reads, 6)
      }))

    it.effect("the handler gets each request with the connection; a push goes out after the replies before it", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const handler = (request: Request, connection: Protocol.ServeConnection<Response>) =>
          request._tag === "Add" && request.a === 2
            ? Effect.as(connection.send({ _tag: "Echoed", text: `pushed to ${Address.format(connection.socket.remoteAddress)}` }), answer(request))
            : Effect.succeed(answer(request))
        yield* Effect.forkChild(Protocol.serve(ServerP, handler)(b), { startImmediately: true })
        const batch: ReadonlyArray<Request> = [1, 2, 3].map((a) => ({ _tag: "Add", a, b: 0 }))
        const replies = yield* exchange(a, batch)
        assert.deepStrictEqual(replies, [
          { _tag: "Sum", value: 1 },
          { _tag: "Echoed", text: `pushed to ${Address.format(a.localAddress)}` },
          { _tag: "Sum", value: 2 },
          { _tag: "Sum", value: 3 }
        ])
      }))

    it.effect("fail (default): a malformed message ends the connection with MessageDecodeError after answering the ones before", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const served = yield* Effect.forkChild(Protocol.serve(ServerP, (r) => Effect.succeed(answer(r)))(b), { startImmediately: true })
        yield* a.writeAll([
          msgpackFrame({ _tag: "Add", a: 1, b: 2 }),
          msgpackFrame({ _tag: "Add", a: "one", b: 2 }),
          msgpackFrame({ _tag: "Add", a: 3, b: 4 })
        ])
        const error = yield* Effect.flip(Fiber.join(served))
        assert.strictEqual(error._tag, "MessageDecodeError")
        assert.include(error.message, "cannot decode a msgpack message")
        yield* b.close
        assert.deepStrictEqual(yield* Stream.runCollect(Protocol.attach(a, ClientP).messages), [{ _tag: "Sum", value: 3 }])
      }))

    it.effect("surface: the handler answers a malformed message and the connection goes on", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { split: randomSplit(3) } })
        const handler = Result.match({
          onFailure: (error: Message.MessageDecodeError): Response => ({ _tag: "BadRequest", reason: error.message }),
          onSuccess: answer
        })
        const served = yield* Effect.forkChild(Protocol.serve(SurfacingP, (r) => Effect.succeed(handler(r)))(b), { startImmediately: true })
        const client = Protocol.attach(a, ClientP)
        const replies = yield* Effect.forkChild(Stream.runCollect(client.messages), { startImmediately: true })
        yield* a.write(msgpackFrame({ _tag: "Nope" }))
        yield* client.send({ _tag: "Add", a: 1, b: 1 })
        yield* a.write(Result.getOrThrow(Framing.encodeAll(framing, [new Uint8Array([0x01, 0xff, 0xff])])))
        yield* client.send({ _tag: "Echo", text: "x" })
        yield* a.end
        const got = yield* Fiber.join(replies)
        assert.deepStrictEqual(got.map((r) => r._tag), ["BadRequest", "Sum", "BadRequest", "Echoed"])
        assert.include(got[0]!._tag === "BadRequest" ? got[0]!.reason : "", "cannot decode a msgpack message")
        assert.isTrue(Exit.isSuccess(yield* Fiber.await(served)))
      }))

    it.effect("a frame error after valid frames: those are answered first, then the connection ends with it", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const served = yield* Effect.forkChild(Protocol.serve(SurfacingP, Result.match({
          onFailure: () => Effect.succeed<Response>({ _tag: "BadRequest", reason: "" }),
          onSuccess: (r) => Effect.succeed(answer(r))
        }))(b), { startImmediately: true })
        yield* a.writeAll([
          msgpackFrame({ _tag: "Echo", text: "one" }),
          msgpackFrame({ _tag: "Echo", text: "two" }),
          new Uint8Array([0, 0, 0x10, 0]) // announces 4096 bytes > maxFrameLength 1024
        ])
        const error = yield* Effect.flip(Fiber.join(served))
        assert.strictEqual(error._tag, "FrameTooLarge")
        yield* b.close
        assert.deepStrictEqual(yield* Stream.runCollect(Protocol.attach(a, ClientP).messages), [
          { _tag: "Echoed", text: "one" },
          { _tag: "Echoed", text: "two" }
        ])
      }))

    it.effect("EOF inside a frame: the whole requests are answered, then IncompleteFrame", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const served = yield* Effect.forkChild(Protocol.serve(ServerP, (r) => Effect.succeed(answer(r)))(b), { startImmediately: true })
        const whole = msgpackFrame({ _tag: "Echo", text: "whole" })
        const cut = msgpackFrame({ _tag: "Echo", text: "cut short" })
        yield* a.writeAll([whole, cut.subarray(0, cut.length - 3)])
        yield* a.end
        assert.strictEqual((yield* Effect.flip(Fiber.join(served)))._tag, "IncompleteFrame")
        yield* b.close
        assert.deepStrictEqual(yield* Stream.runCollect(Protocol.attach(a, ClientP).messages), [{ _tag: "Echoed", text: "whole" }])
      }))

    class Refused extends Data.TaggedError("Refused")<{ readonly a: number }> {
      override get message() {
        return `refused to add ${this.a}`
      }
    }

    it.effect("a reply that cannot be sent (not encodable, too large a frame) ends the connection after the replies before it", () =>
      Effect.gen(function*() {
        for (const [bad, tag] of [[{ _tag: "Sum", value: 1.5 }, "MessageEncodeError"], [{ _tag: "Echoed", text: "x".repeat(2000) }, "FrameTooLarge"]] as const) {
          const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
          const served = yield* Effect.forkChild(
            Protocol.serve(ServerP, (request) => Effect.succeed(request._tag === "Echo" && request.text === "bad" ? bad : answer(request)))(b),
            { startImmediately: true }
          )
          const replies = yield* Effect.forkChild(Stream.runCollect(Protocol.attach(a, ClientP).messages), { startImmediately: true })
          yield* Protocol.attach(a, ClientP).sendAll([{ _tag: "Echo", text: "ok" }, { _tag: "Echo", text: "bad" }, { _tag: "Echo", text: "late" }])
          assert.strictEqual((yield* Effect.flip(Fiber.join(served)))._tag, tag)
          yield* b.close
          assert.deepStrictEqual(yield* Fiber.join(replies), [{ _tag: "Echoed", text: "ok" }])
        }
      }))

    const failing = {
      "Effect.fail": (error: Refused) => Effect.fail(error),
      "Effect.suspend": (error: Refused) => Effect.suspend(() => Effect.fail(error)),
      "after an async step": (error: Refused) => Effect.andThen(Effect.yieldNow, Effect.fail(error))
    }
    for (const [kind, fail] of Object.entries(failing)) {
      it.effect(`a handler failure (${kind}) ends the connection with its typed error, after the replies before it; Server logs it once`, () =>
        Effect.gen(function*() {
          const lines: Array<string> = []
          const logger = Logger.make(({ message }) => void lines.push(Array.isArray(message) ? message.join(" ") : String(message)))
          const listener = yield* MemorySocket.listen()
          const server = yield* Server.fromListener(listener, {
            name: "kv",
            handler: Protocol.serve(ServerP, (request) =>
              request._tag === "Add" && request.a < 0 ? fail(new Refused({ a: request.a })) : Effect.sync(() => answer(request)))
          }).pipe(Effect.provide(Logger.layer([logger])))
          const socket = yield* listener.connect()
          const replies = yield* exchange(socket, [
            { _tag: "Add", a: 1, b: 1 },
            { _tag: "Echo", text: "two" },
            { _tag: "Add", a: -3, b: 1 },
            { _tag: "Add", a: 4, b: 1 }
          ])
          assert.deepStrictEqual(replies, [{ _tag: "Sum", value: 2 }, { _tag: "Echoed", text: "two" }])
          for (let i = 0; i < 20 && (yield* server.stats).failed === 0; i++) yield* Effect.yieldNow
          assert.strictEqual((yield* server.stats).failed, 1)
          assert.deepStrictEqual(lines.filter((line) => line.includes("Refused")).length, 1, JSON.stringify(lines))
          assert.isTrue(lines.some((line) => line.includes("Refused: refused to add -3")), JSON.stringify(lines))
        }))
    }

    it.effect("serveStream: each request's responses come in order, before the next request's", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { split: randomSplit(11) } })
        const served = yield* Effect.forkChild(
          Protocol.serveStream(ServerP, (request) =>
            request._tag === "Add"
              ? Stream.range(1, request.a).pipe(Stream.map((n): Response => ({ _tag: "Sum", value: n + request.b })))
              : Stream.fromEffect(Effect.as(Effect.yieldNow, answer(request))))(b),
          { startImmediately: true }
        )
        const batch: ReadonlyArray<Request> = [
          { _tag: "Add", a: 3, b: 0 },
          { _tag: "Echo", text: "between" },
          { _tag: "Add", a: 0, b: 0 },
          { _tag: "Add", a: 2, b: 10 }
        ]
        assert.deepStrictEqual(yield* exchange(a, batch), [
          { _tag: "Sum", value: 1 },
          { _tag: "Sum", value: 2 },
          { _tag: "Sum", value: 3 },
          { _tag: "Echoed", text: "between" },
          { _tag: "Sum", value: 11 },
          { _tag: "Sum", value: 12 }
        ])
        assert.isTrue(Exit.isSuccess(yield* Fiber.await(served)))
      }))

    it.effect("serveStream: the responses of one read leave as one write; a stream that waits sends what it has first", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const [server, counter] = observed(b)
        const gate = yield* Deferred.make<void>()
        yield* Effect.forkChild(
          Protocol.serveStream(ServerP, (request): Stream.Stream<Response> =>
            request._tag === "Echo" && request.text === "wait"
              ? Stream.concat(
                Stream.make({ _tag: "Echoed", text: "before" } as Response),
                Stream.fromEffect(Effect.as(Deferred.await(gate), { _tag: "Echoed", text: "after" } as Response))
              )
              : Stream.make(answer(request), answer(request)))(server),
          { startImmediately: true }
        )
        const client = Protocol.attach(a, ClientP)
        const replies = yield* Effect.forkChild(Stream.runCollect(client.messages), { startImmediately: true })
        yield* client.sendAll(requests.slice(0, 5))
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.deepStrictEqual([counter.reads, counter.writes], [1, 1])
        yield* client.send({ _tag: "Echo", text: "wait" })
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        // "before" is out while the stream waits for "after".
        assert.deepStrictEqual([counter.reads, counter.writes], [2, 2])
        yield* Deferred.succeed(gate, undefined)
        yield* a.end
        assert.deepStrictEqual(yield* Fiber.join(replies), [
          ...requests.slice(0, 5).flatMap((r) => [answer(r), answer(r)]),
          { _tag: "Echoed", text: "before" },
          { _tag: "Echoed", text: "after" }
        ])
      }))

    it.live("over 127.0.0.1 with Server.layer: pipelined requests in order, then half-close", () =>
      Effect.gen(function*() {
        const server = yield* Server.make({
          address: Address.tcp("127.0.0.1", 0),
          handler: Protocol.serve(ServerP, (r) => Effect.succeed(answer(r)))
        })
        const socket = yield* Socket.connect(server.address)
        const client = yield* Protocol.client(socket, ClientP)
        for (const request of requests) assert.deepStrictEqual(yield* client.request(request), answer(request))
        const batch = Array.from({ length: 5000 }, (_, i): Request => ({ _tag: "Add", a: i, b: 1 }))
        yield* client.connection.sendAll(batch)
        yield* socket.end
        assert.deepStrictEqual(yield* Stream.runCollect(client.connection.messages), batch.map(answer))
        assert.strictEqual((yield* server.stats).failed, 0)
      }), { timeout: 15_000 })

    // Wrapped, the socket is served on the generic path, where reads can be counted; as accepted, in Node's callbacks.
    for (const counted of [true, false]) {
      it.live(`over 127.0.0.1${counted ? ", reads counted" : ""}: a handler that waits pauses reading; a burst of 8 MB waits in bounded buffers, then is answered in order`, () =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          const waiting = yield* Deferred.make<void>()
          const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
          const counter = yield* Deferred.make<{ readonly reads: number; readonly writes: number }>()
          yield* listener.accept.pipe(
            Stream.take(1),
            Stream.runForEach((socket) => {
              const [server, counts] = counted ? observed(socket) : [socket, { reads: 1, writes: 0 }] as const
              return Effect.andThen(
                Deferred.succeed(counter, counts),
                Effect.forkScoped(Protocol.serve(ServerP, waitingAtGate(gate, waiting))(server))
              )
            }),
            Effect.forkScoped
          )
          yield* burstWhileWaiting(
            listener.address,
            gate,
            waiting,
            // The server took one read and waits; the rest of the burst sits in bounded buffers.
            Effect.map(Deferred.await(counter), (counts) => {
              assert.strictEqual(counts.reads, 1)
              assert.strictEqual(counts.writes, 0)
            })
          )
        }), { timeout: 30_000 })
    }

    it.live("draining: the request in hand is answered, then the connection half-closes and counts as finished", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const scope = yield* Scope.make()
        const server = yield* Server.make({
          address: Address.tcp("127.0.0.1", 0),
          shutdownTimeout: "5 seconds",
          handler: Protocol.serve(ServerP, (request) =>
            Effect.andThen(Deferred.succeed(started, undefined), Effect.as(Deferred.await(gate), answer(request))))
        }).pipe(Scope.provide(scope))
        const socket = yield* Socket.connect(server.address)
        const client = Protocol.attach(socket, ClientP)
        const replies = yield* Effect.forkScoped(Stream.runCollect(client.messages))
        yield* client.send({ _tag: "Echo", text: "in hand" })
        yield* Deferred.await(started)
        const closing = yield* Effect.forkScoped(Scope.close(scope, Exit.void))
        yield* Effect.sleep("100 millis")
        yield* Deferred.succeed(gate, undefined)
        // The server half-closes after the reply: the client's stream ends without our own end.
        assert.deepStrictEqual(yield* Fiber.join(replies), [{ _tag: "Echoed", text: "in hand" }])
        yield* Fiber.join(closing)
        assert.deepStrictEqual(yield* server.shutdown, { finished: 1, cut: 0 })
      }), { timeout: 15_000 })

    it.live("draining: an idle connection half-closes at once instead of waiting for the shutdown timeout", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Server.make({
          address: Address.tcp("127.0.0.1", 0),
          shutdownTimeout: "20 seconds",
          handler: Protocol.serve(ServerP, (request) => Effect.succeed(answer(request)))
        }).pipe(Scope.provide(scope))
        const socket = yield* Socket.connect(server.address)
        const client = yield* Protocol.client(socket, ClientP)
        assert.deepStrictEqual(yield* client.request({ _tag: "Echo", text: "hi" }), { _tag: "Echoed", text: "hi" })
        const started = Date.now()
        yield* Scope.close(scope, Exit.void)
        assert.isBelow(Date.now() - started, 5_000)
        assert.deepStrictEqual(yield* server.shutdown, { finished: 1, cut: 0 })
        // The server half-closed: the client reads EOF.
        assert.deepStrictEqual(yield* Stream.runCollect(socket.reads), [])
      }), { timeout: 30_000 })
  })
})

// On a node:net Server, Protocol.serve runs in Node's callbacks with no fiber per connection; a handler
// that waits parks the connection in a fiber of its own, and the pump goes on once it is done.
describe("Protocol.serve on a Server: handlers that wait (parks)", () => {
  const serveWith = (handler: (request: Request) => Effect.Effect<Response>, options: Partial<Server.Options<unknown, never>> = {}) =>
    Server.make({ address: Address.tcp("127.0.0.1", 0), shutdownTimeout: "5 seconds", ...options, handler: Protocol.serve(ServerP, handler) })

  it.live("every kind of wait (Effect.sleep, a Deferred, yieldNow, a forked fiber) among synchronous answers: 3000 pipelined requests answered in order", () =>
    Effect.gen(function*() {
      const ready = yield* Deferred.make<void>()
      yield* Effect.forkScoped(Effect.andThen(Effect.sleep("20 millis"), Deferred.succeed(ready, undefined)))
      const server = yield* serveWith((request) => {
        const n = request._tag === "Add" ? request.a : 0
        switch (n % 5) {
          case 1:
            return Effect.as(Effect.sleep("1 millis"), answer(request))
          case 2:
            return Effect.as(Deferred.await(ready), answer(request))
          case 3:
            return Effect.as(Effect.yieldNow, answer(request))
          case 4:
            return Effect.map(Effect.forkChild(Effect.succeed(answer(request))), () => answer(request))
          default:
            return Effect.succeed(answer(request))
        }
      })
      const socket = yield* Socket.connect(server.address)
      const client = Protocol.attach(socket, ClientP)
      const replies = yield* Effect.forkScoped(Stream.runCollect(client.messages))
      const batch = Array.from({ length: 3000 }, (_, i): Request => ({ _tag: "Add", a: i, b: 1 }))
      // In pieces, so that reads hold several requests and some arrive while a handler waits.
      for (let i = 0; i < batch.length; i += 100) yield* client.sendAll(batch.slice(i, i + 100))
      yield* socket.end
      assert.deepStrictEqual(yield* Fiber.join(replies), batch.map(answer))
      const stats = yield* server.stats
      assert.strictEqual(stats.failed, 0)
      assert.strictEqual(stats.completed, 1)
    }), { timeout: 30_000 })

  it.live("a handler that always waits a turn of the event loop: 2000 requests of 600 B written at once, every reply in order (reads queued while parked are kept)", () =>
    Effect.gen(function*() {
      const nextTurn = <A>(value: A) => Effect.callback<A>((resume) => void setImmediate(() => resume(Effect.succeed(value))))
      const server = yield* serveWith((request) => nextTurn(answer(request)))
      const socket = yield* Socket.connect(server.address)
      const client = Protocol.attach(socket, ClientP)
      const replies = yield* Effect.forkScoped(Stream.runCollect(client.messages))
      const batch = Array.from({ length: 2000 }, (_, i): Request => ({ _tag: "Echo", text: `${i}:${"y".repeat(600)}` }))
      yield* client.sendAll(batch)
      yield* socket.end
      assert.deepStrictEqual(yield* Fiber.join(replies), batch.map(answer))
      assert.strictEqual((yield* server.stats).failed, 0)
    }), { timeout: 30_000 })

  it.live("while a handler waits, reading pauses: a burst of 8 MB is held back by flow control, then answered in order", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const waiting = yield* Deferred.make<void>()
      const server = yield* serveWith(waitingAtGate(gate, waiting))
      yield* burstWhileWaiting(server.address, gate, waiting)
    }), { timeout: 30_000 })

  it.live("a handler's Scope lives as long as its connection: finalizers run when the connection ends, once", () =>
    Effect.gen(function*() {
      let opened = 0
      let closed = 0
      const server = yield* Server.make({
        address: Address.tcp("127.0.0.1", 0),
        handler: Protocol.serve(ServerP, (request: Request) =>
          Effect.gen(function*() {
            yield* Effect.acquireRelease(Effect.sync(() => opened++), () => Effect.sync(() => closed++))
            return answer(request)
          }))
      })
      const socket = yield* Socket.connect(server.address)
      const client = yield* Protocol.client(socket, ClientP)
      assert.deepStrictEqual(yield* client.request({ _tag: "Echo", text: "a" }), { _tag: "Echoed", text: "a" })
      assert.deepStrictEqual(yield* client.request({ _tag: "Echo", text: "b" }), { _tag: "Echoed", text: "b" })
      assert.strictEqual(opened, 2)
      assert.strictEqual(closed, 0, "the connection's scope is still open")
      yield* socket.end
      yield* eventually("both finalizers ran", Effect.sync(() => closed), (n) => n === 2)
      assert.strictEqual(closed, 2)
      assert.strictEqual((yield* server.stats).completed, 1)
    }), { timeout: 15_000 })

  it.live("a handler that fails while parked ends its connection after the replies before it; the server goes on", () =>
    Effect.gen(function*() {
      class Boom extends Data.TaggedError("Boom")<{}> {}
      const server = yield* Server.make({
        address: Address.tcp("127.0.0.1", 0),
        logLevel: "None",
        handler: Protocol.serve(ServerP, (request: Request) =>
          request._tag === "Echo" && request.text === "boom"
            ? Effect.andThen(Effect.sleep("5 millis"), Effect.fail(new Boom()))
            : Effect.as(Effect.yieldNow, answer(request)))
      })
      const socket = yield* Socket.connect(server.address)
      const client = Protocol.attach(socket, ClientP)
      const replies = yield* Effect.forkScoped(Stream.runCollect(client.messages))
      yield* client.sendAll([{ _tag: "Echo", text: "one" }, { _tag: "Echo", text: "boom" }, { _tag: "Echo", text: "never" }])
      assert.deepStrictEqual(yield* Fiber.join(replies), [{ _tag: "Echoed", text: "one" }])
      assert.strictEqual((yield* eventually("the failure counted", server.stats, (stats) => stats.failed === 1)).failed, 1)
      // A new connection is served as before.
      const again = yield* Protocol.client(yield* Socket.connect(server.address), ClientP)
      assert.deepStrictEqual(yield* again.request({ _tag: "Add", a: 2, b: 3 }), answer({ _tag: "Add", a: 2, b: 3 }))
    }), { timeout: 15_000 })

  it.live("a peer that resets while its handler waits interrupts the handler at once (its finalizers run); counted as failed", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      let released = 0
      const server = yield* Server.make({
        address: Address.tcp("127.0.0.1", 0),
        logLevel: "None",
        handler: Protocol.serve(ServerP, (_request: Request) =>
          Effect.gen(function*() {
            yield* Effect.addFinalizer(() => Effect.sync(() => released++))
            yield* Deferred.succeed(started, undefined)
            return yield* Effect.never
          }))
      })
      const socket = yield* Socket.connect(server.address)
      yield* Protocol.attach(socket, ClientP).send({ _tag: "Echo", text: "forever" })
      yield* Deferred.await(started)
      yield* socket.reset
      const stats = yield* eventually("the connection ended", server.stats, (s) => s.active === 0)
      assert.strictEqual(stats.failed, 1)
      yield* eventually("the finalizer ran", Effect.sync(() => released), (n) => n === 1)
      assert.strictEqual(released, 1)
    }), { timeout: 15_000 })

  it.live("draining cuts a connection parked past shutdownTimeout: counted as cut, its scope closed", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      let released = 0
      const scope = yield* Scope.make()
      const server = yield* Server.make({
        address: Address.tcp("127.0.0.1", 0),
        shutdownTimeout: "200 millis",
        handler: Protocol.serve(ServerP, (_request: Request) =>
          Effect.gen(function*() {
            yield* Effect.addFinalizer(() => Effect.sync(() => released++))
            yield* Deferred.succeed(started, undefined)
            return yield* Effect.never
          }))
      }).pipe(Scope.provide(scope))
      const socket = yield* Socket.connect(server.address)
      const client = Protocol.attach(socket, ClientP)
      yield* client.send({ _tag: "Echo", text: "forever" })
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* server.shutdown, { finished: 0, cut: 1 })
      yield* eventually("the finalizer ran", Effect.sync(() => released), (n) => n === 1)
      assert.strictEqual(released, 1)
      // The client sees the connection end with no reply.
      assert.deepStrictEqual(yield* Stream.runCollect(Stream.catch(client.messages, () => Stream.empty)), [])
    }), { timeout: 15_000 })
})

describe("Protocol.serve: frameTimeout and requestTimeout", () => {
  /** The wire bytes of requests, as the client sends them. */
  const wire = (batch: ReadonlyArray<Request>): Uint8Array => Buffer.concat(Result.getOrThrow(Protocol.encode(ClientP, batch)))

  /** The typed failure a connection ended with. */
  const failureOf = (exit: Exit.Exit<void, unknown>): unknown => {
    assert.isTrue(Exit.isFailure(exit), String(exit))
    const error = Cause.findErrorOption((exit as Exit.Failure<void, unknown>).cause)
    assert.isTrue(error._tag === "Some", String(exit))
    return (error as { readonly value: unknown }).value
  }

  const handlers = {
    "Effect.succeed": (request: Request) => Effect.succeed(answer(request)),
    "an async step": (request: Request) => Effect.as(Effect.yieldNow, answer(request))
  }

  for (const [kind, handler] of Object.entries(handlers)) {
    it.effect(`frameTimeout (${kind}): a frame dribbled a byte a second is cut at the deadline with FrameTimeout, after the requests before it are answered`, () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const served = yield* Effect.forkChild(Protocol.serve(ServerP, handler, { frameTimeout: "3 seconds" })(b), { startImmediately: true })
        const client = Protocol.attach(a, ClientP)
        const replies = yield* Effect.forkChild(Stream.runCollect(client.messages), { startImmediately: true })
        // A whole request; then 10 s without a byte: no deadline runs between frames.
        yield* client.send({ _tag: "Echo", text: "first" })
        yield* TestClock.adjust("10 seconds")
        assert.isUndefined(served.pollUnsafe(), "no frame in progress, nothing cut")
        // A whole request and the first byte of the next in one write, then a byte a second.
        const next = wire([{ _tag: "Echo", text: "twenty-eight bytes of a body" }])
        yield* a.write(Buffer.concat([wire([{ _tag: "Add", a: 1, b: 2 }]), next.subarray(0, 1)]))
        let sent = 1
        yield* TestClock.adjust("1 second")
        while (served.pollUnsafe() === undefined && sent < next.length) {
          yield* a.write(next.subarray(sent, sent + 1))
          sent++
          yield* TestClock.adjust("1 second")
        }
        const timeout = failureOf(yield* Fiber.await(served))
        assert.instanceOf(timeout, Framing.FrameTimeout)
        // A read handed over to a handler that waits is not the peer's time: the frame begun in it starts its clock at the next read.
        const cutAt = kind === "an async step" ? 4 : 3
        assert.strictEqual(sent, cutAt, "cut when the third second of the frame's clock ran out")
        assert.strictEqual((timeout as Framing.FrameTimeout).received, cutAt)
        assert.strictEqual(Duration.toMillis((timeout as Framing.FrameTimeout).limit), 3000)
        yield* b.close
        assert.deepStrictEqual(yield* Fiber.join(replies), [{ _tag: "Echoed", text: "first" }, { _tag: "Sum", value: 3 }])
      }))
  }

  it.effect("frameTimeout: complete frames, each taking less than the limit, are never cut over many times the limit", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemorySocket.makePair()
      const served = yield* Effect.forkChild(
        Protocol.serve(ServerP, (r) => Effect.as(Effect.yieldNow, answer(r)), { frameTimeout: "3 seconds" })(b),
        { startImmediately: true }
      )
      const client = Protocol.attach(a, ClientP)
      const pull = yield* Stream.toPull(client.messages)
      for (let i = 0; i < 30; i++) {
        // Each request in two halves 2 s apart: within the limit, 60 s in all.
        const whole = wire([{ _tag: "Add", a: i, b: 1 }])
        yield* a.write(whole.subarray(0, 5))
        yield* TestClock.adjust("2 seconds")
        yield* a.write(whole.subarray(5))
        assert.deepStrictEqual(yield* pull, [{ _tag: "Sum", value: i + 1 }], `request ${i}`)
      }
      yield* a.end
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(served)))
    }))

  it.live("frameTimeout over 127.0.0.1: a client dribbling a frame is cut at the deadline, which the idle timeout never would", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: Address.tcp("127.0.0.1", 0),
        idleTimeout: "1 second",
        handler: Protocol.serve(ServerP, (r) => Effect.succeed(answer(r)), { frameTimeout: "300 millis" })
      })
      const slow = yield* Socket.connect(server.address)
      const connection = Protocol.attach(slow, ClientP)
      const replies = yield* Effect.forkChild(Effect.result(Stream.runCollect(connection.messages)), { startImmediately: true })
      const started = Date.now()
      // An answered request, then one byte every 50 ms: the next frame would take 2 s, and bytes keep moving.
      const frame = wire([{ _tag: "Echo", text: "a body of some forty bytes, sent slowly" }])
      yield* connection.send({ _tag: "Add", a: 2, b: 2 })
      yield* Effect.forkChild(Effect.ignore(Effect.gen(function*() {
        for (let i = 0; i < frame.length; i++) {
          if (i > 0) yield* Effect.sleep("50 millis")
          yield* slow.write(frame.subarray(i, i + 1))
        }
      })))
      // The server's close: EOF, or a reset when a byte of ours arrived after it.
      const end = yield* Fiber.join(replies)
      const took = Date.now() - started
      if (end._tag === "Success") assert.deepStrictEqual(end.success, [{ _tag: "Sum", value: 4 }])
      else assert.strictEqual(end.failure._tag, "ConnectionReset")
      assert.isAtLeast(took, 290)
      assert.isBelow(took, 1500)
      yield* eventually("failed connections", Effect.map(server.stats, (s) => s.failed), (n) => n === 1)
      // A client that sends whole frames is served as ever.
      const other = yield* Protocol.client(yield* Socket.connect(server.address), ClientP)
      assert.deepStrictEqual(yield* other.request({ _tag: "Echo", text: "on time" }), { _tag: "Echoed", text: "on time" })
    }), { timeout: 15_000 })

  const slowHandlers = {
    serve: Protocol.serve(ServerP, (request) =>
      request._tag === "Echo" && request.text === "slow"
        ? Effect.as(Effect.sleep("10 seconds"), answer(request))
        : Effect.succeed(answer(request)), { requestTimeout: "2 seconds" }),
    serveStream: Protocol.serveStream(ServerP, (request): Stream.Stream<Response> =>
      request._tag === "Echo" && request.text === "slow"
        ? Stream.concat(Stream.make({ _tag: "Echoed", text: "started" } as Response), Stream.fromEffect(Effect.as(Effect.sleep("10 seconds"), answer(request))))
        : Stream.make(answer(request)), { requestTimeout: "2 seconds" })
  }
  for (const [kind, handler] of Object.entries(slowHandlers)) {
    it.effect(`requestTimeout (${kind}): a handler that takes longer ends the connection with HandlerTimeout, after the replies before it`, () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        const served = yield* Effect.forkChild(handler(b), { startImmediately: true })
        const client = Protocol.attach(a, ClientP)
        const replies = yield* Effect.forkChild(Stream.runCollect(client.messages), { startImmediately: true })
        yield* client.sendAll([
          { _tag: "Add", a: 1, b: 1 },
          { _tag: "Echo", text: "two" },
          { _tag: "Echo", text: "slow" },
          { _tag: "Add", a: 4, b: 1 }
        ])
        yield* TestClock.adjust("1999 millis")
        assert.isUndefined(served.pollUnsafe(), "within the limit")
        yield* TestClock.adjust("1 millis")
        const timeout = failureOf(yield* Fiber.await(served))
        assert.instanceOf(timeout, Protocol.HandlerTimeout)
        assert.strictEqual((timeout as Protocol.HandlerTimeout)._tag, "HandlerTimeout")
        assert.strictEqual(Duration.toMillis((timeout as Protocol.HandlerTimeout).limit), 2000)
        assert.include((timeout as Protocol.HandlerTimeout).message, "2s")
        yield* b.close
        const expected: Array<Response> = [{ _tag: "Sum", value: 2 }, { _tag: "Echoed", text: "two" }]
        if (kind === "serveStream") expected.push({ _tag: "Echoed", text: "started" })
        assert.deepStrictEqual(yield* Fiber.join(replies), expected)
      }))
  }

  it.effect("requestTimeout: handlers faster than the limit are never cut, however long the connection lasts", () =>
    Effect.gen(function*() {
      const [a, b] = yield* MemorySocket.makePair()
      const served = yield* Effect.forkChild(
        Protocol.serve(ServerP, (r) => r._tag === "Add" ? Effect.as(Effect.sleep("1500 millis"), answer(r)) : Effect.succeed(answer(r)), {
          requestTimeout: "2 seconds"
        })(b),
        { startImmediately: true }
      )
      const client = Protocol.attach(a, ClientP)
      const pull = yield* Stream.toPull(client.messages)
      for (let i = 0; i < 20; i++) {
        yield* client.sendAll([{ _tag: "Add", a: i, b: 0 }, { _tag: "Echo", text: `${i}` }])
        yield* TestClock.adjust("1500 millis")
        const got: Array<Response> = []
        while (got.length < 2) got.push(...(yield* pull))
        assert.deepStrictEqual(got, [{ _tag: "Sum", value: i }, { _tag: "Echoed", text: `${i}` }])
      }
      yield* a.end
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(served)))
    }))

  it.live("requestTimeout over 127.0.0.1: the connection ends at the limit, the earlier reply arrives, Server counts it failed", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: Address.tcp("127.0.0.1", 0),
        handler: Protocol.serve(ServerP, (request) =>
          request._tag === "Echo" && request.text === "slow"
            ? Effect.as(Effect.sleep("10 seconds"), answer(request))
            : Effect.succeed(answer(request)), { requestTimeout: "200 millis" })
      })
      const socket = yield* Socket.connect(server.address)
      const connection = Protocol.attach(socket, ClientP)
      const replies = yield* Effect.forkChild(Stream.runCollect(connection.messages), { startImmediately: true })
      const started = Date.now()
      yield* connection.sendAll([{ _tag: "Echo", text: "one" }, { _tag: "Echo", text: "slow" }])
      assert.deepStrictEqual(yield* Fiber.join(replies), [{ _tag: "Echoed", text: "one" }])
      const took = Date.now() - started
      assert.isAtLeast(took, 190)
      assert.isBelow(took, 5000)
      yield* eventually("failed connections", Effect.map(server.stats, (s) => s.failed), (n) => n === 1)
    }), { timeout: 15_000 })

  it("an invalid frameTimeout or requestTimeout is a defect naming it; Duration.infinity means none", () => {
    const h = (r: Request) => Effect.succeed(answer(r))
    assert.throws(() => Protocol.serve(ServerP, h, { frameTimeout: 0 }), /Protocol.serve: frameTimeout must be above 0/)
    assert.throws(() => Protocol.serve(ServerP, h, { requestTimeout: 0 }), /Protocol.serve: requestTimeout must be above 0/)
    assert.throws(() => Protocol.serve(ServerP, h, { requestTimeout: "soon" as never }), /Protocol.serve: requestTimeout must be a duration/)
    assert.throws(
      () => Protocol.serveStream(ServerP, (r: Request) => Stream.make(answer(r)), { frameTimeout: "-1 second" }),
      /Protocol.serveStream: frameTimeout must be above 0/
    )
    assert.doesNotThrow(() => Protocol.serve(ServerP, h, { frameTimeout: Duration.infinity, requestTimeout: Duration.infinity }))
  })
})
