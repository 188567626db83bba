/**
 * Churn and leaks: thousands of connect/exchange/close cycles at concurrency
 * 100 against each built-in server leave file descriptors, active
 * connections and heap where they started (within a small margin), in this
 * process and in an `effect-wire serve` child.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Address from "../../src/Address.js"
import type * as Server from "../../src/Server.js"
import * as Echo from "../../src/servers/Echo.js"
import * as Exec from "../../src/servers/Exec.js"
import * as Upper from "../../src/servers/Upper.js"
import * as Socket from "../../src/Socket.js"
import {
  bytesEqual,
  concatBytes,
  eventually,
  gc,
  memory,
  MiB,
  noUnhandledErrors,
  openFds,
  pattern,
  printSummary,
  rss,
  scale,
  serveCli,
  signedMiB,
  track
} from "./harness.js"

afterAll(printSummary)

const loopback = Address.tcp("127.0.0.1", 0)
const utf8 = new TextEncoder()
const text = new TextDecoder()

/** Raw mode by hand: write, half-close, read to the end. */
const rawCycle = (address: Address.Address, i: number) =>
  Effect.scoped(Effect.gen(function*() {
    const s = yield* Socket.connect(address)
    const payload = pattern(1024, i)
    yield* s.write(payload)
    yield* s.end
    const answer = yield* Stream.runFold(s.reads, () => [] as Array<Uint8Array>, (all, b) => (all.push(b), all))
    return bytesEqual(concatBytes(answer), payload) ? 1024 * 2 : -1
  }))

interface Target {
  readonly name: string
  readonly start: Effect.Effect<Server.RunningServer, unknown, import("effect/Scope").Scope>
  readonly cycle: (address: Address.Address, i: number) => Effect.Effect<number, unknown>
}

/** Framed mode through the echo client. */
const framedEchoCycle = (address: Address.Address, i: number) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Echo.client(address, { framing: "length" })
    const payload = pattern(512 + (i % 512), i)
    return bytesEqual(yield* client.request(payload), payload) ? payload.length * 2 : -1
  }))

/** The servers churned in this process (framed echo is churned in a child process below). */
const targets: ReadonlyArray<Target> = [
  { name: "echo raw", start: Echo.make({ address: loopback }), cycle: rawCycle },
  {
    name: "upper lines",
    start: Upper.make({ address: loopback, framing: "lines" }),
    cycle: (address, i) =>
      Effect.scoped(Effect.gen(function*() {
        const client = yield* Upper.client(address, { framing: "lines" })
        const line = `cycle ${i} of the churn`
        return text.decode(yield* client.request(utf8.encode(line))) === line.toUpperCase() ? line.length * 2 : -1
      }))
  },
  {
    name: "exec",
    start: Exec.make({ address: loopback, allow: ["echo"], concurrency: 8 }),
    cycle: (address, i) =>
      Effect.scoped(Effect.gen(function*() {
        const client = yield* Exec.client(address)
        const result = yield* client.run(["echo", `cycle ${i}`])
        return text.decode(result.stdout) === `cycle ${i}\n` ? result.stdout.length : -1
      }))
  }
]

/** Run `cycles` cycles, `concurrency` at a time; counts bytes and wrong answers into `row`. */
const churn = (
  row: { bytes: number; failures: number; connections: number },
  cycles: number,
  cycle: (i: number) => Effect.Effect<number, unknown>
) =>
  Effect.forEach(
    Array.from({ length: cycles }, (_, i) => i),
    (i) =>
      Effect.map(Effect.result(cycle(i)), (r) => {
        row.connections++
        if (r._tag === "Success" && r.success >= 0) row.bytes += r.success
        else row.failures++
      }),
    { concurrency: scale.churnConcurrency, discard: true }
  )

describe("churn and leaks", () => {
  for (const target of targets) {
    // Exec spawns a process per cycle: a tenth of the cycles keeps the case within budget.
    const cycles = target.name === "exec" ? scale.churnCycles / 10 : scale.churnCycles
    it.live(
      `${target.name}: ${cycles} connect/exchange/close cycles at concurrency ${scale.churnConcurrency} leave descriptors, active connections and heap at their baseline`,
      (ctx) => {
        const row = track(ctx, `churn ${target.name} x${cycles}`)
        return Effect.gen(function*() {
          const guard = yield* noUnhandledErrors
          const server = yield* target.start
          // Warm up: first-use allocations (code, pools) are not leaks.
          yield* churn({ bytes: 0, failures: 0, connections: 0 }, 100, (i) => target.cycle(server.address, i))
          yield* eventually("warm-up connections to end", server.stats, (s) => s.active === 0)
          const fds = openFds()
          const heap = memory().heap
          const started = performance.now()
          yield* churn(row, cycles, (i) => target.cycle(server.address, i))
          const elapsed = performance.now() - started
          const stats = yield* eventually("connections to end", server.stats, (s) => s.active === 0, 500)
          // Sockets close asynchronously after their scopes: wait for the descriptors.
          const fdsAfter = yield* eventually("descriptors to return", Effect.sync(() => openFds()), (n) => n <= fds + 4, 500)
          const heapAfter = memory().heap
          row.notes.push(
            `${Math.round(cycles / (elapsed / 1000))} cycles/s`,
            `fds ${fds} -> ${fdsAfter}`,
            `heap ${signedMiB(heapAfter - heap)}${gc === undefined ? " (no gc)" : ""}`,
            `server ${JSON.stringify(stats)}`
          )
          assert.strictEqual(row.failures, 0)
          assert.strictEqual(stats.failed, 0)
          assert.strictEqual(stats.completed, stats.accepted)
          assert.isBelow(heapAfter - heap, (gc === undefined ? 32 : 8) * MiB)
          yield* guard.check
        }).pipe(Effect.scoped)
      },
      300_000
    )
  }

  it.live(
    `effect-wire serve echo --framing length (child process): ${scale.churnCycles} cycles leave its descriptors at the baseline and its RSS bounded`,
    (ctx) => {
      const row = track(ctx, `churn CLI echo length x${scale.churnCycles}`)
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const server = yield* serveCli(["echo", "--port", "0", "--framing", "length"])
        const cycle = framedEchoCycle
        yield* churn({ bytes: 0, failures: 0, connections: 0 }, 100, (i) => cycle(server.address, i))
        const fds = yield* eventually("warm-up connections to close", Effect.sync(() => openFds(server.pid)), (n) => n < 64)
        const rssBefore = rss(server.pid)
        yield* churn(row, scale.churnCycles, (i) => cycle(server.address, i))
        const fdsAfter = yield* eventually(
          "the child's descriptors to return",
          Effect.sync(() => openFds(server.pid)),
          (n) => n <= fds + 2,
          500
        )
        const rssAfter = rss(server.pid)
        row.notes.push(`child fds ${fds} -> ${fdsAfter}`, `child RSS ${(rssBefore / MiB).toFixed(0)} -> ${(rssAfter / MiB).toFixed(0)} MiB`)
        assert.strictEqual(row.failures, 0)
        assert.isNull(server.process.exitCode)
        // No gc in the child: RSS may keep some garbage, but not a leak's worth (bytes moved: ~1.5 MiB per 1000 cycles).
        assert.isBelow(rssAfter - rssBefore, 64 * MiB)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    300_000
  )
})
