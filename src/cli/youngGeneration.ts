/**
 * The one V8 setting `effect-wire serve --tls-cert` runs with: a young
 * generation that does not grow (docs/tls.md#speed). bin.ts applies it
 * before it loads the command line, since the young generation grows while
 * the modules load and never shrinks back by itself; this module imports
 * nothing else, so that importing it grows nothing.
 *
 * Why: every TLS read is a fresh 16 KiB buffer outside V8's heap, freed
 * only when a scavenge finds it dead. Under a TLS stream V8 grows this
 * process's young generation (a bare node:tls server's stays at 4 MB), so
 * scavenges become rare and the dead buffers pile up until full
 * collections: 1.21–1.30× a node:tls server's CPU per GiB against
 * 1.01–1.12× with the growth held from start-up, and less RSS (same-run
 * comparisons). Held only once the command line had loaded (8 MB by then)
 * it did not help (1.32×); on plaintext servers it measured no gain, so
 * they and the other commands are left alone. Of V8's young-generation
 * flags only the growth factor is read after start-up
 * (`--max-semi-space-size` at run time does nothing). A process started
 * with a young-generation flag of its own (`node` options or
 * `NODE_OPTIONS`) is left alone.
 *
 * ```ts
 * holdYoungGenerationForTls(process.argv) // true for `effect-wire serve echo --tls-cert c.pem --tls-key k.pem`
 * ```
 *
 * @since 0.2.0
 */
import * as V8 from "node:v8"

/**
 * For `serve … --tls-cert` (the subcommand first, as `effect-wire` takes
 * it): set V8's `--semi-space-growth-factor=1`, so that the young
 * generation does not grow past about the size it has now (V8 still counts
 * pages it is promoting, a few MB at a time) for the process's life. Returns
 * whether it did; a no-op for every other command line.
 *
 * @since 0.2.0
 * @category constructors
 */
export const holdYoungGenerationForTls = (argv: ReadonlyArray<string>): boolean => {
  if (argv[2] !== "serve" || !argv.some((arg) => arg === "--tls-cert" || arg.startsWith("--tls-cert="))) return false
  const own = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)]
  if (own.some((arg) => /^--(max-semi-space-size|min-semi-space-size|semi-space-growth-factor)/.test(arg))) return false
  V8.setFlagsFromString("--semi-space-growth-factor=1")
  return true
}
