/**
 * Issue 18, finding 8: text from a server never reaches the terminal raw.
 * A fake exec server (plain node:net, speaking the wire format of
 * docs/exec-protocol.md) answers with escape sequences and bidi overrides in
 * its error message; `effect-wire exec` prints one `error:` line where they
 * show as `\x1b`, `\u202e`, … and no control byte is left.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import { errorLine, printable } from "../src/cli/common.js"
import { dist, runCli } from "./helpers/cliBuild.js"

/** C0, DEL, C1 and the bidi controls: what must never reach a terminal from a peer. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

/** A response frame as docs/exec-protocol.md has it: u32 length, header JSON, no bodies. */
const responseFrame = (header: object): Buffer => {
  const json = Buffer.from(JSON.stringify(header), "utf8")
  const length = Buffer.alloc(4)
  length.writeUInt32BE(json.length)
  return Buffer.concat([length, json])
}

/** A server that answers every connection's first bytes with `answer` and closes; released with the scope. */
const fakeExecServer = (answer: Buffer) =>
  Effect.acquireRelease(
    Effect.callback<Net.Server>((resume) => {
      const server = Net.createServer((socket) => {
        socket.on("error", () => {})
        socket.once("data", () => socket.end(answer))
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )

const portOf = (server: Net.Server) => (server.address() as Net.AddressInfo).port

const HOSTILE = "\u001b]0;pwned\u0007\u001b[2J"

describe("printable", () => {
  it("shows control characters, DEL, C1 and bidi controls as escapes, and leaves other text alone", () => {
    assert.strictEqual(printable(HOSTILE), "\\x1b]0;pwned\\x07\\x1b[2J")
    assert.strictEqual(printable("a\tb\rc\u007fd\u009be"), "a\\x09b\\x0dc\\x7fd\\x9be")
    assert.strictEqual(printable("evil\u202egnp.exe \u2066x\u2069"), "evil\\u202egnp.exe \\u2066x\\u2069")
    assert.strictEqual(printable("déjà vu — ok ✓ \\x1b"), "déjà vu — ok ✓ \\x1b")
    // Escaping twice changes nothing: lines built from escaped parts stay as they are.
    assert.strictEqual(printable(printable(HOSTILE)), printable(HOSTILE))
  })

  it("errorLine is one line starting with error:, whatever the text holds", () => {
    const line = errorLine(`first\n  second${HOSTILE}\r\nthird\u2028fourth`)
    assert.strictEqual(line, "error: first; second\\x1b]0;pwned\\x07\\x1b[2J; third\\u2028fourth")
    assert.notMatch(line, UNSAFE)
  })
})

describe("effect-wire exec against a hostile server", () => {
  it.live("a SpawnFailed message with escape sequences is printed as one line with the escapes visible", () =>
    Effect.gen(function*() {
      const server = yield* fakeExecServer(responseFrame({
        exitCode: null,
        signal: null,
        stdoutLength: 0,
        stderrLength: 0,
        truncated: false,
        durationMs: 0,
        error: { _tag: "SpawnFailed", message: `cannot start${HOSTILE}\u202e\nsecond line` }
      }))
      const run = yield* Effect.promise(() => runCli(dist, ["exec", `127.0.0.1:${portOf(server)}`, "--", "true"]))
      assert.strictEqual(run.code, 127, run.stderr)
      assert.strictEqual(run.stdout, "")
      assert.strictEqual(run.stderr, "error: cannot start\\x1b]0;pwned\\x07\\x1b[2J\\u202e; second line\n")
      assert.notMatch(run.stderr.slice(0, -1), UNSAFE)
    }))

  it.live("a refusal's tag and message are escaped too (exit 126)", () =>
    Effect.gen(function*() {
      const server = yield* fakeExecServer(responseFrame({
        exitCode: null,
        signal: null,
        stdoutLength: 0,
        stderrLength: 0,
        truncated: false,
        durationMs: 0,
        error: { _tag: "CommandNotAllowed", message: `no${HOSTILE}` }
      }))
      const run = yield* Effect.promise(() => runCli(dist, ["exec", `127.0.0.1:${portOf(server)}`, "--", "true"]))
      assert.strictEqual(run.code, 126, run.stderr)
      assert.strictEqual(run.stderr, "error: CommandNotAllowed: no\\x1b]0;pwned\\x07\\x1b[2J\n")
    }))

  it.live("an unknown signal name from the server is escaped in its error line (exit 125)", () =>
    Effect.gen(function*() {
      const server = yield* fakeExecServer(responseFrame({
        exitCode: null,
        signal: `SIGPWN${HOSTILE}`,
        stdoutLength: 0,
        stderrLength: 0,
        truncated: false,
        durationMs: 1
      }))
      const run = yield* Effect.promise(() => runCli(dist, ["exec", `127.0.0.1:${portOf(server)}`, "--", "true"]))
      assert.strictEqual(run.code, 125, run.stderr)
      assert.strictEqual(
        run.stderr,
        "error: the server reported neither an exit code nor a signal this machine knows " +
          "(SIGPWN\\x1b]0;pwned\\x07\\x1b[2J)\n"
      )
    }))
})
