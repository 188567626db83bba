/**
 * The processes of a bench run: servers (the node:net baselines, the
 * effect-wire CLI, the Effect-handler servers, and those of a `--before`
 * build) and load generators, each started pinned to its core when possible,
 * tracked, and killed by pid whatever way the run ends.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { type Job, type JobResult, lastProgressReport } from "./common.js"
import { SERVER_LABELS, type ServerId } from "./report.js"

export const HERE = Path.dirname(fileURLToPath(import.meta.url))
export const ROOT = Path.resolve(HERE, "..", "..")
/** The effect-wire CLI this checkout builds. */
export const DEFAULT_CLI = Path.join(ROOT, "dist", "src", "cli", "main.js")
const BASELINES = Path.join(HERE, "baselines.js")
const EFFECT_SERVERS = Path.join(HERE, "effectServers.js")
const LOAD = Path.join(HERE, "load.js")
const GC_HOOK = Path.join(HERE, "gcHook.js")
const HIDE_ASYNC_HOOKS = Path.join(HERE, "hideAsyncHooks.js")

/**
 * The builds a run's servers come from: `cli` is the effect-wire CLI under
 * test; `before` another build's dist/ directory (`--before DIR`), whose CLI
 * (DIR/src/cli/main.js) and bench/effectServers.js serve the `@before` servers.
 */
export interface Builds {
  readonly cli: string
  readonly before?: string | undefined
}

/** Another build's CLI and Effect-handler servers, inside its dist/ directory. */
export const beforeCli = (dist: string): string => Path.join(dist, "src", "cli", "main.js")
export const beforeEffectServers = (dist: string): string => Path.join(dist, "bench", "effectServers.js")

const LISTEN = ["--host", "127.0.0.1", "--port", "0"]

/**
 * The V8 flags docs/performance.md suggests for a server that streams bulk
 * bytes: a young generation held at 1 MiB, so that scavenges free Node's read
 * buffers, and an old generation allowed to triple, so that V8 does not mark
 * an Effect program's 16 MiB heap again right after each full collection.
 */
const STREAMING_HEAP_FLAGS = ["--max-semi-space-size=1", "--heap-growing-percent=200"]

/**
 * How to start each server (the arguments after `node`; every server runs on
 * this process's node, `process.execPath`, with the same flags; the
 * `-tuned` ones add `STREAMING_HEAP_FLAGS`, `wire-stream-noasync` preloads
 * `hideAsyncHooks.js`). A string
 * `builds` is the CLI under test.
 */
export const serverArgs = (id: ServerId, builds: string | Builds): Array<string> => {
  const { before, cli } = typeof builds === "string" ? { cli: builds, before: undefined } : builds
  const dist = (): string => {
    if (before === undefined) throw new Error(`${id} needs --before DIR`)
    return before
  }
  switch (id) {
    case "node-raw":
      return [BASELINES, "raw", ...LISTEN]
    case "node-framed":
      return [BASELINES, "framed", ...LISTEN]
    case "node-framed-json":
      return [BASELINES, "framed-json", ...LISTEN]
    case "node-raw-heap":
      return [BASELINES, "raw-heap", ...LISTEN]
    case "wire-stream-tuned":
      return [...STREAMING_HEAP_FLAGS, EFFECT_SERVERS, "wire-stream", ...LISTEN]
    case "wire-protocol-tuned":
      return [...STREAMING_HEAP_FLAGS, EFFECT_SERVERS, "wire-protocol", ...LISTEN]
    case "wire-stream-noasync":
      return ["--import", pathToFileURL(HIDE_ASYNC_HOOKS).href, EFFECT_SERVERS, "wire-stream", ...LISTEN]
    case "wire":
      return [cli, "serve", "echo", ...LISTEN]
    case "wire-framed":
      return [cli, "serve", "echo", "--framing", "length", ...LISTEN]
    case "wire-nometrics":
      return [cli, "serve", "echo", "--metrics", "off", ...LISTEN]
    case "wire-stream":
    case "wire-protocol":
    case "wire-protocol-json":
    case "wire-protocol-async":
    case "wire-protocol-nometrics":
    case "wire-protocol-traced":
    case "effect-raw":
    case "effect-framed":
    case "effect-protocol":
    case "effect-protocol-json":
    case "rpc-wire":
    case "rpc-effect":
      return [EFFECT_SERVERS, id, ...LISTEN]
    case "wire@before":
      return [beforeCli(dist()), "serve", "echo", ...LISTEN]
    case "wire-framed@before":
      return [beforeCli(dist()), "serve", "echo", "--framing", "length", ...LISTEN]
    case "wire-stream@before":
      return [beforeEffectServers(dist()), "wire-stream", ...LISTEN]
    case "wire-protocol@before":
      return [beforeEffectServers(dist()), "wire-protocol", ...LISTEN]
    case "wire-protocol-json@before":
      return [beforeEffectServers(dist()), "wire-protocol-json", ...LISTEN]
  }
}

/** How long a job may take before the runner gives up on it. */
export const jobBudgetMs = (job: Job): number => {
  switch (job.kind) {
    case "stream":
    case "ordering":
    case "drain":
      return job.timeoutMs + 15_000
    case "flood":
      return job.durationMs + job.timeoutMs + 15_000
    case "pingpong":
    case "pipeline":
      return job.warmupMs + job.durationMs + 30_000
    case "connections":
      return 3 * job.timeoutMs + 15_000
  }
}

// ---------------------------------------------------------------------------
// Processes: every child is tracked and killed, whatever way the run ends
// ---------------------------------------------------------------------------

const live = new Set<ChildProcess>()

export const killAll = (): void => {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  }
  live.clear()
}

process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping the servers and the load generator\n`)
    killAll()
    process.exit(130)
  })
}

export interface Pinning {
  readonly server: number | undefined
  readonly load: number | undefined
  readonly note: string
}

/** The cores we may run on, from `taskset -cp` ("0,1" or "0-3"), or why we cannot pin. */
export const detectPinning = (wanted: boolean): Pinning => {
  if (!wanted) return { server: undefined, load: undefined, note: "not pinned (--no-pin)" }
  const probe = spawnSync("taskset", ["-cp", String(process.pid)], { encoding: "utf8" })
  if (probe.error !== undefined || probe.status !== 0) {
    return { server: undefined, load: undefined, note: "NOT PINNED: taskset is not available" }
  }
  const list = /list:\s*([\d,\s-]+)/.exec(probe.stdout)?.[1] ?? ""
  const cores = list.split(",").flatMap((part) => {
    const [lo, hi] = part.trim().split("-").map(Number)
    return lo === undefined || Number.isNaN(lo) ? [] : Array.from({ length: (hi ?? lo) - lo + 1 }, (_, i) => lo + i)
  })
  if (cores.length < 2) {
    return { server: undefined, load: undefined, note: `NOT PINNED: only ${cores.length} core(s) allowed (${list})` }
  }
  const pinOk = spawnSync("taskset", ["-c", String(cores[0]), "true"]).status === 0
  if (!pinOk) return { server: undefined, load: undefined, note: "NOT PINNED: taskset -c failed" }
  return { server: cores[0], load: cores[1], note: `server on core ${cores[0]}, load generator on core ${cores[1]}` }
}

export const launch = (
  core: number | undefined,
  args: ReadonlyArray<string>,
  env?: Readonly<Record<string, string>> | undefined
): ChildProcess => {
  const [command, argv] = core === undefined
    ? [process.execPath, args]
    : ["taskset", ["-c", String(core), process.execPath, ...args]]
  const child = spawn(command, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    ...(env === undefined ? {} : { env: { ...process.env, ...env } })
  })
  live.add(child)
  child.once("exit", () => live.delete(child))
  return child
}

export const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Whether `child` exited within `ms`; the timer is cleared either way, so it never holds the process open. */
export const exitsWithin = (child: ChildProcess, ms: number): Promise<boolean> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    exited(child).then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

/**
 * Waits up to `budgetMs` for a load generator to exit; one still running is
 * killed, and the answer says so with its last progress report (common.ts's
 * `reportProgress`), or that none came. Undefined when it exited in time.
 */
export const overrun = async (
  child: ChildProcess,
  budgetMs: number,
  stderr: () => string,
  name: string
): Promise<string | undefined> => {
  if (await exitsWithin(child, budgetMs)) return undefined
  child.kill("SIGKILL")
  await exited(child)
  const report = lastProgressReport(stderr())
  return `${name} still running after ${budgetMs / 1000} s; killed; ${
    report === undefined ? "it reported no progress" : `its last report: ${report}`
  }`
}

/** The last `limit` characters a stream printed, for error messages. */
export const tail = (stream: NodeJS.ReadableStream | null, limit = 2000): () => string => {
  let text = ""
  stream?.on("data", (chunk: Buffer) => {
    text = (text + chunk.toString("utf8")).slice(-limit)
  })
  return () => text.trim()
}

/** A process's output on one line of the report. */
const oneLine = (text: string): string => text.trim().replace(/\s*\n\s*/g, " / ")

export class ServerProcess {
  private constructor(
    readonly id: ServerId,
    readonly child: ChildProcess,
    readonly pid: number,
    readonly host: string,
    readonly port: number,
    readonly startupMs: number,
    /** `performance.now()` when it was spawned. */
    readonly spawnedAt: number,
    readonly output: () => string,
    /** Where its GC hook writes, when it has one. */
    readonly gcFile: string | undefined
  ) {}

  /**
   * Starts a server and waits for its `listening tcp HOST:PORT` line; `nodeFlags` go before the
   * script. `builds`: the CLI under test, or it and the `--before` build. With `gcFile`, the
   * server runs with `--expose-gc` and bench/gcHook.js preloaded, writing that file on SIGUSR2
   * (the connections workload reads memory after full collections).
   */
  static start(
    id: ServerId,
    core: number | undefined,
    builds: string | Builds,
    nodeFlags: ReadonlyArray<string> = [],
    gcFile?: string | undefined
  ): Promise<ServerProcess> {
    const t0 = performance.now()
    const hook = gcFile === undefined ? [] : ["--expose-gc", "--import", pathToFileURL(GC_HOOK).href]
    const child = launch(
      core,
      [...hook, ...nodeFlags, ...serverArgs(id, builds)],
      gcFile === undefined ? undefined : { EFFECT_WIRE_BENCH_GC_FILE: gcFile }
    )
    const output = tail(child.stderr)
    const stdout = tail(child.stdout)
    return new Promise((resolve, reject) => {
      let seen = ""
      const timer = setTimeout(() => fail(`did not print "listening tcp HOST:PORT" within 30 s`), 30_000)
      const fail = (why: string): void => {
        clearTimeout(timer)
        child.kill("SIGKILL")
        // One line, so the report's list of failures keeps one line per failure.
        reject(new Error(oneLine(`${SERVER_LABELS[id]}: ${why}\n${stdout()}\n${output()}`)))
      }
      const onData = (chunk: Buffer): void => {
        seen = (seen + chunk.toString("utf8")).slice(-4096)
        const match = /listening tcp (\[[^\]]+\]|[^\s:]+):(\d+)/.exec(seen)
        if (match === null) return
        const startupMs = performance.now() - t0
        clearTimeout(timer)
        child.stdout?.off("data", onData)
        child.stderr?.off("data", onData)
        child.off("exit", onExit)
        resolve(
          new ServerProcess(
            id,
            child,
            child.pid!,
            match[1]!.replace(/^\[|\]$/g, ""),
            Number(match[2]),
            startupMs,
            t0,
            () => `${stdout()}\n${output()}`.trim(),
            gcFile
          )
        )
      }
      const onExit = (code: number | null, signal: string | null): void =>
        fail(`exited (${signal ?? `code ${code}`}) before listening`)
      child.stdout?.on("data", onData)
      child.stderr?.on("data", onData)
      child.once("exit", onExit)
      child.once("error", (error) => fail(error.message))
    })
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Why the server is gone, if it is. */
  death(): string | undefined {
    if (this.alive) return undefined
    const how = this.child.signalCode ?? `code ${this.child.exitCode}`
    return oneLine(`${SERVER_LABELS[this.id]} exited (${how}) during the run: ${this.output().slice(-800)}`)
  }

  async stop(): Promise<void> {
    if (this.alive) {
      this.child.kill("SIGTERM")
      const done = await exitsWithin(this.child, 5_000)
      if (!done) {
        this.child.kill("SIGKILL")
        await exited(this.child)
      }
    }
    if (this.gcFile !== undefined) Fs.rmSync(this.gcFile, { force: true })
  }
}

/**
 * Runs a load generator (`script`: load.ts, or tlsLoad.ts) on `input` within
 * `budgetMs`: the last JSON line it printed, or why there is none (`killed`
 * when it overran), naming it as `name`.
 */
export const loadOutput = async <A>(
  script: string,
  input: object,
  budgetMs: number,
  core: number | undefined,
  name = "load generator"
): Promise<{ readonly output: A } | { readonly why: string; readonly killed: boolean }> => {
  const child = launch(core, [script, JSON.stringify(input)])
  const stdout = tail(child.stdout, 1_000_000)
  const stderr = tail(child.stderr)
  const killed = await overrun(child, budgetMs, stderr, name)
  if (killed !== undefined) return { why: killed, killed: true }
  const line = stdout().split("\n").filter((l) => l.startsWith("{")).pop()
  if (child.exitCode !== 0 || line === undefined) {
    return { why: `${name} failed (${child.signalCode ?? `code ${child.exitCode}`}): ${stderr()}`, killed: false }
  }
  return { output: JSON.parse(line) as A }
}

export const runJob = async (server: ServerProcess, job: Job, core: number | undefined): Promise<JobResult> => {
  const failed = (why: string): JobResult => ({ kind: job.kind, metrics: {}, errors: [oneLine(why)], cpuSource: "" })
  if (!server.alive) return failed(server.death()!)
  // The connections workload reads memory through the server's GC hook when it has one.
  const withGc: Job = job.kind === "connections" && server.gcFile !== undefined ? { ...job, gcFile: server.gcFile } : job
  const target = { host: server.host, port: server.port, pid: server.pid }
  const ran = await loadOutput<JobResult>(LOAD, { target, job: withGc }, jobBudgetMs(job), core)
  if ("why" in ran && ran.killed) return failed(ran.why)
  // A drain job stops the server: its exit is the point, not a death.
  const death = job.kind === "drain" ? undefined : server.death()
  if ("why" in ran) return failed(`${ran.why}${death ? `; ${death}` : ""}`)
  return death === undefined ? ran.output : { ...ran.output, errors: [...ran.output.errors, death] }
}

/**
 * One ping-pong or pipeline load on several servers at once, in turns
 * (load.ts's `inTurns`): one result per server, in their order. Every server
 * that is not alive gets its death as its result and no turn.
 */
export const runTurns = async (
  servers: ReadonlyArray<ServerProcess>,
  job: Extract<Job, { readonly kind: "pingpong" | "pipeline" }>,
  core: number | undefined
): Promise<Array<JobResult>> => {
  const failed = (why: string): JobResult => ({ kind: job.kind, metrics: {}, errors: [oneLine(why)], cpuSource: "" })
  const alive = servers.filter((s) => s.alive)
  const results = new Map<ServerProcess, JobResult>()
  if (alive.length > 0) {
    const targets = alive.map((s) => ({ host: s.host, port: s.port, pid: s.pid }))
    const ran = await loadOutput<{ readonly results: ReadonlyArray<JobResult> }>(
      LOAD,
      { targets, job },
      alive.length * jobBudgetMs(job),
      core
    )
    alive.forEach((server, i) => {
      const result = "output" in ran ? ran.output.results[i]! : failed(ran.why)
      const death = server.death()
      results.set(server, death === undefined ? result : { ...result, errors: [...result.errors, death] })
    })
  }
  return servers.map((s) => results.get(s) ?? failed(s.death()!))
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

