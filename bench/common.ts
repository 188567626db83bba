/**
 * What the bench's processes share: the wire format of the load (u32 BE
 * length-prefixed frames), readings of another process's CPU and memory from
 * /proc, and the shapes of the load generator's jobs and results.
 */
import type * as Net from "node:net"
import * as Fs from "node:fs"

// ---------------------------------------------------------------------------
// Frames: | u32 BE body length | body |
// ---------------------------------------------------------------------------

export const HEADER_BYTES = 4

/** One frame whose body starts with `seq` and `conn` (when it has room for them). */
export const writeFrame = (out: Buffer, at: number, bodySize: number, seq: number, conn: number): number => {
  out.writeUInt32BE(bodySize, at)
  if (bodySize >= 4) out.writeUInt32BE(seq >>> 0, at + 4)
  if (bodySize >= 8) out.writeUInt32BE(conn >>> 0, at + 8)
  return at + HEADER_BYTES + bodySize
}

/**
 * Reassembles frames from an echoed byte stream. Each frame is handed over
 * as where its body sits (`buffer`, `at`, `size`), with no view made per
 * frame; a frame spanning reads costs one copy, like the servers under test,
 * so the client's own overhead stays small and the same for all.
 */
export class FrameReader {
  private parts: Array<Buffer> = []
  private partsBytes = 0

  /** Calls `onFrame(buffer, at, size)` for the body of every frame `chunk` completes. */
  push(chunk: Buffer, onFrame: (buffer: Buffer, at: number, size: number) => void): void {
    let buffer = chunk
    if (this.partsBytes > 0) {
      this.parts.push(chunk)
      this.partsBytes += chunk.length
      if (this.partsBytes < HEADER_BYTES) return
      if (this.partsBytes < HEADER_BYTES + this.peekLength()) return
      buffer = Buffer.concat(this.parts, this.partsBytes)
      this.parts = []
      this.partsBytes = 0
    }
    let at = 0
    const length = buffer.length
    while (length - at >= HEADER_BYTES) {
      const size = buffer.readUInt32BE(at)
      if (length - at - HEADER_BYTES < size) break
      onFrame(buffer, at + HEADER_BYTES, size)
      at += HEADER_BYTES + size
    }
    if (at < length) {
      this.parts.push(buffer.subarray(at))
      this.partsBytes = length - at
    }
  }

  get buffered(): number {
    return this.partsBytes
  }

  private peekLength(): number {
    const head = this.parts.length === 1 || this.parts[0]!.length >= HEADER_BYTES
      ? this.parts[0]!
      : Buffer.concat(this.parts, this.partsBytes)
    return head.readUInt32BE(0)
  }
}

// ---------------------------------------------------------------------------
// What a server speaks, and the load's messages in each
// ---------------------------------------------------------------------------

/**
 * What a server understands, so the load generator knows what to send:
 * `bytes`, any bytes echoed back (raw and framed echoes, the binary typed
 * services: the load is u32 BE frames whose body starts with seq and conn);
 * `json`, u32 BE frames of one JSON message each (`{"seq","conn","pad"}`,
 * bench/messages.ts's `JsonMessage`), answered with the same message;
 * `rpc`, `effect/rpc`'s ndjson protocol, the request `Echo` of that message.
 */
export type Speaks = "bytes" | "json" | "rpc"

/** `{"seq":S,"conn":C,"pad":"xx…"}`, padded to `size` bytes when it fits (JSON.stringify of `JsonMessage`'s fields in order). */
export const jsonBody = (seq: number, conn: number, size: number): string => {
  const bare = `{"seq":${seq},"conn":${conn},"pad":""}`
  return `{"seq":${seq},"conn":${conn},"pad":"${"x".repeat(Math.max(0, size - bare.length))}"}`
}

/** One `effect/rpc` request line (ndjson) calling `Echo` with the JSON message of `seq`; its id is `seq`. */
export const rpcRequest = (seq: number, conn: number, size: number): string =>
  `{"_tag":"Request","id":"${seq}","tag":"Echo","payload":${jsonBody(seq, conn, size)},"headers":[]}\n`

// ---------------------------------------------------------------------------
// Another process, seen through /proc
// ---------------------------------------------------------------------------

/** Clock ticks per second of /proc/<pid>/stat (CLK_TCK; 100 on every Linux we run on). */
export const CLK_TCK = 100

export interface CpuSample {
  /** CPU time of all threads, in ns: the sum of /proc/<pid>/task/<tid>/schedstat (exact) when readable. */
  readonly ns: number
  /** utime + stime of /proc/<pid>/stat in ns (10 ms steps), kept as a cross-check. */
  readonly statNs: number
  /**
   * The main thread's share of `ns` (its schedstat; NaN when unreadable): what
   * runs JavaScript, without V8's background threads (its optimizing
   * compilers, the collector's helpers).
   */
  readonly mainNs: number
}

/**
 * The process's CPU time. /proc/<pid>/stat counts in 10 ms ticks, too coarse
 * for a 1,000-connection window (~150 ms); schedstat gives the same scheduler
 * runtime in ns but per live thread, so a thread that exits in the window
 * would be missed: when the two disagree by more than the ticks' rounding
 * the caller falls back to stat (see {@link cpuDeltaNs}).
 */
export const readCpu = (pid: number): CpuSample => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  // The command name may hold spaces and parentheses: fields count from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const statNs = (Number(fields[11]) + Number(fields[12])) * (1e9 / CLK_TCK)
  let ns = 0
  let mainNs = Number.NaN
  try {
    for (const tid of Fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const threadNs = Number(Fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0])
        ns += threadNs
        if (tid === String(pid)) mainNs = threadNs
      } catch {
        // The thread ended between readdir and read.
      }
    }
  } catch {
    ns = Number.NaN
  }
  return { ns: Number.isFinite(ns) && ns > 0 ? ns : statNs, statNs, mainNs }
}

/**
 * CPU ns between two samples: schedstat's unless stat (which keeps dead
 * threads' time) says it lost some. Only a shortfall counts: stat's ticks
 * are samples, and in a short window they can miss a process that did run
 * (0 ticks for 30 ms of work), where schedstat's figure is exact.
 */
export const cpuDeltaNs = (
  before: CpuSample,
  after: CpuSample
): { readonly ns: number; readonly source: "schedstat" | "stat" } => {
  const precise = after.ns - before.ns
  const coarse = after.statNs - before.statNs
  const tolerance = 2 * (1e9 / CLK_TCK) + 0.1 * coarse
  return precise >= 0 && precise >= coarse - tolerance
    ? { ns: precise, source: "schedstat" }
    : { ns: coarse, source: "stat" }
}

export interface MemorySample {
  /** Resident set now, bytes. */
  readonly rss: number
  /** Peak resident set since the process started (VmHWM), bytes. */
  readonly peakRss: number
}

export const readMemory = (pid: number): MemorySample => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)
    if (match === null) throw new Error(`/proc/${pid}/status has no ${name}`)
    return Number(match[1]) * 1024
  }
  return { rss: field("VmRSS"), peakRss: field("VmHWM") }
}

// ---------------------------------------------------------------------------
// Jobs of the load generator (bench/load.ts) and what it answers
// ---------------------------------------------------------------------------

export interface Target {
  readonly host: string
  readonly port: number
  /** The server's pid, for its CPU and memory. */
  readonly pid: number
}

export type Job =
  | {
    readonly kind: "stream"
    /** Connections, each sending `bytesPerConnection` in `writeSize` writes (each write one frame). */
    readonly connections: number
    readonly bytesPerConnection: number
    readonly writeSize: number
    readonly timeoutMs: number
  }
  | {
    readonly kind: "pingpong"
    readonly speaks: Speaks
    readonly connections: number
    readonly bodySize: number
    readonly warmupMs: number
    readonly durationMs: number
    /**
     * When one job loads several servers, each server's `durationMs` is cut
     * into this many turns, alternating with the others' (load.ts's
     * `inTurns`); 1 when unset.
     */
    readonly turns?: number
  }
  | {
    readonly kind: "pipeline"
    readonly speaks: Speaks
    readonly connections: number
    /** Frames each connection keeps in flight. */
    readonly depth: number
    readonly bodySize: number
    readonly warmupMs: number
    readonly durationMs: number
    /** As for "pingpong". */
    readonly turns?: number
  }
  | {
    readonly kind: "connections"
    /** What the probe round trip of each connection is written in. */
    readonly speaks: Speaks
    /**
     * A file the server's GC hook (bench/gcHook.ts, preloaded with `--expose-gc`) writes after each
     * SIGUSR2: memory is then read after two full collections. Without it, RSS is read as it is.
     */
    readonly gcFile?: string | undefined
    /**
     * Connections opened together and closed before measuring, so JIT, pools and V8's young
     * generation have grown to this load and do not count as memory of the measured ones.
     */
    readonly warmup: number
    /** Connections held open at once. */
    readonly connections: number
    /**
     * Then the steady state: connections opened, proven with one round trip and closed right
     * away, `concurrency` at a time: `churnWarmup` unmeasured, then `churn` measured. What a server spends per
     * connection once V8 has compiled its code for the load: the opens and closes above also pay
     * for compiling what the first connections run.
     */
    readonly churnWarmup: number
    readonly churn: number
    /** Connects in flight at once (below every server's accept backlog). */
    readonly concurrency: number
    /** Quiet time before each reading, so the server has finished its work. */
    readonly settleMs: number
    readonly timeoutMs: number
  }
  | {
    readonly kind: "ordering"
    readonly connections: number
    readonly framesPerConnection: number
    readonly maxFrameSize: number
    readonly seed: number
    readonly timeoutMs: number
  }

  | {
    /**
     * Backpressure: one connection writes small requests as fast as the socket takes them for
     * `durationMs` without reading a reply; the server's RSS growth meanwhile shows whether it
     * stops reading (bounded: the kernel's buffers hold the rest) or buffers without bound.
     * Then every reply must come back, in order.
     */
    readonly kind: "flood"
    readonly bodySize: number
    readonly durationMs: number
    readonly timeoutMs: number
  }
  | {
    /**
     * No reply lost on drain: one connection sends `requests` requests in one write, and at the
     * first reply the server is sent SIGTERM; every request must still be answered, in order,
     * before the server ends the connection cleanly. The server exits: run it last.
     */
    readonly kind: "drain"
    readonly bodySize: number
    readonly requests: number
    readonly timeoutMs: number
  }

export type JobKind = Job["kind"]

/** Metrics are plain numbers keyed by name; `errors` lists every correctness failure. */
export interface JobResult {
  readonly kind: JobKind
  readonly metrics: Record<string, number>
  readonly errors: ReadonlyArray<string>
  /** Where the CPU figures came from: "schedstat" or "stat". */
  readonly cpuSource: string
}

/** Rounds to `digits` significant digits, for readable JSON. */
export const round = (x: number, digits = 4): number => (Number.isFinite(x) && x !== 0 ? Number(x.toPrecision(digits)) : x)

/** A small seeded PRNG (mulberry32): the ordering probe's frame sizes are the same in every run. */
export const prng = (seed: number): () => number => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The line `effect/rpc`'s server answers {@link rpcRequest} with (ndjson, without its newline). */
export const rpcReply = (seq: number, conn: number, size: number): string =>
  `{"_tag":"Exit","requestId":"${seq}","exit":{"_tag":"Success","value":${jsonBody(seq, conn, size)}}}`

// ---------------------------------------------------------------------------
// Shared by the load generators (bench/load.ts, bench/tlsLoad.ts)
// ---------------------------------------------------------------------------

/** `promise`, or a rejection naming `what` after `ms`. */
export const withTimeout = <A>(promise: Promise<A>, ms: number, what: () => string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

/** The connections open now, for the progress reports (`reportProgress`). */
const openSockets = new Set<Net.Socket>()

/** Counts a connected socket in the progress reports until it closes. */
export const trackProgress = (socket: Net.Socket): void => {
  openSockets.add(socket)
  socket.once("close", () => openSockets.delete(socket))
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1)

/**
 * Every `everyMs` while a job runs, one line on stderr: how long it has run
 * and what its open connections (`trackProgress`) have read and written
 * (each, up to eight; else the sums). The runner quotes the last line when
 * it gives up on a job (`lastProgressReport`): bytes that stopped moving
 * point at the server, no line at all at the load generator (or the
 * machine) not running.
 */
export const reportProgress = (kind: string, everyMs: number): NodeJS.Timeout => {
  const t0 = performance.now()
  const timer = setInterval(() => {
    const sockets = [...openSockets]
    const moved = sockets.length <= 8
      ? sockets.map((s) => `${mib(s.bytesRead)}/${mib(s.bytesWritten)}`).join(", ")
      : `${mib(sockets.reduce((n, s) => n + s.bytesRead, 0))}/${mib(sockets.reduce((n, s) => n + s.bytesWritten, 0))} in all`
    process.stderr.write(
      `${((performance.now() - t0) / 1000).toFixed(1)} s into ${kind}: ${sockets.length} connection(s) open` +
        `${sockets.length === 0 ? "" : `, MiB read/written: ${moved}`}\n`
    )
  }, everyMs)
  timer.unref()
  return timer
}

/** The last `reportProgress` line in a load generator's stderr, if any came. */
export const lastProgressReport = (stderr: string): string | undefined =>
  stderr.trim().split("\n").filter((line) => / s into /.test(line)).pop()

/**
 * One connection of a stream echo: writes `blocks` in turn (`writes` of
 * them, `size` bytes each, waiting for 'drain'), and checks every echoed
 * byte against what was sent at that offset; settles when all came back.
 */
export const streamEcho = (
  socket: Net.Socket,
  c: number,
  blocks: ReadonlyArray<Buffer>,
  size: number,
  writes: number,
  timeoutMs: number
): Promise<void> => {
  const total = writes * size
  let received = 0
  let written = 0
  const done = new Promise<void>((resolve, reject) => {
    socket.on("error", reject)
    socket.on("end", () => reject(new Error(`connection ${c}: server ended after ${received} of ${total} bytes`)))
    socket.on("data", (chunk: Buffer) => {
      let at = 0
      while (at < chunk.length) {
        const offset = received + at
        const block = blocks[Math.floor(offset / size) % blocks.length]!
        const within = offset % size
        const n = Math.min(size - within, chunk.length - at)
        if (chunk.compare(block, within, within + n, at, at + n) !== 0) {
          return reject(new Error(`connection ${c}: echoed bytes differ from those sent near byte ${offset}`))
        }
        at += n
      }
      received += chunk.length
      if (received > total) reject(new Error(`connection ${c}: ${received} bytes echoed, only ${total} sent`))
      else if (received === total) resolve()
    })
  })
  const pump = (): void => {
    while (written < writes) {
      const ok = socket.write(blocks[written % blocks.length]!)
      written++
      if (!ok) return void socket.once("drain", pump)
    }
  }
  pump()
  return withTimeout(done, timeoutMs, () => `connection ${c} got ${received} of ${total} bytes`)
}

/**
 * A reference server's life (bench/baselines.ts, bench/tlsServers.ts): an
 * error at listen is one line and exit 1; once listening, the line
 * bench/processes.ts waits for; SIGTERM and SIGINT close it and exit 0.
 */
export const serveUntilSignal = (server: Net.Server, host: string, port: number): void => {
  server.on("error", (error) => {
    process.stderr.write(`${error.message}\n`)
    process.exit(1)
  })
  server.listen({ host, port, backlog: 4096 }, () => {
    const address = server.address() as Net.AddressInfo
    const at = address.family === "IPv6" ? `[${address.address}]` : address.address
    process.stdout.write(`listening tcp ${at}:${address.port}\n`)
  })
  const stop = (): void => {
    server.close()
    process.exit(0)
  }
  process.on("SIGTERM", stop)
  process.on("SIGINT", stop)
}
