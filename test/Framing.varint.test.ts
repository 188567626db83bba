import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import * as Framing from "effect-wire/Framing"
import * as CodecLaws from "effect-wire/testing/CodecLaws"

const u8 = (...xs: ReadonlyArray<number>) => Uint8Array.from(xs)

const feed = <A>(decoder: Framing.Decoder<A>, ...pieces: ReadonlyArray<Uint8Array>) => {
  const frames: Array<A> = []
  for (const piece of pieces) {
    const error = decoder.push(piece, frames)
    if (error !== undefined) return { frames, error }
  }
  return { frames, error: undefined }
}

describe("Framing.varint", () => {
  const codec = Framing.varint()

  it("writes lengths as minimal LEB128: 0, 127, 128, 300, 16384", () => {
    const header = (n: number) => Array.from(Result.getOrThrow(Framing.encodeAll(codec, [new Uint8Array(n)])).subarray(0, 3))
    assert.deepStrictEqual(header(0).slice(0, 1), [0])
    assert.deepStrictEqual(header(127).slice(0, 1), [127])
    assert.deepStrictEqual(header(128).slice(0, 2), [0x80, 0x01])
    assert.deepStrictEqual(header(300).slice(0, 2), [0xac, 0x02])
    assert.deepStrictEqual(header(16384), [0x80, 0x80, 0x01])
  })

  it("reads a frame: | AC 02 | 300 bytes | --> | 300 bytes |", () => {
    const body = new Uint8Array(300).fill(9)
    const { frames } = feed(codec.decoder(), u8(0xac, 0x02), body)
    assert.strictEqual(frames.length, 1)
    assert.strictEqual(frames[0]!.length, 300)
    assert.strictEqual(frames[0]!.buffer, body.buffer, "the body inside one chunk is not copied")
  })

  it("reads incomplete varint", () => {
    const decoder = codec.decoder()
    const out: Array<Uint8Array> = []
    assert.isUndefined(decoder.push(u8(0x81), out))
    assert.isUndefined(decoder.push(u8(0x01), out)) // 129
    assert.isUndefined(decoder.push(new Uint8Array(128), out))
    assert.strictEqual(out.length, 0)
    assert.isUndefined(decoder.push(u8(5, 0), out))
    assert.deepStrictEqual(out.map((f) => f.length), [129, 0])
  })

  it("reads empty frames one byte at a time", () => {
    const { frames } = feed(codec.decoder(), u8(0), u8(0), u8(1), u8(7))
    assert.deepStrictEqual(frames.map((f) => Array.from(f)), [[], [], [7]])
  })

  it("rejects frame over max before buffering body", () => {
    const decoder = Framing.varint({ maxFrameLength: 100 }).decoder()
    const { error } = feed(decoder, u8(101))
    assert.deepInclude(error, { _tag: "FrameTooLarge", size: 101, limit: 100, exact: true })
    assert.strictEqual(decoder.buffered, 0)
  })

  it("rejects a varint that can only end over the max before it ends", () => {
    // 0x80 0x80 0x80 0x80 ...: at least 128^4 after four continuation bytes, over 8 MiB.
    const decoder = codec.decoder()
    const { error } = feed(decoder, u8(0x80, 0x80, 0x80))
    assert.isUndefined(error)
    const result = feed(decoder, u8(0x80))
    assert.deepInclude(result.error, { _tag: "FrameTooLarge", size: 2 ** 28, exact: false })
    assert.match(result.error!.message, /at least 268435456 bytes/)
  })

  it("rejects over-long varints as malformed", () => {
    const { error } = feed(codec.decoder(), u8(0x85, 0x00))
    assert.strictEqual(error?._tag, "MalformedFrame")
    assert.match(error!.message, /over-long varint: 2 bytes for a value that fits in 1/)
  })

  it("errors on leftover bytes at eof", () => {
    for (const [bytes, remaining] of [[u8(0x80), 1], [u8(3, 1, 2), 3], [u8(0x80, 0x01, 1), 3]] as const) {
      const decoder = codec.decoder()
      feed(decoder, bytes)
      assert.deepInclude(decoder.end([]), { _tag: "IncompleteFrame", remaining })
    }
  })

  it("encode overflow: encode rejects a frame over max", () => {
    const error = Framing.varint({ maxFrameLength: 3 }).encode([new Uint8Array(4)], [])
    assert.deepInclude(error, { _tag: "FrameTooLarge", direction: "encode", size: 4, limit: 3 })
  })

  it("rejects a max over 4 GiB", () => {
    assert.throws(() => Framing.varint({ maxFrameLength: 2 ** 32 + 1 }), /maxFrameLength/)
  })

  it("decodes under every re-chunking", () =>
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 400 }), { maxLength: 8 }),
        CodecLaws.chunking,
        (frames, sizes) => {
          const bytes = Result.getOrThrow(Framing.encodeAll(codec, frames))
          const decoded = Result.getOrThrow(Framing.decodeAll(codec, CodecLaws.rechunk(bytes, sizes)))
          assert.isTrue(CodecLaws.equals(decoded, frames))
        }
      ),
      { numRuns: 100 }
    ))
})
