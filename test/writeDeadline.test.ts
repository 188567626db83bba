/**
 * The write deadline (`writeTimeout`) and the idle timeout over stalled
 * writes (issue 18, finding 1): a peer that does not take what we write is
 * cut with `WriteTimeout` (naming the peer, the bytes pending and for how
 * long) on both server paths (a fiber writing through `Socket.write`, a pump
 * in Node's callbacks), on a client socket, and on the generic pump over
 * `MemorySocket` (Effect's clock); an idle timeout cuts a connection whose
 * only "activity" is output nobody reads; a peer that reads is never cut.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Address from "../src/Address.js"
import * as NetError from "../src/NetError.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { assertOptionDefect, defectOf } from "./helpers/defects.js"
import { countBytes, eventually } from "./helpers/sockets.js"
import { captureLogs } from "./reliability/harness.js"

const MiB = 1024 * 1024
const loopback = Address.tcp("127.0.0.1", 0)

/** Bounds a wait on the network: a hang fails the test with `what` instead of timing it out. */
const within = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, seconds = 10) =>
  Effect.timeoutOrElse(effect, {
    duration: `${seconds} seconds`,
    orElse: () => Effect.fail(new Error(`${what}: nothing within ${seconds} s`))
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined

/** The first connection accepted by `listener`, served by `handler` in a fiber: its exit. */
const serveOne = <E>(
  listener: Socket.Listener,
  handler: (socket: Socket.Socket) => Effect.Effect<void, E>
) =>
  Effect.forkChild(
    Effect.flatMap(Stream.runHead(listener.accept), (socket) =>
      Option.isNone(socket)
        ? Effect.die(new Error("no connection"))
        : Effect.ensuring(handler(socket.value), socket.value.close))
  )

describe("writeTimeout", () => {
  it.live("fiber path: a reply to a peer that never reads fails with WriteTimeout, naming the peer, the bytes and the time", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { writeTimeout: "300 millis" })
      const serving = yield* serveOne(listener, (socket) => socket.write(new Uint8Array(8 * MiB)))
      const client = yield* Socket.connect(listener.address)
      const started = performance.now()
      const exit = yield* within("the server's write", Fiber.await(serving))
      const took = performance.now() - started
      const error = failureOf(exit)
      assert.instanceOf(error, NetError.WriteTimeout, String(exit))
      const e = error as NetError.WriteTimeout
      assert.strictEqual(e._tag, "WriteTimeout")
      assert.isFalse(e.retryable)
      assert.include(e.message, Address.format(client.localAddress))
      assert.match(e.message, /\d+(\.\d)? (MiB|KiB|B) written to it were still waiting after \d+ ms \(writeTimeout: 300 ms\)/)
      assert.isAtLeast(took, 290)
      assert.isBelow(took, 2_000)
    }))

  it.live("fiber path: reads of the cut socket fail with the same WriteTimeout", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { writeTimeout: "200 millis" })
      const serving = yield* serveOne(listener, (socket) =>
        Effect.gen(function*() {
          const reading = yield* Effect.forkChild(Stream.runDrain(socket.reads))
          yield* Effect.ignore(socket.write(new Uint8Array(8 * MiB)))
          return yield* Fiber.join(reading)
        }))
      yield* Socket.connect(listener.address)
      const exit = yield* within("the server's reads", Fiber.await(serving))
      assert.instanceOf(failureOf(exit), NetError.WriteTimeout, String(exit))
    }))

  it.live("a peer that reads everything is never cut, however long the transfer runs", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { writeTimeout: "200 millis" })
      const block = new Uint8Array(256 * 1024)
      const total = 64 * MiB
      const serving = yield* serveOne(listener, (socket) =>
        Effect.gen(function*() {
          for (let sent = 0; sent < total; sent += block.length) yield* socket.write(block)
          yield* socket.end
        }))
      const client = yield* Socket.connect(listener.address)
      assert.strictEqual(yield* within("the transfer", countBytes(client), 30), total)
      const exit = yield* Fiber.await(serving)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
    }))

  it.live("client side: Socket.connect's writeTimeout cuts a write to a server that never reads", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback)
      // Accepts and holds the connection without reading a byte.
      yield* serveOne(listener, () => Effect.never)
      const client = yield* Socket.connect(listener.address, { writeTimeout: "300 millis" })
      const exit = yield* within("the client's write", Effect.exit(client.write(new Uint8Array(16 * MiB))))
      const error = failureOf(exit)
      assert.instanceOf(error, NetError.WriteTimeout, String(exit))
      assert.include((error as NetError.WriteTimeout).message, Address.format(listener.address))
    }))

  it.live("pump path (Echo on node:net): a client that sends without reading is cut with WriteTimeout, logged at debug and counted", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, writeTimeout: "300 millis", logLevel: "Debug" })
      const client = yield* Socket.connect(server.address)
      // Sends until the server's echo backs up and the server stops reading; never reads.
      const sending = yield* Effect.forkChild(Effect.ignore(client.write(new Uint8Array(32 * MiB))))
      const stats = yield* eventually("the connection to be cut", server.stats, (s) => s.failed === 1, 300, 10)
      assert.strictEqual(stats.active, 0)
      yield* Fiber.interrupt(sending)
      const cut = logs.lines.find((l) => l.level === "DEBUG" && / ended early: WriteTimeout: /.test(l.message))
      assert.isDefined(cut, JSON.stringify(logs.lines))
      assert.include(cut!.message, Address.format(client.localAddress))
      assert.strictEqual(logs.warnings().length, 0, "an expected ending is no warning")
      // The server still serves.
      const echo = yield* Echo.client(server.address)
      assert.strictEqual(new TextDecoder().decode(yield* echo.request("still here")), "still here")
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("generic pump (MemorySocket, Effect's clock): a server's writeTimeout cuts a peer that does not read", () =>
    Effect.gen(function*() {
      const listener = yield* MemorySocket.listen({ bufferSize: 1024 })
      const server = yield* Server.fromListener(listener, { handler: Echo.handler(), writeTimeout: "1 second" })
      const client = yield* listener.connect()
      // More than the pipes hold both ways: the echo's write waits for a reader that never comes.
      yield* Effect.forkChild(Effect.ignore(client.write(new Uint8Array(64 * 1024))))
      // Let the fibers run until the echo's write waits (no clock involved).
      const settle = Effect.repeat(Effect.yieldNow, { times: 200 })
      yield* settle
      assert.strictEqual((yield* server.stats).active, 1)
      yield* TestClock.adjust("999 millis")
      yield* settle
      assert.strictEqual((yield* server.stats).failed, 0, "not before the timeout")
      yield* TestClock.adjust("2 millis")
      yield* settle
      const stats = yield* server.stats
      assert.strictEqual(stats.failed, 1)
      assert.strictEqual(stats.active, 0)
    }))

  it.effect("Socket.pump on MemorySocket: the pump fails with WriteTimeout when a batch waits that long", () =>
    Effect.gen(function*() {
      const [client, server] = yield* MemorySocket.makePair({ bufferSize: 1024 })
      const pumping = yield* Effect.forkChild(
        Socket.pump(server, { onRead: (bytes, out) => void out.push(bytes), onEnd: () => undefined }, {
          writeTimeout: "500 millis"
        })
      )
      yield* Effect.forkChild(Effect.ignore(client.write(new Uint8Array(16 * 1024))))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(pumping)
      const error = failureOf(exit)
      assert.instanceOf(error, NetError.WriteTimeout, String(exit))
      assert.include((error as NetError.WriteTimeout).message, "writeTimeout: 500 ms")
    }))

  it.effect("invalid: 0 or a malformed writeTimeout is a defect naming the option", () =>
    Effect.gen(function*() {
      assertOptionDefect(
        yield* defectOf(Server.make({ address: loopback, handler: () => Effect.void, writeTimeout: 0 })),
        "Server",
        "writeTimeout"
      )
      assertOptionDefect(
        yield* defectOf(Server.make({ address: loopback, handler: () => Effect.void, memoryBudget: 0 })),
        "memoryBudget"
      )
      assertOptionDefect(yield* defectOf(Socket.listen(loopback, { writeTimeout: "soon" as never })), "writeTimeout")
      assertOptionDefect(yield* defectOf(Socket.connect(loopback, { writeTimeout: 0 })), "writeTimeout")
      const [, server] = yield* MemorySocket.makePair()
      assertOptionDefect(
        yield* defectOf(Socket.pump(server, { onRead: () => undefined, onEnd: () => undefined }, { writeTimeout: -1 })),
        "writeTimeout"
      )
    }))
})

describe("idle timeout over stalled writes", () => {
  it.live("pump path: a client that sends a request and never reads the large reply is cut with IdleTimeout", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* Echo.make({
        address: loopback,
        idleTimeout: "300 millis",
        writeTimeout: Duration.infinity,
        logLevel: "Debug"
      })
      const client = yield* Socket.connect(server.address)
      const started = performance.now()
      yield* Effect.forkChild(Effect.ignore(client.write(new Uint8Array(16 * MiB))))
      yield* eventually("the idle cut", server.stats, (s) => s.failed === 1, 500, 10)
      const took = performance.now() - started
      assert.isTrue(
        logs.lines.some((l) => / ended early: IdleTimeout: /.test(l.message)),
        JSON.stringify(logs.lines)
      )
      assert.isBelow(took, 3_000)
    }).pipe(Effect.provide(logs.layer))
  })

  it.live("fiber path: a handler whose one large reply is never read is cut with IdleTimeout, even while it keeps writing", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { idleTimeout: "300 millis" })
      const serving = yield* serveOne(listener, (socket) =>
        Effect.gen(function*() {
          yield* Stream.runHead(socket.reads)
          // The reply, then more writes every 20 ms from other fibers, as a broadcaster would.
          yield* Effect.forkChild(socket.write(new Uint8Array(8 * MiB)))
          const ticks = Effect.forever(
            Effect.andThen(Effect.forkChild(Effect.ignore(socket.write(new Uint8Array(1024)))), Effect.sleep("20 millis"))
          )
          return yield* Effect.raceFirst(Stream.runDrain(socket.reads), ticks)
        }))
      const client = yield* Socket.connect(listener.address)
      yield* client.write(new TextEncoder().encode("request"))
      const started = performance.now()
      const exit = yield* within("the idle cut", Fiber.await(serving))
      assert.instanceOf(failureOf(exit), NetError.IdleTimeout, String(exit))
      assert.isBelow(performance.now() - started, 3_000)
    }))
})
