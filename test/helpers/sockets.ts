/**
 * Shared pieces of the socket tests: temp directories, a free port, reading a
 * whole stream, bounded polling, and a python3 listener that never accepts.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Address from "../../src/Address.js"
import type * as Socket from "../../src/Socket.js"

/** A fresh temp directory, removed with the scope. */
export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** A loopback port nobody listens on: bind port 0, read it, close. */
export const freePort: Effect.Effect<number> = Effect.callback((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Every byte of `reads`, concatenated once at the end. */
/** Serve every accepted connection with `handler` in its own fiber; the socket closes after it. */
export const serve = (
  listener: Socket.Listener,
  handler: (socket: Socket.Socket) => Effect.Effect<void, unknown>
) =>
  listener.accept.pipe(
    Stream.runForEach((socket) => Effect.forkChild(Effect.ensuring(Effect.ignore(handler(socket)), socket.close))),
    Effect.forkScoped
  )

export const readAll = (socket: Socket.Socket) =>
  Effect.map(Stream.runCollect(socket.reads), (chunks) => Buffer.concat(chunks))

/** Count the bytes of `reads` without keeping them. */
export const countBytes = (socket: Socket.Socket) =>
  Stream.runFold(socket.reads, () => 0, (n, bytes) => n + bytes.length)

/**
 * Re-check `check` until it holds, at most `attempts` times `interval` ms, for
 * counters that have no event of their own. Fails with `what` when it never holds.
 */
export const eventually = <A>(
  what: string,
  value: Effect.Effect<A>,
  check: (a: A) => boolean,
  attempts = 200,
  interval = 10
): Effect.Effect<A> =>
  Effect.gen(function*() {
    let last = yield* value
    for (let i = 0; i < attempts && !check(last); i++) {
      yield* Effect.sleep(interval)
      last = yield* value
    }
    if (!check(last)) return yield* Effect.die(new Error(`${what}: still ${String(last)}`))
    return last
  })

/** Open file descriptors of this process (Linux). */
export const openFds = (): number => Fs.readdirSync("/proc/self/fd").length

/**
 * Deterministic bytes of length n: the i-th byte is (i * 31 + 7) mod 251. The
 * period (251) is prime to every power of two, so a chunk that arrives
 * shifted, repeated or dropped shows up as a mismatch.
 */
export const pattern = (n: number, offset = 0): Buffer => {
  const period = Buffer.allocUnsafe(251)
  for (let i = 0; i < 251; i++) period[i] = ((offset + i) * 31 + 7) % 251
  // fill repeats the period natively: fast even for hundreds of MiB.
  return Buffer.allocUnsafe(n).fill(period)
}

const here = Path.dirname(fileURLToPath(import.meta.url))

/**
 * A TCP listener on 127.0.0.1 that never accepts (python3, `listen(0)`), so
 * that once its backlog is full further connects hang. The process is killed
 * by PID when the scope closes.
 */
export const noAcceptListener: Effect.Effect<Address.TcpAddress, never, Scope.Scope> = Effect
  .acquireRelease(
    Effect.callback<{ child: ReturnType<typeof spawn>; port: number }>((resume) => {
      const child = spawn("python3", [Path.join(here, "no_accept_listener.py")], { stdio: ["pipe", "pipe", "inherit"] })
      let out = ""
      child.stdout!.setEncoding("utf8")
      child.stdout!.on("data", (text: string) => {
        out += text
        const line = out.indexOf("\n")
        if (line >= 0) resume(Effect.succeed({ child, port: Number(out.slice(0, line)) }))
      })
      child.once("exit", (code) => resume(Effect.die(new Error(`no_accept_listener.py exited with ${code}`))))
    }),
    ({ child }) =>
      Effect.callback<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        process.kill(child.pid!, "SIGKILL")
      })
  ).pipe(Effect.map(({ port }) => Address.tcp("127.0.0.1", port)))

/** ASCII letters upper-cased in a copy: the Upper server's answer, computed independently of it. */
export const upper = (input: Uint8Array): Buffer => {
  const copy = Buffer.from(input)
  for (let i = 0; i < copy.length; i++) {
    const b = copy[i]!
    if (b >= 0x61 && b <= 0x7a) copy[i] = b - 0x20
  }
  return copy
}

/**
 * Waits until `value` has not changed for 5 polls in a row (50 ms apart), at
 * most 400 polls: a stalled pipeline has no event of its own.
 */
export const stalled = (what: string, value: () => number) =>
  Effect.gen(function*() {
    let last = value()
    let same = 0
    for (let i = 0; i < 400 && same < 5; i++) {
      yield* Effect.sleep("50 millis")
      const now = value()
      same = now === last && now > 0 ? same + 1 : 0
      last = now
    }
    if (same < 5) return yield* Effect.die(new Error(`${what} never settled: still moving at ${last}`))
    return last
  })
