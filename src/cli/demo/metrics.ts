/**
 * The demo's closing lines: a short summary of effect-wire's own metrics
 * (see `Metrics`), read with `Metric.snapshot` once every server drained:
 * the connections the servers took and how they ended, the bytes they moved,
 * the exec commands by outcome and the UDP datagrams.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../../Metrics.js"

type Snapshot = ReadonlyArray<Metric.Metric.Snapshot>

/** The sum of a metric's series, those whose attributes include `where`. */
const sum = (snapshot: Snapshot, id: string, where: Record<string, string> = {}): number => {
  let total = 0
  for (const m of snapshot) {
    if (m.id !== id) continue
    if (!Object.entries(where).every(([k, v]) => m.attributes?.[k] === v)) continue
    if (m.type === "Counter") total += Number(m.state.count)
    else if (m.type === "Gauge") total += Number(m.state.value)
  }
  return total
}

/** The values of one attribute among a metric's series, with their sums. */
const by = (snapshot: Snapshot, id: string, attribute: string, where: Record<string, string> = {}) => {
  const totals = new Map<string, number>()
  for (const m of snapshot) {
    const value = m.attributes?.[attribute]
    if (m.id !== id || value === undefined || m.type !== "Counter") continue
    if (!Object.entries(where).every(([k, v]) => m.attributes?.[k] === v)) continue
    totals.set(value, (totals.get(value) ?? 0) + Number(m.state.count))
  }
  return Array.from(totals).filter(([, n]) => n > 0)
}

const list = (entries: ReadonlyArray<readonly [string, number]>): string =>
  entries.map(([name, n]) => `${n} ${name}`).join(", ")

/**
 * The summary's lines.
 *
 * ```ts
 * for (const line of yield* metricsSummary) yield* Console.log(line)
 * ```
 *
 * @since 0.2.0
 * @category programs
 */
export const metricsSummary: Effect.Effect<ReadonlyArray<string>> = Effect.map(Metric.snapshot, (snapshot) => {
  const n = Metrics.names
  const closed = by(snapshot, n.closed, "effect_wire.outcome")
  const failed = by(snapshot, n.closed, "error.type", { "effect_wire.outcome": "failed" })
  const exec = by(snapshot, n.execCommands, "effect_wire.outcome")
  const refused = by(snapshot, n.execCommands, "error.type", { "effect_wire.outcome": "refused" })
  return [
    "metrics (effect-wire's own, from Metric.snapshot; `serve --metrics` exports them to Prometheus):",
    `  server connections: ${sum(snapshot, n.opened)} opened, ${sum(snapshot, n.activeConnections)} open now, closed: ${
      list(closed) || "none"
    }${failed.length > 0 ? ` (failed: ${list(failed)})` : ""}`,
    `  server bytes: ${sum(snapshot, n.io, { "network.io.direction": "receive" })} received, ${
      sum(snapshot, n.io, { "network.io.direction": "transmit" })
    } sent`,
    `  exec commands: ${list(exec) || "none"}${refused.length > 0 ? ` (refused: ${list(refused)})` : ""}`,
    `  udp datagrams: ${sum(snapshot, n.datagrams, { "network.io.direction": "receive" })} received, ${
      sum(snapshot, n.datagrams, { "network.io.direction": "transmit" })
    } sent, ${sum(snapshot, n.datagramsDropped)} dropped`
  ]
})
