/**
 * `npm start` runs `effect-wire demo`: here it runs as that process, from a
 * fresh transpile of src/, and must print every section's exchange and exit
 * 0 on its own, everything on loopback.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Os from "node:os"
import { dist, runCli, startCli } from "./helpers/cliBuild.js"

describe("effect-wire demo", () => {
  it.live("runs every scripted session against the composed servers and exits 0", () =>
    Effect.gen(function*() {
      const run = yield* Effect.promise(() => runCli(dist, ["demo"], { timeoutMs: 20_000 }))
      assert.strictEqual(run.code, 0, run.stderr)
      assert.strictEqual(run.stderr, "")
      const lines = run.stdout.split("\n")
      const has = (expected: string | RegExp) =>
        assert.isTrue(
          lines.some((line) => typeof expected === "string" ? line === expected : expected.test(line)),
          `no line ${expected} in:\n${run.stdout}`
        )
      // The servers, each on a loopback port of its own.
      for (const server of ["echo     tcp", "upper    tcp", "exec     tcp", "upper    udp", "question tcp"]) {
        has(new RegExp(`^  ${server} 127\\.0\\.0\\.1:\\d+$`))
      }
      assert.notMatch(run.stdout, /\b(0\.0\.0\.0|::):/)
      // 1. the one-shot question
      has("  → \"1+5=?\"")
      has("  ← \"6\"")
      // 2. and 3. echo and upper
      has("  ← \"hello, wire\"")
      has("  ← \"EFFECT-WIRE SPEAKS TCP\"")
      // 4. exec: allowed, and refused
      has(`  ← exit 0, stdout ${JSON.stringify(`${Os.type()}\n`)}`)
      has("  ← exit 0, stdout \"hello from a remote command\\n\"")
      has(/^ {2}← refused, CommandNotAllowed: command "rm" is not allowed/)
      // 5. UDP
      has("  ← datagram \"PING OVER UDP\"")
      // 6. sticky packets: one blob raw, three frames framed
      const rawLine = /^ {2}← raw, read by read: (\d+) read\(s\): (.*); the boundaries are gone$/
      const raw = lines.map((line) => rawLine.exec(line)).find((match) => match !== null)
      assert.isDefined(raw, run.stdout)
      const reads: Array<string> = JSON.parse(`[${raw![2]}]`)
      assert.strictEqual(reads.length, Number(raw![1]))
      assert.strictEqual(reads.join(""), "alphabetagamma")
      has("  ← framed (lengthPrefixed): 3 frames: \"alpha\", \"beta\", \"gamma\"")
      has(/^all servers drained and closed; done in \d+ ms$/)
      // 7. the metrics summary, read once every server drained: six sessions, each its own connection
      has(/^metrics \(effect-wire's own, from Metric\.snapshot/)
      has("  server connections: 6 opened, 0 open now, closed: 6 completed")
      const bytes = lines.map((line) => /^ {2}server bytes: (\d+) received, (\d+) sent$/.exec(line)).find((m) => m !== null)
      assert.isDefined(bytes, run.stdout)
      assert.isAbove(Number(bytes![1]), 0)
      assert.isAbove(Number(bytes![2]), 0)
      has("  exec commands: 2 run, 1 refused (refused: 1 CommandNotAllowed)")
      has("  udp datagrams: 2 received, 2 sent, 0 dropped")
    }))

  it.live("interrupted by SIGTERM, it drains the servers and exits 143, as shells do", () =>
    Effect.gen(function*() {
      const demo = startCli(dist, ["demo"], { timeoutMs: 20_000 })
      yield* Effect.promise(() => demo.waitFor(/^effect-wire demo: /))
      demo.signal("SIGTERM")
      const run = yield* Effect.promise(() => demo.exit)
      assert.strictEqual(run.code, 143, run.stderr)
      // Nothing failed: stderr holds at most the drain reports of servers that had a connection open
      // (taken in Node's connection callback, a connection of the session counts at once).
      const lines = run.stderr.split("\n").filter((line) => line.length > 0)
      for (const line of lines) assert.match(line, /level=INFO .*: shut down; \d+ connection\(s\) finished, 0 cut/, run.stderr)
      assert.notInclude(run.stdout, "all servers drained and closed")
    }))
})
