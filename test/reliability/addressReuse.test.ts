/**
 * Address reuse: a server killed with connections open can be restarted on
 * the same port at once (its old connections in TIME_WAIT and FIN_WAIT do not
 * block the bind); a second live server on a port gets AddressInUse; a Unix
 * socket file left by a killed server is replaced, a live one is not, and a
 * file that is not a socket is never touched.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Address from "../../src/Address.js"
import * as Echo from "../../src/servers/Echo.js"
import { bytesEqual, noUnhandledErrors, pattern, printSummary, runCli, serveCli, track } from "./harness.js"

afterAll(printSummary)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-reuse-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** One echo round trip on a fresh connection. */
const roundTrip = (address: Address.Address, i = 0) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Echo.client(address)
    const payload = pattern(1000, i)
    return bytesEqual(yield* client.request(payload), payload)
  }))

/** Sockets on `port` per TCP state, as `ss` sees them (empty when ss is missing). */
const tcpStates = (port: number): Record<string, number> => {
  try {
    const out = ChildProcess.execFileSync("ss", ["-tanH", `sport = :${port}`], { encoding: "utf8" })
    const states: Record<string, number> = {}
    for (const line of out.split("\n").filter((l) => l.trim() !== "")) {
      const state = line.trim().split(/\s+/)[0]!
      states[state] = (states[state] ?? 0) + 1
    }
    return states
  } catch {
    return {}
  }
}

describe("address reuse", () => {
  it.live(
    "restart on the same port right after SIGKILL with 50 connections open: old connections in TIME_WAIT/FIN_WAIT do not block the new bind, and the new server serves",
    (ctx) => {
      const row = track(ctx, "restart after SIGKILL (TIME_WAIT)")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const first = yield* serveCli(["echo", "--port", "0"])
        const address = first.address as Address.TcpAddress
        // 50 connections that have moved bytes; half will close after the kill (the server's
        // side then sits in TIME_WAIT), half stay open through the restart (FIN_WAIT_2).
        const scopes = yield* Effect.forEach(Array.from({ length: 50 }), () => Scope.make())
        yield* Effect.forEach(scopes, (scope, i) =>
          Effect.gen(function*() {
            const client = yield* Scope.provide(Echo.client(address), scope)
            const payload = pattern(500, i)
            assert.isTrue(bytesEqual(yield* client.request(payload), payload))
          }), { discard: true })
        process.kill(first.pid, "SIGKILL")
        yield* first.exited
        yield* Effect.forEach(scopes.slice(0, 25), (scope) => Scope.close(scope, Exit.void), { discard: true })
        const statesBefore = tcpStates(address.port)
        const second = yield* serveCli(["echo", "--port", String(address.port)])
        assert.strictEqual(second.listening, `127.0.0.1:${address.port}`)
        const ok = yield* Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => roundTrip(second.address, i))
        assert.isTrue(ok.every((x) => x))
        yield* Effect.forEach(scopes.slice(25), (scope) => Scope.close(scope, Exit.void), { discard: true })
        row.connections = 60
        row.faults = 1
        row.bytes = 50 * 1000 + 10 * 2000
        row.notes.push(`port ${address.port} at restart: ${JSON.stringify(statesBefore)}`)
        // The case is only meaningful if the old connections were still there.
        if (Object.keys(statesBefore).length > 0) {
          assert.isAbove((statesBefore["TIME-WAIT"] ?? 0) + (statesBefore["FIN-WAIT-2"] ?? 0) + (statesBefore["FIN-WAIT-1"] ?? 0), 0)
        }
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )

  it.live(
    "a second server on a live port gets AddressInUse: the library fails with the typed error, the CLI prints the one-line error and exits 1, and the first server keeps serving",
    (ctx) => {
      const row = track(ctx, "second server -> AddressInUse")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const first = yield* serveCli(["echo", "--port", "0"])
        const port = (first.address as Address.TcpAddress).port
        const library = yield* Effect.flip(Effect.scoped(Echo.make({ address: first.address })))
        assert.strictEqual(library._tag, "AddressInUse")
        const cli = yield* runCli(["serve", "echo", "--port", String(port)])
        assert.strictEqual(cli.code, 1)
        assert.include(cli.output, `error: address 127.0.0.1:${port} is already in use (EADDRINUSE)`)
        assert.isTrue(yield* roundTrip(first.address))
        assert.isNull(first.process.exitCode)
        row.connections = 1
        row.faults = 2
        row.notes.push(`CLI: exit ${cli.code}, "${cli.output.trim()}"`)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )

  it.live(
    "Unix socket files: after SIGKILL the file stays; the next start removes it and listens; a live server's file is AddressInUse; a regular file at the path is refused and left intact",
    (ctx) => {
      const row = track(ctx, "stale Unix socket file")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const dir = yield* tempDir
        const path = Path.join(dir, "echo.sock")
        const first = yield* serveCli(["echo", "--unix", path])
        assert.strictEqual(first.listening, path)
        assert.isTrue(yield* roundTrip(first.address))
        process.kill(first.pid, "SIGKILL")
        yield* first.exited
        assert.isTrue(Fs.lstatSync(path).isSocket(), "a killed server leaves its socket file")

        const second = yield* serveCli(["echo", "--unix", path])
        assert.strictEqual(second.listening, path)
        assert.isTrue(yield* roundTrip(second.address, 1))

        const live = yield* runCli(["serve", "echo", "--unix", path])
        assert.strictEqual(live.code, 1)
        assert.match(live.output, /already in use|EADDRINUSE/)
        assert.isTrue(yield* roundTrip(second.address, 2), "the live server is untouched")

        const regular = Path.join(dir, "not-a-socket")
        Fs.writeFileSync(regular, "precious")
        const onFile = yield* runCli(["serve", "echo", "--unix", regular])
        assert.strictEqual(onFile.code, 1)
        assert.strictEqual(Fs.readFileSync(regular, "utf8"), "precious")
        const library = yield* Effect.result(Effect.scoped(Echo.make({ address: Address.unix(regular) })))
        assert.isTrue(Result.isFailure(library) && library.failure._tag === "AddressInUse")
        row.connections = 3
        row.faults = 3
        row.notes.push(`live: "${live.output.trim().slice(0, 90)}"`, `regular file: "${onFile.output.trim().slice(0, 90)}"`)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    60_000
  )
})
