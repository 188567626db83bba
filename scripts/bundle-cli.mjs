// Bundles the command line (dist/src/cli/main.js, already compiled by tsc)
// in place. Unbundled, `effect-wire serve echo` loads hundreds of ES modules
// before it listens; bundled it starts several times faster. The library
// modules in dist/src stay unbundled for users who import them.
import { build } from "esbuild"
import * as Fs from "node:fs"

// Chunks of an earlier bundle have other hashed names; drop them so dist/ does
// not keep every build's chunks (tsc has just rewritten main.js and friends).
for (const name of Fs.readdirSync("dist/src/cli")) {
  if (/-[A-Z0-9]{8}\.js$/.test(name)) Fs.rmSync(`dist/src/cli/${name}`)
}

await build({
  entryPoints: ["dist/src/cli/main.js"],
  outdir: "dist/src/cli",
  bundle: true,
  splitting: true, // subcommands stay behind import(), loaded only when they run
  format: "esm",
  platform: "node",
  target: "node22", // engines: node >= 22.19
  allowOverwrite: true,
  sourcemap: false,
  logLevel: "warning",
  // Some dependencies (undici, ws: loaded only by the exporters) call require(); give the
  // ESM bundle one, made on the first call: every chunk gets this banner, and at start-up
  // none calls it (an eager createRequire loaded node:module and import.meta in each).
  banner: {
    js: "let __ewRequire; const require = (id) => (__ewRequire ??= process.getBuiltinModule(\"node:module\").createRequire(import.meta.url))(id);"
  }
})
