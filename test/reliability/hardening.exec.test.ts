/**
 * Hardening of the exec server (issue 18): what an adversarial review found
 * the rest of the suite did not cover, each case over real sockets and, where
 * the finding is about the process, a real `effect-wire serve exec` process.
 * The rows land in the summary's "hardening" block.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Address from "../../src/Address.js"
import * as Exec from "../../src/servers/Exec.js"
import * as Socket from "../../src/Socket.js"
import { captureLogs, concatBytes, lengthFrame, noUnhandledErrors, printSummary, track } from "./harness.js"

afterAll(printSummary)

const loopback = Address.tcp("127.0.0.1", 0)
const text = (b: Uint8Array) => new TextDecoder().decode(b)
const utf8 = (s: string) => new TextEncoder().encode(s)

/** Every response in `bytes`, in order, and the bytes left over. */
const decodeAll = (bytes: Uint8Array): { readonly results: Array<Exec.ExecResult>; readonly rest: number } => {
  const results: Array<Exec.ExecResult> = []
  let rest = bytes
  for (let i = 0; i < 1_000 && rest.byteLength > 0; i++) {
    const step = Exec.decodeResponse(rest)
    if (step._tag === "Failure" || step.success._tag === "NeedMore") break
    results.push(step.success.result)
    rest = rest.subarray(step.success.consumed)
  }
  return { results, rest: rest.byteLength }
}

/** Everything the server sends until it closes (or the connection fails). */
const readAll = (socket: Socket.Socket) =>
  Stream.runFold(socket.reads, (): Uint8Array => new Uint8Array(0), (acc, b) => concatBytes([acc, b], acc.length + b.length)).pipe(
    Effect.catch(() => Effect.succeed(new Uint8Array(0)))
  )

describe("exec hardening (issue 18)", () => {
  it.live(
    "finding 6: a request nested 5,000 deep is answered BadRequest on a connection that stays open, before authentication, with no stack trace logged",
    (ctx) => {
      const row = track(ctx, "hardening: nested JSON 5,000 deep")
      const logs = captureLogs()
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const server = yield* Exec.make({ address: loopback, allow: ["echo"], token: "t0ken-for-nesting" })
        const socket = yield* Socket.connect(server.address)
        const nested = `{"argv":${"[".repeat(5_000)}${"]".repeat(5_000)}}`
        // As deep as 64 KiB allows.
        const deeper = `{"argv":["echo",${"[".repeat(30_000)}${"]".repeat(30_000)}]}`
        const deepObject = `{"argv":["echo"],"token":${"{\"a\":".repeat(5_000)}1${"}".repeat(5_000)}}`
        yield* socket.writeAll([
          lengthFrame(utf8(nested)),
          lengthFrame(utf8(deepObject)),
          lengthFrame(utf8(deeper)),
          Exec.encodeRequest({ argv: ["echo", "still", "open"], token: "t0ken-for-nesting" })
        ])
        yield* socket.end
        const { results } = decodeAll(yield* readAll(socket))
        assert.strictEqual(results.length, 4, "every request answered")
        for (const result of results.slice(0, 3)) {
          assert.strictEqual(result.header.error?._tag, "BadRequest")
          assert.isBelow(result.header.error!.message.length, 400, "the message is bounded")
        }
        assert.include(results[2]!.header.error!.message, "Expected string at argv[1], got an array")
        assert.strictEqual(text(results[3]!.stdout), "still open\n")
        const stacks = logs.lines.filter((l) => /RangeError|Maximum call stack|\n\s+at /.test(l.message))
        assert.deepStrictEqual(stacks, [], "no stack trace logged")
        row.connections = 1
        row.bytes = nested.length + deepObject.length + deeper.length
        row.faults = 3
        row.notes.push(`nested 5,000 deep: ${results[0]!.header.error?._tag}, then the connection answered`)
        yield* guard.check
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    },
    30_000
  )
})
