/**
 * Builds dist/ once before any test file runs. The CLI, demo, example and
 * bench tests run the built JavaScript as real processes; building here, once,
 * keeps them from each compiling into the same dist/ at the same time.
 */
import { execFileSync } from "node:child_process"
import { createRequire } from "node:module"

export default function setup() {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit", timeout: 300_000 })
}
