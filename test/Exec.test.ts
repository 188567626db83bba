import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import * as Schema from "effect/Schema"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Exec from "../src/servers/Exec.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { isAlive, waitForLine, waitGone } from "./helpers/processes.js"
import { assertOptionDefect, defectOf } from "./helpers/defects.js"

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** A request frame around any payload, valid or not. */
const rawFrame = (payload: Uint8Array | string): Uint8Array => {
  const body = typeof payload === "string" ? utf8(payload) : payload
  const out = new Uint8Array(4 + body.byteLength)
  new DataView(out.buffer).setUint32(0, body.byteLength)
  out.set(body, 4)
  return out
}

/** Every response in `bytes`, in order; fails the test on leftovers. */
const decodeAll = (bytes: Uint8Array): Array<Exec.ExecResult> => {
  const results: Array<Exec.ExecResult> = []
  let rest = bytes
  for (let i = 0; i < 1_000 && rest.byteLength > 0; i++) {
    const step = Result.getOrThrow(Exec.decodeResponse(rest))
    if (step._tag === "NeedMore") return assert.fail(`${rest.byteLength} bytes left over, ${step.needed} needed`)
    results.push(step.result)
    rest = rest.subarray(step.consumed)
  }
  return results
}

const readToEnd = (socket: Socket.Socket) =>
  Effect.map(Stream.runCollect(socket.reads), (chunks) => Buffer.concat(chunks))

/** Start a server in the test's scope and return its address. */
const serve = (options: Omit<Exec.ServerOptions, "address">) =>
  Effect.map(Exec.make({ ...options, address: Address.tcp("127.0.0.1", 0) }), (server) => server.address)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(NodePath.join(tmpdir(), "exec-server-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("Exec server over loopback", () => {
  it.live("runs allowed commands; a non-zero exit is a result, a refusal a typed error", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["echo", "sh"], allowUnsafe: ["sh"] })
      const client = yield* Exec.client(address)
      const ok = yield* client.run(["echo", "hello"])
      assert.strictEqual(text(ok.stdout), "hello\n")
      assert.strictEqual(ok.header.exitCode, 0)
      const failed = yield* client.run(["sh", "-c", "echo oops >&2; exit 1"])
      assert.strictEqual(failed.header.exitCode, 1)
      assert.strictEqual(text(failed.stderr), "oops\n")
      const refused = yield* client.run(["cat", "/etc/passwd"]).pipe(
        Effect.catchTag("CommandNotAllowed", (e) => Effect.succeed(e.message))
      )
      assert.include(refused, "argv[0] must be exactly one of: echo, sh")
      // The connection stays usable after a refusal.
      assert.strictEqual(text((yield* client.run(["echo", "again"])).stdout), "again\n")
    }))

  it.live("no shell: metacharacters reach the program literally", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["echo"] })
      const client = yield* Exec.client(address)
      const args = [";", "$(id)", "`id`", "*", "$HOME", "| id", "&& id"]
      const result = yield* client.run(["echo", ...args])
      assert.strictEqual(text(result.stdout), args.join(" ") + "\n")
    }))

  it.live("a timed-out command is killed with everything it started before the answer arrives", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["sh"], allowUnsafe: ["sh"], timeout: "300 millis", killGrace: "200 millis" })
      const client = yield* Exec.client(address)
      const result = yield* client.request({ argv: ["sh", "-c", "echo $$; sleep 30 & echo $!; sleep 30"] })
      assert.strictEqual(result.header.error?._tag, "Timeout")
      const [pgid, background] = text(result.stdout).trim().split("\n").map(Number)
      assert.isTrue(Number.isInteger(pgid) && Number.isInteger(background), text(result.stdout))
      // The group got SIGKILL before the answer was written; only reaping may lag.
      assert.isTrue(yield* waitGone(-pgid!), "the process group survived")
      assert.isFalse(isAlive(background!), "the background sleep survived")
      const tag = yield* client.run(["sh", "-c", "sleep 30"]).pipe(
        Effect.as("ran"),
        Effect.catchTag("Timeout", (e) => Effect.succeed(e._tag))
      )
      assert.strictEqual(tag, "Timeout")
    }))

  it.live("output past maxOutput is cut and flagged", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["yes"], maxOutput: 100_000 })
      const client = yield* Exec.client(address)
      const result = yield* client.run(["yes"])
      assert.isTrue(result.header.truncated)
      assert.strictEqual(result.stdout.byteLength, 100_000)
      assert.strictEqual(result.header.stdoutLength, 100_000)
    }))

  it.live("requests pipelined in one write are answered in order, then the half-closed connection ends", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["echo", "sh"], allowUnsafe: ["sh"], concurrency: 4 })
      const socket = yield* Socket.connect(address)
      // The first command is the slowest: out-of-order answers would put it last.
      const wire = Buffer.concat([
        Exec.encodeRequest({ argv: ["sh", "-c", "sleep 0.2; echo first"] }),
        Exec.encodeRequest({ argv: ["echo", "second"] }),
        Exec.encodeRequest({ argv: ["rm", "-rf", "/"] }),
        Exec.encodeRequest({ argv: ["sh", "-c", "echo third >&2; exit 3"] })
      ])
      yield* socket.write(wire)
      yield* socket.end
      const results = decodeAll(yield* readToEnd(socket))
      assert.strictEqual(results.length, 4)
      assert.strictEqual(text(results[0]!.stdout), "first\n")
      assert.strictEqual(text(results[1]!.stdout), "second\n")
      assert.strictEqual(results[2]!.header.error?._tag, "CommandNotAllowed")
      assert.strictEqual(text(results[3]!.stderr), "third\n")
      assert.strictEqual(results[3]!.header.exitCode, 3)

      const client = yield* Exec.client(address)
      const all = yield* client.runAll([["sh", "-c", "sleep 0.1; echo a"], ["nope"], ["echo", "c"]])
      assert.deepStrictEqual(
        all.map(Result.match({ onFailure: (e) => e._tag, onSuccess: (r) => text(r.stdout) })),
        ["a\n", "CommandNotAllowed", "c\n"]
      )
    }))

  it.live("a token is required, compared exactly, and can be redacted", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["echo"], token: Redacted.make("s3cret-token") })
      const outcome = (options: Exec.ClientOptions) =>
        Effect.scoped(Effect.gen(function*() {
          const client = yield* Exec.client(address, options)
          return yield* client.run(["echo", "in"]).pipe(
            Effect.map((r) => text(r.stdout)),
            Effect.catchTag("Unauthorized", (e) => Effect.succeed(`Unauthorized: ${e.message}`))
          )
        }))
      assert.include(yield* outcome({}), "Unauthorized: this server requires a token")
      assert.strictEqual(yield* outcome({ token: "s3cret-tokeN" }), "Unauthorized: the token is wrong")
      assert.strictEqual(yield* outcome({ token: "s3cret-token" }), "in\n")
      assert.strictEqual(yield* outcome({ token: Redacted.make("s3cret-token") }), "in\n")
    }))

  it.live("an oversized request frame is answered RequestTooLarge (FrameTooLarge on the wire) and closes only its connection", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["echo"], maxRequestBytes: 1024 })
      const bystander = yield* Exec.client(address)
      assert.strictEqual(text((yield* bystander.run(["echo", "before"])).stdout), "before\n")

      const socket = yield* Socket.connect(address)
      const body = Buffer.alloc(200_000, 0x61)
      yield* socket.writeAll([
        Exec.encodeRequest({ argv: ["echo", "ok"] }),
        rawFrame(body),
        Exec.encodeRequest({ argv: ["echo", "never"] })
      ])
      // No half-close from us: the reads end because the server closes.
      const wire = yield* readToEnd(socket)
      assert.include(text(wire), "\"error\":{\"_tag\":\"FrameTooLarge\",\"message\":")
      const results = decodeAll(wire)
      assert.strictEqual(results.length, 2)
      assert.strictEqual(text(results[0]!.stdout), "ok\n")
      const error = results[1]!.header.error
      assert.instanceOf(error, Exec.RequestTooLarge)
      assert.include(error!.message, "200000 bytes exceeds the server's limit of 1024")

      // The typed client: the refusal, then the closed connection for what follows.
      const client = yield* Exec.client(address)
      const big = yield* Effect.flip(client.run(["echo", "x".repeat(2_000)]))
      assert.instanceOf(big, Exec.RequestTooLarge)
      const after = yield* Effect.flip(client.run(["echo", "late"]))
      assert.strictEqual(after._tag, "ExecConnectionClosed")

      assert.strictEqual(text((yield* bystander.run(["echo", "after"])).stdout), "after\n")
    }))

  it.live("malformed requests are BadRequest and the connection stays usable", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["echo"] })
      const socket = yield* Socket.connect(address)
      yield* socket.write(Buffer.concat([
        rawFrame("not json"),
        rawFrame("{\"argv\": []}"),
        rawFrame(new Uint8Array([0xff, 0xfe])),
        rawFrame("{\"argv\": [\"echo\", \"still here\"]}")
      ]))
      yield* socket.end
      const results = decodeAll(yield* readToEnd(socket))
      assert.deepStrictEqual(results.map((r) => r.header.error?._tag), ["BadRequest", "BadRequest", "BadRequest", undefined])
      assert.include(results[0]!.header.error!.message, "is not JSON")
      assert.strictEqual(text(results[3]!.stdout), "still here\n")
      // The client checks requests itself and sends nothing it knows to be bad.
      const client = yield* Exec.client(address)
      const local = yield* client.request({ argv: ["echo", "a\u0000b"] })
      assert.strictEqual(local.header.error?._tag, "BadRequest")
      assert.strictEqual(text((yield* client.run(["echo", "fine"])).stdout), "fine\n")
    }))

  it.live("refuses to start without an allowlist, with an unknown command, or exposed without a token", () =>
    Effect.gen(function*() {
      const start = (options: Exec.ServerOptions) => Effect.flip(Effect.scoped(Layer.build(Exec.layer(options))))
      const missing = yield* start({ allow: [] })
      assert.strictEqual(missing._tag, "MissingAllowlist")
      const untyped = yield* start({} as Exec.ServerOptions)
      assert.strictEqual(untyped._tag, "MissingAllowlist")
      const notFound = yield* start({ allow: ["no-such-command-7f3a"] })
      assert.strictEqual(notFound._tag, "CommandNotFound")
      const exposed = yield* start({ allow: ["echo"], address: Address.tcp("0.0.0.0", 0) })
      assert.strictEqual(exposed._tag, "InsecureBind")
      assert.include(exposed.message, "--token")
      const exposed6 = yield* start({ allow: ["echo"], address: Address.tcp("::", 0) })
      assert.strictEqual(exposed6._tag, "InsecureBind")
      const badLimit = yield* start({ allow: ["echo"], maxConnections: 0 })
      assert.strictEqual(badLimit._tag, "InvalidExecOptions")
    }))

  it.live("serves 20 concurrent clients; the concurrency limit is shared by all connections", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const address = yield* serve({ allow: ["echo", "sh"], allowUnsafe: ["sh"], concurrency: 2 })
      const outputs = yield* Effect.all(
        Array.from({ length: 20 }, (_, i) =>
          Effect.scoped(Effect.flatMap(Exec.client(address), (c) => c.run(["echo", `client ${i}`])))),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(outputs.map((r) => text(r.stdout)), Array.from({ length: 20 }, (_, i) => `client ${i}\n`))
      // Each run registers itself, counts the registered runs, holds its slot, then leaves.
      const probe = "touch \"$0/$$\"; ls \"$0\" | wc -l; sleep 0.15; rm \"$0/$$\""
      const seen = yield* Effect.all(
        Array.from({ length: 6 }, () =>
          Effect.scoped(Effect.flatMap(Exec.client(address), (c) => c.run(["sh", "-c", probe, dir])))),
        { concurrency: "unbounded" }
      )
      const inFlight = seen.map((r) => Number(text(r.stdout).trim()))
      assert.strictEqual(Math.max(...inFlight), 2, `in flight per start: ${inFlight}`)
    }))

  it.live("graceful shutdown: the request in hand is answered in full, then the server is gone", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const marker = NodePath.join(dir, "started")
      const serverScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Exec.layerTest({ allow: ["sh"], allowUnsafe: ["sh"] }), serverScope)
      const server = Context.get(context, Exec.Exec)
      const client = yield* Exec.client(server.address)
      const running = yield* Effect.forkChild(
        client.run(["sh", "-c", "echo up > \"$0\"; sleep 0.3; head -c 100000 /dev/zero", marker])
      )
      yield* waitForLine(marker)
      // Pipelined behind the one in hand: read ahead by the server, but never started.
      const second = NodePath.join(dir, "second")
      const queued = yield* Effect.forkChild(client.run(["sh", "-c", "echo ran > \"$0\"", second]))
      const closing = yield* Effect.forkChild(Scope.close(serverScope, Exit.void))
      const result = yield* Fiber.join(running)
      assert.strictEqual(result.header.exitCode, 0)
      assert.strictEqual(result.stdout.byteLength, 100_000)
      assert.strictEqual((yield* Effect.flip(Fiber.join(queued)))._tag, "ExecConnectionClosed")
      assert.isFalse(existsSync(second), "a request read after the drain began was started")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(yield* server.shutdown, { finished: 1, cut: 0 })
      const refused = yield* Effect.flip(Effect.scoped(Socket.connect(server.address)))
      assert.strictEqual(refused._tag, "ConnectionRefused")
      const late = yield* Effect.flip(client.run(["sh", "-c", "true"]))
      assert.strictEqual(late._tag, "ExecConnectionClosed")
    }).pipe(Effect.scoped))

  it.live("a client that gives up mid-command makes the server kill the command", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const address = yield* serve({ allow: ["sh"], allowUnsafe: ["sh"], timeout: "30 seconds", killGrace: "300 millis" })
      const script = "sleep 30 & echo $$ $! > \"$0\"; wait"

      // An interrupted call resets the connection.
      const client = yield* Exec.client(address)
      const pidFile = NodePath.join(dir, "interrupted")
      const running = yield* Effect.forkChild(client.run(["sh", "-c", script, pidFile]))
      const [pgid, background] = (yield* waitForLine(pidFile)).trim().split(" ").map(Number)
      yield* Fiber.interrupt(running)
      assert.isTrue(yield* waitGone(-pgid!), "the process group outlived the client")
      assert.isFalse(isAlive(background!))
      assert.strictEqual((yield* Effect.flip(client.run(["sh", "-c", "true"])))._tag, "ExecConnectionClosed")

      // So does the client's own timeout.
      const timed = yield* Exec.client(address, { timeout: "300 millis" })
      const error = yield* Effect.flip(timed.run(["sh", "-c", "sleep 30"]))
      assert.strictEqual(error._tag, "ResponseTimeout")
      assert.include(error.message, "within 300ms")
      assert.strictEqual((yield* Effect.flip(timed.run(["sh", "-c", "true"])))._tag, "ExecConnectionClosed")

      // A raw client that resets its connection.
      const socket = yield* Socket.connect(address)
      const rawFile = NodePath.join(dir, "raw")
      yield* socket.write(Exec.encodeRequest({ argv: ["sh", "-c", script, rawFile] }))
      const [rawGroup] = (yield* waitForLine(rawFile)).trim().split(" ").map(Number)
      yield* socket.reset
      assert.isTrue(yield* waitGone(-rawGroup!), "the process group outlived the reset")
    }))

  it.live("idleTimeout closes a silent connection but never a running command's", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["sh"], allowUnsafe: ["sh"], idleTimeout: "200 millis" })
      const client = yield* Exec.client(address)
      const result = yield* client.run(["sh", "-c", "sleep 0.4; echo slow"])
      assert.strictEqual(text(result.stdout), "slow\n")
      const silent = yield* Socket.connect(address)
      const started = Date.now()
      const bytes = yield* readToEnd(silent)
      assert.strictEqual(bytes.byteLength, 0)
      assert.isBelow(Date.now() - started, 2_000)
    }))
})

describe("Exec options: the rule for zero and never (typed InvalidExecOptions)", () => {
  const refused = (options: Exec.ServerOptions) =>
    Effect.flip(Effect.scoped(Exec.make({ ...options, address: Address.tcp("127.0.0.1", 0) })))

  it.live("0 is refused for every limit, with what to write instead; only idleTimeout takes Duration.infinity", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Exec.ServerOptions, string, ReadonlyArray<string>]> = [
        [{ allow: ["echo"], maxConnections: 0 }, "maxConnections", ["must be a positive integer", "0 does not mean"]],
        [{ allow: ["echo"], maxOutput: 0 }, "maxOutput", ["must be a positive integer", "0 does not mean"]],
        [{ allow: ["echo"], concurrency: 0 }, "concurrency", ["must be a positive integer up to 1024, got 0"]],
        [{ allow: ["echo"], maxRequestBytes: 0 }, "maxRequestBytes", ["must be a positive integer"]],
        [{ allow: ["echo"], timeout: 0 }, "timeout", ["must be above 0, got 0"]],
        [{ allow: ["echo"], killGrace: "0 millis" }, "killGrace", ["must be above 0"]],
        [{ allow: ["echo"], queueTimeout: 0 }, "queueTimeout", ["must be above 0"]],
        [{ allow: ["echo"], shutdownTimeout: 0 }, "shutdownTimeout", ["must be above 0, got 0"]],
        [{ allow: ["echo"], idleTimeout: 0 }, "idleTimeout", ["must be above 0", "use Duration.infinity for none"]],
        [{ allow: ["echo"], timeout: Duration.infinity }, "timeout", ["must be finite"]],
        [{ allow: ["echo"], shutdownTimeout: Duration.infinity }, "shutdownTimeout", ["must be finite"]]
      ]
      for (const [options, option, parts] of cases) {
        const error = yield* refused(options)
        assert.strictEqual(error._tag, "InvalidExecOptions", JSON.stringify(options))
        if (error._tag !== "InvalidExecOptions") continue
        assert.strictEqual(error.option, option)
        for (const part of parts) assert.include(error.message, part, option)
      }
    }))

  it.live("idleTimeout: Duration.infinity is no idle timeout; the server's limits report it", () =>
    Effect.gen(function*() {
      const never = yield* Exec.make({ allow: ["echo"], address: Address.tcp("127.0.0.1", 0), idleTimeout: Duration.infinity })
      assert.strictEqual(never.limits.idleTimeout, Duration.infinity)
      const client = yield* Exec.client(never.address)
      assert.strictEqual(text((yield* client.run(["echo", "still here"])).stdout), "still here\n")
      const idle = yield* Exec.make({
        allow: ["echo"],
        address: Address.tcp("127.0.0.1", 0),
        idleTimeout: "45 seconds",
        maxConnections: 9,
        shutdownTimeout: "3 seconds"
      })
      assert.deepStrictEqual(idle.limits, {
        maxConnections: 9,
        overflow: "queue",
        idleTimeout: Duration.seconds(45),
        shutdownTimeout: Duration.seconds(3)
      })
    }))
})

describe("Exec client", () => {
  it.effect("a connection that ends mid-response is ExecConnectionClosed", () =>
    Effect.gen(function*() {
      const [near, far] = yield* MemorySocket.makePair()
      const client = yield* Exec.clientFromSocket(near)
      const running = yield* Effect.forkChild(client.run(["echo", "hi"]))
      // The far end plays a server that dies after part of the stdout.
      const wire = Buffer.concat(Exec.encodeResponse({
        header: { exitCode: 0, signal: null, stdoutLength: 0, stderrLength: 0, truncated: false, durationMs: 1 },
        stdout: utf8("hello world\n"),
        stderr: new Uint8Array(0)
      }))
      yield* Stream.runHead(far.reads)
      yield* far.write(wire.subarray(0, wire.byteLength - 5))
      yield* far.close
      const error = yield* Effect.flip(Fiber.join(running))
      assert.strictEqual(error._tag, "ExecConnectionClosed")
      assert.include(error.message, "in the middle of a response")
    }))

  it("the response decoder reports the frame in progress (pending), so a frame deadline can see it", () => {
    const wire = Buffer.concat(Exec.encodeResponse({
      header: { exitCode: 0, signal: null, stdoutLength: 0, stderrLength: 0, truncated: false, durationMs: 1 },
      stdout: utf8("hello world\n"),
      stderr: new Uint8Array(0)
    }))
    const decoder = Exec.responseCodec().decoder()
    const out: Array<Exec.ExecResult> = []
    assert.strictEqual(decoder.pending, 0)
    assert.isUndefined(decoder.push(wire.subarray(0, wire.byteLength - 5), out))
    assert.strictEqual(decoder.pending, wire.byteLength - 5)
    assert.isUndefined(decoder.push(wire.subarray(wire.byteLength - 5), out))
    assert.strictEqual(out.length, 1)
    assert.strictEqual(decoder.pending, 0)
  })

  it.effect("an oversized response is refused without buffering it", () =>
    Effect.gen(function*() {
      const [near, far] = yield* MemorySocket.makePair()
      const client = yield* Exec.clientFromSocket(near, { maxBodyBytes: 1_000 })
      const running = yield* Effect.forkChild(client.run(["echo", "hi"]))
      yield* Stream.runHead(far.reads)
      const [header] = Exec.encodeResponse({
        header: { exitCode: 0, signal: null, stdoutLength: 0, stderrLength: 0, truncated: false, durationMs: 1 },
        stdout: new Uint8Array(1_000_000),
        stderr: new Uint8Array(0)
      })
      yield* far.write(header!)
      const error = yield* Effect.flip(Fiber.join(running))
      assert.strictEqual(error._tag, "MalformedResponse")
      assert.include(error.message, "exceed the limit of 1000")
    }))

  it.live("server and client over MemorySocket, one byte per read", () =>
    Effect.gen(function*() {
      const listener = yield* MemorySocket.listen()
      const server = yield* Exec.fromListener(listener, { allow: ["echo"] })
      const socket = yield* listener.connect({ send: { maxChunkSize: 1 }, receive: { maxChunkSize: 7 } })
      const client = yield* Exec.clientFromSocket(socket)
      const results = yield* client.runAll([["echo", "one"], ["echo", "two"], ["false"]])
      assert.deepStrictEqual(
        results.map(Result.match({ onFailure: (e) => e._tag, onSuccess: (r) => text(r.stdout) })),
        ["one\n", "two\n", "CommandNotAllowed"]
      )
      assert.strictEqual((yield* server.stats).accepted, 1)
    }))

  it.live("composes with other servers in one Layer", () =>
    Effect.gen(function*() {
      const echo = Server.layer({
        address: Address.tcp("127.0.0.1", 0),
        handler: (socket) => Stream.run(socket.reads, socket.writes)
      })
      const context = yield* Layer.build(Layer.mergeAll(echo, Exec.layerTest({ allow: ["echo"] })))
      const exec = Context.get(context, Exec.Exec)
      assert.notStrictEqual(Address.format(exec.address), Address.format(Context.get(context, Server.Server).address))
      const client = yield* Exec.client(exec.address)
      assert.strictEqual(text((yield* client.run(["echo", "merged"])).stdout), "merged\n")
    }))
})

describe("Exec error tags", () => {
  it.effect("Framing's FrameTooLarge and the exec RequestTooLarge are caught by their own tags", () =>
    Effect.gen(function*() {
      const framing = yield* Effect.flip(
        Effect.fromResult(Framing.decodeAll(Framing.lengthPrefixed({ maxFrameLength: 1 }), new Uint8Array([0, 0, 0, 5])))
      )
      // As a client gets it: decoded from the wire, where its tag is still "FrameTooLarge".
      const exec = Schema.decodeUnknownSync(Exec.ExecError)({ _tag: "FrameTooLarge", message: "too long" })
      const which = (error: Framing.FrameError | Exec.ExecError) =>
        Effect.fail(error).pipe(
          Effect.catchTag("FrameTooLarge", (e) => Effect.succeed(`framing, limit ${e.limit}`)),
          Effect.catchTag("RequestTooLarge", (e) => Effect.succeed(`exec, ${e.message}`)),
          Effect.catch((e) => Effect.succeed(`other, ${e._tag}`))
        )
      assert.strictEqual(yield* which(framing), "framing, limit 1")
      assert.strictEqual(yield* which(exec), "exec, too long")
    }))

  it.effect("the byte servers' ConnectionClosed and the exec client's ExecConnectionClosed are caught by their own tags", () =>
    Effect.gen(function*() {
      const [near, far] = yield* MemorySocket.makePair()
      const client = yield* Exec.clientFromSocket(near)
      const running = yield* Effect.forkChild(client.run(["echo", "hi"]))
      yield* Stream.runHead(far.reads)
      yield* far.close
      const exec = yield* Effect.flip(Fiber.join(running))
      const byteServer = new Echo.ConnectionClosed({ address: near.remoteAddress, received: 0 })
      const which = (error: Echo.ConnectionClosed | Exec.ClientError) =>
        Effect.fail(error).pipe(
          Effect.catchTag("ConnectionClosed", (e) => Effect.succeed(`byte server, ${e.received} bytes`)),
          Effect.catchTag("ExecConnectionClosed", (e) => Effect.succeed(`exec, ${e.reason}`)),
          Effect.catch((e) => Effect.succeed(`other, ${e._tag}`))
        )
      assert.strictEqual(yield* which(byteServer), "byte server, 0 bytes")
      assert.include(yield* which(exec), "exec, the server closed it before answering 1 request(s)")
    }))
})

describe("Exec client options: timeout (a defect, like every option given in code)", () => {
  it.effect("clientFromSocket: 0 and a negative timeout are refused, naming the option", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Duration.Input, ReadonlyArray<string>]> = [
        [0, ["Exec client: timeout must be above 0, got 0", "use Duration.infinity for none"]],
        ["0 seconds", ["Exec client: timeout must be above 0"]],
        [-1, ["Exec client: timeout must be above 0, got -1"]],
        [Duration.millis(-5), ["Exec client: timeout must be above 0"]]
      ]
      for (const [timeout, parts] of cases) {
        const defect = yield* defectOf(Effect.scoped(Effect.gen(function*() {
          const [near] = yield* MemorySocket.makePair()
          return yield* Exec.clientFromSocket(near, { timeout })
        })))
        assertOptionDefect(defect, ...parts)
      }
    }))

  it.live("client: a bad timeout is the client's defect, found before connecting", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
      const defect = yield* defectOf(Effect.scoped(Exec.client(listener.address, { timeout: 0 })))
      assertOptionDefect(defect, "Exec client: timeout must be above 0, got 0")
      assert.strictEqual(yield* listener.connections, 0)
    }).pipe(Effect.scoped))

  it.effect("Duration.infinity is no timeout: a call waits as long as the answer takes", () =>
    Effect.gen(function*() {
      const [near, far] = yield* MemorySocket.makePair()
      const client = yield* Exec.clientFromSocket(near, { timeout: Duration.infinity })
      const running = yield* Effect.forkChild(client.run(["echo", "hi"]))
      yield* Stream.runHead(far.reads)
      yield* TestClock.adjust("1000 days")
      yield* far.writeAll(Exec.encodeResponse({
        header: { exitCode: 0, signal: null, stdoutLength: 0, stderrLength: 0, truncated: false, durationMs: 1 },
        stdout: utf8("hi\n"),
        stderr: new Uint8Array(0)
      }))
      assert.strictEqual(text((yield* Fiber.join(running)).stdout), "hi\n")
    }))

  it.live("client: Duration.infinity connects with the OS's own timeout and answers", () =>
    Effect.gen(function*() {
      const address = yield* serve({ allow: ["echo"] })
      const client = yield* Exec.client(address, { timeout: Duration.infinity })
      assert.strictEqual(text((yield* client.run(["echo", "no limit"])).stdout), "no limit\n")
    }))
})
