/**
 * Workers bench: `effect-wire serve echo` in one process against the same
 * server in worker processes (`--workers 2`, SO_REUSEPORT), on two loads:
 *
 * - `connect`: new connections per second: each of `--concurrency` loops
 *   connects, sends 32 bytes, reads them back and closes, again and again;
 * - `pingpong`: 32-byte round trips per second on `--concurrency` open
 *   connections.
 *
 * For each it prints operations per second and the server's CPU per
 * operation (every server process summed: the parent and its workers, from
 * /proc), the median of `--reps` windows of `--seconds`, the configurations
 * interleaved so that the machine's drift hits both alike, and the load
 * average before and after. The load comes from `--generators` processes of
 * their own (this script started again with `--load`), each running
 * `--concurrency` clients.
 *
 * A configuration `N+metrics` runs N workers with `--metrics 127.0.0.1:0`
 * and scrapes the parent's endpoint once a second during each window (every
 * scrape asks every worker for its snapshot over IPC and sums them): what
 * one Prometheus endpoint over the workers costs, against plain `N` (metrics
 * are recorded in both). `--quick` is `--seconds 2 --reps 1`.
 *
 *   node dist/bench/workers.js [--seconds 5] [--reps 3] [--concurrency 32] [--generators 2] [--workers 1,2,2+metrics]
 *                              [--loads connect,pingpong] [--json out.json] [--cli dist/src/cli/main.js] [--quick]
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { cpuDeltaNs, type CpuSample, readCpu, round } from "./common.js"

const HERE = Path.dirname(fileURLToPath(import.meta.url))
const DEFAULT_CLI = Path.resolve(HERE, "..", "src", "cli", "main.js")
const PAYLOAD = Buffer.alloc(32, 0x61)

type Load = "connect" | "pingpong"

interface LoadJob {
  readonly port: number
  readonly load: Load
  readonly concurrency: number
  readonly seconds: number
}

interface LoadResult {
  readonly ops: number
  readonly seconds: number
  readonly errors: number
}

/** One connection, one 32-byte echo, closed: resolves once the echo is back and the socket closed. */
const connectOnce = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let got = 0
    let ok = false
    socket.on("connect", () => socket.write(PAYLOAD))
    socket.on("data", (d: Buffer) => {
      got += d.length
      if (got >= PAYLOAD.length) {
        ok = true
        socket.end()
      }
    })
    socket.on("error", () => {})
    socket.on("close", () => resolve(ok))
  })

/** The load generator: runs one job and prints its result as one JSON line. */
const runLoad = async (job: LoadJob): Promise<LoadResult> => {
  const deadline = Date.now() + job.seconds * 1000
  let ops = 0
  let errors = 0
  const started = process.hrtime.bigint()
  if (job.load === "connect") {
    await Promise.all(Array.from({ length: job.concurrency }, async () => {
      while (Date.now() < deadline) {
        if (await connectOnce(job.port)) ops++
        else errors++
      }
    }))
  } else {
    await Promise.all(Array.from({ length: job.concurrency }, () =>
      new Promise<void>((resolve) => {
        const socket = Net.connect({ host: "127.0.0.1", port: job.port })
        socket.setNoDelay(true)
        let got = 0
        socket.on("connect", () => socket.write(PAYLOAD))
        socket.on("data", (d: Buffer) => {
          got += d.length
          while (got >= PAYLOAD.length) {
            got -= PAYLOAD.length
            ops++
            if (Date.now() >= deadline) {
              socket.end()
              return
            }
            socket.write(PAYLOAD)
          }
        })
        socket.on("error", () => errors++)
        socket.on("close", () => resolve())
      })))
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return { ops, seconds, errors }
}

/** One server configuration: its worker count, and whether its metrics endpoint is served and scraped. */
interface Setup {
  readonly label: string
  readonly workers: number
  readonly metrics: boolean
}

interface Config {
  readonly seconds: number
  readonly reps: number
  readonly concurrency: number
  readonly generators: number
  readonly workers: ReadonlyArray<Setup>
  readonly loads: ReadonlyArray<Load>
  readonly cli: string
  readonly json: string | undefined
}

const parseArgs = (argv: ReadonlyArray<string>): Config => {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const number = (name: string, fallback: number) => {
    const text = value(name)
    const n = text === undefined ? fallback : Number(text)
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a whole number above 0, got ${text}`)
    return n
  }
  const loads = (value("loads") ?? "connect,pingpong").split(",") as Array<Load>
  for (const l of loads) if (l !== "connect" && l !== "pingpong") throw new Error(`--loads: unknown load ${l}`)
  const workers = (value("workers") ?? "1,2,2+metrics").split(",").map((label): Setup => {
    const m = /^(\d+)(\+metrics)?$/.exec(label)
    if (m === null || Number(m[1]) < 1) throw new Error(`--workers: expected N or N+metrics, got ${label}`)
    return { label, workers: Number(m[1]), metrics: m[2] !== undefined }
  })
  const quick = argv.includes("--quick")
  return {
    seconds: number("seconds", quick ? 2 : 5),
    reps: number("reps", quick ? 1 : 3),
    concurrency: number("concurrency", 32),
    generators: number("generators", 2),
    workers,
    loads,
    cli: value("cli") ?? DEFAULT_CLI,
    json: value("json")
  }
}

/** A server started for a run, and every process of it (the parent and its workers). */
interface Running {
  readonly port: number
  /** The Prometheus endpoint, with `N+metrics`. */
  readonly metrics: string | undefined
  readonly pids: () => ReadonlyArray<number>
  readonly stop: () => Promise<void>
}

const childrenOf = (pid: number): Array<number> => {
  try {
    return Fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter((s) => s !== "")
      .map(Number)
  } catch {
    return []
  }
}

const startServer = (cli: string, setup: Setup): Promise<Running> =>
  new Promise((resolve, reject) => {
    const args = ["serve", "echo", "--port", "0", "--workers", String(setup.workers)]
    const child = spawn(process.execPath, [cli, ...args, ...(setup.metrics ? ["--metrics", "127.0.0.1:0"] : [])], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    let err = ""
    child.stderr.setEncoding("utf8").on("data", (d: string) => void (err += d))
    child.on("exit", (code) => reject(new Error(`server exited (${code}) before listening:\n${err}`)))
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d
      const m = /^listening tcp [^\n]*:(\d+)$/m.exec(out)
      if (m === null) return
      child.stdout.removeAllListeners("data")
      child.removeAllListeners("exit")
      const stop = () =>
        new Promise<void>((done) => {
          if (child.exitCode !== null) return done()
          child.on("exit", () => done())
          child.kill("SIGTERM")
          setTimeout(() => child.kill("SIGKILL"), 20_000).unref()
        })
      const metrics = /^metrics (http:\/\/\S+)$/m.exec(out)?.[1]
      resolve({ port: Number(m[1]), metrics, pids: () => [child.pid!, ...childrenOf(child.pid!)], stop })
    })
  })

const runLoadProcess = (job: LoadJob): Promise<LoadResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--load", JSON.stringify(job)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => void (out += d))
    child.on("exit", (code) => code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`load exited ${code}`)))
  })

interface Window {
  readonly opsPerSecond: number
  readonly cpuUsPerOp: number
  /** Server CPU over the window, in cores. */
  readonly cores: number
  /** The parent's share of it, with workers (0 without). */
  readonly parentCores: number
  readonly errors: number
  /** Scrapes of the metrics endpoint during the window (`N+metrics`). */
  readonly scrapes: number
}

/** Scrape `url` once a second until `done` resolves; a failed scrape or one without the server's series is an error. */
const scrapeWhile = async (url: string, done: Promise<unknown>): Promise<{ scrapes: number; errors: number }> => {
  let finished = false
  void done.then(() => finished = true)
  let scrapes = 0
  let errors = 0
  while (!finished) {
    try {
      const body = await (await fetch(url)).text()
      if (body.includes("effect_wire_server_connection_opened")) scrapes++
      else errors++
    } catch {
      errors++
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, 1000))])
  }
  return { scrapes, errors }
}

const measure = async (server: Running, load: Load, config: Config): Promise<Window> => {
  const pids = server.pids()
  const job = { port: server.port, load, concurrency: config.concurrency, seconds: config.seconds }
  // Warm-up: JIT, and every worker's first connections.
  await runLoadProcess({ ...job, seconds: 1 })
  const before = new Map<number, CpuSample>(pids.map((pid) => [pid, readCpu(pid)]))
  // Several generator processes: one alone saturates its core before two workers do theirs.
  const running = Promise.all(Array.from({ length: config.generators }, () => runLoadProcess(job)))
  const scraped = server.metrics === undefined ? { scrapes: 0, errors: 0 } : await scrapeWhile(server.metrics, running)
  const results = await running
  const result = {
    ops: results.reduce((n, r) => n + r.ops, 0),
    seconds: Math.max(...results.map((r) => r.seconds)),
    errors: results.reduce((n, r) => n + r.errors, 0) + scraped.errors
  }
  let ns = 0
  let parentNs = 0
  for (const pid of pids) {
    const d = cpuDeltaNs(before.get(pid)!, readCpu(pid)).ns
    ns += d
    if (pid === pids[0]) parentNs = d
  }
  return {
    parentCores: pids.length > 1 ? parentNs / 1e9 / result.seconds : 0,
    opsPerSecond: result.ops / result.seconds,
    cpuUsPerOp: ns / 1000 / Math.max(1, result.ops),
    cores: ns / 1e9 / result.seconds,
    errors: result.errors,
    scrapes: scraped.scrapes
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const loadAverage = () => Os.loadavg().map((x) => x.toFixed(2)).join(" ")

const main = async (config: Config) => {
  const loadBefore = loadAverage()
  console.log(
    `workers bench: serve echo, ${config.generators} load processes x ${config.concurrency} concurrent clients, ` +
      `${config.seconds} s x ${config.reps}; ` +
      `${Os.availableParallelism()} cores; load average ${loadBefore}`
  )
  const rows: Array<Record<string, unknown>> = []
  for (const load of config.loads) {
    const windows = new Map<string, Array<Window>>(config.workers.map((w) => [w.label, []]))
    for (let rep = 0; rep < config.reps; rep++) {
      for (const setup of config.workers) {
        const server = await startServer(config.cli, setup)
        try {
          windows.get(setup.label)!.push(await measure(server, load, config))
        } finally {
          await server.stop()
        }
      }
    }
    const base = median(windows.get(config.workers[0]!.label)!.map((w) => w.opsPerSecond))
    for (const { label, metrics, workers } of config.workers) {
      const ws = windows.get(label)!
      const row = {
        load,
        workers,
        metrics,
        scrapes: ws.reduce((n, w) => n + w.scrapes, 0),
        opsPerSecond: round(median(ws.map((w) => w.opsPerSecond))),
        cpuUsPerOp: round(median(ws.map((w) => w.cpuUsPerOp))),
        serverCores: round(median(ws.map((w) => w.cores)), 3),
        parentCores: round(median(ws.map((w) => w.parentCores)), 3),
        vsFirst: round(median(ws.map((w) => w.opsPerSecond)) / base, 3),
        errors: ws.reduce((n, w) => n + w.errors, 0),
        runs: ws.map((w) => round(w.opsPerSecond))
      }
      rows.push(row)
      console.log(
        `${load.padEnd(9)} workers=${label.padEnd(9)}  ${String(row.opsPerSecond).padStart(8)} ops/s  ` +
          `${String(row.cpuUsPerOp).padStart(6)} µs CPU/op  server ${row.serverCores} cores${
            workers > 1 ? ` (parent ${row.parentCores})` : ""
          }  x${row.vsFirst}  ` +
          `(runs ${row.runs.join(", ")}${metrics ? `; ${row.scrapes} scrapes` : ""}${
            row.errors > 0 ? `; ${row.errors} errors` : ""
          })`
      )
    }
  }
  const loadAfter = loadAverage()
  console.log(`load average after: ${loadAfter}`)
  if (config.json !== undefined) {
    Fs.writeFileSync(config.json, JSON.stringify({ loadBefore, loadAfter, cores: Os.availableParallelism(), rows }, null, 2))
  }
  return rows.some((r) => (r.errors as number) > 0) ? 1 : 0
}

const argv = process.argv.slice(2)
if (argv[0] === "--load") {
  const result = await runLoad(JSON.parse(argv[1]!) as LoadJob)
  process.stdout.write(`${JSON.stringify(result)}\n`)
} else {
  let config: Config
  try {
    config = parseArgs(argv)
  } catch (e) {
    console.error(`error: ${(e as Error).message}`)
    process.exit(2)
  }
  process.exitCode = await main(config)
}
