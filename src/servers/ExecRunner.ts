/**
 * The exec runner: turns one request into one response under an
 * `ExecPolicy` (token, allowlist, a concurrency slot), running the command
 * without a shell in its own process group, with a deadline, an output cap and
 * group-wide cleanup.
 *
 * Why not Effect's `effect/process/ChildProcess`? Its Node spawner
 * (platform-node-shared 4.1.5) does spawn `detached`, signal the group and,
 * with `forceKillAfter`, escalate to SIGKILL, but a death by signal only
 * surfaces as a `PlatformError` whose message holds the signal name (the wire
 * header needs it as data), and it resolves `cwd` through the FileSystem and
 * Path services, which a runner should not have to be given. So we drive
 * `node:child_process.spawn` ourselves.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Semaphore from "effect/Semaphore"
import { spawn } from "node:child_process"
import { closeSync, readdirSync, readFileSync, readlinkSync } from "node:fs"
import type { ChildProcess } from "node:child_process"
import type { ExecPolicy } from "./ExecPolicy.js"
import type { ExecRequest, ExecResult } from "./ExecWire.js"
import { decodeRequest, failureResult, RequestTooLarge, SpawnFailed, Timeout } from "./ExecWire.js"

// ---------------------------------------------------------------------------
// One process
// ---------------------------------------------------------------------------

interface ProcessSpec {
  /** Absolute path of the executable. */
  readonly file: string
  /** argv[0] as the child sees it. */
  readonly argv0: string
  readonly args: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly uid: number | undefined
  readonly gid: number | undefined
  readonly timeoutMillis: number
  readonly killGraceMillis: number
  /** Cap on stdout + stderr bytes, combined, in arrival order. */
  readonly maxOutput: number
}

interface ProcessOutcome {
  readonly exitCode: number | null
  readonly signal: string | null
  /** stdout and stderr lie side by side in one buffer, so a response can send them as one body without a copy. */
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

const EMPTY = new Uint8Array(0)

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
 */
const runProcess = (spec: ProcessSpec): Effect.Effect<ProcessOutcome> =>
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
        ...(spec.uid === undefined ? {} : { uid: spec.uid }),
        ...(spec.gid === undefined ? {} : { gid: spec.gid }),
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
        stdout: EMPTY,
        stderr: EMPTY,
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

    // The one copy of the output: every chunk into one buffer, stdout first.
    const output = (): Uint8Array => {
      const chunks = stdoutChunks.concat(stderrChunks)
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, stdoutLength + stderrLength)
    }

    const finish = (): void => {
      if (finished) return
      finished = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      killGroup("SIGKILL")
      child.stdout?.destroy()
      child.stderr?.destroy()
      const all = output()
      resume(Effect.succeed({
        exitCode: exit?.[0] ?? null,
        signal: exit?.[1] ?? null,
        stdout: all.subarray(0, stdoutLength),
        stderr: all.subarray(stdoutLength),
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

// ---------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------

/**
 * Turns requests into responses under an {@link ExecPolicy}. Its effects never
 * fail: every refusal or failure is a response whose header has `error`.
 * Interrupting a run kills the command's process group and waits for it.
 *
 * ```ts
 * const result = yield* runner.run({ argv: ["uname", "-s"] })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecRunner {
  readonly policy: ExecPolicy
  /** Check the token, then the allowlist; wait for a slot; run; collect. */
  readonly run: (request: ExecRequest) => Effect.Effect<ExecResult>
  /** `decodeRequest` then {@link ExecRunner.run}; a bad payload is a `BadRequest` response. */
  readonly runFrame: (payload: Uint8Array) => Effect.Effect<ExecResult>
  /** The answer to a request frame announced with `length` bytes, over `maxRequestBytes`. */
  readonly requestTooLarge: (length: number) => ExecResult
}

const describeSpawnError = (argv0: string, file: string, cwd: string, err: NodeJS.ErrnoException): string => {
  const code = err.code === undefined ? "" : ` (${err.code})`
  const hint = err.code === "ENOENT"
    ? `: ${file} or the working directory ${cwd} no longer exists`
    : err.code === "EACCES"
    ? `: ${file} is no longer executable, or ${cwd} is not accessible`
    : err.code === "EAGAIN" || err.code === "ENOMEM"
    ? ": the machine is out of processes or memory; try again later"
    : `: ${err.message}`
  return `could not start ${JSON.stringify(argv0)}${code}${hint}`
}

/**
 * A runner for a policy, with its own concurrency limit.
 *
 * ```ts
 * const runner = yield* Exec.makeRunner(yield* Exec.makePolicy({ allow: ["echo"] }))
 * const result = yield* runner.runFrame(payload)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRunner = (policy: ExecPolicy): Effect.Effect<ExecRunner> =>
  Effect.map(Semaphore.make(policy.concurrency), (slots) => {
    const timeoutMillis = Duration.toMillis(policy.timeout)
    const killGraceMillis = Duration.toMillis(policy.killGrace)

    const busy = failureResult(
      new Timeout({
        message: `no free slot within ${Duration.format(policy.queueTimeout)}: all ${policy.concurrency} ` +
          "slots are running commands; try again later (the server's --concurrency sets the slots)"
      })
    )

    // A request waits for a slot at most `queueTimeout`. The timer gives up only
    // if the slot was not taken yet, so a started command is never abandoned;
    // withPermits releases the slot however the run ends.
    const withSlot = (self: Effect.Effect<ExecResult>): Effect.Effect<ExecResult> =>
      Effect.flatMap(Deferred.make<void>(), (started) =>
        Effect.race(
          slots.withPermits(1)(Effect.andThen(Deferred.succeed(started, undefined), self)),
          Effect.sleep(policy.queueTimeout).pipe(
            Effect.andThen(Deferred.isDone(started)),
            Effect.flatMap((isStarted) => isStarted ? Effect.never : Effect.succeed(busy))
          )
        ))

    const execute = (argv0: string, file: string, args: ReadonlyArray<string>): Effect.Effect<ExecResult> =>
      Effect.map(
        runProcess({
          file,
          argv0,
          args,
          env: policy.env,
          cwd: policy.cwd,
          uid: policy.uid,
          gid: policy.gid,
          timeoutMillis,
          killGraceMillis,
          maxOutput: policy.maxOutput
        }),
        (outcome): ExecResult => {
          if (outcome.spawnError !== undefined) {
            return failureResult(
              new SpawnFailed({ message: describeSpawnError(argv0, file, policy.cwd, outcome.spawnError) })
            )
          }
          const error = outcome.timedOut
            ? new Timeout({
              message: `${JSON.stringify(argv0)} did not finish within ${
                Duration.format(policy.timeout)
              }; its process group was killed and the output so far is included`
            })
            : undefined
          return {
            header: {
              exitCode: outcome.exitCode,
              signal: outcome.signal,
              stdoutLength: outcome.stdout.byteLength,
              stderrLength: outcome.stderr.byteLength,
              truncated: outcome.truncated,
              // Microseconds are as precise as a process's run time gets; more digits are noise on the wire.
              durationMs: Math.round(outcome.durationMs * 1000) / 1000,
              ...(error === undefined ? {} : { error })
            },
            stdout: outcome.stdout,
            stderr: outcome.stderr
          }
        }
      )

    const run = (request: ExecRequest): Effect.Effect<ExecResult> =>
      Effect.suspend(() => {
        const authorized = policy.authorize(request.token)
        if (Result.isFailure(authorized)) return Effect.succeed(failureResult(authorized.failure))
        const [argv0, ...args] = request.argv
        const file = policy.resolve(argv0)
        if (Result.isFailure(file)) return Effect.succeed(failureResult(file.failure))
        return withSlot(execute(argv0, file.success, args))
      })

    return {
      policy,
      run,
      runFrame: (payload) =>
        Effect.suspend(() => {
          const request = decodeRequest(payload)
          return Result.isFailure(request) ? Effect.succeed(failureResult(request.failure)) : run(request.success)
        }),
      requestTooLarge: (length) =>
        failureResult(
          new RequestTooLarge({
            message: `the request frame of ${length} bytes exceeds the server's limit of ${policy.maxRequestBytes} ` +
              "bytes; the connection is closed"
          })
        )
    }
  })

// ---------------------------------------------------------------------------
// Inherited descriptors
// ---------------------------------------------------------------------------

/** O_CLOEXEC as /proc/<pid>/fdinfo's octal `flags` show it (Linux). */
const O_CLOEXEC = 0o2000000

/**
 * A descriptor this process inherited without close-on-exec: every command
 * the server starts would inherit it in turn (a launcher's pipe, an open
 * secret file), whatever `stdio` says, because `exec` keeps it open.
 *
 * ```ts
 * for (const { fd, target } of Exec.inheritedDescriptors()) console.error(`fd ${fd}: ${target}`)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface InheritedDescriptor {
  readonly fd: number
  /** What it refers to (`/proc/self/fd`'s link: a path, `pipe:[…]`, `socket:[…]`). */
  readonly target: string
}

/**
 * The descriptors above 2 that this process holds without close-on-exec
 * (Linux, from `/proc/self/fdinfo`; elsewhere none are found). Node opens
 * every descriptor of its own close-on-exec, so these were inherited from
 * whoever started the process (or opened by a native addon).
 *
 * ```ts
 * const leaks = Exec.inheritedDescriptors() // [{ fd: 1000, target: "/etc/secret" }]
 * ```
 *
 * @since 0.2.0
 * @category descriptors
 */
export const inheritedDescriptors = (): ReadonlyArray<InheritedDescriptor> => {
  let fds: Array<string>
  try {
    fds = readdirSync("/proc/self/fdinfo")
  } catch {
    return []
  }
  const found: Array<InheritedDescriptor> = []
  for (const name of fds) {
    const fd = Number(name)
    if (!(fd > 2)) continue
    try {
      const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${name}`, "utf8"))
      if (flags === null || (parseInt(flags[1]!, 8) & O_CLOEXEC) !== 0) continue
      let target = "?"
      try {
        target = readlinkSync(`/proc/self/fd/${name}`)
      } catch {
        // Gone meanwhile, or not readable: the number is what matters.
      }
      found.push({ fd, target })
    } catch {
      // Closed between the listing and the read (the listing's own descriptor is one).
    }
  }
  return found.sort((a, b) => a.fd - b.fd)
}

/**
 * Close every descriptor {@link inheritedDescriptors} finds, so that no
 * command inherits it; returns what was closed. Node has no way to set
 * close-on-exec on a descriptor, and `child_process.spawn` closes nothing
 * beyond what `stdio` names, so closing is the one fix without a native
 * helper. Call it at start, before anything else opens descriptors, in a
 * process whose inherited descriptors nothing needs (`effect-wire serve exec`
 * does); an exec server started in a program that still needs some names
 * them in a debug log line instead. In a worker of `Workers` the IPC
 * channel to the parent is not among them: node opens it close-on-exec, so
 * it stays open and no command inherits it.
 *
 * ```ts
 * const closed = Exec.closeInheritedDescriptors()
 * if (closed.length > 0) console.error(`closed inherited fds ${closed.map((d) => d.fd).join(", ")}`)
 * ```
 *
 * @since 0.2.0
 * @category descriptors
 */
export const closeInheritedDescriptors = (): ReadonlyArray<InheritedDescriptor> => {
  const closed: Array<InheritedDescriptor> = []
  for (const descriptor of inheritedDescriptors()) {
    try {
      closeSync(descriptor.fd)
      closed.push(descriptor)
    } catch {
      // Already closed: nothing reaches a command through it.
    }
  }
  return closed
}
