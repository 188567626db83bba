/**
 * Metrics across workers: `serve echo --workers 2 --metrics 127.0.0.1:0`
 * serves one Prometheus endpoint in the parent whose series are the sums over
 * the workers (checked against the exact connections and bytes sent, with
 * connections held on both workers), a worker killed with SIGKILL keeps its
 * counters in the total while its gauges leave it, and `--otlp` with workers
 * has each worker export its own series under its own
 * `service.instance.id` and `process.pid`. The merge itself (counters,
 * gauges, histograms bucket by bucket, frequencies, summaries, bigints, the
 * IPC encoding) is checked on its own.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Http from "node:http"
import * as Net from "node:net"
import { afterEach, assert, describe, it } from "vitest"
import { decodeSnapshot, encodeSnapshot, mergeSnapshots } from "../src/internal/workersMetrics.js"
import { dist, startCli, type Started } from "./helpers/cliBuild.js"
import { waitGone } from "./helpers/processes.js"

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup()
})

/** A client that keeps its connection: `send` writes bytes and waits for as many back, or for the connection's end. */
const holdClient = (port: number) =>
  new Promise<{ send: (size: number) => Promise<"echoed" | "closed">; close: () => Promise<void> }>((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let received = 0
    let closed = false
    const waiters = new Set<() => void>()
    socket.on("data", (chunk) => {
      received += chunk.length
      waiters.forEach((w) => w())
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      closed = true
      waiters.forEach((w) => w())
    })
    socket.once("connect", () =>
      resolve({
        send: (size) =>
          new Promise((done) => {
            const want = received + size
            const check = () => {
              if (received >= want) {
                waiters.delete(check)
                done("echoed")
              } else if (closed) {
                waiters.delete(check)
                done("closed")
              }
            }
            waiters.add(check)
            if (!closed) socket.write(Buffer.alloc(size, 7))
            check()
          }),
        close: () =>
          new Promise((done) => {
            if (closed) return done()
            socket.once("close", () => done())
            socket.end()
          })
      }))
    socket.once("error", reject)
  })

/** Send `size` bytes, read as many back, close. */
const exchange = async (port: number, size: number) => {
  const client = await holdClient(port)
  assert.strictEqual(await client.send(size), "echoed")
  await client.close()
}

/** One scrape: every sample as `name{labels}` → value. */
const scrape = async (url: string) => {
  const res = await fetch(url)
  assert.strictEqual(res.status, 200)
  const samples = new Map<string, number>()
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const i = line.lastIndexOf(" ")
    samples.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return samples
}

/** The value of the one sample named `name` whose labels include every one of `labels`. */
const value = (samples: Map<string, number>, name: string, labels: ReadonlyArray<string>) => {
  const found = [...samples].filter(([key]) =>
    (key === name || key.startsWith(`${name}{`)) && labels.every((l) => key.includes(l))
  )
  assert.isAtMost(found.length, 1, JSON.stringify(found))
  return found[0]?.[1]
}

/** Scrape until `check` holds (every 100 ms, at most 20 s). */
const until = async (url: string, what: string, check: (samples: Map<string, number>) => boolean) => {
  const deadline = Date.now() + 20_000
  for (;;) {
    const samples = await scrape(url)
    if (check(samples)) return samples
    if (Date.now() > deadline) {
      throw new Error(`${what}: not so after 20 s:\n${[...samples].filter(([k]) => k.includes("server")).join("\n")}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe("serve --workers 2 --metrics: one endpoint, the workers' sums", () => {
  it("counts the exact connections and bytes over both workers; a killed worker's counters stay, its gauges go", async () => {
    const server: Started = startCli(
      dist,
      ["serve", "echo", "--port", "0", "--workers", "2", "--metrics", "127.0.0.1:0"],
      { timeoutMs: 110_000 }
    )
    cleanups.push(() => server.signal("SIGKILL"))
    const url = (await server.waitFor(/^metrics http:\/\//)).replace(/^metrics /, "")
    const port = Number((await server.waitFor(/^listening tcp /)).split(":").pop())
    const serving = await server.waitFor(/2 worker\(s\) serving/, "stderr")
    const pids = /pid (\d+), (\d+)/.exec(serving)!.slice(1).map(Number)
    const labels = [`server_port="${port}"`]
    const io = (direction: string) => [...labels, `network_io_direction="${direction}"`]

    // 20 connections held open, each having echoed a known number of bytes.
    const n = 20
    const clients = await Promise.all(Array.from({ length: n }, () => holdClient(port)))
    const sizes = clients.map((_, i) => 1000 + 37 * i)
    const sent = sizes.reduce((a, b) => a + b, 0)
    for (const [i, client] of clients.entries()) assert.strictEqual(await client.send(sizes[i]!), "echoed")
    await until(url, "20 open, their bytes", (s) =>
      value(s, "effect_wire_server_connection_opened", labels) === n &&
      value(s, "effect_wire_server_active_connections", labels) === n &&
      value(s, "effect_wire_server_io", io("receive")) === sent &&
      value(s, "effect_wire_server_io", io("transmit")) === sent)

    // Worker 1 dies with its connections: which clients were its own shows the spread.
    process.kill(pids[0]!, "SIGKILL")
    assert.isTrue(await Effect.runPromise(waitGone(pids[0]!, 10_000)))
    const after = await Promise.all(clients.map((c) => c.send(1)))
    const survivors = after.filter((r) => r === "echoed").length
    assert.isAbove(survivors, 0, "every connection was on the killed worker")
    assert.isBelow(survivors, n, "no connection was on the killed worker")
    // Counters keep what the dead worker had counted; its open connections leave the gauge.
    await until(url, "after the kill", (s) =>
      value(s, "effect_wire_server_connection_opened", labels) === n &&
      value(s, "effect_wire_server_active_connections", labels) === survivors &&
      value(s, "effect_wire_server_io", io("receive")) === sent + survivors &&
      value(s, "effect_wire_server_io", io("transmit")) === sent + survivors)

    await Promise.all(clients.map((c) => c.close()))
    await until(url, "the survivors closed", (s) =>
      value(s, "effect_wire_server_connection_opened", labels) === n &&
      value(s, "effect_wire_server_active_connections", labels) === 0 &&
      value(s, "effect_wire_server_connection_closed", [...labels, `effect_wire_outcome="completed"`]) === survivors &&
      value(s, "effect_wire_server_connection_duration_count", labels) === survivors &&
      value(s, "effect_wire_server_connection_duration_bucket", [...labels, `le="+Inf"`]) === survivors)

    // The replacement serves, and its counts add to the kept ones.
    await server.waitFor(/worker 1 started again \(pid \d+\)/, "stderr")
    const more = [5, 500, 5000]
    for (const size of more) await exchange(port, size)
    const extra = more.reduce((a, b) => a + b, 0)
    const final = await until(url, "three more", (s) =>
      value(s, "effect_wire_server_connection_opened", labels) === n + more.length &&
      value(s, "effect_wire_server_connection_closed", [...labels, `effect_wire_outcome="completed"`]) ===
        survivors + more.length &&
      value(s, "effect_wire_server_io", io("receive")) === sent + survivors + extra &&
      value(s, "effect_wire_server_connection_duration_count", labels) === survivors + more.length)
    // Every histogram bucket is a count of the same observations: cumulative, at most the total.
    const buckets = [...final].filter(([k]) => k.startsWith("effect_wire_server_connection_duration_bucket{") && k.includes(labels[0]!))
    assert.isAbove(buckets.length, 5)
    let previous = 0
    for (const [, count] of buckets) {
      assert.isAtLeast(count, previous)
      previous = count
    }

    server.signal("SIGTERM")
    const exit = await server.exit
    assert.strictEqual(exit.code, 0, exit.stderr)
  }, 120_000)
})

interface OtlpKeyValue {
  readonly key: string
  readonly value: { readonly stringValue?: string; readonly intValue?: number | string }
}

describe("serve --workers 2 --otlp: each worker exports its own", () => {
  it("two resources, one per worker (service.instance.id, process.pid), whose counters add up to what was sent", async () => {
    const bodies: Array<{ resourceMetrics?: Array<unknown> }> = []
    const collector = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        if (req.url === "/v1/metrics") bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
      })
    })
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve))
    cleanups.push(() => void collector.close())
    const collectorUrl = `http://127.0.0.1:${(collector.address() as Net.AddressInfo).port}`
    const server = startCli(dist, ["serve", "echo", "--port", "0", "--workers", "2", "--otlp", collectorUrl], {
      timeoutMs: 60_000
    })
    cleanups.push(() => server.signal("SIGKILL"))
    const port = Number((await server.waitFor(/^listening tcp /)).split(":").pop())
    const serving = await server.waitFor(/2 worker\(s\) serving/, "stderr")
    const pids = /pid (\d+), (\d+)/.exec(serving)!.slice(1).map(Number)
    const n = 30
    for (let i = 0; i < n; i++) await exchange(port, 10)
    // SIGTERM: every worker drains and sends what it has as it ends.
    server.signal("SIGTERM")
    const exit = await server.exit
    assert.strictEqual(exit.code, 0, exit.stderr)

    // The latest export of each resource, by its instance id.
    const latest = new Map<string, { pid: number; opened: number }>()
    for (const body of bodies) {
      for (const rm of (body.resourceMetrics ?? []) as Array<any>) {
        const attributes = rm.resource.attributes as Array<OtlpKeyValue>
        const attr = (key: string) => attributes.find((a) => a.key === key)?.value
        const instance = attr("service.instance.id")?.stringValue
        assert.isDefined(instance, JSON.stringify(attributes))
        assert.strictEqual(attr("service.name")?.stringValue, "effect-wire")
        let opened = 0
        for (const sm of rm.scopeMetrics ?? []) {
          for (const m of sm.metrics ?? []) {
            if (m.name !== "effect_wire.server.connection.opened") continue
            for (const p of m.sum.dataPoints) opened += Number(p.asInt ?? p.asDouble ?? 0)
          }
        }
        latest.set(instance!, { pid: Number(attr("process.pid")?.intValue), opened })
      }
    }
    assert.strictEqual(latest.size, 2, JSON.stringify([...latest]))
    assert.deepStrictEqual([...latest.values()].map((r) => r.pid).sort(), [...pids].sort())
    const perWorker = [...latest.values()].map((r) => r.opened)
    assert.strictEqual(perWorker[0]! + perWorker[1]!, n)
    for (const opened of perWorker) assert.isAbove(opened, 0)
  }, 90_000)
})

describe("the merge of workers' snapshots", () => {
  const counter = (count: number | bigint, attributes = { a: "1" }): Metric.Metric.Snapshot => ({
    id: "c",
    type: "Counter",
    description: "a counter",
    attributes,
    state: { count, incremental: true }
  })
  const gauge = (value: number): Metric.Metric.Snapshot => ({
    id: "g",
    type: "Gauge",
    description: undefined,
    attributes: undefined,
    state: { value }
  })
  const histogram = (buckets: Array<[number, number]>, count: number, sum: number, min: number, max: number) => ({
    id: "h",
    type: "Histogram" as const,
    description: "h",
    attributes: { b: "x" },
    state: { buckets, count, sum, min, max }
  })

  it("sums counters and gauges, histograms bucket by bucket, frequencies key by key; a dead worker keeps its counts", () => {
    const one: Array<Metric.Metric.Snapshot> = [
      counter(3),
      counter(1, { a: "2" }),
      gauge(4),
      histogram([[0.1, 1], [1, 2], [Infinity, 3]], 3, 2.5, 0.05, 1.5),
      { id: "f", type: "Frequency", description: undefined, attributes: undefined, state: { occurrences: new Map([["x", 1], ["y", 2]]) } }
    ]
    const two: Array<Metric.Metric.Snapshot> = [
      counter(10),
      gauge(6),
      histogram([[0.1, 0], [1, 5], [Infinity, 5]], 5, 3, 0.2, 0.9),
      { id: "f", type: "Frequency", description: undefined, attributes: undefined, state: { occurrences: new Map([["y", 5]]) } }
    ]
    const merged = mergeSnapshots([{ snapshot: one, live: true }, { snapshot: two, live: false }])
    const find = (id: string, a?: string) =>
      merged.find((m) => m.id === id && (a === undefined || m.attributes?.["a"] === a))!
    assert.strictEqual((find("c", "1").state as Metric.CounterState<number>).count, 13)
    assert.strictEqual((find("c", "2").state as Metric.CounterState<number>).count, 1)
    // The dead one's gauge is no longer there: only the live one's.
    assert.strictEqual((find("g").state as Metric.GaugeState<number>).value, 4)
    assert.deepStrictEqual(find("h").state, { buckets: [[0.1, 1], [1, 7], [Infinity, 8]], count: 8, sum: 5.5, min: 0.05, max: 1.5 })
    assert.deepStrictEqual([...(find("f").state as Metric.FrequencyState).occurrences], [["x", 1], ["y", 7]])
    assert.strictEqual(merged.length, 5)
  })

  it("bigint counters stay bigint; summaries keep count and sum but no quantile of several processes", () => {
    const summary = (count: number, q: number): Metric.Metric.Snapshot => ({
      id: "s",
      type: "Summary",
      description: undefined,
      attributes: undefined,
      state: { quantiles: [[0.5, q]], count, sum: count * q, min: q, max: q }
    })
    const merged = mergeSnapshots([
      { snapshot: [counter(2n), summary(2, 1)], live: true },
      { snapshot: [counter(3n), summary(4, 3)], live: true }
    ])
    assert.strictEqual((merged[0]!.state as Metric.CounterState<bigint>).count, 5n)
    assert.deepStrictEqual(merged[1]!.state, { quantiles: [[0.5, undefined]], count: 6, sum: 14, min: 1, max: 3 })
    // One process alone keeps its quantiles.
    const alone = mergeSnapshots([{ snapshot: [summary(2, 1)], live: true }])
    assert.deepStrictEqual(alone[0]!.state, { quantiles: [[0.5, 1]], count: 2, sum: 2, min: 1, max: 1 })
  })

  it("the IPC encoding keeps bigints, infinities, maps and missing quantiles", () => {
    const snapshot: Array<Metric.Metric.Snapshot> = [
      counter(12345678901234567890n),
      histogram([[1, 0], [Infinity, 0]], 0, 0, Infinity, -Infinity),
      { id: "f", type: "Frequency", description: undefined, attributes: undefined, state: { occurrences: new Map([["x", 1]]) } },
      { id: "s", type: "Summary", description: undefined, attributes: undefined, state: { quantiles: [[0.5, undefined]], count: 0, sum: 0, min: NaN, max: NaN } }
    ]
    const wire = encodeSnapshot(snapshot)
    assert.isString(wire)
    // What node's IPC does to a message: JSON both ways.
    assert.deepStrictEqual(decodeSnapshot(JSON.parse(JSON.stringify(wire))), snapshot)
  })
})
