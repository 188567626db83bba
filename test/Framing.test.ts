import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Framing from "effect-wire/Framing"
import { thrownBy } from "./helpers/defects.js"

const enc = new TextEncoder()
const u8 = (...xs: ReadonlyArray<number | string>): Uint8Array =>
  Uint8Array.from(xs.flatMap((x) => typeof x === "string" ? Array.from(enc.encode(x)) : [x]))
const text = (b: Uint8Array) => new TextDecoder().decode(b)

/** One Stream batch per element of `reads`, like one socket read each. */
const reads = (...pieces: ReadonlyArray<Uint8Array>) => Stream.fromArrays(...pieces.map((p) => [p]))

/** The batches a stream emits, as arrays. */
const chunksOf = <A, E>(stream: Stream.Stream<A, E>) => Stream.runCollect(Stream.chunks(stream))

describe("Framing.decode", () => {
  const codec = Framing.lengthPrefixed({ lengthBytes: 1 })

  it.effect("turns one batch of bytes into one batch of the frames it completed", () =>
    Effect.gen(function*() {
      const chunks = yield* chunksOf(
        reads(u8(1, "a", 2, "bc", 3), u8("d"), u8("ef", 0, 1, "g")).pipe(Framing.decode(codec))
      )
      assert.deepStrictEqual(chunks.map((c) => c.map(text)), [["a", "bc"], ["def", "", "g"]])
    }))

  it.effect("decodes a batch holding several reads, in order", () =>
    Effect.gen(function*() {
      const merged = Stream.fromArray([u8(1, "a", 1), u8("b")])
      const frames = yield* Stream.runCollect(merged.pipe(Framing.decode(codec)))
      assert.deepStrictEqual(frames.map(text), ["a", "b"])
    }))

  it.effect("emits the frames before an error, then fails with it", () =>
    Effect.gen(function*() {
      const small = Framing.lengthPrefixed({ lengthBytes: 1, maxFrameLength: 2 })
      const seen: Array<string> = []
      const exit = yield* reads(u8(1, "a", 1, "b", 3, "abc")).pipe(
        Framing.decode(small),
        Stream.runForEach((f) => Effect.sync(() => seen.push(text(f)))),
        Effect.exit
      )
      assert.deepStrictEqual(seen, ["a", "b"])
      assert.deepStrictEqual(Exit.isFailure(exit) ? exit.cause.reasons.map((r) => r._tag) : undefined, ["Fail"])
      const error = yield* Effect.flip(reads(u8(3, "abc")).pipe(Framing.decode(small), Stream.runDrain))
      assert.strictEqual(error._tag, "FrameTooLarge")
    }))

  it.effect("applies the end rule when the input ends", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(reads(u8(1, "a", 3, "b")).pipe(Framing.decode(codec), Stream.runDrain))
      assert.deepInclude(error, { _tag: "IncompleteFrame", remaining: 2 })
    }))

  it.effect("passes upstream failures through untouched", () =>
    Effect.gen(function*() {
      const upstream = Stream.concat(reads(u8(1, "a")), Stream.fail("socket reset" as const))
      const error = yield* Effect.flip(upstream.pipe(Framing.decode(codec), Stream.runDrain))
      assert.strictEqual(error, "socket reset")
    }))

  it.effect("makes a fresh decoder each time the stream runs", () =>
    Effect.gen(function*() {
      const frames = reads(u8(1, "x")).pipe(Framing.decode(codec))
      assert.strictEqual((yield* Stream.runCollect(frames)).length, 1)
      assert.strictEqual((yield* Stream.runCollect(frames)).length, 1)
    }))

  it.effect("is also data-first", () =>
    Effect.gen(function*() {
      const frames = yield* Stream.runCollect(Framing.decode(reads(u8(1, "x")), codec))
      assert.strictEqual(frames.length, 1)
    }))
})

describe("Framing.decodeResult", () => {
  it.effect("keeps errors as values and goes on when the codec resynchronises", () =>
    Effect.gen(function*() {
      const lines = Framing.lines({ as: "string", maxLength: 3, resync: true })
      const out = yield* Stream.runCollect(
        reads(u8("ok\ntoo long\nye"), u8("s\n", 0xff, "\n")).pipe(Framing.decodeResult(lines))
      )
      assert.deepStrictEqual(
        out.map(Result.match({ onFailure: (e) => `<${e._tag}>`, onSuccess: (s) => s })),
        ["ok", "<FrameTooLarge>", "yes", "<MalformedFrame>"]
      )
    }))

  it.effect("ends after an error the decoder cannot get past", () =>
    Effect.gen(function*() {
      const out = yield* Stream.runCollect(
        reads(u8("ok\ntoo long\n"), u8("never\n")).pipe(Framing.decodeResult(Framing.lines({ maxLength: 3 })))
      )
      assert.deepStrictEqual(out.map(Result.isFailure), [false, true])
    }))

  it.effect("reports leftover bytes at the end as a failure", () =>
    Effect.gen(function*() {
      const out = yield* Stream.runCollect(reads(u8("a\nb")).pipe(Framing.decodeResult(Framing.lines())))
      const last = out[1]!
      assert.deepInclude(Result.isFailure(last) ? last.failure : undefined, { _tag: "IncompleteFrame", remaining: 1 })
    }))
})

describe("Framing.encode", () => {
  const codec = Framing.lengthPrefixed({ lengthBytes: 1 })

  it.effect("turns one batch of frames into one batch of buffers", () =>
    Effect.gen(function*() {
      const frames = Stream.fromArrays([u8("a"), u8("bc")], [u8("d")])
      const chunks = yield* chunksOf(frames.pipe(Framing.encode(codec)))
      assert.deepStrictEqual(chunks.map((c) => c.map((b) => Array.from(b))), [[[1, 97, 2, 98, 99]], [[1, 100]]])
    }))

  it.effect("fails before emitting any byte of a batch holding a frame it cannot send", () =>
    Effect.gen(function*() {
      const tooBig = new Uint8Array(256)
      const emitted: Array<Uint8Array> = []
      const error = yield* Effect.flip(
        Stream.fromArrays([u8("a")], [u8("b"), tooBig]).pipe(
          Framing.encode(codec),
          Stream.runForEach((b) => Effect.sync(() => emitted.push(b)))
        )
      )
      assert.deepInclude(error, { _tag: "FrameTooLarge", direction: "encode", size: 256, limit: 255 })
      assert.deepStrictEqual(emitted.map((b) => Array.from(b)), [[1, 97]])
    }))

  it.effect("round-trips through decode", () =>
    Effect.gen(function*() {
      const lines = Framing.lines({ as: "string" })
      const out = yield* Stream.make("hello", "wörld", "").pipe(
        Framing.encode(lines),
        Framing.decode(lines),
        Stream.runCollect
      )
      assert.deepStrictEqual(out, ["hello", "wörld", ""])
    }))
})

describe("Framing.decodeAll / encodeAll", () => {
  it("decode a whole buffer or several, with the end rule", () => {
    const codec = Framing.lines({ as: "string" })
    assert.deepStrictEqual(Result.getOrThrow(Framing.decodeAll(codec, [u8("a\nb"), u8("\n")])), ["a", "b"])
    assert.isTrue(Result.isFailure(Framing.decodeAll(codec, u8("a\nb"))))
  })

  it("encode into one contiguous buffer, large bodies included", () => {
    const big = new Uint8Array(40_000).fill(3)
    const bytes = Result.getOrThrow(Framing.encodeAll(Framing.varint(), [u8("x"), big]))
    assert.strictEqual(bytes.length, 2 + 3 + 40_000)
    assert.deepStrictEqual(Array.from(bytes.subarray(0, 5)), [1, 120, 0xc0, 0xb8, 0x02])
  })
})

describe("Framing.fixed", () => {
  const codec = Framing.fixed(2)

  it("reads | 0102 0304 05 | --> | 0102 | 0304 |, and IncompleteFrame(1) at the end", () => {
    const decoder = codec.decoder()
    const out: Array<Uint8Array> = []
    assert.isUndefined(decoder.push(u8(1, 2, 3), out))
    assert.isUndefined(decoder.push(u8(4, 5), out))
    assert.deepStrictEqual(out.map((f) => Array.from(f)), [[1, 2], [3, 4]])
    assert.deepInclude(decoder.end(out), { _tag: "IncompleteFrame", remaining: 1 })
  })

  it("takes frames inside a chunk as subarrays", () => {
    const chunk = u8(1, 2, 3, 4)
    const frames = Result.getOrThrow(Framing.decodeAll(codec, chunk))
    assert.isTrue(frames.every((f) => f.buffer === chunk.buffer))
  })

  it("reads incomplete frame byte by byte", () => {
    const frames = Result.getOrThrow(Framing.decodeAll(Framing.fixed(3), [u8(1), u8(), u8(2), u8(3, 4), u8(5, 6)]))
    assert.deepStrictEqual(frames.map((f) => Array.from(f)), [[1, 2, 3], [4, 5, 6]])
  })

  it("encode rejects any other size", () => {
    assert.match(codec.encode([u8(1)], [])!.message, /exactly 2 bytes, this one is 1/)
  })

  it("rejects a size that is not a positive integer", () => {
    for (const size of [0, -1, 1.5, NaN, undefined as unknown as number]) {
      assert.throws(() => Framing.fixed(size), Framing.InvalidCodecOptions)
    }
  })
})

describe("codec options: 0 is refused (InvalidCodecOptions, thrown by the builder)", () => {
  /** The InvalidCodecOptions `build` throws. */
  const thrown = (build: () => unknown) =>
    thrownBy(Framing.InvalidCodecOptions, build, "the builder accepted the options")

  it("every limit of every codec: a limit of 0 is no \"no limit\", and the message says so", () => {
    const cases: ReadonlyArray<readonly [string, () => unknown]> = [
      ["maxFrameLength", () => Framing.lengthPrefixed({ maxFrameLength: 0 })],
      ["maxFrameLength", () => Framing.varint({ maxFrameLength: 0 })],
      ["maxLength", () => Framing.delimited({ delimiter: "\n", maxLength: 0 })],
      ["maxLength", () => Framing.lines({ maxLength: 0 })],
      ["maxHeaderLength", () => Framing.header({ header: Schema.Struct({}), bodyLength: () => 0, maxHeaderLength: 0 })],
      ["maxBodyLength", () => Framing.header({ header: Schema.Struct({}), bodyLength: () => 0, maxBodyLength: 0 })],
      ["size", () => Framing.fixed(0)]
    ]
    for (const [option, build] of cases) {
      const error = thrown(build)
      assert.strictEqual(error.option, option)
      assert.include(error.message, `invalid option ${option}: must be a positive integer`)
      assert.include(error.message, "got 0 (0 does not mean \"no limit\"")
    }
  })

  it("offsets and adjustments are values, not limits: 0 is their default", () => {
    const codec = Framing.lengthPrefixed({ offset: 0, adjustment: 0, strip: 0 })
    assert.strictEqual(codec.name, "lengthPrefixed(32-bit big-endian)")
  })
})

describe("FrameError", () => {
  it("each kind has its own tag and a message naming the codec", () => {
    const errors = [
      new Framing.FrameTooLarge({
        codec: "c",
        direction: "decode",
        what: "frame",
        option: "maxFrameLength",
        limit: 1,
        size: 2,
        exact: true
      }),
      new Framing.IncompleteFrame({ codec: "c", remaining: 1 }),
      new Framing.MalformedFrame({ codec: "c", direction: "encode", reason: "why" })
    ]
    assert.deepStrictEqual(errors.map((e) => e._tag), ["FrameTooLarge", "IncompleteFrame", "MalformedFrame"])
    assert.isTrue(errors.every(Framing.isFrameError))
    assert.isTrue(errors.every((e) => e.message.startsWith("c: ")))
    assert.strictEqual(errors[1]!.message, "c: the input ended inside a frame, with 1 byte of it left over: the peer closed mid-frame, or the two sides disagree on the framing")
    assert.isFalse(Framing.isFrameError(new Error("x")))
    assert.isTrue(Framing.isCodec(Framing.fixed(1)))
    assert.isFalse(Framing.isCodec({}))
  })
})

describe("Decoder.pending: the bytes of the frame in progress (issue 17)", () => {
  const headerCodec = Framing.header({
    header: Schema.Struct({ n: Schema.Number }),
    bodyLength: (h) => h.n
  })
  /** One frame of each codec, then the first bytes of the next one. */
  const cases: ReadonlyArray<readonly [string, Framing.Codec<unknown>, Uint8Array]> = [
    ["lengthPrefixed", Framing.lengthPrefixed() as Framing.Codec<unknown>, u8(0, 0, 0, 3, "abc", 0, 0, 0, 2, "d")],
    ["lengthPrefixed(strip 0, offset 1)", Framing.lengthPrefixed({ offset: 1, lengthBytes: 2, strip: 0 }) as Framing.Codec<unknown>, u8(9, 0, 2, "ab", 9, 0, 1)],
    ["varint", Framing.varint() as Framing.Codec<unknown>, u8(0x82, 0x01, ...Array.from({ length: 130 }, () => 0x61), 2, "z")],
    ["lines", Framing.lines() as Framing.Codec<unknown>, u8("hello\r\n", "x\r")],
    ["delimited", Framing.delimited({ delimiter: u8("--") }) as Framing.Codec<unknown>, u8("ab-c--", "d-")],
    ["fixed", Framing.fixed(3) as Framing.Codec<unknown>, u8("abc", "de")],
    [
      "header",
      headerCodec as Framing.Codec<unknown>,
      u8(0, 0, 0, 7, "{\"n\":2}", "hi", 0, 0, 0, 7, "{\"n\":0")
    ]
  ]

  for (const [name, codec, bytes] of cases) {
    it(`${name}: byte by byte, pending counts every byte of the frame so far (header included) and is 0 between frames`, () => {
      const decoder = codec.decoder()
      const frames: Array<unknown> = []
      let sinceFrame = 0
      for (const byte of bytes) {
        const before = frames.length
        assert.isUndefined(decoder.push(Uint8Array.of(byte), frames))
        sinceFrame = frames.length > before ? 0 : sinceFrame + 1
        assert.strictEqual(decoder.pending, sinceFrame, `after ${sinceFrame} bytes of a frame`)
      }
      assert.isAbove(decoder.pending!, 0, "the input ends inside a frame")
      // What is pending is what the end of input reports as left over.
      const end = decoder.end([])
      assert.strictEqual(end?._tag, "IncompleteFrame")
      assert.strictEqual((end as Framing.IncompleteFrame).remaining, sinceFrame)
    })
  }

  it("lengthPrefixed: a header read in full, with no byte of the body yet, is a frame in progress (buffered is 0)", () => {
    const decoder = Framing.lengthPrefixed().decoder()
    assert.isUndefined(decoder.push(u8(0, 0, 0, 28), []))
    assert.strictEqual(decoder.buffered, 0)
    assert.strictEqual(decoder.pending, 4)
  })

  it("lines with resync: the bytes of an over-long line being skipped are a frame in progress", () => {
    const decoder = Framing.lines({ maxLength: 4, resync: true }).decoder()
    assert.strictEqual(decoder.push(u8("abcdefgh"), [])?._tag, "FrameTooLarge")
    assert.isUndefined(decoder.push(u8("ij"), []))
    assert.isAbove(decoder.pending!, 0)
    const frames: Array<Uint8Array> = []
    assert.isUndefined(decoder.push(u8("\nok\n"), frames))
    assert.deepStrictEqual(frames.map(text), ["ok"])
    assert.strictEqual(decoder.pending, 0)
  })
})

describe("Framing.decode with frameTimeout (issue 17)", () => {
  const codec = Framing.lengthPrefixed({ lengthBytes: 1 })

  /** A stream of byte batches fed by the test: `send` one, or `end` it. */
  const feed = Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Uint8Array, Cause.Done>()
    return {
      stream: Stream.fromQueue(queue),
      send: (bytes: Uint8Array) => Queue.offer(queue, bytes),
      end: Queue.end(queue)
    }
  })

  it.effect("a frame dribbled one byte a second fails the stream with FrameTimeout at the deadline", () =>
    Effect.gen(function*() {
      const { send, stream } = yield* feed
      const decoded = yield* stream.pipe(
        Framing.decode(codec, { frameTimeout: "3 seconds" }),
        Stream.runCollect,
        Effect.exit,
        Effect.forkChild
      )
      // A whole frame first: no deadline runs between frames.
      yield* send(u8(1, "a"))
      yield* TestClock.adjust("10 seconds")
      // Then a frame of 28 bytes, one byte a second: cut after 3 s, with 3 of its bytes in.
      for (const byte of u8(28, "abcdefg")) {
        if (decoded.pollUnsafe() !== undefined) break
        yield* send(Uint8Array.of(byte))
        yield* TestClock.adjust("1 second")
      }
      const exit = yield* Fiber.join(decoded)
      assert.isTrue(Exit.isFailure(exit), String(exit))
      const error = Cause.findErrorOption((exit as Exit.Failure<unknown, unknown>).cause)
      assert.isTrue(error._tag === "Some" && error.value instanceof Framing.FrameTimeout, String(exit))
      const timeout = (error as { value: Framing.FrameTimeout }).value
      assert.strictEqual(timeout._tag, "FrameTimeout")
      assert.strictEqual(timeout.received, 3)
      assert.strictEqual(Duration.toMillis(timeout.limit), 3000)
      assert.include(timeout.message, "3 bytes of it had arrived")
    }))

  it.effect("a steady stream of complete frames (and frames that complete in time) is never cut", () =>
    Effect.gen(function*() {
      const { end, send, stream } = yield* feed
      const decoded = yield* stream.pipe(
        Framing.decode(codec, { frameTimeout: "3 seconds" }),
        Stream.runCollect,
        Effect.forkChild
      )
      for (let i = 0; i < 20; i++) {
        // Each frame in two halves 2 s apart: 2 s per frame, 40 s in all.
        yield* send(u8(2, "x"))
        yield* TestClock.adjust("2 seconds")
        yield* send(u8("y"))
      }
      yield* end
      const frames = yield* Fiber.join(decoded)
      assert.strictEqual(frames.length, 20)
      assert.isTrue(frames.every((f) => text(f) === "xy"))
    }))

  it.effect("without frameTimeout a frame may take as long as it takes", () =>
    Effect.gen(function*() {
      const { end, send, stream } = yield* feed
      const decoded = yield* stream.pipe(Framing.decode(codec), Stream.runCollect, Effect.forkChild)
      for (const byte of u8(3, "abc")) {
        yield* send(Uint8Array.of(byte))
        yield* TestClock.adjust("1 hour")
      }
      yield* end
      assert.deepStrictEqual((yield* Fiber.join(decoded)).map(text), ["abc"])
    }))
})
