/**
 * The two V8 settings `effect-wire serve --tls-cert` runs with
 * (docs/tls.md#speed), applied by bin.ts before it loads the command line;
 * this module imports nothing else, so that importing it grows nothing.
 *
 * - A young generation that does not grow (`--semi-space-growth-factor=1`).
 *   Every TLS read is a fresh 16 KiB buffer outside V8's heap, freed only when
 *   a scavenge finds it dead; a young generation grown under the stream (as
 *   V8 grows this process's, not a bare node:tls server's) makes scavenges
 *   rare and the dead buffers pile up. It must be held before the command
 *   line loads: the young generation grows while the modules load and never
 *   shrinks back by itself, and `--max-semi-space-size` at run time does
 *   nothing.
 * - An old generation allowed to reach three times what a full collection
 *   left (`--heap-growing-percent=200`). effect-wire's old generation (about
 *   10 MB once loaded) is above the 8 MB from which V8 marks incrementally; a
 *   bare node:tls server's (6 MB) is below it. V8 sets the next limit at 1.1
 *   to 4 times the live size from the speeds it measured, and when it picks
 *   about 2 under a TLS stream, it starts marking again right after each full
 *   collection: 11 to 17 full collections per 256 MiB echoed, and 1.2 to 1.45
 *   times node:tls's CPU per GiB, against one collection and 0.9 times when it
 *   picks 4 (5 of 27 runs went the first way). At 3 it never did (22 runs).
 *
 * Both are read by V8 after start-up. A process given a flag of its own
 * (`node` options, or `NODE_OPTIONS` where Node allows it) keeps it: the young-generation flags
 * (`--max-semi-space-size`, `--min-semi-space-size`,
 * `--semi-space-growth-factor`) leave the young generation alone, and
 * `--heap-growing-percent` the old. Plaintext servers and the other commands
 * are left alone (on plaintext `serve echo` the young-generation hold measured
 * no gain).
 *
 * ```ts
 * tuneHeapForTls(["node", "bin.js", "serve", "echo", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
 * // ["--semi-space-growth-factor=1", "--heap-growing-percent=200"]
 * ```
 *
 * @since 0.2.0
 */
import * as V8 from "node:v8"

const YOUNG = /^--(max-semi-space-size|min-semi-space-size|semi-space-growth-factor)\b/
const OLD = /^--heap-growing-percent\b/

/**
 * For `serve … --tls-cert` (the subcommand first, as `effect-wire` takes
 * it): sets V8's `--semi-space-growth-factor=1` and
 * `--heap-growing-percent=200`, each unless the process was started with a
 * flag of its own for it (`execArgv`, `NODE_OPTIONS`). Returns the flags it
 * set; none for every other command line.
 *
 * @since 0.2.0
 * @category constructors
 */
export const tuneHeapForTls = (
  argv: ReadonlyArray<string>,
  own: ReadonlyArray<string> = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
): ReadonlyArray<string> => {
  if (argv[2] !== "serve" || !argv.some((arg) => arg === "--tls-cert" || arg.startsWith("--tls-cert="))) return []
  const flags = [
    ...(own.some((arg) => YOUNG.test(arg)) ? [] : ["--semi-space-growth-factor=1"]),
    ...(own.some((arg) => OLD.test(arg)) ? [] : ["--heap-growing-percent=200"])
  ]
  for (const flag of flags) V8.setFlagsFromString(flag)
  return flags
}
