/**
 * The TLS bench of issue 14: effect-wire's TLS echo (`serve echo --tls-cert
 * --tls-key`, the pump path) against a hand-written `node:tls` echo
 * (bench/tlsServers.ts) on the same Node, each a process of its own, driven
 * by bench/tlsLoad.ts: stream throughput, ping-pong round trips, and full
 * handshakes per second with the server's CPU per handshake. Both servers
 * present the same certificate (EC P-256, made with the `openssl` command at
 * the start of the run); the clients check it as real clients do.
 *
 * `npm run bench` runs it after the plaintext servers (`--no-tls` skips it,
 * `--tls-only` runs it alone); standalone:
 *
 *   node dist/bench/tls.js [--quick] [--reps 3] [--no-pin] [--only stream,pingpong,handshakes] [--cli FILE]
 *
 * (`--cli`: the effect-wire command line to run, default dist/src/cli/main.js; the
 * server is started with the bin.js next to it, the `effect-wire` executable.)
 *
 * Targets (issue 14): ≥ 0.90× node:tls on stream throughput and on
 * ping-pong round trips, ≤ 1.2× its server CPU per handshake; each judged on
 * the median of per-repetition ratios, each repetition measuring the two
 * servers seconds apart in alternating order.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { Target } from "./common.js"
import {
  DEFAULT_CLI,
  detectPinning,
  exited,
  exitsWithin,
  HERE,
  killAll,
  launch,
  loadOutput,
  type Pinning,
  tail
} from "./processes.js"
import { formatNumber, median, type Spread, type TargetResult, type TlsWorkload } from "./report.js"
import type { TlsJob, TlsJobResult } from "./tlsLoad.js"

const TLS_SERVERS = Path.join(HERE, "tlsServers.js")
const TLS_LOAD = Path.join(HERE, "tlsLoad.js")

/** The two servers compared. */
export type TlsServerId = "node-tls" | "wire-tls"

export const TLS_LABELS: Record<TlsServerId, string> = {
  "node-tls": "hand-written node:tls (`socket.pipe(socket)`)",
  "wire-tls": "effect-wire `serve echo --tls-cert --tls-key`"
}

/** One job's outcome on one server in one repetition. */
export interface TlsSample {
  readonly workload: TlsWorkload
  readonly server: TlsServerId
  readonly rep: number
  readonly metrics: Record<string, number>
  readonly errors: ReadonlyArray<string>
  readonly cpuSource: string
}

/** What a TLS run gives `npm run bench`. */
export interface TlsRun {
  readonly status: "ok" | "skipped" | "failed"
  readonly note: string
  readonly samples: ReadonlyArray<TlsSample>
  readonly targets: ReadonlyArray<TargetResult>
  readonly failures: ReadonlyArray<string>
  readonly markdown: string
}

const jobs = (quick: boolean): Record<TlsWorkload, TlsJob> => ({
  "tls-stream": {
    kind: "stream",
    connections: quick ? 2 : 4,
    bytesPerConnection: (quick ? 2 : 32) * 1024 * 1024,
    writeSize: 64 * 1024,
    timeoutMs: 60_000
  },
  "tls-pingpong": { kind: "pingpong", connections: 8, bodySize: 64, warmupMs: quick ? 50 : 300, durationMs: quick ? 150 : 1500 },
  "tls-handshakes": { kind: "handshakes", count: quick ? 30 : 400, concurrency: 8, warmup: quick ? 5 : 40, timeoutMs: 60_000 }
})

const describeJob = (job: TlsJob): string => {
  switch (job.kind) {
    case "stream":
      return `${job.connections} connections × ${job.bytesPerConnection / 2 ** 20} MiB in ${job.writeSize / 1024} KiB writes, every byte checked`
    case "pingpong":
      return `${job.connections} connections, one ${job.bodySize} B frame in flight each, ${job.durationMs / 1000} s after ${job.warmupMs / 1000} s warm-up; every reply checked`
    case "handshakes":
      return `${job.count} full handshakes (TLS 1.3, ECDSA P-256, no resumption), ${job.concurrency} at a time, each proven by a 1-byte echo, after ${job.warmup} warm-up ones`
  }
}

/** A self-signed EC certificate for localhost and 127.0.0.1, in a fresh temp directory. */
const makeCertificate = (): { readonly dir: string; readonly cert: string; readonly key: string } => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-wire-bench-tls-"))
  const cert = Path.join(dir, "cert.pem")
  const key = Path.join(dir, "key.pem")
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"
  ], { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 })
  return { dir, cert, key }
}

interface Started {
  readonly id: TlsServerId
  readonly target: Target
  readonly stop: () => Promise<void>
  readonly alive: () => boolean
  readonly output: () => string
}

/**
 * The `effect-wire` executable next to a command line's main.js (bin.js, what
 * package.json's `bin` runs), or `cli` itself when there is none: a TLS
 * server's heap is tuned there, before the command line loads
 * (src/cli/tlsHeap.ts), which main.js alone cannot do.
 */
const executableOf = (cli: string): string => {
  const bin = Path.join(Path.dirname(cli), "bin.js")
  return Path.basename(cli) === "main.js" && Fs.existsSync(bin) ? bin : cli
}

const startServer = (
  id: TlsServerId,
  core: number | undefined,
  cli: string,
  cert: { readonly cert: string; readonly key: string }
): Promise<Started> => {
  const args = id === "node-tls"
    ? [TLS_SERVERS, "node-tls", "--cert", cert.cert, "--key", cert.key, "--host", "127.0.0.1", "--port", "0"]
    : [executableOf(cli), "serve", "echo", "--host", "127.0.0.1", "--port", "0", "--tls-cert", cert.cert, "--tls-key", cert.key]
  const child = launch(core, args)
  const stderr = tail(child.stderr)
  const stdout = tail(child.stdout)
  const output = () => `${stdout()} ${stderr()}`.trim().replace(/\s*\n\s*/g, " / ")
  return new Promise((resolve, reject) => {
    let seen = ""
    const timer = setTimeout(() => fail("did not print \"listening tcp HOST:PORT\" within 30 s"), 30_000)
    const fail = (why: string) => {
      clearTimeout(timer)
      child.kill("SIGKILL")
      reject(new Error(`${TLS_LABELS[id]}: ${why}: ${output()}`))
    }
    child.once("exit", (code, signal) => fail(`exited (${signal ?? `code ${code}`}) before listening`))
    child.stdout?.on("data", (chunk: Buffer) => {
      seen = (seen + chunk.toString("utf8")).slice(-4096)
      const match = /listening tcp ([^\s:]+):(\d+)/.exec(seen)
      if (match === null) return
      clearTimeout(timer)
      child.removeAllListeners("exit")
      const alive = () => child.exitCode === null && child.signalCode === null
      resolve({
        id,
        target: { host: match[1]!, port: Number(match[2]), pid: child.pid! },
        alive,
        output,
        stop: async () => {
          if (!alive()) return
          child.kill("SIGTERM")
          if (!(await exitsWithin(child, 5_000))) {
            child.kill("SIGKILL")
            await exited(child)
          }
        }
      })
    })
  })
}

/**
 * Runs one job in the TLS load generator; one still running after the job's
 * own limit + 30 s (`budgetMs`) is killed, quoting its last progress report
 * (`reportEveryMs` apart, 10 s by default).
 */
export const runLoad = async (
  server: Started,
  ca: string,
  job: TlsJob,
  core: number | undefined,
  options: { readonly budgetMs?: number; readonly reportEveryMs?: number } = {}
): Promise<TlsJobResult> => {
  const failed = (why: string): TlsJobResult => ({ metrics: {}, errors: [why], cpuSource: "" })
  if (!server.alive()) return failed(`${TLS_LABELS[server.id]} died: ${server.output()}`)
  const input = { target: server.target, ca, job, reportEveryMs: options.reportEveryMs }
  const budget = options.budgetMs ?? (job.kind === "pingpong" ? job.warmupMs + job.durationMs : job.timeoutMs) + 30_000
  const ran = await loadOutput<TlsJobResult>(TLS_LOAD, input, budget, core, "TLS load generator")
  if ("why" in ran) return failed(ran.why)
  const result = ran.output
  return server.alive()
    ? result
    : { ...result, errors: [...result.errors, `${TLS_LABELS[server.id]} died: ${server.output()}`] }
}

/** Headline metric of each workload, and the target on its ratio. */
const TARGETS: ReadonlyArray<{
  readonly workload: TlsWorkload
  readonly metric: string
  readonly text: string
  readonly op: ">=" | "<=" | "info"
  readonly threshold: number
}> = [
  { workload: "tls-stream", metric: "mibPerSec", text: "TLS stream echo throughput ≥ 0.90× node:tls", op: ">=", threshold: 0.9 },
  { workload: "tls-pingpong", metric: "roundTripsPerSec", text: "TLS ping-pong round trips/s ≥ 0.90× node:tls", op: ">=", threshold: 0.9 },
  { workload: "tls-handshakes", metric: "cpuUsPerHandshake", text: "TLS server CPU per handshake ≤ 1.2× node:tls", op: "<=", threshold: 1.2 },
  { workload: "tls-handshakes", metric: "handshakesPerSec", text: "TLS handshakes/s vs node:tls", op: "info", threshold: 0 },
  { workload: "tls-stream", metric: "cpuMsPerGiB", text: "TLS stream echo server CPU per GiB vs node:tls", op: "info", threshold: 0 },
  { workload: "tls-stream", metric: "peakRssMB", text: "TLS stream echo peak RSS vs node:tls", op: "info", threshold: 0 },
  { workload: "tls-pingpong", metric: "cpuUsPerRoundTrip", text: "TLS ping-pong server CPU per round trip vs node:tls", op: "info", threshold: 0 }
]

const spreadOf = (xs: ReadonlyArray<number>): Spread | undefined => {
  const finite = xs.filter(Number.isFinite)
  return finite.length === 0
    ? undefined
    : { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), n: finite.length }
}

const clean = (samples: ReadonlyArray<TlsSample>, workload: TlsWorkload, server: TlsServerId) =>
  samples.filter((s) => s.workload === workload && s.server === server && s.errors.length === 0)

/** `wire-tls / node-tls` of `metric`, repetition by repetition. */
export const tlsRatio = (samples: ReadonlyArray<TlsSample>, workload: TlsWorkload, metric: string): Spread | undefined => {
  const reference = new Map(clean(samples, workload, "node-tls").map((s) => [s.rep, s.metrics[metric]]))
  return spreadOf(
    clean(samples, workload, "wire-tls").flatMap((s) => {
      const ref = reference.get(s.rep)
      const value = s.metrics[metric]
      return ref !== undefined && value !== undefined && ref > 0 ? [value / ref] : []
    })
  )
}

export const tlsTargets = (samples: ReadonlyArray<TlsSample>): Array<TargetResult> =>
  TARGETS.map((t) => {
    const measured = tlsRatio(samples, t.workload, t.metric)
    return {
      text: t.text,
      issue: 14,
      subject: TLS_LABELS["wire-tls"],
      workload: t.workload,
      metric: t.metric,
      measured,
      op: t.op,
      threshold: t.threshold,
      judge: "median",
      ratio: true,
      verdict: measured === undefined
        ? "n/a"
        : t.op === "info"
        ? "INFO"
        : (t.op === ">=" ? measured.median >= t.threshold : measured.median <= t.threshold)
        ? "PASS"
        : "FAIL"
    }
  })

const COLUMNS: Record<TlsWorkload, ReadonlyArray<readonly [string, string]>> = {
  "tls-stream": [["mibPerSec", "MiB/s"], ["cpuMsPerGiB", "server CPU ms/GiB"], ["peakRssMB", "peak RSS MB"]],
  "tls-pingpong": [["roundTripsPerSec", "round trips/s"], ["cpuUsPerRoundTrip", "server CPU µs/rt"]],
  "tls-handshakes": [["handshakesPerSec", "handshakes/s"], ["cpuUsPerHandshake", "server CPU µs/handshake"]]
}

const cell = (s: Spread | undefined, ratio = false): string =>
  s === undefined
    ? "–"
    : `${ratio ? `${s.median.toFixed(2)}×` : formatNumber(s.median)} (${ratio ? s.min.toFixed(2) : formatNumber(s.min)}–${
      ratio ? `${s.max.toFixed(2)}×` : formatNumber(s.max)
    })`

const render = (samples: ReadonlyArray<TlsSample>, plan: Record<TlsWorkload, TlsJob>, reps: number): string => {
  const lines: Array<string> = [
    `Each repetition starts both servers fresh and runs every workload on each, the two seconds apart, in alternating order; ${reps} repetition(s). Cells: median (min–max); ratios are effect-wire / node:tls per repetition.`,
    ""
  ]
  for (const workload of Object.keys(COLUMNS) as Array<TlsWorkload>) {
    if (plan[workload] === undefined) continue // not run (--only)
    lines.push(`**${workload}**: ${describeJob(plan[workload])}`, "")
    const columns = COLUMNS[workload]
    lines.push(`| server | ${columns.map(([, label]) => label).join(" | ")} |`, `|---|${columns.map(() => "---").join("|")}|`)
    for (const server of ["node-tls", "wire-tls"] as const) {
      const mine = clean(samples, workload, server)
      lines.push(`| ${TLS_LABELS[server]} | ${columns.map(([m]) => cell(spreadOf(mine.map((s) => s.metrics[m]!)))).join(" | ")} |`)
    }
    lines.push(`| ratio | ${columns.map(([m]) => cell(tlsRatio(samples, workload, m), true)).join(" | ")} |`, "")
  }
  return lines.join("\n")
}

/** Runs the TLS bench: `reps` repetitions of every TLS workload on both servers. */
export const runTls = async (
  options: {
    readonly quick: boolean
    readonly reps: number
    readonly cli?: string | undefined
    /** Only these workloads (default: all). */
    readonly only?: ReadonlyArray<TlsWorkload> | undefined
  },
  pinning: Pinning,
  log: (line: string) => void
): Promise<TlsRun> => {
  const skipped = (note: string): TlsRun => ({ status: "skipped", note, samples: [], targets: [], failures: [], markdown: `not run: ${note}` })
  let cert: ReturnType<typeof makeCertificate>
  try {
    cert = makeCertificate()
  } catch (error) {
    return skipped(`the openssl command could not make the certificate (${error instanceof Error ? error.message : String(error)})`)
  }
  const all = jobs(options.quick)
  const plan = options.only === undefined
    ? all
    : Object.fromEntries(options.only.map((w) => [w, all[w]])) as Record<TlsWorkload, TlsJob>
  const samples: Array<TlsSample> = []
  const failures: Array<string> = []
  const cli = options.cli ?? DEFAULT_CLI
  try {
    for (let rep = 0; rep < options.reps; rep++) {
      const order: Array<TlsServerId> = rep % 2 === 0 ? ["node-tls", "wire-tls"] : ["wire-tls", "node-tls"]
      const servers: Array<Started> = []
      try {
        for (const id of order) servers.push(await startServer(id, pinning.server, cli, cert))
        for (const workload of Object.keys(plan) as Array<TlsWorkload>) {
          for (const server of servers) {
            const result = await runLoad(server, cert.cert, plan[workload], pinning.load)
            samples.push({ workload, server: server.id, rep, metrics: result.metrics, errors: result.errors, cpuSource: result.cpuSource })
            for (const e of result.errors) failures.push(`${workload} on ${TLS_LABELS[server.id]} (repetition ${rep + 1}): ${e}`)
            const headline = COLUMNS[workload].map(([m, label]) => `${formatNumber(result.metrics[m] ?? Number.NaN)} ${label}`).join(", ")
            log(`[tls ${rep + 1}/${options.reps}] ${server.id.padEnd(8)} ${workload.padEnd(14)} ${result.errors.length === 0 ? headline : `FAILED: ${result.errors.join("; ")}`}`)
          }
        }
      } catch (error) {
        failures.push(`TLS repetition ${rep + 1}: ${error instanceof Error ? error.message : String(error)}`)
      } finally {
        await Promise.all(servers.map((s) => s.stop()))
      }
    }
  } finally {
    Fs.rmSync(cert.dir, { recursive: true, force: true })
  }
  return {
    status: failures.length === 0 ? "ok" : "failed",
    note: "",
    samples,
    targets: tlsTargets(samples),
    failures,
    markdown: render(samples, plan, options.reps)
  }
}

const main = async (): Promise<void> => {
  const args = process.argv.slice(2)
  const quick = args.includes("--quick")
  const at = args.indexOf("--reps")
  const reps = at >= 0 ? Number(args[at + 1]) : quick ? 1 : 3
  const value = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined)
  const cli = value("--cli")
  const only = value("--only")?.split(",").map((w) => `tls-${w.replace(/^tls-/, "")}` as TlsWorkload)
  const unknown = only?.find((w) => !(w in jobs(quick)))
  if (unknown !== undefined) throw new Error(`--only: unknown workload ${unknown} (stream, pingpong, handshakes)`)
  const pinning = detectPinning(!args.includes("--no-pin"))
  const load = Os.loadavg()
  const log = (line: string) => void process.stderr.write(`${line}\n`)
  log(`tls bench: ${reps} repetition(s), ${pinning.note}, load average ${load.map((x) => x.toFixed(2)).join(" ")}`)
  const run = await runTls({ quick, reps, cli: cli === undefined ? undefined : Path.resolve(cli), only }, pinning, log)
  const { renderTargets } = await import("./report.js")
  process.stdout.write(`${run.markdown}\n${renderTargets(run.targets)}\n\nload average at the end ${Os.loadavg().map((x) => x.toFixed(2)).join(" ")}\n`)
  if (run.failures.length > 0) {
    process.stdout.write(`\nFAILURES:\n${run.failures.map((f) => `- ${f}`).join("\n")}\n`)
    process.exit(1)
  }
}

if (process.argv[1] !== undefined && Path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`tls bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    killAll()
    process.exit(1)
  })
}
