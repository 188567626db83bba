/**
 * Hostile bytes: every codec and every built-in server fed random and
 * adversarial input with fast-check (huge length claims, truncated headers,
 * zero-length frames, runs of delimiters split across reads, invalid UTF-8
 * and JSON). The outcome is always a correct answer or a typed error, the
 * process survives, and memory stays bounded.
 *
 * Servers run on in-memory listeners (exact read boundaries: every split the
 * arbitrary draws reaches the server as its own read) and, for a share of the
 * runs, on real loopback sockets.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Address from "../../src/Address.js"
import * as Framing from "../../src/Framing.js"
import * as Server from "../../src/Server.js"
import * as Echo from "../../src/servers/Echo.js"
import * as Exec from "../../src/servers/Exec.js"
import * as Upper from "../../src/servers/Upper.js"
import * as Socket from "../../src/Socket.js"
import * as CodecLaws from "../../src/testing/CodecLaws.js"
import * as MemorySocket from "../../src/testing/MemorySocket.js"
import {
  captureLogs,
  concatBytes,
  lengthFrame,
  makeProbe,
  memory,
  MiB,
  noUnhandledErrors,
  printSummary,
  scale,
  selfOf,
  signedMiB,
  track
} from "./harness.js"

afterAll(printSummary)

const utf8 = new TextEncoder()
const bytesOf = (values: ReadonlyArray<number>) => Uint8Array.from(values)

// ---------------------------------------------------------------------------
// arbitraries
// ---------------------------------------------------------------------------

/** One piece of hostile input; pieces are concatenated, then split at random. */
const hostilePiece: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  // Now and then a larger blob.
  fc.uint8Array({ minLength: 1_000, maxLength: 20_000 }),
  // Lines, CR-ended ones included (a line ending in CR cannot be echoed as a line).
  fc.tuple(fc.string({ maxLength: 20 }), fc.constantFrom("\n", "\r\n", "\r\r\n", "")).map(([s, end]) => utf8.encode(s + end)),
  // A length claim of any size (up to 4 GiB) followed by too few, enough or too many bytes.
  fc.tuple(fc.integer({ min: 0, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 64 })).map(([claim, body]) =>
    lengthFrame(body, claim)
  ),
  // Honest frames, zero-length ones included.
  fc.uint8Array({ maxLength: 64 }).map((body) => lengthFrame(body)),
  fc.constant(lengthFrame(new Uint8Array(0))),
  // Truncated headers.
  fc.uint8Array({ minLength: 1, maxLength: 3 }),
  // Varint continuation runs (an endless varint).
  fc.tuple(fc.integer({ min: 1, max: 16 }), fc.uint8Array({ maxLength: 8 })).map(([n, rest]) =>
    concatBytes([new Uint8Array(n).fill(0x80), rest])
  ),
  // Delimiter soup: CR, LF, NUL, and bytes of broken UTF-8.
  fc.array(fc.constantFrom(0x0d, 0x0a, 0x00, 0x61, 0xff, 0xc3, 0xe2, 0x80), { maxLength: 120 }).map(bytesOf),
  // Text and JSON, valid or not.
  fc.string({ maxLength: 60 }).map((s) => utf8.encode(s)),
  fc.json({ maxDepth: 2 }).map((s) => utf8.encode(s))
)

const hostileInput = fc.record({
  pieces: fc.array(hostilePiece, { maxLength: 6, size: "+1" }),
  chunking: CodecLaws.chunking
})

// ---------------------------------------------------------------------------
// codecs
// ---------------------------------------------------------------------------

type Event = { readonly frame: unknown } | { readonly error: string }

/** Decode `chunks` the way decodeEither does: on, past recoverable errors, until a fatal one. */
const runDecoder = <A>(codec: Framing.Codec<A>, chunks: ReadonlyArray<Uint8Array>) => {
  const decoder = codec.decoder()
  const events: Array<Event> = []
  let maxBuffered = 0
  const out: Array<A> = []
  const settle = (error: Framing.FrameError | undefined): boolean => {
    for (const frame of out.splice(0)) events.push({ frame })
    maxBuffered = Math.max(maxBuffered, decoder.buffered)
    if (error === undefined) return true
    if (!Framing.isFrameError(error)) throw new Error(`not a FrameError: ${String(error)}`)
    events.push({ error: error._tag })
    return !decoder.failed
  }
  for (const chunk of chunks) {
    let error = decoder.push(chunk, out)
    for (let i = 0; i < 10_000 && error !== undefined; i++) {
      if (!settle(error)) return { events, maxBuffered }
      error = decoder.push(new Uint8Array(0), out)
    }
    settle(undefined)
  }
  let error = decoder.end(out)
  for (let i = 0; i < 10_000 && error !== undefined && settle(error); i++) error = decoder.end(out)
  settle(undefined)
  return { events, maxBuffered }
}

const Header = Schema.Struct({ length: Schema.Int })

/** Every built-in codec, with small limits so that a claim past them is common; `bound`: most bytes held. */
const codecs: ReadonlyArray<{ readonly codec: Framing.Codec<any>; readonly bound: number }> = [
  { codec: Framing.lengthPrefixed({ maxFrameLength: 64 }), bound: 64 + 4 },
  { codec: Framing.lengthPrefixed({ lengthBytes: 2, endian: "little", maxFrameLength: 100 }), bound: 100 + 2 },
  { codec: Framing.lengthPrefixed({ lengthBytes: 8, offset: 1, adjustment: -9, strip: 0, maxFrameLength: 64 }), bound: 64 + 9 },
  { codec: Framing.varint({ maxFrameLength: 64 }), bound: 64 + 10 },
  { codec: Framing.delimited({ delimiter: "\r\n", maxLength: 32 }), bound: 32 + 2 },
  { codec: Framing.delimited({ delimiter: "\r\n", maxLength: 32, resync: true }), bound: 32 + 2 },
  { codec: Framing.lines({ maxLength: 32 }), bound: 32 + 2 },
  { codec: Framing.lines({ maxLength: 32, as: "string", resync: true }), bound: 32 + 2 },
  { codec: Framing.fixed(4), bound: 4 },
  {
    codec: Framing.header({ header: Header, bodyLength: (h) => h.length, maxHeaderLength: 64, maxBodyLength: 64 }),
    bound: 4 + 64 + 64
  }
]

describe("hostile bytes", () => {
  it.live(
    "every codec, fed adversarial bytes split every way, yields frames or FrameErrors only, holds no more than its limit, and says the same whatever the split",
    (ctx) => {
      const row = track(ctx, "codecs x adversarial input")
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const before = memory()
        for (const { bound, codec } of codecs) {
          const tags: Record<string, number> = {}
          fc.assert(
            fc.property(hostileInput, ({ chunking, pieces }) => {
              const input = concatBytes(pieces)
              row.bytes += input.length
              const whole = runDecoder(codec, [input])
              for (const sizes of [[1], chunking]) {
                const split = runDecoder(codec, CodecLaws.rechunk(input, sizes))
                if (!CodecLaws.equals(split.events, whole.events)) {
                  row.failures++
                  throw new Error(`split [${sizes.join(",")}] changed the outcome`)
                }
                if (split.maxBuffered > bound) {
                  row.failures++
                  throw new Error(`held ${split.maxBuffered} bytes, more than ${bound}`)
                }
              }
              for (const e of whole.events) {
                if ("error" in e) {
                  row.faults++
                  tags[e.error] = (tags[e.error] ?? 0) + 1
                }
              }
            }),
            { numRuns: scale.codecRuns }
          )
          row.notes.push(`${codec.name}: ${JSON.stringify(tags)}`)
        }
        // The exec wire codecs: never a throw, always a typed answer.
        fc.assert(
          fc.property(hostileInput, ({ pieces }) => {
            const input = concatBytes(pieces)
            const request = Exec.decodeRequest(input)
            if (Result.isFailure(request)) assert.strictEqual(request.failure._tag, "BadRequest")
            const response = Exec.decodeResponse(input, { maxHeaderBytes: 64, maxBodyBytes: 64 })
            if (Result.isFailure(response)) assert.strictEqual(response.failure._tag, "MalformedResponse")
          }),
          { numRuns: scale.codecRuns }
        )
        const after = memory()
        row.notes.push(`heap ${signedMiB(after.heap - before.heap)}`)
        yield* guard.check
      }).pipe(Effect.scoped)
    },
    300_000
  )
})

// ---------------------------------------------------------------------------
// byte servers
// ---------------------------------------------------------------------------

const upperModel = (bytes: Uint8Array) => bytes.map((b) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b))

const MAX_FRAME = 8 * 1024 * 1024

/**
 * What a correct framed server answers, frame by frame, and the typed error
 * that ends the connection (if any), computed without the library's codecs.
 */
const framedModel = (framing: "length" | "lines", input: Uint8Array, transform: (b: Uint8Array) => Uint8Array) => {
  const answers: Array<Uint8Array> = []
  let error: string | undefined
  let at = 0
  if (framing === "length") {
    const view = new DataView(input.buffer, input.byteOffset, input.byteLength)
    while (at < input.length) {
      if (input.length - at < 4) {
        error = "IncompleteFrame"
        break
      }
      const length = view.getUint32(at, false)
      if (length > MAX_FRAME) {
        error = "FrameTooLarge"
        break
      }
      if (input.length - at - 4 < length) {
        error = "IncompleteFrame"
        break
      }
      answers.push(lengthFrame(transform(input.subarray(at + 4, at + 4 + length))))
      at += 4 + length
    }
  } else {
    while (at < input.length) {
      const nl = input.indexOf(0x0a, at)
      if (nl < 0) {
        error = "IncompleteFrame"
        break
      }
      let line = input.subarray(at, nl)
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1)
      // A line ending in CR cannot be sent back: the peer would read it as a line ending.
      if (line.length > 0 && line[line.length - 1] === 0x0d) {
        error = "MalformedFrame"
        break
      }
      answers.push(concatBytes([transform(line), bytesOf([0x0a])]))
      at = nl + 1
    }
  }
  return { answers, error }
}

interface ServerKind {
  readonly name: string
  readonly framing: "raw" | "length" | "lines"
  readonly handler: (socket: Socket.Socket) => Effect.Effect<void, { readonly _tag: string }>
  readonly transform: (b: Uint8Array) => Uint8Array
}

const byteServers: ReadonlyArray<ServerKind> = (["raw", "length", "lines"] as const).flatMap((framing) => [
  { name: `echo ${framing}`, framing, handler: Echo.handler(framing), transform: (b: Uint8Array) => b },
  { name: `upper ${framing}`, framing, handler: Upper.handler(framing), transform: upperModel }
])

/** Send everything (split as drawn), half-close, read to the end. */
const exchange = (socket: Socket.Socket, input: Uint8Array) =>
  Effect.gen(function*() {
    const reader = yield* Effect.forkChild(
      Effect.result(Stream.runFold(socket.reads, () => [] as Array<Uint8Array>, (all, b) => (all.push(b), all)))
    )
    // A server that already gave up may refuse the rest of the input: that is its right.
    yield* Effect.ignore(Effect.andThen(socket.write(input), socket.end))
    const read = yield* Fiber.join(reader)
    return Result.map(read, concatBytes)
  })

const startsWith = (whole: Uint8Array, prefix: Uint8Array) =>
  prefix.length <= whole.length && Buffer.compare(Buffer.from(whole.subarray(0, prefix.length)), Buffer.from(prefix)) === 0

describe("hostile bytes: built-in servers", () => {
  for (const kind of byteServers) {
    it.live(
      `${kind.name} server: hostile input split across reads gets exactly the answer a correct server gives, then the typed error that ends the connection (memory and loopback)`,
      (ctx) => {
        const row = track(ctx, `${kind.name} server x adversarial input`)
        const logs = captureLogs()
        return Effect.gen(function*() {
          const guard = yield* noUnhandledErrors
          const context = yield* Effect.context<Scope.Scope>()
          const probe = makeProbe()
          const memoryListener = yield* MemorySocket.listen()
          const memoryServer = yield* Server.fromListener(probe.listen(memoryListener), { handler: probe.wrap(kind.handler) })
          const tcpListener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
          const tcpServer = yield* Server.fromListener(probe.listen(tcpListener), { handler: probe.wrap(kind.handler) })
          const tags: Record<string, number> = {}
          const before = memory()
          let runs = 0

          const check = ({ chunking, pieces }: { chunking: CodecLaws.Chunking; pieces: ReadonlyArray<Uint8Array> }) =>
            Effect.scoped(Effect.gen(function*() {
              const input = concatBytes(pieces)
              // Every fourth run crosses a real socket, where the kernel decides the reads.
              const overTcp = runs++ % 4 === 3
              const socket = overTcp
                ? yield* Socket.connect(tcpServer.address)
                : yield* memoryListener.connect({ send: { split: (b) => CodecLaws.rechunk(b, chunking) } })
              // The server names a connection by the client's end: its local address.
              const peer = selfOf(socket)
              const got = yield* exchange(socket, input)
              row.connections++
              row.bytes += input.length
              if (kind.framing === "raw") {
                // Raw: every byte back, transformed; the connection ends normally.
                const answer = Result.getOrThrow(got)
                assert.isTrue(Buffer.compare(Buffer.from(answer), Buffer.from(kind.transform(input))) === 0, "raw answer")
                return
              }
              const model = framedModel(kind.framing, input, kind.transform)
              const ideal = concatBytes(model.answers)
              // Wait for the server's side of the story: its handler's failure, if it failed.
              const error = model.error === undefined
                ? undefined
                : yield* probe.awaitError(peer).pipe(Effect.timeout("5 seconds"), Effect.orDie)
              if (error !== undefined) {
                row.faults++
                tags[error] = (tags[error] ?? 0) + 1
              }
              const answer = Result.isSuccess(got) ? got.success : new Uint8Array(0)
              if (Result.isFailure(got)) {
                // Only a real socket may be reset, when the server closes with our bytes unread.
                assert.isTrue(overTcp && got.failure._tag === "ConnectionReset", `client read failed: ${got.failure._tag}`)
              }
              if (model.error === undefined) {
                assert.isTrue(Result.isSuccess(got) && Buffer.compare(Buffer.from(answer), Buffer.from(ideal)) === 0, "full answer")
                assert.isUndefined(probe.errors.get(peer))
                return
              }
              // The answer is a prefix of the ideal one: whole frames, in order. A frame the
              // server cannot send back fails the batch of frames read with it, so with the
              // MalformedFrame of an unsendable line the prefix may stop earlier; every other
              // error comes after every frame before it was answered (over memory, where the
              // reads are exactly the drawn splits).
              assert.isTrue(startsWith(ideal, answer), "answer is a prefix of the correct one")
              assert.strictEqual(error, model.error)
              if (!overTcp && model.error !== "MalformedFrame") {
                assert.strictEqual(answer.length, ideal.length, "every frame before the error answered")
              }
            }))

          yield* Effect.promise(() =>
            fc.assert(fc.asyncProperty(hostileInput, (input) => Effect.runPromiseWith(context)(check(input))), {
              numRuns: scale.propRuns
            })
          )
          const memoryStats = yield* memoryServer.stats
          const tcpStats = yield* tcpServer.stats
          const after = memory()
          row.notes.push(
            `errors ${JSON.stringify(tags)}`,
            `failed ${memoryStats.failed + tcpStats.failed}/${memoryStats.accepted + tcpStats.accepted}`,
            `heap ${signedMiB(after.heap - before.heap)}`
          )
          assert.isBelow(after.heap - before.heap, 32 * MiB)
          // One warning per failed connection, nothing else.
          assert.strictEqual(logs.warnings().length, memoryStats.failed + tcpStats.failed)
          yield* guard.check
        }).pipe(Effect.scoped, Effect.provide(logs.layer))
      },
      300_000
    )
  }
})

// ---------------------------------------------------------------------------
// exec server
// ---------------------------------------------------------------------------

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-hostile-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const MAX_REQUEST = 512

/** What a correct exec server answers to one request frame's payload, computed without the library. */
const execModel = (payload: Uint8Array, allowed: string):
  | { readonly tag: "BadRequest" | "CommandNotAllowed" }
  | { readonly tag: "Run"; readonly stdout: Uint8Array } =>
{
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload))
  } catch {
    return { tag: "BadRequest" }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return { tag: "BadRequest" }
  const { argv, token } = json as { argv?: unknown; token?: unknown }
  if ("token" in json && typeof token !== "string") return { tag: "BadRequest" }
  if (!Array.isArray(argv) || argv.length === 0) return { tag: "BadRequest" }
  if (!argv.every((a) => typeof a === "string" && !a.includes("\u0000"))) return { tag: "BadRequest" }
  if (argv[0] !== allowed) return { tag: "CommandNotAllowed" }
  return {
    tag: "Run",
    stdout: concatBytes((argv.slice(1) as Array<string>).map((a) => concatBytes([Buffer.from(a, "utf8"), bytesOf([0])])))
  }
}

/** Responses in `bytes`, parsed by hand: u32 length, JSON header, stdout, stderr. */
const parseResponses = (bytes: Uint8Array) => {
  const out: Array<{ readonly header: any; readonly stdout: Uint8Array }> = []
  let at = 0
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  while (at + 4 <= bytes.length) {
    const n = view.getUint32(at, false)
    if (at + 4 + n > bytes.length) break
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(at + 4, at + 4 + n)))
    const start = at + 4 + n
    const end = start + header.stdoutLength + header.stderrLength
    if (end > bytes.length) break
    out.push({ header, stdout: bytes.subarray(start, start + header.stdoutLength) })
    at = end
  }
  return { responses: out, rest: bytes.length - at }
}

describe("hostile bytes: exec server", () => {
  it.live(
    "exec server: hostile request frames (bad UTF-8, bad JSON, wrong shapes, NUL, disallowed commands, zero-length, oversized claims, truncated tails) get exactly the answers a correct server gives, in order",
    (ctx) => {
      const row = track(ctx, "exec server x adversarial requests")
      const logs = captureLogs()
      return Effect.gen(function*() {
        const guard = yield* noUnhandledErrors
        const context = yield* Effect.context<Scope.Scope>()
        const dir = yield* tempDir
        const printArgs = Path.join(dir, "printargs")
        Fs.writeFileSync(printArgs, `#!/bin/sh\nfor a; do printf "%s" "$a"; printf "\\000"; done\n`, { mode: 0o755 })
        const listener = yield* MemorySocket.listen()
        const options: Omit<Exec.ServerOptions, "address"> = {
          allow: [printArgs],
          maxRequestBytes: MAX_REQUEST,
          concurrency: 8,
          timeout: "10 seconds"
        }
        const server = yield* Exec.fromListener(listener, options)
        const tcp = yield* Exec.make({ ...options, address: Address.tcp("127.0.0.1", 0) })

        const argument = fc.oneof(
          fc.string({ maxLength: 12 }),
          fc.string({ unit: "binary", maxLength: 8 }),
          fc.constantFrom(";", "|", "$(id)", "`id`", "*", "$HOME", "\u0000", "a\u0000b", "-n", "")
        )
        const argv0 = fc.oneof(
          fc.constant(printArgs),
          fc.constantFrom("printargs", "/bin/sh", "sh", `${dir}/../${Path.basename(dir)}/printargs`, `${printArgs} `, "", "\u0000"),
          fc.string({ maxLength: 8 })
        )
        const requestPayload = fc.oneof(
          { weight: 4, arbitrary: fc.tuple(argv0, fc.array(argument, { maxLength: 4 })).map(([a0, args]) => utf8.encode(JSON.stringify({ argv: [a0, ...args] }))) },
          { weight: 1, arbitrary: fc.constantFrom('{"argv":[]}', '{"argv":"ls"}', '{"argv":[1]}', '{"argv":["x"],"token":1}', "null", "[]", "{}", '{"argv":["x"]', "").map((s) => utf8.encode(s)) },
          { weight: 1, arbitrary: fc.json({ maxDepth: 2 }).map((s) => utf8.encode(s)) },
          { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
          { weight: 1, arbitrary: fc.array(fc.constantFrom(0xff, 0xfe, 0xc3, 0x80, 0x7b, 0x22), { maxLength: 16 }).map(bytesOf) }
        )
        const tail = fc.oneof(
          fc.constant({ bytes: new Uint8Array(0), kind: "none" as const }),
          fc.tuple(fc.integer({ min: MAX_REQUEST + 1, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 32 })).map(([claim, body]) => ({ bytes: lengthFrame(body, claim), kind: "tooLarge" as const })),
          fc.uint8Array({ minLength: 1, maxLength: 3 }).map((bytes) => ({ bytes, kind: "truncated" as const })),
          fc.tuple(fc.integer({ min: 10, max: MAX_REQUEST }), fc.uint8Array({ maxLength: 9 })).map(([claim, body]) => ({ bytes: lengthFrame(body, claim), kind: "truncated" as const }))
        )
        const input = fc.record({ payloads: fc.array(requestPayload, { maxLength: 4 }), tail, chunking: CodecLaws.chunking })

        const tags: Record<string, number> = {}
        let runs = 0
        let ran = 0
        const check = ({ chunking, payloads, tail }: typeof input extends fc.Arbitrary<infer I> ? I : never) =>
          Effect.scoped(Effect.gen(function*() {
            const wire = concatBytes([...payloads.map((p) => lengthFrame(p)), tail.bytes])
            const overTcp = runs++ % 4 === 3
            const socket = overTcp
              ? yield* Socket.connect(tcp.address)
              : yield* listener.connect({ send: { split: (b) => CodecLaws.rechunk(b, chunking) } })
            const got = yield* exchange(socket, wire)
            row.connections++
            row.bytes += wire.length
            const answer = Result.getOrThrow(got)
            const { responses, rest } = parseResponses(answer)
            assert.strictEqual(rest, 0, "no partial response")
            // Answers stop at the first frame over the limit: it is refused and the connection closed.
            const expected: Array<ReturnType<typeof execModel> | { readonly tag: "FrameTooLarge" }> = []
            for (const p of payloads) {
              if (p.length > MAX_REQUEST) break
              expected.push(execModel(p, printArgs))
            }
            if (payloads.some((p) => p.length > MAX_REQUEST) || tail.kind === "tooLarge") expected.push({ tag: "FrameTooLarge" })
            assert.strictEqual(responses.length, expected.length, "one answer per complete request, none for a truncated one")
            for (let i = 0; i < expected.length; i++) {
              const want = expected[i]!
              const { header, stdout } = responses[i]!
              if (want.tag === "Run") {
                ran++
                assert.isUndefined(header.error, `request ${i} should run`)
                assert.strictEqual(header.exitCode, 0)
                assert.isTrue(Buffer.compare(Buffer.from(stdout), Buffer.from(want.stdout)) === 0, `stdout of request ${i}`)
              } else {
                assert.strictEqual(header.error?._tag, want.tag, `answer ${i}`)
                assert.strictEqual(header.durationMs, 0, "nothing ran")
                row.faults++
                tags[want.tag] = (tags[want.tag] ?? 0) + 1
              }
            }
          }))

        const before = memory()
        yield* Effect.promise(() =>
          fc.assert(fc.asyncProperty(input, (i) => Effect.runPromiseWith(context)(check(i))), { numRuns: scale.propRuns })
        )
        const after = memory()
        const stats = yield* server.stats
        const tcpStats = yield* tcp.stats
        row.notes.push(`refusals ${JSON.stringify(tags)}`, `${ran} commands ran`, `heap ${signedMiB(after.heap - before.heap)}`)
        assert.strictEqual(stats.failed + tcpStats.failed, 0)
        assert.strictEqual(logs.warnings().length, 0)
        assert.isBelow(after.heap - before.heap, 32 * MiB)
        yield* guard.check
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    },
    300_000
  )
})
