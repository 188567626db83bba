/**
 * The summary table of the reliability suite: one row per case with its
 * counters. No test-runner imports, so the global setup can use it too.
 */

export const MiB = 1024 * 1024

/** One case's counters: what it did and what went wrong. */
export interface Row {
  readonly file: string
  readonly label: string
  status: "running" | "pass" | "FAIL"
  ms: number
  connections: number
  bytes: number
  faults: number
  failures: number
  notes: Array<string>
}

export const fmtBytes = (n: number): string =>
  n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`

/** The table as text: one line per case and a total line. */
export const formatTable = (all: ReadonlyArray<Row>, title: string): string => {
  const header = ["file", "case", "status", "ms", "connections", "bytes", "faults", "failures", "measured"]
  const body = all.map((r) => [
    r.file,
    r.label,
    r.status,
    String(r.ms),
    String(r.connections),
    fmtBytes(r.bytes),
    String(r.faults),
    String(r.failures),
    r.notes.join("; ")
  ])
  const sum = (f: (r: Row) => number) => all.reduce((n, r) => n + f(r), 0)
  body.push([
    "TOTAL",
    `${all.length} cases`,
    `${all.filter((r) => r.status === "pass").length} pass`,
    String(sum((r) => r.ms)),
    String(sum((r) => r.connections)),
    fmtBytes(sum((r) => r.bytes)),
    String(sum((r) => r.faults)),
    String(sum((r) => r.failures)),
    ""
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((line) => Math.min(line[i]!.length, i === 8 ? 200 : 60))))
  const line = (cells: ReadonlyArray<string>) => "| " + cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |"
  return [
    `\n${title}`,
    line(header),
    "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|",
    ...body.map(line),
    ...hardening(all)
  ].join("\n") + "\n"
}

/**
 * The "hardening" block (issue 18): the numbers of the hardening cases
 * (files `hardening.*`), one line per case, after the table.
 */
const hardening = (all: ReadonlyArray<Row>): Array<string> => {
  const rows = all.filter((r) => r.file.startsWith("hardening"))
  if (rows.length === 0) return []
  return ["", "hardening (issue 18)", ...rows.map((r) => `- ${r.file}: ${r.label} [${r.status}]: ${r.notes.join("; ")}`)]
}

