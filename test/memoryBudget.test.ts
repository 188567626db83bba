/**
 * A server's memory budget (issue 18, finding 1): input not framed or read
 * yet and output the peers have not taken, summed over the server's
 * connections; over it every connection stops reading, then the ones holding
 * the most are cut with `MemoryBudgetExceeded` (counted, logged at debug,
 * one warning naming the budget), and reading resumes once back under. The
 * byte servers' decoders (pump path), an Effect handler's read queue and
 * Node's write buffers (fiber path) all count.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Message from "../src/Message.js"
import * as Protocol from "../src/Protocol.js"
import { type Member, MemoryBudget } from "../src/internal/memoryBudget.js"
import * as NetError from "../src/NetError.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import { eventually } from "./helpers/sockets.js"
import { captureLogs } from "./reliability/harness.js"

const MiB = 1024 * 1024
const loopback = Address.tcp("127.0.0.1", 0)

/** A member whose holdings the test sets. */
const fakeMember = (name: string) => {
  const m = {
    name,
    input: 0,
    output: 0,
    charged: 0,
    budgetIndex: -1,
    reading: true,
    cut: undefined as NetError.MemoryBudgetExceeded | undefined,
    remoteAddress: Address.tcp("127.0.0.1", 1000 + name.charCodeAt(0)),
    heldInput: () => m.input,
    pendingOutput: () => m.output,
    budgetPause: () => {
      m.reading = false
    },
    budgetResume: () => {
      m.reading = true
    },
    cutFor: (error: NetError.MemoryBudgetExceeded) => {
      m.cut = error
    }
  }
  return m satisfies Member & Record<string, unknown>
}

describe("MemoryBudget", () => {
  it.live("over the budget: every member pauses, the largest are cut after the grace until under 90 %, then reading resumes", () =>
    Effect.gen(function*() {
      const cutDone = yield* Deferred.make<number>()
      const resumed = yield* Deferred.make<void>()
      const events: Array<string> = []
      const budget = new MemoryBudget(1000, {
        paused: (used) => void events.push(`paused ${used}`),
        cut: (n) => {
          events.push(`cut ${n}`)
          Deferred.doneUnsafe(cutDone, Exit.succeed(n))
        },
        resumed: () => {
          events.push("resumed")
          Deferred.doneUnsafe(resumed, Exit.void)
        }
      })
      const [a, b, c] = [fakeMember("a"), fakeMember("b"), fakeMember("c")]
      for (const m of [a, b, c]) budget.join(m)
      a.input = 300
      budget.update(a)
      b.output = 400
      budget.update(b)
      assert.isFalse(budget.paused)
      assert.strictEqual(budget.used, 700)
      c.input = 200
      c.output = 200
      budget.update(c)
      assert.isTrue(budget.paused, "1100 > 1000")
      assert.deepStrictEqual([a.reading, b.reading, c.reading], [false, false, false])
      assert.strictEqual(yield* Deferred.await(cutDone).pipe(Effect.timeout("2 seconds")), 1)
      yield* Deferred.await(resumed).pipe(Effect.timeout("2 seconds"))
      // The one holding the most (b and c hold 400 each; a sort keeps b first) went: 700 < 900.
      const cut = [a, b, c].filter((m) => m.cut !== undefined)
      assert.strictEqual(cut.length, 1)
      assert.strictEqual(cut[0]!.cut!._tag, "MemoryBudgetExceeded")
      assert.match(cut[0]!.cut!.message, /it held 400 B .* of its 1000 B memoryBudget/)
      assert.include(cut[0]!.cut!.message, Address.format(cut[0]!.remoteAddress))
      assert.isFalse(budget.paused)
      assert.isTrue([a, b, c].filter((m) => m.cut === undefined).every((m) => m.reading))
      assert.deepStrictEqual(events, ["paused 1100", "cut 1", "resumed"])
      assert.strictEqual(budget.cuts, 1)
    }))

  it("a stale charge is measured again before anything pauses (output leaves without an event)", () => {
    const budget = new MemoryBudget(1000, { paused: () => {}, cut: () => {}, resumed: () => {} })
    const [a, b] = [fakeMember("a"), fakeMember("b")]
    budget.join(a)
    budget.join(b)
    a.output = 900
    budget.update(a)
    // a's output left meanwhile; b's growth alone is under the budget.
    a.output = 0
    b.input = 500
    budget.update(b)
    assert.isFalse(budget.paused)
    assert.strictEqual(budget.used, 500)
    budget.leave(b)
    assert.strictEqual(budget.used, 0)
    budget.stop()
  })
})

describe("memoryBudget on a server", () => {
  it.live("pump path (Echo, lines): clients sending without a newline are cut with MemoryBudgetExceeded until the rest fits; warned once, logged at debug, counted; a healthy client is served", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const server = yield* Echo.make({
        address: loopback,
        framing: Framing.lines({ maxLength: 8 * MiB }),
        memoryBudget: 2 * MiB,
        logLevel: "Debug"
      })
      const clients = yield* Effect.forEach(Array.from({ length: 8 }), () => Socket.connect(server.address))
      const payload = new Uint8Array(MiB).fill(97)
      yield* Effect.forEach(clients, (c) => Effect.forkChild(Effect.ignore(c.write(payload))), { discard: true })
      // 8 MiB of unfinished lines against a 2 MiB budget: at most two can hold a whole one.
      const stats = yield* eventually("the cuts", server.stats, (s) => s.failed >= 6, 500, 20)
      const cuts = logs.lines.filter((l) => l.level === "DEBUG" && / ended early: MemoryBudgetExceeded: /.test(l.message))
      assert.strictEqual(cuts.length, stats.failed, JSON.stringify(logs.lines.map((l) => l.message)))
      assert.match(cuts[0]!.message, /it held \d+\.\d [KM]iB \(\d+\.\d [KM]iB of input not read or framed yet/)
      const warnings = logs.warnings()
      assert.isAtLeast(warnings.length, 1)
      assert.include(warnings[0]!.message, "memoryBudget: 2.0 MiB")
      assert.include(warnings[0]!.message, "--memory-budget")
      // Reading resumed: a new client is served.
      const echo = yield* Echo.client(server.address, { framing: "lines" })
      assert.strictEqual(new TextDecoder().decode(yield* echo.request("still here")), "still here")
    }).pipe(Effect.provide(logs.layer))
  })

  it.live("callback path (Protocol.serve): unfinished request frames count; the largest are cut until the rest fits, a new client is served", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const Bytes = Protocol.make({
        framing: Framing.lengthPrefixed({ maxFrameLength: 8 * MiB }),
        incoming: Schema.Uint8Array,
        outgoing: Schema.Uint8Array,
        format: <A, I>(schema: Schema.Codec<A, I>) => Message.make("bytes", schema as unknown as Schema.Codec<A, Uint8Array>)
      })
      const server = yield* Server.make({
        address: loopback,
        memoryBudget: 2 * MiB,
        logLevel: "Debug",
        handler: Protocol.serve(Bytes, (request) => Effect.succeed(request))
      })
      const clients = yield* Effect.forEach(Array.from({ length: 8 }), () => Socket.connect(server.address))
      // Each announces a 4 MiB frame and sends 1 MiB of it: 8 MiB unfinished against a 2 MiB budget.
      const head = new Uint8Array([0, 0x40, 0, 0])
      const body = new Uint8Array(MiB).fill(7)
      yield* Effect.forEach(clients, (c) => Effect.forkChild(Effect.ignore(c.writeAll([head, body]))), { discard: true })
      const stats = yield* eventually("the cuts", server.stats, (s) => s.failed >= 6, 500, 20)
      const cuts = logs.lines.filter((l) => l.level === "DEBUG" && / ended early: MemoryBudgetExceeded: /.test(l.message))
      assert.strictEqual(cuts.length, stats.failed, JSON.stringify(logs.lines.map((l) => l.message)))
      // Reading resumed: a new client gets its answer.
      const client = yield* Protocol.client(yield* Socket.connect(server.address), Bytes)
      assert.deepStrictEqual(yield* client.request(new Uint8Array([1, 2, 3])), new Uint8Array([1, 2, 3]))
    }).pipe(Effect.provide(logs.layer))
  })

  it.live("callback path, parked (Protocol.serve with a handler that waits): the frames of the read it holds count; the largest are cut at once, their handlers interrupted, the others answered in full", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const Bytes = Protocol.make({
        framing: Framing.lengthPrefixed(),
        incoming: Schema.Uint8Array,
        outgoing: Schema.Uint8Array,
        format: <A, I>(schema: Schema.Codec<A, I>) => Message.make("bytes", schema as unknown as Schema.Codec<A, Uint8Array>)
      })
      const go = yield* Deferred.make<void>()
      let interrupted = 0
      const server = yield* Server.make({
        address: loopback,
        memoryBudget: MiB,
        logLevel: "Debug",
        // Every request waits for `go`: each connection parks on the first frame of its read,
        // holding that read's frames (and nothing sits in its socket's read queue).
        handler: Protocol.serve(Bytes, (request) =>
          Deferred.await(go).pipe(
            Effect.as(request),
            Effect.onInterrupt(() => Effect.sync(() => void interrupted++))
          ))
      })
      // 24 clients × 6 frames of 8 KiB in one write (one read each on loopback): 1.2 MiB held
      // by parked handlers against a 1 MiB budget.
      const FRAMES = 6
      const frame = new Uint8Array(4 + 8 * 1024)
      new DataView(frame.buffer).setUint32(0, 8 * 1024)
      const batch = new Uint8Array(FRAMES * frame.length)
      for (let i = 0; i < FRAMES; i++) batch.set(frame, i * frame.length)
      const clients = yield* Effect.forEach(Array.from({ length: 24 }), () => Socket.connect(server.address))
      yield* Effect.forEach(clients, (c) => c.write(batch), { discard: true })
      // Cut at once (not when the handler ends): the stats count them while the others still wait.
      const cutStats = yield* eventually("the cuts", server.stats, (s) => s.failed >= 1, 500, 20)
      assert.strictEqual(cutStats.active + cutStats.failed, 24)
      yield* eventually("the cut handlers' interruption", Effect.sync(() => interrupted), (n) => n === cutStats.failed, 500, 20)
      const cuts = logs.lines.filter((l) => l.level === "DEBUG" && / ended early: MemoryBudgetExceeded: /.test(l.message))
      assert.strictEqual(cuts.length, cutStats.failed, JSON.stringify(logs.lines.map((l) => l.message)))
      yield* Deferred.succeed(go, void 0)
      // Every client that was not cut gets its 6 answers.
      const answered = yield* Effect.forEach(clients, (c) =>
        Stream.runFold(c.reads, () => 0, (n: number, b: Uint8Array) => n + b.length).pipe(
          Effect.timeout("5 seconds"),
          Effect.catch(() => Effect.succeed(-1)),
          Effect.forkChild
        ))
      yield* Effect.forEach(clients, (c) => Effect.ignore(c.end), { discard: true })
      const stats = yield* eventually("every connection to end", server.stats, (s) => s.active === 0, 500, 20)
      const bytes = yield* Effect.forEach(answered, (fiber) => Fiber.join(fiber))
      const whole = bytes.filter((n) => n === batch.length).length
      assert.strictEqual(whole, 24 - stats.failed, bytes.join(","))
      assert.strictEqual(stats.failed, cutStats.failed)
    }).pipe(Effect.provide(logs.layer))
  })

  it.live("fiber path: an Effect handler's read queues count; the largest are cut and their reads fail with MemoryBudgetExceeded, the others read everything", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const outcomes: Array<string> = []
      const go = yield* Deferred.make<void>()
      const server = yield* Server.make({
        address: loopback,
        listen: { readBufferSize: 8 * MiB },
        memoryBudget: 3 * MiB,
        // Reads one batch, then nothing until told, so the rest waits in the socket's read queue.
        handler: (socket) =>
          Effect.gen(function*() {
            const pull = yield* Stream.toPull(socket.reads)
            let n = (yield* pull).reduce((sum, b) => sum + b.length, 0)
            yield* Deferred.await(go)
            n += yield* Stream.runFold(Stream.fromPull(Effect.succeed(pull)), () => 0, (sum, b) => sum + b.length)
            outcomes.push(`read ${n}`)
          }).pipe(Effect.tapError((e) => Effect.sync(() => void outcomes.push(e._tag)))),
        logLevel: "Warn"
      })
      const clients = yield* Effect.forEach(Array.from({ length: 4 }), () => Socket.connect(server.address))
      // 1 MiB each, then EOF; 4 MiB against a 3 MiB budget.
      yield* Effect.forEach(
        clients,
        (c) => Effect.forkChild(Effect.ignore(Effect.andThen(c.write(new Uint8Array(MiB)), c.end))),
        { discard: true }
      )
      // The handlers learn of a cut when they read again: wait for the budget's warning.
      yield* eventually("the budget's warning", Effect.sync(() => logs.warnings().length), (n) => n >= 1, 500, 20)
      assert.include(logs.warnings()[0]!.message, "1 connection holding the most closed with MemoryBudgetExceeded")
      yield* Deferred.succeed(go, void 0)
      const stats = yield* eventually("every handler to end", server.stats, (s) => s.active === 0, 500, 20)
      const cut = outcomes.filter((o) => o === "MemoryBudgetExceeded").length
      assert.strictEqual(cut, stats.failed, outcomes.join(", "))
      assert.isAtLeast(cut, 1)
      assert.deepStrictEqual(outcomes.filter((o) => o.startsWith("read")), Array(4 - cut).fill(`read ${MiB}`))
    }).pipe(Effect.provide(logs.layer))
  })

  it.live("fiber path: output the peers do not take counts; non-reading peers of a large reply are cut", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: loopback,
        memoryBudget: 8 * MiB,
        handler: (socket) =>
          Effect.andThen(Stream.runHead(socket.reads), socket.write(new Uint8Array(32 * MiB))),
        logLevel: "None"
      })
      const clients = yield* Effect.forEach(Array.from({ length: 2 }), () => Socket.connect(server.address))
      yield* Effect.forEach(clients, (c) => c.write(new Uint8Array([1])), { discard: true })
      // Each reply waits in Node's buffer (what the kernel does not hold): far over 8 MiB together.
      const stats = yield* eventually("a cut", server.stats, (s) => s.failed >= 1, 500, 20)
      assert.isAtLeast(stats.failed, 1)
    }))
})
