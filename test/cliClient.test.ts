/**
 * `effect-wire connect` and `effect-wire exec` as processes, against real
 * servers of this test on loopback: what goes in on stdin, what comes out on
 * stdout and stderr, and the exit code.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Exec from "../src/servers/Exec.js"
import * as Upper from "../src/servers/Upper.js"
import { dist, type RunOptions, runCli, startCli } from "./helpers/cliBuild.js"
import { freePort, tempDir } from "./helpers/sockets.js"

const LOOPBACK = Address.tcp("127.0.0.1", 0)

const cli = (args: ReadonlyArray<string>, options?: RunOptions) => Effect.promise(() => runCli(dist, args, options))
const at = (address: Address.Address) => Address.format(address)

/** The command started in the background; killed (SIGKILL, by its handle) when the scope closes if still running. */
const started = (args: ReadonlyArray<string>, options?: RunOptions) =>
  Effect.acquireRelease(Effect.sync(() => startCli(dist, args, options)), (cli) => Effect.sync(() => cli.signal("SIGKILL")))

/** Completes once `path` exists (a remote command has reached the point that creates it). */
const fileAppears = (path: string): Effect.Effect<void> =>
  Effect.suspend(() => Fs.existsSync(path) ? Effect.void : Effect.andThen(Effect.sleep("20 millis"), fileAppears(path)))

/** Exactly one line on stderr, starting with `error: `. */
const assertOneErrorLine = (stderr: string, pattern: RegExp) => {
  const lines = stderr.split("\n").filter((line) => line !== "")
  assert.strictEqual(lines.length, 1, stderr)
  assert.match(lines[0]!, pattern)
}

describe.concurrent("effect-wire connect", () => {
  it.live("pipes stdin to an echo server and its answer to stdout, half-closing at the end of stdin", () =>
    Effect.gen(function*() {
      // The echo server ends its side only once it has seen ours end: the
      // command exits only because it half-closed.
      const server = yield* Echo.make({ address: LOOPBACK })
      const input = "hello\n" + "0123456789".repeat(20_000) + "\nno newline at the end"
      const run = yield* cli(["connect", at(server.address)], { input })
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(run.stdout, input)
      assert.strictEqual(run.stderr, "")
    }))

  it.live("exits 0 when the peer closes, even while stdin stays open", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: LOOPBACK,
        handler: (socket) => socket.write(new TextEncoder().encode("bye\n"))
      })
      const run = yield* cli(["connect", at(server.address)], { input: "typing...", keepStdinOpen: true })
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(run.stdout, "bye\n")
    }))

  it.live("--framing length sends each stdin line as a frame and prints each frame on a line", () =>
    Effect.gen(function*() {
      const server = yield* Upper.make({ address: LOOPBACK, framing: "length" })
      const run = yield* cli(["connect", at(server.address), "--framing", "length"], { input: "a\r\nbb\n\nccc" })
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(run.stdout, "A\nBB\n\nCCC\n")
    }))

  it.live("--udp sends each line as a datagram and prints each reply", () =>
    Effect.gen(function*() {
      const server = yield* Upper.makeUdp(LOOPBACK)
      const run = yield* cli(["connect", at(server.address), "--udp"], { input: "ping\nudp two\n" })
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(run.stdout, "PING\nUDP TWO\n")
    }))

  it.live("a refused connection is one error line and exit 1, over TCP and UDP", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const [tcp, udp] = yield* Effect.all([
        cli(["connect", `127.0.0.1:${port}`], { input: "hello\n" }),
        cli(["connect", `127.0.0.1:${port}`, "--udp"], { input: "hello\n" })
      ], { concurrency: 2 })
      for (const run of [tcp, udp]) {
        assert.strictEqual(run.code, 1)
        assert.strictEqual(run.stdout, "")
        assertOneErrorLine(run.stderr, new RegExp(`^error: connection to 127\\.0\\.0\\.1:${port} refused: `))
      }
    }))

  it.live("SIGINT and SIGTERM end a session with 130 and 143, as shells and netcat do", () =>
    Effect.gen(function*() {
      // The server greets and then waits for the client to go.
      const server = yield* Server.make({
        address: LOOPBACK,
        handler: (socket) => Effect.andThen(socket.write(new TextEncoder().encode("hi\n")), Stream.runDrain(socket.reads))
      })
      const interrupted = (signal: NodeJS.Signals) =>
        Effect.gen(function*() {
          const session = yield* started(["connect", at(server.address)], { keepStdinOpen: true })
          yield* Effect.promise(() => session.waitFor(/^hi$/))
          session.signal(signal)
          return yield* Effect.promise(() => session.exit)
        })
      const [int, term] = yield* Effect.all([interrupted("SIGINT"), interrupted("SIGTERM")], { concurrency: 2 })
      assert.strictEqual(int.code, 130, int.stderr)
      assert.strictEqual(term.code, 143, term.stderr)
      for (const run of [int, term]) {
        assert.strictEqual(run.stdout, "hi\n")
        assert.strictEqual(run.stderr, "")
      }
    }))

  it.live("a reader that goes away (| head -c 10) ends the session quietly, exit 0 as with nc", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: LOOPBACK })
      const input = "0123456789".repeat(200_000)
      const run = yield* cli(["connect", at(server.address)], { input, stdoutLimit: 10 })
      assert.strictEqual(run.stdout, "0123456789")
      assert.strictEqual(run.stderr, "")
      assert.strictEqual(run.code, 0)
    }))

  it.live("--udp paces by --window: 2000 lines to the built-in UDP echo (serve echo --udp) all come back", () =>
    Effect.gen(function*() {
      const server = yield* started(["serve", "echo", "--port", "0", "--udp"])
      const line = yield* Effect.promise(() => server.waitFor(/^listening udp /))
      const lines = Array.from({ length: 2000 }, (_, i) => String(i + 1))
      const run = yield* cli(["connect", line.slice("listening udp ".length), "--udp"], {
        input: lines.join("\n") + "\n",
        timeoutMs: 25_000
      })
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(run.stderr, "")
      // Every reply, each once (the server may answer a few out of order).
      const replies = run.stdout.split("\n").slice(0, -1)
      assert.strictEqual(replies.length, 2000)
      assert.deepStrictEqual([...replies].sort(), [...lines].sort())
    }), { timeout: 40_000 })


  it.live("--udp: a datagram without a reply within --wait counts as lost; the replies are printed", () =>
    Effect.gen(function*() {
      // A UDP server that answers only the lines that start with "ok".
      const server = yield* Effect.acquireRelease(
        Effect.callback<Dgram.Socket>((resume) => {
          const socket = Dgram.createSocket("udp4")
          socket.on("message", (message, from) => {
            if (message.toString().startsWith("ok")) socket.send(message, from.port, from.address)
          })
          socket.bind(0, "127.0.0.1", () => resume(Effect.succeed(socket)))
        }),
        (socket) => Effect.sync(() => socket.close())
      )
      const run = yield* cli(["connect", `127.0.0.1:${server.address().port}`, "--udp", "--wait", "300ms", "--window", "2"], {
        input: "ok 1\nlost 2\nok 3\nlost 4\nok 5\n"
      })
      assert.strictEqual(run.code, 1)
      assert.strictEqual(run.stdout, "ok 1\nok 3\nok 5\n")
      assertOneErrorLine(run.stderr, /^error: no reply to 2 of 5 datagram\(s\) within 300ms \(--wait\): /)
    }))

  it.live("zero limits are refused with one line that says what to write", () =>
    Effect.gen(function*() {
      const [window, wait] = yield* Effect.all([
        cli(["connect", "127.0.0.1:9", "--udp", "--window", "0"]),
        cli(["connect", "127.0.0.1:9", "--udp", "--wait", "0s"])
      ], { concurrency: 2 })
      for (const run of [window, wait]) assert.strictEqual(run.code, 1)
      assertOneErrorLine(window.stderr, /^error: --window: 0 is not a limit: write a whole number above 0, e\.g\. 64$/)
      assertOneErrorLine(wait.stderr, /^error: --wait: 0 is not a limit: write a duration above 0, e\.g\. 1s$/)
    }))

  it.live("a bad address is one error line and exit 1", () =>
    Effect.gen(function*() {
      const run = yield* cli(["connect", "localhost"])
      assert.strictEqual(run.code, 1)
      assertOneErrorLine(run.stderr, /^error: invalid address "localhost"/)
    }))
})

describe.concurrent("effect-wire exec", () => {
  const execServer = (options: Partial<Exec.ServerOptions> = {}) =>
    Exec.make({ address: LOOPBACK, allow: ["sh"], allowUnsafe: ["sh"], timeout: "5 seconds", ...options })

  it.live("copies the command's stdout and stderr apart and exits with its code", () =>
    Effect.gen(function*() {
      const server = yield* execServer()
      const run = yield* cli(["exec", at(server.address), "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
      assert.strictEqual(run.code, 3)
      assert.strictEqual(run.stdout, "out\n")
      assert.strictEqual(run.stderr, "err\n")
    }))

  it.live("a refused command is one error line and exit 126; death by signal n is 128+n", () =>
    Effect.gen(function*() {
      const server = yield* execServer()
      const [refused, killed] = yield* Effect.all([
        cli(["exec", at(server.address), "--", "rm", "-rf", "/"]),
        cli(["exec", at(server.address), "--", "sh", "-c", "kill -9 $$"])
      ], { concurrency: 2 })
      assert.strictEqual(refused.code, 126)
      assert.strictEqual(refused.stdout, "")
      assertOneErrorLine(refused.stderr, /^error: CommandNotAllowed: command "rm" is not allowed/)
      assert.strictEqual(killed.code, 137, killed.stderr)
    }))

  it.live("--token-env sends the token; without it the server refuses (126)", () =>
    Effect.gen(function*() {
      const server = yield* execServer({ token: "s3cret" })
      const args = ["exec", at(server.address), "--token-env", "EW_TEST_TOKEN", "--", "sh", "-c", "echo in"]
      const [allowed, refused] = yield* Effect.all([
        cli(args, { env: { EW_TEST_TOKEN: "s3cret" } }),
        cli(["exec", at(server.address), "--", "sh", "-c", "echo in"])
      ], { concurrency: 2 })
      assert.strictEqual(allowed.code, 0, allowed.stderr)
      assert.strictEqual(allowed.stdout, "in\n")
      assert.strictEqual(refused.code, 126)
      assertOneErrorLine(refused.stderr, /^error: Unauthorized: /)
    }))

  it.live("the server's timeout is exit 124, after the output so far", () =>
    Effect.gen(function*() {
      const server = yield* execServer({ timeout: "300 millis", killGrace: "100 millis" })
      const run = yield* cli(["exec", at(server.address), "--", "sh", "-c", "echo started; exec sleep 10"])
      assert.strictEqual(run.code, 124)
      assert.strictEqual(run.stdout, "started\n")
      assertOneErrorLine(run.stderr, /^error: .*did not finish within/)
    }))

  it.live("no server is one error line and exit 125", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const run = yield* cli(["exec", `127.0.0.1:${port}`, "--", "sh", "-c", "true"])
      assert.strictEqual(run.code, 125)
      assertOneErrorLine(run.stderr, new RegExp(`^error: connection to 127\\.0\\.0\\.1:${port} refused: `))
    }))

  it.live("against a server that is not an exec server: one error line and exit 122", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: LOOPBACK })
      const run = yield* cli(["exec", at(server.address), "--", "uname"])
      assert.strictEqual(run.code, 122)
      assert.strictEqual(run.stdout, "")
      assertOneErrorLine(run.stderr, /^error: 127\.0\.0\.1:\d+ is not an effect-wire exec server: /)
    }))

  it.live("against a server that never answers: one error line and exit 123 after --timeout", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: LOOPBACK, framing: "lines" })
      const started = Date.now()
      const run = yield* cli(["exec", at(server.address), "--timeout", "500ms", "--", "uname"])
      assert.strictEqual(run.code, 123)
      assert.isAtLeast(Date.now() - started, 500)
      assertOneErrorLine(run.stderr, /^error: no answer from 127\.0\.0\.1:\d+ within 500ms \(--timeout\): /)
    }))

  it.live("without --timeout it waits 30 s for an answer, then exits 123", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: LOOPBACK, framing: "lines" })
      const started = Date.now()
      const run = yield* cli(["exec", at(server.address), "--", "uname"], { timeoutMs: 40_000 })
      assert.strictEqual(run.code, 123, run.stderr)
      assert.isAtLeast(Date.now() - started, 30_000)
      assertOneErrorLine(run.stderr, /^error: no answer from 127\.0\.0\.1:\d+ within 30s \(--timeout\): /)
    }), { timeout: 45_000 })

  it.live("a reader that goes away (| head -c 10) is no error: the exit code stays the command's", () =>
    Effect.gen(function*() {
      const server = yield* execServer()
      const run = yield* cli(["exec", at(server.address), "--", "sh", "-c", "seq 1 200000; exit 3"], { stdoutLimit: 10 })
      assert.strictEqual(run.stdout, "1\n2\n3\n4\n5\n")
      assert.strictEqual(run.stderr, "")
      assert.strictEqual(run.code, 3)
    }))

  it.live("interrupted by SIGTERM it exits 143, and the server stops the command", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const server = yield* execServer({ timeout: "20 seconds" })
      const marker = Path.join(dir, "started")
      const run = yield* started(["exec", at(server.address), "--", "sh", "-c", `touch ${marker}; exec sleep 20`])
      yield* fileAppears(marker)
      run.signal("SIGTERM")
      const exit = yield* Effect.promise(() => run.exit)
      assert.strictEqual(exit.code, 143, exit.stderr)
      assert.strictEqual(exit.stderr, "")
    }))

  it.live("a zero duration is refused with one line; never is a duration", () =>
    Effect.gen(function*() {
      const server = yield* execServer()
      const [zero, never] = yield* Effect.all([
        cli(["exec", at(server.address), "--timeout", "0s", "--", "sh", "-c", "true"]),
        cli(["exec", at(server.address), "--timeout", "never", "--", "sh", "-c", "echo ok"])
      ], { concurrency: 2 })
      assert.strictEqual(zero.code, 1)
      assertOneErrorLine(zero.stderr, /^error: --timeout: 0 is not a limit: write a duration above 0, e\.g\. 30s, or never for no limit$/)
      assert.strictEqual(never.code, 0, never.stderr)
      assert.strictEqual(never.stdout, "ok\n")
    }))
})
