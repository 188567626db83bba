/**
 * A real Prometheus (Debian's package, installed by .ci/run) scrapes a
 * running `effect-wire serve echo --metrics 127.0.0.1:0` while a client
 * exchanges known traffic; the counters are read back through Prometheus'
 * own query API, the byte counts exact.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, assert, describe, it } from "vitest"
import { dist, startCli, type Started } from "./helpers/cliBuild.js"

const prometheusBinary = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v prometheus"], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
})()

/** A port free a moment ago (Prometheus cannot be told port 0); the caller retries if it was taken since. */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** Send `size` bytes, read as many back, close. */
const exchange = (port: number, size: number) =>
  new Promise<number>((resolve, reject) => {
    let received = 0
    const socket = Net.connect({ host: "127.0.0.1", port }, () => socket.end(Buffer.alloc(size, 7)))
    socket.on("data", (chunk) => void (received += chunk.length))
    socket.on("error", reject)
    socket.on("close", () => resolve(received))
  })

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup()
})

interface Running {
  readonly child: ChildProcess
  readonly port: number
  readonly stderr: () => string
}

/** Start Prometheus on a free port scraping `target` every 250 ms; a taken port is retried (at most 5 times). */
const startPrometheus = async (binary: string, target: string): Promise<Running> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "wire-prometheus-"))
  cleanups.push(() => Fs.rmSync(dir, { recursive: true, force: true }))
  const config = Path.join(dir, "prometheus.yml")
  Fs.writeFileSync(
    config,
    [
      "global:",
      "  scrape_interval: 250ms",
      "  scrape_timeout: 200ms",
      "scrape_configs:",
      "  - job_name: effect-wire",
      "    static_configs:",
      `      - targets: ["${target}"]`,
      ""
    ].join("\n")
  )
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const child = spawn(binary, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${Path.join(dir, `data${attempt}`)}`,
      `--web.listen-address=127.0.0.1:${port}`
    ], { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (d: string) => void (stderr += d))
    // By its own handle (its PID), never by name.
    cleanups.push(() => void child.kill("SIGKILL"))
    const ready = await new Promise<boolean>((resolve) => {
      const deadline = Date.now() + 20_000
      const poll = async () => {
        if (child.exitCode !== null) return resolve(false)
        try {
          const res = await fetch(`http://127.0.0.1:${port}/-/ready`)
          if (res.ok) return resolve(true)
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) return resolve(false)
        setTimeout(poll, 100)
      }
      void poll()
    })
    if (ready) return { child, port, stderr: () => stderr }
    child.kill("SIGKILL")
    if (!/address already in use/.test(stderr)) throw new Error(`prometheus did not start:\n${stderr}`)
  }
  throw new Error("prometheus: no free port in 5 attempts")
}

/** One instant query's samples, as label sets with their values. */
const query = async (port: number, promql: string) => {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`)
  const body = await res.json() as {
    status: string
    data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> }
  }
  assert.strictEqual(body.status, "success")
  return body.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }))
}

/** Polls a query until `check` holds (every 200 ms, at most 30 s); returns the last samples. */
const until = async (port: number, promql: string, check: (values: Array<number>) => boolean) => {
  const deadline = Date.now() + 30_000
  for (;;) {
    const samples = await query(port, promql)
    if (check(samples.map((s) => s.value))) return samples
    if (Date.now() > deadline) {
      throw new Error(`${promql}: still ${JSON.stringify(samples)} after 30 s`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

describe("serve --metrics, checked", () => {
  it("a value that is no address is one line on stderr and a non-zero exit", async () => {
    const bad = await startCli(dist, ["serve", "echo", "--port", "0", "--metrics", "somewhere:port"]).exit
    assert.notStrictEqual(bad.code, 0)
    assert.match(bad.stderr.trim(), /^error: --metrics somewhere:port: .*give HOST:PORT, a PORT on 127\.0\.0\.1, or off\)$/)
    assert.notInclude(bad.stderr.trim(), "\n")
  })
})

describe.skipIf(prometheusBinary === undefined)("a real Prometheus scraping serve echo --metrics", () => {
  it("reads connections and exact byte counts back through /api/v1/query", async () => {
    const server: Started = startCli(dist, ["serve", "echo", "--port", "0", "--metrics", "127.0.0.1:0"], {
      timeoutMs: 90_000
    })
    cleanups.push(() => server.signal("SIGKILL"))
    const metricsLine = await server.waitFor(/^metrics http:\/\//)
    const listening = await server.waitFor(/^listening tcp /)
    const target = metricsLine.replace(/^metrics http:\/\/(.*)\/metrics$/, "$1")
    const echoPort = Number(listening.split(":").pop())

    const sizes = [1, 1000, 65_536, 123_457]
    for (const size of sizes) assert.strictEqual(await exchange(echoPort, size), size)
    const total = sizes.reduce((a, b) => a + b, 0)

    const prometheus = await startPrometheus(prometheusBinary!, target)
    const labels = `server_port="${echoPort}"`
    const received = await until(
      prometheus.port,
      `effect_wire_server_io{${labels},network_io_direction="receive"}`,
      (v) => v.length === 1 && v[0] === total
    )
    assert.strictEqual(received[0]!.labels.network_transport, "tcp")
    assert.strictEqual(received[0]!.labels.server_address, "127.0.0.1")
    assert.strictEqual(received[0]!.labels.job, "effect-wire")
    await until(
      prometheus.port,
      `effect_wire_server_io{${labels},network_io_direction="transmit"}`,
      (v) => v.length === 1 && v[0] === total
    )
    await until(
      prometheus.port,
      `effect_wire_server_connection_closed{${labels},effect_wire_outcome="completed"}`,
      (v) => v.length === 1 && v[0] === sizes.length
    )
    await until(prometheus.port, `effect_wire_server_active_connections{${labels}}`, (v) => v.length === 1 && v[0] === 0)
    // The duration histogram, as PromQL reads one.
    await until(
      prometheus.port,
      `effect_wire_server_connection_duration_count{${labels}}`,
      (v) => v.length === 1 && v[0] === sizes.length
    )
    // No series carries a peer's address or port.
    const all = await query(prometheus.port, `{__name__=~"effect_wire_.*"}`)
    assert.isAbove(all.length, 5)
    for (const sample of all) {
      for (const key of Object.keys(sample.labels)) assert.notMatch(key, /peer|client/)
    }

    server.signal("SIGTERM")
    const exit = await server.exit
    assert.strictEqual(exit.code, 0, exit.stderr)
  }, 120_000)
})
