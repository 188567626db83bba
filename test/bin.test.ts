/**
 * The `effect-wire` executable (dist/src/cli/bin.js, package.json's `bin`):
 * it runs the command line, with Node's compile cache on.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { certs } from "./helpers/certs.js"
import { dist } from "./helpers/cliBuild.js"

const bin = Path.join(dist, "src/cli/bin.js")
const pkg = JSON.parse(Fs.readFileSync(Path.join(dist, "../package.json"), "utf8")) as {
  readonly version: string
  readonly bin: Record<string, string>
}

/** This process's environment without NODE_DISABLE_COMPILE_CACHE, which Node reads as "disabled" whatever its value. */
const inherited = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.NODE_DISABLE_COMPILE_CACHE
  return env
}

const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, [bin, "--version"], {
    env: { ...inherited(), ...env },
    encoding: "utf8",
    timeout: 30_000
  })

/**
 * Starts `effect-wire serve echo …` with a preloaded hook that, once the
 * listening line is out, prints what the process has loaded and exits: the
 * Node built-in modules and the files of the bundle (dist/src/cli/…), what a
 * plain server loads before it listens.
 */
const loadedWhenListening = (args: ReadonlyArray<string>): {
  readonly builtins: Array<string>
  readonly files: Array<string>
} => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-builtins-"))
  try {
    const hook = Path.join(dir, "hook.mjs")
    Fs.writeFileSync(
      hook,
      `import { registerHooks } from "node:module"
const files = []
registerHooks({ load: (url, context, next) => (url.startsWith("file:") && files.push(url), next(url, context)) })
const write = process.stdout.write.bind(process.stdout)
process.stdout.write = (chunk, ...rest) => {
  const done = write(chunk, ...rest)
  if (String(chunk).includes("listening")) {
    process.stderr.write("LOADED " + JSON.stringify({ builtins: process.moduleLoadList, files }) + "\\n")
    process.exit(0)
  }
  return done
}
`
    )
    const result = spawnSync(process.execPath, ["--import", hook, bin, "serve", "echo", "--port", "0", ...args], {
      encoding: "utf8",
      timeout: 30_000
    })
    assert.strictEqual(result.status, 0, result.stderr)
    const line = result.stderr.split("\n").find((l) => l.startsWith("LOADED "))
    assert.isDefined(line, result.stderr)
    const loaded = JSON.parse(line!.slice("LOADED ".length)) as { builtins: Array<string>; files: Array<string> }
    return {
      builtins: loaded.builtins.filter((entry) => entry.startsWith("NativeModule ")).map((entry) =>
        entry.slice("NativeModule ".length)
      ),
      files: loaded.files.map((url) => Path.basename(url))
    }
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

const filesUnder = (dir: string): number =>
  Fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).length

describe("bin (the effect-wire executable)", () => {
  it("is what package.json's bin names", () => {
    assert.strictEqual(pkg.bin["effect-wire"], "dist/src/cli/bin.js")
  })

  it("runs the command line and fills the compile cache it is pointed at (NODE_COMPILE_CACHE)", () => {
    const cache = Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-cache-"))
    try {
      const first = run({ NODE_COMPILE_CACHE: cache })
      assert.strictEqual(first.status, 0, first.stderr)
      assert.include(first.stdout, pkg.version)
      assert.isAbove(filesUnder(cache), 0, "the first start wrote compiled code to the cache")
      // A second start reads it and behaves the same.
      const second = run({ NODE_COMPILE_CACHE: cache })
      assert.strictEqual(second.status, 0, second.stderr)
      assert.strictEqual(second.stdout, first.stdout)
    } finally {
      Fs.rmSync(cache, { recursive: true, force: true })
    }
  })

  // node:tls (with OpenSSL's bindings) and node:dns/promises are a large part of a start's time;
  // a plaintext server does not load them (issue 12's start-up target). With TLS flags it does.
  it("serve echo loads node:tls only when it serves TLS", () => {
    const plain = loadedWhenListening([]).builtins
    assert.include(plain, "net")
    assert.notInclude(plain, "tls")
    assert.notInclude(plain, "_tls_wrap")
    assert.notInclude(plain, "dns/promises")
    const c = certs()
    const tls = loadedWhenListening(["--tls-cert", c.server.certFile, "--tls-key", c.server.keyFile]).builtins
    assert.include(tls, "tls")
  })

  // effect/cli's environment asks for a file system (with node:crypto) and a terminal
  // (node:readline) that `serve` never uses: they load on their first use (cli/nodeServices.ts).
  it("a plaintext serve echo loads neither node:crypto nor node:readline", () => {
    const plain = loadedWhenListening([]).builtins
    assert.include(plain, "net")
    for (const module of ["crypto", "readline"]) assert.notInclude(plain, module)
  })

  // Each file costs the ES module loader time at every start (scripts/bundle-cli.mjs).
  it("a plaintext serve echo loads the start-up code as one chunk", () => {
    const { files } = loadedWhenListening([])
    const chunks = files.filter((file) => /-[A-Z0-9]{8}\.js$/.test(file))
    assert.include(files, "main.js")
    assert.strictEqual(chunks.length, 2, `the command line's entry and one chunk: ${chunks.join(" ")}`)
    assert.isTrue(chunks.some((file) => file.startsWith("commandLine-")), chunks.join(" "))
  })

  // The bench and the tests run main.js; a server is often stopped by SIGKILL, which writes nothing at exit.
  it("main.js fills the compile cache too, even for a server that is then killed (SIGKILL)", async () => {
    const cache = Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-cache-"))
    const child = spawn(process.execPath, [Path.join(dist, "src/cli/main.js"), "serve", "echo", "--port", "0"], {
      env: { ...inherited(), NODE_COMPILE_CACHE: cache },
      stdio: ["ignore", "pipe", "pipe"]
    })
    try {
      let stdout = ""
      child.stdout.setEncoding("utf8")
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (data: string) => {
          stdout += data
          if (stdout.includes("listening tcp ")) resolve()
        })
        child.once("exit", (code) => reject(new Error(`serve echo exited (${code}) before listening`)))
      })
      // Bounded wait for the files: nothing signals that Node has written them.
      const deadline = Date.now() + 10_000
      while (filesUnder(cache) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.isAbove(filesUnder(cache), 0, "the running server wrote its compiled code to the cache")
    } finally {
      child.kill("SIGKILL")
      Fs.rmSync(cache, { recursive: true, force: true })
    }
  }, 30_000)

  it("leaves the cache alone when NODE_DISABLE_COMPILE_CACHE=1", () => {
    const cache = Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-cache-"))
    try {
      const result = run({ NODE_COMPILE_CACHE: cache, NODE_DISABLE_COMPILE_CACHE: "1" })
      assert.strictEqual(result.status, 0, result.stderr)
      assert.strictEqual(filesUnder(cache), 0)
    } finally {
      Fs.rmSync(cache, { recursive: true, force: true })
    }
  })
})
