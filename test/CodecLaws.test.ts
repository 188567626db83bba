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
