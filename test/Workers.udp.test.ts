/**
 * `serve echo --udp --workers 2`: every worker binds the UDP port (the TCP
 * port's number) itself with SO_REUSEPORT, as it does TCP, so the kernel
 * spreads datagrams over them: both workers hold a socket on the port (ss
 * names their pids), datagrams from many source ports are all echoed, the
 * parent's metrics count exactly those datagrams, and with one worker killed
 * the other goes on echoing.
 */
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as Dgram from "node:dgram"
import { afterEach, assert, describe, it } from "vitest"
import { dist, startCli } from "./helpers/cliBuild.js"
import { waitGone } from "./helpers/processes.js"

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup()
})

/** Send `text` from a socket of its own (a new source port) and wait for the echo: at most 3 tries of 1 s. */
const echoFrom = async (port: number, text: string): Promise<string | undefined> => {
  const socket = Dgram.createSocket("udp4")
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const reply = await new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 1000)
        socket.once("message", (msg) => {
          clearTimeout(timer)
          resolve(msg.toString("utf8"))
        })
        socket.send(text, port, "127.0.0.1")
      })
      if (reply !== undefined) return reply
    }
    return undefined
  } finally {
    socket.close()
  }
}

const hasSs = (() => {
  try {
    execFileSync("sh", ["-c", "command -v ss"])
    return true
  } catch {
    return false
  }
})()

/** The pids holding a UDP socket bound to `port` (ss -uanp). */
const udpHolders = (port: number): Array<number> => {
  const out = execFileSync("ss", ["-Huanp", `sport = :${port}`], { encoding: "utf8" })
  return [...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]))
}

describe.skipIf(!hasSs)("serve echo --udp --workers 2", () => {
  it("every worker binds the UDP port with SO_REUSEPORT; datagrams from many ports are echoed and counted", async () => {
    const server = startCli(
      dist,
      ["serve", "echo", "--port", "0", "--udp", "--workers", "2", "--metrics", "127.0.0.1:0"],
      { timeoutMs: 90_000 }
    )
    cleanups.push(() => server.signal("SIGKILL"))
    const url = (await server.waitFor(/^metrics http:\/\//)).replace(/^metrics /, "")
    const tcpPort = Number((await server.waitFor(/^listening tcp /)).split(":").pop())
    const udpPort = Number((await server.waitFor(/^listening udp /)).split(":").pop())
    assert.strictEqual(udpPort, tcpPort)
    const serving = await server.waitFor(/2 worker\(s\) serving/, "stderr")
    const pids = /pid (\d+), (\d+)/.exec(serving)!.slice(1).map(Number)
    assert.deepStrictEqual(udpHolders(udpPort).sort(), [...pids].sort())

    const n = 40
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => echoFrom(udpPort, `datagram ${i}`)))
    assert.deepStrictEqual(replies, Array.from({ length: n }, (_, i) => `datagram ${i}`))
    // The parent's endpoint sums the workers' datagram counters: every one received, and sent back.
    const sample = async (direction: string) => {
      const text = await (await fetch(url)).text()
      const line = text.split("\n").find((l) =>
        l.startsWith("effect_wire_udp_datagrams{") && l.includes(`network_io_direction="${direction}"`)
      )
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
    }
    const received = await sample("receive")
    assert.isAtLeast(received!, n)
    assert.isAtMost(received!, 3 * n)
    assert.strictEqual(await sample("transmit"), received)

    // One worker killed: the kernel gives its share to the other socket on the port.
    process.kill(pids[0]!, "SIGKILL")
    assert.isTrue(await Effect.runPromise(waitGone(pids[0]!, 10_000)))
    const after = await Promise.all(Array.from({ length: 10 }, (_, i) => echoFrom(udpPort, `after ${i}`)))
    assert.deepStrictEqual(after, Array.from({ length: 10 }, (_, i) => `after ${i}`))

    server.signal("SIGTERM")
    const exit = await server.exit
    assert.strictEqual(exit.code, 0, exit.stderr)
  }, 120_000)
})
