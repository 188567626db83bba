/**
 * A real load balancer in front of effect-wire: Debian's HAProxy on
 * loopback, `send-proxy-v2` to two server processes (test/helpers/
 * proxyBackend.mjs, on the built package) with health checks that send a v2
 * LOCAL header. Clients through HAProxy get their answers, the servers see
 * the clients' own addresses, and a server drained with SIGTERM during
 * traffic answers every request it accepted while HAProxy sends the new
 * ones to the other. Skipped only when haproxy is not installed (.ci/run
 * installs it).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { freePort, tempDir } from "./helpers/sockets.js"

const HERE = Path.dirname(fileURLToPath(import.meta.url))
const BACKEND = Path.join(HERE, "helpers/proxyBackend.mjs")

const haproxy = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v haproxy"], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
})()

interface Proc {
  readonly child: ChildProcess
  readonly out: { stdout: string; stderr: string }
  readonly exited: Promise<number | null>
}

/** Start a process in the scope (killed with SIGKILL by its own handle if still running at the end). */
const start = (command: string, args: ReadonlyArray<string>): Effect.Effect<Proc, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] })
      const out = { stdout: "", stderr: "" }
      child.stdout!.on("data", (d) => void (out.stdout += d))
      child.stderr!.on("data", (d) => void (out.stderr += d))
      // "close": after the exit and the last of its output.
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
      return { child, out, exited }
    }),
    (p) => Effect.sync(() => void (p.child.exitCode === null && p.child.signalCode === null && p.child.kill("SIGKILL")))
  )

/** Wait (bounded) for a pattern on a process's stdout, or its exit. */
const waitFor = (p: Proc, pattern: RegExp, within = 60_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + within
    for (let i = 0; i < 6000 && Date.now() < deadline; i++) {
      const m = pattern.exec(p.out.stdout)
      if (m !== null) return m
      if (p.child.exitCode !== null) break
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.die(new Error(`no ${pattern} within ${within} ms: ${p.out.stdout} ${p.out.stderr}`))
  })

interface Answer {
  /** The client's own address, as its socket knows it. */
  readonly local: string
  /** The reply, "" when the connection closed without one. */
  readonly reply: string
  readonly startedAt: number
}

/** One request through HAProxy: connect, send a line, read until the server closes. */
const request = (port: number, line: string) =>
  Effect.callback<Answer>((resume) => {
    const startedAt = Date.now()
    const socket = Net.connect({ host: "127.0.0.1", port })
    let local = ""
    let reply = ""
    socket.setTimeout(10_000, () => socket.destroy())
    socket.on("connect", () => {
      local = `${socket.localAddress}:${socket.localPort}`
      socket.write(`${line}\n`)
    })
    socket.on("data", (d) => void (reply += d))
    socket.on("error", () => {})
    socket.on("close", () => resume(Effect.succeed({ local, reply, startedAt })))
    return Effect.sync(() => socket.destroy())
  })

const config = (port: number, backends: ReadonlyArray<number>) =>
  [
    "global",
    "  maxconn 256",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    "  timeout client 10s",
    "  timeout server 10s",
    "  retries 3",
    "  option redispatch",
    "frontend fe",
    `  bind 127.0.0.1:${port}`,
    "  default_backend be",
    "backend be",
    "  balance roundrobin",
    ...backends.map((p, i) =>
      `  server s${i + 1} 127.0.0.1:${p} send-proxy-v2 check check-send-proxy inter 100ms fall 1 rise 1`
    ),
    ""
  ].join("\n")

/**
 * HAProxy on a free loopback port: haproxy binds its own port, so port 0 is
 * not possible; a probe finds a free one, and a race lost to another process
 * (the port taken meanwhile) is retried, at most 5 times.
 */
const startHaproxy = (dir: string, backends: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = yield* freePort
      const file = Path.join(dir, `haproxy-${attempt}.cfg`)
      Fs.writeFileSync(file, config(port, backends))
      const proc = yield* start(haproxy!, ["-db", "-f", file])
      // Ready once its port answers; an exit first is a failed bind.
      const deadline = Date.now() + 30_000
      for (let i = 0; i < 1500 && Date.now() < deadline && proc.child.exitCode === null; i++) {
        const up = yield* Effect.callback<boolean>((resume) => {
          const probe = Net.connect({ host: "127.0.0.1", port }, () => {
            probe.destroy()
            resume(Effect.succeed(true))
          })
          probe.on("error", () => resume(Effect.succeed(false)))
        })
        if (up) return { port, proc }
        yield* Effect.sleep("20 millis")
      }
      if (!/Address already in use|cannot bind/i.test(proc.out.stderr)) {
        return yield* Effect.die(new Error(`haproxy did not start: ${proc.out.stderr}`))
      }
    }
    return yield* Effect.die(new Error("haproxy: no free port after 5 attempts"))
  })

const backendOf = (reply: string) => reply.split(" ")[0]

describe("HAProxy in front of two effect-wire servers (send-proxy-v2)", () => {
  it.skipIf(haproxy === undefined)(
    haproxy === undefined
      ? "skipped: haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
      : "clients get their answers, the servers see the clients' addresses, a SIGTERM drain loses no accepted request",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const b1 = yield* start(process.execPath, [BACKEND, "B1"])
        const b2 = yield* start(process.execPath, [BACKEND, "B2"])
        const p1 = Number((yield* waitFor(b1, /listening (\d+)\n/))[1])
        const p2 = Number((yield* waitFor(b2, /listening (\d+)\n/))[1])
        const lb = yield* startHaproxy(dir, [p1, p2])

        // Both servers answer, each with the client's own address (not HAProxy's).
        const first = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => request(lb.port, `hello ${i}`))
        for (const [i, a] of first.entries()) {
          assert.match(a.reply, /^B[12] /, JSON.stringify(a))
          assert.strictEqual(a.reply, `${backendOf(a.reply)} ${a.local} hello ${i}\n`)
        }
        assert.deepStrictEqual(new Set(first.map((a) => backendOf(a.reply))), new Set(["B1", "B2"]))

        // Traffic from 4 clients; B1 drained with SIGTERM in the middle of it.
        let stop = false
        let sigtermAt = 0
        let b1ExitedAt = 0
        const answers: Array<Answer & { readonly line: string }> = []
        const client = (c: number) =>
          Effect.gen(function*() {
            for (let i = 0; i < 5000 && !stop; i++) {
              const line = `c${c} r${i}`
              answers.push({ ...(yield* request(lb.port, line)), line })
            }
          })
        const traffic = yield* Effect.forkChild(
          Effect.all([0, 1, 2, 3].map(client), { concurrency: "unbounded" }),
          { startImmediately: true }
        )
        const until = (n: number) =>
          Effect.gen(function*() {
            const deadline = Date.now() + 60_000
            while (answers.length < n && Date.now() < deadline) yield* Effect.sleep("5 millis")
          })
        yield* until(100)
        sigtermAt = Date.now()
        b1.child.kill("SIGTERM")
        const code = yield* Effect.promise(() => b1.exited)
        b1ExitedAt = Date.now()
        const atExit = answers.length
        yield* until(atExit + 100)
        stop = true
        yield* Fiber.join(traffic)

        const served1 = Number(/served (\d+)/.exec(b1.out.stdout)?.[1])
        const answered = answers.filter((a) => a.reply !== "")
        const lost = answers.filter((a) => a.reply === "")
        // Every request B1 accepted was answered, and the client got that answer.
        const fromB1 = answered.filter((a) => backendOf(a.reply) === "B1").length
        assert.strictEqual(served1, fromB1 + first.filter((a) => backendOf(a.reply) === "B1").length, b1.out.stdout)
        // NodeRuntime.runMain exits 130 once the interrupted program has finished its drain.
        assert.strictEqual(code, 130, b1.out.stderr)
        assert.notMatch(b1.out.stderr, /[1-9]\d* cut/)
        // Every answer is right: the backend, the client's own address, its line.
        for (const a of answered) assert.strictEqual(a.reply, `${backendOf(a.reply)} ${a.local} ${a.line}\n`)
        // HAProxy moved new connections to B2: none started after B1 exited went to B1.
        const after = answered.filter((a) => a.startedAt > b1ExitedAt)
        assert.isAbove(after.length, 50)
        assert.isTrue(after.every((a) => backendOf(a.reply) === "B2"))
        // A connection still in B1's kernel backlog when it closed its listening socket is reset by the
        // kernel: never accepted, so never served (HAProxy cannot retry a connection it already wrote to).
        // Each lost request is one of those: no server accepted it. At most one per client in flight.
        const accepted = new Set(
          [b1, b2].flatMap((b) => Array.from(b.out.stdout.matchAll(/accepted (\S+)/g), (m) => m[1]!))
        )
        for (const a of answered) assert.isTrue(accepted.has(a.local), a.local)
        for (const a of lost) assert.isFalse(accepted.has(a.local), `${a.local} was accepted, then lost`)
        assert.isAtMost(lost.length, 4, JSON.stringify(lost))
        console.log(
          `haproxy drain: ${answers.length} requests, ${fromB1} by B1 (drained), ${answered.length - fromB1} by B2, ` +
            `${lost.length} reset in B1's backlog at close, ${after.length} after B1 exited (${b1ExitedAt - sigtermAt} ms after SIGTERM); ` +
            `B1 ${/checks \d+/.exec(b1.out.stdout)?.[0]} (LOCAL health checks that reached the handler)`
        )
        // HAProxy's health checks (a v2 LOCAL header, or a connect reset before it is read) warn about nothing.
        for (const b of [b1, b2]) assert.notMatch(b.out.stderr, /PROXY protocol header/, b.out.stderr)
      }).pipe(Effect.scoped, Effect.runPromise),
    // A loaded machine (several test files at once) may take many seconds to start each process.
    180_000
  )
})
