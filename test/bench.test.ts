/**
 * Keeps `npm run bench` from rotting: runs the built `--quick` (tiny sizes,
 * one repetition) and checks that it ran every workload each server speaks
 * on every server, found nothing wrong and judged every target; runs
 * `--before dist` (this build standing in for an earlier one) on two servers;
 * runs the opt-in reference servers (an Effect-sized heap, V8-tuned servers);
 * and checks that the load generator catches a server that swaps, repeats or
 * loses replies. Speed is never judged here; CI machines are too noisy.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"
import { fileURLToPath, pathToFileURL } from "node:url"
import { cpuDeltaNs, readCpu, rpcReply } from "../bench/common.js"
import { runsOn, type ServerId, type Workload } from "../bench/report.js"
import { certs } from "./helpers/certs.js"

const ROOT = fileURLToPath(new URL("..", import.meta.url))

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const run = (args: ReadonlyArray<string>, timeoutMs: number): Promise<Ran> =>
  new Promise((resolve, reject) => {
    // A process group of its own: on a timeout the bench's server processes go with it (killing only
    // the runner left them running).
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {
        child.kill("SIGKILL")
      }
      reject(new Error(`node ${args.join(" ")} still running after ${timeoutMs} ms\n${stderr}`))
    }, timeoutMs)
    child.on("error", reject)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

interface BenchJson {
  readonly correctness: { readonly ok: boolean; readonly failures: Array<string> }
  readonly tls: {
    readonly status: string
    readonly samples: Array<{ readonly workload: string; readonly server: string; readonly metrics: Record<string, number> }>
  } | null
  readonly servers: Array<{ readonly id: ServerId }>
  readonly samples: Array<
    { readonly workload: Workload; readonly server: string; readonly metrics: Record<string, number | null> }
  >
  readonly targets: Array<{
    readonly text: string
    readonly workload: string
    readonly server: string | null
    readonly metric: string | null
    readonly target: string
    readonly median: number | null
    readonly min: number | null
    readonly max: number | null
    readonly verdict: string
  }>
}

/** Runs the bench with `args` and `--json`, and returns its exit, output and JSON. */
const bench = async (args: ReadonlyArray<string>, timeoutMs: number): Promise<Ran & { readonly json: BenchJson }> => {
  const out = Path.join(Os.tmpdir(), `effect-wire-bench-${process.pid}-${Math.random().toString(36).slice(2)}.json`)
  try {
    const ran = await run(["dist/bench/run.js", ...args, "--json", out], timeoutMs)
    assert.isTrue(Fs.existsSync(out), `no JSON written:\n${ran.stdout}\n${ran.stderr}`)
    return { ...ran, json: JSON.parse(Fs.readFileSync(out, "utf8")) as BenchJson }
  } finally {
    Fs.rmSync(out, { force: true })
  }
}

/** Runs one job of the load generator against `port` (`pid` stands for the server's). */
const load = async (port: number, job: object, pid = process.pid) => {
  const ran = await run(["dist/bench/load.js", JSON.stringify({ target: { host: "127.0.0.1", port, pid }, job })], 30_000)
  assert.strictEqual(ran.code, 0, ran.stderr)
  return JSON.parse(ran.stdout) as { errors: Array<string>; metrics: Record<string, number> }
}

/** A server on 127.0.0.1:0 for the test's duration; a connection's error (the peer hung up) ends it quietly. */
const listen = async (handler: (socket: Net.Socket) => void): Promise<Net.Server & { readonly port: number }> => {
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
    // The load generator hangs up on a bad reply; these servers may still be writing.
    socket.on("error", () => socket.destroy())
    handler(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return Object.assign(server, { port: (server.address() as Net.AddressInfo).port })
}

/** A server's handler that takes 64 KiB from a connection and answers nothing. */
const takeThenStall = (socket: Net.Socket): void => {
  let taken = 0
  socket.on("data", (chunk: Buffer) => {
    taken += chunk.length
    if (taken >= 65536) socket.pause()
  })
}

/** A stream job against a `takeThenStall` server: both connections time out after 1 s. */
const STALLED_JOB = { kind: "stream", connections: 2, bytesPerConnection: 4 * 2 ** 20, writeSize: 65536, timeoutMs: 1_000 }

/** A progress report of `STALLED_JOB`: nothing read back on either connection. */
const STALLED = /^\d+\.\d s into stream: 2 connection\(s\) open, MiB read\/written: 0\.0\/\d+\.\d, 0\.0\/\d+\.\d$/

/**
 * Runs `STALLED_JOB` in a load generator (`script`, with `extra` input),
 * reporting every 200 ms; checks both connections timed out and returns the
 * reports.
 */
const stalledStream = async (script: string, target: object, extra: object = {}): Promise<Array<string>> => {
  const ran = await run([script, JSON.stringify({ target, ...extra, job: STALLED_JOB, reportEveryMs: 200 })], 30_000)
  assert.strictEqual(ran.code, 0, ran.stderr)
  const result = JSON.parse(ran.stdout) as { errors: Array<string> }
  assert.strictEqual(result.errors.length, 2, ran.stdout)
  for (const error of result.errors) assert.match(error, /^timed out after 1000 ms: connection \d got 0 of 4194304 bytes$/)
  const reports = ran.stderr.split("\n").filter((line) => / s into stream: /.test(line))
  assert.isAtLeast(reports.length, 3, ran.stderr)
  return reports
}

/** Cuts u32 BE frames (bodies) from a connection's reads. */
const frames = (socket: Net.Socket, onFrame: (body: Buffer) => void): void => {
  let pending = Buffer.alloc(0)
  socket.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk])
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      onFrame(pending.subarray(4, 4 + pending.readUInt32BE(0)))
      pending = pending.subarray(4 + pending.readUInt32BE(0))
    }
  })
}

const frame = (body: Buffer): Buffer => {
  const header = Buffer.alloc(4)
  header.writeUInt32BE(body.length)
  return Buffer.concat([header, body])
}

beforeAll(() => {
  // test/globalSetup.ts builds dist/ once for every test that runs built code (building here
  // too would rewrite files other test files are running).
  assert.isTrue(
    Fs.existsSync(Path.join(ROOT, "dist", "bench", "run.js")),
    "dist/bench/run.js is missing: run npm run build"
  )
})

describe("the bench's CPU readings", () => {
  const ms = 1e6
  it("takes schedstat's exact figure unless stat shows it lost time (a thread that ended)", () => {
    const at = (ns: number, statNs: number) => ({ ns, statNs, mainNs: Number.NaN })
    // A short window: stat's 10 ms ticks missed a process that ran 30 ms.
    assert.deepStrictEqual(cpuDeltaNs(at(100 * ms, 100 * ms), at(130 * ms, 100 * ms)), { ns: 30 * ms, source: "schedstat" })
    // Agreeing within the ticks' rounding: schedstat's.
    assert.deepStrictEqual(cpuDeltaNs(at(0, 0), at(95 * ms, 100 * ms)), { ns: 95 * ms, source: "schedstat" })
    // schedstat far below stat: a thread's time left with it; stat's.
    assert.deepStrictEqual(cpuDeltaNs(at(0, 0), at(40 * ms, 100 * ms)), { ns: 100 * ms, source: "stat" })
    // A thread's time gone so that schedstat went backwards: stat's.
    assert.deepStrictEqual(cpuDeltaNs(at(50 * ms, 0), at(40 * ms, 20 * ms)), { ns: 20 * ms, source: "stat" })
  })

  it.skipIf(process.platform !== "linux")("reads the main thread's share apart: part of the whole, and growing with its work", () => {
    const before = readCpu(process.pid)
    // Work on this (the main) thread only, until the process used 30 ms of CPU (at most 5 s, however loaded).
    const usage = process.cpuUsage()
    const deadline = performance.now() + 5_000
    let spins = 0
    while (performance.now() < deadline) {
      const used = process.cpuUsage(usage)
      if (used.user + used.system >= 30_000) break
      spins++
    }
    const after = readCpu(process.pid)
    assert.isAbove(spins, 0)
    assert.isAtLeast(after.mainNs - before.mainNs, 20 * ms)
    assert.isAtMost(after.mainNs, after.ns)
  })
})

describe("npm run bench", () => {
  it("--quick runs every workload each server speaks on every server, finds every reply in place and judges every target", async () => {
    // ~60 s on an idle 2-core machine (the TLS bench included); the limit leaves room for a machine other jobs load.
    const ran = await bench(["--quick", "--no-decoders"], 260_000)
    assert.deepStrictEqual(ran.json.correctness.failures, [], `${ran.stdout}\n${ran.stderr}`)
    assert.strictEqual(ran.code, 0, `${ran.stdout}\n${ran.stderr}`)
    assert.deepStrictEqual(ran.json.servers.map((s) => s.id), [
      "node-raw",
      "node-framed",
      "node-framed-json",
      "wire",
      "wire-framed",
      "wire-stream",
      "wire-protocol",
      "wire-protocol-json",
      "wire-protocol-async",
      "effect-raw",
      "effect-framed",
      "effect-protocol",
      "effect-protocol-json",
      "rpc-wire",
      "rpc-effect"
    ])
    const workloads: ReadonlyArray<Workload> = [
      "startup",
      "stream",
      "pingpong",
      "pipeline",
      "pingpong-json",
      "pipeline-json",
      "pingpong-rpc",
      "pipeline-rpc",
      "connections",
      "ordering",
      "flood",
      "drain"
    ]
    for (const { id } of ran.json.servers) {
      for (const workload of workloads) {
        const ran_ = ran.json.samples.filter((s) => s.server === id && s.workload === workload).length
        assert.strictEqual(ran_ > 0, runsOn(workload, id), `${workload} on ${id}: ${ran_} samples`)
      }
      // Memory per idle connection was read through the server's GC hook (V8 heap after full collections).
      const connections = ran.json.samples.find((s) => s.server === id && s.workload === "connections")!
      assert.isTrue(Number.isFinite(connections.metrics["heapKiBPerConnection"]), `the GC hook answered on ${id}`)
      // The steady-state pass ran its connections and read the server's CPU for them.
      assert.isAbove(connections.metrics["churnUs"]!, 0, `open + close in the steady state on ${id}`)
      // And the main thread's share of open + close, apart.
      assert.isAbove(connections.metrics["openCloseMainUs"]!, 0, `open + close on the main thread on ${id}`)
    }
    // Every target got a number to judge (PASS or FAIL). A comparison with no target is INFO, or
    // n/a when its reference measured 0 (a quick flood too short to hold the writer back, say).
    assert.isAbove(ran.json.targets.length, 40)
    for (const target of ran.json.targets) {
      assert.isString(target.target)
      assert.isString(target.workload)
      if (target.target === "no target" && target.verdict === "n/a") continue
      assert.include(target.target === "no target" ? ["INFO"] : ["PASS", "FAIL"], target.verdict, target.text)
      for (const x of [target.median, target.min, target.max]) assert.isTrue(Number.isFinite(x), target.text)
    }
    for (const heading of ["### Targets", "### Summary", "### Ping-pong, JSON messages", "### Pipelined, effect/rpc", "### Drain", "### TLS echo against node:tls"]) {
      assert.include(ran.stdout, heading)
    }
    // The TLS bench (issue 14): both TLS servers ran every TLS workload, and its three targets were judged.
    assert.strictEqual(ran.json.tls?.status, "ok", ran.stdout)
    for (const server of ["node-tls", "wire-tls"]) {
      for (const workload of ["tls-stream", "tls-pingpong", "tls-handshakes"]) {
        const sample = ran.json.tls!.samples.find((s) => s.server === server && s.workload === workload)
        assert.isDefined(sample, `${workload} on ${server}`)
        assert.isAbove(Object.values(sample!.metrics)[0]!, 0, `${workload} on ${server}`)
      }
    }
    const tlsTargets = ran.json.targets.filter((t) => t.workload.startsWith("tls-") && t.target !== "no target")
    assert.deepStrictEqual(tlsTargets.map((t) => t.metric), ["mibPerSec", "roundTripsPerSec", "cpuUsPerHandshake"])
  }, 270_000)

  it("--before adds the earlier build's servers next to this build's", async () => {
    const ran = await bench(
      ["--quick", "--no-decoders", "--before", "dist", "--servers", "wire-framed,wire-protocol", "--workloads", "pingpong"],
      60_000
    )
    assert.strictEqual(ran.code, 0, `${ran.stdout}\n${ran.stderr}`)
    assert.deepStrictEqual(ran.json.servers.map((s) => s.id), [
      "wire-framed",
      "wire-framed@before",
      "wire-protocol",
      "wire-protocol@before"
    ])
    assert.include(ran.stdout, "effect-wire `serve echo --framing length` (before)")
  }, 70_000)

  it("the opt-in reference servers run and answer correctly: node-raw-heap, the V8-tuned Stream and Protocol servers, the Stream handler without Effect's AsyncResource", async () => {
    const ran = await bench(
      [
        "--quick",
        "--no-decoders",
        "--no-tls",
        "--servers",
        "node-raw,node-raw-heap,wire-stream-tuned,wire-protocol-tuned,wire-stream-noasync",
        "--workloads",
        "stream,pingpong"
      ],
      60_000
    )
    assert.strictEqual(ran.code, 0, `${ran.stdout}\n${ran.stderr}`)
    assert.isTrue(ran.json.correctness.ok, ran.json.correctness.failures.join("\n"))
    assert.deepStrictEqual(ran.json.servers.map((s) => s.id), [
      "node-raw",
      "node-raw-heap",
      "wire-stream-tuned",
      "wire-protocol-tuned",
      "wire-stream-noasync"
    ])
    for (const server of ["node-raw-heap", "wire-stream-tuned", "wire-protocol-tuned", "wire-stream-noasync"]) {
      for (const workload of ["stream", "pingpong"] as const) {
        const sample = ran.json.samples.find((s) => s.server === server && s.workload === workload)
        assert.isDefined(sample, `${workload} on ${server}`)
      }
    }
    assert.include(ran.stdout, "Stream handler, node --max-semi-space-size=1 --heap-growing-percent=200")
    assert.include(ran.stdout, "with the same flags (the -tuned ones add the V8 flags their names list).")
  }, 70_000)

  it("hideAsyncHooks.js (wire-stream-noasync's preload) stops Effect resuming a fiber in an AsyncResource of its own", async () => {
    // A fiber waits for a setImmediate; the async id it resumes in is printed beside the callback's.
    // Effect resumes it inside the AsyncResource it made at the wait (another id); with the preload, in the callback.
    const program = [
      "import { executionAsyncId } from 'node:async_hooks'",
      "import * as Effect from 'effect/Effect'",
      "let inCallback = -1",
      "const wait = Effect.callback((resume) => void setImmediate(() => { inCallback = executionAsyncId(); resume(Effect.void) }))",
      "const resumedIn = await Effect.runPromise(Effect.andThen(wait, Effect.sync(() => executionAsyncId())))",
      "console.log(JSON.stringify({ inCallback, resumedIn }))"
    ].join("\n")
    const ids = async (preload: ReadonlyArray<string>) => {
      const ran = await run([...preload, "--input-type=module", "-e", program], 20_000)
      assert.strictEqual(ran.code, 0, ran.stderr)
      return JSON.parse(ran.stdout) as { inCallback: number; resumedIn: number }
    }
    const hook = Path.join(ROOT, "dist", "bench", "hideAsyncHooks.js")
    const plain = await ids([])
    assert.notStrictEqual(plain.resumedIn, plain.inCallback, "Effect resumes in its own AsyncResource")
    const hidden = await ids(["--import", pathToFileURL(hook).href])
    assert.strictEqual(hidden.resumedIn, hidden.inCallback, "with the preload, in the callback that resumed it")
  }, 45_000)

  it("the ordering probe reports a server that swaps two frames", async () => {
    // Echoes every frame, but frame #3 after frame #4.
    const server = await listen((socket) => {
      const parts: Array<Buffer> = []
      socket.on("data", (chunk: Buffer) => parts.push(chunk))
      socket.on("end", () => {
        const all = Buffer.concat(parts)
        const frames: Array<Buffer> = []
        for (let at = 0; at < all.length;) {
          const size = 4 + all.readUInt32BE(at)
          frames.push(all.subarray(at, at + size))
          at += size
        }
        ;[frames[3], frames[4]] = [frames[4]!, frames[3]!]
        socket.end(Buffer.concat(frames))
      })
    })
    try {
      const job = { kind: "ordering", connections: 1, framesPerConnection: 40, maxFrameSize: 4096, seed: 7, timeoutMs: 10_000 }
      const result = await load(server.port, job)
      assert.strictEqual(result.errors.length, 1, JSON.stringify(result))
      assert.match(result.errors[0]!, /out of order or corrupt at frame #3 /)
    } finally {
      server.close()
    }
  }, 40_000)

  it("a ping-pong window in which no reply came lasts until one does: the rate and CPU per round trip stay numbers", async () => {
    // Each connection's first reply at once (so the warm-up starts), every later one 400 ms late:
    // nothing comes back within the 100 ms window.
    const server = await listen((socket) => {
      let n = 0
      frames(socket, (body) => {
        const reply = frame(Buffer.from(body))
        if (n++ === 0) socket.write(reply)
        else setTimeout(() => socket.write(reply), 400)
      })
    })
    try {
      const result = await load(server.port, {
        kind: "pingpong",
        speaks: "bytes",
        connections: 2,
        bodySize: 64,
        warmupMs: 30,
        durationMs: 100
      })
      assert.deepStrictEqual(result.errors, [])
      assert.isAbove(result.metrics["roundTripsPerSec"]!, 0)
      assert.isTrue(Number.isFinite(result.metrics["cpuUsPerRoundTrip"]), JSON.stringify(result.metrics))
    } finally {
      server.close()
    }
  }, 40_000)

  it("ping-pong and pipeline on several servers take turns: one server loaded at a time, each its own result", async () => {
    // Three echoes that log which of them each request reached.
    const arrivals: Array<number> = []
    const servers = await Promise.all([0, 1, 2].map((k) =>
      listen((socket) =>
        frames(socket, (body) => {
          arrivals.push(k)
          socket.write(frame(Buffer.from(body)))
        })
      )
    ))
    try {
      for (const kind of ["pingpong", "pipeline"]) {
        arrivals.length = 0
        const targets = servers.map((s) => ({ host: "127.0.0.1", port: s.port, pid: process.pid }))
        const job = { kind, speaks: "bytes", connections: 2, depth: 4, bodySize: 64, warmupMs: 20, durationMs: 150, turns: 3 }
        const ran = await run(["dist/bench/load.js", JSON.stringify({ targets, job })], 30_000)
        assert.strictEqual(ran.code, 0, ran.stderr)
        const { results } = JSON.parse(ran.stdout) as { results: Array<{ errors: Array<string>; metrics: Record<string, number> }> }
        assert.strictEqual(results.length, 3)
        for (const r of results) {
          assert.deepStrictEqual(r.errors, [])
          assert.isAbove(r.metrics[kind === "pingpong" ? "roundTripsPerSec" : "framesPerSec"]!, 0)
        }
        // Runs of requests to one server: the 3 warm-ups, then 3 rounds of 3 turns, where the last
        // turn of a round and the first of the next may be the same server's (one run). Two servers
        // loaded at once would interleave their requests into hundreds of runs.
        let runs = 0
        for (let i = 0; i < arrivals.length; i++) if (i === 0 || arrivals[i] !== arrivals[i - 1]) runs++
        assert.isAtLeast(runs, 3 + 3 * 2, `${kind}: ${runs} runs of requests to one server`)
        assert.isAtMost(runs, 3 + 3 * 3, `${kind}: ${runs} runs of requests to one server`)
      }
    } finally {
      for (const s of servers) s.close()
    }
  }, 40_000)

  it("the JSON pipeline reports a swapped reply, the rpc pipeline a repeated one", async () => {
    // JSON messages echoed, but the 4th reply of each connection before the 3rd.
    const json = await listen((socket) => {
      let n = 0
      let held: Buffer | undefined
      frames(socket, (body) => {
        n++
        if (n === 3) held = Buffer.from(body)
        else {
          socket.write(frame(Buffer.from(body)))
          if (n === 4) socket.write(frame(held!))
        }
      })
    })
    // effect/rpc's Exit lines, but the first call answered twice.
    const rpc = await listen((socket) => {
      let rest = ""
      let n = 0
      socket.on("data", (chunk: Buffer) => {
        const lines = (rest + chunk.toString("latin1")).split("\n")
        rest = lines.pop()!
        for (const line of lines) {
          const { id, payload } = JSON.parse(line) as { id: string; payload: { conn: number } }
          const reply = `${rpcReply(Number(id), payload.conn, 64)}\n`
          socket.write(++n === 1 ? reply + reply : reply)
        }
      })
    })
    try {
      const job = { kind: "pipeline", connections: 1, depth: 8, bodySize: 64, warmupMs: 20, durationMs: 50 }
      const swapped = await load(json.port, { ...job, speaks: "json" })
      assert.strictEqual(swapped.errors.length, 1, JSON.stringify(swapped))
      assert.match(swapped.errors[0]!, /reply 2 came back as seq 3 \(out of order/)
      const repeated = await load(rpc.port, { ...job, speaks: "rpc" })
      assert.strictEqual(repeated.errors.length, 1, JSON.stringify(repeated))
      assert.match(repeated.errors[0]!, /a reply to request 0, which is not waiting for one/)
    } finally {
      json.close()
      rpc.close()
    }
  }, 40_000)

  it("the binary pipeline reports a reply from another connection and a reply of the wrong size", async () => {
    // Echoes each connection's frames, but the 5th with its connection id changed, or cut short.
    const server = (spoil: (body: Buffer) => Buffer) =>
      listen((socket) => {
        let n = 0
        frames(socket, (body) => socket.write(frame(++n === 5 ? spoil(Buffer.from(body)) : Buffer.from(body))))
      })
    const foreign = await server((body) => {
      body.writeUInt32BE(9, 4)
      return body
    })
    const short = await server((body) => body.subarray(0, 60))
    try {
      const job = { kind: "pipeline", speaks: "bytes", connections: 2, depth: 8, bodySize: 64, warmupMs: 20, durationMs: 50 }
      const fromElsewhere = await load(foreign.port, job)
      assert.strictEqual(fromElsewhere.errors.length, 2, JSON.stringify(fromElsewhere))
      for (const error of fromElsewhere.errors) {
        assert.match(error, /^connection \d: a reply of 64 bytes with seq 4 from connection 9 \(corrupt\)$/)
      }
      const cut = await load(short.port, job)
      assert.strictEqual(cut.errors.length, 2, JSON.stringify(cut))
      assert.match(cut.errors[0]!, /a reply of 60 bytes with seq 4 from connection \d \(corrupt\)/)
    } finally {
      foreign.close()
      short.close()
    }
  }, 40_000)

  it("a stream that stops moving: the load generator reports what each connection moved while it waits, then times out", async () => {
    const server = await listen(takeThenStall)
    try {
      const reports = await stalledStream("dist/bench/load.js", { host: "127.0.0.1", port: server.port, pid: process.pid })
      // Nothing came back on either connection; what was written stopped at what the kernel took.
      assert.match(reports.at(-1)!, STALLED)
    } finally {
      server.close()
    }
  }, 40_000)

  it("a TLS stream that stops moving: the TLS load generator reports what each connection moved, times out, and the TLS bench quotes its last report when it kills it", async () => {
    const { caFile, server: pair } = certs()
    const server = Tls.createServer({ cert: pair.cert, key: pair.key }, (socket) => {
      socket.on("error", () => socket.destroy())
      takeThenStall(socket)
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const target = { host: "127.0.0.1", port: (server.address() as Net.AddressInfo).port, pid: process.pid }
    try {
      const reports = await stalledStream("dist/bench/tlsLoad.js", target, { ca: caFile })
      assert.match(reports.at(-1)!, STALLED)

      // A job whose own limit is past the bench's budget: tls.ts's runLoad kills it at 3 s.
      const script = [
        "import { runLoad } from './dist/bench/tls.js'",
        "const [target, ca, job] = JSON.parse(process.argv[1])",
        "const server = { id: 'node-tls', target, alive: () => true, output: () => '', stop: async () => {} }",
        "const result = await runLoad(server, ca, job, undefined, { budgetMs: 3_000, reportEveryMs: 200 })",
        "process.stdout.write(JSON.stringify(result))"
      ].join("\n")
      const long = { ...STALLED_JOB, timeoutMs: 60_000 }
      const killed = await run(["--input-type=module", "-e", script, JSON.stringify([target, caFile, long])], 30_000)
      assert.strictEqual(killed.code, 0, killed.stderr)
      const failed = JSON.parse(killed.stdout) as { metrics: object; errors: Array<string> }
      assert.deepStrictEqual(failed.metrics, {}, killed.stdout)
      assert.strictEqual(failed.errors.length, 1, killed.stdout)
      const [message, report] = failed.errors[0]!.split("; its last report: ")
      assert.strictEqual(message, "TLS load generator still running after 3 s; killed", killed.stdout)
      assert.match(report ?? "", STALLED)
    } finally {
      server.close()
    }
  }, 40_000)

  it("the drain check reports a server that stops without answering what it read", async () => {
    // A server process that answers nothing once it gets SIGTERM: it ends its connections at once.
    const script = [
      "const net = require('node:net')",
      "const sockets = new Set()",
      "const server = net.createServer({ allowHalfOpen: true }, (s) => {",
      "  sockets.add(s)",
      "  let n = 0",
      "  s.on('data', (chunk) => { if (n++ === 0) s.write(chunk.subarray(0, 68)) })",
      "})",
      "server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'))",
      "process.on('SIGTERM', () => { for (const s of sockets) s.end(); server.close() })"
    ].join("\n")
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] })
    try {
      const port = await new Promise<number>((resolve) => child.stdout.once("data", (chunk: Buffer) => resolve(Number(String(chunk).trim()))))
      const result = await load(port, { kind: "drain", bodySize: 64, requests: 32, timeoutMs: 10_000 }, child.pid!)
      assert.strictEqual(result.errors.length, 1, JSON.stringify(result))
      assert.match(result.errors[0]!, /drained after 1 of 32 replies: replies lost/)
    } finally {
      child.kill("SIGKILL")
    }
  }, 40_000)

  it("node-raw-heap is raw node's echo in a process holding the live heap it was asked for", async () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-wire-heap-"))
    const file = Path.join(dir, "gc.json")
    /** Starts baselines.js with `args`, proves its echo, and reads its heap after two full collections (gcHook). */
    const heapOf = async (args: ReadonlyArray<string>): Promise<number> => {
      const child = spawn(process.execPath, ["--expose-gc", "--import", "./dist/bench/gcHook.js", "dist/bench/baselines.js", ...args], {
        cwd: ROOT,
        env: { ...process.env, EFFECT_WIRE_BENCH_GC_FILE: file },
        stdio: ["ignore", "pipe", "inherit"]
      })
      try {
        const port = await new Promise<number>((resolve, reject) => {
          let out = ""
          child.on("exit", (code) => reject(new Error(`baselines.js ${args.join(" ")} exited with ${code}`)))
          child.stdout.on("data", (chunk: Buffer) => {
            out += chunk.toString()
            const found = /listening tcp [^\s]*:(\d+)/.exec(out)
            if (found !== null) resolve(Number(found[1]))
          })
        })
        const echoed = await load(port, {
          kind: "stream",
          connections: 2,
          bytesPerConnection: 2 * 2 ** 20,
          writeSize: 65_536,
          timeoutMs: 20_000
        }, child.pid!)
        assert.deepStrictEqual(echoed.errors, [])
        // The hook writes its reading to a temporary file and renames it into place: wait for that rename.
        const written = new Promise<void>((resolve) => {
          const watcher = Fs.watch(dir, (_event, name) => {
            if (name === "gc.json" && Fs.existsSync(file)) {
              watcher.close()
              resolve()
            }
          })
        })
        process.kill(child.pid!, "SIGUSR2")
        await written
        return (JSON.parse(Fs.readFileSync(file, "utf8")) as { heapUsed: number }).heapUsed / 2 ** 20
      } finally {
        child.kill("SIGKILL")
        Fs.rmSync(file, { force: true })
      }
    }
    try {
      const plain = await heapOf(["raw", "--host", "127.0.0.1", "--port", "0"])
      const held = await heapOf(["raw-heap", "--heap-mb", "24", "--host", "127.0.0.1", "--port", "0"])
      assert.isBelow(plain, 12, `raw node's heap: ${plain} MiB`)
      // About what was asked: the last block may overshoot, V8 may still shrink its own start-up objects.
      assert.isAtLeast(held, 22.5, `raw-heap's heap: ${held} MiB`)
      assert.isBelow(held, 32, `raw-heap's heap: ${held} MiB`)
      const refused = await run(["dist/bench/baselines.js", "raw-heap", "--heap-mb", "0"], 10_000)
      assert.strictEqual(refused.code, 2)
      assert.include(refused.stderr, "--heap-mb must be a number of MiB above 0 and at most 4096, not 0")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
