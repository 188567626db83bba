/**
 * Builds dist/ once before any test file runs, exactly as `npm run build`
 * does (tsc, then the bundled CLI), so the CLI, demo, example and bench tests
 * run the artifact users run, and no two test files compile into dist/ at once.
 */
import { execFileSync } from "node:child_process"
import { createRequire } from "node:module"

export default function setup() {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const run = (args: Array<string>) =>
    execFileSync(process.execPath, args, { stdio: "inherit", timeout: 300_000 })
  run([tsc, "-p", "tsconfig.build.json"])
  run(["scripts/bundle-cli.mjs"])
}
