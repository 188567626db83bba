/**
 * `effect-wire connect` and `effect-wire exec` as processes, against real
 * servers of this test on loopback: what goes in on stdin, what comes out on
 * stdout and stderr, and the exit code.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Address from "../src/Address.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Exec from "../src/servers/Exec.js"
import * as Upper from "../src/servers/Upper.js"
import { dist, type RunOptions, runCli } from "./helpers/cliBuild.js"
import { freePort } from "./helpers/sockets.js"

const LOOPBACK = Address.tcp("127.0.0.1", 0)

const cli = (args: ReadonlyArray<string>, options?: RunOptions) => Effect.promise(() => runCli(dist, args, options))
const at = (address: Address.Address) => Address.format(address)

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

  it.live("a bad address is one error line and exit 1", () =>
    Effect.gen(function*() {
      const run = yield* cli(["connect", "localhost"])
      assert.strictEqual(run.code, 1)
      assertOneErrorLine(run.stderr, /^error: invalid address "localhost"/)
    }))
})

describe.concurrent("effect-wire exec", () => {
  const execServer = (options: Partial<Exec.ServerOptions> = {}) =>
    Exec.make({ address: LOOPBACK, allow: ["sh"], timeout: "5 seconds", ...options })

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
})
