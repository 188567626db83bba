/**
 * A private JavaScript copy of src/ for tests that run the `effect-wire`
 * command line as a process, and a way to run it. `tsc` takes 20 seconds
 * and more on a small machine and writes the shared dist/, which other test
 * files may be reading; so each test file transpiles src/ on its own with
 * esbuild (vite's, a fraction of a second; no type-checking: `npm test` runs
 * `tsc` first) into a fresh directory under node_modules/.cache, where Node
 * still finds the packages.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { buildSync } from "esbuild"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../..")

const sources = (dir: string): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = Path.join(dir, entry.name)
    if (entry.isDirectory()) return sources(path)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : []
  })

/** Transpile src/ file by file into a new directory; returns it. Remove it with {@link removeBuild}. */
export const transpileSources = (): string => {
  const cache = Path.join(root, "node_modules", ".cache")
  Fs.mkdirSync(cache, { recursive: true })
  const out = Fs.mkdtempSync(Path.join(cache, "effect-wire-cli-"))
  // buildSync runs esbuild once and waits for it: no esbuild service is left running.
  buildSync({
    entryPoints: sources(Path.join(root, "src")),
    outbase: root,
    outdir: out,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning"
  })
  return out
}

/** Remove a directory made by {@link transpileSources}. */
export const removeBuild = (out: string): void => Fs.rmSync(out, { recursive: true, force: true })

export interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Options of {@link runCli}. */
export interface RunOptions {
  /** Written to the command's stdin. */
  readonly input?: string | undefined
  /** Leave stdin open after `input` until the command exits, like a terminal nobody types in. */
  readonly keepStdinOpen?: boolean | undefined
  /** Added to the environment. */
  readonly env?: Record<string, string> | undefined
  /** The command is killed (SIGKILL) after this long (default 15 s). */
  readonly timeoutMs?: number | undefined
}

/**
 * Run `node <build>/src/cli/main.js ...args` and collect its exit and output.
 * Only the child started here is ever killed, by its own handle.
 */
export const runCli = (build: string, args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [Path.join(build, "src/cli/main.js"), ...args], {
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (data: string) => (stdout += data))
    child.stderr.setEncoding("utf8").on("data", (data: string) => (stderr += data))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15_000)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      child.stdin.destroy()
      resolve({ code, signal, stdout, stderr })
    })
    child.stdin.on("error", () => {}) // the command may exit before reading all of its input
    if (options.keepStdinOpen === true) child.stdin.write(options.input ?? "")
    else child.stdin.end(options.input ?? "")
  })
