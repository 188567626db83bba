/**
 * The Node half of the exec server: finding executables on PATH, comparing
 * tokens in constant time, and running one child process in its own process
 * group with a deadline, an output cap and group-wide cleanup.
 *
 * Why not Effect's `effect/process/ChildProcess`? Its Node spawner
 * (platform-node-shared 4.1.5) does spawn `detached`, signal the group and,
 * with `forceKillAfter`, escalate to SIGKILL, but a death by signal only
 * surfaces as a `PlatformError` whose message holds the signal name (the wire
 * header needs it as data), and it resolves `cwd` through the FileSystem and
 * Path services, which a runner should not have to be given. So we drive
 * `node:child_process.spawn` ourselves.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { createHash, timingSafeEqual } from "node:crypto"
import { accessSync, constants as fsConstants, statSync } from "node:fs"
import * as NodePath from "node:path"

/** @internal */
export const isExecutableFile = (path: string): boolean => {
  try {
    if (!statSync(path).isFile()) return false
    accessSync(path, fsConstants.X_OK)
    return true
  } catch {
    return false
  }
}

/** @internal */
export const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/**
 * The absolute directories of a PATH string, in order. Empty and relative
 * entries are dropped: POSIX reads them as the current directory, which would
 * let whoever controls the working directory pick what an allowed name runs.
 *
 * @internal
 */
export const searchDirectories = (pathEnv: string | undefined): ReadonlyArray<string> =>
  (pathEnv ?? "").split(NodePath.delimiter).filter((dir) => dir.length > 0 && NodePath.isAbsolute(dir))

/** @internal */
export const resolveExecutable = (name: string, directories: ReadonlyArray<string>): string | undefined => {
  for (const dir of directories) {
    const candidate = NodePath.join(dir, name)
    if (isExecutableFile(candidate)) return candidate
  }
  return undefined
}

/** @internal */
export const tokenDigest = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

/**
 * Compares digests, not the tokens, so both sides are always 32 bytes: neither
 * the comparison time nor an early length check tells an attacker how long the
 * token is or how much of a guess was right.
 *
 * @internal
 */
export const tokenMatches = (expected: Buffer, given: string): boolean => timingSafeEqual(expected, tokenDigest(given))

/** @internal */
export interface ProcessSpec {
  /** Absolute path of the executable. */
  readonly file: string
  /** argv[0] as the child sees it. */
  readonly argv0: string
  readonly args: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly timeoutMillis: number
  readonly killGraceMillis: number
  /** Cap on stdout + stderr bytes, combined, in arrival order. */
  readonly maxOutput: number
}

/** @internal */
export interface ProcessOutcome {
  readonly exitCode: number | null
  readonly signal: string | null
  readonly stdout: Uint8Array
  readonly stderr: Uint8Array
  readonly truncated: boolean
  readonly timedOut: boolean
  /** Set when the process could not be started; nothing ran. */
  readonly spawnError: NodeJS.ErrnoException | undefined
  readonly durationMs: number
}

// Node's timers take a signed 32-bit delay; longer ones fire at once.
const MAX_TIMER_MILLIS = 2 ** 31 - 1
const clampDelay = (millis: number): number => Math.min(Math.max(0, Math.ceil(millis)), MAX_TIMER_MILLIS)

const concat = (chunks: ReadonlyArray<Uint8Array>, length: number): Uint8Array => {
  if (chunks.length === 1 && chunks[0]!.byteLength === length) return chunks[0]!
  return Buffer.concat(chunks, length)
}

/**
 * Run one process to completion. Never fails: a spawn failure is reported in
 * `spawnError`.
 *
 * Life of a run:
 * - spawned `detached`, so the child leads a new process group whose id is its
 *   pid; signalling `-pid` reaches everything it started that stayed in the group;
 * - stdin is /dev/null, stdout and stderr are pipes;
 * - on the deadline, on output past `maxOutput`, or on interruption: SIGTERM to
 *   the group, SIGKILL to the group after `killGraceMillis`;
 * - done when the child has exited and every holder of its pipes closed them
 *   (Node's "close"); then the group gets SIGKILL, so nothing started by a
 *   request outlives it;
 * - if something escaped the group (setsid) and still holds the pipes, we stop
 *   waiting `killGraceMillis` after the SIGKILL and destroy our pipe ends.
 *
 * Interrupting the returned effect runs the same termination and waits for it,
 * so the group is gone (bar the escape above) when the interruption completes.
 *
 * @internal
 */
export const runProcess = (spec: ProcessSpec): Effect.Effect<ProcessOutcome> =>
  Effect.callback<ProcessOutcome>((resume) => {
    const startedAt = performance.now()
    const stdoutChunks: Array<Uint8Array> = []
    const stderrChunks: Array<Uint8Array> = []
    let stdoutLength = 0
    let stderrLength = 0
    let truncated = false
    let timedOut = false
    let terminating = false
    let finished = false
    let spawnError: NodeJS.ErrnoException | undefined
    let exit: readonly [number | null, string | null] | undefined
    const timers = new Set<NodeJS.Timeout>()
    const onFinished: Array<() => void> = []

    const later = (millis: number, f: () => void): void => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        f()
      }, clampDelay(millis))
      timers.add(timer)
    }

    let child: ChildProcess
    try {
      child = spawn(spec.file, spec.args, {
        argv0: spec.argv0,
        cwd: spec.cwd,
        env: spec.env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        windowsHide: true
      })
    } catch (err) {
      // Synchronous throws are argument errors (e.g. a NUL byte); report them like spawn failures.
      resume(Effect.succeed({
        exitCode: null,
        signal: null,
        stdout: new Uint8Array(0),
        stderr: new Uint8Array(0),
        truncated: false,
        timedOut: false,
        spawnError: err as NodeJS.ErrnoException,
        durationMs: performance.now() - startedAt
      }))
      return
    }

    const killGroup = (signal: NodeJS.Signals): void => {
      const pid = child.pid
      if (pid === undefined) return
      try {
        process.kill(-pid, signal)
      } catch {
        // ESRCH: the whole group is gone already, which is what we wanted.
      }
    }

    const finish = (): void => {
      if (finished) return
      finished = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      killGroup("SIGKILL")
      child.stdout?.destroy()
      child.stderr?.destroy()
      resume(Effect.succeed({
        exitCode: exit?.[0] ?? null,
        signal: exit?.[1] ?? null,
        stdout: concat(stdoutChunks, stdoutLength),
        stderr: concat(stderrChunks, stderrLength),
        truncated,
        timedOut,
        spawnError,
        durationMs: performance.now() - startedAt
      }))
      for (const f of onFinished) f()
    }

    const terminate = (): void => {
      if (terminating || finished) return
      terminating = true
      killGroup("SIGTERM")
      later(spec.killGraceMillis, () => {
        killGroup("SIGKILL")
        later(spec.killGraceMillis, finish)
      })
    }

    const collect = (chunks: Array<Uint8Array>, isStdout: boolean) => (chunk: Buffer): void => {
      if (truncated || finished) return
      const room = spec.maxOutput - stdoutLength - stderrLength
      const kept = chunk.byteLength <= room ? chunk : chunk.subarray(0, room)
      if (kept.byteLength > 0) {
        chunks.push(kept)
        if (isStdout) stdoutLength += kept.byteLength
        else stderrLength += kept.byteLength
      }
      if (kept !== chunk) {
        truncated = true
        terminate()
      }
    }
    // Keep both pipes flowing after truncation (data is dropped), so the child never blocks on a full pipe.
    child.stdout!.on("data", collect(stdoutChunks, true))
    child.stderr!.on("data", collect(stderrChunks, false))
    // Pipe errors (EPIPE, destroyed) end the pipe; "close" still follows.
    child.stdout!.on("error", () => {})
    child.stderr!.on("error", () => {})

    child.on("error", (err: NodeJS.ErrnoException) => {
      // Without a pid the process never started; with one, this is a failed kill, which killGroup does not use.
      if (child.pid === undefined) {
        spawnError = err
        finish()
      }
    })
    child.on("exit", (code, signal) => {
      exit = [code, signal]
    })
    child.on("close", (code, signal) => {
      if (child.pid !== undefined) exit = [code, signal]
      finish()
    })

    if (child.pid !== undefined) {
      later(spec.timeoutMillis, () => {
        timedOut = true
        terminate()
      })
    }

    return Effect.callback<void>((done) => {
      if (finished) return done(Effect.void)
      onFinished.push(() => done(Effect.void))
      terminate()
    })
  })
