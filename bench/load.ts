/**
 * The load generator: one process on plain node:net that runs one job against
 * one server and prints its result as one JSON line; or a ping-pong or
 * pipeline against several servers in turns (`inTurns`), printing
 * `{"results":[…]}`, one result per server in their order.
 *
 *   node dist/bench/load.js '{"target":{"host":"127.0.0.1","port":40123,"pid":4242},"job":{"kind":"pingpong",…}}'
 *   node dist/bench/load.js '{"targets":[{…},{…}],"job":{"kind":"pipeline",…,"turns":5}}'
 *
 * It reads the server's CPU and memory from /proc itself, at the exact edges
 * of each measured window. Every check of what came back (byte counts,
 * contents, order) lands in `errors`; the runner decides what they mean.
 * While the job runs it reports its progress on stderr every 10 s
 * (`"reportEveryMs"` next to `"job"` to change that).
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import {
  cpuDeltaNs,
  type CpuSample,
  FrameReader,
  HEADER_BYTES,
  type Job,
  type JobResult,
  jsonBody,
  prng,
  readCpu,
  readMemory,
  reportProgress,
  round,
  rpcReply,
  rpcRequest,
  type Speaks,
  streamEcho,
  type Target,
  trackProgress,
  withTimeout,
  writeFrame
} from "./common.js"

type JobOf<K extends Job["kind"]> = Extract<Job, { readonly kind: K }>

/** Keeps the first few errors: after one goes wrong, the rest usually repeat it. */
class Errors {
  readonly list: Array<string> = []
  add(message: string): void {
    if (this.list.length < 10) this.list.push(message)
  }
  get any(): boolean {
    return this.list.length > 0
  }
}

class Cpu {
  source = "schedstat"
  constructor(readonly pid: number) {}
  sample(): CpuSample {
    return readCpu(this.pid)
  }
  /** Server CPU between two samples, in ns. */
  since(before: CpuSample, after: CpuSample = this.sample()): number {
    const delta = cpuDeltaNs(before, after)
    if (delta.source === "stat") this.source = "stat"
    return delta.ns
  }
  /** The main thread's CPU between two samples, in ns (NaN where schedstat is not readable). */
  mainSince(before: CpuSample, after: CpuSample): number {
    return after.mainNs - before.mainNs
  }
}

const now = (): number => performance.now()

/**
 * This process's share of a core over a window: near 1 means the load
 * generator, not the server, set the pace, and CPU per operation is the
 * fairer comparison.
 */
const clientShare = (before: NodeJS.CpuUsage, seconds: number): number => {
  const used = process.cpuUsage(before)
  return (used.user + used.system) / 1e6 / seconds
}
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const connect = (target: Target): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
    socket.once("error", reject)
    socket.once("connect", () => {
      socket.off("error", reject)
      trackProgress(socket)
      resolve(socket)
    })
  })

/** Resolves when the socket is fully closed (both directions ended, or destroyed). */
const closed = (socket: Net.Socket): Promise<void> =>
  socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once("close", () => resolve()))

/** Runs `task(i)` for i < count with at most `concurrency` at once. */
const pool = async <A>(count: number, concurrency: number, task: (i: number) => Promise<A>): Promise<Array<A>> => {
  const results: Array<A> = new Array(count)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      results[i] = await task(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return results
}


// ---------------------------------------------------------------------------
// Stream echo: bulk bytes both ways, every byte checked
// ---------------------------------------------------------------------------

/** Distinct blocks, so a misplaced block is caught, not only a missing byte. */
const STREAM_BLOCKS = 16

const stream = async (target: Target, job: JobOf<"stream">, errors: Errors, cpu: Cpu) => {
  const size = job.writeSize
  // Each write is one whole frame, so the framed servers see valid input too.
  const blocks = Array.from({ length: STREAM_BLOCKS }, (_, i) => {
    const block = Buffer.alloc(size, (i * 31 + 7) & 255)
    writeFrame(block, 0, size - HEADER_BYTES, i, 0)
    return block
  })
  const writes = Math.max(1, Math.floor(job.bytesPerConnection / size))
  const total = writes * size
  const sockets = await Promise.all(Array.from({ length: job.connections }, () => connect(target)))

  const one = (socket: Net.Socket, c: number): Promise<void> => streamEcho(socket, c, blocks, size, writes, job.timeoutMs)

  const cpu0 = cpu.sample()
  const client0 = process.cpuUsage()
  const t0 = now()
  const outcome = await Promise.allSettled(sockets.map(one))
  const seconds = (now() - t0) / 1000
  const cpuNs = cpu.since(cpu0)
  const client = clientShare(client0, seconds)
  const memory = readMemory(target.pid)
  for (const o of outcome) if (o.status === "rejected") errors.add(String((o.reason as Error).message ?? o.reason))
  // A connection that failed (a timeout, wrong bytes) has nothing more to say: destroyed at once,
  // not half-closed behind writes the server may never take.
  await Promise.all(sockets.map((socket, c) => {
    if (outcome[c]!.status === "rejected") return void socket.destroy()
    socket.end()
    return withTimeout(closed(socket), 5_000, () => "closing").catch(() => socket.destroy())
  }))
  const bytes = total * job.connections
  return {
    mibPerSec: bytes / 2 ** 20 / seconds,
    cpuMsPerGiB: cpuNs / 1e6 / (bytes / 2 ** 30),
    serverCpuShare: cpuNs / 1e9 / seconds,
    clientCpuShare: client,
    peakRssMB: memory.peakRss / 2 ** 20,
    bytesPerConnection: total,
    seconds
  }
}

// ---------------------------------------------------------------------------
// Ping-pong and pipeline: small frames, counted in turns
// ---------------------------------------------------------------------------

/**
 * One server's connections under a ping-pong or pipeline load. A job may load
 * several servers (`targets`); they then take turns (`inTurns`): while it is
 * not a server's turn its connections finish what they sent and send nothing.
 */
class Lane {
  /** Whether a reply may be followed by new requests. */
  private sending = false
  /** Whether replies are counted (`add`). */
  private measuring = false
  /** Replies counted. */
  count = 0
  readonly cpu: Cpu
  readonly errors = new Errors()
  readonly sockets: Array<Net.Socket> = []
  /** Connections that got their first reply, or gave up. */
  private readonly started = new Set<number>()
  /** Connections that gave up (`lose`): they neither send nor wait. */
  private readonly lost = new Set<number>()
  /** Connections with nothing outstanding that stopped sending, each with how to start it again. */
  private readonly resting = new Map<number, () => void>()
  private waiters: Array<() => void> = []

  constructor(readonly target: Target, readonly connections: number) {
    this.cpu = new Cpu(target.pid)
  }

  // -- what each connection tells its lane

  get isSending(): boolean {
    return this.sending
  }
  /** Connection `c`'s first reply. */
  first(c: number): void {
    this.started.add(c)
    this.changed()
  }
  /** `n` replies: counted while measuring. */
  add(n: number): void {
    if (!this.measuring || n <= 0) return
    this.count += n
    this.changed()
  }
  /** Connection `c` has nothing outstanding and is not sending: `resume` starts it again. */
  rest(c: number, resume: () => void): void {
    this.resting.set(c, resume)
    this.changed()
  }
  /** Connection `c` gave up (its failure is in `errors`). */
  lose(c: number): void {
    if (this.lost.has(c)) return
    this.lost.add(c)
    this.started.add(c)
    this.resting.delete(c)
    this.changed()
  }

  // -- what the turns do with it

  go(): void {
    this.sending = true
    const resting = [...this.resting.values()]
    this.resting.clear()
    for (const resume of resting) resume()
  }
  /** Stops sending; resolves once no connection has a request outstanding. */
  pause(ms: number): Promise<void> {
    this.sending = false
    return this.until(() => this.resting.size + this.lost.size === this.connections, ms, "waiting for the last replies")
  }
  /** Resolves once every connection got its first reply (or gave up). */
  flowing(ms: number): Promise<void> {
    return this.until(() => this.started.size === this.connections, ms, "waiting for every connection's first reply")
  }
  /** Counts replies from now on until `stop`. */
  measure(): void {
    this.measuring = true
  }
  /** Stops counting, once at least one reply was counted since `from` (or every connection gave up). */
  async stop(from: number, ms: number): Promise<void> {
    try {
      await this.until(() => this.count > from || this.lost.size === this.connections, ms, "waiting for a reply to count")
    } finally {
      this.measuring = false
    }
  }
  /** Gives up on every connection (a wait timed out, or they could not all connect). */
  abandon(): void {
    for (const socket of this.sockets) socket.destroy()
    for (let c = 0; c < this.connections; c++) this.lose(c)
  }

  private until(done: () => boolean, ms: number, what: string): Promise<void> {
    if (done()) return Promise.resolve()
    return withTimeout(
      new Promise<void>((resolve) => {
        const check = (): void => void (done() ? resolve() : this.waiters.push(check))
        this.waiters.push(check)
      }),
      ms,
      () => `${what} (${this.connections - this.lost.size} of ${this.connections} connections left, ${this.count} replies counted)`
    )
  }
  private changed(): void {
    if (this.waiters.length === 0) return
    const waiters = this.waiters
    this.waiters = []
    for (const check of waiters) check()
  }
}

/** What one lane measured over all its turns. */
interface Measured {
  count: number
  seconds: number
  cpuNs: number
  /** The load generator's own CPU over those turns, in µs. */
  clientUs: number
}

/**
 * Runs the lanes in turns: each one's warm-up alone (`warmupMs`), then
 * `turns` rounds (1 when unset) in which each lane in turn sends and is
 * counted for `durationMs / turns` while the others are quiet, a different
 * lane first in each round. So the servers of one job are measured in
 * alternation, and a slow moment of the machine falls on all of them, not on
 * the one that happened to run then. Server CPU is read at the edges of each
 * turn. A turn in which no reply came lasts until one does (a machine so
 * loaded that none finished in it, as `--quick`'s 100 ms may be under CI,
 * still gives a rate); a wait that times out gives that lane up, with the
 * reason in its errors.
 */
const inTurns = async (
  lanes: ReadonlyArray<Lane>,
  job: { readonly warmupMs: number; readonly durationMs: number; readonly turns?: number }
): Promise<Array<Measured>> => {
  const limit = job.warmupMs + job.durationMs + 10_000
  const guard = async (lane: Lane, wait: Promise<void>): Promise<void> => {
    try {
      await wait
    } catch (error) {
      lane.errors.add(error instanceof Error ? error.message : String(error))
      lane.abandon()
    }
  }
  let active: Lane | undefined
  const switchTo = async (lane: Lane): Promise<void> => {
    if (active === lane) return
    if (active !== undefined) await guard(active, active.pause(limit))
    active = lane
    lane.go()
  }
  for (const lane of lanes) {
    await switchTo(lane)
    await guard(lane, lane.flowing(limit))
    await sleep(job.warmupMs)
  }
  const measured = lanes.map((): Measured => ({ count: 0, seconds: 0, cpuNs: 0, clientUs: 0 }))
  const rounds = job.turns ?? 1
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < lanes.length; i++) {
      const k = (i + round) % lanes.length
      const lane = lanes[k]!
      const m = measured[k]!
      await switchTo(lane)
      const from = lane.count
      const cpu0 = lane.cpu.sample()
      const client0 = process.cpuUsage()
      const t0 = now()
      lane.measure()
      await sleep(job.durationMs / rounds)
      await guard(lane, lane.stop(from, limit))
      m.seconds += (now() - t0) / 1000
      m.cpuNs += lane.cpu.since(cpu0)
      const client = process.cpuUsage(client0)
      m.clientUs += client.user + client.system
      m.count += lane.count - from
    }
  }
  if (active !== undefined) await guard(active, active.pause(limit))
  for (const lane of lanes) for (const socket of lane.sockets) socket.destroy()
  return measured
}

/** Opens a lane's connections and starts `drive` on each (it waits for `go`). */
const openLane = async (
  target: Target,
  connections: number,
  drive: (lane: Lane, socket: Net.Socket, c: number) => void
): Promise<Lane> => {
  const lane = new Lane(target, connections)
  const opened = await Promise.allSettled(Array.from({ length: connections }, () => connect(target)))
  for (const o of opened) if (o.status === "fulfilled") lane.sockets.push(o.value)
  const failed = opened.find((o) => o.status === "rejected")
  if (failed !== undefined) {
    lane.errors.add(`connect: ${failed.reason instanceof Error ? failed.reason.message : String(failed.reason)}`)
    lane.abandon()
  } else lane.sockets.forEach((socket, c) => drive(lane, socket, c))
  return lane
}

// ---------------------------------------------------------------------------
// Requests and replies in what the server speaks
// ---------------------------------------------------------------------------

/**
 * One connection's requests and how its replies are read and checked: every
 * reply must be the exact bytes expected for its request (content, size,
 * connection); `ordered` says whether replies must come in request order
 * (the framed servers and typed services: yes; `effect/rpc` answers each
 * request on its own fiber, so its replies are matched by id instead).
 * Requests are written as one buffer per batch and replies read where they
 * sit in the read, so the load generator's own work per frame stays small
 * next to the servers' (it is one process on one core, and the pipeline
 * measures the server only while the load keeps up).
 */
interface Wire {
  readonly ordered: boolean
  /** The bytes of requests `from` to `from + n - 1`, in one buffer. */
  readonly requests: (from: number, n: number) => Buffer
  /**
   * Calls `onReply(seq)` for each complete, correct reply in `chunk`, or
   * `onBad(why)` once and nothing after (the connection is then given up).
   */
  readonly read: (chunk: Buffer, onReply: (seq: number) => void, onBad: (why: string) => void) => void
}

/** u32 BE frames, each `HEADER_BYTES + length(body)`, the bodies' text written as latin1. */
const framesOfText = (bodies: ReadonlyArray<string>): Buffer => {
  let total = 0
  for (const body of bodies) total += HEADER_BYTES + body.length
  const out = Buffer.allocUnsafe(total)
  let at = 0
  for (const body of bodies) {
    out.writeUInt32BE(body.length, at)
    at += HEADER_BYTES + out.write(body, at + HEADER_BYTES, "latin1")
  }
  return out
}

const range = <A>(from: number, n: number, f: (seq: number) => A): Array<A> => {
  const out = new Array<A>(n)
  for (let i = 0; i < n; i++) out[i] = f(from + i)
  return out
}

/**
 * A wire of u32 BE frames: `answers` says which request a reply's body
 * (`size` bytes at `at`) answers, or why it answers none. One frame handler
 * per connection, not one per read: what it reports to is set at each read.
 */
const framedWire = (
  requests: Wire["requests"],
  answers: (buffer: Buffer, at: number, size: number) => number | string
): Wire => {
  const reader = new FrameReader()
  let onReply: (seq: number) => void = () => {}
  let onBad: (why: string) => void = () => {}
  let bad = false
  const onFrame = (buffer: Buffer, at: number, size: number): void => {
    if (bad) return
    const seq = answers(buffer, at, size)
    if (typeof seq === "number") return onReply(seq)
    bad = true
    onBad(seq)
  }
  return {
    ordered: true,
    requests,
    read: (chunk, reply, fail) => {
      onReply = reply
      onBad = fail
      reader.push(chunk, onFrame)
    }
  }
}

const wireOf = (speaks: Speaks, bodySize: number, conn: number): Wire => {
  switch (speaks) {
    case "bytes": {
      const frameBytes = HEADER_BYTES + bodySize
      return framedWire(
        (first, n) => {
          // From Node's pool (small batches), zeroed: `Buffer.alloc` makes an ArrayBuffer each time.
          const out = Buffer.allocUnsafe(n * frameBytes).fill(0)
          for (let i = 0, at = 0; i < n; i++) at = writeFrame(out, at, bodySize, first + i, conn)
          return out
        },
        (buffer, at, size) => {
          const seq = size >= 4 ? buffer.readUInt32BE(at) : -1
          const from = size >= 8 ? buffer.readUInt32BE(at + 4) : -1
          return size !== bodySize || (bodySize >= 8 && from !== conn)
            ? `a reply of ${size} bytes with seq ${seq} from connection ${from} (corrupt)`
            : seq
        }
      )
    }
    case "json":
      return framedWire(
        (first, n) => framesOfText(range(first, n, (seq) => jsonBody(seq, conn, bodySize))),
        (buffer, at, size) => {
          const text = buffer.toString("latin1", at, at + size)
          const seq = Number(/^\{"seq":(\d+),/.exec(text)?.[1] ?? -1)
          return seq < 0 || text !== jsonBody(seq, conn, bodySize)
            ? `a reply that is not the request's message: ${JSON.stringify(text.slice(0, 80))}`
            : seq
        }
      )
    case "rpc": {
      let rest = ""
      let bad = false
      return {
        ordered: false,
        requests: (first, n) => Buffer.from(range(first, n, (seq) => rpcRequest(seq, conn, bodySize)).join(""), "latin1"),
        read: (chunk, onReply, onBad) => {
          if (bad) return
          const lines = (rest + chunk.toString("latin1")).split("\n")
          rest = lines.pop()!
          for (const line of lines) {
            const seq = Number(/^\{"_tag":"Exit","requestId":"(\d+)"/.exec(line)?.[1] ?? -1)
            if (seq < 0 || line !== rpcReply(seq, conn, bodySize)) {
              bad = true
              return onBad(`a reply that is not Echo's success: ${JSON.stringify(line.slice(0, 120))}`)
            }
            onReply(seq)
          }
        }
      }
    }
  }
}

/**
 * Replies of one connection against its requests: in order when the wire is
 * ordered, otherwise each outstanding request answered once.
 */
class Outstanding {
  private next = 0
  private readonly open = new Set<number>()
  sent = 0
  constructor(readonly ordered: boolean) {}
  /** The next `n` requests on `wire`, in one buffer, counted as sent. */
  requests(wire: Wire, n: number): Buffer {
    const from = this.sent
    this.sent += n
    if (!this.ordered) for (let i = 0; i < n; i++) this.open.add(from + i)
    return wire.requests(from, n)
  }
  /** Why `seq` cannot be the next reply, or undefined when it can. */
  settle(seq: number): string | undefined {
    if (this.ordered) {
      if (seq !== this.next) return `reply ${this.next} came back as seq ${seq} (out of order, lost or duplicated)`
      this.next++
      return undefined
    }
    if (!this.open.delete(seq)) return `a reply to request ${seq}, which is not waiting for one (duplicated or unknown)`
    this.next++
    return undefined
  }
  get answered(): number {
    return this.next
  }
  get pending(): number {
    return this.sent - this.next
  }
}

/**
 * How connection `c` of a lane gives up: its failure reported, the socket
 * destroyed, the lane told; also when the socket fails or the server ends
 * it (after `done`, e.g. "12 replies").
 */
const failOn = (lane: Lane, socket: Net.Socket, c: number, done: () => string): (message: string) => void => {
  const fail = (message: string): void => {
    lane.errors.add(`connection ${c}: ${message}`)
    socket.destroy()
    lane.lose(c)
  }
  socket.on("error", (e) => fail(e.message))
  socket.on("end", () => fail(`server ended the connection after ${done()}`))
  return fail
}

/** A ping-pong connection: one request outstanding, the next sent on its reply. */
const pingpong = (job: JobOf<"pingpong">) => (lane: Lane, socket: Net.Socket, c: number): void => {
  const wire = wireOf(job.speaks, job.bodySize, c)
  const replies = new Outstanding(true)
  const send = (): void => {
    socket.write(replies.requests(wire, 1))
  }
  const fail = failOn(lane, socket, c, () => `${replies.answered} round trips`)
  const onReply = (seq: number): void => {
    const bad = replies.settle(seq)
    if (bad !== undefined) return fail(bad)
    if (replies.answered === 1) lane.first(c)
    lane.add(1)
    if (lane.isSending) send()
    else lane.rest(c, send)
  }
  socket.on("data", (chunk: Buffer) => wire.read(chunk, onReply, fail))
  lane.rest(c, send)
}

/** A pipeline connection: `depth` requests outstanding, as many sent as each read answered. */
const pipeline = (job: JobOf<"pipeline">) => (lane: Lane, socket: Net.Socket, c: number): void => {
  const wire = wireOf(job.speaks, job.bodySize, c)
  const replies = new Outstanding(wire.ordered)
  const send = (n: number): void => {
    socket.write(replies.requests(wire, n))
  }
  const start = (): void => send(job.depth)
  const fail = failOn(lane, socket, c, () => `${replies.answered} replies`)
  // What one read brought: replies counted, or why one was wrong.
  let got = 0
  let bad: string | undefined
  const onReply = (seq: number): void => {
    if (bad !== undefined) return
    bad = replies.settle(seq)
    if (bad === undefined) got++
  }
  const onBad = (why: string): void => {
    bad ??= why
  }
  socket.on("data", (chunk: Buffer) => {
    got = 0
    wire.read(chunk, onReply, onBad)
    if (bad !== undefined) return fail(bad)
    if (got > 0 && replies.answered === got) lane.first(c)
    lane.add(got)
    if (lane.isSending) {
      if (got > 0) send(got)
    } else if (replies.pending === 0) {
      // Every request sent was answered: none lost.
      lane.rest(c, start)
    }
  })
  lane.rest(c, start)
}

/**
 * Ping-pong or pipeline on each target, in turns when there are several
 * (`inTurns`); one result per target, in their order.
 */
const inTurnsOn = async (
  targets: ReadonlyArray<Target>,
  job: JobOf<"pingpong"> | JobOf<"pipeline">
): Promise<Array<JobResult>> => {
  const drive = job.kind === "pingpong" ? pingpong(job) : pipeline(job)
  const lanes: Array<Lane> = []
  for (const target of targets) lanes.push(await openLane(target, job.connections, drive))
  const measured = await inTurns(lanes, job)
  return lanes.map((lane, i) => {
    const { clientUs, count, cpuNs, seconds } = measured[i]!
    const shares = { serverCpuShare: cpuNs / 1e9 / seconds, clientCpuShare: clientUs / 1e6 / seconds }
    let peakRssMB = Number.NaN
    try {
      peakRssMB = readMemory(lane.target.pid).peakRss / 2 ** 20
    } catch (error) {
      lane.errors.add(`reading the server's memory: ${error instanceof Error ? error.message : String(error)}`)
    }
    const metrics = job.kind === "pingpong"
      ? {
        roundTripsPerSec: count / seconds,
        cpuUsPerRoundTrip: count > 0 ? cpuNs / 1e3 / count : Number.NaN,
        latencyUs: count > 0 ? (job.connections * seconds * 1e6) / count : Number.NaN,
        ...shares,
        peakRssMB
      }
      : {
        framesPerSec: count / seconds,
        cpuUsPerFrame: count > 0 ? cpuNs / 1e3 / count : Number.NaN,
        ...shares,
        peakRssMB
      }
    return result(job.kind, metrics, lane.errors, lane.cpu)
  })
}

// ---------------------------------------------------------------------------
// Connections: memory per idle connection, CPU to open and to close one
// ---------------------------------------------------------------------------

interface GcReading {
  readonly n: number
  readonly rss: number
  readonly heapUsed: number
}

const readGcFile = (file: string): GcReading | undefined => {
  try {
    return JSON.parse(Fs.readFileSync(file, "utf8")) as GcReading
  } catch {
    return undefined
  }
}

/**
 * Asks the server's GC hook (bench/gcHook.ts) for two full collections and
 * waits for its reading (polling its file, at most 5 s): the server's memory
 * with no garbage in it.
 */
const collected = async (pid: number, file: string): Promise<GcReading> => {
  const before = readGcFile(file)?.n ?? 0
  process.kill(pid, "SIGUSR2")
  const deadline = now() + 5_000
  while (now() < deadline) {
    const reading = readGcFile(file)
    if (reading !== undefined && reading.n > before) return reading
    await sleep(2)
  }
  throw new Error(`the server's GC hook did not answer within 5 s (${file}): was it started with --expose-gc --import gcHook.js?`)
}

const connections = async (target: Target, job: JobOf<"connections">, _errors: Errors, cpu: Cpu) => {
  // Open, and prove the server serves the connection with one round trip in what it speaks.
  const open = async (): Promise<Net.Socket> => {
    const socket = await connect(target)
    const wire = wireOf(job.speaks, 64, 0)
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject)
      const onData = (chunk: Buffer): void =>
        wire.read(chunk, (seq) => {
          socket.off("data", onData)
          socket.off("error", reject)
          if (seq !== 0) reject(new Error(`the probe came back as seq ${seq}`))
          else resolve()
        }, (why) => reject(new Error(why)))
      socket.on("data", onData)
      socket.write(wire.requests(0, 1))
    })
    socket.on("error", () => {})
    return socket
  }
  const close = (socket: Net.Socket): Promise<void> => {
    socket.end()
    return closed(socket)
  }
  const run = <A>(what: string, promise: Promise<A>): Promise<A> => withTimeout(promise, job.timeoutMs, () => what)

  /** RSS and V8 heap in use: after two full collections with the GC hook, else the median of three RSS readings. */
  const memory = async (): Promise<{ rss: number; heap: number }> => {
    if (job.gcFile !== undefined) {
      const reading = await collected(target.pid, job.gcFile)
      return { rss: reading.rss, heap: reading.heapUsed }
    }
    const readings: Array<number> = []
    for (let i = 0; i < 3; i++) {
      readings.push(readMemory(target.pid).rss)
      await sleep(30)
    }
    return { rss: readings.sort((a, b) => a - b)[1]!, heap: Number.NaN }
  }

  const warm = await run("warm-up connections", pool(job.warmup, job.concurrency, open))
  await run("closing the warm-up connections", Promise.all(warm.map(close)))
  await sleep(job.settleMs)
  // Held connections grow the server's memory in steps of a quarter; the memory per connection is
  // the median step, which one stray reading cannot move (without the GC hook, a collection can
  // shrink RSS by more than a quarter's growth at any moment).
  const n = job.connections
  const quarters = 4
  const levels = [await memory()]
  const cpu0 = cpu.sample()
  const held: Array<Net.Socket> = []
  let gcNs = 0
  let gcMainNs = 0
  for (let q = 1; q <= quarters; q++) {
    const batch = Math.round((n * q) / quarters) - held.length
    held.push(...await run(`opening ${n} connections`, pool(batch, job.concurrency, open)))
    await sleep(job.settleMs / 2)
    // The collections the hook runs are not the connections' cost: their CPU is taken out.
    const g0 = cpu.sample()
    levels.push(await memory())
    const g1 = cpu.sample()
    gcNs += cpu.since(g0, g1)
    gcMainNs += cpu.mainSince(g0, g1)
  }
  await sleep(job.settleMs / 2)
  const cpu1 = cpu.sample()
  await run(`closing ${n} connections`, Promise.all(held.map(close)))
  await sleep(job.settleMs)
  const cpu2 = cpu.sample()
  const openUs = (cpu.since(cpu0, cpu1) - gcNs) / 1e3 / n
  const closeUs = cpu.since(cpu1, cpu2) / 1e3 / n
  // The same on the main thread alone: the rest is V8's background threads, which early in a
  // process's life are mostly its optimizing compilers still compiling the connection's code.
  const openCloseMainUs = (cpu.mainSince(cpu0, cpu2) - gcMainNs) / 1e3 / n

  // Steady state: open, prove and close, over and over; measured once as many have run unmeasured.
  const cycle = async (): Promise<void> => close(await open())
  await run("churn warm-up connections", pool(job.churnWarmup, job.concurrency, cycle))
  await sleep(job.settleMs)
  const cpu3 = cpu.sample()
  await run(`opening and closing ${job.churn} connections`, pool(job.churn, job.concurrency, cycle))
  await sleep(job.settleMs)
  const churnUs = cpu.since(cpu3) / 1e3 / job.churn
  const perConnection = (key: "rss" | "heap") => {
    const steps = levels.slice(1).map((level, q) => level[key] - levels[q]![key]).sort((a, b) => a - b)
    return (steps[(quarters - 1) >> 1]! + steps[quarters >> 1]!) / 2 / 1024 / (n / quarters)
  }
  return {
    idleKiBPerConnection: perConnection("rss"),
    // The whole growth over all connections, to compare with the median step.
    idleKiBPerConnectionOverall: (levels[quarters]!.rss - levels[0]!.rss) / 1024 / n,
    heapKiBPerConnection: perConnection("heap"),
    openUs,
    closeUs,
    openCloseUs: openUs + closeUs,
    ...(Number.isFinite(openCloseMainUs) ? { openCloseMainUs } : {}),
    churnUs,
    rssBeforeMB: levels[0]!.rss / 2 ** 20,
    rssHeldMB: levels[quarters]!.rss / 2 ** 20
  }
}

// ---------------------------------------------------------------------------
// Backpressure and drain
// ---------------------------------------------------------------------------

const flood = async (target: Target, job: JobOf<"flood">, errors: Errors) => {
  const socket = await connect(target)
  const wire = wireOf("bytes", job.bodySize, 0)
  const replies = new Outstanding(true)
  const rss0 = readMemory(target.pid).rss
  let peak = rss0
  const sampler = setInterval(() => {
    peak = Math.max(peak, readMemory(target.pid).rss)
  }, 10)
  let stalled = 0
  const t0 = now()
  // A server that gives up on the connection fails the job, whenever it does.
  let failed: Error | undefined
  socket.on("error", (e) => (failed ??= e))
  try {
    // Not reading: the replies pile up in the kernel, then wherever the server keeps them.
    socket.pause()
    const deadline = t0 + job.durationMs
    while (now() < deadline && failed === undefined) {
      if (!socket.write(replies.requests(wire, 64))) {
        const t = now()
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - now()))
          socket.once("drain", () => {
            clearTimeout(timer)
            resolve()
          })
        })
        stalled += now() - t
      }
    }
    peak = Math.max(peak, readMemory(target.pid).rss)
    if (failed !== undefined) throw new Error(`${failed.message} while flooding, after ${replies.sent} requests`)
    const sent = replies.sent
    // Now read every reply: all of them, in order.
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.on("error", reject)
        socket.on("end", () => reject(new Error(`the server ended the connection after ${replies.answered} of ${sent} replies`)))
        socket.on("data", (chunk: Buffer) =>
          wire.read(chunk, (seq) => {
            const bad = replies.settle(seq)
            if (bad !== undefined) return reject(new Error(bad))
            if (replies.answered === sent) resolve()
          }, (why) => reject(new Error(why)))
        )
        socket.resume()
      }),
      job.timeoutMs,
      () => `${replies.answered} of ${sent} replies after the flood`
    )
  } catch (error) {
    errors.add(error instanceof Error ? error.message : String(error))
  } finally {
    clearInterval(sampler)
    socket.destroy()
  }
  return {
    requests: replies.sent,
    acceptedMiB: (replies.sent * (HEADER_BYTES + job.bodySize)) / 2 ** 20,
    stalledShare: stalled / job.durationMs,
    serverRssGrowthMB: (peak - rss0) / 2 ** 20
  }
}

const drain = async (target: Target, job: JobOf<"drain">, errors: Errors) => {
  const socket = await connect(target)
  const wire = wireOf("bytes", job.bodySize, 0)
  const replies = new Outstanding(true)
  let signalled = false
  let afterSignal = 0
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.on("error", (e) => reject(new Error(`${e.message} after ${replies.answered} of ${job.requests} replies`)))
        socket.on("data", (chunk: Buffer) =>
          wire.read(chunk, (seq) => {
            const bad = replies.settle(seq)
            if (bad !== undefined) return reject(new Error(bad))
            if (signalled) afterSignal++
            else {
              // The server has read the requests (one write, one read): now it is told to stop.
              signalled = true
              process.kill(target.pid, "SIGTERM")
            }
          }, (why) => reject(new Error(why)))
        )
        socket.on("end", () =>
          replies.answered === job.requests
            ? resolve()
            : reject(new Error(`the server drained after ${replies.answered} of ${job.requests} replies: replies lost`))
        )
        socket.write(replies.requests(wire, job.requests))
      }),
      job.timeoutMs,
      () => `${replies.answered} of ${job.requests} replies, ${signalled ? "after" : "before"} SIGTERM`
    )
  } catch (error) {
    errors.add(error instanceof Error ? error.message : String(error))
  } finally {
    socket.destroy()
  }
  return { requests: job.requests, replies: replies.answered, repliesAfterSignal: afterSignal }
}

// ---------------------------------------------------------------------------
// Ordering probe: mixed sizes, pipelined, written in random splits
// ---------------------------------------------------------------------------

/** 0 to 16 B, to 1 KiB, to 64 KiB, to `max`: the sizes where framing code has its edge cases. */
const frameSize = (random: () => number, max: number): number => {
  const r = random()
  const pick = (lo: number, hi: number): number => Math.min(max, lo + Math.floor(random() * (hi - lo + 1)))
  return r < 0.3 ? pick(0, 16) : r < 0.7 ? pick(17, 1024) : r < 0.93 ? pick(1025, 65536) : pick(65537, max)
}

const ordering = async (target: Target, job: JobOf<"ordering">, errors: Errors) => {
  const one = async (c: number): Promise<{ bytes: number; frames: number }> => {
    const random = prng(job.seed + c)
    const sizes = Array.from({ length: job.framesPerConnection }, () => frameSize(random, job.maxFrameSize))
    const offsets: Array<number> = []
    let total = 0
    for (const size of sizes) {
      offsets.push(total)
      total += HEADER_BYTES + size
    }
    const sent = Crypto.randomFillSync(Buffer.allocUnsafe(total))
    // Random bodies, stamped with their sequence number and connection where they have room.
    sizes.forEach((size, i) => writeFrame(sent, offsets[i]!, size, i, c))
    const frameAt = (offset: number): number => {
      let lo = 0
      let hi = offsets.length - 1
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1
        if (offsets[mid]! <= offset) lo = mid
        else hi = mid - 1
      }
      return lo
    }
    const describe = (offset: number): string => {
      const i = frameAt(offset)
      return `frame #${i} (${sizes[i]} B body, ${offset - offsets[i]! < HEADER_BYTES ? "in its header" : `body byte ${offset - offsets[i]! - HEADER_BYTES}`})`
    }

    const socket = await connect(target)
    let received = 0
    const done = new Promise<void>((resolve, reject) => {
      socket.on("error", reject)
      socket.on("data", (chunk: Buffer) => {
        if (received + chunk.length > total) {
          return reject(new Error(`connection ${c}: ${received + chunk.length} bytes came back, only ${total} sent`))
        }
        if (chunk.compare(sent, received, received + chunk.length) !== 0) {
          let i = 0
          while (chunk[i] === sent[received + i]) i++
          const offset = received + i
          const i0 = frameAt(offset)
          const start = offsets[i0]!
          // When the bad byte lies in a header we can read which frame arrived in its place.
          const seen = start >= received && start + 8 <= received + chunk.length
            ? `; a frame of ${chunk.readUInt32BE(start - received)} B with seq ${
              chunk.readUInt32BE(start - received + 4)
            } came in its place`
            : ""
          return reject(new Error(`connection ${c}: frames out of order or corrupt at ${describe(offset)}${seen}`))
        }
        received += chunk.length
      })
      socket.on("end", () => {
        if (received === total) resolve()
        else {
          reject(
            new Error(
              `connection ${c}: the echo ended after ${received} of ${total} bytes, inside ${describe(received)}`
            )
          )
        }
      })
    })
    const write = async (): Promise<void> => {
      let at = 0
      while (at < total) {
        const n = Math.min(total - at, Math.max(1, Math.floor(Math.exp(random() * Math.log(65536)))))
        const ok = socket.write(sent.subarray(at, at + n))
        at += n
        if (!ok) await new Promise<void>((resolve) => socket.once("drain", resolve))
      }
      socket.end()
    }
    try {
      await withTimeout(Promise.all([done, write()]), job.timeoutMs, () =>
        `connection ${c}: ${received} of ${total} bytes came back, next ${describe(received)}`)
    } finally {
      socket.destroy()
    }
    return { bytes: total, frames: sizes.length }
  }
  const t0 = now()
  const results = await Promise.allSettled(Array.from({ length: job.connections }, (_, c) => one(c)))
  let frames = 0
  let bytes = 0
  for (const r of results) {
    if (r.status === "fulfilled") {
      frames += r.value.frames
      bytes += r.value.bytes
    } else errors.add((r.reason as Error).message ?? String(r.reason))
  }
  return { frames, mib: bytes / 2 ** 20, seconds: (now() - t0) / 1000 }
}

// ---------------------------------------------------------------------------

/** A job's result: its metrics rounded, its errors, where its CPU figures came from. */
const result = (kind: Job["kind"], metrics: Record<string, number>, errors: Errors, cpu: Cpu): JobResult => {
  const rounded: Record<string, number> = {}
  for (const [key, value] of Object.entries(metrics)) rounded[key] = round(value)
  return { kind, metrics: rounded, errors: errors.list, cpuSource: cpu.source }
}

const run = async (target: Target, job: Job): Promise<JobResult> => {
  if (job.kind === "pingpong" || job.kind === "pipeline") return (await inTurnsOn([target], job))[0]!
  const errors = new Errors()
  const cpu = new Cpu(target.pid)
  let metrics: Record<string, number> = {}
  try {
    switch (job.kind) {
      case "stream":
        metrics = await stream(target, job, errors, cpu)
        break
      case "connections":
        metrics = await connections(target, job, errors, cpu)
        break
      case "ordering":
        metrics = await ordering(target, job, errors)
        break
      case "flood":
        metrics = await flood(target, job, errors)
        break
      case "drain":
        metrics = await drain(target, job, errors)
        break
    }
  } catch (error) {
    errors.add(error instanceof Error ? error.message : String(error))
  }
  return result(job.kind, metrics, errors, cpu)
}

const USAGE = "usage: load.js '{\"target\":{host,port,pid},\"job\":{kind,…}[,\"reportEveryMs\":10000]}'\n" +
  "       load.js '{\"targets\":[{host,port,pid},…],\"job\":{\"kind\":\"pingpong\"|\"pipeline\",…}}' (in turns)\n"

const main = async (): Promise<void> => {
  const input = JSON.parse(process.argv[2] ?? "null") as
    | { target?: Target; targets?: ReadonlyArray<Target>; job: Job; reportEveryMs?: number }
    | null
  const job = input?.job
  const several = input?.targets !== undefined && job !== undefined && (job.kind === "pingpong" || job.kind === "pipeline")
  if (input === null || job === undefined || (input.target === undefined && !several)) {
    process.stderr.write(USAGE)
    process.exit(2)
  }
  const progress = reportProgress(job.kind, input.reportEveryMs ?? 10_000)
  const output = several
    ? { results: await inTurnsOn(input.targets!, job as JobOf<"pingpong"> | JobOf<"pipeline">) }
    : await run(input.target!, job)
  clearInterval(progress)
  process.stdout.write(`${JSON.stringify(output)}\n`, () => process.exit(0))
}

void main()
