/**
 * JS heap per idle connection: N idle connections (both ends in this process)
 * with raw node:net sockets, then with Socket.connect/listen, measured after
 * forced GCs. Native memory (libuv handles, kernel buffers) is not counted.
 *
 *   npx esbuild test/helpers/memoryPerSocket.ts --bundle --platform=node --format=esm --outfile=/tmp/memoryPerSocket.mjs
 *   node --expose-gc /tmp/memoryPerSocket.mjs [N=2000]
 *
 * Not a test: a measurement for the "small per-socket state" target.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import * as Address from "../../src/Address.js"
import * as Socket from "../../src/Socket.js"

const N = Number(process.argv[2] ?? 2000)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")
const heap = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const rawNode = () =>
  new Promise<number>((resolve) => {
    const server = Net.createServer({ pauseOnConnect: true })
    const kept: Array<Net.Socket> = []
    server.on("connection", (s) => kept.push(s))
    server.listen(0, "127.0.0.1", async () => {
      const port = (server.address() as Net.AddressInfo).port
      const before = heap()
      for (let i = 0; i < N; i++) {
        await new Promise<void>((r) => {
          const c = Net.connect(port, "127.0.0.1", () => {
            c.pause()
            kept.push(c)
            r()
          })
        })
      }
      while (kept.length < 2 * N) await new Promise((r) => setTimeout(r, 10))
      const after = heap()
      for (const s of kept) s.destroy()
      server.close()
      resolve((after - before) / (2 * N))
    })
  })

const ours = Effect.scoped(Effect.gen(function*() {
  const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
  const accepted: Array<Socket.Socket> = []
  yield* listener.accept.pipe(Stream.runForEach((s) => Effect.sync(() => accepted.push(s))), Effect.forkScoped)
  const before = heap()
  const clients: Array<Socket.Socket> = []
  for (let i = 0; i < N; i++) clients.push(yield* Socket.connect(listener.address))
  while (accepted.length < N) yield* Effect.sleep(10)
  const after = heap()
  return (after - before) / (2 * N)
}))

const raw = await rawNode()
const wrapped = await Effect.runPromise(ours)
console.log(
  `JS heap per idle socket (${2 * N} sockets): node:net ${raw.toFixed(0)} B, Socket ${wrapped.toFixed(0)} B ` +
    `(our share ${(wrapped - raw).toFixed(0)} B)`
)
process.exit(0)
