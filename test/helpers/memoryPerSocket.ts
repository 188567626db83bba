import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import * as Address from "../../src/Address.js"
import * as Socket from "../../src/Socket.js"
const N = 2000
const gc = (globalThis as any).gc as () => void
const heap = () => { gc(); gc(); return process.memoryUsage().heapUsed }
const rawRun = () => new Promise<number>((resolve) => {
  const server = Net.createServer({ pauseOnConnect: true })
  const kept: Array<Net.Socket> = []
  server.on("connection", (s) => { kept.push(s) })
  server.listen(0, "127.0.0.1", async () => {
    const port = (server.address() as Net.AddressInfo).port
    const before = heap()
    for (let i = 0; i < N; i++) {
      await new Promise<void>((r) => { const c = Net.connect(port, "127.0.0.1", () => { c.pause(); kept.push(c); r() }) })
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
  const kept: Array<Socket.Socket> = []
  yield* listener.accept.pipe(Stream.runForEach((s) => Effect.sync(() => kept.push(s))), Effect.forkScoped)
  const before = heap()
  const clients: Array<Socket.Socket> = []
  for (let i = 0; i < N; i++) clients.push(yield* Socket.connect(listener.address))
  while (kept.length < N) yield* Effect.sleep(10)
  const after = heap()
  return (after - before) / (2 * N)
}))
const raw = await rawRun()
const o = await Effect.runPromise(ours)
console.log(`heap per socket: raw node ${raw.toFixed(0)} B, ours ${o.toFixed(0)} B (extra ${(o - raw).toFixed(0)} B)`)
process.exit(0)
