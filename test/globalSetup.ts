/**
 * Builds dist/ once before any test file runs, exactly as `npm run build`
 * does (tsc, then the bundled CLI), so the CLI, demo, example and bench tests
 * run the artifact users run, and no two test files compile into dist/ at once.
 */
import { execFileSync } from "node:child_process"
import { createRequire } from "node:module"

export default function setup() {
  // The processes the tests start inherit this environment. A NODE_EXTRA_CA_CERTS naming a bundle
  // OpenSSL cannot read (as on this machine) makes Node load it on a thread at start-up and print
  // "Warning: Ignoring extra certs ..." on stderr, holding a descriptor meanwhile: tests that compare
  // a CLI's stderr or count its descriptors would see the machine, not the code. No test needs
  // extra CAs (the TLS tests bring their own), so the test run goes without it.
  delete process.env.NODE_EXTRA_CA_CERTS
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const run = (args: Array<string>) =>
    execFileSync(process.execPath, args, { stdio: "inherit", timeout: 300_000 })
  run([tsc, "-p", "tsconfig.build.json"])
  run(["scripts/bundle-cli.mjs"])
}
