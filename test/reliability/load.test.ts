/**
 * Load and limits: one server process holds and serves a thousand
 * connections at once; past `maxConnections` the documented behaviour holds
 * (`"queue"`: further connections wait and are served when a slot frees;
 * `"refuse"`: they are closed at once and counted), and nothing crashes.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Fs from "node:fs"
import * as Address from "../../src/Address.js"
import * as Server from "../../src/Server.js"
import * as Echo from "../../src/servers/Echo.js"
import {
  bytesEqual,
  eventually,
  noUnhandledErrors,
  openFds,
  pattern,
  printSummary,
  scale,
  serveCli,
  track
} from "./harness.js"

afterAll(printSummary)

const loopback = Address.tcp("127.0.0.1", 0)

/** The soft limit on open files of this process (`ulimit -n`); children inherit it. */
const fileLimit = (): number => {
  const line = Fs.readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"))
  const soft = line?.split(/\s{2,}/)[1]
  return soft === undefined || soft === "unlimited" ? Infinity : Number(soft)
}

/**
 * `count` clients of `address`: each connects, sends one request, reports
 * the outcome, then holds its connection until its own `release` completes
 * (or does a second request first when `again` is set).
 */
const heldClients = (address: Address.Address, count: number) =>
  Effect.gen(function*() {
    const releases = yield* Effect.forEach(Array.from({ length: count }), () => Deferred.make<void>())
    const outcomes: Array<"answered" | string> = []
    const answered: Array<number> = []
    const client = (i: number) =>
      Effect.scoped(Effect.gen(function*() {
        const c = yield* Echo.client(address, { framing: "length" })
        const payload = pattern(200, i)
        const reply = yield* Effect.result(c.request(payload))
        if (Result.isFailure(reply)) {
          outcomes.push(reply.failure._tag)
          return
        }
        outcomes.push(bytesEqual(reply.success, payload) ? "answered" : "wrong answer")
        answered.push(i)
        yield* Deferred.await(releases[i]!)
      }))
    return { releases, outcomes, answered, client }
  })

const count = (xs: ReadonlyArray<string>, x: string) => xs.filter((y) => y === x).length

describe("load and limits", () => {
  it.live(
    `one effect-wire serve process holds ${scale.heldConnections} connections at once and serves every one of them, twice, within its default limit of 1024`,
    (ctx) => {
      const row = track(ctx, `${scale.heldConnections} held connections (CLI echo)`)
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const limit = fileLimit()
        row.notes.push(`ulimit -n ${limit}`)
        // This process holds the clients, the child the server ends: each needs n + some descriptors.
        assert.isAbove(limit, scale.heldConnections + 200, "raise ulimit -n to run this case")
        const n = scale.heldConnections
        const server = yield* serveCli(["echo", "--port", "0", "--framing", "length"])
        const baseline = openFds(server.pid)
        const allHeld = yield* Deferred.make<void>()
        let firstDone = 0
        let secondOk = 0
        const client = (i: number) =>
          Effect.scoped(Effect.gen(function*() {
            const c = yield* Echo.client(server.address, { framing: "length" })
            const first = pattern(100, i)
            if (!bytesEqual(yield* c.request(first), first)) row.failures++
            if (++firstDone === n) yield* Deferred.succeed(allHeld, undefined)
            // Every connection stays open until all are; then each is served again.
            yield* Deferred.await(allHeld)
            const second = pattern(1000, i + 1)
            if (bytesEqual(yield* c.request(second), second)) secondOk++
            else row.failures++
            row.bytes += 2 * (first.length + second.length)
          }))
        const fiber = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: n }, (_, i) => i), client, { concurrency: "unbounded", discard: true })
        )
        yield* Deferred.await(allHeld).pipe(Effect.timeout("120 seconds"), Effect.orDie)
        const held = openFds(server.pid)
        yield* Fiber.join(fiber)
        const after = yield* eventually("the child's descriptors to return", Effect.sync(() => openFds(server.pid)), (x) => x <= baseline + 2, 500)
        row.connections = n
        row.notes.push(`child fds ${baseline} -> ${held} (all held) -> ${after}`)
        assert.isAtLeast(held - baseline, n, "every connection open at once in the server process")
        assert.strictEqual(secondOk, n)
        assert.strictEqual(row.failures, 0)
        assert.isNull(server.process.exitCode)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    180_000
  )

  it.live(
    "maxConnections 50 with overflow \"queue\" (the default): 30 more clients wait unserved while 50 are held, and are served as soon as slots free; nothing is refused",
    (ctx) => {
      const row = track(ctx, "maxConnections 50, queue")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const server = yield* Server.make({ address: loopback, handler: Echo.handler("length"), maxConnections: 50 })
        const clients = yield* heldClients(server.address, 80)
        const fiber = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 80 }, (_, i) => i), clients.client, { concurrency: "unbounded", discard: true })
        )
        yield* eventually("50 answers", Effect.sync(() => clients.answered.length), (x) => x >= 50, 1000)
        const full = yield* server.stats
        // Nothing happens for the others while the server is full: checked over a bounded window.
        yield* Effect.sleep("300 millis")
        const stillFull = yield* server.stats
        assert.strictEqual(clients.answered.length, 50)
        assert.strictEqual(full.active, 50)
        assert.strictEqual(stillFull.accepted, 50, "the accept loop waits for a free slot")
        // Free 30 slots: the 30 waiting clients are served.
        for (const i of clients.answered.slice(0, 30)) yield* Deferred.succeed(clients.releases[i]!, undefined)
        yield* eventually("80 answers", Effect.sync(() => clients.answered.length), (x) => x >= 80, 1000)
        for (const r of clients.releases) yield* Deferred.succeed(r, undefined)
        yield* Fiber.join(fiber)
        const stats = yield* eventually("connections to end", server.stats, (s) => s.active === 0)
        row.connections = 80
        row.faults = 30
        row.bytes = 400 * clients.answered.length
        row.notes.push(`while full ${JSON.stringify(stillFull)}`, `after ${JSON.stringify(stats)}`)
        assert.strictEqual(count(clients.outcomes, "answered"), 80)
        assert.strictEqual(stats.accepted, 80)
        assert.strictEqual(stats.refused, 0)
        assert.strictEqual(stats.failed, 0)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )

  it.live(
    "maxConnections 50 with overflow \"refuse\": 30 more clients are closed at once with a typed client error and counted as refused; the server then serves new clients",
    (ctx) => {
      const row = track(ctx, "maxConnections 50, refuse")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const server = yield* Server.make({
          address: loopback,
          handler: Echo.handler("length"),
          maxConnections: 50,
          overflow: "refuse"
        })
        const clients = yield* heldClients(server.address, 80)
        const fiber = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 80 }, (_, i) => i), clients.client, { concurrency: "unbounded", discard: true })
        )
        yield* eventually("80 outcomes", Effect.sync(() => clients.outcomes.length), (x) => x >= 80, 1000)
        const full = yield* server.stats
        for (const r of clients.releases) yield* Deferred.succeed(r, undefined)
        yield* Fiber.join(fiber)
        yield* eventually("held connections to end", server.stats, (s) => s.active === 0)
        // A new client after the burst is served normally.
        const late = yield* Effect.scoped(Effect.flatMap(Echo.client(server.address, { framing: "length" }), (c) => c.request(pattern(10))))
        assert.isTrue(bytesEqual(late, pattern(10)))
        const stats = yield* eventually("connections to end", server.stats, (s) => s.active === 0)
        const refusedTags = clients.outcomes.filter((o) => o !== "answered")
        row.connections = 81
        row.faults = refusedTags.length
        row.bytes = 400 * clients.answered.length
        row.notes.push(`client errors ${JSON.stringify(Object.fromEntries([...new Set(refusedTags)].map((t) => [t, count(refusedTags, t)])))}`, `while full ${JSON.stringify(full)}`)
        assert.strictEqual(count(clients.outcomes, "answered"), 50)
        assert.strictEqual(refusedTags.length, 30)
        for (const tag of refusedTags) assert.include(["ConnectionClosed", "ConnectionReset", "BrokenPipe"], tag)
        assert.strictEqual(full.refused, 30)
        assert.strictEqual(stats.accepted, 51)
        assert.strictEqual(stats.failed, 0)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )

  it.live(
    "effect-wire serve echo --max-connections 50: 10 more clients wait while 50 are held and are served once slots free; the process keeps running",
    (ctx) => {
      const row = track(ctx, "CLI --max-connections 50")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const server = yield* serveCli(["echo", "--port", "0", "--framing", "length", "--max-connections", "50"])
        const clients = yield* heldClients(server.address, 60)
        const fiber = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 60 }, (_, i) => i), clients.client, { concurrency: "unbounded", discard: true })
        )
        yield* eventually("50 answers", Effect.sync(() => clients.answered.length), (x) => x >= 50, 1000)
        yield* Effect.sleep("300 millis")
        assert.strictEqual(clients.answered.length, 50, "the other 10 wait")
        for (const i of clients.answered.slice(0, 10)) yield* Deferred.succeed(clients.releases[i]!, undefined)
        yield* eventually("60 answers", Effect.sync(() => clients.answered.length), (x) => x >= 60, 1000)
        for (const r of clients.releases) yield* Deferred.succeed(r, undefined)
        yield* Fiber.join(fiber)
        row.connections = 60
        row.faults = 10
        row.bytes = 400 * clients.answered.length
        assert.strictEqual(count(clients.outcomes, "answered"), 60)
        assert.isNull(server.process.exitCode)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )
})
