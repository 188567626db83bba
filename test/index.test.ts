/**
 * The root entry: `import { Socket, Server } from "effect-wire"` gives the
 * same namespaces as the per-module subpaths, from source (the alias in
 * vitest.config.ts) and from the built package (package.json "exports").
 */
import { assert, describe, it } from "@effect/vitest"
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Root from "effect-wire"
import * as Address from "effect-wire/Address"
import * as AddressSchema from "effect-wire/AddressSchema"
import * as ClusterSocket from "effect-wire/ClusterSocket"
import * as Datagram from "effect-wire/Datagram"
import * as DatagramServer from "effect-wire/DatagramServer"
import * as Framing from "effect-wire/Framing"
import * as Message from "effect-wire/Message"
import * as Metrics from "effect-wire/Metrics"
import * as NetError from "effect-wire/NetError"
import * as Observability from "effect-wire/Observability"
import * as PlatformSocket from "effect-wire/PlatformSocket"
import * as Protocol from "effect-wire/Protocol"
import * as ProxyProtocol from "effect-wire/ProxyProtocol"
import * as Server from "effect-wire/Server"
import * as Echo from "effect-wire/servers/Echo"
import * as Exec from "effect-wire/servers/Exec"
import * as Upper from "effect-wire/servers/Upper"
import * as Socket from "effect-wire/Socket"
import * as Tls from "effect-wire/Tls"
import * as Workers from "effect-wire/Workers"

const ROOT = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")

/** Runs an ES module `script` in a fresh Node process at the repository's root, with `args`; its output, parsed as JSON. */
const inNode = <A>(script: string, ...args: Array<string>): A => {
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script, ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 30_000
  })
  return JSON.parse(out) as A
}

/** A script's first lines: `loaded` gathers the URL of every module Node loads from then on. */
const WATCH_LOADS = `
  import * as Module from "node:module"
  const loaded = new Set()
  Module.registerHooks({ load(url, context, next) { loaded.add(url); return next(url, context) } })
`

/** Every namespace of the root entry and its subpath. */
const subpaths = {
  Address: [Address, "Address"],
  AddressSchema: [AddressSchema, "AddressSchema"],
  NetError: [NetError, "NetError"],
  Socket: [Socket, "Socket"],
  Datagram: [Datagram, "Datagram"],
  Framing: [Framing, "Framing"],
  Message: [Message, "Message"],
  Protocol: [Protocol, "Protocol"],
  Server: [Server, "Server"],
  Tls: [Tls, "Tls"],
  ProxyProtocol: [ProxyProtocol, "ProxyProtocol"],
  DatagramServer: [DatagramServer, "DatagramServer"],
  PlatformSocket: [PlatformSocket, "PlatformSocket"],
  ClusterSocket: [ClusterSocket, "ClusterSocket"],
  Workers: [Workers, "Workers"],
  Echo: [Echo, "servers/Echo"],
  Upper: [Upper, "servers/Upper"],
  Exec: [Exec, "servers/Exec"],
  Metrics: [Metrics, "Metrics"],
  Observability: [Observability, "Observability"]
} as const

describe("effect-wire (the root entry)", () => {
  it("re-exports every public module as the same namespace object as its subpath", () => {
    for (const [name, [module]] of Object.entries(subpaths)) {
      assert.strictEqual((Root as Record<string, unknown>)[name], module, name)
    }
    // Nothing else: the test kits (testing/*) keep their own entries.
    assert.deepStrictEqual(Object.keys(Root).sort(), Object.keys(subpaths).sort())
  })

  it("resolves through package.json \"exports\" in the built package, to the subpaths' objects", () => {
    const pkg = JSON.parse(Fs.readFileSync(Path.join(ROOT, "package.json"), "utf8"))
    const entry = pkg.exports["."]
    assert.deepStrictEqual(entry, { types: "./dist/src/index.d.ts", default: "./dist/src/index.js" })
    assert.isTrue(Fs.existsSync(Path.join(ROOT, entry.types)), entry.types)
    // A package may import itself by name (Node's self-reference): this is what a user's import sees.
    const names = Object.entries(subpaths).map(([name, [, subpath]]) => [name, subpath])
    const script = `
      const root = await import("effect-wire")
      const names = ${JSON.stringify(names)}
      const same = []
      for (const [name, subpath] of names) same.push(root[name] === await import("effect-wire/" + subpath))
      console.log(JSON.stringify({ keys: Object.keys(root).sort(), same }))
    `
    const { keys, same } = inNode<{ keys: Array<string>; same: Array<boolean> }>(script)
    assert.deepStrictEqual(keys, Object.keys(subpaths).sort())
    assert.deepStrictEqual(same, names.map(() => true))
  })

  it("loads effect/Schema only with the modules that take or make Schemas", () => {
    // A program that only opens sockets and serves them must not pay for Schema (about 15 MB of
    // memory and 170 ms of start-up, measured in docs/performance.md): each subpath in a fresh
    // process of the built package, watching what Node loads.
    const schemaFree = [
      "Address",
      "NetError",
      "Socket",
      "Datagram",
      "Server",
      "Tls",
      "ProxyProtocol",
      "DatagramServer",
      "Workers",
      "Metrics",
      "Observability",
      "servers/Echo",
      "servers/Upper"
    ]
    const withSchema = ["AddressSchema", "Message", "Protocol"]
    const script = WATCH_LOADS + `
      await import("effect-wire/" + process.argv[1])
      console.log(JSON.stringify([...loaded].some((url) => url.endsWith("/effect/dist/Schema.js"))))
    `
    const loadsSchema = (subpath: string): boolean => inNode(script, subpath)
    for (const subpath of schemaFree) assert.isFalse(loadsSchema(subpath), subpath)
    for (const subpath of withSchema) assert.isTrue(loadsSchema(subpath), subpath)
  })

  it("loads Effect's cluster and effect/rpc only when a ClusterSocket layer is built", () => {
    // Importing the root (or ClusterSocket) must not load them (about 130–290 ms and 9 MB of RSS,
    // measured in docs/performance.md); building a runner's layer does.
    const script = WATCH_LOADS + `
      const cluster = () => [...loaded].some((url) => url.includes("/effect/dist/cluster/"))
      const rpc = () => [...loaded].some((url) => url.includes("/effect/dist/rpc/"))
      const { ClusterSocket } = await import("effect-wire")
      const atImport = { cluster: cluster(), rpc: rpc() }
      const Effect = await import("effect/Effect")
      const Layer = await import("effect/Layer")
      const Scope = await import("effect/Scope")
      const layer = ClusterSocket.layer({ clientOnly: true, storage: "local" })
      const scope = Scope.makeUnsafe()
      await Effect.runPromise(Effect.ignore(Layer.buildWithScope(layer, scope)))
      await Effect.runPromise(Scope.close(scope, Effect.void))
      console.log(JSON.stringify({ atImport, built: { cluster: cluster(), rpc: rpc() } }))
    `
    assert.deepStrictEqual(inNode(script), {
      atImport: { cluster: false, rpc: false },
      built: { cluster: true, rpc: true }
    })
  })

  it("lets a bundler keep only the modules a program uses (package.json \"sideEffects\")", async () => {
    // A server that imports the root, bundled as users bundle: what reaches the bundle is what it
    // uses. Without the field, esbuild kept every module the root names, Schema and Effect's
    // cluster included (816 against 338 KiB for such a program, measured in docs/performance.md).
    // The program is examples/readme.ts with Effect imported by subpath: bundled as it is, `effect`'s
    // root entry brings Schema itself.
    const EFFECT_ROOT = `import { Console, Effect, Stream } from "effect"\n`
    const readme = Fs.readFileSync(Path.join(ROOT, "examples", "readme.ts"), "utf8")
    assert.include(readme, EFFECT_ROOT)
    const program = readme.replace(
      EFFECT_ROOT,
      ["Console", "Effect", "Stream"].map((name) => `import * as ${name} from "effect/${name}"\n`).join("")
    )
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-wire-bundle-"))
    try {
      const outfile = Path.join(dir, "server.mjs")
      const { metafile } = await build({
        stdin: { contents: program, loader: "ts", resolveDir: ROOT, sourcefile: "readme.ts" },
        // Not this repository's tsconfig.json, whose "paths" map effect-wire to src/: the built
        // package, through package.json "exports", as a user's bundler finds it.
        tsconfigRaw: {},
        bundle: true,
        platform: "node",
        format: "esm",
        outfile,
        metafile: true,
        logLevel: "silent"
      })
      const bundled = Object.entries(Object.values(metafile.outputs)[0]!.inputs)
        .filter(([, input]) => input.bytesInOutput > 0)
        .map(([path]) => path.replaceAll("\\", "/"))
      const has = (pattern: RegExp) => bundled.some((path) => pattern.test(path))
      assert.isTrue(has(/dist\/src\/Server\.js$/), "Server is in the bundle")
      for (const unused of [/dist\/src\/Protocol\.js$/, /dist\/src\/ClusterSocket\.js$/, /dist\/src\/servers\//]) {
        assert.isFalse(has(unused), `${unused} is not`)
      }
      assert.isFalse(has(/effect\/dist\/Schema\.js$/), "nor Effect's Schema")
      assert.isFalse(has(/effect\/dist\/cluster\//), "nor Effect's cluster")
      // What stays still works: the bundle serves and answers.
      const out = execFileSync(process.execPath, [outfile], { encoding: "utf8", timeout: 30_000 })
      assert.match(out.trim(), /^127\.0\.0\.1:\d+ answered: hello, wire$/)
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
