/**
 * Shared pieces of the reliability suite: the scale (small under `npm test`,
 * full with `EW_RELIABILITY=full`), the summary table every case reports
 * into, a guard against unhandled errors, a probe that records the typed
 * errors each server-side connection surfaces, process/memory readings, and
 * the `effect-wire` command line as a child process.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { pipeArguments } from "effect/Pipeable"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as PerfHooks from "node:perf_hooks"
import * as Url from "node:url"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import type { TestContext } from "vitest"
import { inject } from "vitest"
import * as Address from "../../src/Address.js"
import * as Socket from "../../src/Socket.js"
import { formatTable, MiB, type Row } from "./summary.js"

export { formatTable, MiB, type Row }

// ---------------------------------------------------------------------------
// scale
// ---------------------------------------------------------------------------

/** `EW_RELIABILITY=full` (what `npm run test:reliability` sets) runs every case at full size. */
export const FULL = process.env.EW_RELIABILITY === "full"

export const scale = {
  name: FULL ? "full" : "small",
  /** fast-check runs per property over a server. */
  propRuns: FULL ? 2_000 : 200,
  /** fast-check runs per property over a pure codec (cheap). */
  codecRuns: FULL ? 10_000 : 600,
  /** connect/exchange/close cycles per server. */
  churnCycles: FULL ? 10_000 : 1_000,
  churnConcurrency: 100,
  /** Bytes a server tries to write to a peer that never reads. */
  stallBytes: FULL ? 256 * MiB : 32 * MiB,
  /** Connections held open at once by one server. */
  heldConnections: 1_000,
  /** Faulty clients per kind in the reset cases. */
  faultsPerKind: FULL ? 50 : 8,
  /** Healthy clients running next to the faulty ones. */
  healthyClients: FULL ? 50 : 10,
  /** Clients mid-request when the server gets SIGTERM. */
  shutdownClients: 100
} as const

// ---------------------------------------------------------------------------
// summary table
// ---------------------------------------------------------------------------

declare module "vitest" {
  export interface ProvidedContext {
    /** Where the reliability config's global setup collects every file's rows. */
    ewReliabilityReport?: string
  }
}

const rows: Array<Row> = []

/**
 * Register the current case in the summary; the returned row's counters are
 * the case's own to bump. Status and time are filled when the case ends.
 */
export const track = (ctx: TestContext, label: string): Row => {
  const file = ctx.task.file.name.replace(/^.*test\/reliability\//, "").replace(/\.test\.ts$/, "")
  const row: Row = { file, label, status: "running", ms: 0, connections: 0, bytes: 0, faults: 0, failures: 0, notes: [] }
  const started = performance.now()
  rows.push(row)
  ctx.onTestFailed(() => {
    row.status = "FAIL"
  })
  ctx.onTestFinished(() => {
    row.ms = Math.round(performance.now() - started)
    if (row.status === "running") row.status = "pass"
  })
  return row
}

/**
 * Hand this file's rows (an `afterAll` of every reliability file) to the
 * global setup (test/reliability/globalSetup.ts), which prints one table for
 * the whole run; without it (a run with another config), print them here.
 */
export const printSummary = (): void => {
  if (rows.length === 0) return
  const report = inject("ewReliabilityReport")
  if (report !== undefined) {
    Fs.appendFileSync(report, rows.map((r) => JSON.stringify(r)).join("\n") + "\n")
  } else {
    process.stdout.write(formatTable(rows, `reliability summary (${scale.name} scale): ${rows[0]!.file}`))
  }
}

// ---------------------------------------------------------------------------
// guards and readings
// ---------------------------------------------------------------------------

/**
 * Listens for `uncaughtException` and `unhandledRejection` for the rest of the
 * scope; `check` fails the case if any arrived.
 */
export const noUnhandledErrors: Effect.Effect<{ readonly check: Effect.Effect<void> }, never, Scope.Scope> = Effect
  .map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const seen: Array<unknown> = []
        const onError = (error: unknown) => {
          seen.push(error)
        }
        process.on("uncaughtException", onError)
        process.on("unhandledRejection", onError)
        return { seen, onError }
      }),
      ({ onError }) =>
        Effect.sync(() => {
          process.off("uncaughtException", onError)
          process.off("unhandledRejection", onError)
        })
    ),
    ({ seen }) => ({
      check: Effect.suspend(() =>
        seen.length === 0
          ? Effect.void
          : Effect.die(new Error(`unhandled errors during the case: ${seen.map((e) => String(e)).join(" | ")}`))
      )
    })
  )

/** A full garbage collection, if this V8 lets us have one (flag set at run time). */
export const gc: (() => void) | undefined = (() => {
  const global = globalThis as { gc?: () => void }
  if (typeof global.gc === "function") return global.gc
  try {
    V8.setFlagsFromString("--expose-gc")
    const f = Vm.runInNewContext("gc") as unknown
    return typeof f === "function" ? (f as () => void) : undefined
  } catch {
    return undefined
  }
})()

/** Heap and array buffers of this process after a full GC when possible. */
export const memory = (): { readonly heap: number; readonly buffers: number } => {
  // V8 sweeps dead ArrayBuffers concurrently after a collection, so right
  // after one `arrayBuffers` may still count them; a second collection first
  // finishes the sweep of the previous one.
  gc?.()
  gc?.()
  const m = process.memoryUsage()
  return { heap: m.heapUsed, buffers: m.arrayBuffers }
}

/** Watches this process's event loop; `stop` gives the longest stall seen, in ms. */
export const loopStall = (): { readonly stop: () => number } => {
  const histogram = PerfHooks.monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  return {
    stop: () => {
      histogram.disable()
      return histogram.max / 1e6
    }
  }
}

/** A change in memory, e.g. `+1.2 MiB` or `-0.3 MiB`. */
export const signedMiB = (bytes: number): string => `${bytes >= 0 ? "+" : "-"}${(Math.abs(bytes) / MiB).toFixed(1)} MiB`

/** Open file descriptors of a process (Linux). */
export const openFds = (pid: number | "self" = "self"): number => Fs.readdirSync(`/proc/${pid}/fd`).length

/** Resident memory of a process in bytes (Linux). */
export const rss = (pid: number): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const match = /VmRSS:\s+(\d+) kB/.exec(status)
  return match === null ? 0 : Number(match[1]) * 1024
}

// Whether a process still runs (a zombie counts as dead).
export { isAlive } from "../helpers/processes.js"

/**
 * Re-check `value` until `check` holds, at most `attempts` × `interval` ms:
 * for counters that have no event of their own. Dies with `what` otherwise.
 */
export const eventually = <A, E, R>(
  what: string,
  value: Effect.Effect<A, E, R>,
  check: (a: A) => boolean,
  attempts = 300,
  interval = 10
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    let last = yield* value
    for (let i = 0; i < attempts && !check(last); i++) {
      yield* Effect.sleep(interval)
      last = yield* value
    }
    if (!check(last)) return yield* Effect.die(new Error(`${what}: still ${JSON.stringify(last)}`))
    return last
  })

// ---------------------------------------------------------------------------
// bytes
// ---------------------------------------------------------------------------

/** A 4-byte big-endian length claim followed by `body` (which may be shorter than the claim). */
export const lengthFrame = (body: Uint8Array, claim = body.length): Uint8Array => {
  const out = new Uint8Array(4 + body.length)
  new DataView(out.buffer).setUint32(0, claim, false)
  out.set(body, 4)
  return out
}

/** Deterministic bytes: the i-th byte is (seed + i * 31) mod 251. */
export const pattern = (n: number, seed = 7): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (seed + i * 31) % 251
  return b
}

export { concat as concatBytes } from "../../src/internal/bytes.js"

export const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0

// ---------------------------------------------------------------------------
// server-side probe
// ---------------------------------------------------------------------------

/**
 * Records, per server-side connection (keyed by the peer's address), the
 * bytes read and every typed error its socket surfaced, by `_tag`, and the
 * handler's own failure when the handler is wrapped with {@link Probe.wrap}.
 */
export interface Probe {
  /** Tags of the typed errors the latest connection from each peer surfaced, in order. */
  readonly errors: Map<string, Array<string>>
  readonly bytesRead: Map<string, number>
  /**
   * Completes once the server has read at least `n` bytes from `peer`, or
   * once that connection surfaced an error (then with the error's tag), so
   * that a connection cut early never leaves the case waiting.
   */
  readonly awaitRead: (peer: string, n: number) => Effect.Effect<string | undefined>
  /**
   * Completes once the connection of `peer` surfaced a typed error: the
   * latest one's first error, else the next error of any connection from
   * `peer` (an earlier one whose port the kernel already handed on included).
   */
  readonly awaitError: (peer: string) => Effect.Effect<string>
  /**
   * The first error tag of every connection accepted from `peer` that
   * surfaced one, in accept order: what a check made after the client's port
   * may have been reused reads (a later connection from the same port
   * replaces the earlier one in `errors`).
   */
  readonly firstTags: (peer: string) => ReadonlyArray<string>
  /** The listener, with every accepted socket observed. */
  readonly listen: (listener: Socket.Listener) => Socket.Listener
  /** A handler whose failure is recorded under its peer. */
  readonly wrap: <E extends { readonly _tag: string }, R>(
    handler: (socket: Socket.Socket) => Effect.Effect<void, E, R>
  ) => (socket: Socket.Socket) => Effect.Effect<void, E, R>
  /** How many connections surfaced each tag. */
  readonly tally: () => Record<string, number>
}

export const peerOf = (socket: Socket.Socket): string => Address.format(socket.remoteAddress)
export const selfOf = (socket: Socket.Socket): string => Address.format(socket.localAddress)

export const makeProbe = (): Probe => {
  const errors = new Map<string, Array<string>>()
  const bytesRead = new Map<string, number>()
  const readWaiters = new Map<string, Array<{ n: number; done: (tag: string | undefined) => void }>>()
  const errorWaiters = new Map<string, Array<(tag: string) => void>>()
  // A client port can be reused by a later connection (the kernel frees it as
  // soon as the server closed first, or the client reset), so each accepted
  // connection owns its peer's entries in `errors` and `bytesRead` from its
  // accept on. One that is no longer the latest from its address still
  // records its errors in its own list (a reset can reach the server after the
  // port's next connection was accepted), for `firstTags`, `tally` and
  // `awaitError`.
  interface Connection {
    readonly tags: Array<string>
  }
  const latest = new Map<string, Connection>()
  const owner = new WeakMap<Socket.Socket, Connection>()
  const isLatest = (peer: string, connection: Connection) => latest.get(peer) === connection
  /** Every connection accepted from each peer, in accept order. */
  const history = new Map<string, Array<Connection>>()

  const record = (peer: string, connection: Connection, tag: string) => {
    connection.tags.push(tag)
    const waiters = errorWaiters.get(peer)
    if (waiters !== undefined) {
      errorWaiters.delete(peer)
      for (const w of waiters) w(tag)
    }
    if (!isLatest(peer, connection)) return
    errors.set(peer, connection.tags)
    const readers = readWaiters.get(peer)
    if (readers !== undefined) {
      readWaiters.delete(peer)
      for (const w of readers) w.done(tag)
    }
  }
  const onBytes = (peer: string, n: number) => {
    const total = (bytesRead.get(peer) ?? 0) + n
    bytesRead.set(peer, total)
    const waiters = readWaiters.get(peer)
    if (waiters !== undefined) {
      const rest = waiters.filter((w) => {
        if (total >= w.n) w.done(undefined)
        return total < w.n
      })
      readWaiters.set(peer, rest)
    }
  }
  const adopt = (peer: string): Connection => {
    const connection: Connection = { tags: [] }
    latest.set(peer, connection)
    const earlier = history.get(peer)
    if (earlier === undefined) history.set(peer, [connection])
    else earlier.push(connection)
    return connection
  }
  const tapErrorOf = (peer: string, connection: Connection) => <E>(e: E): E => {
    record(peer, connection, (e as { _tag?: string })._tag ?? String(e))
    return e
  }

  const observe = (socket: Socket.Socket): Socket.Socket => {
    const peer = peerOf(socket)
    const connection = adopt(peer)
    errors.delete(peer)
    bytesRead.delete(peer)
    const tapError = tapErrorOf(peer, connection)
    const reads = socket.reads.pipe(
      Stream.mapArray((chunk) => {
        let n = 0
        for (const bytes of chunk) n += bytes.length
        if (isLatest(peer, connection)) onBytes(peer, n)
        return chunk
      }),
      Stream.mapError(tapError)
    )
    const observed: Socket.Socket = {
      [Socket.TypeId]: Socket.TypeId,
      localAddress: socket.localAddress,
      remoteAddress: socket.remoteAddress,
      reads,
      write: (bytes) => Effect.mapError(socket.write(bytes), tapError),
      writeAll: (chunks) => Effect.mapError(socket.writeAll(chunks), tapError),
      writes: Sink.mapError(socket.writes, tapError),
      end: Effect.mapError(socket.end, tapError),
      reset: socket.reset,
      close: socket.close,
      pipe() {
        return pipeArguments(this, arguments)
      }
    }
    owner.set(observed, connection)
    return observed
  }

  return {
    errors,
    bytesRead,
    awaitRead: (peer, n) =>
      Effect.callback<string | undefined>((resume) => {
        if ((bytesRead.get(peer) ?? 0) >= n) return resume(Effect.succeed(undefined))
        const seen = errors.get(peer)
        if (seen !== undefined && seen.length > 0) return resume(Effect.succeed(seen[0]!))
        const list = readWaiters.get(peer) ?? []
        list.push({ n, done: (tag) => resume(Effect.succeed(tag)) })
        readWaiters.set(peer, list)
      }),
    awaitError: (peer) =>
      Effect.callback<string>((resume) => {
        const seen = errors.get(peer)
        if (seen !== undefined && seen.length > 0) return resume(Effect.succeed(seen[0]!))
        const list = errorWaiters.get(peer) ?? []
        list.push((tag) => resume(Effect.succeed(tag)))
        errorWaiters.set(peer, list)
      }),
    firstTags: (peer) => (history.get(peer) ?? []).flatMap(({ tags }) => tags.length > 0 ? [tags[0]!] : []),
    listen: (listener) => ({
      address: listener.address,
      accept: Stream.map(listener.accept, observe),
      connections: listener.connections,
      stopAccepting: listener.stopAccepting,
      refused: listener.refused
    }),
    wrap: (handler) => (socket) =>
      Effect.tapError(handler(socket), (e) =>
        Effect.sync(() => {
          const peer = peerOf(socket)
          // A socket the listener did not observe counts as its peer's latest connection.
          record(peer, owner.get(socket) ?? latest.get(peer) ?? adopt(peer), e._tag)
        })),
    tally: () => {
      const out: Record<string, number> = {}
      for (const connections of history.values()) {
        for (const { tags } of connections) {
          for (const tag of new Set(tags)) out[tag] = (out[tag] ?? 0) + 1
        }
      }
      return out
    }
  }
}

// ---------------------------------------------------------------------------
// child processes
// ---------------------------------------------------------------------------

/** A child process of this case: its output so far and its exit. */
export interface Child {
  readonly process: ChildProcess.ChildProcess
  readonly pid: number
  /** Everything written to stdout and stderr so far. */
  readonly output: () => string
  /** Completes with the first stdout line that matches. */
  readonly line: (match: RegExp) => Effect.Effect<RegExpExecArray>
  /** Completes with the exit code (or the signal's name) once the process exited. */
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/**
 * Spawn a process for the rest of the scope; the scope's end kills it by
 * PID (SIGKILL) if it still runs, and waits for it.
 */
export const spawnChild = (
  command: string,
  args: ReadonlyArray<string>,
  options: ChildProcess.SpawnOptions = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = ChildProcess.spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options })
      let out = ""
      let stdoutText = ""
      const lineWaiters: Array<{ match: RegExp; done: (m: RegExpExecArray) => void }> = []
      const checkLines = () => {
        for (let i = 0; i < lineWaiters.length; i++) {
          const w = lineWaiters[i]!
          const m = stdoutText.split("\n").map((l) => w.match.exec(l)).find((x) => x !== null)
          if (m !== undefined && m !== null) {
            lineWaiters.splice(i--, 1)
            w.done(m)
          }
        }
      }
      child.stdout?.on("data", (b: Buffer) => {
        out += b.toString()
        stdoutText += b.toString()
        checkLines()
      })
      child.stderr?.on("data", (b: Buffer) => {
        out += b.toString()
      })
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
      const exitWaiters: Array<(e: { code: number | null; signal: NodeJS.Signals | null }) => void> = []
      child.on("exit", (code, signal) => {
        exit = { code, signal }
        for (const w of exitWaiters.splice(0)) w(exit)
      })
      child.on("error", (err) => {
        out += `\nspawn error: ${err.message}`
      })
      return {
        process: child,
        pid: child.pid ?? -1,
        output: () => out,
        line: (match: RegExp) =>
          Effect.callback<RegExpExecArray>((resume) => {
            lineWaiters.push({ match, done: (m) => resume(Effect.succeed(m)) })
            checkLines()
          }),
        exited: Effect.callback<{ code: number | null; signal: NodeJS.Signals | null }>((resume) => {
          if (exit !== undefined) return resume(Effect.succeed(exit))
          exitWaiters.push((e) => resume(Effect.succeed(e)))
        })
      } satisfies Child
    }),
    (child) =>
      Effect.suspend(() => {
        if (child.process.exitCode !== null || child.process.signalCode !== null) return Effect.void
        try {
          process.kill(child.pid, "SIGKILL")
        } catch {
          return Effect.void
        }
        return Effect.timeout(child.exited, "5 seconds").pipe(Effect.ignore)
      })
  )

// ---------------------------------------------------------------------------
// logs
// ---------------------------------------------------------------------------

/** Log lines kept instead of printed, to count a server's warnings. */
export const captureLogs = () => {
  const lines: Array<{ readonly level: string; readonly message: string }> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push({ level: logLevel.toUpperCase(), message: Array.isArray(message) ? message.map(String).join(" ") : String(message) })
  })
  return {
    lines,
    warnings: () => lines.filter((l) => l.level === "WARN"),
    layer: Logger.layer([logger])
  }
}

// ---------------------------------------------------------------------------
// the effect-wire command line as a child process
// ---------------------------------------------------------------------------

const repoRoot = Path.resolve(Path.dirname(Url.fileURLToPath(import.meta.url)), "../..")

/**
 * The `effect-wire` entry point as users run it: dist/src/cli/main.js, built
 * once for the whole run (tsc, then the bundled CLI) by test/globalSetup.ts,
 * which both vitest configs run first.
 */
export const cliEntry: Effect.Effect<string> = Effect.sync(() => {
  const dist = Path.join(repoRoot, "dist/src/cli/main.js")
  if (!Fs.existsSync(dist)) throw new Error(`${dist} does not exist: run npm run build`)
  return dist
})

/** A `effect-wire serve …` child process, ready: its `listening` line has been printed. */
export interface CliServer extends Child {
  /** What follows `listening tcp ` or `listening unix `. */
  readonly listening: string
  readonly address: Address.Address
}

/**
 * Start `effect-wire serve <args>` for the rest of the scope and wait (at most
 * 20 s) for its `listening` line. Killed by PID (SIGKILL) when the scope
 * closes if it still runs.
 */
export const serveCli = (args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv): Effect.Effect<CliServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const entry = yield* cliEntry
    const child = yield* spawnChild(process.execPath, [entry, "serve", ...args], { env: env ?? process.env })
    const ready = yield* Effect.raceFirst(
      Effect.map(child.line(/^listening (tcp|unix) (.+)$/), (m) => ({ ok: true as const, m })),
      Effect.map(child.exited, (e) => ({ ok: false as const, e }))
    ).pipe(Effect.timeout("20 seconds"), Effect.orDie)
    if (!ready.ok) {
      return yield* Effect.die(new Error(`effect-wire serve ${args.join(" ")} exited (${JSON.stringify(ready.e)}): ${child.output()}`))
    }
    const [, transport, where] = ready.m
    const address = transport === "unix" ? Address.unix(where!) : Address.unsafeParse(where!)
    return { ...child, listening: where!, address }
  })

/**
 * A child's exit, waited for at most `within`; past it the case dies with
 * what the child printed, which says where it hung.
 */
export const exitedWithin = (child: Pick<Child, "exited" | "output">, within: Duration.Input) =>
  child.exited.pipe(
    Effect.timeout(within),
    Effect.catch(() => {
      const waited = Duration.format(Duration.fromInputUnsafe(within))
      return Effect.die(new Error(`the process had not exited after ${waited}; what it printed:\n${child.output()}`))
    })
  )

/** Run `effect-wire <args>` to its end: exit code and output. */
export const runCli = (args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv) =>
  Effect.scoped(Effect.gen(function*() {
    const entry = yield* cliEntry
    const child = yield* spawnChild(process.execPath, [entry, ...args], { env: env ?? process.env })
    const exit = yield* child.exited.pipe(Effect.timeout("20 seconds"), Effect.orDie)
    return { ...exit, output: child.output() }
  }))
