/**
 * From samples to verdicts: medians with their spread, ratios taken pair by
 * pair (a server against a reference measured in the same repetition, so
 * noise that hits both cancels out), the targets of issue 7, and the
 * markdown tables `npm run bench` prints and docs/performance.md quotes.
 */

import type { Speaks } from "./common.js"

/** The servers of this build (and the node:net references). */
export type BaseServerId =
  | "node-raw"
  | "node-framed"
  | "node-framed-json"
  | "node-raw-heap"
  | "wire"
  | "wire-framed"
  | "wire-nometrics"
  | "wire-stream"
  | "wire-protocol"
  | "wire-protocol-json"
  | "wire-protocol-async"
  | "wire-protocol-nometrics"
  | "wire-protocol-traced"
  | "wire-stream-tuned"
  | "wire-protocol-tuned"
  | "wire-stream-noasync"
  | "effect-raw"
  | "effect-framed"
  | "effect-protocol"
  | "effect-protocol-json"
  | "rpc-wire"
  | "rpc-effect"

/** The same effect-wire servers from another build's dist/ (`--before DIR`), for a before/after table. */
export type BeforeServerId =
  | "wire@before"
  | "wire-framed@before"
  | "wire-stream@before"
  | "wire-protocol@before"
  | "wire-protocol-json@before"

export type ServerId = BaseServerId | BeforeServerId

export const BEFORE_SERVERS: ReadonlyArray<BeforeServerId> = [
  "wire@before",
  "wire-framed@before",
  "wire-stream@before",
  "wire-protocol@before",
  "wire-protocol-json@before"
]

const BASE_LABELS: Record<BaseServerId, string> = {
  "node-raw": "raw node:net (`socket.pipe(socket)`)",
  "node-framed": "hand-written node:net framed",
  "node-framed-json": "hand-written node:net framed, JSON parsed, checked and written by hand",
  "node-raw-heap": "raw node:net with an Effect program's live heap (plain objects up to 16 MiB; against raw node)",
  "wire": "effect-wire `serve echo`",
  "wire-framed": "effect-wire `serve echo --framing length`",
  "wire-nometrics": "effect-wire `serve echo --metrics off` (metrics' cost: against `wire`)",
  "wire-stream": "effect-wire `Server.layer`, Stream handler",
  "wire-protocol": "effect-wire `Protocol` service, binary messages",
  "wire-protocol-json": "effect-wire `Protocol` service, JSON messages",
  "wire-protocol-async": "effect-wire `Protocol` service, handler that waits",
  "wire-protocol-nometrics": "effect-wire `Protocol` service, binary messages, metrics off (against `wire-protocol`)",
  "wire-protocol-traced": "effect-wire `Protocol` service, binary messages, a span per request and connection (against `wire-protocol`)",
  "wire-stream-tuned": "effect-wire `Server.layer`, Stream handler, node --max-semi-space-size=1 --heap-growing-percent=200",
  "wire-protocol-tuned": "effect-wire `Protocol` service, binary messages, node --max-semi-space-size=1 --heap-growing-percent=200",
  "wire-stream-noasync": "effect-wire `Server.layer`, Stream handler, Effect's AsyncResource per fiber suspension hidden (against `wire-stream`)",
  "effect-raw": "Effect 4 `NodeSocketServer` (reader/writer)",
  "effect-framed": "Effect 4 `NodeSocketServer`, u32 BE frames by hand",
  "effect-protocol": "Effect 4 `NodeSocketServer`, typed service, binary messages",
  "effect-protocol-json": "Effect 4 `NodeSocketServer`, typed service, JSON messages",
  "rpc-wire": "`effect/rpc` on effect-wire (`PlatformSocket`)",
  "rpc-effect": "`effect/rpc` on Effect 4 `NodeSocketServer`"
}

/** Short names for the reference a ratio is taken against. */
export const REFERENCE_NAMES: Partial<Record<ServerId, string>> = {
  "node-raw": "raw node",
  "node-framed": "hand-framed",
  "node-framed-json": "hand-framed JSON",
  "rpc-effect": "rpc on NodeSocketServer",
  "effect-raw": "NodeSocketServer",
  "effect-protocol": "NodeSocketServer",
  "effect-protocol-json": "NodeSocketServer"
}

const baseOf = (id: ServerId): BaseServerId => (isBefore(id) ? afterOf(id) : id)

/** What each server understands (see `Speaks`): which workloads it can run and what the load sends it. */
export const speaks = (id: ServerId): Speaks => {
  const base = baseOf(id)
  return base === "wire-protocol-json" || base === "effect-protocol-json" || base === "node-framed-json"
    ? "json"
    : base === "rpc-wire" || base === "rpc-effect"
    ? "rpc"
    : "bytes"
}

/** The server of this build a `@before` server is the earlier edition of. */
export const afterOf = (id: BeforeServerId): BaseServerId => id.slice(0, -"@before".length) as BaseServerId

export const isBefore = (id: ServerId): id is BeforeServerId => id.endsWith("@before")

export const SERVER_LABELS: Record<ServerId, string> = {
  ...BASE_LABELS,
  ...Object.fromEntries(BEFORE_SERVERS.map((id) => [id, `${BASE_LABELS[afterOf(id)]} (before)`])) as Record<
    BeforeServerId,
    string
  >
}

/**
 * Servers that cut u32 BE frames (and answer frame by frame) rather than echo
 * bytes: their reference is the hand-written framed server; the raw-byte ones'
 * is raw node:net.
 */
export const isFramed = (id: ServerId): boolean => {
  const base = baseOf(id)
  return base.startsWith("node-framed") || base === "wire-framed" || base.includes("protocol") || base === "effect-framed"
}

export type Workload =
  | "stream"
  | "pingpong"
  | "pipeline"
  | "pingpong-json"
  | "pipeline-json"
  | "pingpong-rpc"
  | "pipeline-rpc"
  | "connections"
  | "startup"
  | "ordering"
  | "flood"
  | "drain"

/**
 * Whether `server` runs `workload`: the byte servers run the byte load (stream echo, ordering
 * probe, binary ping-pong and pipeline), the JSON services their JSON ping-pong and pipeline
 * (with the hand-written framed server as the reference, echoing the same frames), the RPC
 * servers theirs; every server opens the idle connections and starts up.
 */
export const runsOn = (workload: Workload, server: ServerId): boolean => {
  switch (workload) {
    case "connections":
    case "startup":
      return true
    case "pingpong-json":
    case "pipeline-json":
      return speaks(server) === "json" || server === "node-framed"
    case "pingpong-rpc":
    case "pipeline-rpc":
      return speaks(server) === "rpc"
    case "flood":
      return ["node-framed", "wire-framed", "wire-protocol", "wire-protocol-async", "effect-protocol"].includes(server)
    case "drain":
      // The servers that drain on SIGTERM (Server's drain); the node:net baselines just exit.
      return ["wire-framed", "wire-protocol", "wire-protocol-async"].includes(server)
    default:
      return speaks(server) === "bytes"
  }
}

/**
 * The reference of a server's kind: raw node:net for raw echoes, the
 * hand-written framed server for framed ones and binary typed services, its
 * JSON edition for JSON services (itself measured against the framed echo),
 * rpc on NodeSocketServer for rpc.
 */
export const referenceOf = (id: ServerId): ServerId =>
  speaks(id) === "rpc"
    ? "rpc-effect"
    : speaks(id) === "json" && id !== "node-framed-json"
    ? "node-framed-json"
    : isFramed(id)
    ? "node-framed"
    : "node-raw"

/** The ping-pong and pipeline workloads in what `id` speaks. */
export const smallFrameWorkloads = (id: ServerId): readonly [Workload, Workload] =>
  speaks(id) === "json"
    ? ["pingpong-json", "pipeline-json"]
    : speaks(id) === "rpc"
    ? ["pingpong-rpc", "pipeline-rpc"]
    : ["pingpong", "pipeline"]

/** One job's outcome on one server in one repetition. */
export interface Sample {
  readonly workload: Workload
  readonly server: ServerId
  readonly rep: number
  /** Which set of server processes of the repetition it ran on: ratios pair samples of the same rep and session. */
  readonly session: string
  readonly metrics: Record<string, number>
  readonly errors: ReadonlyArray<string>
  readonly cpuSource: string
}

export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const spread = (xs: ReadonlyArray<number>): Spread | undefined => {
  const finite = xs.filter(Number.isFinite)
  if (finite.length === 0) return undefined
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), n: finite.length }
}

/** JSON turns NaN (no operation to divide by) into null. */
const finite = (x: number | null | undefined): x is number => typeof x === "number" && Number.isFinite(x)

const values = (samples: ReadonlyArray<Sample>, workload: Workload, server: ServerId, metric: string): Array<number> =>
  samples
    .filter((s) => s.workload === workload && s.server === server && s.errors.length === 0)
    .map((s) => s.metrics[metric])
    .filter(finite)

/** The metric over repetitions. */
export const metricSpread = (
  samples: ReadonlyArray<Sample>,
  workload: Workload,
  server: ServerId,
  metric: string
): Spread | undefined => spread(values(samples, workload, server, metric))

/** `server / against` for each repetition (and session) where both ran cleanly. */
export const ratioSpread = (
  samples: ReadonlyArray<Sample>,
  workload: Workload,
  server: ServerId,
  against: ServerId,
  metric: string
): Spread | undefined => {
  const key = (s: Sample): string => `${s.rep}/${s.session}`
  const references = new Map<string, number>()
  for (const s of samples) {
    const value = s.metrics[metric]
    if (s.workload === workload && s.server === against && s.errors.length === 0 && finite(value)) {
      references.set(key(s), value)
    }
  }
  const ratios: Array<number> = []
  for (const s of samples) {
    if (s.workload !== workload || s.server !== server || s.errors.length > 0) continue
    const reference = references.get(key(s))
    const value = s.metrics[metric]
    if (reference !== undefined && finite(value) && reference > 0) ratios.push(value / reference)
  }
  return spread(ratios)
}

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

export interface TargetSpec {
  readonly text: string
  /** The issue whose table the target comes from (12: Effect handlers at raw node's speed; 7: the first bench). */
  readonly issue: number
  readonly workload: Workload
  readonly metric: string
  readonly server: ServerId
  /** Compare the ratio to this server; without it, compare the metric itself. */
  readonly against?: ServerId
  /**
   * `>=`/`<=`: a target. `info`: a comparison with no target (reported, never judged). `errors`: a
   * correctness target: every job of `server` in `workloads` came back complete and in order.
   */
  readonly op: ">=" | "<=" | "info" | "errors"
  readonly threshold: number
  /** `median` (the default): the median of per-repetition ratios meets it; `every`: every repetition does. */
  readonly judge?: "median" | "every" | undefined
  /** For `errors` targets: the workloads whose jobs are checked. */
  readonly workloads?: ReadonlyArray<Workload> | undefined
}

export type Verdict = "PASS" | "FAIL" | "INFO" | "n/a"

/** The workloads of the TLS bench (bench/tls.ts), judged beside the others. */
export type TlsWorkload = "tls-stream" | "tls-pingpong" | "tls-handshakes"

export interface TargetResult {
  readonly text: string
  readonly issue?: number
  /** What was measured: a server's label, or a decoder and its path. */
  readonly subject: string
  readonly server?: ServerId
  readonly against?: ServerId
  readonly workload?: Workload | TlsWorkload
  readonly metric?: string
  readonly measured: Spread | undefined
  readonly op: ">=" | "<=" | "info" | "errors"
  readonly threshold: number
  readonly judge: "median" | "every"
  readonly ratio: boolean
  readonly verdict: Verdict
}

const ratioTarget = (
  issue: number,
  text: string,
  workload: Workload,
  metric: string,
  server: ServerId,
  against: ServerId,
  op: ">=" | "<=" | "info",
  threshold: number,
  judge: "median" | "every" = "median"
): TargetSpec => ({ issue, text, workload, metric, server, against, op, threshold, judge })

/** Ping-pong and pipeline of a typed service against the hand-written framed server (issue 12's first two rows). */
const typedServiceTargets = (
  server: ServerId,
  format: string,
  pingpong: Workload,
  pipeline: Workload,
  reference: ServerId = "node-framed"
) => [
  ratioTarget(12, `${format} ping-pong round trips/s ≥ 0.90× hand-written framed`, pingpong, "roundTripsPerSec", server, reference, ">=", 0.9),
  ratioTarget(12, `${format} ping-pong server CPU per round trip ≤ 1.2× hand-written framed`, pingpong, "cpuUsPerRoundTrip", server, reference, "<=", 1.2),
  ratioTarget(12, `${format} pipeline frames/s ≥ 0.85× hand-written framed`, pipeline, "framesPerSec", server, reference, ">=", 0.85),
  ratioTarget(12, `${format} pipeline server CPU per frame ≤ 1.5× hand-written framed`, pipeline, "cpuUsPerFrame", server, reference, "<=", 1.5)
]

/** effect-wire against the same service on Effect's NodeSocketServer: ≥ 1.0× in every repetition, ping-pong and pipeline. */
const peerTargets = (server: ServerId, peer: ServerId, what: string, pingpong: Workload, pipeline: Workload) => [
  ratioTarget(12, `${what} ping-pong ≥ 1.0× the same on NodeSocketServer, every repetition`, pingpong, "roundTripsPerSec", server, peer, ">=", 1, "every"),
  ratioTarget(12, `${what} pipeline ≥ 1.0× the same on NodeSocketServer, every repetition`, pipeline, "framesPerSec", server, peer, ">=", 1, "every")
]

/**
 * The same service's open + close on NodeSocketServer (INFO): issue 12 judges open + close against raw
 * node; this says what a user gains or loses per connection by writing the service with effect-wire
 * rather than on Effect's own socket server.
 */
const peerConnectionTarget = (server: ServerId, peer: ServerId, what: string): TargetSpec =>
  ratioTarget(12, `${what} open + close CPU vs the same on NodeSocketServer`, "connections", "openCloseUs", server, peer, "info", 0)

/** The stream echo row: throughput, CPU per GiB and peak RSS against raw node. */
const streamTargets = (server: ServerId) => [
  ratioTarget(12, "stream echo throughput ≥ 0.90× raw node", "stream", "mibPerSec", server, "node-raw", ">=", 0.9),
  ratioTarget(12, "stream echo server CPU per GiB ≤ 1.3× raw node", "stream", "cpuMsPerGiB", server, "node-raw", "<=", 1.3),
  ratioTarget(12, "stream echo peak RSS ≤ 1.2× raw node", "stream", "peakRssMB", server, "node-raw", "<=", 1.2)
]

/** The idle connections row, for every effect-wire server of issue 12's table. */
const idleTargets = (server: ServerId): Array<TargetSpec> => [
  { issue: 12, text: "memory per idle connection ≤ 8 KiB", workload: "connections", metric: "idleKiBPerConnection", server, op: "<=", threshold: 8 },
  ratioTarget(12, "open + close CPU ≤ 1.5× raw node", "connections", "openCloseUs", server, "node-raw", "<=", 1.5)
]

export const TARGETS: ReadonlyArray<TargetSpec> = [
  // Issue 12, row by row.
  ...typedServiceTargets("wire-protocol", "binary", "pingpong", "pipeline"),
  // A JSON service written by hand parses and writes JSON too: its reference is the hand-written
  // framed server doing that; against the bare framed echo, which does neither, it is information.
  ...typedServiceTargets("wire-protocol-json", "JSON", "pingpong-json", "pipeline-json", "node-framed-json"),
  ratioTarget(12, "JSON ping-pong round trips/s vs the hand-written framed echo (no JSON)", "pingpong-json", "roundTripsPerSec", "wire-protocol-json", "node-framed", "info", 0),
  ratioTarget(12, "JSON pipeline frames/s vs the hand-written framed echo (no JSON)", "pipeline-json", "framesPerSec", "wire-protocol-json", "node-framed", "info", 0),
  ratioTarget(12, "Stream handler ping-pong round trips/s ≥ 0.90× raw node", "pingpong", "roundTripsPerSec", "wire-stream", "node-raw", ">=", 0.9),
  ratioTarget(12, "Stream handler ping-pong server CPU per round trip ≤ 1.2× raw node", "pingpong", "cpuUsPerRoundTrip", "wire-stream", "node-raw", "<=", 1.2),
  ...peerTargets("wire-protocol", "effect-protocol", "binary typed service", "pingpong", "pipeline"),
  ...peerTargets("wire-protocol-json", "effect-protocol-json", "JSON typed service", "pingpong-json", "pipeline-json"),
  ...peerTargets("wire-stream", "effect-raw", "Stream echo", "pingpong", "pipeline"),
  peerConnectionTarget("wire-protocol", "effect-protocol", "binary typed service"),
  peerConnectionTarget("wire-protocol-json", "effect-protocol-json", "JSON typed service"),
  peerConnectionTarget("wire-stream", "effect-raw", "Stream echo"),
  ...streamTargets("wire"),
  ...streamTargets("wire-stream"),
  ...(["wire", "wire-framed", "wire-stream", "wire-protocol", "wire-protocol-json"] as const).flatMap(idleTargets),
  // The same CPU without V8's background threads, which in the first connections of a process are
  // mostly its optimizing compilers at work on the connection's code (docs/performance.md).
  ...(["wire-stream", "wire-protocol", "wire-protocol-json"] as const).map((server) =>
    ratioTarget(12, "open + close CPU on the main thread vs raw node (V8's background threads left out)", "connections", "openCloseMainUs", server, "node-raw", "info", 0)
  ),
  ratioTarget(12, "start to listening ≤ 2× raw node", "startup", "startupMs", "wire", "node-raw", "<=", 2),
  { issue: 12, text: "idle RSS ≤ 70 MB", workload: "startup", metric: "idleRssMB", server: "wire", op: "<=", threshold: 70 },
  {
    issue: 12,
    text: "async handler: every reply complete and in request order (ping-pong, pipeline, ordering probe, stream echo, flood)",
    workload: "pipeline",
    metric: "failedJobs",
    server: "wire-protocol-async",
    op: "errors",
    threshold: 0,
    workloads: ["pingpong", "pipeline", "ordering", "stream", "flood"]
  },
  {
    issue: 12,
    text: "async handler: reading pauses (no unbounded buffering): server RSS growth ≤ 16 MB under a peer that writes 1 s and never reads",
    workload: "flood",
    metric: "serverRssGrowthMB",
    server: "wire-protocol-async",
    op: "<=",
    threshold: 16
  },
  ratioTarget(12, "async handler: share of the flood the peer was held back, vs the hand-written framed server", "flood", "stalledShare", "wire-protocol-async", "node-framed", "info", 0),
  {
    issue: 12,
    text: "async handler: no reply lost on drain (SIGTERM with requests read and unanswered)",
    workload: "drain",
    metric: "failedJobs",
    server: "wire-protocol-async",
    op: "errors",
    threshold: 0,
    workloads: ["drain"]
  },
  // No target: which transport to choose for effect/rpc.
  ratioTarget(12, "effect/rpc ping-pong on effect-wire vs on NodeSocketServer", "pingpong-rpc", "roundTripsPerSec", "rpc-wire", "rpc-effect", "info", 0),
  ratioTarget(12, "effect/rpc pipeline on effect-wire vs on NodeSocketServer", "pipeline-rpc", "framesPerSec", "rpc-wire", "rpc-effect", "info", 0),
  ratioTarget(12, "effect/rpc server CPU per call on effect-wire vs on NodeSocketServer (pipeline)", "pipeline-rpc", "cpuUsPerFrame", "rpc-wire", "rpc-effect", "info", 0),
  ratioTarget(12, "effect/rpc memory per idle connection on effect-wire vs on NodeSocketServer", "connections", "idleKiBPerConnection", "rpc-wire", "rpc-effect", "info", 0),
  // Issue 7's framed-echo targets, still held.
  ratioTarget(7, "framed ping-pong round trips/s ≥ 0.95× hand-written framed", "pingpong", "roundTripsPerSec", "wire-framed", "node-framed", ">=", 0.95),
  ratioTarget(7, "framed ping-pong CPU per round trip ≤ 1.2× hand-written framed", "pingpong", "cpuUsPerRoundTrip", "wire-framed", "node-framed", "<=", 1.2),
  ratioTarget(7, "framed pipeline frames/s ≥ 0.90× hand-written framed", "pipeline", "framesPerSec", "wire-framed", "node-framed", ">=", 0.9),
  ratioTarget(7, "framed pipeline CPU per frame ≤ 1.5× hand-written framed", "pipeline", "cpuUsPerFrame", "wire-framed", "node-framed", "<=", 1.5)
]

/** How a target reads: "≥ 0.9× hand-framed", "≤ 8", "every repetition ≥ 1×", "no target", "0 failed jobs". */
export const targetText = (t: Pick<TargetResult, "op" | "threshold" | "ratio" | "judge" | "against">): string => {
  if (t.op === "info") return "no target"
  if (t.op === "errors") return "no failed job"
  const against = t.against === undefined ? "" : ` ${REFERENCE_NAMES[t.against] ?? t.against}`
  const bound = `${t.op === ">=" ? "≥" : "≤"} ${t.threshold}${t.ratio ? `×${against}` : ""}`
  return t.judge === "every" ? `every repetition ${bound}` : bound
}

export const evaluateTargets = (
  samples: ReadonlyArray<Sample>,
  servers: ReadonlyArray<ServerId>
): Array<TargetResult> =>
  TARGETS.filter((t) => servers.includes(t.server) && (t.against === undefined || servers.includes(t.against))).map(
    (t) => {
      const judge = t.judge ?? "median"
      const base = {
        text: t.text,
        issue: t.issue,
        subject: SERVER_LABELS[t.server],
        server: t.server,
        workload: t.workload,
        metric: t.metric,
        op: t.op,
        threshold: t.threshold,
        judge,
        ...(t.against === undefined ? {} : { against: t.against })
      }
      if (t.op === "errors") {
        const jobs = samples.filter((s) => s.server === t.server && (t.workloads ?? [t.workload]).includes(s.workload))
        const failed = jobs.filter((s) => s.errors.length > 0).length
        const measured = jobs.length === 0 ? undefined : { median: failed, min: failed, max: failed, n: jobs.length }
        const verdict: Verdict = measured === undefined ? "n/a" : failed === 0 ? "PASS" : "FAIL"
        return { ...base, measured, ratio: false, verdict }
      }
      const measured = t.against === undefined
        ? metricSpread(samples, t.workload, t.server, t.metric)
        : ratioSpread(samples, t.workload, t.server, t.against, t.metric)
      const judged = measured === undefined ? undefined : judge === "every"
        ? (t.op === ">=" ? measured.min : measured.max)
        : measured.median
      const verdict: Verdict = judged === undefined
        ? "n/a"
        : t.op === "info"
        ? "INFO"
        : (t.op === ">=" ? judged >= t.threshold : judged <= t.threshold)
        ? "PASS"
        : "FAIL"
      return { ...base, measured, ratio: t.against !== undefined, verdict }
    }
  )

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

interface Column {
  readonly metric: string
  readonly label: string
  /** Show ratios to the table's references. */
  readonly ratios: boolean
}

interface Table {
  readonly workload: Workload
  readonly title: string
  /** The servers each row is also shown as a ratio of. */
  readonly refs: ReadonlyArray<ServerId>
  readonly columns: ReadonlyArray<Column>
}

const busy: ReadonlyArray<Column> = [
  { metric: "serverCpuShare", label: "server core busy", ratios: false },
  { metric: "clientCpuShare", label: "load core busy", ratios: false }
]

const pingpongColumns: ReadonlyArray<Column> = [
  { metric: "roundTripsPerSec", label: "round trips/s", ratios: true },
  { metric: "cpuUsPerRoundTrip", label: "server CPU µs/round trip", ratios: true },
  ...busy
]

const pipelineColumns: ReadonlyArray<Column> = [
  { metric: "framesPerSec", label: "frames/s", ratios: true },
  { metric: "cpuUsPerFrame", label: "server CPU µs/frame", ratios: true },
  ...busy
]

export const tables = (describe: Record<Workload, string>): ReadonlyArray<Table> => [
  {
    workload: "stream",
    title: `Stream echo: ${describe.stream}`,
    refs: ["node-raw"],
    columns: [
      { metric: "mibPerSec", label: "MiB/s", ratios: true },
      { metric: "cpuMsPerGiB", label: "server CPU ms/GiB", ratios: true },
      { metric: "peakRssMB", label: "peak RSS MB", ratios: true },
      ...busy
    ]
  },
  { workload: "pingpong", title: `Ping-pong: ${describe.pingpong}`, refs: ["node-raw", "node-framed"], columns: pingpongColumns },
  { workload: "pipeline", title: `Pipelined: ${describe.pipeline}`, refs: ["node-raw", "node-framed"], columns: pipelineColumns },
  { workload: "pingpong-json", title: `Ping-pong, JSON messages: ${describe["pingpong-json"]}`, refs: ["node-framed", "node-framed-json"], columns: pingpongColumns },
  { workload: "pipeline-json", title: `Pipelined, JSON messages: ${describe["pipeline-json"]}`, refs: ["node-framed", "node-framed-json"], columns: pipelineColumns },
  { workload: "pingpong-rpc", title: `Ping-pong, effect/rpc: ${describe["pingpong-rpc"]}`, refs: ["rpc-effect"], columns: pingpongColumns },
  { workload: "pipeline-rpc", title: `Pipelined, effect/rpc: ${describe["pipeline-rpc"]}`, refs: ["rpc-effect"], columns: pipelineColumns },
  {
    workload: "connections",
    title: `Connections: ${describe.connections}`,
    refs: ["node-raw"],
    columns: [
      { metric: "idleKiBPerConnection", label: "KiB per idle connection", ratios: true },
      { metric: "heapKiBPerConnection", label: "of it V8 heap KiB", ratios: false },
      { metric: "openUs", label: "open µs CPU", ratios: true },
      { metric: "closeUs", label: "close µs CPU", ratios: true },
      { metric: "openCloseUs", label: "open + close µs", ratios: true },
      { metric: "openCloseMainUs", label: "of it on the main thread µs", ratios: true },
      { metric: "churnUs", label: "open + close µs, steady state", ratios: true }
    ]
  },
  {
    workload: "startup",
    title: `Startup: ${describe.startup}`,
    refs: ["node-raw"],
    columns: [
      { metric: "startupMs", label: "spawn → listening ms", ratios: true },
      { metric: "idleRssMB", label: "idle RSS MB", ratios: true }
    ]
  },
  {
    workload: "flood",
    title: `Flood: ${describe.flood}`,
    refs: [],
    columns: [
      { metric: "requests", label: "requests written", ratios: false },
      { metric: "acceptedMiB", label: "MiB the sockets took", ratios: false },
      { metric: "stalledShare", label: "share of the time the writer waited", ratios: false },
      { metric: "serverRssGrowthMB", label: "server RSS growth MB", ratios: false }
    ]
  },
  {
    workload: "drain",
    title: `Drain: ${describe.drain}`,
    refs: [],
    columns: [
      { metric: "requests", label: "requests", ratios: false },
      { metric: "replies", label: "replies", ratios: false },
      { metric: "repliesAfterSignal", label: "of them after SIGTERM", ratios: false }
    ]
  },
  {
    workload: "ordering",
    title: `Ordering probe: ${describe.ordering}`,
    refs: [],
    columns: [
      { metric: "frames", label: "frames checked", ratios: false },
      { metric: "mib", label: "MiB echoed", ratios: false }
    ]
  }
]

/** 3 significant digits, thousands grouped: 92,310 · 650 · 9.12 · 0.0413. */
export const formatNumber = (x: number): string => {
  if (!Number.isFinite(x)) return String(x)
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en-US")
  return Number(x.toPrecision(3)).toString()
}

const formatSpread = (s: Spread | undefined, suffix = ""): string =>
  s === undefined
    ? "–"
    : s.n === 1 || s.min === s.max
    ? `${formatNumber(s.median)}${suffix}`
    : `${formatNumber(s.median)}${suffix} (${formatNumber(s.min)}–${formatNumber(s.max)})`

const formatRatio = (s: Spread | undefined): string =>
  s === undefined
    ? "–"
    : s.n === 1 || s.min === s.max
    ? `${s.median.toFixed(2)}×`
    : `${s.median.toFixed(2)}× (${s.min.toFixed(2)}–${s.max.toFixed(2)})`

const row = (cells: ReadonlyArray<string>): string => `| ${cells.join(" | ")} |`

export const renderTables = (
  samples: ReadonlyArray<Sample>,
  servers: ReadonlyArray<ServerId>,
  targets: ReadonlyArray<TargetResult>,
  describe: Record<Workload, string>
): string => {
  const lines: Array<string> = []
  for (const table of tables(describe)) {
    if (!samples.some((s) => s.workload === table.workload)) continue
    const refs = table.refs.filter((r) => servers.includes(r))
    const header = ["server"]
    for (const c of table.columns) {
      header.push(c.label)
      if (c.ratios) for (const r of refs) header.push(`× ${REFERENCE_NAMES[r] ?? r}`)
    }
    header.push("correct", "targets")
    lines.push(`### ${table.title}`, "", row(header), row(header.map(() => "---")))
    for (const server of servers) {
      const mine = samples.filter((s) => s.workload === table.workload && s.server === server)
      if (mine.length === 0) continue
      const cells = [SERVER_LABELS[server]]
      for (const c of table.columns) {
        cells.push(formatSpread(metricSpread(samples, table.workload, server, c.metric)))
        if (c.ratios) {
          for (const r of refs) cells.push(formatRatio(ratioSpread(samples, table.workload, server, r, c.metric)))
        }
      }
      const failures = mine.filter((s) => s.errors.length > 0).length
      const runs = `${mine.length} run${mine.length === 1 ? "" : "s"}`
      cells.push(failures === 0 ? `yes (${runs})` : `**NO: ${failures} of ${runs} failed**`)
      const verdicts = targets.filter((t) => t.workload === table.workload && t.server === server && t.op !== "errors")
      cells.push(verdicts.length === 0 ? "" : verdicts.map((t) => `${t.verdict} ${targetText(t)}`).join("; "))
      lines.push(row(cells))
    }
    lines.push("")
  }
  return lines.join("\n")
}

/**
 * One line per server: the headline ratios of the workload tables, each
 * against the reference that fits the server (raw node:net for the raw-byte
 * echoes, the hand-written framed server for the framed ones), medians of
 * per-repetition ratios. Nothing here is measured apart from those tables.
 */
export const renderSummary = (samples: ReadonlyArray<Sample>, servers: ReadonlyArray<ServerId>): string => {
  const ratio = (workload: Workload, server: ServerId, against: ServerId, metric: string): string => {
    if (!servers.includes(against)) return "–"
    const s = ratioSpread(samples, workload, server, against, metric)
    return s === undefined ? "–" : `${s.median.toFixed(2)}×`
  }
  const header = [
    "server",
    "reference",
    "ping-pong round trips/s × ref",
    "server CPU µs/round trip × ref",
    "pipeline frames/s × ref",
    "server CPU µs/frame × ref",
    "KiB per idle connection",
    "open + close CPU × raw node",
    "correct"
  ]
  const lines = [row(header), row(header.map(() => "---"))]
  for (const server of servers) {
    const mine = samples.filter((s) => s.server === server)
    if (mine.length === 0) continue
    const ref = referenceOf(server)
    const [pingpong, pipeline] = smallFrameWorkloads(server)
    const failed = mine.filter((s) => s.errors.length > 0)
    const kib = metricSpread(samples, "connections", server, "idleKiBPerConnection")
    lines.push(row([
      SERVER_LABELS[server],
      REFERENCE_NAMES[ref] ?? ref,
      ratio(pingpong, server, ref, "roundTripsPerSec"),
      ratio(pingpong, server, ref, "cpuUsPerRoundTrip"),
      ratio(pipeline, server, ref, "framesPerSec"),
      ratio(pipeline, server, ref, "cpuUsPerFrame"),
      kib === undefined ? "–" : formatNumber(kib.median),
      ratio("connections", server, "node-raw", "openCloseUs"),
      failed.length === 0
        ? "yes"
        : `**NO: ${failed.length} of ${mine.length} jobs (${[...new Set(failed.map((s) => s.workload))].join(", ")})**`
    ]))
  }
  return lines.join("\n")
}

export const renderTargets = (targets: ReadonlyArray<TargetResult>): string => {
  const lines = [
    row(["issue", "target", "subject", "workload", "measured: median (min–max)", "verdict"]),
    row(["---", "---", "---", "---", "---", "---"])
  ]
  for (const t of targets) {
    const measured = t.op === "errors"
      ? t.measured === undefined ? "–" : `${t.measured.median} of ${t.measured.n} jobs failed`
      : t.ratio
      ? formatRatio(t.measured)
      : formatSpread(t.measured)
    lines.push(row([
      t.issue === undefined ? "" : String(t.issue),
      t.text,
      t.subject,
      t.workload ?? "decoders",
      measured,
      t.verdict === "FAIL" ? "**FAIL**" : t.verdict
    ]))
  }
  return lines.join("\n")
}

// ---------------------------------------------------------------------------
// The decoder micro-benchmark (bench/decoders.ts, written with the codecs)
// ---------------------------------------------------------------------------

/**
 * One line of its `--json` output. `ratio` is the time of the hand-written
 * decoder of the row's format (on its raw path) over this row's; Stream rows also carry
 * `ratioToStreamBaseline`, against the hand-written decoder run through the
 * same Stream plumbing, which isolates what `Framing.decode` adds to Effect's
 * own per-chunk cost.
 */
export interface DecoderResult {
  readonly codec: string
  readonly frameSize: number
  readonly path: string
  readonly ratio: number
  readonly ratioToStreamBaseline?: number | undefined
}

/** Reference rows of the decoder benchmark (the hand-written decoder, Effect's bare Stream plumbing): not judged. */
const isDecoderBaseline = (codec: string): boolean => /hand-written|plumbing/.test(codec)

export const decoderResults = (json: unknown): Array<DecoderResult> => {
  const results = (json as { results?: unknown } | null)?.results
  if (!Array.isArray(results)) return []
  return results.filter((r): r is DecoderResult =>
    typeof r === "object" && r !== null && typeof r.codec === "string" && typeof r.frameSize === "number" &&
    typeof r.path === "string" && typeof r.ratio === "number"
  )
}

/** The ratio a row is judged by: Stream rows against the Stream baseline when there is one. */
const decoderRatio = (r: DecoderResult): number => r.path === "stream" ? r.ratioToStreamBaseline ?? r.ratio : r.ratio

const sizeLabel = (n: number): string => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`)

/**
 * "Decoders ≥ 0.8× the hand-written one at every frame size": judged on the
 * worst frame size, for `lengthPrefixed` (the same wire format as the
 * hand-written decoder) and for the worst of all codecs, on each path.
 */
export const decoderTargets = (results: ReadonlyArray<DecoderResult>): Array<TargetResult> => {
  const subjects = results.filter((r) => !isDecoderBaseline(r.codec))
  const paths = [...new Set(subjects.map((r) => r.path))]
  const pathLabel = (path: string): string =>
    path === "raw" ? "decoder.push" : path === "stream" ? "Framing.decode, vs the same Stream plumbing" : path
  return paths.flatMap((path) =>
    [["lengthPrefixed", subjects.filter((r) => r.path === path && r.codec === "lengthPrefixed")] as const, [
      "every codec",
      subjects.filter((r) => r.path === path)
    ] as const].filter(([, rows]) => rows.length > 0).map(([name, rows]): TargetResult => {
      const worst = rows.reduce((a, b) => (decoderRatio(b) < decoderRatio(a) ? b : a))
      const ratio = decoderRatio(worst)
      return {
        text: "decoders ≥ 0.8× hand-written at every frame size",
        subject: `${name}, ${pathLabel(path)} (worst: ${worst.codec}, ${sizeLabel(worst.frameSize)} frames)`,
        issue: 7,
        measured: { median: ratio, min: ratio, max: ratio, n: 1 },
        op: ">=",
        threshold: 0.8,
        judge: "median",
        ratio: true,
        verdict: ratio >= 0.8 ? "PASS" : "FAIL"
      }
    })
  )
}

export const renderDecoders = (results: ReadonlyArray<DecoderResult>): string => {
  const sizes = [...new Set(results.map((r) => r.frameSize))].sort((a, b) => a - b)
  const lines = [
    row(["codec", "path", ...sizes.map((n) => `${sizeLabel(n)} frames`)]),
    row(["---", "---", ...sizes.map(() => "---")])
  ]
  const keys = [...new Set(results.map((r) => JSON.stringify([r.codec, r.path])))]
  for (const key of keys) {
    const [codec, path] = JSON.parse(key) as [string, string]
    lines.push(row([
      codec,
      path,
      ...sizes.map((n) => {
        const r = results.find((x) => x.codec === codec && x.path === path && x.frameSize === n)
        if (r === undefined) return "–"
        const stream = r.ratioToStreamBaseline === undefined ? "" : ` / ${r.ratioToStreamBaseline.toFixed(2)}×`
        return `${r.ratio.toFixed(2)}×${stream}`
      })
    ]))
  }
  return lines.join("\n")
}
