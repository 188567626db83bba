// Bundles the command line (dist/src/cli/main.js, already compiled by tsc)
// in place. Unbundled, `effect-wire serve echo` loads hundreds of ES modules
// before it listens; bundled it starts several times faster. The library
// modules in dist/src stay unbundled for users who import them.
//
// The files a start loads: main.js (which turns on the compile cache), the
// command line's entry (commandLine.ts) and ONE chunk with all the code that
// commandLine.ts imports statically. What a command loads later, behind
// import() (the exec server, workers, exporters, the demo, Node's file system
// and terminal), is in chunks of its own that import from that one. esbuild
// alone would split the start-up code into a chunk per set of entry points
// that share it (about twenty files at every start, each with the ES module
// loader's cost); so each module loaded later is made to import
// commandLine.ts first (it has run by then, so this changes nothing at run
// time), which puts all of the start-up code in the same set.
import { build } from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"

// Chunks of an earlier bundle have other hashed names; drop them so dist/ does
// not keep every build's chunks (tsc has just rewritten main.js and friends).
for (const name of Fs.readdirSync("dist/src/cli")) {
  if (/-[A-Z0-9]{8}\.js$/.test(name)) Fs.rmSync(`dist/src/cli/${name}`)
}

const options = {
  entryPoints: ["dist/src/cli/main.js"],
  outdir: "dist/src/cli",
  bundle: true,
  splitting: true, // subcommands stay behind import(), loaded only when they run
  format: "esm",
  platform: "node",
  target: "node22", // engines: node >= 22.19
  allowOverwrite: true,
  sourcemap: false,
  // Less to read, hash and (on a first start) parse: about 2% fewer instructions to listening
  // with a warm compile cache, 6% on a first start. Names stay, so a defect's trace reads.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "warning",
  // Some dependencies (undici, ws: loaded only by the exporters) call require(); give the
  // ESM bundle one, made on the first call: every chunk gets this banner, and at start-up
  // none calls it (an eager createRequire loaded node:module and import.meta in each).
  banner: {
    js: "let __ewRequire; const require = (id) => (__ewRequire ??= process.getBuiltinModule(\"node:module\").createRequire(import.meta.url))(id);"
  }
}

// First pass (nothing written): the module graph, to find the modules loaded behind import().
const { metafile } = await build({ ...options, write: false, metafile: true })
const absolute = (path) => Path.resolve(path)
const startup = absolute("dist/src/cli/commandLine.js")
const inputs = new Map(Object.entries(metafile.inputs).map(([path, input]) => [absolute(path), input]))
const staticImports = (path) =>
  (inputs.get(path)?.imports ?? []).filter((i) => i.kind === "import-statement" && !i.external).map((i) => absolute(i.path))
const startupGraph = new Set([startup])
for (const path of startupGraph) for (const next of staticImports(path)) startupGraph.add(next)
if (!inputs.has(startup)) throw new Error(`bundle-cli: ${startup} is not in main.js's module graph`)
const later = new Set(
  [...inputs.values()].flatMap((input) =>
    input.imports.filter((i) => i.kind === "dynamic-import" && !i.external).map((i) => absolute(i.path))
  ).filter((path) => !startupGraph.has(path))
)

await build({
  ...options,
  plugins: [{
    name: "after-start",
    setup(build) {
      build.onLoad({ filter: /\.js$/ }, async (args) => {
        if (!later.has(args.path)) return undefined
        const source = await Fs.promises.readFile(args.path, "utf8")
        return { contents: `import ${JSON.stringify(startup)};\n${source}`, loader: "js" }
      })
    }
  }]
})
