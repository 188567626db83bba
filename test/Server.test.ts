import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as Server from "../src/Server.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"

const loopback = Address.tcp("127.0.0.1", 0)
const encoder = new TextEncoder()
const decoder = new TextDecoder()

const echo = (socket: Socket.Socket) => Stream.run(socket.reads, socket.writes)

const readAll = (socket: Socket.Socket) =>
  Stream.runCollect(socket.reads).pipe(
    Effect.map((chunks) => decoder.decode(Buffer.concat(chunks)))
  )

/** Connect, send `text`, half-close, and read the whole reply. */
const roundTrip = (address: Address.Address, text: string) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* Socket.connect(address)
    yield* socket.write(encoder.encode(text))
    yield* socket.end
    return yield* readAll(socket)
  }))

describe("Server", () => {
  it.live("listens when built and serves each connection", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ address: loopback, handler: echo })
      assert.strictEqual(server.address._tag, "TcpAddress")
      assert.notStrictEqual((server.address as Address.TcpAddress).port, 0)
      const replies = yield* Effect.all(
        Array.from({ length: 20 }, (_, i) => roundTrip(server.address, `hello ${i}`)),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(replies, Array.from({ length: 20 }, (_, i) => `hello ${i}`))
      const stats = yield* server.stats
      assert.strictEqual(stats.accepted, 20)
    }))

  it.live("fails to build with AddressInUse when the port is taken", () =>
    Effect.scoped(Effect.gen(function*() {
      const first = yield* Server.make({ address: loopback, handler: echo })
      const error = yield* Effect.flip(Effect.scoped(Server.make({ address: first.address, handler: echo })))
      assert.strictEqual(error._tag, "AddressInUse")
      assert.include(error.message, "already in use (EADDRINUSE)")
    })))

  it.live("a failing handler ends only its own connection", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: loopback,
        handler: (socket) =>
          Effect.gen(function*() {
            const first = yield* Stream.runHead(socket.reads)
            if (first._tag === "Some" && decoder.decode(first.value).startsWith("boom")) {
              return yield* Effect.fail(new Error("handler refused the request"))
            }
            yield* socket.write(encoder.encode("ok"))
          })
      })
      const bad = yield* roundTrip(server.address, "boom")
      assert.strictEqual(bad, "")
      const good = yield* roundTrip(server.address, "fine")
      assert.strictEqual(good, "ok")
      const stats = yield* server.stats
      assert.strictEqual(stats.failed, 1)
      assert.strictEqual(stats.completed, 1)
    }))

  it.live("queues connections past maxConnections until a slot frees", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ address: loopback, handler: echo, maxConnections: 1 })
      const scopeA = yield* Scope.make()
      const a = yield* Socket.connect(server.address).pipe(Scope.provide(scopeA))
      yield* a.write(encoder.encode("a"))
      // The first connection is being served: its echo proves it.
      const echoed = yield* Stream.runHead(a.reads)
      assert.strictEqual(echoed._tag === "Some" ? decoder.decode(echoed.value) : "", "a")
      // The second one connects (kernel backlog) but is not served while the first is open.
      const b = yield* Effect.forkChild(roundTrip(server.address, "b"))
      const early = yield* Fiber.join(b).pipe(Effect.timeoutOption("300 millis"))
      assert.strictEqual(early._tag, "None")
      assert.strictEqual((yield* server.stats).active, 1)
      yield* Scope.close(scopeA, Exit.void)
      assert.strictEqual(yield* Fiber.join(b), "b")
    }))

  it.live("refuses connections past maxConnections with overflow: refuse", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: loopback,
        handler: echo,
        maxConnections: 1,
        overflow: "refuse"
      })
      const a = yield* Socket.connect(server.address)
      yield* a.write(encoder.encode("a"))
      yield* Stream.runHead(a.reads)
      const refused = yield* roundTrip(server.address, "b").pipe(Effect.result)
      // Refused: closed without an answer (EOF, or a reset if our bytes arrived after the close).
      if (refused._tag === "Success") assert.strictEqual(refused.success, "")
      else assert.strictEqual(refused.failure._tag, "ConnectionReset")
      assert.strictEqual((yield* server.stats).refused, 1)
    }))

  it.live("drains on release: a request in flight finishes, a stuck one is cut after shutdownTimeout", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      const server = yield* Server.make({
        address: loopback,
        shutdownTimeout: "500 millis",
        handler: (socket, connection) =>
          Effect.gen(function*() {
            const request = yield* Stream.runHead(socket.reads)
            const text = request._tag === "Some" ? decoder.decode(request.value) : ""
            yield* Deferred.succeed(started, void 0)
            if (text === "stuck") return yield* Effect.never
            // Finish the request in hand once draining begins.
            yield* connection.draining
            yield* socket.write(encoder.encode(`done ${text}`))
          })
      }).pipe(Scope.provide(scope))
      const client = Effect.scoped(Effect.gen(function*() {
        const socket = yield* Socket.connect(server.address)
        yield* socket.write(encoder.encode("work"))
        return yield* readAll(socket)
      }))
      const inFlight = yield* Effect.forkChild(client)
      yield* Deferred.await(started)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Fiber.join(inFlight), "done work")
      assert.deepStrictEqual(yield* server.shutdown, { finished: 1, cut: 0 })

      const started2 = yield* Deferred.make<void>()
      const scope2 = yield* Scope.make()
      const server2 = yield* Server.make({
        address: loopback,
        shutdownTimeout: "200 millis",
        handler: (socket) =>
          Stream.runHead(socket.reads).pipe(Effect.andThen(Deferred.succeed(started2, void 0)), Effect.andThen(Effect.never))
      }).pipe(Scope.provide(scope2))
      const stuck = yield* Effect.forkChild(Effect.scoped(Effect.gen(function*() {
        const socket = yield* Socket.connect(server2.address)
        yield* socket.write(encoder.encode("stuck"))
        return yield* readAll(socket)
      })))
      yield* Deferred.await(started2)
      const before = Date.now()
      yield* Scope.close(scope2, Exit.void)
      const took = Date.now() - before
      assert.isAtLeast(took, 150)
      assert.isBelow(took, 5_000)
      assert.deepStrictEqual(yield* server2.shutdown, { finished: 0, cut: 1 })
      // The cut connection is closed, so its client sees the end.
      assert.strictEqual(yield* Fiber.join(stuck), "")
    }))

  it.live("stops accepting at once when shutdown begins", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Server.make({ address: loopback, handler: echo }).pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(roundTrip(server.address, "late"))
      assert.strictEqual(error._tag, "ConnectionRefused")
    }))

  it.live("several servers compose as layers, each with its own address", () =>
    Effect.gen(function*() {
      class A extends Context.Service<A, Server.RunningServer>()("test/Upper") {}
      const upper = (socket: Socket.Socket) =>
        Stream.run(
          socket.reads.pipe(Stream.map((bytes) => encoder.encode(decoder.decode(bytes).toUpperCase()))),
          socket.writes
        )
      const EchoLayer = Server.layer({ address: loopback, handler: echo })
      const UpperLayer = Layer.effect(A, Server.make({ address: loopback, handler: upper }))
      const [e, u] = yield* Effect.all([
        Effect.flatMap(Server.Server, (s) => roundTrip(s.address, "mixed Case")),
        Effect.flatMap(A, (s) => roundTrip(s.address, "mixed Case"))
      ]).pipe(Effect.provide(Layer.merge(EchoLayer, UpperLayer)))
      assert.strictEqual(e, "mixed Case")
      assert.strictEqual(u, "MIXED CASE")
    }))
})

describe("Server.fromListener", () => {
  it.live("serves an in-memory listener exactly like a real one", () =>
    Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      const server = yield* Server.fromListener(listener, { handler: echo })
      const replies = yield* Effect.all(
        Array.from({ length: 5 }, (_, i) =>
          Effect.scoped(Effect.gen(function*() {
            const socket = yield* listener.connect()
            yield* socket.write(encoder.encode(`memory ${i}`))
            yield* socket.end
            return yield* readAll(socket)
          }))),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(replies, Array.from({ length: 5 }, (_, i) => `memory ${i}`))
      assert.strictEqual((yield* server.stats).accepted, 5)
    }))
})
