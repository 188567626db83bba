/**
 * Where a server's time goes under one workload: runs it under
 * `node --cpu-prof`, drives it with the bench's load generator, and prints the
 * self time by area (effect, effect-wire, Node, GC) and the top frames.
 *
 *   node dist/bench/profile.js [--server wire-framed] [--workload pingpong|pipeline|stream|connections]
 *                              [--seconds 5] [--top 25] [--cli path/to/cli/main.js]
 *
 * The profile stays in .bench-results/profiles/ for Chrome DevTools or speedscope.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Job } from "./common.js"
import { DEFAULT_CLI, detectPinning, killAll, ROOT, runJob, ServerProcess } from "./processes.js"
import { type ServerId, speaks } from "./report.js"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}

interface Profile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame }>
  readonly samples: ReadonlyArray<number>
  /** µs since the previous sample; their running sum is the time since the profile started. */
  readonly timeDeltas: ReadonlyArray<number>
}

const USAGE = `usage: node dist/bench/profile.js [--server node-raw|node-framed|wire|wire-framed|wire-protocol|…, any of run.js --servers]
         [--workload pingpong|pipeline|stream|connections] [--seconds 5] [--top 25] [--cli path/to/cli/main.js]`

const option = (name: string, fallback: string): string => {
  const args = process.argv.slice(2)
  const at = args.indexOf(name)
  return at >= 0 && args[at + 1] !== undefined ? args[at + 1]! : fallback
}

const V8_PSEUDO_FRAMES = new Set(["(garbage collector)", "(program)", "(idle)", "(root)"])

const area = (frame: CallFrame): string => {
  if (frame.url === "") return V8_PSEUDO_FRAMES.has(frame.functionName) ? frame.functionName : "native (libuv, bindings)"
  if (frame.url.includes("/node_modules/effect/")) return "effect"
  if (frame.url.includes("/node_modules/@effect/")) return "@effect/*"
  if (frame.url.includes("/dist/src/")) return "effect-wire"
  if (frame.url.startsWith("node:")) return "node internals"
  return "other"
}

const shortUrl = (url: string): string =>
  url.replace(/^file:\/\//, "").replace(/.*\/node_modules\//, "").replace(`${ROOT}/`, "")

/**
 * Self time per frame between `fromUs` and `toUs` after the profile started
 * (so start-up's module loading stays out): each sample's time delta goes to
 * the frame on top of the stack.
 */
const selfTimes = (profile: Profile, fromUs: number, toUs: number) => {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]))
  const byFrame = new Map<string, { frame: CallFrame; us: number }>()
  const byArea = new Map<string, number>()
  let total = 0
  let at = 0
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0
    at += us
    if (at < fromUs || at > toUs) return
    const frame = frames.get(id)!
    const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}`
    const entry = byFrame.get(key) ?? { frame, us: 0 }
    entry.us += us
    byFrame.set(key, entry)
    byArea.set(area(frame), (byArea.get(area(frame)) ?? 0) + us)
    total += us
  })
  return { byFrame: [...byFrame.values()].sort((a, b) => b.us - a.us), byArea, total }
}

const main = async (): Promise<void> => {
  if (process.argv.includes("--help")) {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const server = option("--server", "wire-framed") as ServerId
  const workload = option("--workload", "pingpong")
  const seconds = Number(option("--seconds", "5"))
  const top = Number(option("--top", "25"))
  const cli = Path.resolve(option("--cli", DEFAULT_CLI))
  const jobs: Record<string, Job> = {
    pingpong: { kind: "pingpong", speaks: speaks(server), connections: 8, bodySize: 64, warmupMs: 500, durationMs: seconds * 1000 },
    pipeline: { kind: "pipeline", speaks: speaks(server), connections: 8, depth: 32, bodySize: 64, warmupMs: 500, durationMs: seconds * 1000 },
    stream: { kind: "stream", connections: 4, bytesPerConnection: 256 * 2 ** 20, writeSize: 65536, timeoutMs: 120_000 },
    connections: {
      kind: "connections",
      speaks: speaks(server),
      warmup: 250,
      connections: 1000,
      churnWarmup: 2000,
      churn: seconds * 1000,
      concurrency: 50,
      settleMs: 200,
      timeoutMs: 60_000
    }
  }
  const job = jobs[workload]
  if (job === undefined || !Number.isFinite(seconds) || seconds <= 0) {
    process.stderr.write(`${USAGE}\n`)
    process.exit(2)
  }
  const pinning = detectPinning(true)
  const dir = Path.join(ROOT, ".bench-results", "profiles", `${new Date().toISOString().replace(/[:.]/g, "-")}-${server}-${workload}`)
  Fs.mkdirSync(dir, { recursive: true })
  const running = await ServerProcess.start(server, pinning.server, cli, ["--cpu-prof", `--cpu-prof-dir=${dir}`])
  const jobStart = performance.now()
  const result = await runJob(running, job, pinning.load)
  const jobEnd = performance.now()
  // A clean exit (SIGTERM, then the server's own shutdown) is what makes node write the profile.
  await running.stop()
  if (result.errors.length > 0) throw new Error(`the load failed: ${result.errors.join("; ")}`)
  const file = Fs.readdirSync(dir).find((f) => f.endsWith(".cpuprofile"))
  if (file === undefined) throw new Error(`no profile in ${dir}: did the server exit cleanly on SIGTERM?`)
  // The profile's clock starts when the server's node boots, just after the spawn; the load
  // generator needs ~0.2 s to boot and connect before its warm-up starts (the stream echo and
  // the connections have none of fixed length: their whole run counts).
  const warmupMs = ("warmupMs" in job ? job.warmupMs : 0) + 200
  const fromUs = (jobStart - running.spawnedAt + warmupMs) * 1000
  const toUs = (jobEnd - running.spawnedAt) * 1000
  const profile = JSON.parse(Fs.readFileSync(Path.join(dir, file), "utf8")) as Profile
  const { byArea, byFrame, total } = selfTimes(profile, fromUs, toUs)
  const busy = total - (byArea.get("(idle)") ?? 0)
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1)}%`
  const lines = [
    `## ${server} under ${workload} (${pinning.note})`,
    "",
    `Load: ${Object.entries(result.metrics).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    `Profile: ${Path.relative(process.cwd(), Path.join(dir, file))}; ${(busy / 1e6).toFixed(2)} s busy of the ${(total / 1e6).toFixed(2)} s after the warm-up (the rest idle). Shares are of the busy time.`,
    "",
    "| area | self time |",
    "| --- | --- |",
    ...[...byArea.entries()].filter(([a]) => a !== "(idle)").sort((a, b) => b[1] - a[1]).map(([a, us]) =>
      `| ${a} | ${pct(us)} |`
    ),
    "",
    "| self time | function | where |",
    "| --- | --- | --- |",
    ...byFrame.filter((e) => e.frame.functionName !== "(idle)").slice(0, top).map((e) =>
      `| ${pct(e.us)} | ${e.frame.functionName || "(anonymous)"} | ${
        e.frame.url === "" ? "" : `${shortUrl(e.frame.url)}:${e.frame.lineNumber + 1}`
      } |`
    )
  ]
  process.stdout.write(`${lines.join("\n")}\n`)
}

main().catch((error) => {
  process.stderr.write(`profile: ${error instanceof Error ? error.message : String(error)}\n`)
  killAll()
  process.exit(1)
})
