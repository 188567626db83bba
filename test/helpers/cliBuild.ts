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

/** Options of {@link runCli} and {@link startCli}. */
export interface RunOptions {
  /** Written to the command's stdin. */
  readonly input?: string | undefined
  /** Leave stdin open after `input` until the command exits, like a terminal nobody types in. */
  readonly keepStdinOpen?: boolean | undefined
  /** Added to the environment. */
  readonly env?: Record<string, string> | undefined
  /** The command is killed (SIGKILL) after this long (default 15 s). */
  readonly timeoutMs?: number | undefined
  /**
   * Stop reading the command's stdout after this many bytes and close it, as
   * `head -c N` does: the command's later writes find no reader (EPIPE).
   */
  readonly stdoutLimit?: number | undefined
}

/** A command started by {@link startCli}. */
export interface Started {
  /** Completes with the first line of stdout (`"stdout"`) or stderr matching `pattern`. */
  readonly waitFor: (pattern: RegExp, stream?: "stdout" | "stderr") => Promise<string>
  /** Send `signal` to this command (by its own handle, never by name). */
  readonly signal: (signal: NodeJS.Signals) => void
  /** The exit and the whole output, once the command has ended. */
  readonly exit: Promise<Run>
}

/**
 * Start `node <build>/src/cli/main.js ...args`. Only the child started here
 * is ever killed, by its own handle.
 */
export const startCli = (build: string, args: ReadonlyArray<string>, options: RunOptions = {}): Started => {
  const child = spawn(process.execPath, [Path.join(build, "src/cli/main.js"), ...args], {
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"]
  })
  const output = { stdout: "", stderr: "" }
  let ended = false
  const waiters = new Set<() => void>()
  const wake = () => waiters.forEach((check) => check())
  child.stdout.setEncoding("utf8").on("data", (data: string) => {
    if (options.stdoutLimit === undefined) output.stdout += data
    else {
      output.stdout += data.slice(0, options.stdoutLimit - output.stdout.length)
      if (output.stdout.length >= options.stdoutLimit) child.stdout.destroy()
    }
    wake()
  })
  child.stderr.setEncoding("utf8").on("data", (data: string) => {
    output.stderr += data
    wake()
  })
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15_000)
  const exit = new Promise<Run>((resolve, reject) => {
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      ended = true
      child.stdin.destroy()
      wake()
      resolve({ code, signal, ...output })
    })
  })
  child.stdin.on("error", () => {}) // the command may exit before reading all of its input
  if (options.keepStdinOpen === true) child.stdin.write(options.input ?? "")
  else child.stdin.end(options.input ?? "")
  const waitFor = (pattern: RegExp, stream: "stdout" | "stderr" = "stdout") =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const line = output[stream].split("\n").find((l) => pattern.test(l))
        if (line !== undefined) {
          waiters.delete(check)
          resolve(line)
        } else if (ended) {
          waiters.delete(check)
          reject(new Error(`effect-wire ${args.join(" ")} ended without ${pattern} on ${stream}:\n${output.stdout}\n${output.stderr}`))
        }
      }
      waiters.add(check)
      check()
    })
  const signal = (name: NodeJS.Signals) => void child.kill(name)
  return { waitFor, signal, exit }
}

/** Run `node <build>/src/cli/main.js ...args` and collect its exit and output. */
export const runCli = (build: string, args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Run> =>
  startCli(build, args, options).exit
