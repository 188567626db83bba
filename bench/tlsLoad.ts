/**
 * The TLS load generator: one process on `node:tls` that runs one TLS job
 * against one server and prints its result as one JSON line, as
 * bench/load.ts does for plaintext:
 *
 *   node dist/bench/tlsLoad.js '{"target":{"host":"127.0.0.1","port":40123,"pid":4242},"ca":"/tmp/…/ca.pem","job":{"kind":"stream",…}}'
 *
 * - `stream`: connections each send `bytesPerConnection` in `writeSize`
 *   writes and read every byte back (checked against what was sent);
 * - `pingpong`: connections each keep one 64 B length-prefixed frame in
 *   flight; every reply checked, counted over a fixed window after a warm-up;
 * - `handshakes`: `count` fresh connections, `concurrency` at a time, each a
 *   full handshake (no session resumption: Node's client resumes only when
 *   handed a session) proven by a 1-byte round trip, then closed.
 *
 * Every client checks the server's certificate against `ca` for
 * `localhost`, as a real client would. Server CPU is read from /proc at the
 * edges of each measured window. While the job runs it reports its progress
 * on stderr every 10 s, as load.ts does (`"reportEveryMs"` to change that).
 */
import * as Fs from "node:fs"
import * as NodeTls from "node:tls"
import {
  cpuDeltaNs,
  type CpuSample,
  type Job,
  readCpu,
  readMemory,
  reportProgress,
  streamEcho,
  type Target,
  trackProgress,
  withTimeout
} from "./common.js"

/** A job of the TLS bench. */
export type TlsJob =
  // The plaintext bench's stream echo job, over TLS.
  | Extract<Job, { readonly kind: "stream" }>
  | {
    readonly kind: "pingpong"
    readonly connections: number
    readonly bodySize: number
    readonly warmupMs: number
    readonly durationMs: number
  }
  | {
    readonly kind: "handshakes"
    readonly count: number
    readonly concurrency: number
    readonly warmup: number
    readonly timeoutMs: number
  }

/** What the load generator answers: metrics, and every correctness failure. */
export interface TlsJobResult {
  readonly metrics: Record<string, number>
  readonly errors: ReadonlyArray<string>
  readonly cpuSource: string
}

let cpuSource = "schedstat"
const serverCpuSince = (pid: number, before: CpuSample): number => {
  const delta = cpuDeltaNs(before, readCpu(pid))
  if (delta.source === "stat") cpuSource = "stat"
  return delta.ns
}


const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const connect = (target: Target, ca: Buffer): Promise<NodeTls.TLSSocket> =>
  new Promise((resolve, reject) => {
    const socket = NodeTls.connect({ host: target.host, port: target.port, ca, servername: "localhost" })
    socket.setNoDelay(true)
    socket.once("error", reject)
    socket.once("secureConnect", () => {
      socket.off("error", reject)
      trackProgress(socket)
      resolve(socket)
    })
  })

const stream = async (target: Target, ca: Buffer, job: Extract<TlsJob, { kind: "stream" }>, errors: Array<string>) => {
  const blocks = Array.from({ length: 16 }, (_, i) => Buffer.alloc(job.writeSize, (i * 31 + 7) & 255))
  const writes = Math.max(1, Math.floor(job.bytesPerConnection / job.writeSize))
  const total = writes * job.writeSize
  const sockets = await Promise.all(Array.from({ length: job.connections }, () => connect(target, ca)))
  const one = (socket: NodeTls.TLSSocket, c: number): Promise<void> =>
    streamEcho(socket, c, blocks, job.writeSize, writes, job.timeoutMs)
  const cpu0 = readCpu(target.pid)
  const t0 = performance.now()
  const outcome = await Promise.allSettled(sockets.map(one))
  const seconds = (performance.now() - t0) / 1000
  const cpuNs = serverCpuSince(target.pid, cpu0)
  for (const o of outcome) if (o.status === "rejected") errors.push(String((o.reason as Error).message ?? o.reason))
  for (const socket of sockets) socket.destroy()
  const bytes = total * job.connections
  return {
    mibPerSec: bytes / 2 ** 20 / seconds,
    cpuMsPerGiB: cpuNs / 1e6 / (bytes / 2 ** 30),
    serverCpuShare: cpuNs / 1e9 / seconds,
    peakRssMB: readMemory(target.pid).peakRss / 2 ** 20
  }
}

const pingpong = async (target: Target, ca: Buffer, job: Extract<TlsJob, { kind: "pingpong" }>, errors: Array<string>) => {
  const sockets = await Promise.all(Array.from({ length: job.connections }, () => connect(target, ca)))
  let phase: "warmup" | "measure" | "stop" = "warmup"
  let count = 0
  const one = (socket: NodeTls.TLSSocket, c: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const frame = Buffer.alloc(4 + job.bodySize, c & 255)
      frame.writeUInt32BE(job.bodySize, 0)
      let seq = 0
      let got = 0
      const send = (): void => {
        frame.writeUInt32BE(seq++, 4)
        socket.write(Buffer.from(frame))
      }
      const fail = (message: string): void => {
        errors.push(`connection ${c}: ${message}`)
        socket.destroy()
        resolve()
      }
      socket.on("error", (e) => fail(e.message))
      socket.on("end", () => fail(`server ended the connection after ${seq - 1} round trips`))
      socket.on("data", (chunk: Buffer) => {
        // One reply in flight: the bytes that came back must be a prefix of the frame.
        if (chunk.compare(frame, got, got + chunk.length) !== 0 || got + chunk.length > frame.length) {
          return fail(`reply ${seq - 1} differs from its request`)
        }
        got += chunk.length
        if (got < frame.length) return
        got = 0
        if (phase === "measure") count++
        if (phase === "stop") {
          socket.removeAllListeners("end")
          resolve()
        } else send()
      })
      send()
    })
  const finished = Promise.all(sockets.map(one))
  await sleep(job.warmupMs)
  const cpu0 = readCpu(target.pid)
  const t0 = performance.now()
  phase = "measure"
  await sleep(job.durationMs)
  phase = "stop"
  const measured = count
  const seconds = (performance.now() - t0) / 1000
  const cpuNs = serverCpuSince(target.pid, cpu0)
  await withTimeout(finished, 10_000, () => "ping-pong replies after the window").catch((e) => errors.push(e.message))
  for (const socket of sockets) socket.destroy()
  return {
    roundTripsPerSec: measured / seconds,
    cpuUsPerRoundTrip: measured > 0 ? cpuNs / 1e3 / measured : Number.NaN,
    serverCpuShare: cpuNs / 1e9 / seconds
  }
}

/** One full handshake, proven by a 1-byte round trip (the server finished it and its handler runs). */
const handshake = async (target: Target, ca: Buffer): Promise<void> => {
  const socket = await connect(target, ca)
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject)
      socket.once("end", () => reject(new Error("the server ended the connection before echoing")))
      socket.once("data", () => resolve())
      socket.write("x")
    })
  } finally {
    socket.destroy()
  }
}

const pool = async (count: number, concurrency: number, task: () => Promise<void>): Promise<void> => {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++
      await task()
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

const handshakes = async (target: Target, ca: Buffer, job: Extract<TlsJob, { kind: "handshakes" }>) => {
  await pool(job.warmup, job.concurrency, () => handshake(target, ca))
  const cpu0 = readCpu(target.pid)
  const t0 = performance.now()
  await withTimeout(pool(job.count, job.concurrency, () => handshake(target, ca)), job.timeoutMs, () => "handshakes")
  const seconds = (performance.now() - t0) / 1000
  const cpuNs = serverCpuSince(target.pid, cpu0)
  return {
    handshakesPerSec: job.count / seconds,
    cpuUsPerHandshake: cpuNs / 1e3 / job.count,
    serverCpuShare: cpuNs / 1e9 / seconds
  }
}

const main = async (): Promise<void> => {
  const input = JSON.parse(process.argv[2] ?? "{}") as { target: Target; ca: string; job: TlsJob; reportEveryMs?: number }
  const ca = Fs.readFileSync(input.ca)
  const progress = reportProgress(input.job.kind, input.reportEveryMs ?? 10_000)
  const errors: Array<string> = []
  let metrics: Record<string, number> = {}
  try {
    const job = input.job
    metrics = job.kind === "stream"
      ? await stream(input.target, ca, job, errors)
      : job.kind === "pingpong"
      ? await pingpong(input.target, ca, job, errors)
      : await handshakes(input.target, ca, job)
  } catch (error) {
    errors.push(error instanceof Error ? error.message : String(error))
  }
  clearInterval(progress)
  const result: TlsJobResult = { metrics, errors: errors.slice(0, 10), cpuSource }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

void main()
