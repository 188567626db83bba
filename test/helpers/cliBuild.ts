/**
 * Running the built `effect-wire` command line as a process in tests. The
 * build is dist/, made once for the whole run by test/globalSetup.ts exactly
 * as `npm run build` makes it (tsc, then the bundled CLI): tests run the
 * artifact users run.
 */
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** The built package (dist/), whose src/cli/main.js is the CLI. */
export const dist = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../dist")

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
