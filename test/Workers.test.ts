/**
 * Workers: one server in several processes on one address, tested with real
 * processes over loopback (port 0): the library (`Workers.make`, through
 * test/helpers/workersFixture.mjs) and `effect-wire serve echo --workers`.
 * Connections spread over the workers (each worker's own count, from the
 * group's stats), a worker killed with SIGKILL is replaced while the
 * connections of the other one go on, SIGTERM under load drains every worker
 * and the parent sums their reports, and bad `--workers` values are one line.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { dist, runCli, startCli } from "./helpers/cliBuild.js"
import { isAlive, waitGone, watchOutput } from "./helpers/processes.js"
import { tempDir } from "./helpers/sockets.js"

const fixture = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "helpers/workersFixture.mjs")

interface Stats {
  readonly accepted: number
  readonly active: number
  readonly completed: number
  readonly failed: number
  readonly refused: number
}
interface GroupStats extends Stats {
  readonly workers: ReadonlyArray<Stats & { readonly worker: number; readonly pid: number }>
}

/** The fixture program: JSON lines on stdout, commands on stdin; killed by its own handle when the test ends. */
const startFixture = (workers: number, sharing = "auto", mode?: "crash" | "prometheus" | `unix:${string}`) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [fixture, String(workers), sharing, ...(mode === undefined ? [] : [mode])], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      const { exit, out, until } = watchOutput(child, "fixture")
      /** The next JSON line on stdout (after `skip` of them) holding `key`. */
      const json = <A>(key: string, skip = 0) =>
        until(() => {
          const found = out.stdout.split("\n").filter((l) => l.startsWith("{"))
            .map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => key in o)
          return found.length > skip ? { value: found[skip]![key] as A } : undefined
        }, key, 40_000).pipe(Effect.map(({ value }) => value))
      /** The first line of both outputs matching `pattern`. */
      const logLine = (pattern: RegExp) =>
        until(() => `${out.stdout}\n${out.stderr}`.split("\n").find((l) => pattern.test(l)), String(pattern), 40_000)
      let statsAsked = 0
      const stats = Effect.suspend(() => {
        const n = statsAsked++
        child.stdin.write("stats\n")
        return json<GroupStats>("stats", n)
      })
      let openedAsked = 0
      /** The connections the group's merged metrics count (`group.metrics`). */
      const opened = Effect.suspend(() => {
        const n = openedAsked++
        child.stdin.write("opened\n")
        return json<number>("opened", n)
      })
      return { child, json, logLine, stats, opened, exit, out }
    }),
    ({ child }) =>
      Effect.gen(function*() {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        // Its workers see the channel close and drain: wait for them (bounded).
        yield* waitGone(child.pid!, 5_000)
      })
  )

/** A client speaking lines: `request` sends one and waits for its echo. */
const lineClient = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<Net.Socket>((resolve, reject) => {
        const socket = Net.connect({ host: "127.0.0.1", port })
        socket.once("connect", () => resolve(socket))
        socket.once("error", reject)
      })
    ),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(Effect.map((socket) => {
    let buffered = ""
    let ended: string | undefined
    const waiters = new Set<() => void>()
    socket.setEncoding("utf8")
    socket.on("data", (d: string) => {
      buffered += d
      waiters.forEach((w) => w())
    })
    socket.on("end", () => {
      ended ??= "end"
      waiters.forEach((w) => w())
    })
    socket.on("error", (e: NodeJS.ErrnoException) => {
      ended = e.code ?? "error"
      waiters.forEach((w) => w())
    })
    socket.on("close", () => {
      ended ??= "close"
      waiters.forEach((w) => w())
    })
    /** The echo of `line`, or how the connection ended first ("end", "ECONNRESET", …). */
    const request = (line: string): Promise<{ readonly echo: string } | { readonly ended: string; readonly partial: string }> =>
      new Promise((resolve) => {
        const check = () => {
          const i = buffered.indexOf("\n")
          if (i >= 0) {
            const echo = buffered.slice(0, i)
            buffered = buffered.slice(i + 1)
            waiters.delete(check)
            resolve({ echo })
          } else if (ended !== undefined) {
            waiters.delete(check)
            resolve({ ended, partial: buffered })
          }
        }
        waiters.add(check)
        if (ended === undefined) socket.write(`${line}\n`)
        check()
      })
    return { socket, request }
  }))

const echoOnce = (port: number, line: string) =>
  Effect.scoped(Effect.flatMap(lineClient(port), (client) => Effect.promise(() => client.request(line))))

const portOf = (listening: string) => Number(listening.slice(listening.lastIndexOf(":") + 1))

describe("Workers (library)", () => {
  it.live("connections spread over the workers: each worker's own count, and the group's sums", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(2)
      const port = portOf(yield* group.json<string>("listening"))
      const pids = yield* group.json<Array<number>>("pids")
      assert.strictEqual(pids.length, 2)
      assert.strictEqual(yield* group.json<string>("sharing"), "reusePort")
      const n = 40
      for (let i = 0; i < n; i++) assert.deepStrictEqual(yield* echoOnce(port, `hello ${i}`), { echo: `hello ${i}` })
      // A connection is counted completed once its worker saw it end: ask until all have (bounded).
      let stats = yield* group.stats
      for (let i = 0; i < 50 && stats.completed < n; i++) {
        yield* Effect.sleep("50 millis")
        stats = yield* group.stats
      }
      assert.strictEqual(stats.accepted, n)
      assert.strictEqual(stats.completed, n)
      assert.strictEqual(stats.workers.length, 2)
      assert.deepStrictEqual(stats.workers.map((w) => w.pid).sort(), [...pids].sort())
      assert.strictEqual(stats.workers[0]!.accepted + stats.workers[1]!.accepted, n)
      // The kernel spreads by a hash of each connection's ports: 40 all on one worker has odds of 2^-39.
      for (const w of stats.workers) assert.isAbove(w.accepted, 0, `worker ${w.worker} got no connection`)
    }), 120_000)

  it.live("group.metrics sums the workers' series; servePrometheus({ snapshot: group.metrics }) serves the sums", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(2, "auto", "prometheus")
      const port = portOf(yield* group.json<string>("listening"))
      const url = yield* group.json<string>("prometheus")
      const n = 24
      for (let i = 0; i < n; i++) assert.deepStrictEqual(yield* echoOnce(port, `m${i}`), { echo: `m${i}` })
      // Counted once each worker has seen its connections (bounded).
      let opened = yield* group.opened
      for (let i = 0; i < 50 && opened < n; i++) {
        yield* Effect.sleep("50 millis")
        opened = yield* group.opened
      }
      assert.strictEqual(opened, n)
      const stats = yield* group.stats
      for (const w of stats.workers) assert.isAbove(w.accepted, 0, `worker ${w.worker} got no connection`)
      const text = yield* Effect.promise(() => fetch(url).then((r) => r.text()))
      const line = text.split("\n").find((l) => l.startsWith("effect_wire_server_connection_opened{") && l.includes(`server_port="${port}"`))
      assert.isDefined(line, text)
      assert.strictEqual(Number(line!.slice(line!.lastIndexOf(" ") + 1)), n)
      assert.include(text, "# TYPE effect_wire_server_connection_duration histogram")
    }), 120_000)

  it.live("sharing: \"cluster\" (node:cluster's primary hands connections out) spreads them too", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(2, "cluster")
      const port = portOf(yield* group.json<string>("listening"))
      assert.strictEqual(yield* group.json<string>("sharing"), "cluster")
      for (let i = 0; i < 10; i++) assert.deepStrictEqual(yield* echoOnce(port, `c${i}`), { echo: `c${i}` })
      const stats = yield* group.stats
      assert.strictEqual(stats.accepted, 10)
      // Round robin: each of the two gets half.
      assert.deepStrictEqual(stats.workers.map((w) => w.accepted), [5, 5])
    }), 120_000)

  it.live("a worker killed with SIGKILL is replaced, and the connections the other worker holds go on", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(2)
      const port = portOf(yield* group.json<string>("listening"))
      const pids = yield* group.json<Array<number>>("pids")
      const n = 20
      const clients = yield* Effect.forEach(Array.from({ length: n }, (_, i) => i), () => lineClient(port))
      for (const [i, c] of clients.entries()) {
        assert.deepStrictEqual(yield* Effect.promise(() => c.request(`before ${i}`)), { echo: `before ${i}` })
      }
      const before = yield* group.stats
      assert.strictEqual(before.active, n)
      const victim = before.workers.find((w) => w.active > 0)!
      const survivor = before.workers.find((w) => w.pid !== victim.pid)!
      assert.include(pids, victim.pid)
      process.kill(victim.pid, "SIGKILL")
      assert.isTrue(yield* waitGone(victim.pid, 5_000))
      // Every connection either goes on (the survivor's) or was reset with its worker: none is lost on the survivor.
      const after = yield* Effect.forEach(clients, (c, i) => Effect.promise(() => c.request(`after ${i}`)))
      const alive = after.filter((r) => "echo" in r)
      assert.strictEqual(alive.length, survivor.active, JSON.stringify(after))
      assert.strictEqual(after.length - alive.length, victim.active)
      for (const [i, r] of after.entries()) if ("echo" in r) assert.strictEqual(r.echo, `after ${i}`)
      // Replaced, logged, and serving: the group has two workers again, one of them new.
      const line = yield* group.logLine(new RegExp(`worker ${victim.worker} \\(pid ${victim.pid}\\) ended \\(signal SIGKILL\\); a new one starts in 50 ms`))
      assert.include(line, "restart 1 in a row, at most 3")
      yield* group.logLine(new RegExp(`worker ${victim.worker} started again \\(pid \\d+\\)`))
      const stats = yield* group.stats
      assert.strictEqual(stats.workers.length, 2)
      const replacement = stats.workers.find((w) => w.worker === victim.worker)!
      assert.notStrictEqual(replacement.pid, victim.pid)
      assert.isTrue(isAlive(replacement.pid))
      assert.strictEqual(stats.workers.find((w) => w.worker === survivor.worker)!.active, survivor.active)
      for (let i = 0; i < 10; i++) assert.deepStrictEqual(yield* echoOnce(port, `new ${i}`), { echo: `new ${i}` })
    }), 120_000)

  it.live("a worker that keeps dying is restarted with doubling delays, then the group gives up, loudly", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(1, "auto", "crash")
      yield* group.json<string>("listening")
      // maxRestarts 3 from 50 ms: 50, 100, 200 ms, then the fourth failure in a row gives up.
      for (const [n, delay] of [[1, 50], [2, 100], [3, 200]] as const) {
        yield* group.logLine(new RegExp(`worker 1 \\(pid \\d+\\) ended \\(exit code 3\\); a new one starts in ${delay} ms \\(restart ${n} in a row, at most 3\\)`))
      }
      const gaveUp = yield* group.logLine(/giving up on it/)
      assert.match(gaveUp, /ERROR/)
      assert.match(gaveUp, /worker 1 \(pid \d+\) ended \(exit code 3\) after 3 restart\(s\) in a row that did not last/)
      // The program fails with WorkersGaveUp (runMain reports it, exit 1).
      assert.strictEqual(yield* Effect.promise(() => group.exit), 1)
      assert.include(group.out.stderr + group.out.stdout, "WorkersGaveUp")
    }), 120_000)

  it.live("several workers cannot share a Unix socket file: the group does not start, and says why", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "echo.sock")
      const group = yield* startFixture(2, "auto", `unix:${path}`)
      assert.strictEqual(yield* Effect.promise(() => group.exit), 1)
      const output = group.out.stdout + group.out.stderr
      assert.include(output, "WorkerStartFailed")
      assert.include(output, `worker processes cannot share the Unix socket ${path}`)
      assert.isFalse(Fs.existsSync(path))
    }), 120_000)

  it.live("workers whose parent is killed (SIGKILL) drain and exit on their own: no orphans", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(2)
      const port = portOf(yield* group.json<string>("listening"))
      const pids = yield* group.json<Array<number>>("pids")
      assert.deepStrictEqual(yield* echoOnce(port, "before"), { echo: "before" })
      group.child.kill("SIGKILL")
      for (const pid of pids) assert.isTrue(yield* waitGone(pid, 15_000), `worker ${pid} outlived its parent`)
    }), 120_000)

  it.live("a connection open when the parent is killed is served until its worker drains it with a clean half-close, then the worker exits", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(1)
      const port = portOf(yield* group.json<string>("listening"))
      const [pid] = yield* group.json<Array<number>>("pids")
      const client = yield* lineClient(port)
      assert.deepStrictEqual(yield* Effect.promise(() => client.request("before")), { echo: "before" })
      group.child.kill("SIGKILL")
      yield* waitGone(group.child.pid!, 5_000)
      // The worker learns of its parent's death when its IPC channel closes, a moment later: until
      // then every request is answered; then it drains, and Echo's drain half-closes the
      // connection. So the connection ends cleanly (FIN, never the reset that node:cluster's own
      // exit on a lost channel gave), with every request before the end answered.
      let ended: { readonly ended: string; readonly partial: string } | undefined
      for (let i = 0; i < 200 && ended === undefined; i++) {
        const outcome = yield* Effect.promise(() => client.request(`after ${i}`))
        if ("echo" in outcome) {
          assert.strictEqual(outcome.echo, `after ${i}`)
          yield* Effect.sleep("25 millis")
        } else {
          ended = outcome
        }
      }
      assert.deepStrictEqual(ended, { ended: "end", partial: "" }, "the drain ended the connection with a half-close")
      client.socket.end()
      assert.isTrue(yield* waitGone(pid!, 15_000), `worker ${pid} outlived its parent`)
    }), 120_000)

  it.live("SIGTERM drains every worker; the report is the sum of the workers' reports", () =>
    Effect.gen(function*() {
      const group = yield* startFixture(2)
      const port = portOf(yield* group.json<string>("listening"))
      const pids = yield* group.json<Array<number>>("pids")
      const clients = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), () => lineClient(port))
      for (const c of clients) assert.deepStrictEqual(yield* Effect.promise(() => c.request("x")), { echo: "x" })
      group.child.kill("SIGTERM")
      const report = yield* group.json<{
        finished: number
        cut: number
        killed: number
        workers: Array<{ pid: number; report: { finished: number; cut: number } }>
      }>("report")
      assert.strictEqual(report.finished, 12)
      assert.strictEqual(report.cut, 0)
      assert.strictEqual(report.killed, 0)
      assert.deepStrictEqual(report.workers.map((w) => w.pid).sort(), [...pids].sort())
      assert.strictEqual(report.workers.reduce((n, w) => n + w.report.finished, 0), 12)
      yield* Effect.promise(() => group.exit)
      for (const pid of pids) assert.isTrue(yield* waitGone(pid, 5_000), `worker ${pid} still runs`)
    }), 120_000)
})

describe("effect-wire serve --workers", () => {
  it.live("SIGTERM under load: every request a worker received is answered, and the summed drain report is logged", () =>
    Effect.gen(function*() {
      const cli = startCli(dist, ["serve", "echo", "--port", "0", "--framing", "lines", "--workers", "2"], {
        timeoutMs: 60_000
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => cli.signal("SIGKILL")))
      const port = portOf(yield* Effect.promise(() => cli.waitFor(/^listening tcp /)))
      const serving = yield* Effect.promise(() => cli.waitFor(/2 worker\(s\) serving/, "stderr"))
      const pids = /pid (\d+), (\d+)/.exec(serving)!.slice(1).map(Number)
      const n = 16
      const clients = yield* Effect.forEach(Array.from({ length: n }, (_, i) => i), () => lineClient(port))
      // Each client sends request after request; SIGTERM comes once every one has had an answer.
      let answered = 0
      let signalled = false
      const results = yield* Effect.forEach(clients, (c, i) =>
        Effect.promise(async () => {
          const log: Array<{ sent: string; got: { echo: string } | { ended: string; partial: string } }> = []
          for (let k = 0; k < 10_000; k++) {
            const sent = `client ${i} request ${k} ${"x".repeat(100)}`
            const got = await c.request(sent)
            log.push({ sent, got })
            if (!("echo" in got)) break
            if (k === 0 && ++answered === n && !signalled) {
              signalled = true
              cli.signal("SIGTERM")
            }
          }
          return log
        }), { concurrency: "unbounded" })
      const exit = yield* Effect.promise(() => cli.exit)
      assert.strictEqual(exit.code, 0, exit.stderr)
      for (const log of results) {
        // Every answer is its request; the connection ends with the server's clean end (no reset), and a
        // request left without an answer got none of it (it reached the worker after its drain began).
        const last = log[log.length - 1]!
        assert.isAbove(log.length, 1)
        for (const entry of log.slice(0, -1)) assert.deepStrictEqual(entry.got, { echo: entry.sent })
        assert.deepStrictEqual(last.got, { ended: "end", partial: "" }, JSON.stringify(last))
      }
      const report = /2 worker\(s\) shut down; (\d+) connection\(s\) finished, (\d+) cut; connections accepted: (.*)"/
        .exec(exit.stderr)
      assert.isNotNull(report, exit.stderr)
      assert.strictEqual(Number(report![1]), n)
      assert.strictEqual(Number(report![2]), 0)
      const perWorker = [...report![3]!.matchAll(/pid (\d+)\) (\d+)/g)].map((m) => [Number(m[1]), Number(m[2])])
      assert.deepStrictEqual(perWorker.map(([pid]) => pid).sort(), [...pids].sort())
      assert.strictEqual(perWorker.reduce((sum, [, accepted]) => sum + accepted!, 0), n)
      for (const pid of pids) assert.isTrue(yield* waitGone(pid, 5_000), `worker ${pid} still runs`)
    }), 120_000)

  it.live("bad --workers values, and what cannot run in workers, are one line each and exit 1", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["--workers", "0"], "error: --workers: expected a number of processes from 1 to 1024, or auto (one per core), got \"0\""],
        [["--workers", "two"], "error: --workers: expected a number of processes from 1 to 1024, or auto (one per core), got \"two\""],
        [["--workers", "1025"], "error: --workers: expected a number of processes from 1 to 1024, or auto (one per core), got \"1025\""],
        [["--workers", "2", "--unix", "/tmp/ew-workers-never.sock"], "error: --workers needs a TCP address: worker processes cannot share a Unix socket file (--unix); run one process per socket file, or listen on --host/--port"]
      ]
      for (const [args, line] of cases) {
        const run = yield* Effect.promise(() => runCli(dist, ["serve", "echo", ...args]))
        assert.strictEqual(run.code, 1, args.join(" "))
        assert.strictEqual(run.stdout, "")
        assert.strictEqual(run.stderr, `${line}\n`)
      }
    }), 120_000)

  it.live("a worker that cannot listen fails the start with one line naming it", () =>
    Effect.gen(function*() {
      const taken = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Net.Server>((resolve) => {
            const server = Net.createServer()
            server.listen({ host: "127.0.0.1", port: 0 }, () => resolve(server))
          })
        ),
        (server) => Effect.sync(() => server.close())
      )
      const port = (taken.address() as Net.AddressInfo).port
      const run = yield* Effect.promise(() => runCli(dist, ["serve", "upper", "--port", String(port), "--workers", "2"]))
      assert.strictEqual(run.code, 1)
      assert.strictEqual(run.stdout, "")
      assert.match(
        run.stderr,
        new RegExp(`^error: worker 1 \\(pid \\d+\\) did not start its server: address 127\\.0\\.0\\.1:${port} is already in use \\(EADDRINUSE\\)\\n$`)
      )
    }), 120_000)
})
