import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import { Buffer } from "node:buffer"
import * as fc from "fast-check"
import * as Framing from "effect-wire/Framing"
import * as CodecLaws from "effect-wire/testing/CodecLaws"

const u8 = (...xs: ReadonlyArray<number | string>): Uint8Array =>
  Uint8Array.from(xs.flatMap((x) => typeof x === "string" ? Array.from(new TextEncoder().encode(x)) : [x]))
const text = (b: Uint8Array) => new TextDecoder().decode(b)

/** Pushes each piece, collecting frames; stops at the first error. */
const feed = <A>(decoder: Framing.Decoder<A>, ...pieces: ReadonlyArray<Uint8Array>) => {
  const frames: Array<A> = []
  for (const piece of pieces) {
    const error = decoder.push(piece, frames)
    if (error !== undefined) return { frames, error }
  }
  return { frames, error: undefined }
}

const encode = <A>(codec: Framing.Codec<A>, frames: ReadonlyArray<A>) => Result.getOrThrow(Framing.encodeAll(codec, frames))

describe("Framing.lengthPrefixed", () => {
  const codec = Framing.lengthPrefixed()

  it("reads a frame: | 00 00 00 0B | Hello world | --> | Hello world |", () => {
    const { error, frames } = feed(codec.decoder(), u8(0, 0, 0, 11, "Hello world"))
    assert.isUndefined(error)
    assert.deepStrictEqual(frames.map(text), ["Hello world"])
  })

  it("reads an empty frame", () => {
    const { frames } = feed(codec.decoder(), u8(0, 0, 0, 0), u8(0, 0), u8(0, 0))
    assert.deepStrictEqual(frames.map((f) => f.length), [0, 0])
  })

  it("reads multiple frames from one chunk", () => {
    const { frames } = feed(codec.decoder(), u8(0, 0, 0, 1, "a", 0, 0, 0, 2, "bc", 0, 0, 0, 0, 0, 0, 0, 1, "d"))
    assert.deepStrictEqual(frames.map(text), ["a", "bc", "", "d"])
  })

  it("reads incomplete header", () => {
    const decoder = codec.decoder()
    const out: Array<Uint8Array> = []
    assert.isUndefined(decoder.push(u8(0, 0), out))
    assert.strictEqual(decoder.buffered, 2)
    assert.isUndefined(decoder.push(u8(0), out))
    assert.isUndefined(decoder.push(u8(3, "ab"), out))
    assert.strictEqual(out.length, 0)
    assert.isUndefined(decoder.push(u8("c"), out))
    assert.deepStrictEqual(out.map(text), ["abc"])
    assert.strictEqual(decoder.buffered, 0)
  })

  it("reads incomplete body", () => {
    const decoder = codec.decoder()
    const out: Array<Uint8Array> = []
    decoder.push(u8(0, 0, 0, 5, "he"), out)
    decoder.push(u8("l"), out)
    assert.strictEqual(out.length, 0)
    decoder.push(u8("lo", 0, 0, 0, 2, "x"), out)
    assert.deepStrictEqual(out.map(text), ["hello"])
    assert.strictEqual(decoder.buffered, 1)
    assert.deepInclude(decoder.end(out), { _tag: "IncompleteFrame", remaining: 5 })
  })

  it("takes a frame inside one chunk as a subarray, without copying", () => {
    const chunk = u8(0, 0, 0, 3, "abc", 0, 0, 0, 2, "de")
    const { frames } = feed(codec.decoder(), chunk)
    assert.strictEqual(frames[0]!.buffer, chunk.buffer)
    assert.strictEqual(frames[1]!.buffer, chunk.buffer)
    assert.strictEqual(frames[1]!.byteOffset, 11)
  })

  it("copies a frame spanning chunks once: a small one into Node's pool, a large one into a buffer of its own", () => {
    const pieces = [u8(0, 0, 0, 6, "ab"), u8("cd"), u8("ef")]
    const { frames } = feed(codec.decoder(), ...pieces)
    assert.strictEqual(text(frames[0]!), "abcdef")
    assert.isFalse(pieces.some((piece) => piece.buffer === frames[0]!.buffer), "a copy, not a view of a chunk")
    // Half the pool and more: Buffer.allocUnsafe's own buffer, so a kept large frame holds nothing else.
    const body = new Uint8Array(Buffer.poolSize).fill(0x61)
    const large = encode(codec, [body])
    const { frames: [frame] } = feed(codec.decoder(), large.subarray(0, 100), large.subarray(100))
    assert.deepStrictEqual(frame, body)
    assert.strictEqual(frame!.buffer.byteLength, Buffer.poolSize)
  })

  it("takes the body as a subarray when only the header spans chunks", () => {
    const body = u8(0, 3, "xyz")
    const { frames } = feed(codec.decoder(), u8(0, 0), body)
    assert.strictEqual(frames[0]!.buffer, body.buffer)
  })

  it("takes the body as a subarray when the header ended exactly at the end of the last chunk", () => {
    const body = u8("xyz")
    const decoder = codec.decoder()
    const { frames } = feed(decoder, u8(0, 0), u8(0, 3))
    assert.strictEqual(frames.length, 0)
    assert.strictEqual(decoder.pending, 4)
    frames.push(...feed(decoder, body).frames)
    assert.strictEqual(frames[0]!.buffer, body.buffer)
  })

  it("after a frame that spanned chunks, takes the whole frames of the same chunk as subarrays", () => {
    const layouts: ReadonlyArray<readonly [Framing.LengthPrefixedOptions, (body: Uint8Array) => Uint8Array]> = [
      [{}, (body) => body],
      [{ lengthBytes: 2, endian: "little" }, (body) => body],
      // The frame keeps the length field (strip only the byte before it).
      [{ offset: 1, strip: 1 }, (body) => u8(0, 0, 0, body.length, ...body)]
    ]
    for (const [options, frame] of layouts) {
      const c = Framing.lengthPrefixed(options)
      const first = encode(c, [u8("a"), u8("bc")].map(frame))
      const rest = encode(c, [u8("def"), u8("g")].map(frame))
      // The first chunk ends one byte short of the second frame; the third and fourth lie inside the second chunk.
      const second = u8(...first.subarray(first.length - 1), ...rest)
      const { error, frames } = feed(c.decoder(), first.subarray(0, first.length - 1), second)
      assert.isUndefined(error)
      assert.deepStrictEqual(frames.map(text), ["a", "bc", "def", "g"].map((s) => text(frame(u8(s)))))
      assert.notStrictEqual(frames[1]!.buffer, second.buffer, "the frame that spanned is a copy")
      assert.strictEqual(frames[2]!.buffer, second.buffer)
      assert.strictEqual(frames[3]!.buffer, second.buffer)
    }
  })

  it("rejects frame over max before buffering body", () => {
    const decoder = Framing.lengthPrefixed({ maxFrameLength: 1024 }).decoder()
    const { error, frames } = feed(decoder, u8(0, 0, 0, 1, "a", 0, 0, 4, 1))
    assert.deepStrictEqual(frames.map(text), ["a"])
    assert.instanceOf(error, Framing.FrameTooLarge)
    assert.strictEqual(error._tag, "FrameTooLarge")
    assert.deepInclude(error, { limit: 1024, size: 1025, exact: true, direction: "decode" })
    assert.match(error.message, /1025 bytes.*limit of 1024 bytes \(maxFrameLength\)/)
    assert.strictEqual(decoder.buffered, 0)
    assert.isTrue(decoder.failed)
    assert.strictEqual(decoder.push(u8(1, 2, 3), []), error, "the error sticks")
  })

  it("a peer claiming 4 GiB costs nothing", () => {
    const decoder = Framing.lengthPrefixed({ lengthBytes: 8 }).decoder()
    const { error } = feed(decoder, u8(0, 0, 0, 1), u8(0, 0, 0, 0))
    assert.strictEqual(error?._tag, "FrameTooLarge")
    assert.strictEqual((error as Framing.FrameTooLarge).size, 2 ** 32)
    assert.strictEqual(decoder.buffered, 0)
  })

  it("errors on leftover bytes at eof", () => {
    for (const pieces of [[u8(0, 0, 0)], [u8(0, 0, 0, 4, "ab")], [u8(0, 0, 0, 4), u8("abc")]]) {
      const decoder = codec.decoder()
      feed(decoder, ...pieces)
      const error = decoder.end([])
      assert.strictEqual(error?._tag, "IncompleteFrame")
      const remaining = pieces.reduce((n, p) => n + p.length, 0)
      assert.strictEqual((error as Framing.IncompleteFrame).remaining, remaining)
      assert.match(error!.message, new RegExp(`${remaining} bytes of it left over`))
    }
    assert.isUndefined(codec.decoder().end([]), "no bytes, no error")
  })

  it("reads a little-endian 2-byte length", () => {
    const le = Framing.lengthPrefixed({ lengthBytes: 2, endian: "little" })
    const { frames } = feed(le.decoder(), u8(3, 0, "abc", 0, 1), u8(...new Array(256).fill(7)))
    assert.deepStrictEqual(frames.map((f) => f.length), [3, 256])
    assert.deepStrictEqual(Array.from(encode(le, [u8("abc")])), [3, 0, 97, 98, 99])
  })

  it("reads 3-byte and 1-byte lengths", () => {
    const three = Framing.lengthPrefixed({ lengthBytes: 3 })
    assert.deepStrictEqual(Array.from(encode(three, [u8("a")])), [0, 0, 1, 97])
    const one = Framing.lengthPrefixed({ lengthBytes: 1 })
    assert.deepStrictEqual(feed(one.decoder(), u8(2, "hi", 0)).frames.map(text), ["hi", ""])
  })

  it("skips header bytes before the length field (offset) and strips them", () => {
    // | CA FE | 00 03 | abc |  -->  | abc |
    const c = Framing.lengthPrefixed({ lengthBytes: 2, offset: 2 })
    assert.deepStrictEqual(feed(c.decoder(), u8(0xca, 0xfe, 0, 3, "abc")).frames.map(text), ["abc"])
    assert.deepStrictEqual(Array.from(encode(c, [u8("abc")])), [0, 0, 0, 3, 97, 98, 99])
  })

  it("keeps the header and reads a length that counts it (Netty's example 5)", () => {
    // | CA FE | 00 00 00 11 | Hello world |  -->  the same bytes
    const c = Framing.lengthPrefixed({ offset: 2, adjustment: -6, strip: 0 })
    const wire = u8(0xca, 0xfe, 0, 0, 0, 0x11, "Hello world")
    const { frames } = feed(c.decoder(), wire)
    assert.deepStrictEqual(Array.from(frames[0]!), Array.from(wire))
    assert.deepStrictEqual(Array.from(encode(c, [wire])), Array.from(wire), "the frame's own prefix is kept")
  })

  it("strips part of the header (Netty's example: HDR1 | LEN | HDR2 | body, strip 3)", () => {
    const c = Framing.lengthPrefixed({ lengthBytes: 2, offset: 1, adjustment: 1, strip: 3 })
    // | 01 | 00 03 | FE | abc |  -->  | FE abc |
    const { frames } = feed(c.decoder(), u8(1, 0, 3, 0xfe, "abc"))
    assert.deepStrictEqual(Array.from(frames[0]!), [0xfe, 97, 98, 99])
    assert.deepStrictEqual(Array.from(encode(c, [u8(0xfe, "abc")])), [0, 0, 3, 0xfe, 97, 98, 99])
  })

  it("rejects a negative adjusted length as malformed", () => {
    const c = Framing.lengthPrefixed({ adjustment: -4, strip: 0 })
    const { error } = feed(c.decoder(), u8(0, 0, 0, 3))
    assert.strictEqual(error?._tag, "MalformedFrame")
    assert.match(error!.message, /says 3.*adjustment of -4.*negative/)
  })

  it("encode overflow: encode rejects a frame over max", () => {
    const c = Framing.lengthPrefixed({ maxFrameLength: 4 })
    const out: Array<Uint8Array> = []
    const error = c.encode([u8("ok"), u8("too long")], out)
    assert.instanceOf(error, Framing.FrameTooLarge)
    assert.deepInclude(error, { direction: "encode", size: 8, limit: 4 })
    assert.match(error!.message, /cannot send a frame of 8 bytes/)
    assert.strictEqual(out.length, 0, "all or nothing")
  })

  it("encode rejects a kept length field that does not match the body", () => {
    const c = Framing.lengthPrefixed({ lengthBytes: 2, strip: 0 })
    assert.strictEqual(c.encode([u8(0, 2, "ab")], []), undefined)
    const error = c.encode([u8(0, 5, "ab")], [])
    assert.strictEqual(error?._tag, "MalformedFrame")
    assert.match(error!.message, /length field says 5, but its body of 2 bytes needs 2/)
    assert.strictEqual(c.encode([u8(0)], [])?._tag, "MalformedFrame")
  })

  it("encode passes large bodies by reference and coalesces small frames", () => {
    const big = new Uint8Array(64 * 1024).fill(1)
    const out: Array<Uint8Array> = []
    assert.isUndefined(codec.encode([u8("a"), u8("b"), big, u8("c")], out))
    assert.strictEqual(out.length, 3)
    assert.deepStrictEqual(Array.from(out[0]!), [0, 0, 0, 1, 97, 0, 0, 0, 1, 98, 0, 1, 0, 0])
    assert.strictEqual(out[1], big)
    assert.deepStrictEqual(Array.from(out[2]!), [0, 0, 0, 1, 99])
  })

  describe("options", () => {
    const rejects = (options: Framing.LengthPrefixedOptions, option: string, pattern: RegExp) => {
      try {
        Framing.lengthPrefixed(options)
      } catch (error) {
        assert.instanceOf(error, Framing.InvalidCodecOptions)
        assert.strictEqual((error as Framing.InvalidCodecOptions)._tag, "InvalidCodecOptions")
        assert.strictEqual((error as Framing.InvalidCodecOptions).option, option)
        assert.match((error as Error).message, pattern)
        return
      }
      assert.fail(`accepted ${JSON.stringify(options)}`)
    }

    it("rejects a length field too narrow for maxFrameLength", () => {
      rejects({ lengthBytes: 2, maxFrameLength: 65536 }, "maxFrameLength", /2-byte length field holds at most 65535/)
      rejects({ lengthBytes: 1, maxFrameLength: 300 }, "maxFrameLength", /at most 255/)
      rejects({ lengthBytes: 1, adjustment: -1, maxFrameLength: 255 }, "maxFrameLength", /at most 254/)
    })

    it("defaults maxFrameLength to what a narrow field can count", () => {
      const c = Framing.lengthPrefixed({ lengthBytes: 2 })
      assert.isUndefined(c.encode([new Uint8Array(65535)], []))
      assert.strictEqual(c.encode([new Uint8Array(65536)], [])?._tag, "FrameTooLarge")
      assert.strictEqual(Framing.lengthPrefixed().encode([new Uint8Array(8 * 1024 * 1024 + 1)], [])?._tag, "FrameTooLarge")
    })

    it("rejects adjustments under which no frame fits", () => {
      rejects({ lengthBytes: 1, adjustment: -256 }, "adjustment", /every frame length negative/)
      rejects({ adjustment: 100, maxFrameLength: 99 }, "adjustment", /more than maxFrameLength/)
    })

    it("rejects nonsense widths, endians, offsets and strips", () => {
      rejects({ lengthBytes: 5 as 4 }, "lengthBytes", /1, 2, 3, 4 or 8/)
      rejects({ endian: "middle" as "big" }, "endian", /"big" or "little"/)
      rejects({ offset: -1 }, "offset", /must be an integer from 0 to 65536, got -1/)
      rejects({ offset: 1.5 }, "offset", /integer/)
      rejects({ strip: 5 }, "strip", /must be an integer from 0 to 4, got 5/)
      rejects({ maxFrameLength: 2 ** 33, lengthBytes: 8 }, "maxFrameLength", /must be a positive integer up to 4294967296, got 8589934592/)
    })
  })

  it("decodes under every re-chunking", () =>
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }),
        CodecLaws.chunking,
        (frames, sizes) => {
          const bytes = encode(codec, frames)
          const decoded = Result.getOrThrow(Framing.decodeAll(codec, CodecLaws.rechunk(bytes, sizes)))
          assert.deepStrictEqual(decoded.map((f) => Array.from(f)), frames.map((f) => Array.from(f)))
        }
      ),
      { numRuns: 100 }
    ))
})
