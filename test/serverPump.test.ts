/**
 * `Server.pump` on a node:net listener: each connection is taken in Node's
 * 'connection' callback and served from Node's callbacks, with no fiber. It
 * must keep every guarantee of the fiber path: exact counters, failures
 * counted and logged with the peer, the idle timeout, `maxConnections`
 * (queue and refuse, also for connections that arrived before the server),
 * the drain and the cut after `shutdownTimeout`. On a MemorySocket listener
 * the same handler runs as an ordinary handler, in a fiber.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { eventually, readAll, stalled, upper } from "./helpers/sockets.js"
import { captureLogs } from "./reliability/harness.js"

const MiB = 1024 * 1024
const loopback = Address.tcp("127.0.0.1", 0)
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** Bounds a wait on the network: a hang fails the test with `what` instead of timing it out. */
const within = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, seconds = 10) =>
  Effect.timeoutOrElse(effect, {
    duration: `${seconds} seconds`,
    orElse: () => Effect.fail(new Error(`${what}: nothing within ${seconds} s`))
  })

/** a-z → A-Z, in a copy: an answer that differs from the question. */

/**
 * An upper-casing pump handler that records, for each connection, whether
 * its handler was made outside any fiber (Node's callbacks: the direct path)
 * or inside one (the fiber path), so each case shows which path it tested.
 */
const upperPump = () => {
  const made = { direct: 0, fiber: 0 }
  const handler = Server.pump((): Socket.PumpHandler<never> => {
    if (Fiber.getCurrent() === undefined) made.direct++
    else made.fiber++
    return { onRead: (bytes, out) => void out.push(upper(bytes)), onEnd: () => undefined }
  })
  return { made, handler }
}

/** Connect, send `text`, half-close, and read the whole reply. */
const exchange = (address: Address.Address, text: string) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* Socket.connect(address)
    yield* socket.write(Buffer.from(text))
    yield* socket.end
    return (yield* within(`reply to ${text}`, readAll(socket))).toString("latin1")
  }))

/** Read until `n` bytes came (or EOF), pulling one element at a time so nothing past them is taken. */
const readAtLeast = (socket: Socket.Socket, n: number) =>
  Effect.suspend(() => {
    let got = Buffer.alloc(0)
    return Stream.runForEachWhile(socket.reads, (chunk) =>
      Effect.sync(() => {
        got = Buffer.concat([got, chunk])
        return got.length < n
      })).pipe(Effect.map(() => got.toString("latin1")))
  })

/** Send `text` on an open connection and wait for as many bytes back. */
const ask = (socket: Socket.Socket, text: string) =>
  Effect.andThen(socket.write(Buffer.from(text)), within(`answer to ${text}`, readAtLeast(socket, text.length)))

/**
 * The one warning the server logged, once it is there (logging runs on a
 * fiber of its own), after checking it is the only one and names the peer.
 */
const theWarning = (logs: ReturnType<typeof captureLogs>, peer: string) =>
  Effect.gen(function*() {
    yield* eventually("warnings", Effect.sync(() => logs.warnings().length), (n) => n >= 1)
    const warnings = logs.warnings()
    assert.strictEqual(warnings.length, 1, JSON.stringify(logs.lines))
    const line = warnings[0]!.message
    assert.include(line, `connection from ${peer} failed`)
    return line
  })

/**
 * The one debug line of a connection that ended early in an expected way
 * (a reset, an idle timeout), once it is there: no warning, and it names the
 * peer.
 */
const theEnding = (logs: ReturnType<typeof captureLogs>, peer: string) =>
  Effect.gen(function*() {
    const endings = () => logs.lines.filter((l) => l.level === "DEBUG" && l.message.includes(" ended early: "))
    yield* eventually("the debug line", Effect.sync(() => endings().length), (n) => n >= 1)
    assert.strictEqual(endings().length, 1, JSON.stringify(logs.lines))
    assert.deepStrictEqual(logs.warnings(), [], "an expected ending is no warning")
    const line = endings()[0]!.message
    assert.include(line, `connection from ${peer} ended early: `)
    return line
  })

/**
 * Re-read the stats until `check` holds (bounded in count and time): the
 * counters move in Node's callbacks and have no event of their own.
 */
const statsWhen = (server: Server.RunningServer, what: string, check: (stats: Server.Stats) => boolean) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5_000
    let stats = yield* server.stats
    for (let i = 0; i < 500 && !check(stats) && Date.now() < deadline; i++) {
      yield* Effect.sleep("10 millis")
      stats = yield* server.stats
    }
    if (!check(stats)) return yield* Effect.die(new Error(`${what}: stats still ${JSON.stringify(stats)}`))
    return stats
  })

/** The client's view of a connection the server closed: EOF, or a reset when our bytes came after the close. */
const closedByServer = (socket: Socket.Socket) =>
  Effect.gen(function*() {
    const end = yield* within("the server's close", Effect.result(readAll(socket)))
    if (end._tag === "Success") assert.strictEqual(end.success.length, 0, "no answer before the close")
    else assert.strictEqual(end.failure._tag, "ConnectionReset")
  })


describe("Server.pump on a node:net listener (no fiber per connection)", () => {
  it.live("stats: every connection is accepted and completed exactly once; active returns to 0", () => {
    const { made, handler } = upperPump()
    const N = 40
    return Effect.gen(function*() {
      const server = yield* Server.Server
      const replies = yield* Effect.forEach(range(N), (i) => exchange(server.address, `hello ${i}`), {
        concurrency: 10
      })
      assert.deepStrictEqual(replies, range(N).map((i) => `HELLO ${i}`))
      const stats = yield* statsWhen(server, "active connections", (s) => s.active === 0)
      assert.deepStrictEqual(stats, { accepted: N, active: 0, completed: N, failed: 0, refused: 0 })
      assert.deepStrictEqual(made, { direct: N, fiber: 0 })
    }).pipe(Effect.provide(Server.layer({ address: loopback, handler })))
  })

  it.live("a FrameError fails only its connection: counted, logged once with the peer and the error", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, framing: "length" })
      const bad = yield* Socket.connect(server.address)
      const peer = Address.format(bad.localAddress)
      // A header claiming 1 GiB, over the 8 MiB default limit.
      yield* bad.write(Buffer.from([0x40, 0x00, 0x00, 0x00]))
      // Every byte we sent was read, so the server's close reaches us as EOF.
      const rest = yield* within("the bad connection's end", readAll(bad))
      assert.strictEqual(rest.length, 0)
      yield* statsWhen(server, "failed connections", (s) => s.failed === 1)

      const client = yield* Echo.client(server.address, { framing: "length" })
      assert.strictEqual(Buffer.from(yield* client.request("still serving")).toString(), "still serving")
      const stats = yield* server.stats
      assert.deepStrictEqual(stats, { accepted: 2, active: 1, completed: 0, failed: 1, refused: 0 })
      const line = yield* theWarning(logs, peer)
      assert.include(line, "a frame of 1073741824 bytes, over the limit of")
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.live("a make that throws is a defect: counted, logged, its socket closed; the server keeps serving", () => {
    const logs = captureLogs()
    let calls = 0
    const handler = Server.pump((): Socket.PumpHandler<never> => {
      if (++calls === 1) throw new Error("make exploded")
      return { onRead: (bytes, out) => void out.push(upper(bytes)), onEnd: () => undefined }
    })
    return Effect.gen(function*() {
      const server = yield* Server.make({ address: loopback, handler })
      const first = yield* Socket.connect(server.address)
      const peer = Address.format(first.localAddress)
      yield* first.write(Buffer.from("first"))
      yield* closedByServer(first)
      assert.strictEqual(yield* exchange(server.address, "second"), "SECOND")
      const stats = yield* statsWhen(server, "active connections", (s) => s.active === 0)
      assert.deepStrictEqual(stats, { accepted: 2, active: 0, completed: 1, failed: 1, refused: 0 })
      const line = yield* theWarning(logs, peer)
      // A defect is logged with its whole cause (`Error: …` and the stack), a typed failure by its message alone.
      assert.include(line, "Error: make exploded")
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.live("idleTimeout: a silent client fails with IdleTimeout, is logged at debug (an expected ending, not a warning), and sees the close", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Echo.make({ address: loopback, idleTimeout: "200 millis", logLevel: "Debug" }).pipe(
        Scope.provide(scope)
      )
      const silent = yield* Socket.connect(server.address)
      const peer = Address.format(silent.localAddress)
      const started = Date.now()
      yield* closedByServer(silent)
      const took = Date.now() - started
      assert.isAtLeast(took, 150)
      assert.isBelow(took, 5_000)
      const stats = yield* statsWhen(server, "failed connections", (s) => s.failed === 1)
      assert.deepStrictEqual(stats, { accepted: 1, active: 0, completed: 0, failed: 1, refused: 0 })
      const line = yield* theEnding(logs, peer)
      // IdleTimeout's message.
      assert.include(line, "IdleTimeout: ")
      assert.include(line, "was idle too long and was closed: no byte moved either way for 200 ms")
      // Shutting down summarises what ended early since the last summary.
      yield* Scope.close(scope, Exit.void)
      const infos = logs.lines.filter((l) => l.level === "INFO").map((l) => l.message)
      assert.strictEqual(infos.filter((m) => m.includes("ended early")).length, 1, JSON.stringify(logs.lines))
      assert.match(infos[0]!, /: 1 connection ended early in the last \d+ s: 1 IdleTimeout \(expected endings/)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.live("a peer's reset is one debug line naming the peer, not a warning", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, logLevel: "Debug" })
      const rude = yield* Socket.connect(server.address)
      const peer = Address.format(rude.localAddress)
      assert.strictEqual(yield* ask(rude, "hello"), "hello")
      yield* rude.reset
      const line = yield* theEnding(logs, peer)
      assert.include(line, "ConnectionReset: ")
      const stats = yield* statsWhen(server, "failed connections", (s) => s.failed === 1)
      assert.deepStrictEqual(stats, { accepted: 1, active: 0, completed: 0, failed: 1, refused: 0 })
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.live("maxConnections with overflow queue: a third connection waits unserved until a slot frees", () =>
    Effect.gen(function*() {
      const { made, handler } = upperPump()
      const server = yield* Server.make({ address: loopback, handler, maxConnections: 2 })
      const scopeA = yield* Scope.make()
      const a = yield* Socket.connect(server.address).pipe(Scope.provide(scopeA))
      const b = yield* Socket.connect(server.address)
      assert.strictEqual(yield* ask(a, "a"), "A")
      assert.strictEqual(yield* ask(b, "b"), "B")
      // The kernel accepts the third connection, but the server does not serve it.
      const c = yield* Socket.connect(server.address)
      yield* c.write(Buffer.from("c"))
      const reply = yield* Effect.forkChild(readAtLeast(c, 1))
      const early = yield* Fiber.join(reply).pipe(Effect.timeoutOption("300 millis"))
      assert.strictEqual(early._tag, "None", "a queued connection got an answer")
      assert.deepStrictEqual(yield* server.stats, { accepted: 2, active: 2, completed: 0, failed: 0, refused: 0 })
      // One of the first two ends: its slot goes to the waiting one.
      yield* Scope.close(scopeA, Exit.void)
      assert.strictEqual(yield* within("the queued answer", Fiber.join(reply)), "C")
      assert.strictEqual(yield* ask(c, "again"), "AGAIN")
      const stats = yield* statsWhen(server, "completed connections", (s) => s.completed === 1)
      assert.deepStrictEqual(stats, { accepted: 3, active: 2, completed: 1, failed: 0, refused: 0 })
      assert.deepStrictEqual(made, { direct: 3, fiber: 0 })
    }))

  it.live("connections made before the server starts are served, within maxConnections (queue and refuse)", () =>
    Effect.gen(function*() {
      for (const overflow of ["queue", "refuse"] as const) {
        const { handler } = upperPump()
        const listener = yield* Socket.listen(loopback)
        // Connected one after the other, each held by the listener before the next: served in this order.
        const connected = (n: number) =>
          eventually("connections held by the listener", listener.connections, (k) => k === n)
        const scope0 = yield* Scope.make()
        const c0 = yield* Socket.connect(listener.address).pipe(Scope.provide(scope0))
        yield* connected(1)
        const c1 = yield* Socket.connect(listener.address)
        yield* connected(2)
        const c2 = yield* Socket.connect(listener.address)
        yield* connected(3)
        const server = yield* Server.fromListener(listener, { handler, maxConnections: 2, overflow })
        assert.strictEqual(yield* ask(c0, "zero"), "ZERO", overflow)
        assert.strictEqual(yield* ask(c1, "one"), "ONE", overflow)
        if (overflow === "refuse") {
          yield* c2.write(Buffer.from("two"))
          yield* closedByServer(c2)
          assert.deepStrictEqual(yield* server.stats, { accepted: 2, active: 2, completed: 0, failed: 0, refused: 1 })
          continue
        }
        yield* c2.write(Buffer.from("two"))
        const reply = yield* Effect.forkChild(readAtLeast(c2, 3))
        const early = yield* Fiber.join(reply).pipe(Effect.timeoutOption("300 millis"))
        assert.strictEqual(early._tag, "None", "the third connection was served past maxConnections")
        yield* Scope.close(scope0, Exit.void)
        assert.strictEqual(yield* within("the queued answer", Fiber.join(reply)), "TWO")
        const stats = yield* statsWhen(server, "completed connections", (s) => s.completed === 1)
        assert.deepStrictEqual(stats, { accepted: 3, active: 2, completed: 1, failed: 0, refused: 0 })
      }
    }))

  it.live("maxConnections with overflow refuse: a third connection is closed at once and counted", () =>
    Effect.gen(function*() {
      const { made, handler } = upperPump()
      const server = yield* Server.make({ address: loopback, handler, maxConnections: 2, overflow: "refuse" })
      const scopeA = yield* Scope.make()
      const a = yield* Socket.connect(server.address).pipe(Scope.provide(scopeA))
      const b = yield* Socket.connect(server.address)
      assert.strictEqual(yield* ask(a, "a"), "A")
      assert.strictEqual(yield* ask(b, "b"), "B")
      const c = yield* Socket.connect(server.address)
      yield* c.write(Buffer.from("c"))
      yield* closedByServer(c)
      assert.deepStrictEqual(yield* server.stats, { accepted: 2, active: 2, completed: 0, failed: 0, refused: 1 })
      // The refused connection took no slot: once one of the first two ends, a new one is served.
      yield* Scope.close(scopeA, Exit.void)
      yield* statsWhen(server, "active connections", (s) => s.active === 1)
      assert.strictEqual(yield* exchange(server.address, "d"), "D")
      const stats = yield* statsWhen(server, "completed connections", (s) => s.completed === 2)
      assert.deepStrictEqual(stats, { accepted: 3, active: 1, completed: 2, failed: 0, refused: 1 })
      assert.deepStrictEqual(made, { direct: 3, fiber: 0 })
    }))

  it.live("drain: idle connections are half-closed at once and all finish, long before shutdownTimeout", () =>
    Effect.gen(function*() {
      const K = 8
      const scope = yield* Scope.make()
      const server = yield* Echo.make({ address: loopback, shutdownTimeout: "20 seconds" }).pipe(Scope.provide(scope))
      const clientScope = yield* Scope.make()
      const clients = yield* Effect.forEach(
        range(K),
        () => Socket.connect(server.address).pipe(Scope.provide(clientScope))
      )
      for (const [i, client] of clients.entries()) assert.strictEqual(yield* ask(client, `idle ${i}`), `idle ${i}`)
      assert.strictEqual((yield* server.stats).active, K)
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const took = Date.now() - started
      assert.deepStrictEqual(yield* server.shutdown, { finished: K, cut: 0 })
      assert.isBelow(took, 5_000)
      // Each client reads the server's FIN: a clean EOF, not a reset.
      for (const client of clients) {
        const rest = yield* within("the server's half-close", readAll(client))
        assert.strictEqual(rest.length, 0)
      }
      assert.deepStrictEqual(yield* server.stats, { accepted: K, active: 0, completed: K, failed: 0, refused: 0 })
      yield* Scope.close(clientScope, Exit.void)
    }))

  it.live("drain cut: a client that never reads is cut after shutdownTimeout, bounded by it plus closeTimeout", () =>
    Effect.gen(function*() {
      const shutdownMs = 300
      const closeMs = 1_000
      const scope = yield* Scope.make()
      const server = yield* Echo.make({
        address: loopback,
        shutdownTimeout: `${shutdownMs} millis`,
        listen: { closeTimeout: `${closeMs} millis` }
      }).pipe(Scope.provide(scope))
      const clientScope = yield* Scope.make()
      const idle = yield* Socket.connect(server.address).pipe(Scope.provide(clientScope))
      assert.strictEqual(yield* ask(idle, "idle"), "idle")
      const hog = yield* Socket.connect(server.address, { closeTimeout: "500 millis" }).pipe(Scope.provide(clientScope))
      // 32 MiB in 64 KiB writes, none of the echo read back.
      let written = 0
      const chunk = Buffer.alloc(64 * 1024, 0x61)
      const writer = yield* Effect.forkChild(Effect.result(Effect.forEach(range(512), () =>
        Effect.andThen(
          hog.write(chunk),
          Effect.sync(() => {
            written += chunk.length
          })
        ))))
      // Every buffer on the way back fills, the server stops reading, our writes stop.
      const stuckAt = yield* stalled("bytes written by the hog", () => written)
      assert.isBelow(stuckAt, 32 * MiB, "the kernel took everything: nothing would be stuck")
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const took = Date.now() - started
      assert.deepStrictEqual(yield* server.shutdown, { finished: 1, cut: 1 })
      assert.isAtLeast(took, shutdownMs - 50)
      assert.isBelow(took, shutdownMs + closeMs + 1_500)
      assert.deepStrictEqual(yield* server.stats, { accepted: 2, active: 0, completed: 1, failed: 0, refused: 0 })
      // The idle client saw the half-close; the hog's writes ended one way or the other.
      assert.strictEqual((yield* within("the idle client's EOF", readAll(idle))).length, 0)
      yield* within("the hog's writes", Fiber.join(writer))
      yield* Scope.close(clientScope, Exit.void)
    }))
})

describe("Server.pump on a MemorySocket listener (fiber path)", () => {
  it.live("the same handler runs as an ordinary handler: answers and counts", () =>
    Effect.gen(function*() {
      const { made, handler } = upperPump()
      const listener = yield* MemorySocket.listen()
      const server = yield* Server.fromListener(listener, { handler })
      const replies = yield* Effect.forEach(
        range(5),
        (i) =>
          Effect.scoped(Effect.gen(function*() {
            const socket = yield* listener.connect()
            yield* socket.write(Buffer.from(`memory ${i}`))
            yield* socket.end
            return (yield* within("memory reply", readAll(socket))).toString("latin1")
          })),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(replies, range(5).map((i) => `MEMORY ${i}`))
      const stats = yield* statsWhen(server, "active connections", (s) => s.active === 0)
      assert.deepStrictEqual(stats, { accepted: 5, active: 0, completed: 5, failed: 0, refused: 0 })
      assert.deepStrictEqual(made, { direct: 0, fiber: 5 })

      // The built-in Echo handler too.
      const echoListener = yield* MemorySocket.listen()
      const echo = yield* Server.fromListener(echoListener, { handler: Echo.handler() })
      const socket = yield* echoListener.connect()
      yield* socket.write(Buffer.from("over memory"))
      yield* socket.end
      assert.strictEqual((yield* within("memory echo", readAll(socket))).toString(), "over memory")
      const echoStats = yield* statsWhen(echo, "completed connections", (s) => s.completed === 1)
      assert.deepStrictEqual(echoStats, { accepted: 1, active: 0, completed: 1, failed: 0, refused: 0 })
    }))
})
