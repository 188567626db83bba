/**
 * The command line's Node services (src/cli/nodeServices.ts): the file
 * system, terminal and child-process spawner that load on first use are the
 * Node ones behind a front, so they behave as `NodeServices.layer`'s do.
 * (That a plain `serve echo` does not load them is bin.test.ts's check.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import * as Stream from "effect/Stream"
import * as Terminal from "effect/Terminal"
import * as Path from "node:path"
import { NodeServices } from "../src/cli/nodeServices.js"
import { tempDir } from "./helpers/sockets.js"

describe("cli NodeServices", () => {
  it.live("the file system writes, reads, streams, lists and reports errors as Node's does", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* tempDir
      const file = Path.join(dir, "a.txt")
      assert.isFalse(yield* fs.exists(file))
      yield* fs.writeFileString(file, "hello\n")
      assert.isTrue(yield* fs.exists(file))
      assert.strictEqual(yield* fs.readFileString(file), "hello\n")
      const bytes = yield* Stream.runCollect(fs.stream(file))
      assert.strictEqual(Buffer.concat(bytes).toString(), "hello\n")
      assert.deepStrictEqual(yield* fs.readDirectory(dir), ["a.txt"])
      assert.strictEqual(Number((yield* fs.stat(file)).size), 6)
      const missing = yield* Effect.flip(fs.readFile(Path.join(dir, "missing")))
      assert.strictEqual(missing._tag, "PlatformError")
      assert.strictEqual(missing.reason._tag, "NotFound")
      const scoped = yield* fs.makeTempDirectoryScoped({ directory: dir })
      assert.isTrue(yield* fs.exists(scoped))
    }).pipe(Effect.provide(NodeServices)))

  it.live("the terminal reports the size of stdout as Node's does", () =>
    Effect.gen(function*() {
      const terminal = yield* Terminal.Terminal
      assert.strictEqual(yield* terminal.columns, process.stdout.columns ?? 0)
      assert.strictEqual(yield* terminal.rows, process.stdout.rows ?? 0)
    }).pipe(Effect.provide(NodeServices)))

  it.live("the spawner runs a command and reports its output and exit code", () =>
    Effect.gen(function*() {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const script = "process.stdout.write('ok'); process.exitCode = 3"
      const handle = yield* spawner.spawn(ChildProcess.make(process.execPath, ["-e", script]))
      const [out, code] = yield* Effect.all([Stream.mkString(Stream.decodeText(handle.stdout)), handle.exitCode], {
        concurrency: 2
      })
      assert.strictEqual(out, "ok")
      assert.strictEqual(code, ChildProcessSpawner.ExitCode(3))
    }).pipe(Effect.scoped, Effect.provide(NodeServices)))
})
