/**
 * Hardening of the byte servers (issue 18, finding 1), with real processes:
 * `effect-wire serve echo --framing lines` with its operator defaults (a
 * 256 MiB memory budget, 8 MiB frames, a 30 s write timeout) holds its
 * memory under the budget while hundreds of clients each send 8 MiB
 * without a newline (the ones holding the most are cut, counted and
 * logged), and clients that send and never read are cut by the write
 * timeout; the server keeps serving throughout.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as Echo from "../../src/servers/Echo.js"
import * as Socket from "../../src/Socket.js"
import { exitedWithin, FULL, MiB, noUnhandledErrors, printSummary, rss, serveCli, track } from "./harness.js"

afterAll(printSummary)

const BUDGET = 256 * MiB
const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`
const FRAME = 8 * MiB

/**
 * Floods a `serve echo --framing lines` child with `clients` connections of
 * 8 MiB without a newline; its RSS readings, the clients' outcomes and its
 * output once it was stopped with SIGTERM.
 */
const flood = (clients: number, env: NodeJS.ProcessEnv) =>
  Effect.gen(function*() {
    const server = yield* serveCli(["echo", "--port", "0", "--framing", "lines", "--log-level", "info"], env)
    const baseline = rss(server.pid)
    const stopPeak = yield* rssPeak(server.pid)
    const payload = new Uint8Array(FRAME).fill(0x61)
    const sockets = yield* Effect.forEach(Array.from({ length: clients }), () => Socket.connect(server.address), {
      concurrency: 50
    })
    const started = performance.now()
    // Each write completes (the bytes left for the server's kernel buffers) or fails (cut first).
    yield* Effect.forEach(sockets, (s) => Effect.ignore(s.write(payload)), { concurrency: "unbounded", discard: true }).pipe(
      Effect.timeout("120 seconds"),
      Effect.orDie
    )
    const floodMs = performance.now() - started
    const peak = yield* stopPeak
    const after = rss(server.pid)
    // It still serves, with lines.
    const echo = yield* Echo.client(server.address, { framing: "lines" })
    const answer = new TextDecoder().decode(yield* echo.request("still here"))
    yield* Effect.forEach(sockets, (s) => s.reset, { discard: true })
    process.kill(server.pid, "SIGTERM")
    const exit = yield* exitedWithin(server, "30 seconds")
    return { baseline, peak, after, floodMs, answer, exit, output: server.output() }
  }).pipe(Effect.scoped)

/** Samples a process's RSS every 50 ms until stopped; `stop` gives the peak. */
const rssPeak = (pid: number) =>
  Effect.gen(function*() {
    let peak = rss(pid)
    const sampling = yield* Effect.forkChild(Effect.forever(Effect.andThen(Effect.sleep(50), Effect.sync(() => {
      peak = Math.max(peak, rss(pid))
    }))))
    return Effect.as(Fiber.interrupt(sampling), undefined).pipe(Effect.map(() => Math.max(peak, rss(pid))))
  })

/**
 * glibc's malloc raises its mmap threshold as large blocks are freed (up to
 * 32 MiB), so later multi-MiB buffers come from its heap and, once freed,
 * stay in the process's RSS. Fixing the threshold returns them at once.
 */
const ALLOCATOR_ENV = { ...process.env, MALLOC_MMAP_THRESHOLD_: "131072" }

/** The count of `tag` in the server's summary lines of expected endings (`… ended early in …: 12 Tag, …`). */
const endedEarly = (output: string, tag: string): number => {
  let n = 0
  for (const match of output.matchAll(new RegExp(`ended early in [^:]+:[^\\n]*?\\b(\\d+) ${tag}\\b`, "g"))) {
    n += Number(match[1])
  }
  return n
}

describe("hardening: the byte servers", () => {
  it.live(
    "memory budget: serve echo --framing lines with its defaults; clients each send 8 MiB without a newline; the server's RSS stays under budget + baseline, the largest are cut (MemoryBudgetExceeded, counted, warned), and it still serves",
    (ctx) => {
      const clients = FULL ? 200 : 60
      const row = track(ctx, `${clients} x 8 MiB without newline vs --memory-budget 256MiB`)
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const run = yield* flood(clients, ALLOCATOR_ENV)
        assert.strictEqual(run.exit.code, 0, run.output)
        assert.strictEqual(run.answer, "still here", "it still serves")
        const cut = endedEarly(run.output, "MemoryBudgetExceeded")
        // The same without the allocator setting, at full scale: measured, not asserted (see docs/reliability.md).
        const plain = FULL ? yield* flood(clients, process.env) : undefined
        const runs = plain === undefined ? 1 : 2
        row.connections = runs * (clients + 1)
        row.bytes = runs * clients * FRAME
        row.faults = runs * clients
        row.notes.push(
          `server RSS ${mib(run.baseline)} -> peak ${mib(run.peak)} (budget ${BUDGET / MiB} MiB; ${
            mib(run.after)
          } after the flood)`,
          `${cut} of ${clients} cut with MemoryBudgetExceeded, flood ${(run.floodMs / 1000).toFixed(1)} s`
        )
        if (plain !== undefined) {
          row.notes.push(
            `with glibc's default mmap threshold: RSS ${mib(plain.baseline)} -> peak ${mib(plain.peak)}, ${
              endedEarly(plain.output, "MemoryBudgetExceeded")
            } cut`
          )
          assert.strictEqual(plain.exit.code, 0, plain.output)
        }
        assert.isBelow(run.peak - run.baseline, BUDGET, "RSS under budget + baseline")
        // More than the budget was sent: some were cut (the survivors' lines may lie partly in kernel buffers).
        assert.isAtLeast(cut, 1)
        assert.isAtMost(cut, clients)
        assert.include(run.output, "memoryBudget: 256.0 MiB")
        yield* guard.check
      })
    },
    300_000
  )

  it.live(
    "write timeout: clients that send lines and never read the echo are cut with WriteTimeout (counted), RSS stays low, and the server still serves",
    (ctx) => {
      const row = track(ctx, `${FULL ? 200 : 30} non-reading clients vs --write-timeout 2s`)
      const clients = FULL ? 200 : 30
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const server = yield* serveCli([
          "echo",
          "--port",
          "0",
          "--framing",
          "lines",
          "--write-timeout",
          "2s",
          "--log-level",
          "info"
        ], ALLOCATOR_ENV)
        const baseline = rss(server.pid)
        const stopPeak = yield* rssPeak(server.pid)
        // 32 MiB of short lines each: far more than the kernel's buffers hold both ways.
        const line = new TextEncoder().encode("x".repeat(1023) + "\n")
        const payload = new Uint8Array(32 * MiB)
        for (let i = 0; i < payload.length; i += line.length) payload.set(line, i)
        const sockets = yield* Effect.forEach(Array.from({ length: clients }), () => Socket.connect(server.address), {
          concurrency: 50
        })
        const started = performance.now()
        const outcomes = yield* Effect.forEach(sockets, (s) =>
          Effect.result(s.write(payload)).pipe(Effect.map(Result.isSuccess)), { concurrency: "unbounded" }).pipe(
            Effect.timeout("120 seconds"),
            Effect.orDie
          )
        const tookMs = performance.now() - started
        const peak = yield* stopPeak
        const echo = yield* Echo.client(server.address, { framing: "lines" })
        assert.strictEqual(new TextDecoder().decode(yield* echo.request("still here")), "still here")
        process.kill(server.pid, "SIGTERM")
        const exit = yield* exitedWithin(server, "30 seconds")
        assert.strictEqual(exit.code, 0, server.output())
        const cut = endedEarly(server.output(), "WriteTimeout")
        row.connections = clients + 1
        row.faults = clients
        row.bytes = clients * 32 * MiB
        row.notes.push(
          `${cut} cut with WriteTimeout after ${(tookMs / 1000).toFixed(1)} s`,
          `server RSS ${(baseline / MiB).toFixed(0)} MiB -> peak ${(peak / MiB).toFixed(0)} MiB`,
          `${outcomes.filter((ok) => !ok).length} client writes failed`
        )
        assert.strictEqual(cut, clients, server.output().slice(-2000))
        assert.isBelow(peak - baseline, BUDGET)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    300_000
  )
})
