/**
 * `effect-wire serve` as a real process, run from a fresh transpiled copy of
 * the sources.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import * as Echo from "../src/servers/Echo.js"
import * as Exec from "../src/servers/Exec.js"
import * as Upper from "../src/servers/Upper.js"
import * as Socket from "../src/Socket.js"
import { dist } from "./helpers/cliBuild.js"
import { tempDir } from "./helpers/sockets.js"

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

// The CLI as built by test/globalSetup.ts, the artifact users run.
const main = () => Path.join(dist, "src/cli/main.js")

interface Cli {
  readonly child: ChildProcess
  /** The first `count` stdout lines. */
  readonly lines: (count: number) => Effect.Effect<ReadonlyArray<string>>
  /** Waits for a stderr line matching `pattern`, and returns it. */
  readonly stderrLine: (pattern: RegExp) => Effect.Effect<string>
  /** Exit code (or signal), stdout and stderr, once the process ended. */
  readonly exit: Effect.Effect<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/** Starts the CLI; the process is killed by PID when the scope closes, if still running. */
const start = (args: ReadonlyArray<string>, env?: Record<string, string>): Effect.Effect<Cli, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [main(), ...args], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      const waiters = new Set<() => void>()
      const wake = () => waiters.forEach((w) => w())
      child.stdout!.setEncoding("utf8").on("data", (s: string) => {
        stdout += s
        wake()
      })
      child.stderr!.setEncoding("utf8").on("data", (s: string) => {
        stderr += s
        wake()
      })
      const exited = new Promise<number | null>((resolve) =>
        child.once("close", (code) => {
          resolve(code)
          wake()
        })
      )
      const lines = (count: number) =>
        Effect.callback<ReadonlyArray<string>>((resume) => {
          const check = () => {
            const complete = stdout.split("\n").slice(0, -1)
            if (complete.length >= count) {
              waiters.delete(check)
              resume(Effect.succeed(complete.slice(0, count)))
            } else if (child.exitCode !== null || child.signalCode !== null) {
              waiters.delete(check)
              resume(Effect.die(new Error(`effect-wire ${args.join(" ")} exited early:\n${stdout}\n${stderr}`)))
            }
          }
          waiters.add(check)
          check()
          return Effect.sync(() => waiters.delete(check))
        }).pipe(Effect.timeoutOrElse({
          duration: "20 seconds",
          orElse: () => Effect.fail(new Error(`no ${count} line(s) from effect-wire ${args.join(" ")}:\n${stdout}\n${stderr}`))
        }), Effect.orDie)
      const stderrLine = (pattern: RegExp) =>
        Effect.callback<string>((resume) => {
          const check = () => {
            const found = stderr.split("\n").slice(0, -1).find((line) => pattern.test(line))
            if (found !== undefined) {
              waiters.delete(check)
              resume(Effect.succeed(found))
            } else if (child.exitCode !== null || child.signalCode !== null) {
              waiters.delete(check)
              resume(Effect.die(new Error(`effect-wire ${args.join(" ")} exited without ${pattern}:\n${stderr}`)))
            }
          }
          waiters.add(check)
          check()
          return Effect.sync(() => waiters.delete(check))
        }).pipe(Effect.timeoutOrElse({
          duration: "20 seconds",
          orElse: () => Effect.fail(new Error(`no stderr line ${pattern} from effect-wire ${args.join(" ")}:\n${stderr}`))
        }), Effect.orDie)
      const exit = Effect.promise(() => exited).pipe(
        Effect.map((code) => ({ code, stdout, stderr })),
        Effect.timeoutOrElse({
          duration: "20 seconds",
          orElse: () => Effect.fail(new Error(`effect-wire ${args.join(" ")} did not exit`))
        }),
        Effect.orDie
      )
      const signal = (name: NodeJS.Signals) => Effect.sync(() => void process.kill(child.pid!, name))
      return { child, lines, stderrLine, exit, signal } satisfies Cli
    }),
    ({ child }) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL")
      })
  )

/** Runs the CLI to its end. */
const run = (args: ReadonlyArray<string>) => Effect.scoped(Effect.flatMap(start(args), (cli) => cli.exit))

const LISTENING = /^listening (tcp|udp|unix) (.+)$/

const listeningAt = (line: string): Address.Address => {
  const match = LISTENING.exec(line)
  assert.isNotNull(match, `not a listening line: ${JSON.stringify(line)}`)
  return match![1] === "unix" ? Address.unix(match![2]!) : Address.unsafeParse(match![2]!)
}

const portOf = (address: Address.Address): number => address._tag === "TcpAddress" ? address.port : -1

describe("effect-wire serve", () => {
  it.live("echo: prints where it listens, serves, and exits 0 on SIGTERM", () =>
    Effect.gen(function*() {
      const cli = yield* start(["serve", "echo", "--port", "0"])
      const [line] = yield* cli.lines(1)
      assert.match(line!, /^listening tcp 127\.0\.0\.1:\d+$/)
      const address = listeningAt(line!)
      assert.notStrictEqual(portOf(address), 0)
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Echo.client(address)
        assert.strictEqual(text(yield* client.request("hello cli")), "hello cli")
      }))
      yield* cli.signal("SIGTERM")
      const exit = yield* cli.exit
      assert.strictEqual(exit.code, 0)
      assert.strictEqual(exit.stdout, `${line}\n`)
      assert.notInclude(exit.stderr, "error")
    }))

  it.live("a second server on the same port fails with one line and a non-zero exit", () =>
    Effect.gen(function*() {
      const first = yield* start(["serve", "echo", "--port", "0"])
      const port = portOf(listeningAt((yield* first.lines(1))[0]!))
      const second = yield* run(["serve", "echo", "--port", String(port)])
      assert.strictEqual(second.code, 1)
      assert.strictEqual(second.stdout, "")
      assert.strictEqual(second.stderr, `error: address 127.0.0.1:${port} is already in use (EADDRINUSE)\n`)
    }))

  it.live("restarting on the same port right after a kill works", () =>
    Effect.gen(function*() {
      const first = yield* start(["serve", "upper", "--port", "0"])
      const address = listeningAt((yield* first.lines(1))[0]!)
      // A served connection leaves the server's side in TIME_WAIT once it is killed.
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Upper.client(address)
        assert.strictEqual(text(yield* client.request("before")), "BEFORE")
        yield* first.signal("SIGKILL")
        yield* first.exit
      }))
      const second = yield* start(["serve", "upper", "--port", String(portOf(address))])
      assert.deepStrictEqual(yield* second.lines(1), [`listening tcp 127.0.0.1:${portOf(address)}`])
      const client = yield* Upper.client(address)
      assert.strictEqual(text(yield* client.request("after")), "AFTER")
    }))

  it.live("--unix replaces a stale socket file left by a killed server", () =>
    Effect.gen(function*() {
      const path = Path.join(yield* tempDir, "echo.sock")
      const first = yield* start(["serve", "echo", "--unix", path])
      assert.deepStrictEqual(yield* first.lines(1), [`listening unix ${path}`])
      yield* first.signal("SIGKILL")
      yield* first.exit
      assert.isTrue(Fs.lstatSync(path).isSocket(), "the killed server left its socket file")
      const second = yield* start(["serve", "echo", "--unix", path, "--framing", "lines"])
      assert.deepStrictEqual(yield* second.lines(1), [`listening unix ${path}`])
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Echo.client(Address.unix(path), { framing: "lines" })
        assert.strictEqual(text(yield* client.request("over unix")), "over unix")
      }))
      yield* second.signal("SIGINT")
      assert.strictEqual((yield* second.exit).code, 0)
      assert.isFalse(Fs.existsSync(path), "a clean exit removes the socket file")
    }))

  it.live("--udp also serves UDP on the same port", () =>
    Effect.gen(function*() {
      const cli = yield* start(["serve", "upper", "--port", "0", "--udp"])
      const [tcpLine, udpLine] = yield* cli.lines(2)
      const tcp = listeningAt(tcpLine!)
      assert.strictEqual(udpLine, `listening udp 127.0.0.1:${portOf(tcp)}`)
      const udp = yield* Upper.udpClient(listeningAt(udpLine!) as Address.TcpAddress, { timeout: "500 millis" })
      assert.strictEqual(text(yield* udp.request("datagram")), "DATAGRAM")
      const client = yield* Upper.client(tcp)
      assert.strictEqual(text(yield* client.request("stream")), "STREAM")
    }))

  it.live("IPv6, length framing and --log-level", () =>
    Effect.gen(function*() {
      const cli = yield* start([
        "serve",
        "echo",
        "--host",
        "::1",
        "--port",
        "0",
        "--framing",
        "length",
        "--max-connections",
        "4",
        "--idle-timeout",
        "30s",
        "--shutdown-timeout",
        "2s",
        "--log-level",
        "warning"
      ])
      const [line] = yield* cli.lines(1)
      assert.match(line!, /^listening tcp \[::1\]:\d+$/)
      const client = yield* Echo.client(listeningAt(line!), { framing: "length" })
      assert.strictEqual(text(yield* client.request("framed")), "framed")
    }))

  it.live("--frame-timeout: a client dribbling a frame is cut at the deadline; --log-level debug logs it as an early ending on stderr", () =>
    Effect.gen(function*() {
      const cli = yield* start([
        "serve",
        "echo",
        "--port",
        "0",
        "--framing",
        "length",
        "--frame-timeout",
        "300ms",
        "--log-level",
        "debug"
      ])
      const address = listeningAt((yield* cli.lines(1))[0]!)
      const slow = yield* Socket.connect(address)
      const peer = Address.format(slow.localAddress)
      const started = Date.now()
      // One byte every 50 ms: the 32 bytes of this frame would take 1.6 s.
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 28]), Buffer.alloc(28, 0x61)])
      yield* Effect.forkChild(Effect.ignore(Effect.gen(function*() {
        for (let i = 0; i < frame.length; i++) {
          if (i > 0) yield* Effect.sleep("50 millis")
          yield* slow.write(frame.subarray(i, i + 1))
        }
      })))
      // The server's close: EOF, or a reset when a byte of ours arrived after it.
      yield* Effect.ignore(Stream.runDrain(slow.reads))
      const took = Date.now() - started
      assert.isAtLeast(took, 290)
      assert.isBelow(took, 1500)
      const line = yield* cli.stderrLine(/ended early: FrameTimeout/)
      assert.include(line, "level=DEBUG")
      assert.include(line, `connection from ${peer} ended early: FrameTimeout: `)
      assert.include(line, "a frame took longer than 300ms from its first byte (frameTimeout)")
    }))

  it.live("a peer's reset is no warning: one debug line with --log-level debug, and at any level the summary at shutdown", () =>
    Effect.gen(function*() {
      for (const level of [["--log-level", "debug"], []]) {
        const cli = yield* start(["serve", "echo", "--port", "0", ...level])
        const address = listeningAt((yield* cli.lines(1))[0]!)
        yield* Effect.scoped(Effect.gen(function*() {
          const rude = yield* Socket.connect(address)
          yield* rude.write(Buffer.from("hi"))
          yield* Stream.runHead(rude.reads)
          yield* rude.reset
        }))
        if (level.length > 0) yield* cli.stderrLine(/level=DEBUG .*ended early: ConnectionReset/)
        // Served after the reset reached the server: its answer comes after the reset was read.
        yield* Effect.scoped(Effect.gen(function*() {
          const client = yield* Echo.client(address)
          assert.strictEqual(text(yield* client.request("after")), "after")
        }))
        yield* cli.signal("SIGTERM")
        const exit = yield* cli.exit
        assert.strictEqual(exit.code, 0, exit.stderr)
        assert.notMatch(exit.stderr, /level=WARN/, exit.stderr)
        assert.match(exit.stderr, /level=INFO .*1 connection ended early in the last \d+ s: 1 ConnectionReset/, exit.stderr)
        assert.strictEqual(/level=DEBUG/.test(exit.stderr), level.length > 0, exit.stderr)
      }
    }))

  it.live("exec: serves allowlisted commands with the token from --token-env", () =>
    Effect.gen(function*() {
      const cli = yield* start(
        ["serve", "exec", "--port", "0", "--allow", "echo", "--token-env", "EW_TEST_TOKEN", "--timeout", "5s"],
        { EW_TEST_TOKEN: "s3cret" }
      )
      const address = listeningAt((yield* cli.lines(1))[0]!)
      const client = yield* Exec.client(address, { token: "s3cret" })
      const result = yield* client.run(["echo", "hi"])
      assert.strictEqual(result.header.exitCode, 0)
      assert.strictEqual(text(result.stdout), "hi\n")
      const refused = yield* Effect.flip((yield* Exec.client(address, { token: "wrong" })).run(["echo", "hi"]))
      assert.strictEqual(refused._tag, "Unauthorized")
      yield* cli.signal("SIGTERM")
      assert.strictEqual((yield* cli.exit).code, 0)
    }))

  it.live("bad flags and a missing --allow each print one line and exit non-zero", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["serve", "exec", "--port", "0"], /^error: .*add --allow/],
        [["serve", "echo", "--port", "http"], /^error: --port: expected a port number/],
        [["serve", "echo", "--idle-timeout", "soon"], /^error: --idle-timeout: invalid duration "soon"/],
        [["serve", "echo", "--unix", "/tmp/x.sock", "--udp"], /^error: --udp needs a host and port/],
        [["serve", "echo", "--no-such-flag"], /^error: .*--no-such-flag/],
        // Zero is never a hidden "no limit": it is refused, and the line says what to write instead.
        [["serve", "echo", "--idle-timeout", "0s"], /^error: --idle-timeout: 0 is not a limit: write a duration above 0, e\.g\. 30s, or never for no limit/],
        [["serve", "echo", "--shutdown-timeout", "0"], /^error: --shutdown-timeout: 0 is not a limit: write a duration above 0, e\.g\. 10s/],
        [["serve", "echo", "--shutdown-timeout", "never"], /^error: --shutdown-timeout: cannot be never: write a duration above 0, e\.g\. 10s/],
        [["serve", "echo", "--max-connections", "0"], /^error: --max-connections: 0 is not a limit: write a whole number above 0, e\.g\. 1024/],
        [["serve", "exec", "--allow", "echo", "--timeout", "0ms"], /^error: --timeout: 0 is not a limit: write a duration above 0, e\.g\. 10s/],
        [["serve", "exec", "--allow", "echo", "--max-output", "0"], /^error: --max-output: 0 is not a limit: write a size above 0, e\.g\. 8MiB/],
        [["serve", "echo", "--framing", "lines", "--frame-timeout", "0"], /^error: --frame-timeout: 0 is not a limit: write a duration above 0, e\.g\. 30s, or never for no limit/],
        [["serve", "echo", "--frame-timeout", "5s"], /^error: --frame-timeout applies to --framing length or lines: raw bytes have no frames/]
      ]
      const results = yield* Effect.forEach(cases, ([args]) => run(args), { concurrency: "unbounded" })
      results.forEach((result, i) => {
        const [args, pattern] = cases[i]!
        assert.notStrictEqual(result.code, 0, args.join(" "))
        assert.strictEqual(result.stdout, "", args.join(" "))
        assert.match(result.stderr, pattern, args.join(" "))
        assert.strictEqual(result.stderr.split("\n").length, 2, `one line for ${args.join(" ")}: ${result.stderr}`)
      })
    }))

  it.live("--help works at every level", () =>
    Effect.gen(function*() {
      const results = yield* Effect.forEach(
        [["--help"], ["serve", "exec", "--help"]],
        (args) => run(args),
        { concurrency: 3 }
      )
      for (const result of results) assert.strictEqual(result.code, 0)
      assert.include(results[0]!.stdout, "serve")
      assert.include(results[1]!.stdout, "--allow")
    }))

  /** The rows of a help section: `  name   description`. */
  const section = (help: string, title: string): ReadonlyArray<string> => {
    const lines = help.split("\n")
    const start = lines.indexOf(title)
    assert.notStrictEqual(start, -1, `no ${title} in:\n${help}`)
    const rows = lines.slice(start + 1)
    const end = rows.findIndex((line) => !line.startsWith("  "))
    return end === -1 ? rows : rows.slice(0, end)
  }

  it.live("help: every subcommand has a description, and --allow says once that it is needed", () =>
    Effect.gen(function*() {
      const [top, serve, serveExec] = yield* Effect.forEach(
        [["--help"], ["serve", "--help"], ["serve", "exec", "--help"]],
        (args) => run(args),
        { concurrency: 3 }
      )
      for (const [help, names] of [[top!, ["serve", "connect", "exec", "demo"]], [serve!, ["echo", "upper", "exec"]]] as const) {
        const rows = section(help.stdout, "SUBCOMMANDS")
        assert.deepStrictEqual(rows.map((row) => row.trim().split(/\s+/)[0]), [...names])
        for (const row of rows) assert.match(row, /^ {2}\S+\s{2,}\S/, `a subcommand without a description: ${JSON.stringify(row)}`)
      }
      const allow = section(serveExec!.stdout, "FLAGS").find((row) => row.trim().startsWith("--allow "))
      assert.isDefined(allow)
      assert.notMatch(allow!, /required|optional/i)
      assert.match(allow!, /serve exec does not start without it/)
    }))

  it.live("help: every duration, size and count flag states its default and the rule for 0 and never", () =>
    Effect.gen(function*() {
      const commands = [["serve", "echo"], ["serve", "upper"], ["serve", "exec"], ["connect"], ["exec"]]
      const helps = yield* Effect.forEach(commands, (args) => run([...args, "--help"]), { concurrency: 3 })
      helps.forEach((help, i) => {
        const limits = section(help.stdout, "FLAGS").filter((row) => /^ {2}--\S+ (DURATION|SIZE|N)\s/.test(row))
        assert.isAbove(limits.length, 0, commands[i]!.join(" "))
        for (const row of limits) {
          assert.match(row, /\(default [^)]*\)/, `${commands[i]!.join(" ")}: ${row}`)
          assert.match(row, /must be above 0|never for no limit, 0 is refused/, `${commands[i]!.join(" ")}: ${row}`)
        }
      })
    }))

  it.live("serve prints its limits on stderr, in one line, once it listens", () =>
    Effect.gen(function*() {
      const servers = [
        [["serve", "echo", "--port", "0", "--framing", "lines", "--max-connections", "4", "--idle-timeout", "30s"],
          "limits max-connections=4 overflow=queue idle-timeout=30s shutdown-timeout=10s write-timeout=30s " +
          "memory-budget=256MiB max-frame=8MiB frame-timeout=30s"],
        [["serve", "upper", "--port", "0", "--framing", "length", "--frame-timeout", "never"],
          "limits max-connections=1024 overflow=queue idle-timeout=never shutdown-timeout=10s write-timeout=30s " +
          "memory-budget=256MiB max-frame=8MiB frame-timeout=never"],
        [["serve", "echo", "--port", "0", "--framing", "lines", "--memory-budget", "64MiB", "--write-timeout", "never"],
          "limits max-connections=1024 overflow=queue idle-timeout=never shutdown-timeout=10s write-timeout=never " +
          "memory-budget=64MiB max-frame=2MiB frame-timeout=30s"],
        [["serve", "upper", "--port", "0", "--udp", "--idle-timeout", "never", "--shutdown-timeout", "2m"],
          "limits max-connections=1024 overflow=queue idle-timeout=never shutdown-timeout=2m write-timeout=30s " +
          "memory-budget=256MiB"],
        [["serve", "exec", "--port", "0", "--allow", "echo", "--concurrency", "2"],
          "limits max-connections=1024 overflow=queue idle-timeout=5m shutdown-timeout=10s " +
          "timeout=10s max-output=8MiB concurrency=2 max-request=64KiB write-timeout=30s memory-budget=256MiB"]
      ] as const
      yield* Effect.forEach(servers, ([args, limits]) =>
        Effect.scoped(Effect.gen(function*() {
          const cli = yield* start(args)
          const count = (args as ReadonlyArray<string>).includes("--udp") ? 2 : 1
          const listening = yield* cli.lines(count)
          yield* cli.signal("SIGTERM")
          const exit = yield* cli.exit
          assert.strictEqual(exit.code, 0, exit.stderr)
          assert.strictEqual(exit.stdout, listening.map((line) => `${line}\n`).join(""), "stdout holds only the listening lines")
          assert.strictEqual(exit.stderr.split("\n")[0], limits, args.join(" "))
        })), { concurrency: 3 })
    }))
})
