/**
 * The servers effect-wire is measured against, each a process of its own that
 * prints `listening tcp HOST:PORT` like the effect-wire CLI:
 *
 *   node dist/bench/baselines.js raw    [--host 127.0.0.1] [--port 0]
 *   node dist/bench/baselines.js framed [--host 127.0.0.1] [--port 0]
 *   node dist/bench/baselines.js framed-json [--host 127.0.0.1] [--port 0]
 *   node dist/bench/baselines.js raw-heap [--heap-mb 16] [--host 127.0.0.1] [--port 0]
 *
 * `raw` is the fastest echo Node can do, `socket.pipe(socket)`. Both set
 * TCP_NODELAY, as effect-wire does by default, so all servers put the same
 * segments on the wire. `framed` is
 * the best hand-written framed echo: u32 BE length-prefixed frames decoded as
 * views of the read (no copy unless a frame spans reads), and every read's
 * answers written as one corked batch, pausing reads while the peer is slow.
 * `framed-json` is the same server answering the JSON workloads the way a
 * hand-written JSON service does: parse, check the fields, stringify.
 * `raw-heap` is `raw` in a process whose live heap is as large as an Effect
 * program's (`--heap-mb`, 16 by default: the bench's Effect servers idle at
 * 15–16 MB of V8 heap after a full collection, raw node at 4): what the heap
 * alone costs a server that streams (V8's full collections, which Node's
 * 64 KiB read buffers set off, mark the whole heap).
 */
import * as Net from "node:net"
import { HEADER_BYTES, serveUntilSignal } from "./common.js"

/** The most a frame may announce, as effect-wire's default `maxFrameLength` (8 MiB). */
const MAX_FRAME = 8 * 1024 * 1024

const rawEcho = (socket: Net.Socket): void => {
  socket.on("error", () => socket.destroy())
  socket.pipe(socket)
}

/**
 * A hand-written framed server: `reply` turns each frame's body into the
 * answer's body (the same bytes for the echo), or undefined to cut the
 * connection.
 */
const framedServer = (reply: (body: Buffer) => Buffer | undefined) => (socket: Net.Socket): void => {
  socket.on("error", () => socket.destroy())
  // Bytes of an unfinished frame, kept as the reads that brought them.
  let parts: Array<Buffer> = []
  let partsBytes = 0
  let needed = HEADER_BYTES

  const answer = (request: Buffer): boolean => {
    const body = reply(request)
    if (body === undefined) return false
    const header = Buffer.allocUnsafe(HEADER_BYTES)
    header.writeUInt32BE(body.length, 0)
    socket.write(header)
    socket.write(body)
    return true
  }

  socket.on("data", (chunk: Buffer) => {
    let buffer = chunk
    if (partsBytes > 0) {
      parts.push(chunk)
      partsBytes += chunk.length
      if (partsBytes < needed) return
      buffer = Buffer.concat(parts, partsBytes)
      parts = []
      partsBytes = 0
    }
    socket.cork()
    let at = 0
    while (buffer.length - at >= HEADER_BYTES) {
      const size = buffer.readUInt32BE(at)
      if (size > MAX_FRAME) {
        socket.destroy(new Error(`frame of ${size} bytes over ${MAX_FRAME}`))
        return
      }
      if (buffer.length - at - HEADER_BYTES < size) break
      if (!answer(buffer.subarray(at + HEADER_BYTES, at + HEADER_BYTES + size))) {
        socket.destroy(new Error("not a request"))
        return
      }
      at += HEADER_BYTES + size
    }
    if (at < buffer.length) {
      parts.push(buffer.subarray(at))
      partsBytes = buffer.length - at
      needed = partsBytes >= HEADER_BYTES ? HEADER_BYTES + buffer.readUInt32BE(at) : HEADER_BYTES
    } else {
      needed = HEADER_BYTES
    }
    // Every answer of this read leaves as one writev.
    socket.uncork()
    if (socket.writableNeedDrain) {
      socket.pause()
      socket.once("drain", () => socket.resume())
    }
  })
  socket.on("end", () => {
    if (partsBytes > 0) socket.destroy(new Error(`input ended inside a frame (${partsBytes} bytes)`))
    else socket.end()
  })
}

const framedEcho = framedServer((body) => body)

/**
 * The JSON service as a node user writes it by hand: each frame parsed with
 * `JSON.parse`, its fields checked, the answer made with `JSON.stringify`,
 * the same work effect-wire's JSON `Protocol` service does with Schema
 * (bench/messages.ts's `JsonMessage`).
 */
const framedJson = framedServer((body) => {
  let request: unknown
  try {
    request = JSON.parse(body.toString("utf8"))
  } catch {
    return undefined
  }
  if (typeof request !== "object" || request === null) return undefined
  const { conn, pad, seq } = request as Record<string, unknown>
  if (typeof seq !== "number" || typeof conn !== "number" || typeof pad !== "string") return undefined
  return Buffer.from(JSON.stringify({ seq, conn, pad }))
})

/**
 * Kept for the life of the process: plain objects until the live heap is
 * `mb` MiB, in blocks made at their full size (a growing array would leave
 * its outgrown copies as garbage, which `heapUsed` counts as live).
 */
const ballast: Array<Array<{ readonly i: number; readonly j: number; readonly s: string }>> = []
const growHeap = (mb: number): void => {
  const target = mb * 2 ** 20
  // Start from the live heap (the bench runs every server with --expose-gc), not from start-up's garbage.
  ;(globalThis as { gc?: () => void }).gc?.()
  for (let round = 0; round < 10_000 && process.memoryUsage().heapUsed < target; round++) {
    const block = new Array<{ readonly i: number; readonly j: number; readonly s: string }>(10_000)
    for (let i = 0; i < block.length; i++) block[i] = { i, j: i + 1, s: `k${i % 1000}` }
    ballast.push(block)
  }
}

const main = (): void => {
  const [mode, ...rest] = process.argv.slice(2)
  const option = (name: string, fallback: string): string => {
    const at = rest.indexOf(name)
    return at >= 0 && rest[at + 1] !== undefined ? rest[at + 1]! : fallback
  }
  const handler = mode === "raw" || mode === "raw-heap"
    ? rawEcho
    : mode === "framed"
    ? framedEcho
    : mode === "framed-json"
    ? framedJson
    : undefined
  if (handler === undefined) {
    process.stderr.write("usage: baselines.js raw|framed|framed-json|raw-heap [--heap-mb 16] [--host 127.0.0.1] [--port 0]\n")
    process.exit(2)
  }
  if (mode === "raw-heap") {
    const mb = Number(option("--heap-mb", "16"))
    if (!(mb > 0 && mb <= 4096)) {
      process.stderr.write(`--heap-mb must be a number of MiB above 0 and at most 4096, not ${option("--heap-mb", "")}\n`)
      process.exit(2)
    }
    growHeap(mb)
  }
  // allowHalfOpen: a client's end() must still get every answer, then our end().
  const server = Net.createServer({ allowHalfOpen: true, noDelay: true }, handler)
  serveUntilSignal(server, option("--host", "127.0.0.1"), Number(option("--port", "0")))
}

main()
