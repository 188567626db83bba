/**
 * The peers: the same servers on Effect 4's own `NodeSocketServer`, written
 * the way an Effect user writes them (see bench/effectServers.ts). A fiber
 * per connection pulls the socket's `Reader` and answers each read with one
 * `writeAll`. Every one sets `noDelay`, like effect-wire and the node:net
 * baselines, so all servers put the same segments on the wire.
 */
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as EffectSocket from "effect/socket/Socket"
import * as SocketServer from "effect/socket/SocketServer"
import { JsonMessage } from "../messages.js"
import { type Listen, listeningAt, type Programs } from "./common.js"

type OnRead = (
  chunks: ReadonlyArray<Uint8Array | string>,
  writer: EffectSocket.Writer
) => Effect.Effect<void, EffectSocket.SocketError | Schema.SchemaError>

/** u32 BE frames cut from each read (with their header or without); the rest kept for the next read. */
const frameCutter = () => {
  let pending: Uint8Array = new Uint8Array(0)
  return (chunk: Uint8Array, out: Array<Uint8Array>, withHeader: boolean): void => {
    let buf = chunk
    if (pending.length > 0) {
      buf = new Uint8Array(pending.length + chunk.length)
      buf.set(pending)
      buf.set(chunk, pending.length)
    }
    let at = 0
    while (buf.length - at >= 4) {
      const length = ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0
      if (buf.length - at - 4 < length) break
      out.push(buf.subarray(withHeader ? at : at + 4, at + 4 + length))
      at += 4 + length
    }
    pending = buf.subarray(at)
  }
}

const header = (length: number): Uint8Array => {
  const h = new Uint8Array(4)
  new DataView(h.buffer).setUint32(0, length)
  return h
}

/** `connection()` makes each connection's read handler; a fiber pulls reads until the peer closes. */
const serve = (connection: () => OnRead) => ({ host, port }: Listen) =>
  Effect.gen(function*() {
    const server = yield* SocketServer.SocketServer
    yield* listeningAt(server.address, host)
    return yield* server.run((socket) =>
      Effect.gen(function*() {
        const writer = yield* socket.writer
        const reader = yield* socket.reader
        const each = connection()
        while (true) {
          const chunks = yield* reader.pull
          yield* each(chunks, writer)
        }
      }).pipe(Effect.scoped, Effect.catchTag("SocketError", () => Effect.void))
    )
  }).pipe(Effect.provide(NodeSocketServer.layer({ host, port, noDelay: true })))

const rawEcho = (): OnRead => (chunks, writer) => writer.writeAll(chunks as [Uint8Array, ...Array<Uint8Array>])

const framedEcho = (): OnRead => {
  const cut = frameCutter()
  return (chunks, writer) => {
    const out: Array<Uint8Array> = []
    for (const chunk of chunks) if (typeof chunk !== "string") cut(chunk, out, true)
    return out.length > 0 ? writer.writeAll(out as [Uint8Array, ...Array<Uint8Array>]) : Effect.void
  }
}

/**
 * A typed request/response service as an Effect user writes it: each read's
 * frames decoded with Schema, one handler Effect per request, the responses
 * encoded with Schema and written with one `writeAll` per read. `parse` and
 * `write` turn a frame into the Schema's encoded side and back (nothing for
 * bytes; JSON text for JSON).
 */
const typedService = <A, I>(
  schema: Schema.Codec<A, I>,
  parse: (frame: Uint8Array) => unknown,
  write: (encoded: I) => Uint8Array,
  handler: (request: A) => Effect.Effect<A>
) => {
  const decode = Schema.decodeUnknownEffect(schema)
  const encode = Schema.encodeEffect(schema)
  return (): OnRead => {
    const cut = frameCutter()
    return (chunks, writer) =>
      Effect.gen(function*() {
        const frames: Array<Uint8Array> = []
        for (const chunk of chunks) if (typeof chunk !== "string") cut(chunk, frames, false)
        if (frames.length === 0) return
        const out: Array<Uint8Array> = []
        for (const frame of frames) {
          const request = yield* decode(parse(frame))
          const body = write(yield* encode(yield* handler(request)))
          out.push(header(body.length), body)
        }
        yield* writer.writeAll(out as [Uint8Array, ...Array<Uint8Array>])
      })
  }
}

const textDecoder = new TextDecoder()
const textEncoder = new TextEncoder()

export const programs: Programs = {
  "effect-raw": serve(rawEcho),
  "effect-framed": serve(framedEcho),
  "effect-protocol": serve(
    typedService(Schema.Uint8Array, (frame) => frame, (bytes) => bytes, (request) => Effect.succeed(request))
  ),
  "effect-protocol-json": serve(typedService(
    JsonMessage,
    (frame) => JSON.parse(textDecoder.decode(frame)),
    (encoded) => textEncoder.encode(JSON.stringify(encoded)),
    (request) => Effect.succeed(request)
  ))
}
