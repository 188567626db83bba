/**
 * Exec security: no shell ever interprets a request, the allowlist matches
 * argv[0] exactly, every wrong token is refused (and the comparison does not
 * time like a prefix match), timeouts and output caps kill the whole process
 * tree, the default bind is loopback, and a reachable bind needs a token.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Address from "../../src/Address.js"
import * as Exec from "../../src/servers/Exec.js"
import { eventually, isAlive, noUnhandledErrors, printSummary, runCli, serveCli, track } from "./harness.js"

afterAll(printSummary)

const loopback = Address.tcp("127.0.0.1", 0)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-exec-sec-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const script = (dir: string, name: string, body: string): string => {
  const file = Path.join(dir, name)
  Fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
  return file
}

const readPid = (file: string): number => (Fs.existsSync(file) ? Number(Fs.readFileSync(file, "utf8").trim()) : 0)

describe("exec security", () => {
  it.live(
    "no shell: ; | && $(…) backticks globs ~ $VAR and redirections reach the program as plain argument text, nothing they ask for happens, and the environment holds only PATH and LANG",
    (ctx) => {
      const row = track(ctx, "exec: shell metacharacters inert")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const dir = yield* tempDir
        const canary = Path.join(dir, "CANARY")
        const printArgs = script(dir, "printargs", `for a; do printf "%s" "$a"; printf "\\000"; done`)
        process.env.EW_RELIABILITY_SECRET = "do-not-leak-1234"
        yield* Effect.addFinalizer(() => Effect.sync(() => delete process.env.EW_RELIABILITY_SECRET))
        const server = yield* Exec.make({ address: loopback, allow: [printArgs, "env"], allowUnsafe: ["env"], cwd: dir })
        const client = yield* Exec.client(server.address)
        const hostile = [
          ";", `; touch ${canary}`, "| touch CANARY", `&& touch ${canary}`, `$(touch ${canary})`, "`touch CANARY`",
          "*", `${dir}/*`, "~", "$HOME", "${PATH}", "$EW_RELIABILITY_SECRET", `> ${canary}`, "2>&1", "'quoted'",
          '"double"', "\\n", "line\nbreak", "$((1+1))", "-n", "--", "{a,b}", "!!", "&", "%s%s%n"
        ]
        const result = yield* client.run([printArgs, ...hostile])
        const got = text(result.stdout).split("\u0000").slice(0, -1)
        assert.deepStrictEqual(got, hostile)
        assert.isFalse(Fs.existsSync(canary), "nothing the metacharacters ask for happened")
        const env = text((yield* client.run(["env"])).stdout).trim().split("\n").map((l) => l.split("=")[0]).sort()
        assert.deepStrictEqual(env, ["LANG", "PATH"])
        row.connections = 1
        row.faults = hostile.length
        row.bytes = result.stdout.length
        row.notes.push(`${hostile.length} metacharacter arguments echoed verbatim; env keys ${env.join(",")}`)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    30_000
  )

  it.live(
    "allowlist: argv[0] must equal an entry exactly; /bin/sh, other names, relative paths, ../ detours, trailing slashes, spaces, case and NUL are refused before anything runs",
    (ctx) => {
      const row = track(ctx, "exec: allowlist bypass attempts")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const dir = yield* tempDir
        const marker = Path.join(dir, "RAN")
        const tool = script(dir, "tool", `: > "${marker}"`)
        const server = yield* Exec.make({ address: loopback, allow: ["echo", tool], cwd: dir })
        const client = yield* Exec.client(server.address)
        const echoPath = (yield* Exec.makePolicy({ allow: ["echo"] })).commands.get("echo")!
        const attempts = [
          "/bin/sh", "sh", "bash", "env", echoPath, "../echo", "./echo", "echo ", " echo", "ECHO", "echo\t", "echo;id",
          "echo id", "", "tool", "./tool", `${dir}/../${Path.basename(dir)}/tool`, `${tool}/`, `${tool}/.`, `${tool} `,
          `${dir}//tool`, tool.toUpperCase()
        ]
        const answers = yield* client.runAll(attempts.map((a) => [a, "hello"] as const))
        const tags = answers.map((a) => (Result.isFailure(a) ? a.failure._tag : "RAN"))
        for (let i = 0; i < attempts.length; i++) {
          assert.strictEqual(tags[i], "CommandNotAllowed", `argv[0] ${JSON.stringify(attempts[i])}`)
        }
        // NUL never reaches the allowlist: the request itself is malformed.
        const nul = yield* Effect.flip(client.run(["echo\u0000", "x"]))
        assert.strictEqual(nul._tag, "BadRequest")
        assert.isFalse(Fs.existsSync(marker), "no attempt ran the tool")
        // The exact entries do run.
        assert.strictEqual(text((yield* client.run(["echo", "ok"])).stdout), "ok\n")
        yield* client.run([tool])
        assert.isTrue(Fs.existsSync(marker))
        // And nonsense entries are refused when the server is configured.
        for (const entry of ["../echo", "./echo", "ec ho", "/usr/bin/../bin/echo", "bin/echo", ".."]) {
          const e = yield* Effect.flip(Exec.makePolicy({ allow: [entry] }))
          assert.strictEqual(e._tag, "InvalidExecOptions", entry)
        }
        row.connections = 1
        row.faults = attempts.length + 1
        row.notes.push(`${attempts.length} argv[0] variants refused: ${JSON.stringify([...new Set(tags)])}`)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    30_000
  )

  it.live(
    "token: a missing token and wrong tokens of every length (0-64, 1 KB, 60 KB, the right one with a character changed, added or removed) are Unauthorized, checked before the allowlist; the comparison time does not depend on how much of a guess is right",
    (ctx) => {
      const row = track(ctx, "exec: token checks")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const token = "correct-horse-battery-staple-0042"
        const server = yield* Exec.make({ address: loopback, allow: ["echo"], token })
        // An Unauthorized answer closes its connection (issue 18): each attempt on a connection of its own.
        const request = (r: Exec.ExecRequest) =>
          Effect.scoped(Effect.flatMap(Exec.client(server.address), (client) => client.request(r)))
        const random = (n: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(33 + ((i * 7919 + n) % 94))).join("")
        const wrong = [
          ...Array.from({ length: 65 }, (_, n) => random(n)),
          random(1000),
          random(60_000),
          token.slice(0, -1),
          token + "x",
          token.slice(0, -1) + "3",
          "x" + token.slice(1),
          token.toUpperCase(),
          ` ${token}`,
          `${token}\u0000`
        ].filter((t) => t !== token)
        for (const t of wrong) {
          const answer = yield* request({ argv: ["echo", "x"], token: t })
          assert.strictEqual(answer.header.error?._tag, "Unauthorized", `token of length ${t.length}`)
          row.bytes += t.length
        }
        const missing = yield* request({ argv: ["echo", "x"] })
        assert.strictEqual(missing.header.error?._tag, "Unauthorized")
        // Checked first: a disallowed command with a wrong token does not reveal the allowlist.
        const probe = yield* request({ argv: ["rm", "-rf", "/"], token: "guess" })
        assert.strictEqual(probe.header.error?._tag, "Unauthorized")
        assert.notInclude(probe.header.error?.message ?? "", "echo")
        const right = yield* request({ argv: ["echo", "x"], token })
        assert.strictEqual(text(right.stdout), "x\n")

        // A sanity check of the timing, not a proof (that is the code: timingSafeEqual over SHA-256
        // digests): guesses right but for the last character take as long as guesses wrong from the first.
        const policy = yield* Exec.makePolicy({ allow: ["echo"], token })
        const time = (guess: string) => {
          const start = process.hrtime.bigint()
          for (let i = 0; i < 2_000; i++) policy.authorize(guess)
          return Number(process.hrtime.bigint() - start)
        }
        const nearly = token.slice(0, -1) + "3"
        const far = "X" + random(token.length - 1)
        const samples = { nearly: [] as Array<number>, far: [] as Array<number> }
        for (let round = 0; round < 21; round++) {
          samples.nearly.push(time(nearly))
          samples.far.push(time(far))
        }
        const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
        const ratio = median(samples.nearly) / median(samples.far)
        row.connections = wrong.length + 3
        row.faults = wrong.length + 2
        row.notes.push(`${wrong.length + 2} wrong or missing tokens refused`, `timing ratio nearly-right/far-off ${ratio.toFixed(2)}`)
        assert.isTrue(ratio > 0.5 && ratio < 2, `timing ratio ${ratio}`)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )

  it.live(
    "timeout and output cap kill the whole process tree: children and grandchildren of a timed-out command, a background process of a finished one, and an over-producing command are all killed (the background one as the answer goes out, gone within moments)",
    (ctx) => {
      const row = track(ctx, "exec: process tree killed")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const dir = yield* tempDir
        const tree = script(
          dir,
          "tree",
          `sleep 60 & echo $! > "$1"\n( sleep 60 & echo $! > "$2"; wait ) &\necho $$ > "$3"\nwait`
        )
        const background = script(dir, "background", `sleep 60 > /dev/null 2>&1 &\necho $! > "$1"\necho done`)
        const flood = script(dir, "flood", `echo $$ > "$1"\nexec yes flood`)
        const server = yield* Exec.make({
          address: loopback,
          allow: [tree, background, flood],
          timeout: "500 millis",
          killGrace: "300 millis",
          maxOutput: 64 * 1024
        })
        const client = yield* Exec.client(server.address)
        const files = ["child", "grandchild", "leader"].map((n) => Path.join(dir, n))

        const timedOut = yield* client.request({ argv: [tree, ...files] })
        const pids = files.map(readPid)
        assert.strictEqual(timedOut.header.error?._tag, "Timeout")
        assert.isTrue(pids.every((p) => p > 0), "the tree started")
        const survivors = pids.filter(isAlive)

        const bgFile = Path.join(dir, "bg")
        const finished = yield* client.request({ argv: [background, bgFile] })
        assert.isUndefined(finished.header.error)
        assert.strictEqual(text(finished.stdout), "done\n")
        // The group gets SIGKILL as the answer goes out; the kernel completes the
        // kill a moment later, so wait (at most 2 s) for the process to be gone.
        const bgPid = readPid(bgFile)
        const bgAlive = yield* eventually("background process of a finished command", Effect.sync(() => isAlive(bgPid)), (alive) => !alive, 200, 10).pipe(
          Effect.as(false),
          Effect.catchDefect(() => Effect.succeed(true))
        )

        const floodFile = Path.join(dir, "flood.pid")
        const capped = yield* client.request({ argv: [flood, floodFile] })
        assert.isTrue(capped.header.truncated)
        assert.strictEqual(capped.header.stdoutLength + capped.header.stderrLength, 64 * 1024)
        assert.isTrue(text(capped.stdout).startsWith("flood\nflood\n"))
        const floodAlive = isAlive(readPid(floodFile))

        row.connections = 1
        row.faults = 3
        row.bytes = capped.stdout.length
        row.notes.push(
          `timeout: ${pids.length - survivors.length}/${pids.length} of the tree dead at the answer (signal ${timedOut.header.signal})`,
          `background of a finished command ${bgAlive ? "ALIVE" : "dead"}`,
          `output cap: ${capped.header.stdoutLength} bytes kept, producer ${floodAlive ? "ALIVE" : "dead"}`
        )
        assert.deepStrictEqual(survivors, [], "no survivor of the timed-out tree")
        assert.isFalse(bgAlive, "the background process of a finished command is killed")
        assert.isFalse(floodAlive, "the over-producing command is killed")
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    30_000
  )

  it.live(
    "binding: the exec server listens on 127.0.0.1 by default (library and CLI); a reachable address without a token is refused before anything is bound (InsecureBind; the CLI exits 1 with a message), and with a token the bind proceeds",
    (ctx) => {
      const row = track(ctx, "exec: loopback default, insecure bind refused")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const server = yield* Exec.make({ allow: ["echo"] })
        assert.strictEqual((server.address as Address.TcpAddress).host, "127.0.0.1")
        const cli = yield* serveCli(["exec", "--port", "0", "--allow", "echo"])
        assert.match(cli.listening, /^127\.0\.0\.1:\d+$/)

        // 192.0.2.1 (TEST-NET-1) is on no interface here: had the check let it through, the bind
        // would fail with AddressNotAvailable instead, so the two outcomes are told apart.
        const reachable = Address.tcp("192.0.2.1", 0)
        const refused = yield* Effect.flip(Effect.scoped(Exec.make({ allow: ["echo"], address: reachable })))
        assert.strictEqual(refused._tag, "InsecureBind")
        const withToken = yield* Effect.flip(Effect.scoped(Exec.make({ allow: ["echo"], address: reachable, token: "t0ken" })))
        assert.strictEqual(withToken._tag, "AddressNotAvailable")

        const insecure = yield* runCli(["serve", "exec", "--allow", "echo", "--host", "192.0.2.1", "--port", "0"])
        assert.strictEqual(insecure.code, 1)
        assert.match(insecure.output, /error: refusing to serve commands on 192\.0\.2\.1:0 without a token/)
        const tokened = yield* runCli(
          // --insecure-plaintext: a token beyond loopback otherwise needs TLS (issue 14), refused before the bind.
          ["serve", "exec", "--allow", "echo", "--host", "192.0.2.1", "--port", "0", "--token-env", "EW_TOKEN", "--insecure-plaintext"],
          { ...process.env, EW_TOKEN: "t0ken" }
        )
        assert.notStrictEqual(tokened.code, 0)
        assert.notMatch(tokened.output, /without a token/)
        row.connections = 0
        row.faults = 4
        row.notes.push(`CLI without token: exit ${insecure.code}; with token: exit ${tokened.code} (${tokened.output.trim().slice(0, 80)})`)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )
})
