/**
 * Keeps `npm run bench` from rotting: runs the built `--quick` (tiny sizes,
 * one repetition) with `--before dist` (this build standing in for an earlier
 * one, so the before/after servers run too) and checks that it ran every
 * workload on every server and found nothing wrong. Speed is never judged
 * here; CI machines are too noisy.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("..", import.meta.url))

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const run = (args: ReadonlyArray<string>, timeoutMs: number): Promise<Ran> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`node ${args.join(" ")} still running after ${timeoutMs} ms\n${stderr}`))
    }, timeoutMs)
    child.on("error", reject)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

beforeAll(() => {
  // test/globalSetup.ts builds dist/ once for every test that runs built code (building here
  // too would rewrite files other test files are running).
  assert.isTrue(
    Fs.existsSync(Path.join(ROOT, "dist", "bench", "run.js")),
    "dist/bench/run.js is missing: run npm run build"
  )
})

describe("npm run bench", () => {
  it("--quick --before runs every workload on every server and finds every byte and frame in place", async () => {
    const out = Path.join(Os.tmpdir(), `effect-wire-bench-${process.pid}.json`)
    try {
      const ran = await run(["dist/bench/run.js", "--quick", "--before", "dist", "--json", out], 230_000)
      assert.strictEqual(ran.code, 0, `${ran.stdout}\n${ran.stderr}`)
      const result = JSON.parse(Fs.readFileSync(out, "utf8")) as {
        correctness: { ok: boolean; failures: Array<string> }
        servers: Array<{ id: string }>
        samples: Array<{ workload: string; server: string; errors: Array<string> }>
        targets: Array<{ text: string; verdict: string }>
      }
      assert.deepStrictEqual(result.correctness.failures, [])
      // The default servers, each effect-wire one followed by its `--before` edition.
      assert.deepStrictEqual(result.servers.map((s) => s.id), [
        "node-raw",
        "node-framed",
        "wire",
        "wire@before",
        "wire-framed",
        "wire-framed@before",
        "wire-stream",
        "wire-stream@before",
        "wire-protocol",
        "wire-protocol@before",
        "effect-raw",
        "effect-framed"
      ])
      for (const server of result.servers) {
        for (const workload of ["startup", "stream", "pingpong", "pipeline", "connections", "ordering"]) {
          const samples = result.samples.filter((s) => s.server === server.id && s.workload === workload)
          assert.isAbove(samples.length, 0, `${workload} ran on ${server.id}`)
        }
      }
      // Every target got a number to judge (PASS or FAIL, whichever): none was left without data.
      for (const target of result.targets) assert.notStrictEqual(target.verdict, "n/a", target.text)
      assert.include(ran.stdout, "### Targets")
      assert.include(ran.stdout, "### Summary")
      assert.include(ran.stdout, "effect-wire `serve echo --framing length` (before)")
    } finally {
      Fs.rmSync(out, { force: true })
    }
  }, 240_000)

  it("the ordering probe reports a server that swaps two frames", async () => {
    // Echoes every frame, but frame #3 after frame #4.
    const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
      const parts: Array<Buffer> = []
      socket.on("data", (chunk: Buffer) => parts.push(chunk))
      socket.on("end", () => {
        const all = Buffer.concat(parts)
        const frames: Array<Buffer> = []
        for (let at = 0; at < all.length;) {
          const size = 4 + all.readUInt32BE(at)
          frames.push(all.subarray(at, at + size))
          at += size
        }
        ;[frames[3], frames[4]] = [frames[4]!, frames[3]!]
        socket.end(Buffer.concat(frames))
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const { port } = server.address() as Net.AddressInfo
      const job = { kind: "ordering", connections: 1, framesPerConnection: 40, maxFrameSize: 4096, seed: 7, timeoutMs: 10_000 }
      const ran = await run(
        ["dist/bench/load.js", JSON.stringify({ target: { host: "127.0.0.1", port, pid: process.pid }, job })],
        30_000
      )
      assert.strictEqual(ran.code, 0, ran.stderr)
      const result = JSON.parse(ran.stdout) as { errors: Array<string> }
      assert.strictEqual(result.errors.length, 1, ran.stdout)
      assert.match(result.errors[0]!, /out of order or corrupt at frame #3 /)
    } finally {
      server.close()
    }
  }, 40_000)
})
