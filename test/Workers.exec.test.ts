/**
 * `serve exec --workers 2`: the exec server in two worker processes. Its
 * guard closes every descriptor the server inherited without close-on-exec
 * (a launcher's fd 1000 on a 0600 file, as in the hardening test), and the
 * workers' IPC channel, which node opens close-on-exec, stays: the commands
 * run in both workers (their parent pid is a worker's), see no descriptor
 * but their own, and SIGTERM still drains both workers over the channel.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import * as Exec from "../src/servers/Exec.js"
import { dist } from "./helpers/cliBuild.js"
import { waitGone, watchOutput } from "./helpers/processes.js"
import { tempDir } from "./helpers/sockets.js"

const text = (b: Uint8Array) => new TextDecoder().decode(b)

/** `effect-wire serve exec …` started by bash with fd 1000 open on `secret` without close-on-exec. */
const launch = (secret: string, args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(
        "/bin/bash",
        ["-c", 'exec "$@" 1000<"$EW_SECRET"', "sh", process.execPath, Path.join(dist, "src/cli/main.js"), ...args],
        { env: { ...process.env, EW_SECRET: secret }, stdio: ["ignore", "pipe", "pipe"] }
      )
      const { exit, out, until } = watchOutput(child, "serve exec")
      /** The first line of stdout or stderr matching `pattern` (at most 30 s). */
      const line = (pattern: RegExp) =>
        until(() => {
          for (const l of `${out.stdout}\n${out.stderr}`.split("\n")) {
            const m = pattern.exec(l)
            if (m !== null) return m
          }
          return undefined
        }, String(pattern), 30_000)
      return { child, line, exit, out }
    }),
    ({ child }) =>
      Effect.gen(function*() {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        yield* waitGone(child.pid!, 5_000)
      })
  )

describe("serve exec --workers", () => {
  it.live("runs allowlisted commands in both workers; no command inherits fd 1000 or the IPC channel; SIGTERM drains both", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const secret = Path.join(dir, "secret")
      Fs.writeFileSync(secret, "top secret\n", { mode: 0o600 })
      const server = yield* launch(secret, [
        "serve",
        "exec",
        "--port",
        "0",
        "--allow",
        "ls,cat,uname",
        "--workers",
        "2"
      ])
      const [, where] = yield* server.line(/^listening tcp (.+)$/)
      const [, a, b] = yield* server.line(/2 worker\(s\) serving .* pid (\d+), (\d+)/)
      const pids = [Number(a), Number(b)]
      const address = Address.unsafeParse(where!)
      const run = (argv: readonly [string, ...Array<string>]) =>
        Effect.scoped(Effect.flatMap(Exec.client(address), (client) => client.run(argv)))

      // Each command on a connection of its own: its parent is the worker that took the connection.
      const parents = new Set<number>()
      for (let i = 0; i < 40; i++) {
        const status = text((yield* run(["cat", "/proc/self/status"])).stdout)
        parents.add(Number(/^PPid:\s+(\d+)$/m.exec(status)![1]))
      }
      assert.deepStrictEqual([...parents].sort(), [...pids].sort(), "the commands ran in both workers, and only there")
      assert.strictEqual(text((yield* run(["uname", "-s"])).stdout).trim(), Os.type())

      // ls opens the directory it lists as fd 3: anything more would be inherited from the worker.
      for (let i = 0; i < 10; i++) {
        const listed = text((yield* run(["ls", "/proc/self/fd"])).stdout).trim().split("\n")
        assert.deepStrictEqual(listed, ["0", "1", "2", "3"])
      }
      const read = yield* run(["cat", "/proc/self/fd/1000"])
      assert.notInclude(text(read.stdout) + text(read.stderr), "top secret")
      // The launcher's descriptor was closed before the workers were started, and said so.
      yield* server.line(/closed \d+ inherited descriptor\(s\) that every command would have inherited: .*fd 1000 .*secret/)

      // The IPC channel works: SIGTERM drains both workers and the parent logs their summed report.
      server.child.kill("SIGTERM")
      assert.strictEqual(yield* Effect.promise(() => server.exit), 0, server.out.stderr)
      assert.match(server.out.stderr, /2 worker\(s\) shut down; \d+ connection\(s\) finished, 0 cut; connections accepted: worker 1 \(pid \d+\) \d+, worker 2 \(pid \d+\) \d+/)
      for (const pid of pids) assert.isTrue(yield* waitGone(pid, 5_000), `worker ${pid} still runs`)
    }), 120_000)
})
