import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Framing from "effect-wire/Framing"
import * as CodecLaws from "effect-wire/testing/CodecLaws"
import * as fc from "fast-check"

const RUNS = { numRuns: 50 }

const check = <A>(
  codec: Framing.Codec<A>,
  options: Parameters<typeof CodecLaws.all<A>>[1]
) => {
  for (const law of CodecLaws.all(codec, options)) {
    it(law.name, () => fc.assert(fc.property(law.arbitrary, (input) => law.check(input)), RUNS))
  }
}

const bytes = (maxLength: number, minLength = 0) => fc.uint8Array({ minLength, maxLength })
/** Bytes drawn from a few values, so delimiters and line endings turn up often. */
const bytesOf = (alphabet: ReadonlyArray<number>, maxLength: number) =>
  fc.array(fc.constantFrom(...alphabet), { maxLength }).map((xs) => Uint8Array.from(xs))
const sendable = <A>(codec: Framing.Codec<A>) => (frame: A) => codec.encode([frame], []) === undefined

describe("CodecLaws", () => {
  describe("rechunk", () => {
    it("splits, cycles sizes and keeps empty chunks", () => {
      const input = Uint8Array.from([1, 2, 3, 4, 5])
      assert.deepStrictEqual(CodecLaws.rechunk(input, [2, 0, 1]).map((c) => Array.from(c)), [[1, 2], [], [3], [4, 5]])
      assert.deepStrictEqual(CodecLaws.rechunk(input, []).map((c) => c.length), [5])
      assert.deepStrictEqual(CodecLaws.rechunk(input, [1]).map((c) => c.length), [1, 1, 1, 1, 1])
      assert.deepStrictEqual(CodecLaws.rechunk(input, [0, 0]).map((c) => c.length), [5])
    })

    it("loses and reorders nothing", () =>
      fc.assert(
        fc.property(bytes(300), CodecLaws.chunking, (input, sizes) => {
          const merged = Uint8Array.from(CodecLaws.rechunk(input, sizes).flatMap((c) => Array.from(c)))
          assert.isTrue(CodecLaws.equals(merged, input))
        }),
        RUNS
      ))
  })

  it("reports a codec that breaks a law", () => {
    // Drops the last frame of every push: round trip must catch it.
    const lossy = Framing.make<Uint8Array>({
      name: "lossy",
      decoder: () => {
        const inner = Framing.lengthPrefixed().decoder()
        return {
          push: (b, out) => {
            const before = out.length
            const error = inner.push(b, out)
            if (out.length > before) out.pop()
            return error
          },
          end: (out) => inner.end(out),
          get buffered() {
            return inner.buffered
          },
          get failed() {
            return inner.failed
          }
        }
      },
      encode: Framing.lengthPrefixed().encode
    })
    const law = CodecLaws.roundTrip(lossy, { frame: bytes(8) })
    assert.throws(() => law.check({ frames: [new Uint8Array([1])], chunking: [] }), /lossy breaks/)
  })

  describe("failure messages show the bytes", () => {
    const text = (s: string) => new TextEncoder().encode(s)
    const hello = text("hello")
    const world = text("world")
    // lengthPrefixed(): a 4-byte big-endian length, then the frame.
    const HELLO_WORLD = "00 00 00 05 68 65 6c 6c 6f 00 00 00 05 77 6f 72 6c 64 (18 bytes)"

    /** `lengthPrefixed()` with its decoder's output (or end of input) changed by `tamper`. */
    const broken = (
      name: string,
      tamper: {
        readonly frames?: (frames: Array<Uint8Array>) => Array<Uint8Array>
        readonly end?: (error: Framing.FrameError | undefined) => Framing.FrameError | undefined
      },
      encode = Framing.lengthPrefixed().encode
    ) =>
      Framing.make<Uint8Array>({
        name,
        decoder: () => {
          const inner = Framing.lengthPrefixed().decoder()
          return {
            push: (b, out) => {
              const fresh: Array<Uint8Array> = []
              const error = inner.push(b, fresh)
              out.push(...(tamper.frames?.(fresh) ?? fresh))
              return error
            },
            end: (out) => {
              const fresh: Array<Uint8Array> = []
              const error = inner.end(fresh)
              out.push(...(tamper.frames?.(fresh) ?? fresh))
              return tamper.end === undefined ? error : tamper.end(error)
            },
            get buffered() {
              return inner.buffered
            },
            get failed() {
              return inner.failed
            }
          }
        },
        encode
      })
    const shortening = broken("shortening", { frames: (fs) => fs.map((f) => f.subarray(0, f.length - 1)) })
    const reordering = broken("reordering", { frames: (fs) => fs.reverse() })
    const lenient = broken("lenient", { end: () => undefined })

    const violation = (f: () => void): CodecLaws.LawViolation => {
      try {
        f()
      } catch (e) {
        if (e instanceof CodecLaws.LawViolation) return e
        throw e
      }
      return assert.fail("the law held")
    }
    const includesAll = (message: string, parts: ReadonlyArray<string>) => {
      for (const part of parts) assert.include(message, part)
    }

    it("round trip: a decoder that drops the last byte of each frame", () => {
      const { message } = violation(() =>
        CodecLaws.roundTrip(shortening, { frame: bytes(8) }).check({ frames: [hello, world], chunking: [2, 0, 1] })
      )
      includesAll(message, [
        "shortening breaks",
        `input: ${HELLO_WORLD}`,
        "expected: 2 frames",
        "0: 68 65 6c 6c 6f (5 bytes)",
        "1: 77 6f 72 6c 64 (5 bytes)",
        "decoded: 2 frames",
        "0: 68 65 6c 6c (4 bytes)",
        "1: 77 6f 72 6c (4 bytes)",
        "chunking: [] (one chunk)"
      ])
    })

    it("round trip: a decoder that reorders frames names the chunking that shows it", () => {
      // One byte at a time never yields two frames in one push: only the whole input shows the reordering.
      const { message } = violation(() =>
        CodecLaws.roundTrip(reordering, { frame: bytes(8) }).check({ frames: [hello, world], chunking: [1] })
      )
      includesAll(message, [
        `input: ${HELLO_WORLD}`,
        "chunking: [] (one chunk)",
        "0: 68 65 6c 6c 6f (5 bytes)\n    1: 77 6f 72 6c 64 (5 bytes)\n  decoded: 2 frames\n    0: 77 6f 72 6c 64 (5 bytes)"
      ])
    })

    it("round trip: an encoder whose bytes depend on how frames are grouped", () => {
      const reversed = Framing.make<Uint8Array>({
        name: "reversed",
        decoder: Framing.lengthPrefixed().decoder,
        encode: (frames, out) => Framing.lengthPrefixed().encode(frames.slice().reverse(), out)
      })
      const { message } = violation(() =>
        CodecLaws.roundTrip(reversed, { frame: bytes(8) }).check({ frames: [hello, world], chunking: [] })
      )
      includesAll(message, [
        `encoded together: 00 00 00 05 77 6f 72 6c 64 00 00 00 05 68 65 6c 6c 6f (18 bytes)`,
        `encoded one by one: ${HELLO_WORLD}`,
        "0: 68 65 6c 6c 6f (5 bytes)"
      ])
    })

    it("end of input: a decoder that accepts leftover bytes", () => {
      const { message } = violation(() =>
        CodecLaws.endOfInput(lenient, { frame: bytes(8) }).check({ frames: [hello, world], cut: 10, chunking: [3] })
      )
      // Cut points run over each frame's encoding from its second byte: 8 in "hello"'s 9, so 10 is 3 bytes into "world"'s.
      includesAll(message, [
        "lenient breaks",
        "input: 00 00 00 05 68 65 6c 6c 6f 00 00 00 (12 bytes)",
        "cut 3 bytes into frame 1",
        "expected: 1 frame, then IncompleteFrame",
        "0: 68 65 6c 6c 6f (5 bytes)",
        "IncompleteFrame (3 bytes left over)",
        "decoded: 1 frame\n    0: 68 65 6c 6c 6f (5 bytes)",
        "chunking: [] (one chunk)"
      ])
    })

    it("chunking independence: a decoder that reorders frames", () => {
      const { message } = violation(() =>
        CodecLaws.chunkingIndependence(reordering, { frame: bytes(8) }).check({
          frames: [hello, world],
          damage: [],
          chunking: [4, 5]
        })
      )
      includesAll(message, [
        "reordering breaks",
        `input: ${HELLO_WORLD}`,
        "expected (one chunk): 2 frames\n    0: 77 6f 72 6c 64 (5 bytes)\n    1: 68 65 6c 6c 6f (5 bytes)",
        "decoded: 2 frames\n    0: 68 65 6c 6c 6f (5 bytes)\n    1: 77 6f 72 6c 64 (5 bytes)",
        "chunking: [1] (one byte at a time, 18 chunks)"
      ])
    })

    it("chunking independence: shows the damage done to the encoding", () => {
      const { message } = violation(() =>
        CodecLaws.chunkingIndependence(reordering, { frame: bytes(8) }).check({
          frames: [hello, world, hello],
          damage: [{ at: 24, kind: "cut", byte: 0 }],
          chunking: [9, 9]
        })
      )
      includesAll(message, [
        "input: 00 00 00 05 68 65 6c 6c 6f 00 00 00 05 77 6f 72 6c 64 00 00 00 05 68 65 (24 bytes)",
        "damage: cut at byte 24",
        "encoded: 00 00 00 05 68 65 6c 6c 6f 00 00 00 05 77 6f 72 6c 64 00 00 00 05 68 65 6c 6c 6f (27 bytes)",
        "chunking: [1] (one byte at a time, 24 chunks)"
      ])
    })

    it("limits: a decoder without the encoder's limit", () => {
      const unbounded = broken("unbounded", {}, Framing.lengthPrefixed({ maxFrameLength: 4 }).encode)
      const { message } = violation(() =>
        CodecLaws.limits(unbounded, { frame: bytes(8), permissive: Framing.lengthPrefixed(), maxBuffered: 8 })
          .check({ frames: [text("hi"), world], chunking: [5] })
      )
      includesAll(message, [
        "unbounded breaks",
        "input: 00 00 00 02 68 69 00 00 00 05 77 6f 72 6c 64 (15 bytes)",
        "expected: 1 frame, then FrameTooLarge (encode: 5 bytes, limit 4)",
        "0: 68 69 (2 bytes)",
        "decoded: 2 frames",
        "1: 77 6f 72 6c 64 (5 bytes)",
        "chunking: [] (one chunk)"
      ])
    })

    it("limits: a decoder that holds more than it may", () => {
      const { message } = violation(() =>
        CodecLaws.limits(Framing.lengthPrefixed(), { frame: bytes(8), permissive: Framing.lengthPrefixed(), maxBuffered: 6 })
          .check({ frames: [text("hello world")], chunking: [] })
      )
      // Whole frames in one chunk pass through; one byte at a time, the decoder gathers the body.
      includesAll(message, [
        "more than 6",
        "input: 00 00 00 0b 68 65 6c 6c 6f 20 77 6f 72 6c 64 (15 bytes)",
        "chunking: [1] (one byte at a time, 15 chunks)",
        "decoded: 1 frame\n    0: 68 65 6c 6c 6f 20 77 6f 72 6c 64 (11 bytes)"
      ])
    })

    it("an encoder that rejects sendable frames: shows the frames", () => {
      const { message } = violation(() =>
        CodecLaws.roundTrip(Framing.lengthPrefixed({ maxFrameLength: 4 }), { frame: bytes(8) })
          .check({ frames: [text("hi"), hello], chunking: [] })
      )
      includesAll(message, ["the encoder rejected", "frames: 2 frames\n    0: 68 69 (2 bytes)\n    1: 68 65 6c 6c 6f (5 bytes)"])
    })

    it("keeps the facts as fields", () => {
      const error = violation(() =>
        CodecLaws.endOfInput(lenient, { frame: bytes(8) }).check({ frames: [hello, world], cut: 10, chunking: [3] })
      )
      assert.deepStrictEqual(Array.from(error.input ?? []), [0, 0, 0, 5, ...hello, 0, 0, 0])
      assert.deepStrictEqual(error.chunking, [])
      assert.strictEqual(error.expected?.length, 2)
      assert.isTrue(CodecLaws.equals(error.expected?.[0], hello))
      assert.isTrue(Framing.isFrameError(error.expected?.[1]))
      assert.isTrue(CodecLaws.equals(error.decoded, [hello]))
    })

    it("hex: every byte up to 32, then the first 24 and the last 8, always with the size", () => {
      assert.strictEqual(CodecLaws.hex(new Uint8Array(0)), "(0 bytes)")
      assert.strictEqual(CodecLaws.hex(Uint8Array.of(0xab)), "ab (1 byte)")
      const big = Uint8Array.from({ length: 4096 }, (_, i) => i % 256)
      assert.strictEqual(CodecLaws.hex(big.subarray(0, 32)).split(" ").length, 32 + 2)
      assert.strictEqual(
        CodecLaws.hex(big),
        "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 … f8 f9 fa fb fc fd fe ff (4,096 bytes)"
      )
      assert.strictEqual(CodecLaws.hex(big, 4), "00 01 02 … ff (4,096 bytes)")
    })

    it("truncates long bytes and states their size", () => {
      const big = Uint8Array.from({ length: 4096 }, (_, i) => i % 256)
      const { message } = violation(() =>
        CodecLaws.roundTrip(shortening, { frame: bytes(8) }).check({ frames: [big], chunking: [] })
      )
      includesAll(message, [
        "input: 00 00 10 00 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 … f8 f9 fa fb fc fd fe ff (4,100 bytes)",
        "0: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 … f8 f9 fa fb fc fd fe ff (4,096 bytes)",
        "0: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 … f7 f8 f9 fa fb fc fd fe (4,095 bytes)"
      ])
      assert.isBelow(message.length, 1200)
    })

    it("lists at most a few frames, around the first difference", () => {
      const frames = Array.from({ length: 30 }, (_, i) => Uint8Array.of(i, i))
      const shortenTenth = broken("tenth", { frames: (fs) => fs.map((f) => f[0] === 20 ? f.subarray(0, 1) : f) })
      const { message } = violation(() =>
        CodecLaws.roundTrip(shortenTenth, { frame: bytes(8), maxFrames: 30 }).check({ frames, chunking: [] })
      )
      includesAll(message, ["expected: 30 frames", "frame 20 differs", "20: 14 14 (2 bytes)", "20: 14 (1 byte)"])
      assert.notInclude(message, "\n    0: 00 00 (2 bytes)")
      assert.isBelow(message.length, 2000)
    })

    it("shows frames that are not bytes", () => {
      const shout = Framing.make<string>({
        name: "shout",
        decoder: () => {
          const inner = Framing.lines({ as: "string" }).decoder()
          return {
            push: (b, out) => {
              const fresh: Array<string> = []
              const error = inner.push(b, fresh)
              out.push(...fresh.map((s) => s.toUpperCase()))
              return error
            },
            end: (out) => inner.end(out),
            get buffered() {
              return inner.buffered
            },
            get failed() {
              return inner.failed
            }
          }
        },
        encode: Framing.lines({ as: "string" }).encode
      })
      const { message } = violation(() =>
        CodecLaws.roundTrip(shout, { frame: fc.string() }).check({ frames: ["hi"], chunking: [] })
      )
      includesAll(message, ["input: 68 69 0a (3 bytes)", "0: \"hi\"", "0: \"HI\""])
    })

    it("reaches fast-check's report", () => {
      const law = CodecLaws.roundTrip(shortening, { frame: bytes(8, 1) })
      const error = violation(() => {
        try {
          fc.assert(fc.property(law.arbitrary, (input) => law.check(input)), { seed: 1, numRuns: 20 })
        } catch (e) {
          throw (e as Error).cause
        }
      })
      // Shrunk to one one-byte frame, which comes back empty.
      includesAll(error.message, ["input: 00 00 00 01 00 (5 bytes)", "0: 00 (1 byte)", "0: (0 bytes)"])
    })
  })

  describe("lengthPrefixed", () => {
    check(Framing.lengthPrefixed(), { frame: bytes(64) })
    check(Framing.lengthPrefixed({ maxFrameLength: 16 }), {
      frame: bytes(16),
      permissive: Framing.lengthPrefixed(),
      maxBuffered: 16 + 4,
      anyFrame: bytes(40)
    })
    check(Framing.lengthPrefixed({ lengthBytes: 1, endian: "little" }), { frame: bytes(255) })
    check(Framing.lengthPrefixed({ lengthBytes: 8, endian: "little", adjustment: 2 }), { frame: bytes(40, 2) })
    check(Framing.lengthPrefixed({ lengthBytes: 3, offset: 1, strip: 4 }), { frame: bytes(40) })

    // Frames that keep (part of) the header carry a length field, which must be right.
    const keeping = (options: Framing.LengthPrefixedOptions, strip: number) => {
      const codec = Framing.lengthPrefixed({ ...options, strip })
      const bodies = Framing.lengthPrefixed({ ...options, maxFrameLength: undefined })
      const frame = fc.tuple(bytes(40), bytes(8, 8)).map(([body, prefix]) => {
        const wire = Result.getOrThrow(Framing.encodeAll(bodies, [body]))
        wire.set(prefix.subarray(0, options.offset ?? 0), 0)
        return wire.subarray(strip)
      })
      return { codec, frame }
    }
    // strip 0: the whole header; 1: part of the prefix; 3: part of the length field; 2: just the length field.
    for (const strip of [0, 1, 3]) {
      const { codec, frame } = keeping({ lengthBytes: 2, offset: 2, adjustment: -4 }, strip)
      check(codec, { frame: frame.filter(sendable(codec)) })
    }
    const { codec: lengthOnly, frame: withLength } = keeping({ lengthBytes: 3, offset: 1 }, 1)
    check(lengthOnly, { frame: withLength })
  })

  describe("varint", () => {
    check(Framing.varint(), { frame: bytes(300) })
    check(Framing.varint({ maxFrameLength: 130 }), {
      frame: bytes(130),
      permissive: Framing.varint(),
      maxBuffered: 130,
      anyFrame: bytes(200)
    })
  })

  describe("delimited", () => {
    const crlf = Framing.delimited({ delimiter: "\r\n", maxLength: 12 })
    const alphabet = [0x0d, 0x0a, 0x61]
    check(crlf, {
      frame: bytesOf(alphabet, 12).filter(sendable(crlf)),
      permissive: Framing.delimited({ delimiter: "\r\n" }),
      maxBuffered: 12 + 1,
      anyFrame: bytesOf(alphabet, 20).filter(sendable(Framing.delimited({ delimiter: "\r\n" })))
    })
    // A delimiter with a border ("ab" both starts and ends "abab") exercises the KMP carry-over.
    const abab = Framing.delimited({ delimiter: "abab", maxLength: 10, resync: true })
    const abc = [0x61, 0x62, 0x63]
    check(abab, {
      frame: bytesOf(abc, 10).filter(sendable(abab)),
      permissive: Framing.delimited({ delimiter: "abab" }),
      maxBuffered: 10 + 3,
      anyFrame: bytesOf(abc, 16).filter(sendable(Framing.delimited({ delimiter: "abab" })))
    })
    // "aab" after "aa" + "a": the automaton must fall back to "aa", not to "a".
    const aab = Framing.delimited({ delimiter: "aab", maxLength: 10 })
    check(aab, { frame: bytesOf([0x61, 0x62], 10).filter(sendable(aab)) })
    const kept = Framing.delimited({ delimiter: new Uint8Array([0]), keepDelimiter: true })
    check(kept, {
      frame: bytesOf([0, 1, 2], 10).map((b) => Uint8Array.from([...b.filter((x) => x !== 0), 0]))
    })
  })

  describe("lines", () => {
    const lines = Framing.lines({ maxLength: 8 })
    const alphabet = [0x0d, 0x0a, 0x61, 0xc3, 0xa9, 0xff]
    check(lines, {
      frame: bytesOf(alphabet, 8).filter(sendable(lines)),
      permissive: Framing.lines(),
      maxBuffered: 8 + 1,
      anyFrame: bytesOf(alphabet, 14).filter(sendable(Framing.lines()))
    })
    const text = Framing.lines({ as: "string", maxLength: 12, resync: true })
    const unit = fc.constantFrom("a", "é", "\r", "\n", "😀", "\u2028")
    check(text, {
      frame: fc.string({ unit, maxLength: 4 }).filter(sendable(text)),
      permissive: Framing.lines({ as: "string" }),
      maxBuffered: 12 + 1,
      anyFrame: fc.string({ unit, maxLength: 8 }).filter(sendable(Framing.lines({ as: "string" })))
    })
  })

  describe("fixed", () => {
    check(Framing.fixed(3), { frame: bytes(3, 3) })
    check(Framing.fixed(1), { frame: bytes(1, 1) })
  })

  describe("header", () => {
    const Header = Schema.Struct({
      id: Schema.Int,
      name: Schema.String,
      size: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 48 }))
    })
    // Effect 4's Schema arbitraries are not fast-check ones: the same Header, drawn with fast-check.
    const headers: fc.Arbitrary<typeof Header.Type> = fc.record({
      id: fc.integer(),
      name: fc.string(),
      size: fc.integer({ min: 0, max: 48 })
    })
    const frame = headers.chain((header) =>
      bytes(header.size, header.size).map((body): Framing.HeaderFrame<typeof Header.Type> => ({ header, body }))
    )
    const sameHeader = Schema.toEquivalence(Header)
    const equals = (a: Framing.HeaderFrame<typeof Header.Type>, b: Framing.HeaderFrame<typeof Header.Type>) =>
      sameHeader(a.header, b.header) && CodecLaws.equals(a.body, b.body)
    const options = { header: Header, bodyLength: (h: typeof Header.Type) => h.size }
    check(Framing.header(options), { frame, equals, maxFrames: 4 })
    check(Framing.header({ ...options, maxHeaderLength: 48, maxBodyLength: 24 }), {
      frame: frame.filter(sendable(Framing.header({ ...options, maxHeaderLength: 48, maxBodyLength: 24 }))),
      equals,
      maxFrames: 4,
      permissive: Framing.header(options),
      maxBuffered: 48,
      anyFrame: frame
    })
  })
})
