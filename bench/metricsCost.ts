/**
 * The metrics' cost on the hot path, in one process and without sockets, so
 * that a loaded machine's noise stays out: `Protocol.serve`'s read handler
 * (the callback path: cut the frames, decode, answer, encode) driven with
 * reads of 32 frames of 64 B, metrics on against metrics off, and with
 * request spans (`traceRequests`, a tracer that keeps nothing). Each
 * variant runs in a process of its own (in one process the JIT would see
 * every variant's shapes at once), the processes alternate for `--rounds`
 * rounds; the figure per variant is the fastest round's CPU time per frame
 * (process.cpuUsage, after a warm-up), and the median.
 *
 *   node dist/bench/metricsCost.js [--rounds 9] [--reads 5000]
 */
import { execFileSync } from "node:child_process"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import * as Framing from "../src/Framing.js"
import { callbackServeOf } from "../src/internal/callbackServe.js"
import * as Message from "../src/Message.js"
import * as Metrics from "../src/Metrics.js"
import * as Protocol from "../src/Protocol.js"
import type * as Socket from "../src/Socket.js"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const ROUNDS = arg("--rounds", 15)
const READS = arg("--reads", 20_000)
const FRAMES = 32

const Bytes = Protocol.make({
  name: "bench",
  framing: Framing.lengthPrefixed(),
  incoming: Schema.Uint8Array,
  outgoing: Schema.Uint8Array,
  format: <A, I>(schema: Schema.Codec<A, I>) => Message.make("bytes", schema as unknown as Schema.Codec<A, Uint8Array>)
})

// One read: 32 frames, each a 4-byte length and 64 bytes.
const read = Buffer.alloc(FRAMES * 68)
for (let i = 0; i < FRAMES; i++) read.writeUInt32BE(64, i * 68)

const fakeSocket = { writeAll: () => Effect.void, end: Effect.void } as unknown as Socket.Socket

const variant = (services: Context.Context<never>, traceRequests: boolean) => {
  const handler = Protocol.serve(Bytes, (request) => Effect.succeed(request), { traceRequests })
  const inCallbacks = callbackServeOf(handler)!
  const runFork = Effect.runForkWith(services)
  return () => {
    const pump = inCallbacks(fakeSocket, { signal: undefined, runFork: runFork as never, services })
    const out: Array<Uint8Array> = []
    const start = process.cpuUsage()
    for (let i = 0; i < READS; i++) {
      const park = pump.onRead(read, out)
      if (park !== undefined) throw new Error("a read parked")
      out.length = 0
    }
    const used = process.cpuUsage(start)
    return ((used.user + used.system) * 1000) / (READS * FRAMES) // ns per frame
  }
}

const base = Context.add(Context.empty(), Metric.MetricRegistry, new Map())
const variants: Record<string, () => () => number> = {
  "metrics on (default)": () => variant(base, false),
  "metrics off": () => variant(Context.add(base, Metrics.Enabled, false), false),
  "metrics on, request spans": () =>
    variant(
      Context.add(base, Tracer.Tracer, Tracer.make({ span: (options) => Tracer.nativeTracer.span(options) })),
      true
    )
}

const only = process.argv.indexOf("--variant")
if (only > 0) {
  // A child: one variant, warmed up, then measured once.
  const run = variants[process.argv[only + 1]!]!()
  run()
  run()
  process.stdout.write(`${run()}\n`)
  process.exit(0)
}
const results = new Map<string, Array<number>>(Object.keys(variants).map((k) => [k, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (const name of Object.keys(variants)) {
    const out = execFileSync(process.execPath, [process.argv[1]!, "--variant", name, "--reads", String(READS)], {
      encoding: "utf8"
    })
    results.get(name)!.push(Number(out.trim()))
  }
}
const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const off = Math.min(...results.get("metrics off")!)
process.stdout.write(`Protocol.serve read handler, ${FRAMES} frames of 64 B per read, ${READS} reads × ${ROUNDS} rounds\n`)
for (const [name, xs] of results) {
  const best = Math.min(...xs)
  process.stdout.write(
    `  ${name.padEnd(28)} ${best.toFixed(1)} ns/frame fastest (× ${(best / off).toFixed(3)} of off), median ${
      median(xs).toFixed(1)
    }\n`
  )
}
