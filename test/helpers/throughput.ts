/**
 * Echo throughput over loopback: an echo server built on Socket
 * (`Stream.run(socket.reads, socket.writes)`) against raw node:net
 * (`socket.pipe(socket)`). Both servers run in this process; the same plain
 * node:net client runs in a child process, so the CPU time measured here is
 * the server's alone.
 *
 *   npx esbuild test/helpers/throughput.ts --bundle --platform=node --format=esm --outfile=/tmp/throughput.mjs
 *   node /tmp/throughput.mjs [connections=4] [MiB per connection=64] [rounds=3]
 *
 * (Bundled first: vitest 5 no longer brings vite-node, and Node cannot run
 * our `.js`-suffixed imports of `.ts` files on its own.)
 *
 * ONLY=raw or ONLY=ours runs one of the two (e.g. under `node --cpu-prof`).
 * The rounds alternate, so a busy neighbour hurts both sides alike; the report
 * gives the median and the best round.
 *
 * Not a test: a quick measurement to compare the two servers.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { execFile } from "node:child_process"
import * as Net from "node:net"
import * as Address from "../../src/Address.js"
import * as Socket from "../../src/Socket.js"

const connections = Number(process.argv[2] ?? 4)
const mib = Number(process.argv[3] ?? 64)
const rounds = Number(process.argv[4] ?? 3)

/** Connects `n` clients; each writes `mib` MiB (respecting drain) and waits until all came back. */
const clientSource = `
const net = require("node:net")
const [port, n, mib] = process.argv.slice(1).map(Number)
const total = mib * 1024 * 1024
const block = Buffer.alloc(64 * 1024, 7)
const one = () => new Promise((resolve, reject) => {
  const socket = net.connect({ port, host: "127.0.0.1" })
  let sent = 0, received = 0
  socket.on("error", reject)
  socket.on("data", (chunk) => { received += chunk.length; if (received === total) { socket.destroy(); resolve() } })
  const pump = () => { while (sent < total) { sent += block.length; if (!socket.write(block)) return socket.once("drain", pump) } }
  socket.once("connect", pump)
})
Promise.all(Array.from({ length: n }, one)).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
`

interface Result {
  /** MiB/s by wall clock. */
  readonly rate: number
  /** Server CPU ms (user + system) per 64 MiB echoed. */
  readonly cpu: number
}

const run = (port: number): Promise<Result> =>
  new Promise((resolve, reject) => {
    const start = performance.now()
    const cpu0 = process.cpuUsage()
    execFile(process.execPath, ["-e", clientSource, String(port), String(connections), String(mib)], (error) => {
      if (error) return reject(error)
      const cpu = process.cpuUsage(cpu0)
      const seconds = (performance.now() - start) / 1000
      resolve({ rate: (connections * mib) / seconds, cpu: (cpu.user + cpu.system) / 1000 / (connections * mib / 64) })
    })
  })

const rawServer = (): Promise<Net.Server> =>
  new Promise((resolve) => {
    const server = Net.createServer((socket) => socket.pipe(socket))
    server.listen(0, "127.0.0.1", () => resolve(server))
  })

const main = Effect.scoped(Effect.gen(function*() {
  const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
  yield* listener.accept.pipe(
    Stream.runForEach((socket) =>
      Effect.forkChild(Effect.ensuring(Effect.ignore(Stream.run(socket.reads, socket.writes)), socket.close))
    ),
    Effect.forkScoped
  )
  const ourPort = (listener.address as Address.TcpAddress).port
  const raw = yield* Effect.promise(rawServer)
  const rawPort = (raw.address() as Net.AddressInfo).port
  const ours: Array<Result> = []
  const theirs: Array<Result> = []
  for (let i = 0; i < rounds; i++) {
    if (process.env.ONLY !== "ours") theirs.push(yield* Effect.promise(() => run(rawPort)))
    if (process.env.ONLY !== "raw") ours.push(yield* Effect.promise(() => run(ourPort)))
  }
  raw.close()
  // On a shared machine wall-clock rates are noisy: report the median and the best round.
  const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const line = (name: string, xs: Array<Result>) =>
    xs.length === 0 ? undefined : {
      name,
      rate: median(xs.map((x) => x.rate)),
      best: Math.max(...xs.map((x) => x.rate)),
      cpu: median(xs.map((x) => x.cpu))
    }
  console.log(`${connections} x ${mib} MiB echo over 127.0.0.1, ${rounds} rounds`)
  const lines = [line("node:net pipe", theirs), line("Socket stream", ours)]
  for (const l of lines) {
    if (l === undefined) continue
    console.log(
      `${l.name}: median ${l.rate.toFixed(0)} MiB/s, best ${l.best.toFixed(0)} MiB/s; ` +
        `server CPU ${l.cpu.toFixed(0)} ms per 64 MiB`
    )
  }
  const [raw_, ours_] = lines
  if (raw_ !== undefined && ours_ !== undefined) {
    console.log(`ratio Socket/pipe: ${(ours_.rate / raw_.rate).toFixed(2)} (median rate), ${(raw_.cpu / ours_.cpu).toFixed(2)} (CPU)`)
  }
}))

Effect.runPromise(main).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
