/**
 * Global setup of vitest.reliability.config.ts: gives every test file a path
 * to append its summary rows to, and prints the whole suite's table at the end.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { TestProject } from "vitest/node"
import { formatTable, type Row } from "./summary.js"

export default function setup(project: TestProject) {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-reliability-"))
  const report = Path.join(dir, "rows.jsonl")
  Fs.writeFileSync(report, "")
  project.provide("ewReliabilityReport", report)
  return () => {
    const rows = Fs.readFileSync(report, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as Row)
    Fs.rmSync(dir, { recursive: true, force: true })
    if (rows.length > 0) {
      const scale = project.config.env?.EW_RELIABILITY ?? process.env.EW_RELIABILITY ?? "small"
      process.stdout.write(formatTable(rows, `reliability suite summary (${scale} scale)`))
    }
  }
}
