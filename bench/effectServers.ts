/**
 * Servers whose handlers are Effects, for the bench: effect-wire's own (a
 * user's `Stream` handler, a typed `Protocol` service) and, as the peer they
 * are measured against, Effect 4's own `NodeSocketServer` written the
 * idiomatic way. Each prints `listening tcp HOST:PORT` like the CLI.
 *
 *   node dist/bench/effectServers.js <kind> [--host 127.0.0.1] [--port 0]
 *
 * kinds:
 * - `wire-stream`:   `Server.layer` + `Stream.run(socket.reads, socket.writes)` (raw echo)
 * - `wire-protocol`: `Protocol.serve` request/response over u32 BE frames, binary
 *                    messages (a bytes Schema), one Effect handler call per request
 * - `effect-raw`:    `NodeSocketServer` + the pull `Reader`, fiber per connection,
 *                    one `writeAll` per read (raw echo)
 * - `effect-framed`: the same, cutting u32 BE frames by hand and answering each
 *                    read's frames with one `writeAll`
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as SocketServer from "effect/socket/SocketServer"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Message from "../src/Message.js"
import * as Protocol from "../src/Protocol.js"
import * as Server from "../src/Server.js"

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback
}
const kind = process.argv[2] ?? ""
const host = arg("--host", "127.0.0.1")
const port = Number(arg("--port", "0"))
const listening = (where: string) => Effect.sync(() => process.stdout.write(`listening tcp ${where}\n`))

// A typed service whose messages are bytes: the frame is the message.
const Bytes = Protocol.make({
  framing: Framing.lengthPrefixed(),
  incoming: Schema.Uint8Array,
  outgoing: Schema.Uint8Array,
  // The encoded side of a bytes Schema is bytes; FormatFactory is generic over it.
  format: <A, I>(schema: Schema.Codec<A, I>) => Message.make("bytes", schema as unknown as Schema.Codec<A, Uint8Array>)
})

const wire = (handler: Server.Options<unknown, never>["handler"]) =>
  Effect.gen(function*() {
    const server = yield* Server.Server
    yield* listening(Address.format(server.address))
    return yield* Effect.never
  }).pipe(Effect.provide(Server.layer({ address: Address.tcp(host, port), handler })))

/** u32 BE frames cut from each read; the read's whole frames echoed in one batch. */
const framedEcho = () => {
  let pending: Uint8Array = new Uint8Array(0)
  return (chunk: Uint8Array): Array<Uint8Array> => {
    let buf = chunk
    if (pending.length > 0) {
      buf = new Uint8Array(pending.length + chunk.length)
      buf.set(pending)
      buf.set(chunk, pending.length)
    }
    const out: Array<Uint8Array> = []
    let at = 0
    while (buf.length - at >= 4) {
      const length = ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0
      if (buf.length - at - 4 < length) break
      out.push(buf.subarray(at, at + 4 + length))
      at += 4 + length
    }
    pending = buf.subarray(at)
    return out
  }
}

const effect = (framed: boolean) =>
  Effect.gen(function*() {
    const server = yield* SocketServer.SocketServer
    const address = server.address
    yield* listening(address._tag === "UnixPathAddress" ? address.path : `${host}:${address.port}`)
    return yield* server.run((socket) =>
      Effect.gen(function*() {
        const writer = yield* socket.writer
        const reader = yield* socket.reader
        const frames = framedEcho()
        while (true) {
          const chunks = yield* reader.pull
          if (!framed) {
            yield* writer.writeAll(chunks)
            continue
          }
          const out: Array<Uint8Array> = []
          for (const chunk of chunks) {
            if (typeof chunk !== "string") out.push(...frames(chunk))
          }
          if (out.length > 0) yield* writer.writeAll(out as [Uint8Array, ...Array<Uint8Array>])
        }
      }).pipe(Effect.scoped, Effect.catchTag("SocketError", () => Effect.void))
    )
  }).pipe(Effect.provide(NodeSocketServer.layer({ host, port })))

const programs: Record<string, () => Effect.Effect<unknown, unknown>> = {
  "wire-stream": () => wire((socket) => Stream.run(socket.reads, socket.writes)),
  "wire-protocol": () => wire(Protocol.serve(Bytes, (request) => Effect.succeed(request))),
  "effect-raw": () => effect(false),
  "effect-framed": () => effect(true)
}

const program = programs[kind]
if (program === undefined) {
  process.stderr.write(`usage: node dist/bench/effectServers.js <${Object.keys(programs).join("|")}> [--host H] [--port P]\n`)
  process.exit(2)
}
program().pipe(Effect.provide(Layer.empty), NodeRuntime.runMain)
