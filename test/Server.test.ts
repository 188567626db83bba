import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Address from "../src/Address.js"
import type { WriteError } from "../src/NetError.js"
import { ConnectionSlots } from "../src/internal/connectionSlots.js"
import * as Server from "../src/Server.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { eventually } from "./helpers/sockets.js"
import { captureLogs } from "./reliability/harness.js"
import { assertOptionDefect, defectOf } from "./helpers/defects.js"
import { capturingConsole } from "./helpers/console.js"

const loopback = Address.tcp("127.0.0.1", 0)
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

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

describe("Server options: the rule for zero and never (options in code are defects)", () => {
  const make = (options: Omit<Server.Options<never, never>, "address" | "handler">) =>
    Effect.scoped(Server.make({ address: loopback, handler: echo, ...options }))

  it.live("0 is refused, with what to write instead; so is an infinite shutdownTimeout and an unknown overflow", () =>
    Effect.gen(function*() {
      assertOptionDefect(
        yield* defectOf(make({ maxConnections: 0 })),
        "Server: maxConnections must be a positive integer, got 0",
        "0 does not mean \"no limit\""
      )
      assertOptionDefect(yield* defectOf(make({ maxConnections: 2.5 })), "maxConnections must be a positive integer, got 2.5")
      assertOptionDefect(
        yield* defectOf(make({ idleTimeout: 0 })),
        "Server: idleTimeout must be above 0, got 0",
        "use Duration.infinity for none"
      )
      assertOptionDefect(yield* defectOf(make({ shutdownTimeout: "0 seconds" })), "Server: shutdownTimeout must be above 0")
      assertOptionDefect(
        yield* defectOf(make({ shutdownTimeout: Duration.infinity })),
        "Server: shutdownTimeout must be finite"
      )
      assertOptionDefect(
        yield* defectOf(make({ overflow: "drop" as Server.Overflow })),
        "Server: overflow must be \"queue\" or \"refuse\", got \"drop\""
      )
      const listener = yield* MemorySocket.listen()
      assertOptionDefect(
        yield* defectOf(Server.fromListener(listener, { handler: echo, maxConnections: 0 })),
        "Server: maxConnections must be a positive integer, got 0"
      )
    }))

  it.live("Duration.infinity is no idle timeout, as leaving it out is", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ address: loopback, handler: echo, idleTimeout: Duration.infinity })
      assert.strictEqual(yield* roundTrip(server.address, "no limit"), "no limit")
    }))
})

describe("Server: RunningServer.limits", () => {
  it.live("the limits the server runs with: the defaults, or what was given", () =>
    Effect.gen(function*() {
      const defaults = yield* Server.make({ address: loopback, handler: echo })
      assert.deepStrictEqual(defaults.limits, {
        maxConnections: 1024,
        overflow: "queue",
        idleTimeout: Duration.infinity,
        shutdownTimeout: Duration.seconds(10)
      })
      const given = yield* Server.make({
        address: loopback,
        handler: echo,
        maxConnections: 7,
        overflow: "refuse",
        idleTimeout: "3 seconds",
        shutdownTimeout: 2500
      })
      assert.deepStrictEqual(given.limits, {
        maxConnections: 7,
        overflow: "refuse",
        idleTimeout: Duration.seconds(3),
        shutdownTimeout: Duration.millis(2500)
      })
      // A listener of your own keeps its own idle timeout: the server sets none.
      const memory = yield* Server.fromListener(yield* MemorySocket.listen(), { handler: echo, maxConnections: 3 })
      assert.deepStrictEqual(memory.limits, {
        maxConnections: 3,
        overflow: "queue",
        idleTimeout: Duration.infinity,
        shutdownTimeout: Duration.seconds(10)
      })
    }))
})

/** Send `text` on an open connection and read back as many bytes (pulling one element at a time). */
const ask = (socket: Socket.Socket, text: string) =>
  Effect.andThen(
    socket.write(encoder.encode(text)),
    Effect.suspend(() => {
      let got = ""
      return Stream.runForEachWhile(socket.reads, (bytes) =>
        Effect.sync(() => {
          got += decoder.decode(bytes)
          return got.length < text.length
        })).pipe(Effect.map(() => got))
    })
  )

/** The handlers the limit cases run on: one per path through the server. */
const limitPaths = [
  { name: "a fiber handler", handler: echo },
  {
    name: "a pump handler (Node's callbacks, no fiber)",
    handler: Server.pump(() => ({ onRead: (bytes, out) => void out.push(bytes), onEnd: () => undefined }))
  }
] as const

describe("Server: reaching maxConnections is never silent", () => {
  for (const path of limitPaths) {
    it.live(`${path.name}, overflow queue: a burst past the limit logs ONE warning naming the limit and the option; the queued connections are served later`, () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback)
        const server = yield* Server.fromListener(listener, { handler: path.handler, maxConnections: 2, name: "limited" })
        const heldScope = yield* Scope.make()
        const held = yield* Effect.forEach([0, 1], () => Socket.connect(listener.address).pipe(Scope.provide(heldScope)))
        for (const [i, socket] of held.entries()) assert.strictEqual(yield* ask(socket, `held ${i}`), `held ${i}`)
        assert.strictEqual(logs.warnings().length, 0, "no warning within the limit")
        // Six more at once: the listener holds them, the server serves none of them yet.
        const burst = yield* Effect.forEach(range(6), (i) => Effect.forkChild(roundTrip(listener.address, `queued ${i}`)))
        yield* eventually("the burst held by the listener", listener.connections, (n) => n === 8)
        yield* eventually("the warning", Effect.sync(() => logs.warnings().length), (n) => n >= 1)
        yield* Scope.close(heldScope, Exit.void)
        assert.deepStrictEqual(yield* Fiber.joinAll(burst), range(6).map((i) => `queued ${i}`))
        const stats = yield* eventually("the burst served", server.stats, (s) => s.completed === 8)
        assert.deepStrictEqual(stats, { accepted: 8, active: 0, completed: 8, failed: 0, refused: 0 })
        const warnings = logs.warnings()
        assert.strictEqual(warnings.length, 1, JSON.stringify(logs.lines))
        const line = warnings[0]!.message
        assert.include(line, "limited: all 2 connection slots are taken (maxConnections)")
        assert.include(line, "had to wait")
        assert.include(line, "Raise the limit with the maxConnections option (--max-connections on the command line)")
        assert.include(line, "at most once every 10 seconds")
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    })

    it.live(`${path.name}, overflow refuse: a burst past the limit logs ONE warning with the number refused`, () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback)
        const server = yield* Server.fromListener(listener, {
          handler: path.handler,
          maxConnections: 2,
          overflow: "refuse",
          name: "limited"
        })
        const held = yield* Effect.forEach([0, 1], () => Socket.connect(listener.address))
        for (const [i, socket] of held.entries()) assert.strictEqual(yield* ask(socket, `held ${i}`), `held ${i}`)
        const refused = yield* Effect.forEach(range(6), (i) => Effect.result(roundTrip(listener.address, `refused ${i}`)), {
          concurrency: "unbounded"
        })
        for (const outcome of refused) {
          if (outcome._tag === "Success") assert.strictEqual(outcome.success, "")
          else assert.strictEqual(outcome.failure._tag, "ConnectionReset")
        }
        yield* eventually("the refusals counted", server.stats, (s) => s.refused === 6)
        const warnings = yield* eventually("the warning", Effect.sync(() => logs.warnings()), (w) => w.length >= 1)
        assert.strictEqual(warnings.length, 1, JSON.stringify(logs.lines))
        const line = warnings[0]!.message
        assert.include(line, "limited: all 2 connection slots are taken (maxConnections)")
        assert.include(line, "refused")
        assert.include(line, "--max-connections")
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    })

    it.live(`${path.name}: up to the limit, nothing is logged`, () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const server = yield* Server.make({ address: loopback, handler: path.handler, maxConnections: 4 })
        const heldScope = yield* Scope.make()
        const held = yield* Effect.forEach(range(4), () => Socket.connect(server.address).pipe(Scope.provide(heldScope)))
        for (const [i, socket] of held.entries()) assert.strictEqual(yield* ask(socket, `held ${i}`), `held ${i}`)
        yield* Scope.close(heldScope, Exit.void)
        yield* eventually("the held connections to end", server.stats, (s) => s.active === 0)
        for (const i of range(4)) assert.strictEqual(yield* roundTrip(server.address, `next ${i}`), `next ${i}`)
        yield* eventually("every connection to end", server.stats, (s) => s.active === 0 && s.accepted === 8)
        assert.deepStrictEqual(logs.warnings(), [])
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    })
  }
})

describe("Server: the limit warning's rate", () => {
  it("one warning at the first hit, then at most one per 10 s, each with the counts since the last", () => {
    const logs = captureLogs()
    let now = 1_000_000
    const clock = { currentTimeMillisUnsafe: () => now } as unknown as Clock.Clock
    const slots = new ConnectionSlots(3, "queue", "rated", (effect) => Effect.runSync(Effect.provide(effect, logs.layer)), clock)
    const messages = () => logs.warnings().map((w) => w.message)
    slots.full()
    assert.strictEqual(messages().length, 1)
    assert.include(messages()[0], "rated: all 3 connection slots are taken (maxConnections): 1 new connection had to wait")
    assert.include(messages()[0], "since the server started")
    // A burst within 10 s: counted, not logged.
    now += 9_999
    slots.full(4)
    slots.acceptQueueFull(16)
    slots.acceptQueueFull(16)
    assert.strictEqual(messages().length, 1)
    // The next hit after 10 s reports what happened since the last warning, itself included.
    now += 1
    slots.full()
    assert.strictEqual(messages().length, 2)
    assert.include(messages()[1], "5 new connections had to wait in the accept queue")
    assert.include(messages()[1], "2 new connections were refused because the accept queue (listen.acceptQueueSize: 16) was full")
    assert.include(messages()[1], "since the last warning")
    now += 10_000
    slots.full()
    assert.include(messages()[2], ": 1 new connection had to wait")
    assert.notInclude(messages()[2], "refused")

    const refusing = new ConnectionSlots(1, "refuse", "strict", (effect) => Effect.runSync(Effect.provide(effect, logs.layer)), clock)
    refusing.full(2)
    assert.strictEqual(refusing.refused, 2)
    assert.include(messages()[3], "strict: all 1 connection slots are taken (maxConnections): 2 new connections were refused (overflow: \"refuse\")")
  })
})

// ---------------------------------------------------------------------------
// Logging a user can live with (issue 17)
// ---------------------------------------------------------------------------

class Boom extends Data.TaggedError("Boom")<{}> {
  override get message() {
    return "the handler gave up"
  }
}

/**
 * Every log line with its level and whether the line would go to stderr
 * with Effect's built-in loggers; `until` waits for the lines to satisfy a
 * check (each line wakes it: no polling).
 */
const recordLogs = () => {
  const lines: Array<{ readonly level: string; readonly message: string; readonly stderr: boolean }> = []
  const waiters = new Set<() => void>()
  const logger = Logger.make(({ fiber, logLevel, message }) => {
    lines.push({
      level: logLevel.toUpperCase(),
      message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
      stderr: fiber.getRef(References.LogToStderr)
    })
    for (const wake of Array.from(waiters)) wake()
  })
  const at = (level: string) => lines.filter((l) => l.level === level)
  const until = (check: () => boolean) =>
    Effect.callback<void>((resume) => {
      const wake = () => {
        if (!check()) return
        waiters.delete(wake)
        resume(Effect.void)
      }
      waiters.add(wake)
      wake()
      return Effect.sync(() => waiters.delete(wake))
    })
  return { lines, at, until, layer: Logger.layer([logger]) }
}

/** Echoes, but fails with Boom on `boom`: a real failure of the handler. */
const echoOrBoom = (socket: Socket.Socket) =>
  Stream.runForEach(
    socket.reads,
    (bytes): Effect.Effect<void, Boom | WriteError> => decoder.decode(bytes) === "boom" ? Effect.fail(new Boom()) : socket.write(bytes)
  )

/** A MemorySocket client that is answered once, then resets: the peer's address. */
const resetAfterAnswer = (listener: MemorySocket.MemoryListener) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* listener.connect()
    yield* client.write(encoder.encode("hi"))
    yield* Stream.runHead(client.reads)
    yield* client.reset
    return Address.format(client.localAddress)
  }))

describe("Server: logs a user can live with", () => {
  it.effect("a peer's reset is a debug line (\"ended early\"), a real failure stays one warning, and a summary comes at info once a minute", () => {
    const logs = recordLogs()
    return Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      yield* Server.fromListener(listener, { handler: echoOrBoom, name: "quiet", logLevel: "Debug" })
      const reset = yield* Effect.forEach(range(3), () => resetAfterAnswer(listener))
      const failing = yield* listener.connect()
      yield* failing.write(encoder.encode("boom"))
      yield* logs.until(() => logs.at("DEBUG").length === 3 && logs.at("WARN").length === 1)

      const warning = logs.at("WARN")[0]!.message
      assert.strictEqual(
        warning,
        `quiet: connection from ${Address.format(failing.localAddress)} failed: Boom: the handler gave up`
      )
      const debug = logs.at("DEBUG").map((l) => l.message)
      for (const [i, peer] of reset.entries()) {
        assert.match(debug[i]!, new RegExp(`^quiet: connection from ${peer} ended early: ConnectionReset: `))
      }
      assert.deepStrictEqual(logs.at("INFO"), [], "no summary before the minute is up")

      yield* TestClock.adjust("1 minute")
      yield* logs.until(() => logs.at("INFO").length === 1)
      assert.strictEqual(
        logs.at("INFO")[0]!.message,
        "quiet: 3 connections ended early in the last minute: 3 ConnectionReset (expected endings, each logged at debug level)"
      )
      // Every line of the server is meant for stderr.
      assert.isTrue(logs.lines.every((l) => l.stderr), JSON.stringify(logs.lines))
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.effect("at the default level the expected endings show only in the summary; a quiet minute logs nothing", () => {
    const logs = recordLogs()
    return Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      const server = yield* Server.fromListener(listener, { handler: echoOrBoom, name: "default" })
      yield* Effect.forEach(range(2), () => resetAfterAnswer(listener))
      yield* TestClock.adjust("1 minute")
      yield* logs.until(() => logs.at("INFO").length === 1)
      assert.strictEqual(
        logs.at("INFO")[0]!.message,
        "default: 2 connections ended early in the last minute: 2 ConnectionReset (expected endings, each logged at debug level)"
      )
      assert.deepStrictEqual(logs.lines.map((l) => l.level), ["INFO"], "no debug line, no warning")
      assert.strictEqual((yield* server.stats).failed, 2, "still counted as failed in the stats")
      // A minute with no early ending: no summary.
      yield* TestClock.adjust("1 minute")
      yield* resetAfterAnswer(listener)
      assert.strictEqual(logs.at("INFO").length, 1)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.effect("the summary of what ended since the last one is logged when the server shuts down", () => {
    const logs = recordLogs()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* MemorySocket.listen().pipe(Scope.provide(scope))
      yield* Server.fromListener(listener, { handler: echoOrBoom, name: "closing" }).pipe(Scope.provide(scope))
      yield* resetAfterAnswer(listener)
      yield* TestClock.adjust("20 seconds")
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(logs.at("INFO").map((l) => l.message), [
        "closing: 1 connection ended early in the last 20 s: 1 ConnectionReset (expected endings, each logged at debug level)"
      ])
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("logLevel \"Warn\" keeps the failures and drops the summary; the handler's own lines keep the program's level", () => {
    const logs = recordLogs()
    return Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      const handler = (socket: Socket.Socket) => Effect.andThen(Effect.logInfo("handler: hello"), echoOrBoom(socket))
      yield* Server.fromListener(listener, { handler, name: "terse", logLevel: "Warn" })
      yield* resetAfterAnswer(listener)
      const failing = yield* listener.connect()
      yield* failing.write(encoder.encode("boom"))
      yield* logs.until(() => logs.at("WARN").length === 1)
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(logs.lines.map((l) => [l.level, l.message.split(":")[0]]), [
        ["INFO", "handler"],
        ["INFO", "handler"],
        ["WARN", "terse"]
      ])
      // The handler's lines are the program's: no stderr forced on them.
      assert.deepStrictEqual(logs.lines.map((l) => l.stderr), [false, false, true])
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.live("with Effect's default logger, the server's lines go to stderr (console.error) and the program's stay on stdout", () => {
    const { console, err, out } = capturingConsole()
    return Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      const handler = (socket: Socket.Socket) => Effect.andThen(Effect.log("program output"), echoOrBoom(socket))
      const server = yield* Server.fromListener(listener, { handler, name: "stderr" })
      const failing = yield* listener.connect()
      yield* failing.write(encoder.encode("boom"))
      yield* eventually("the failure", Effect.sync(() => err.length), (n) => n === 1)
      assert.strictEqual((yield* server.stats).failed, 1)
      assert.strictEqual(out.length, 1)
      assert.include(out[0], "program output")
      assert.include(err[0], "WARN")
      assert.include(err[0], "stderr: connection from")
      assert.include(err[0], "failed: Boom: the handler gave up")
    }).pipe(Effect.scoped, Effect.provideService(Console.Console, console))
  })

  it.live("logLevel is checked: anything but a log level is a defect naming it", () =>
    Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      const exit = yield* Effect.exit(Server.fromListener(listener, { handler: echo, logLevel: "Loud" as never }))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), String(exit))
      assert.include(Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause), "Server: logLevel must be \"All\" or")
    }))
})
