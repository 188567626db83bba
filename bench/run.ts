/**
 * `npm run bench`: effect-wire's servers, a user's Effect handlers, Effect 4's
 * own socket server and `effect/rpc` against raw node:net, side by side, each
 * server and the load generator a process of its own, pinned to different
 * cores when `taskset` allows; every target of issue 12 (and issue 7's that
 * still hold) judged in one run.
 *
 *   node dist/bench/run.js [--quick] [--reps 3] [--json out.json] [--strict]
 *                          [--servers node-raw,node-framed,wire,…]   (all by default; see --help)
 *                          [--before path/to/other/dist]
 *                          [--workloads stream,pingpong,pipeline,pingpong-json,pipeline-json,
 *                                       pingpong-rpc,pipeline-rpc,connections,ordering]
 *                          [--no-pin] [--no-decoders | --decoders-full] [--cli path/to/cli/main.js]
 *                          [--no-tls | --tls-only]
 *
 * Servers (every one on this node, `process.execPath`, with the same flags but
 * for the `-tuned` ones, which add V8 flags of their own):
 * - `node-raw`, `node-framed`: the node:net references (bench/baselines.ts),
 *   a `socket.pipe(socket)` echo and a hand-written u32 BE framed echo;
 * - `wire`, `wire-framed`: the effect-wire CLI, `serve echo` raw and with
 *   `--framing length`;
 * - `wire-stream`, `wire-protocol`, `wire-protocol-json`, `wire-protocol-async`
 *   (bench/servers/wire.ts): a user's Stream handler on `Server.layer`, and
 *   typed `Protocol` services with binary or JSON messages, one Effect per
 *   request (the async one's handler parks its fiber for each request);
 * - `effect-raw`, `effect-framed`, `effect-protocol`, `effect-protocol-json`
 *   (bench/servers/peer.ts): the peers, Effect 4's own `NodeSocketServer`
 *   written idiomatically: raw echo, framed echo, the two typed services;
 * - `rpc-wire`, `rpc-effect` (bench/servers/rpc.ts): `effect/rpc`'s
 *   `RpcServer` on effect-wire's listener and on `NodeSocketServer`;
 * - opt-in only: `node-raw-heap`, raw node's echo holding an Effect program's
 *   live heap, and `wire-stream-tuned`, `wire-protocol-tuned`, the Stream
 *   handler and the binary Protocol service started with the V8 flags
 *   docs/performance.md suggests for servers that stream bulk bytes, and
 *   `wire-stream-noasync`, the Stream handler with `node:async_hooks` hidden
 *   from Effect (bench/hideAsyncHooks.ts): what Effect's AsyncResource per
 *   fiber suspension costs.
 * What a server speaks (`Speaks`: bytes, JSON messages, effect/rpc) decides
 * its workloads (`runsOn` in bench/report.ts): the byte servers take the byte
 * load (u32 BE frames, whole ones in every stream write, so raw and framed
 * echoes both fit it); the JSON services the JSON ping-pong and pipeline, with
 * the hand-written framed server echoing the same frames as their
 * reference; the rpc servers theirs; every server the idle connections (a
 * probe in its own language) and start-up. Every reply is checked: content,
 * order (by id for rpc, which answers concurrently), none lost.
 *
 * `--before DIR` (another effect-wire build's dist/, e.g. the one before a
 * port) adds `wire@before`, `wire-framed@before` (DIR/src/cli/main.js) and,
 * when DIR/bench/effectServers.js exists, `wire-stream@before`,
 * `wire-protocol@before` and `wire-protocol-json@before`: the earlier editions of the chosen effect-wire
 * servers, in the same run, printed next to this build's with the same
 * ratios, so one run gives a port's before/after table. `--servers` may name
 * `@before` servers itself (then it gets exactly those).
 *
 * Then the TLS bench of issue 14 (bench/tls.ts): effect-wire's TLS echo
 * against a hand-written node:tls echo, stream, ping-pong and handshakes; it
 * runs with the default servers and workloads (not with `--servers`,
 * `--workloads` or `--before`), `--no-tls` skips it, `--tls-only` runs only it.
 *
 * Time on a shared 2-core machine: `--quick` ~1 minute; the default run
 * (fourteen servers, 3 repetitions) ~8 minutes.
 *
 * Exit status: 0, or 1 when anything came back wrong (byte counts, frame
 * order, a lost reply, a server that died, the decoder benchmark crashing),
 * or 2 for bad arguments. Speed never fails the
 * run unless `--strict` is given (then a FAILed target exits 3): shared and
 * CI machines are too noisy for that.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { type Job, type JobResult, readMemory, round, type Speaks } from "./common.js"
import { runTls, type TlsRun } from "./tls.js"
import {
  beforeCli,
  beforeEffectServers,
  type Builds,
  DEFAULT_CLI,
  detectPinning,
  exitsWithin,
  HERE,
  launch,
  killAll,
  type Pinning,
  ROOT,
  runJob,
  runTurns,
  serverArgs,
  ServerProcess,
  sleep,
  tail
} from "./processes.js"
import {
  afterOf,
  BEFORE_SERVERS,
  decoderResults,
  decoderTargets,
  evaluateTargets,
  formatNumber,
  isBefore,
  metricSpread,
  ratioSpread,
  renderDecoders,
  renderSummary,
  renderTables,
  renderTargets,
  runsOn,
  type Sample,
  SERVER_LABELS,
  type ServerId,
  speaks,
  targetText,
  type TargetResult,
  type Workload
} from "./report.js"

const DECODERS = Path.join(HERE, "decoders.js")
const RESULTS_DIR = Path.join(ROOT, ".bench-results")

/** What a run measures unless `--servers` says otherwise (plus, with `--before`, their earlier editions). */
const DEFAULT_SERVERS: ReadonlyArray<ServerId> = [
  "node-raw",
  "node-framed",
  "node-framed-json",
  "wire",
  "wire-framed",
  "wire-stream",
  "wire-protocol",
  "wire-protocol-json",
  "wire-protocol-async",
  "effect-raw",
  "effect-framed",
  "effect-protocol",
  "effect-protocol-json",
  "rpc-wire",
  "rpc-effect"
]
/** Everything `--servers` may name, in the order they print: each `@before` server after its successor. */
const ALL_SERVERS: ReadonlyArray<ServerId> = DEFAULT_SERVERS.flatMap((id) => [
  id,
  ...BEFORE_SERVERS.filter((b) => afterOf(b) === id)
]).concat(["wire-nometrics", "wire-protocol-nometrics", "wire-protocol-traced", "node-raw-heap", "wire-stream-tuned", "wire-protocol-tuned", "wire-stream-noasync"])
type LoadWorkload = Exclude<Workload, "startup">
/** In the order they run: the stream echo first, on fresh processes, so their peak RSS is its own. */
const ALL_WORKLOADS: ReadonlyArray<LoadWorkload> = [
  "stream",
  "pingpong",
  "pipeline",
  "pingpong-json",
  "pipeline-json",
  "pingpong-rpc",
  "pipeline-rpc",
  "connections",
  "ordering",
  "flood",
  // Last: it stops the server.
  "drain"
]

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

interface Options {
  readonly quick: boolean
  readonly reps: number
  readonly json: string | undefined
  readonly strict: boolean
  readonly pin: boolean
  readonly decoders: "quick" | "full" | "skip"
  readonly servers: ReadonlyArray<ServerId>
  readonly workloads: ReadonlyArray<LoadWorkload>
  /** The effect-wire CLI under test; `--cli` points at another build, to compare versions. */
  readonly cli: string
  /** `--before DIR`: another build's dist/ directory, whose servers run as the `@before` ones. */
  readonly before: string | undefined
  /** The TLS bench (bench/tls.ts): with the others, skipped, or alone. */
  readonly tls: "run" | "skip" | "only"
}

const USAGE = `usage: node dist/bench/run.js [--quick] [--reps N] [--json out.json] [--strict]
         [--servers ${DEFAULT_SERVERS.join(",")}]
         [--before path/to/other/dist]
         [--workloads ${ALL_WORKLOADS.join(",")}]
         [--no-pin] [--no-decoders | --decoders-full] [--cli path/to/cli/main.js] [--no-tls | --tls-only]
  --servers may also name ${BEFORE_SERVERS.join(",")} (with --before),
  and wire-nometrics,wire-protocol-nometrics (metrics off) and wire-protocol-traced (a span per connection and
  request): measured against wire and wire-protocol, the cost of metrics and of tracing; node-raw-heap,
  raw node with an Effect program's live heap: what the heap alone costs, against node-raw; and
  wire-stream-tuned,wire-protocol-tuned: wire-stream and wire-protocol started with the V8 flags
  docs/performance.md suggests for streaming servers; wire-stream-noasync, wire-stream with node:async_hooks
  hidden from Effect (bench/hideAsyncHooks.ts): what the AsyncResource Effect makes per fiber suspension costs`

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const flags = new Set<string>()
  const values = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (["--reps", "--json", "--servers", "--workloads", "--cli", "--before"].includes(arg)) {
      const value = argv[++i]
      if (value === undefined) usage(`${arg} needs a value`)
      values.set(arg, value)
    } else if (["--quick", "--strict", "--no-pin", "--no-decoders", "--decoders-full", "--help", "--no-tls", "--tls-only"].includes(arg)) {
      flags.add(arg)
    } else usage(`unknown argument ${arg}`)
  }
  if (flags.has("--help")) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const list = <A extends string>(name: string, all: ReadonlyArray<A>, defaults = all): ReadonlyArray<A> => {
    const given = values.get(name)
    if (given === undefined) return defaults
    const picked = given.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
    for (const p of picked) if (!all.includes(p as A)) usage(`${name}: unknown ${JSON.stringify(p)}`)
    // Keep the canonical order, so reference servers run and print first.
    return all.filter((a) => picked.includes(a))
  }
  const quick = flags.has("--quick")
  const reps = Number(values.get("--reps") ?? (quick ? 1 : 3))
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) usage("--reps must be an integer from 1 to 20")
  const before = beforeDist(values.get("--before"))
  const named = list("--servers", ALL_SERVERS, DEFAULT_SERVERS)
  const servers = before === undefined
    ? named
    : named.some(isBefore)
    ? named
    // The earlier editions of the chosen servers, each printed after this build's.
    : ALL_SERVERS.filter((id) =>
      named.includes(id) || (isBefore(id) && named.includes(afterOf(id)) && beforeHas(before, id))
    )
  for (const id of servers.filter(isBefore)) {
    if (before === undefined) usage(`--servers ${id} needs --before DIR (another build's dist/)`)
    if (!beforeHas(before, id)) usage(`--servers ${id}: ${beforeEffectServers(before)} is missing`)
  }
  return {
    quick,
    reps,
    json: values.get("--json"),
    strict: flags.has("--strict"),
    pin: !flags.has("--no-pin"),
    decoders: flags.has("--no-decoders") || flags.has("--tls-only") ? "skip" : flags.has("--decoders-full") ? "full" : "quick",
    servers,
    workloads: list("--workloads", ALL_WORKLOADS),
    cli: Path.resolve(values.get("--cli") ?? DEFAULT_CLI),
    before,
    tls: flags.has("--tls-only")
      ? "only"
      : flags.has("--no-tls") || ["--servers", "--workloads", "--before"].some((v) => values.has(v))
      ? "skip"
      : "run"
  }
}

/** `--before DIR`, checked: a dist/ directory with the CLI in it (a checkout's root is taken for its dist/). */
const beforeDist = (given: string | undefined): string | undefined => {
  if (given === undefined) return undefined
  const dir = Path.resolve(given)
  if (Fs.existsSync(beforeCli(dir))) return dir
  if (Fs.existsSync(beforeCli(Path.join(dir, "dist")))) return Path.join(dir, "dist")
  usage(`--before ${given}: ${beforeCli(dir)} is missing (DIR is another effect-wire build's dist/ directory)`)
}

/** Whether the `--before` build can run `id`: the Effect-handler servers need its bench/effectServers.js. */
const beforeHas = (dist: string, id: ServerId): boolean =>
  id === "wire@before" || id === "wire-framed@before" ? true : Fs.existsSync(beforeEffectServers(dist))

function usage(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`)
  process.exit(2)
}

// ---------------------------------------------------------------------------
// Workload sizes
// ---------------------------------------------------------------------------

interface Plan {
  readonly jobs: { readonly [W in LoadWorkload]: Job }
  /**
   * Quiet time between "listening" and the first reading of the idle RSS; then it is read every
   * 100 ms until two readings agree (a server may still load modules or compile after
   * listening), at most `idleMaxMs` after listening.
   */
  readonly idleSettleMs: number
  readonly idleMaxMs: number
}

const MiB = 1024 * 1024

/**
 * Each server's warm-up before ping-pong and pipeline are counted. V8 compiles a request's code with
 * TurboFan between 0.25 s and 1.5 s into ping-pong (`--trace-opt`, 3 s of ping-pong from a fresh
 * process: all 35 of the JSON service's TurboFan compilations, 33 of them before 1 s, and all 26 of
 * the hand-written JSON server's), so a shorter warm-up counts the compiling along with the serving
 * (docs/performance.md, "What runs").
 */
const WARMUP_MS = 1500

const plan = (quick: boolean): Plan => {
  const pingpong = (speaks: Speaks): Extract<Job, { readonly kind: "pingpong" }> => ({
    kind: "pingpong",
    speaks,
    connections: 8,
    bodySize: 64,
    warmupMs: quick ? 30 : WARMUP_MS,
    durationMs: quick ? 100 : 1000,
    turns: quick ? 1 : 5
  })
  const pipeline = (speaks: Speaks): Extract<Job, { readonly kind: "pipeline" }> => ({
    kind: "pipeline",
    speaks,
    connections: 8,
    depth: 32,
    bodySize: 64,
    warmupMs: quick ? 30 : WARMUP_MS,
    durationMs: quick ? 100 : 1000,
    turns: quick ? 1 : 5
  })
  return {
  idleSettleMs: quick ? 100 : 300,
  idleMaxMs: quick ? 300 : 1000,
  jobs: {
    stream: {
      kind: "stream",
      connections: quick ? 2 : 4,
      bytesPerConnection: (quick ? 2 : 64) * MiB,
      writeSize: 64 * 1024,
      timeoutMs: 60_000
    },
    pingpong: pingpong("bytes"),
    pipeline: pipeline("bytes"),
    "pingpong-json": pingpong("json"),
    "pipeline-json": pipeline("json"),
    "pingpong-rpc": pingpong("rpc"),
    "pipeline-rpc": pipeline("rpc"),
    connections: {
      kind: "connections",
      // Each server's probe is written in what it speaks (set per server when the job runs).
      speaks: "bytes",
      warmup: quick ? 10 : 150,
      connections: quick ? 40 : 600,
      churnWarmup: quick ? 20 : 2000,
      churn: quick ? 40 : 2000,
      concurrency: 50,
      settleMs: quick ? 50 : 200,
      timeoutMs: 30_000
    },
    flood: { kind: "flood", bodySize: 64, durationMs: quick ? 100 : 1000, timeoutMs: 30_000 },
    drain: { kind: "drain", bodySize: 64, requests: 32, timeoutMs: 15_000 },
    ordering: {
      kind: "ordering",
      connections: quick ? 2 : 4,
      framesPerConnection: quick ? 150 : 300,
      maxFrameSize: quick ? 128 * 1024 : 256 * 1024,
      seed: 7,
      timeoutMs: 60_000
    }
  }
}
}

const describe = (p: Plan): Record<Workload, string> => {
  const { connections, ordering, pingpong, pipeline, stream } = p.jobs as {
    readonly [W in LoadWorkload]: Extract<Job, { readonly kind: W extends `${infer K}-${string}` ? K : W }>
  }
  const turns = (pingpong.turns ?? 1) > 1 ? `, counted in ${pingpong.turns} turns between the servers,` : ""
  const window = `${pingpong.durationMs / 1000} s${turns} after ${pingpong.warmupMs / 1000} s warm-up`
  const onePing = `${pingpong.connections} connections, one request in flight each, ${window}`
  const piped = `${pipeline.connections} connections × ${pipeline.depth} requests in flight, ${window}`
  return {
    stream: `${stream.connections} connections × ${stream.bytesPerConnection / MiB} MiB in ${
      stream.writeSize / 1024
    } KiB writes, every byte checked`,
    pingpong: `${pingpong.connections} connections, one ${pingpong.bodySize} B length-prefixed frame in flight each, ${window}; every reply checked, in order`,
    pipeline: `${pipeline.connections} connections × ${pipeline.depth} frames of ${pipeline.bodySize} B in flight, ${window}; every reply checked, in order, none lost`,
    "pingpong-json":
      `${onePing}: a ${pingpong.bodySize} B JSON message \`{"seq","conn","pad"}\` in a u32 BE frame, answered with the same message; every reply checked, in order`,
    "pipeline-json": `${piped}: the JSON messages of the ping-pong above; every reply checked, in order, none lost`,
    "pingpong-rpc":
      `${onePing}: an \`effect/rpc\` call \`Echo\` of the ${pingpong.bodySize} B JSON message, ndjson; every reply checked`,
    "pipeline-rpc":
      `${piped}: the \`Echo\` calls of the ping-pong above; every reply checked against its request id (effect/rpc answers calls concurrently, so not in order), none lost`,
    connections: `${connections.connections} connections opened a quarter at a time and held (each proven with one round trip in what the server speaks), after ${connections.warmup} warm-up ones opened together and closed; memory per connection from the median quarter's growth, each level read after two full garbage collections in the server (--expose-gc); server CPU per open and per close (the collections' CPU taken out); then, in the steady state, ${connections.churn} connections opened (each proven with one round trip) and closed, ${connections.concurrency} at a time, after ${connections.churnWarmup} unmeasured ones: server CPU per open + close`,
    flood: `one connection writes ${(p.jobs.flood as { durationMs: number }).durationMs / 1000} s of 64 B requests as fast as the socket takes them and reads nothing; the server's RSS growth meanwhile (a server that stops reading grows little: the kernel's buffers hold the rest); then every reply must come back, in order`,
    drain: `one connection sends ${(p.jobs.drain as { requests: number }).requests} requests in one write; at the first reply the server gets SIGTERM; every request must be answered, in order, before the server ends the connection`,
    startup: `spawn → \`listening\` line; idle RSS once settled (read every 100 ms from ${p.idleSettleMs} ms after listening until two readings agree, at most ${p.idleMaxMs} ms)`,
    ordering: `${ordering.connections} connections × ${ordering.framesPerConnection} sequence-numbered frames of 0 B to ${
      ordering.maxFrameSize / 1024
    } KiB, pipelined, written in random splits; must come back byte for byte`
  }
}

const T0 = performance.now()
const log = (line: string): void =>
  void process.stderr.write(`${((performance.now() - T0) / 1000).toFixed(1).padStart(6)}s ${line}\n`)

const HEADLINE: Record<LoadWorkload, ReadonlyArray<[string, string]>> = {
  stream: [["mibPerSec", "MiB/s"], ["cpuMsPerGiB", "CPU ms/GiB"], ["peakRssMB", "MB peak"]],
  pingpong: [["roundTripsPerSec", "round trips/s"], ["cpuUsPerRoundTrip", "CPU µs/rt"]],
  pipeline: [["framesPerSec", "frames/s"], ["cpuUsPerFrame", "CPU µs/frame"]],
  "pingpong-json": [["roundTripsPerSec", "round trips/s"], ["cpuUsPerRoundTrip", "CPU µs/rt"]],
  "pipeline-json": [["framesPerSec", "frames/s"], ["cpuUsPerFrame", "CPU µs/frame"]],
  "pingpong-rpc": [["roundTripsPerSec", "calls/s"], ["cpuUsPerRoundTrip", "CPU µs/call"]],
  "pipeline-rpc": [["framesPerSec", "calls/s"], ["cpuUsPerFrame", "CPU µs/call"]],
  connections: [["idleKiBPerConnection", "KiB/conn"], ["openUs", "µs open"], ["closeUs", "µs close"], ["openCloseMainUs", "µs open + close, main thread"], ["churnUs", "µs open + close, steady"]],
  ordering: [["frames", "frames in order"], ["mib", "MiB"]],
  flood: [["requests", "requests"], ["serverRssGrowthMB", "MB server RSS growth"]],
  drain: [["replies", "replies"], ["repliesAfterSignal", "after SIGTERM"]]
}

const builds = (options: Options): Builds => ({ cli: options.cli, before: options.before })

/** The RSS of a server that has just started listening, once it stops changing (see `Plan.idleSettleMs`). */
const idleRss = async (pid: number, p: Plan): Promise<number> => {
  const t0 = performance.now()
  await sleep(p.idleSettleMs)
  let last = readMemory(pid).rss
  while (performance.now() - t0 < p.idleMaxMs) {
    await sleep(100)
    const now = readMemory(pid).rss
    if (now === last) break
    last = now
  }
  return last
}

/** Each repetition starts with a different server, so none always runs first (or right after a heavy one). */
const rotate = <A>(xs: ReadonlyArray<A>, by: number): Array<A> => xs.map((_, i) => xs[(i + by) % xs.length]!)

/**
 * Fresh server processes, started one after another (their start-up and idle
 * RSS are measured alone), then each workload on each server in turn, so the
 * samples of one workload are seconds apart and their ratios see the same
 * noise; ping-pong and pipeline as one load on all servers, in turns
 * (`runTurns`), so each one's window is spread over the whole workload.
 */
const session = async (
  rep: number,
  name: string,
  workloads: ReadonlyArray<LoadWorkload>,
  options: Options,
  p: Plan,
  pinning: Pinning,
  samples: Array<Sample>
): Promise<void> => {
  const servers = new Map<ServerId, ServerProcess>()
  const order = rotate(options.servers, rep)
  const tag = `[${rep + 1}/${options.reps}.${name}]`
  const pad = Math.max(...options.servers.map((id) => id.length))
  // The connections workload reads memory after full collections: its servers get the GC hook.
  const gc = workloads.includes("connections")
  try {
    for (const id of order) {
      try {
        const gcFile = gc ? Path.join(Os.tmpdir(), `effect-wire-bench-gc-${process.pid}-${rep}-${name}-${id}.json`) : undefined
        const server = await ServerProcess.start(id, pinning.server, builds(options), [], gcFile)
        servers.set(id, server)
        // Start-up at every spawn; the idle RSS (which waits for it to settle) once a repetition.
        const metrics: Record<string, number> = { startupMs: round(server.startupMs) }
        // (Either way the next server starts after this one is quiet, so start-ups are measured alone.)
        if (name === "1") metrics["idleRssMB"] = round((await idleRss(server.pid, p)) / MiB)
        else await sleep(p.idleSettleMs)
        samples.push({ workload: "startup", server: id, rep, session: name, metrics, errors: [], cpuSource: "" })
        log(`${tag} ${id.padEnd(pad)} startup: ${formatNumber(metrics["startupMs"]!)} ms${
          metrics["idleRssMB"] === undefined ? "" : `, idle RSS ${formatNumber(metrics["idleRssMB"])} MB`
        }`)
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        samples.push({ workload: "startup", server: id, rep, session: name, metrics: {}, errors: [message], cpuSource: "" })
        log(`${tag} ${id.padEnd(pad)} DID NOT START: ${message}`)
      }
    }
    for (const workload of workloads) {
      const record = (id: ServerId, result: JobResult): void => {
        samples.push({
          workload,
          server: id,
          rep,
          session: name,
          metrics: result.metrics,
          errors: result.errors,
          cpuSource: result.cpuSource
        })
        const headline = HEADLINE[workload]
          .map(([key, unit]) => `${formatNumber(result.metrics[key] ?? Number.NaN)} ${unit}`)
          .join(", ")
        log(`${tag} ${id.padEnd(pad)} ${workload.padEnd(11)} ${result.errors.length === 0 ? headline : `FAILED: ${result.errors.join("; ")}`}`)
      }
      const ids = order.filter((id) => servers.has(id) && runsOn(workload, id))
      const planned = p.jobs[workload]
      if (planned.kind === "pingpong" || planned.kind === "pipeline") {
        // One load for all of them, in turns: see `runTurns`.
        const results = await runTurns(ids.map((id) => servers.get(id)!), planned, pinning.load)
        ids.forEach((id, i) => record(id, results[i]!))
        continue
      }
      for (const id of ids) {
        const job: Job = planned.kind === "connections" ? { ...planned, speaks: speaks(id) } : planned
        record(id, await runJob(servers.get(id)!, job, pinning.load))
      }
    }
  } finally {
    await Promise.all([...servers.values()].map((s) => s.stop()))
  }
}

interface DecoderRun {
  readonly status: "ok" | "missing" | "skipped" | "failed"
  readonly note: string
  readonly results: unknown
}

/**
 * bench/decoders.ts (the codecs' own micro-benchmark) prints its table and,
 * with `--json`, its results as JSON after it; a future version may write
 * them to the file named after `--json`, so both are read. Its own `--quick`
 * is the default here: its full run alone takes minutes.
 */
const runDecoders = async (options: Options, pinning: Pinning): Promise<DecoderRun> => {
  if (options.decoders === "skip") return { status: "skipped", note: "--no-decoders", results: null }
  if (!Fs.existsSync(DECODERS)) return { status: "missing", note: `${Path.relative(ROOT, DECODERS)} is not built`, results: null }
  const out = Path.join(Os.tmpdir(), `effect-wire-decoders-${process.pid}.json`)
  log("bench: decoder micro-benchmark (bench/decoders.ts)")
  const child = launch(pinning.server, [DECODERS, "--json", out, ...(options.decoders === "quick" ? ["--quick"] : [])])
  const stdout = tail(child.stdout, 1_000_000)
  const stderr = tail(child.stderr)
  const limit = options.decoders === "quick" ? 90_000 : 600_000
  const finished = await exitsWithin(child, limit)
  if (!finished) {
    child.kill("SIGKILL")
    return { status: "failed", note: `still running after ${limit / 1000} s; killed`, results: null }
  }
  try {
    if (child.exitCode !== 0) throw new Error(`exited with code ${child.exitCode}: ${stderr()}`)
    const text = stdout()
    const jsonAt = text.search(/^\{/m)
    const results: unknown = Fs.existsSync(out)
      ? JSON.parse(Fs.readFileSync(out, "utf8"))
      : jsonAt >= 0
      ? JSON.parse(text.slice(jsonAt))
      : null
    if (results === null) throw new Error("printed no JSON")
    return { status: "ok", note: (jsonAt >= 0 ? text.slice(0, jsonAt) : text).trim(), results }
  } catch (error) {
    return { status: "failed", note: error instanceof Error ? error.message : String(error), results: null }
  } finally {
    Fs.rmSync(out, { force: true })
  }
}

const main = async (): Promise<void> => {
  const options = parseOptions(process.argv.slice(2))
  const p = plan(options.quick)
  if (options.servers.some((s) => s === "wire" || s === "wire-framed") && !Fs.existsSync(options.cli)) {
    usage(`the effect-wire CLI is not built (${Path.relative(ROOT, options.cli)} is missing): run npx tsc -p tsconfig.build.json, or pick --servers node-raw,node-framed`)
  }
  const pinning = detectPinning(options.pin)
  const started = new Date()
  const t0 = performance.now()
  const loadStart = Os.loadavg()
  log(`bench: ${options.quick ? "quick" : "full"} run, ${options.reps} repetition(s), ${pinning.note}`)
  log(`bench: load average ${loadStart.map((x) => x.toFixed(2)).join(" ")}; other processes on this machine add noise`)

  const samples: Array<Sample> = []
  // Fresh processes for the connections, so no garbage of earlier traffic is collected while
  // the connections' memory is measured; fresh ones for the traffic, so the stream echo, first,
  // owns the peak RSS. A quick run only checks correctness and needs one set.
  const sessions: ReadonlyArray<ReadonlyArray<LoadWorkload>> = options.quick
    // Connections first, before traffic leaves garbage and free heap behind.
    ? [[...options.workloads.filter((w) => w === "connections"), ...options.workloads.filter((w) => w !== "connections")]]
    : [options.workloads.filter((w) => w === "connections"), options.workloads.filter((w) => w !== "connections")]
  for (let rep = 0; rep < (options.tls === "only" ? 0 : options.reps); rep++) {
    for (const [i, workloads] of sessions.entries()) {
      if (workloads.length > 0 || i === 0) await session(rep, String(i + 1), workloads, options, p, pinning, samples)
    }
  }
  const decoders = await runDecoders(options, pinning)
  const tls = options.tls === "skip" ? undefined : await runTls({ quick: options.quick, reps: options.reps, cli: options.cli }, pinning, log)
  const loadEnd = Os.loadavg()
  const seconds = (performance.now() - t0) / 1000

  const decoderRows = decoderResults(decoders.results)
  const targets = [...evaluateTargets(samples, options.servers), ...decoderTargets(decoderRows), ...(tls?.targets ?? [])]
  const failures = samples.filter((s) => s.errors.length > 0).map((s) =>
    `${s.workload} on ${SERVER_LABELS[s.server]} (repetition ${s.rep + 1}): ${s.errors.join("; ")}`
  )
  if (decoders.status === "failed") failures.push(`decoder micro-benchmark: ${decoders.note}`)
  if (tls !== undefined) failures.push(...tls.failures)
  const ordering = samples.filter((s) => s.workload === "ordering")
  const markdown = render({ options, p, pinning, started, seconds, loadStart, loadEnd, samples, targets, failures, ordering, decoders, tls })
  process.stdout.write(`${markdown}\n`)

  const json = {
    version: 1,
    date: started.toISOString(),
    seconds: round(seconds),
    quick: options.quick,
    machine: {
      node: process.version,
      cpus: Os.cpus().length,
      cpuModel: Os.cpus()[0]?.model ?? "",
      pinning: pinning.note,
      loadAverageStart: loadStart,
      loadAverageEnd: loadEnd
    },
    before: options.before === undefined ? null : { dist: options.before, ...describeBuild(options.before) },
    after: describeBuild(Path.join(ROOT, "dist")),
    servers: options.servers.map((id) => ({
      id,
      label: SERVER_LABELS[id],
      // The same node and flags for every server: this process's.
      command: [process.execPath, ...serverArgs(id, builds(options)).map(shortPath)]
    })),
    plan: p,
    summary: summarize(samples, options.servers),
    // Every target: what was measured on which server against which reference, the bound, the
    // median (min–max, n repetitions) of the per-repetition ratios (or of the metric), the verdict.
    targets: targets.map((t) => ({
      issue: t.issue ?? null,
      text: t.text,
      workload: t.workload ?? "decoders",
      server: t.server ?? null,
      subject: t.subject,
      against: t.against ?? null,
      metric: t.metric ?? (t.ratio ? "ratio" : null),
      target: targetText(t),
      judged: t.judge,
      median: t.measured?.median ?? null,
      min: t.measured?.min ?? null,
      max: t.measured?.max ?? null,
      n: t.measured?.n ?? 0,
      verdict: t.verdict
    })),
    correctness: { ok: failures.length === 0, failures },
    decoders,
    tls: tls === undefined ? null : { status: tls.status, note: tls.note, samples: tls.samples },
    samples
  }
  Fs.mkdirSync(RESULTS_DIR, { recursive: true })
  const text = `${JSON.stringify(json, null, 2)}\n`
  Fs.writeFileSync(Path.join(RESULTS_DIR, "latest.json"), text)
  Fs.writeFileSync(Path.join(RESULTS_DIR, "latest.md"), `${markdown}\n`)
  if (options.json !== undefined) Fs.writeFileSync(options.json, text)
  log(`bench: results in ${Path.relative(process.cwd(), Path.join(RESULTS_DIR, "latest.json"))}${options.json ? ` and ${options.json}` : ""}`)

  if (failures.length > 0) process.exit(1)
  if (options.strict && targets.some((t) => t.verdict === "FAIL")) process.exit(3)
}

/** A path inside the checkout relative to it, any other absolute. */
const shortPath = (p: string): string => {
  const relative = Path.relative(ROOT, p)
  return relative === "" || relative.startsWith("..") || Path.isAbsolute(relative) ? p : relative
}

/** The effect-wire and effect versions a dist/ directory was built from, read from its checkout when there is one. */
const describeBuild = (dist: string): { readonly effectWire: string | null; readonly effect: string | null } => {
  const version = (file: string): string | null => {
    try {
      return (JSON.parse(Fs.readFileSync(file, "utf8")) as { version?: string }).version ?? null
    } catch {
      return null
    }
  }
  const root = Path.dirname(dist)
  return {
    effectWire: version(Path.join(root, "package.json")),
    effect: version(Path.join(root, "node_modules", "effect", "package.json"))
  }
}

const buildNote = (dist: string): string => {
  const { effect, effectWire } = describeBuild(dist)
  return `${shortPath(dist)}${effectWire === null ? "" : ` (effect-wire ${effectWire}${effect === null ? "" : `, effect ${effect}`})`}`
}

const summarize = (samples: ReadonlyArray<Sample>, servers: ReadonlyArray<ServerId>) => {
  const out: Record<string, Record<string, Record<string, unknown>>> = {}
  for (const workload of new Set(samples.map((s) => s.workload))) {
    out[workload] = {}
    for (const server of servers) {
      const metrics = new Set(samples.filter((s) => s.workload === workload && s.server === server).flatMap((s) => Object.keys(s.metrics)))
      const entry: Record<string, unknown> = {}
      for (const metric of metrics) {
        entry[metric] = {
          ...metricSpread(samples, workload, server, metric),
          vsRawNode: ratioSpread(samples, workload, server, "node-raw", metric),
          vsHandFramed: ratioSpread(samples, workload, server, "node-framed", metric),
          ...(servers.includes(`${server}@before` as ServerId)
            ? { vsBefore: ratioSpread(samples, workload, server, `${server}@before` as ServerId, metric) }
            : {})
        }
      }
      out[workload]![server] = entry
    }
  }
  return out
}

const render = (r: {
  options: Options
  p: Plan
  pinning: Pinning
  started: Date
  seconds: number
  loadStart: ReadonlyArray<number>
  loadEnd: ReadonlyArray<number>
  samples: ReadonlyArray<Sample>
  targets: ReadonlyArray<TargetResult>
  failures: ReadonlyArray<string>
  ordering: ReadonlyArray<Sample>
  decoders: DecoderRun
  tls: TlsRun | undefined
}): string => {
  const cpuSources = new Set(r.samples.map((s) => s.cpuSource).filter((s) => s !== ""))
  const lines = [
    `## effect-wire bench, ${r.started.toISOString().slice(0, 16).replace("T", " ")} UTC${r.options.quick ? " (--quick: sizes too small to mean anything)" : ""}`,
    "",
    `Node ${process.version}, ${Os.cpus().length} × ${Os.cpus()[0]?.model.trim() ?? "cpu"}; ${r.pinning.note}; ${r.options.reps} repetition(s), ${r.seconds.toFixed(0)} s. ` +
    `Every server runs on this node (${process.execPath}) with the same flags` +
    `${r.options.servers.some((id) => id.endsWith("-tuned")) ? " (the -tuned ones add the V8 flags their names list)" : ""}.`,
    ...(r.options.before === undefined ? [] : [
      `Before/after: this build is ${buildNote(Path.join(ROOT, "dist"))}; the servers marked (before) are ${buildNote(r.options.before)}, measured in the same run.`
    ]),
    `Load average ${r.loadStart.map((x) => x.toFixed(2)).join(" ")} at the start, ${r.loadEnd.map((x) => x.toFixed(2)).join(" ")} at the end: ` +
    `anything above ~0 means other processes shared the cores, so absolute numbers are low and noisy; the ratios compare servers measured seconds apart (ping-pong and pipeline: in alternating turns, see docs/performance.md).`,
    `Cells: median (min–max) over repetitions; ratios are medians of per-repetition ratios. Server CPU from /proc (${[...cpuSources].join(", ") || "n/a"}).`,
    "",
    "### Correctness",
    "",
    r.failures.length === 0
      ? `All byte counts, contents and replies checked out: every reply complete, in order (by id for effect/rpc), none lost, drains included; the ordering probe got every frame back in order on every server (${r.ordering.length} runs).`
      : ["**CORRECTNESS FAILURES: the run exits non-zero.**", "", ...r.failures.map((f) => `- ${f}`)].join("\n"),
    "",
    "### Targets",
    "",
    `${r.targets.length} targets: ${["PASS", "FAIL", "INFO", "n/a"].map((v) => `${r.targets.filter((t) => t.verdict === v).length} ${v}`).join(", ")} (INFO: a comparison with no target). ` +
    "Ratios are medians of per-repetition ratios (min–max over repetitions); targets marked \"every repetition\" are judged on the worst repetition.",
    "",
    renderTargets(r.targets),
    "",
    "### Summary",
    "",
    "Medians of per-repetition ratios from the tables below. Ping-pong and pipeline compare each server, in what it speaks, to the reference of its kind (raw node:net for the raw-byte echoes, the hand-written framed server for the framed ones and the typed services, effect/rpc on NodeSocketServer for effect/rpc); open + close to raw node.",
    "",
    renderSummary(r.samples, r.options.servers),
    "",
    renderTables(r.samples, r.options.servers, r.targets, describe(r.p)),
    "### Decoders (bench/decoders.ts)",
    "",
    r.decoders.status === "ok"
      ? [
        `Throughput relative to a hand-written decoder of the codec's own format on its raw path (the u32 BE one for the length-prefixed codecs, a \`Buffer#indexOf\` scan for \`delimited\` and \`lines\`, JSON header checked for \`header\`; best of its runs, reads cut at random sizes${
          r.options.decoders === "quick" ? ", its --quick sizes; --decoders-full for its full run" : ""
        }); Stream rows add \` / \` the ratio against the hand-written decoder in the same Stream plumbing:`,
        "",
        renderDecoders(decoderResults(r.decoders.results))
      ].join("\n")
      : `${r.decoders.status === "failed" ? "**FAILED**" : "not run"}: ${r.decoders.note}`,
    "",
    ...(r.tls === undefined ? [] : ["### TLS echo against node:tls (issue 14, bench/tls.ts)", "", r.tls.markdown, ""])
  ]
  return lines.join("\n")
}

main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  killAll()
  process.exit(1)
})
