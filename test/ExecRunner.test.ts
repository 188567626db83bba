import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import * as Address from "../src/Address.js"
import * as Exec from "../src/servers/Exec.js"
import { isAlive, signalReaches, waitForLine, waitGone } from "./helpers/processes.js"

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

const runnerFor = (options: Exec.ExecOptions) => Effect.flatMap(Exec.makePolicy(options), Exec.makeRunner)

const assertRefused = (result: Exec.ExecResult, tag: Exec.ExecError["_tag"]) => {
  assert.strictEqual(result.header.error?._tag, tag, JSON.stringify(result.header))
  assert.strictEqual(result.header.exitCode, null)
  assert.strictEqual(result.header.durationMs, 0, "nothing may run")
  assert.strictEqual(result.stdout.byteLength + result.stderr.byteLength, 0)
}

describe("Exec policy", () => {
  it.effect("no allowlist fails and says to pass --allow", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Exec.makePolicy({ allow: [] }))
      assert.strictEqual(error._tag, "MissingAllowlist")
      assert.include(error.message, "--allow cmd1,cmd2")
    }))

  it.effect("an allowed name missing from PATH fails at construction", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Exec.makePolicy({ allow: ["echo", "no-such-command-e6b1"] }))
      assert.strictEqual(error._tag, "CommandNotFound")
      assert.include(error.message, "no-such-command-e6b1")
      assert.include(error.message, "PATH")
      const notExecutable = yield* Effect.flip(Exec.makePolicy({ allow: ["/etc/passwd"] }))
      assert.strictEqual(notExecutable._tag, "CommandNotFound")
    }))

  it.effect("names resolve once to absolute executables", () =>
    Effect.gen(function*() {
      const policy = yield* Exec.makePolicy({ allow: ["sh", "echo"], allowUnsafe: ["sh"] })
      for (const file of policy.commands.values()) assert.isTrue(NodePath.isAbsolute(file), file)
      assert.deepStrictEqual([...policy.commands.keys()], ["sh", "echo"])
    }))

  it.effect("rejects allow entries that could be confused or bypassed", () =>
    Effect.gen(function*() {
      for (const entry of ["bin/ls", "./ls", "ls ", "l s", "", "..", "/usr/bin/../bin/ls", "/usr//bin/ls"]) {
        const error = yield* Effect.flip(Exec.makePolicy({ allow: [entry] }))
        assert.strictEqual(error._tag, "InvalidExecOptions", entry)
      }
    }))

  it.effect("rejects unusable limits, an empty token and a missing cwd", () =>
    Effect.gen(function*() {
      const bad: ReadonlyArray<Exec.ExecOptions> = [
        { allow: ["ls"], maxOutput: 0 },
        { allow: ["ls"], concurrency: 1.5 },
        { allow: ["ls"], maxRequestBytes: 2 ** 33 },
        { allow: ["ls"], timeout: 0 },
        { allow: ["ls"], timeout: "forever" as never },
        { allow: ["ls"], token: "" },
        { allow: ["ls"], cwd: "/no/such/dir/e6b1" },
        { allow: ["ls"], env: { "A=B": "x" } }
      ]
      for (const options of bad) {
        const error = yield* Effect.flip(Exec.makePolicy(options))
        assert.strictEqual(error._tag, "InvalidExecOptions", JSON.stringify(options))
      }
    }))

  it.effect("a reachable bind needs a token; loopback and unix sockets do not", () =>
    Effect.gen(function*() {
      const open = yield* Exec.makePolicy({ allow: ["echo"] })
      const guarded = yield* Exec.makePolicy({ allow: ["echo"], token: "s3cret" })
      const refused = Exec.checkBind(open, Address.tcp("0.0.0.0", 9000))
      assert.isTrue(Result.isFailure(refused))
      if (Result.isFailure(refused)) {
        assert.strictEqual(refused.failure._tag, "InsecureBind")
        assert.include(refused.failure.message, "--token")
      }
      assert.isTrue(Result.isFailure(Exec.checkBind(open, Address.tcp("::", 9000))))
      assert.isTrue(Result.isSuccess(Exec.checkBind(open, Address.tcp("127.0.0.1", 9000))))
      assert.isTrue(Result.isSuccess(Exec.checkBind(open, Address.tcp("::1", 9000))))
      assert.isTrue(Result.isSuccess(Exec.checkBind(open, Address.unix("/tmp/exec.sock"))))
      assert.isTrue(Result.isSuccess(Exec.checkBind(guarded, Address.tcp("0.0.0.0", 9000))))
    }))

  it.live("localhost is trusted by what it resolves to, not by its name (issue 18, finding 10)", () =>
    Effect.gen(function*() {
      const open = yield* Exec.makePolicy({ allow: ["echo"] })
      const guarded = yield* Exec.makePolicy({ allow: ["echo"], token: "s3cret" })
      const localhost = Address.tcp("localhost", 9000)
      // By name alone a host is not trusted.
      assert.isTrue(Result.isFailure(Exec.checkBind(open, localhost)))
      const resolvingTo = (...ips: Array<string>): Exec.HostLookup => () => Promise.resolve(ips)
      yield* Exec.checkBindResolved(open, localhost, resolvingTo("127.0.0.1", "::1"))
      const hijacked = yield* Effect.flip(Exec.checkBindResolved(open, localhost, resolvingTo("127.0.0.1", "192.0.2.7")))
      assert.strictEqual(hijacked._tag, "InsecureBind")
      assert.include(hijacked.message, "localhost:9000 (it resolves to 127.0.0.1, 192.0.2.7) without a token")
      assert.strictEqual(
        (yield* Effect.flip(Exec.checkBindResolved(open, Address.tcp("db.internal", 1), resolvingTo("10.0.0.5"))))._tag,
        "InsecureBind"
      )
      yield* Exec.checkBindResolved(guarded, localhost, resolvingTo("192.0.2.7"))
      // The system's resolver: localhost is loopback here, and a server on it starts.
      yield* Exec.checkBindResolved(open, localhost)
      const server = yield* Exec.make({ allow: ["echo"], address: Address.tcp("localhost", 0) })
      const client = yield* Exec.client(server.address)
      assert.strictEqual(new TextDecoder().decode((yield* client.run(["echo", "hi"])).stdout), "hi\n")
    }).pipe(Effect.scoped))
})

describe("Exec allowlist", () => {
  it.live("runs an allowed name and refuses every near miss without running anything", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["echo"] })
      const ok = yield* runner.run({ argv: ["echo", "hi"] })
      assert.strictEqual(text(ok.stdout), "hi\n")
      assert.strictEqual(ok.header.exitCode, 0)
      const echoPath = runner.policy.commands.get("echo")!
      for (const argv0 of ["/bin/sh", "sh", "../bin/echo", "./echo", "echo ", " echo", "ECHO", "", echoPath, "echo;id"]) {
        const result = yield* runner.run({ argv: [argv0, "pwned"] })
        assertRefused(result, "CommandNotAllowed")
        assert.include(result.header.error!.message, "echo")
      }
    }))

  it.live("an absolute path is allowed only when listed literally", () =>
    Effect.gen(function*() {
      const echoPath = (yield* Exec.makePolicy({ allow: ["echo"] })).commands.get("echo")!
      const runner = yield* runnerFor({ allow: [echoPath] })
      assert.strictEqual(text((yield* runner.run({ argv: [echoPath, "x"] })).stdout), "x\n")
      assertRefused(yield* runner.run({ argv: ["echo", "x"] }), "CommandNotAllowed")
    }))

  it.live("no shell: metacharacters reach the program as plain text", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["echo"] })
      const args = [";", "$(id)", "`id`", "*", "$HOME", "|", "&&", "'q'", "> /tmp/x"]
      const result = yield* runner.run({ argv: ["echo", ...args] })
      assert.strictEqual(text(result.stdout), args.join(" ") + "\n")
    }))

  it.live("the child sees only the configured environment and working directory", () =>
    Effect.gen(function*() {
      process.env.EXEC_TEST_SECRET = "leak"
      const minimal = yield* runnerFor({ allow: ["env"], allowUnsafe: ["env"] })
      const names = text((yield* minimal.run({ argv: ["env"] })).stdout).trim().split("\n").map((l) => l.split("=")[0])
      assert.deepStrictEqual(names.sort(), ["LANG", "PATH"])
      const custom = yield* runnerFor({ allow: ["env", "pwd"], allowUnsafe: ["env"], env: { ONLY: "this" }, cwd: tmpdir() })
      assert.strictEqual(text((yield* custom.run({ argv: ["env"] })).stdout), "ONLY=this\n")
      assert.strictEqual(text((yield* custom.run({ argv: ["pwd"] })).stdout), realpathSync(tmpdir()) + "\n")
      delete process.env.EXEC_TEST_SECRET
    }))
})

describe("Exec tokens", () => {
  it.live("missing or wrong token is Unauthorized before anything else; the right one runs", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["echo"], token: Redacted.make("s3cret-token") })
      assertRefused(yield* runner.run({ argv: ["echo", "x"] }), "Unauthorized")
      assertRefused(yield* runner.run({ argv: ["echo", "x"], token: "s3cret-tokem" }), "Unauthorized")
      assertRefused(yield* runner.run({ argv: ["echo", "x"], token: "s" }), "Unauthorized")
      assertRefused(yield* runner.run({ argv: ["echo", "x"], token: "s3cret-token " }), "Unauthorized")
      // The allowlist is not revealed to someone without the token.
      assertRefused(yield* runner.run({ argv: ["sh"], token: "nope" }), "Unauthorized")
      const ok = yield* runner.run({ argv: ["echo", "x"], token: "s3cret-token" })
      assert.strictEqual(text(ok.stdout), "x\n")
    }))
})

describe("Exec process results", () => {
  it.live("reports exit codes and signals, and keeps stderr apart from stdout", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"] })
      const exited = yield* runner.run({ argv: ["sh", "-c", "printf out; printf err >&2; printf more; exit 3"] })
      assert.strictEqual(exited.header.exitCode, 3)
      assert.strictEqual(exited.header.signal, null)
      assert.strictEqual(exited.header.error, undefined)
      assert.strictEqual(text(exited.stdout), "outmore")
      assert.strictEqual(text(exited.stderr), "err")
      assert.strictEqual(exited.header.stdoutLength, 7)
      assert.strictEqual(exited.header.stderrLength, 3)
      assert.isAbove(exited.header.durationMs, 0)
      const killed = yield* runner.run({ argv: ["sh", "-c", "kill -KILL $$"] })
      assert.strictEqual(killed.header.exitCode, null)
      assert.strictEqual(killed.header.signal, "SIGKILL")
    }))

  it.live("stdin is closed: a program reading it sees end of input", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["cat"], timeout: "5 seconds" })
      const result = yield* runner.run({ argv: ["cat"] })
      assert.strictEqual(result.header.exitCode, 0)
      assert.strictEqual(result.header.error, undefined)
    }))

  it.live("timeout kills the whole process group and returns the output so far", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"], timeout: "300 millis" })
      const result = yield* runner.run({ argv: ["sh", "-c", "echo $$; sleep 30 & echo $!; sleep 30"] })
      assert.strictEqual(result.header.error?._tag, "Timeout")
      assert.include(result.header.error!.message, "300ms")
      assert.strictEqual(result.header.signal, "SIGTERM")
      const [pgid, background] = text(result.stdout).trim().split("\n").map(Number)
      assert.isTrue(Number.isInteger(pgid) && Number.isInteger(background), text(result.stdout))
      assert.isTrue(yield* waitGone(-pgid!), "the process group survived")
      assert.isFalse(isAlive(background!), "the background sleep survived")
    }))

  it.live("processes a finished command left behind are killed with it", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"] })
      const result = yield* runner.run({ argv: ["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $$ $!"] })
      assert.strictEqual(result.header.exitCode, 0)
      assert.strictEqual(result.header.error, undefined)
      const [pgid, background] = text(result.stdout).trim().split(" ").map(Number)
      assert.isTrue(yield* waitGone(background!), "the background sleep outlived its request")
      assert.isTrue(yield* waitGone(-pgid!))
    }))

  it.live("a process that escaped the group and holds the pipes cannot stall the answer", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"], timeout: "200 millis", killGrace: "200 millis" })
      const started = Date.now()
      // setsid puts sleep in a new session, out of reach of group signals, still holding stdout.
      const result = yield* runner.run({ argv: ["sh", "-c", "setsid sleep 5 & echo $!; wait"] })
      const elapsed = Date.now() - started
      assert.strictEqual(result.header.error?._tag, "Timeout")
      assert.isBelow(elapsed, 2_000)
      const escaped = Number(text(result.stdout).trim())
      if (Number.isInteger(escaped) && isAlive(escaped)) process.kill(escaped, "SIGKILL")
    }))

  it.live("a group that ignores SIGTERM gets SIGKILL after the grace period", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"], timeout: "200 millis", killGrace: "200 millis" })
      const started = Date.now()
      const result = yield* runner.run({ argv: ["sh", "-c", "trap '' TERM; echo $$; sleep 30 & sleep 30"] })
      const elapsed = Date.now() - started
      assert.strictEqual(result.header.error?._tag, "Timeout")
      assert.strictEqual(result.header.signal, "SIGKILL")
      assert.isAtLeast(elapsed, 380)
      assert.isBelow(elapsed, 3_000)
      assert.isTrue(yield* waitGone(-Number(text(result.stdout).trim())), "the process group survived")
    }))

  it.live("output over maxOutput is cut to exactly maxOutput bytes and the producer is killed", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["yes", "sh"], allowUnsafe: ["sh"], maxOutput: 100_000, timeout: "5 seconds" })
      const result = yield* runner.run({ argv: ["yes"] })
      assert.isTrue(result.header.truncated)
      assert.strictEqual(result.stdout.byteLength, 100_000)
      assert.strictEqual(result.header.stdoutLength, 100_000)
      assert.isTrue(result.stdout.every((b, i) => b === (i % 2 === 0 ? 0x79 : 0x0a)))
      assert.strictEqual(result.header.signal, "SIGTERM")
      assert.strictEqual(result.header.error, undefined)
      // The cap is on stdout and stderr together. The shell's pid (its group) goes
      // to a file: in the output it could be crowded out by the two producers.
      const dir = mkdtempSync(NodePath.join(tmpdir(), "exec-test-"))
      const pidFile = NodePath.join(dir, "pid")
      const both = yield* runner.run({ argv: ["sh", "-c", `echo $$ > '${pidFile}'; yes out & yes err >&2`] })
      assert.isTrue(both.header.truncated)
      assert.strictEqual(both.stdout.byteLength + both.stderr.byteLength, 100_000)
      const pgid = parseInt(yield* waitForLine(pidFile), 10)
      rmSync(dir, { recursive: true })
      assert.isTrue(yield* waitGone(-pgid), "a yes survived")
    }))

  it.live("output of exactly maxOutput bytes is not truncated; 8 MiB arrives whole", () =>
    Effect.gen(function*() {
      const small = yield* runnerFor({ allow: ["head"], maxOutput: 100_000 })
      const exact = yield* small.run({ argv: ["head", "-c", "100000", "/dev/zero"] })
      assert.isFalse(exact.header.truncated)
      assert.strictEqual(exact.header.exitCode, 0)
      assert.strictEqual(exact.stdout.byteLength, 100_000)
      const big = yield* runnerFor({ allow: ["head"] })
      const started = performance.now()
      const full = yield* big.run({ argv: ["head", "-c", String(Exec.defaults.maxOutput), "/dev/zero"] })
      const millis = performance.now() - started
      assert.isFalse(full.header.truncated)
      assert.strictEqual(full.stdout.byteLength, Exec.defaults.maxOutput)
      assert.isBelow(millis, 5_000)
    }))

  it.live("a vanished executable is SpawnFailed", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(NodePath.join(tmpdir(), "exec-test-"))
      const script = NodePath.join(dir, "tool")
      writeFileSync(script, "#!/bin/sh\necho tool\n")
      chmodSync(script, 0o755)
      const runner = yield* runnerFor({ allow: [script] })
      assert.strictEqual(text((yield* runner.run({ argv: [script] })).stdout), "tool\n")
      rmSync(dir, { recursive: true })
      const result = yield* runner.run({ argv: [script] })
      assertRefused(result, "SpawnFailed")
      assert.include(result.header.error!.message, "ENOENT")
    }))
})

describe("Exec concurrency and interruption", () => {
  it.live("never runs more than `concurrency` commands at once", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(NodePath.join(tmpdir(), "exec-test-"))
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"], concurrency: 2, timeout: "10 seconds" })
      // Each run registers itself, counts the registered runs, holds its slot, then leaves.
      const probe = "touch \"$0/$$\"; ls \"$0\" | wc -l; sleep 0.25; rm \"$0/$$\""
      const results = yield* Effect.all(
        Array.from({ length: 6 }, () => runner.run({ argv: ["sh", "-c", probe, dir] })),
        { concurrency: "unbounded" }
      )
      rmSync(dir, { recursive: true })
      const seen = results.map((r) => Number(text(r.stdout).trim()))
      assert.isTrue(results.every((r) => r.header.exitCode === 0), JSON.stringify(results.map((r) => r.header)))
      assert.strictEqual(Math.max(...seen), 2, `in flight per start: ${seen}`)
    }))

  it.live("a request that finds no slot within queueTimeout is answered Timeout without running", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sleep"], concurrency: 1, queueTimeout: "200 millis" })
      const results = yield* Effect.all(
        [runner.run({ argv: ["sleep", "1"] }), runner.run({ argv: ["sleep", "1"] })],
        { concurrency: "unbounded" }
      )
      const ran = results.filter((r) => r.header.exitCode === 0)
      const busy = results.filter((r) => r.header.error?._tag === "Timeout")
      assert.strictEqual(ran.length, 1)
      assert.strictEqual(busy.length, 1)
      assertRefused(busy[0]!, "Timeout")
      assert.include(busy[0]!.header.error!.message, "no free slot")
    }))

  it.live("interrupting a run kills its process group", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(NodePath.join(tmpdir(), "exec-test-"))
      const pidFile = NodePath.join(dir, "pid")
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"], timeout: "30 seconds", killGrace: "500 millis" })
      const fiber = yield* Effect.forkChild(
        runner.run({ argv: ["sh", "-c", "sleep 30 & echo $$ $! > \"$0\"; sleep 30", pidFile] })
      )
      const [pgid, background] = (yield* waitForLine(pidFile)).trim().split(" ").map(Number)
      assert.isTrue(isAlive(-pgid!))
      const started = Date.now()
      yield* Fiber.interrupt(fiber)
      assert.isBelow(Date.now() - started, 2_000)
      // The interruption waited for the cleanup: Node reaps the leader before the run ends.
      assert.isFalse(signalReaches(pgid!), "the leader still existed when the interruption returned")
      rmSync(dir, { recursive: true })
      assert.isTrue(yield* waitGone(-pgid!), "the process group survived the interruption")
      assert.isFalse(isAlive(background!))
      // The slot was given back.
      const after = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"], concurrency: 1 })
      assert.strictEqual((yield* after.run({ argv: ["sh", "-c", "exit 0"] })).header.exitCode, 0)
    }))

  it.live("an interrupted run gives its slot back", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sleep", "echo"], concurrency: 1, killGrace: "200 millis" })
      const fiber = yield* Effect.forkChild(runner.run({ argv: ["sleep", "30"] }))
      yield* Fiber.interrupt(fiber)
      const next = yield* runner.run({ argv: ["echo", "free"] })
      assert.strictEqual(text(next.stdout), "free\n")
    }))
})

describe("Exec wire codecs", () => {
  it.effect("decodeRequest turns every malformed payload into BadRequest", () =>
    Effect.gen(function*() {
      const payloads = [
        new Uint8Array([0xff, 0xfe]),
        utf8("not json"),
        utf8("{\"argv\": []}"),
        utf8("{\"argv\": \"ls -l\"}"),
        utf8("{\"argv\": [\"ls\", 1]}"),
        utf8("{\"argv\": [\"ls\", \"a\\u0000b\"]}"),
        utf8("{\"token\": \"x\"}"),
        utf8("[\"ls\"]")
      ]
      for (const payload of payloads) {
        const decoded = Exec.decodeRequest(payload)
        assert.isTrue(Result.isFailure(decoded), text(payload))
        if (Result.isFailure(decoded)) {
          assert.strictEqual(decoded.failure._tag, "BadRequest")
          // One line that says what is wrong, and where.
          assert.notInclude(decoded.failure.message, "\n", text(payload))
        }
      }
      const where = (json: string): string => {
        const decoded = Exec.decodeRequest(utf8(json))
        return Result.isFailure(decoded) ? decoded.failure.message : assert.fail(`${json} was accepted`)
      }
      assert.include(where("{\"argv\": [\"ls\", 1]}"), "Expected string at argv[1]")
      assert.include(where("{\"argv\": [\"ls\", \"a\\u0000b\"]}"), "must not contain a NUL byte at argv[1]")
      assert.include(where("{\"token\": \"x\"}"), "at argv")
      assert.include(where("{\"argv\": [\"ls\"], \"token\": 7}"), "Expected string at token")
      assert.include(where("not json"), "the request is not JSON")
      assert.include(where("{\"argv\": []}"), "at argv[0]")
      const runner = yield* runnerFor({ allow: ["echo"] })
      assertRefused(yield* runner.runFrame(utf8("{\"argv\": []}")), "BadRequest")
      const ok = yield* runner.runFrame(utf8("{\"argv\": [\"echo\", \"framed\"], \"extra\": 1}"))
      assert.strictEqual(text(ok.stdout), "framed\n")
      const tooLarge = runner.requestTooLarge(70_000)
      assertRefused(tooLarge, "RequestTooLarge")
      assert.include(tooLarge.header.error!.message, "65536")
    }))

  it.effect("response bytes follow the documented layout", () =>
    Effect.sync(() => {
      const chunks = Exec.encodeResponse({
        header: {
          exitCode: 0,
          signal: null,
          stdoutLength: 0,
          stderrLength: 0,
          truncated: false,
          durationMs: 1.5,
          error: new Exec.Timeout({ message: "m" })
        },
        stdout: utf8("hi\n"),
        stderr: utf8("e")
      })
      const json = "{\"exitCode\":0,\"signal\":null,\"stdoutLength\":3,\"stderrLength\":1,\"truncated\":false," +
        "\"durationMs\":1.5,\"error\":{\"_tag\":\"Timeout\",\"message\":\"m\"}}"
      // | length | header JSON | stdout | stderr |, however the bytes are split into chunks.
      const wire = Buffer.concat(chunks)
      assert.deepStrictEqual([...wire.subarray(0, 4)], [0, 0, 0, json.length])
      assert.strictEqual(text(wire.subarray(4, 4 + json.length)), json)
      assert.strictEqual(text(wire.subarray(4 + json.length)), "hi\ne")
      // RequestTooLarge keeps the protocol's tag on the wire, and reads back as itself.
      const refused = Buffer.concat(Exec.encodeResponse(Exec.failureResult(new Exec.RequestTooLarge({ message: "m" }))))
      const refusedJson = "{\"exitCode\":null,\"signal\":null,\"stdoutLength\":0,\"stderrLength\":0,\"truncated\":false," +
        "\"durationMs\":0,\"error\":{\"_tag\":\"FrameTooLarge\",\"message\":\"m\"}}"
      assert.deepStrictEqual([...refused.subarray(0, 4)], [0, 0, 0, refusedJson.length])
      assert.strictEqual(text(refused.subarray(4)), refusedJson)
      const readBack = Result.getOrThrow(Exec.decodeResponse(refused))
      assert.instanceOf(readBack._tag === "Complete" ? readBack.result.header.error : undefined, Exec.RequestTooLarge)
      const request = Exec.encodeRequest({ argv: ["ls", "-l"] })
      const requestJson = "{\"argv\":[\"ls\",\"-l\"]}"
      assert.deepStrictEqual([...request.subarray(0, 4)], [0, 0, 0, requestJson.length])
      assert.strictEqual(text(request.subarray(4)), requestJson)
    }))

  const bytes = Schema.Uint8Array.check(Schema.isMaxLength(64))

  it.prop(
    "responses round-trip, and every proper prefix needs more",
    [Exec.ExecResponseHeader, bytes, bytes, bytes],
    ([header, stdout, stderr, trailing]) => {
      const chunks = Exec.encodeResponse({ header, stdout, stderr })
      const wire = Buffer.concat([...chunks, trailing])
      const total = wire.byteLength - trailing.byteLength
      const step = Result.getOrThrow(Exec.decodeResponse(wire))
      assert.strictEqual(step._tag, "Complete")
      if (step._tag !== "Complete") return
      assert.strictEqual(step.consumed, total)
      // JSON has no -0; everything else survives exactly.
      const expected = {
        ...header,
        exitCode: header.exitCode === null ? null : header.exitCode + 0,
        stdoutLength: stdout.byteLength,
        stderrLength: stderr.byteLength,
        durationMs: header.durationMs + 0
      }
      assert.deepStrictEqual(step.result.header, expected)
      assert.deepStrictEqual([...step.result.stdout], [...stdout])
      assert.deepStrictEqual([...step.result.stderr], [...stderr])
      const headerEnd = 4 + wire.readUInt32BE(0)
      for (const cut of [0, 3, 4, headerEnd - 1, headerEnd, total - 1].filter((n) => n >= 0 && n < total)) {
        const partial = Result.getOrThrow(Exec.decodeResponse(wire.subarray(0, cut)))
        assert.strictEqual(partial._tag, "NeedMore")
        if (partial._tag === "NeedMore") assert.isAbove(partial.needed, cut)
      }
    }
  )

  it.live("a response of MiBs is copied once: into one buffer by the runner, and once more only across reads", () =>
    Effect.gen(function*() {
      const runner = yield* runnerFor({ allow: ["sh"], allowUnsafe: ["sh"] })
      const result = yield* runner.run({ argv: ["sh", "-c", "head -c 3000000 /dev/zero; echo err >&2"] })
      assert.strictEqual(result.stdout.byteLength, 3_000_000)
      assert.strictEqual(text(result.stderr), "err\n")
      // stdout and stderr side by side in one buffer: the response body is a view of it.
      assert.strictEqual(result.stdout.buffer, result.stderr.buffer)
      assert.strictEqual(result.stdout.byteOffset + result.stdout.byteLength, result.stderr.byteOffset)
      const chunks = Exec.encodeResponse(result)
      const body = chunks[chunks.length - 1]!
      assert.strictEqual(body.byteLength, 3_000_004)
      assert.strictEqual(body.buffer, result.stdout.buffer, "the body was copied to be sent")

      const wire = Buffer.concat(chunks)
      const whole = Result.getOrThrow(Exec.decodeResponse(wire))
      assert.isTrue(whole._tag === "Complete" && whole.result.stdout.buffer === wire.buffer, "decodeResponse copied")
      // Across 64 KiB reads: one copy, into a buffer of the body's exact size.
      const decoder = Exec.responseCodec().decoder()
      const results: Array<Exec.ExecResult> = []
      for (let at = 0; at < wire.byteLength; at += 65_536) {
        assert.isUndefined(decoder.push(wire.subarray(at, at + 65_536), results))
      }
      assert.strictEqual(results.length, 1)
      const [read] = results
      assert.strictEqual(read!.stdout.buffer, read!.stderr.buffer)
      assert.strictEqual(read!.stdout.buffer.byteLength, 3_000_004)
      assert.isTrue(read!.stdout.every((b) => b === 0))
      assert.strictEqual(text(read!.stderr), "err\n")
    }))

  it.prop("requests round-trip", [Exec.ExecRequest], ([request]) => {
    const frame = Exec.encodeRequest(request)
    assert.strictEqual(new DataView(frame.buffer, frame.byteOffset).getUint32(0), frame.byteLength - 4)
    const decoded = Result.getOrThrow(Exec.decodeRequest(frame.subarray(4)))
    assert.deepStrictEqual(decoded, request)
  })

  it.effect("decodeResponse rejects oversized and malformed headers", () =>
    Effect.sync(() => {
      const frame = (json: string) => {
        const body = Buffer.from(json)
        const out = Buffer.alloc(4 + body.byteLength)
        out.writeUInt32BE(body.byteLength, 0)
        body.copy(out, 4)
        return out
      }
      const header = (fields: object) =>
        JSON.stringify({ exitCode: 0, signal: null, stdoutLength: 0, stderrLength: 0, truncated: false, durationMs: 1, ...fields })
      const cases: ReadonlyArray<[Uint8Array, object?]> = [
        [Buffer.from([0x00, 0x10, 0x00, 0x01])],
        [frame("{")],
        [frame(header({ stdoutLength: -1 }))],
        [frame(header({ error: { _tag: "Nope", message: "x" } }))],
        [frame(header({ stdoutLength: 10, stderrLength: 10 })), { maxBodyBytes: 19 }]
      ]
      for (const [wire, options] of cases) {
        const decoded = Exec.decodeResponse(wire, options)
        assert.isTrue(Result.isFailure(decoded), text(wire))
        if (Result.isFailure(decoded)) {
          assert.strictEqual(decoded.failure._tag, "MalformedResponse")
          assert.notInclude(decoded.failure.message, "\n", text(wire))
        }
      }
    }))
})
