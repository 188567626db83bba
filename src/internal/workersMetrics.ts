/**
 * Metrics across the processes of a `Workers` group: each worker's
 * `Metric` snapshot travels to the parent over IPC (encoded here, since
 * node's IPC is JSON and a snapshot holds bigints, infinities and maps), and
 * the parent sums them into one snapshot, series by series (the same id,
 * type and attributes): counters, gauges and frequencies add up, histograms
 * add up bucket by bucket, summaries add their count and sum (a quantile of
 * several processes cannot be computed from theirs: it is left out). The
 * last snapshot of a worker that ended stays in the sum, gauges excepted,
 * so that a restart never makes a counter go backwards.
 *
 * @internal
 */
import type * as Metric from "effect/Metric"

type Snapshot = Metric.Metric.Snapshot

/** One process's snapshot; a dead one (`live: false`) adds its counts, not its gauges. */
export interface Part {
  readonly snapshot: ReadonlyArray<Snapshot>
  readonly live: boolean
}

const keyOf = (s: Snapshot): string =>
  s.type + "\u0000" + s.id + "\u0000" +
  JSON.stringify(Object.entries(s.attributes ?? {}).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))

const add = (a: number | bigint, b: number | bigint): number | bigint =>
  typeof a === "bigint" && typeof b === "bigint"
    ? a + b
    : (typeof a === "bigint" ? Number(a) : a) + (typeof b === "bigint" ? Number(b) : b)

/** The cumulative count of `buckets` at `boundary`: at the largest boundary not above it. */
const countAt = (buckets: ReadonlyArray<readonly [number, number]>, boundary: number): number => {
  let count = 0
  for (const [b, c] of buckets) {
    if (b > boundary) break
    count = c
  }
  return count
}

/** What a dead process leaves in the sum: its counts, and its gauges at zero (their series stay known). */
const retire = (s: Snapshot): Snapshot =>
  s.type === "Gauge" ? { ...s, state: { value: typeof s.state.value === "bigint" ? 0n : 0 } } : s

const combine = (a: Snapshot, b: Snapshot): Snapshot => {
  switch (a.type) {
    case "Counter": {
      const other = b.state as Metric.CounterState<number | bigint>
      return { ...a, state: { count: add(a.state.count, other.count), incremental: a.state.incremental } }
    }
    case "Gauge": {
      const other = b.state as Metric.GaugeState<number | bigint>
      return { ...a, state: { value: add(a.state.value, other.value) } }
    }
    case "Frequency": {
      const occurrences = new Map(a.state.occurrences)
      for (const [k, n] of (b.state as Metric.FrequencyState).occurrences) occurrences.set(k, (occurrences.get(k) ?? 0) + n)
      return { ...a, state: { occurrences } }
    }
    case "Histogram": {
      const other = b.state as Metric.HistogramState
      // The same program has the same boundaries; should they differ, each side counts at its nearest lower one.
      const boundaries = [...new Set([...a.state.buckets.map(([x]) => x), ...other.buckets.map(([x]) => x)])]
        .sort((x, y) => x - y)
      return {
        ...a,
        state: {
          buckets: boundaries.map((x): [number, number] => [x, countAt(a.state.buckets, x) + countAt(other.buckets, x)]),
          count: a.state.count + other.count,
          sum: a.state.sum + other.sum,
          min: Math.min(a.state.min, other.min),
          max: Math.max(a.state.max, other.max)
        }
      }
    }
    case "Summary": {
      const other = b.state as Metric.SummaryState
      // A process that observed nothing changes nothing; two that did have no common quantile.
      if (other.count === 0) return a
      if (a.state.count === 0) return { ...a, state: other }
      return {
        ...a,
        state: {
          quantiles: a.state.quantiles.map(([q]) => [q, undefined] as const),
          count: a.state.count + other.count,
          sum: a.state.sum + other.sum,
          min: Math.min(a.state.min, other.min),
          max: Math.max(a.state.max, other.max)
        }
      }
    }
  }
}

/** The sum of several processes' snapshots, one series per id, type and attributes, in order of first appearance. */
export const mergeSnapshots = (parts: ReadonlyArray<Part>): ReadonlyArray<Snapshot> => {
  const merged = new Map<string, Snapshot>()
  for (const part of parts) {
    for (const raw of part.snapshot) {
      const s = part.live ? raw : retire(raw)
      const key = keyOf(s)
      const found = merged.get(key)
      merged.set(key, found === undefined ? s : combine(found, s))
    }
  }
  return [...merged.values()]
}

/** What a snapshot becomes on the wire: a JSON string, with tagged bigints, non-finite numbers and maps. */
export type Encoded = string

/** Encode a snapshot for node's IPC (JSON). */
export const encodeSnapshot = (snapshot: ReadonlyArray<Snapshot>): Encoded =>
  JSON.stringify(snapshot, (_key, value: unknown) => {
    if (typeof value === "bigint") return { $bigint: value.toString() }
    if (typeof value === "number" && !Number.isFinite(value)) return { $number: String(value) }
    if (value instanceof Map) return { $map: [...value] }
    return value
  })

/** Decode what {@link encodeSnapshot} made; `undefined` for anything else (a worker of another version). */
export const decodeSnapshot = (encoded: unknown): ReadonlyArray<Snapshot> | undefined => {
  if (typeof encoded !== "string") return undefined
  try {
    const decoded = JSON.parse(encoded, (_key, value: unknown) => {
      if (typeof value === "object" && value !== null && !Array.isArray(value)) {
        if ("$bigint" in value && typeof value.$bigint === "string") return BigInt(value.$bigint)
        if ("$number" in value && typeof value.$number === "string") return Number(value.$number)
        if ("$map" in value && Array.isArray(value.$map)) return new Map(value.$map as Array<[string, number]>)
      }
      return value
    }) as unknown
    if (!Array.isArray(decoded)) return undefined
    // JSON has no `undefined`: a missing description or attributes, or a quantile without a value, come back so.
    return decoded.map((s: Snapshot): Snapshot => {
      const meta = { id: s.id, description: s.description ?? undefined, attributes: s.attributes ?? undefined }
      return s.type === "Summary"
        ? {
          ...meta,
          type: s.type,
          state: { ...s.state, quantiles: s.state.quantiles.map(([q, v]) => [q, v ?? undefined] as const) }
        }
        : { ...meta, type: s.type, state: s.state } as Snapshot
    })
  } catch {
    return undefined
  }
}
