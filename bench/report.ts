/**
 * From samples to verdicts: medians with their spread, ratios taken pair by
 * pair (a server against a reference measured in the same repetition, so
 * noise that hits both cancels out), the targets of issue 7, and the
 * markdown tables `npm run bench` prints and docs/performance.md quotes.
 */

/** The servers of this build (and the node:net references). */
export type BaseServerId =
  | "node-raw"
  | "node-framed"
  | "wire"
  | "wire-framed"
  | "wire-stream"
  | "wire-protocol"
  | "effect-raw"
  | "effect-framed"

/** The same effect-wire servers from another build's dist/ (`--before DIR`), for a before/after table. */
export type BeforeServerId = "wire@before" | "wire-framed@before" | "wire-stream@before" | "wire-protocol@before"

export type ServerId = BaseServerId | BeforeServerId

export const BEFORE_SERVERS: ReadonlyArray<BeforeServerId> = [
  "wire@before",
  "wire-framed@before",
  "wire-stream@before",
  "wire-protocol@before"
]

const BASE_LABELS: Record<BaseServerId, string> = {
  "node-raw": "raw node:net (`socket.pipe(socket)`)",
  "node-framed": "hand-written node:net framed",
  "wire": "effect-wire `serve echo`",
  "wire-framed": "effect-wire `serve echo --framing length`",
  "wire-stream": "effect-wire `Server.layer`, Stream handler",
  "wire-protocol": "effect-wire `Protocol` service, u32 BE frames",
  "effect-raw": "Effect 4 `NodeSocketServer` (reader/writer)",
  "effect-framed": "Effect 4 `NodeSocketServer`, u32 BE frames by hand"
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
  const base = isBefore(id) ? afterOf(id) : id
  return base === "node-framed" || base === "wire-framed" || base === "wire-protocol" || base === "effect-framed"
}

export type Workload = "stream" | "pingpong" | "pipeline" | "connections" | "startup" | "ordering"

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
  readonly workload: Workload
  readonly metric: string
  readonly server: ServerId
  /** Compare the ratio to this server; without it, compare the metric itself. */
  readonly against?: ServerId
  readonly op: ">=" | "<="
  readonly threshold: number
}

export type Verdict = "PASS" | "FAIL" | "n/a"

export interface TargetResult {
  readonly text: string
  /** What was measured: a server's label, or a decoder and its path. */
  readonly subject: string
  readonly server?: ServerId
  readonly workload?: Workload
  readonly measured: Spread | undefined
  readonly op: ">=" | "<="
  readonly threshold: number
  readonly ratio: boolean
  readonly verdict: Verdict
}

export const TARGETS: ReadonlyArray<TargetSpec> = [
  {
    text: "stream echo throughput ≥ 0.90× raw node",
    workload: "stream",
    metric: "mibPerSec",
    server: "wire",
    against: "node-raw",
    op: ">=",
    threshold: 0.9
  },
  {
    text: "stream echo server CPU per GiB ≤ 1.3× raw node",
    workload: "stream",
    metric: "cpuMsPerGiB",
    server: "wire",
    against: "node-raw",
    op: "<=",
    threshold: 1.3
  },
  {
    text: "stream echo peak RSS ≤ 1.2× raw node",
    workload: "stream",
    metric: "peakRssMB",
    server: "wire",
    against: "node-raw",
    op: "<=",
    threshold: 1.2
  },
  {
    text: "framed ping-pong round trips/s ≥ 0.95× hand-written framed",
    workload: "pingpong",
    metric: "roundTripsPerSec",
    server: "wire-framed",
    against: "node-framed",
    op: ">=",
    threshold: 0.95
  },
  {
    text: "framed ping-pong CPU per round trip ≤ 1.2× hand-written framed",
    workload: "pingpong",
    metric: "cpuUsPerRoundTrip",
    server: "wire-framed",
    against: "node-framed",
    op: "<=",
    threshold: 1.2
  },
  {
    text: "framed pipeline frames/s ≥ 0.90× hand-written framed",
    workload: "pipeline",
    metric: "framesPerSec",
    server: "wire-framed",
    against: "node-framed",
    op: ">=",
    threshold: 0.9
  },
  {
    text: "framed pipeline CPU per frame ≤ 1.5× hand-written framed",
    workload: "pipeline",
    metric: "cpuUsPerFrame",
    server: "wire-framed",
    against: "node-framed",
    op: "<=",
    threshold: 1.5
  },
  ...(["wire", "wire-framed"] as const).flatMap((server): Array<TargetSpec> => [
    {
      text: "memory per idle connection ≤ 8 KiB",
      workload: "connections",
      metric: "idleKiBPerConnection",
      server,
      op: "<=",
      threshold: 8
    },
    {
      text: "open + close CPU ≤ 2× raw node",
      workload: "connections",
      metric: "openCloseUs",
      server,
      against: "node-raw",
      op: "<=",
      threshold: 2
    },
    {
      text: "start to listening ≤ 2.5× raw node",
      workload: "startup",
      metric: "startupMs",
      server,
      against: "node-raw",
      op: "<=",
      threshold: 2.5
    },
    { text: "idle RSS ≤ 80 MB", workload: "startup", metric: "idleRssMB", server, op: "<=", threshold: 80 }
  ])
]

export const evaluateTargets = (
  samples: ReadonlyArray<Sample>,
  servers: ReadonlyArray<ServerId>
): Array<TargetResult> =>
  TARGETS.filter((t) => servers.includes(t.server) && (t.against === undefined || servers.includes(t.against))).map(
    (t) => {
      const measured = t.against === undefined
        ? metricSpread(samples, t.workload, t.server, t.metric)
        : ratioSpread(samples, t.workload, t.server, t.against, t.metric)
      const verdict: Verdict = measured === undefined
        ? "n/a"
        : (t.op === ">=" ? measured.median >= t.threshold : measured.median <= t.threshold)
        ? "PASS"
        : "FAIL"
      return {
        text: t.text,
        subject: SERVER_LABELS[t.server],
        server: t.server,
        workload: t.workload,
        measured,
        op: t.op,
        threshold: t.threshold,
        ratio: t.against !== undefined,
        verdict
      }
    }
  )

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

interface Column {
  readonly metric: string
  readonly label: string
  /** Show ratios to raw node (and, in framed workloads, to the hand-written framed server). */
  readonly ratios: boolean
}

interface Table {
  readonly workload: Workload
  readonly title: string
  /** Framed workloads also compare to the hand-written framed server. */
  readonly framed: boolean
  readonly columns: ReadonlyArray<Column>
}

const busy: ReadonlyArray<Column> = [
  { metric: "serverCpuShare", label: "server core busy", ratios: false },
  { metric: "clientCpuShare", label: "load core busy", ratios: false }
]

export const tables = (describe: Record<Workload, string>): ReadonlyArray<Table> => [
  {
    workload: "stream",
    title: `Stream echo: ${describe.stream}`,
    framed: false,
    columns: [
      { metric: "mibPerSec", label: "MiB/s", ratios: true },
      { metric: "cpuMsPerGiB", label: "server CPU ms/GiB", ratios: true },
      { metric: "peakRssMB", label: "peak RSS MB", ratios: true },
      ...busy
    ]
  },
  {
    workload: "pingpong",
    title: `Ping-pong: ${describe.pingpong}`,
    framed: true,
    columns: [
      { metric: "roundTripsPerSec", label: "round trips/s", ratios: true },
      { metric: "cpuUsPerRoundTrip", label: "server CPU µs/round trip", ratios: true },
      ...busy
    ]
  },
  {
    workload: "pipeline",
    title: `Pipelined: ${describe.pipeline}`,
    framed: true,
    columns: [
      { metric: "framesPerSec", label: "frames/s", ratios: true },
      { metric: "cpuUsPerFrame", label: "server CPU µs/frame", ratios: true },
      ...busy
    ]
  },
  {
    workload: "connections",
    title: `Connections: ${describe.connections}`,
    framed: false,
    columns: [
      { metric: "idleKiBPerConnection", label: "KiB per idle connection", ratios: true },
      { metric: "openUs", label: "open µs CPU", ratios: true },
      { metric: "closeUs", label: "close µs CPU", ratios: true },
      { metric: "openCloseUs", label: "open + close µs", ratios: true }
    ]
  },
  {
    workload: "startup",
    title: `Startup: ${describe.startup}`,
    framed: false,
    columns: [
      { metric: "startupMs", label: "spawn → listening ms", ratios: true },
      { metric: "idleRssMB", label: "idle RSS MB", ratios: true }
    ]
  },
  {
    workload: "ordering",
    title: `Ordering probe: ${describe.ordering}`,
    framed: false,
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
    const refs = (table.framed ? ["node-raw", "node-framed"] as const : ["node-raw"] as const).filter((r) =>
      servers.includes(r)
    )
    const header = ["server"]
    for (const c of table.columns) {
      header.push(c.label)
      if (c.ratios) for (const r of refs) header.push(r === "node-raw" ? "× raw node" : "× hand-framed")
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
      const verdicts = targets.filter((t) => t.workload === table.workload && t.server === server)
      cells.push(verdicts.length === 0 ? "" : verdicts.map((t) => `${t.verdict} ${shortTarget(t)}`).join("; "))
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
    "pipeline frames/s × hand-framed",
    "KiB per idle connection",
    "open + close CPU × raw node",
    "correct"
  ]
  const lines = [row(header), row(header.map(() => "---"))]
  for (const server of servers) {
    const mine = samples.filter((s) => s.server === server)
    if (mine.length === 0) continue
    const ref: ServerId = isFramed(server) ? "node-framed" : "node-raw"
    const failed = mine.filter((s) => s.errors.length > 0)
    const kib = metricSpread(samples, "connections", server, "idleKiBPerConnection")
    lines.push(row([
      SERVER_LABELS[server],
      ref === "node-raw" ? "raw node" : "hand-framed",
      ratio("pingpong", server, ref, "roundTripsPerSec"),
      ratio("pingpong", server, ref, "cpuUsPerRoundTrip"),
      ratio("pipeline", server, "node-framed", "framesPerSec"),
      kib === undefined ? "–" : formatNumber(kib.median),
      ratio("connections", server, "node-raw", "openCloseUs"),
      failed.length === 0
        ? "yes"
        : `**NO: ${failed.length} of ${mine.length} jobs (${[...new Set(failed.map((s) => s.workload))].join(", ")})**`
    ]))
  }
  return lines.join("\n")
}

const shortTarget = (t: TargetResult): string => `${t.op === ">=" ? "≥" : "≤"} ${t.threshold}${t.ratio ? "×" : ""}`

export const renderTargets = (targets: ReadonlyArray<TargetResult>): string => {
  const lines = [
    row(["target", "subject", "measured (median of per-repetition ratios, min–max)", "verdict"]),
    row(["---", "---", "---", "---"])
  ]
  for (const t of targets) {
    lines.push(row([
      t.text,
      t.subject,
      t.ratio ? formatRatio(t.measured) : formatSpread(t.measured),
      t.verdict === "FAIL" ? "**FAIL**" : t.verdict
    ]))
  }
  return lines.join("\n")
}

// ---------------------------------------------------------------------------
// The decoder micro-benchmark (bench/decoders.ts, written with the codecs)
// ---------------------------------------------------------------------------

/**
 * One line of its `--json` output. `ratio` is the hand-written u32 BE
 * decoder's time (on its raw path) over this row's; Stream rows also carry
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
        measured: { median: ratio, min: ratio, max: ratio, n: 1 },
        op: ">=",
        threshold: 0.8,
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
