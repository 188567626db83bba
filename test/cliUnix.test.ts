/**
 * Issue 18 on the command line: `serve … --unix PATH` creates its socket
 * file 0600 whatever the umask (`--unix-mode` widens it), so that another
 * local user cannot connect (finding 3); `effect-wire exec` refuses a socket
 * file another user owns or could have put there, unless told
 * `--allow-foreign-socket` (finding 4).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import * as Exec from "../src/servers/Exec.js"
import { dist, type RunOptions, runCli, startCli } from "./helpers/cliBuild.js"
import { CONNECT_SCRIPT, NOBODY, openDirectory, otherUser, runAsOtherUser } from "./helpers/otherUser.js"
import { tempDir } from "./helpers/sockets.js"

const cli = (args: ReadonlyArray<string>, options?: RunOptions) => Effect.promise(() => runCli(dist, args, options))

/** A server started in the background, once it printed its `listening` line; killed (by its handle) with the scope. */
const serving = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const server = yield* Effect.acquireRelease(
      Effect.sync(() => startCli(dist, args)),
      (started) => Effect.sync(() => started.signal("SIGKILL"))
    )
    yield* Effect.promise(() => server.waitFor(/^listening unix /))
    return server
  })

/** The umask of this process, and so of the commands it starts, set to `mask` for the scope. */
const withUmask = (mask: number) =>
  Effect.acquireRelease(Effect.sync(() => process.umask(mask)), (previous) => Effect.sync(() => void process.umask(previous)))

const modeOf = (path: string) => `0o${(Fs.statSync(path).mode & 0o777).toString(8)}`

const connectAsOtherUser = (path: string) =>
  Effect.promise(() => runAsOtherUser(CONNECT_SCRIPT, [path])).pipe(Effect.map((run) => run.stdout.trim()))

/** Exactly one line on stderr, starting with `error: `. */
const assertOneErrorLine = (stderr: string, pattern: RegExp) => {
  const lines = stderr.split("\n").filter((line) => line !== "")
  assert.strictEqual(lines.length, 1, stderr)
  assert.match(lines[0]!, pattern)
}

describe("serve --unix: who can connect (issue 18, finding 3)", () => {
  it.live("under umask 000, serve echo and serve exec create their socket files 0600", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      openDirectory(dir)
      yield* withUmask(0)
      const echo = Path.join(dir, "echo.sock")
      const exec = Path.join(dir, "exec.sock")
      yield* serving(["serve", "echo", "--unix", echo])
      yield* serving(["serve", "exec", "--allow", "id", "--unix", exec])
      assert.strictEqual(modeOf(echo), "0o600")
      assert.strictEqual(modeOf(exec), "0o600")
      if (otherUser !== undefined) {
        assert.strictEqual(yield* connectAsOtherUser(echo), "EACCES")
        assert.strictEqual(yield* connectAsOtherUser(exec), "EACCES")
      }
    }))

  it.live("--unix-mode 666 lets another user connect; 0660 and 0o640 are read as octal", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      openDirectory(dir)
      const shared = Path.join(dir, "shared.sock")
      yield* serving(["serve", "upper", "--unix", shared, "--unix-mode", "666"])
      assert.strictEqual(modeOf(shared), "0o666")
      if (otherUser !== undefined) assert.strictEqual(yield* connectAsOtherUser(shared), "connected")
      const group = Path.join(dir, "group.sock")
      yield* serving(["serve", "exec", "--allow", "id", "--unix", group, "--unix-mode", "0660"])
      assert.strictEqual(modeOf(group), "0o660")
      const other = Path.join(dir, "other.sock")
      yield* serving(["serve", "echo", "--unix", other, "--unix-mode", "0o640"])
      assert.strictEqual(modeOf(other), "0o640")
    }))

  it.live("--unix-mode without --unix, or not octal permission bits, is one error line and exit 1", () =>
    Effect.gen(function*() {
      const [tcp, sticky, word] = yield* Effect.all([
        cli(["serve", "echo", "--port", "0", "--unix-mode", "660"]),
        cli(["serve", "exec", "--allow", "id", "--unix", "/nonexistent/x.sock", "--unix-mode", "1777"]),
        cli(["serve", "upper", "--unix", "/nonexistent/x.sock", "--unix-mode", "rw-rw----"])
      ], { concurrency: 3 })
      assert.strictEqual(tcp.code, 1)
      assertOneErrorLine(tcp.stderr, /^error: --unix-mode applies to --unix: a TCP port has no file mode$/)
      assert.strictEqual(sticky.code, 1)
      assertOneErrorLine(
        sticky.stderr,
        /^error: --unix-mode: expected permission bits in octal from 000 to 777, e\.g\. 660, got "1777"$/
      )
      assert.strictEqual(word.code, 1)
      assertOneErrorLine(word.stderr, /^error: --unix-mode: expected permission bits in octal/)
    }))
})

describe("effect-wire exec: whose socket file it trusts (issue 18, finding 4)", () => {
  it.live.skipIf(process.getuid?.() !== 0)(
    "as root, a socket file owned by another user is refused (125, one line) before the token is sent; " +
      "--allow-foreign-socket connects",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const path = Path.join(dir, "exec.sock")
        yield* Exec.make({ allow: ["id"], address: Address.unix(path), token: "s3cret" })
        Fs.chownSync(path, NOBODY, NOBODY)
        const env = { EW_TEST_TOKEN: "s3cret" }
        const args = ["exec", `unix:${path}`, "--token-env", "EW_TEST_TOKEN"]
        const [refused, allowed] = yield* Effect.all([
          cli([...args, "--", "id", "-u"], { env }),
          cli([...args, "--allow-foreign-socket", "--", "id", "-u"], { env })
        ], { concurrency: 2 })
        assert.strictEqual(refused.code, 125)
        assert.strictEqual(refused.stdout, "")
        assert.strictEqual(
          refused.stderr,
          `error: refusing to connect to unix:${path}: ${path} is owned by uid ${NOBODY}, not by this user (uid 0) ` +
            "or root; whoever owns it would receive the request (and its token). If you trust it, add " +
            "--allow-foreign-socket\n"
        )
        assert.strictEqual(allowed.code, 0, allowed.stderr)
        assert.strictEqual(allowed.stdout, "0\n")
      })
  )

  it.live("a socket file in a directory others may write to is refused; the user's own private one is not", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "exec.sock")
      yield* Exec.make({ allow: ["id"], address: Address.unix(path) })
      const own = yield* cli(["exec", `unix:${path}`, "--", "id", "-u"])
      assert.strictEqual(own.code, 0, own.stderr)
      assert.strictEqual(own.stdout, `${process.getuid?.()}\n`)
      Fs.chmodSync(dir, 0o777)
      const shared = yield* cli(["exec", `unix:${path}`, "--", "id", "-u"])
      assert.strictEqual(shared.code, 125)
      assertOneErrorLine(
        shared.stderr,
        new RegExp(`^error: refusing to connect to unix:${path}: the directory ${dir} \\(mode 0777\\) may be written by others`)
      )
      assert.match(shared.stderr, /If you trust it, add --allow-foreign-socket\n$/)
    }))
})
