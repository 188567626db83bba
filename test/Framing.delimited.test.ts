import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as fc from "fast-check"
import * as Framing from "effect-wire/Framing"
import * as CodecLaws from "effect-wire/testing/CodecLaws"

const enc = new TextEncoder()
const u8 = (...xs: ReadonlyArray<number | string>): Uint8Array =>
  Uint8Array.from(xs.flatMap((x) => typeof x === "string" ? Array.from(enc.encode(x)) : [x]))
const text = (b: Uint8Array) => new TextDecoder().decode(b)
const failure = <A>(result: Result.Result<A, Framing.FrameError>) =>
  Result.isFailure(result) ? result.failure : undefined

/** Everything the decoder yields, following recoverable errors, as strings or error tags. */
const events = <A>(codec: Framing.Codec<A>, pieces: ReadonlyArray<Uint8Array>, show: (a: A) => string) => {
  const decoder = codec.decoder()
  const seen: Array<string> = []
  const out: Array<A> = []
  const settle = (error: Framing.FrameError | undefined) => {
    seen.push(...out.map(show))
    out.length = 0
    if (error !== undefined) seen.push(`<${error._tag}>`)
    return error !== undefined && !decoder.failed
  }
  for (const piece of pieces) {
    let error = decoder.push(piece, out)
    for (let i = 0; settle(error) && i < 100; i++) error = decoder.push(new Uint8Array(0), out)
    if (decoder.failed) return seen
  }
  let error = decoder.end(out)
  for (let i = 0; settle(error) && i < 100; i++) error = decoder.end(out)
  return seen
}

/** Pushes each piece, collecting frames; stops at the first error. */
const collect = <A>(decoder: Framing.Decoder<A>, pieces: ReadonlyArray<Uint8Array>) => {
  const frames: Array<A> = []
  for (const piece of pieces) {
    const error = decoder.push(piece, frames)
    if (error !== undefined) return { frames, error }
  }
  return { frames, error: undefined }
}

const everySplit = (bytes: Uint8Array): Array<Array<Uint8Array>> => [
  [bytes],
  CodecLaws.rechunk(bytes, [1]),
  CodecLaws.rechunk(bytes, [2, 0, 3]),
  CodecLaws.rechunk(bytes, [5])
]

describe("Framing.delimited", () => {
  it("reads frames: | Hello \\0 world \\0 | --> | Hello | world |", () => {
    const codec = Framing.delimited({ delimiter: "\0" })
    for (const pieces of everySplit(u8("Hello", 0, "world", 0))) {
      assert.deepStrictEqual(events(codec, pieces, text), ["Hello", "world"])
    }
  })

  it("finds a multi-byte delimiter split across chunks", () => {
    const codec = Framing.delimited({ delimiter: "\r\n" })
    assert.deepStrictEqual(events(codec, [u8("ab\r"), u8("\ncd\r"), u8("\r\n")], text), ["ab", "cd\r"])
    assert.deepStrictEqual(events(codec, [u8("a\r\r"), u8("\n")], text), ["a\r"])
  })

  it("falls back correctly inside a self-overlapping delimiter", () => {
    const codec = Framing.delimited({ delimiter: "aab" })
    for (const pieces of everySplit(u8("xaaab", "aab", "aaaab"))) {
      assert.deepStrictEqual(events(codec, pieces, text), ["xa", "", "aa"])
    }
  })

  it("keeps the delimiter when asked", () => {
    const codec = Framing.delimited({ delimiter: "|", keepDelimiter: true })
    assert.deepStrictEqual(events(codec, [u8("a|b"), u8("|")], text), ["a|", "b|"])
    assert.isUndefined(codec.encode([u8("a|")], []))
    assert.strictEqual(codec.encode([u8("a")], [])?._tag, "MalformedFrame")
    assert.strictEqual(codec.encode([u8("a||")], [])?._tag, "MalformedFrame")
  })

  it("takes a frame inside one chunk as a subarray", () => {
    const chunk = u8("abc\n")
    const frames = Result.getOrThrow(Framing.decodeAll(Framing.delimited({ delimiter: "\n" }), chunk))
    assert.strictEqual(frames[0]!.buffer, chunk.buffer)
  })

  it("copies a frame spanning chunks once, and takes the next ones as subarrays", () => {
    const codec = Framing.delimited({ delimiter: "\0" })
    const first = u8("ab")
    const second = u8("cd", 0, "ef", 0, "gh", 0)
    const { frames } = collect(codec.decoder(), [first, second])
    assert.deepStrictEqual(frames.map(text), ["abcd", "ef", "gh"])
    assert.isFalse([first, second].some((piece) => piece.buffer === frames[0]!.buffer), "a copy, not a view of a chunk")
    assert.strictEqual(frames[1]!.buffer, second.buffer)
    assert.strictEqual(frames[2]!.buffer, second.buffer)
  })

  it("finds delimiters near and far, short and long frames mixed", () => {
    // Around 48 bytes the search switches between a loop and memchr.
    const sizes = [0, 1, 46, 47, 48, 49, 50, 100, 3, 1000, 2, 47, 49, 0]
    const frames = sizes.map((n, i) => "x".repeat(n).replace(/x$/, String.fromCharCode(97 + i)))
    for (const delimiter of ["\0", "\r\n"]) {
      const codec = Framing.delimited({ delimiter })
      for (const pieces of everySplit(u8(frames.join(delimiter) + delimiter))) {
        assert.deepStrictEqual(events(codec, pieces, text), frames)
      }
    }
  })

  it("counts the unfinished frame it holds over several chunks", () => {
    const decoder = Framing.delimited({ delimiter: "\r\n" }).decoder()
    const out: Array<Uint8Array> = []
    const buffered = [u8("ab"), u8("cd\r"), u8("e"), u8("\r"), u8("\nf")].map((piece) => {
      assert.isUndefined(decoder.push(piece, out))
      return [decoder.buffered, decoder.pending]
    })
    assert.deepStrictEqual(buffered, [[2, 2], [5, 5], [6, 6], [7, 7], [1, 1]])
    assert.deepStrictEqual(out.map(text), ["abcd\re"])
  })

  it("reads a frame cut in three anywhere, its delimiter in any piece", () => {
    const cases = [
      [Framing.delimited({ delimiter: "\r\n" }), "ab\rcd\r\nx\r\n", ["ab\rcd", "x"]],
      [Framing.delimited({ delimiter: "\r\n", keepDelimiter: true }), "ab\rcd\r\nx\r\n", ["ab\rcd\r\n", "x\r\n"]],
      [Framing.delimited({ delimiter: "aab" }), "xaaaab\0aab", ["xaa", "\0"]],
      [Framing.lines(), "ab\r\n\r\ncd\n", ["ab", "", "cd"]]
    ] as const
    for (const [codec, input, expected] of cases) {
      const bytes = u8(input)
      for (let i = 0; i <= bytes.length; i++) {
        for (let j = i; j <= bytes.length; j++) {
          const pieces = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]
          assert.deepStrictEqual(events(codec, pieces, text), [...expected], `cut at ${i} and ${j}`)
        }
      }
    }
  })

  it("rejects frame over max, holding at most the limit", () => {
    const codec = Framing.delimited({ delimiter: "\r\n", maxLength: 4 })
    const decoder = codec.decoder()
    assert.isUndefined(decoder.push(u8("abcd\r"), []))
    assert.strictEqual(decoder.buffered, 5)
    const error = decoder.push(u8("x"), [])
    assert.deepInclude(error, { _tag: "FrameTooLarge", limit: 4, size: 5, exact: false, option: "maxLength" })
    assert.match(error!.message, /at least 5 bytes, over the limit of 4 bytes \(maxLength\)/)
    assert.strictEqual(decoder.buffered, 0)
    // Whole, the size is exact.
    assert.deepInclude(failure(Framing.decodeAll(codec, u8("abcdef\r\n"))), {
      size: 6,
      exact: true
    })
  })

  it("errors on leftover bytes at eof", () => {
    const codec = Framing.delimited({ delimiter: "\r\n" })
    assert.deepInclude(failure(Framing.decodeAll(codec, u8("ok\r\nhalf\r"))), {
      _tag: "IncompleteFrame",
      remaining: 5
    })
  })

  it("encode rejects a frame the peer would split", () => {
    const codec = Framing.delimited({ delimiter: "aa" })
    assert.strictEqual(codec.encode([u8("xaay")], [])?._tag, "MalformedFrame")
    // "xa" + "aa" reads as "x" then "a": the delimiter would come too early.
    const error = codec.encode([u8("xa")], [])
    assert.strictEqual(error?._tag, "MalformedFrame")
    assert.match(error!.message, /would read it as two frames/)
    assert.isUndefined(codec.encode([u8("ax")], []))
  })

  it("rejects an empty delimiter", () => {
    assert.throws(() => Framing.delimited({ delimiter: "" }), /delimiter: the delimiter is empty/)
    assert.throws(() => Framing.delimited({ delimiter: new Uint8Array(0) }), Framing.InvalidCodecOptions)
    assert.throws(() => Framing.delimited({ delimiter: "\n", maxLength: -1 }), /maxLength/)
  })
})

describe("Framing.lines", () => {
  it("accepts \\n and \\r\\n: | GET a\\r\\n | PUT b\\n | --> | GET a | PUT b |", () => {
    const codec = Framing.lines({ as: "string" })
    for (const pieces of everySplit(u8("GET a\r\nPUT b\n\n\r\n a\rb \n"))) {
      assert.deepStrictEqual(events(codec, pieces, (s) => s), ["GET a", "PUT b", "", "", " a\rb "])
    }
  })

  it("yields bytes by default", () => {
    const frames = Result.getOrThrow(Framing.decodeAll(Framing.lines(), u8("a\r\n", 0xff, "\n")))
    assert.deepStrictEqual(frames.map((f) => Array.from(f)), [[97], [0xff]])
  })

  it("reads a line split inside \\r\\n and inside a UTF-8 character", () => {
    const codec = Framing.lines({ as: "string" })
    const bytes = u8("héllo 😀\r\n")
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.deepStrictEqual(events(codec, [bytes.subarray(0, cut), bytes.subarray(cut)], (s) => s), ["héllo 😀"])
    }
  })

  it("reads lines cut in three anywhere, in string mode too", () => {
    const bytes = u8("héllo\r\n😀\r\rx\n\n")
    const strings = Framing.lines({ as: "string" })
    const raw = Framing.lines()
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const pieces = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]
        const expected = ["héllo", "😀\r\rx", ""]
        assert.deepStrictEqual(events(strings, pieces, (s) => s), expected, `cut at ${i} and ${j}`)
        assert.deepStrictEqual(events(raw, pieces, text), expected, `bytes, cut at ${i} and ${j}`)
      }
    }
  })

  it("rejects invalid UTF-8 in a line that spanned chunks, and goes on with resync", () => {
    const codec = Framing.lines({ as: "string", resync: true })
    assert.deepStrictEqual(events(codec, [u8("ab", 0xc3), u8(0x28, "\nok")], (s) => s).slice(0, 1), ["<MalformedFrame>"])
    assert.deepStrictEqual(events(codec, [u8("ab", 0xc3), u8(0x28, "\nok\n")], (s) => s), ["<MalformedFrame>", "ok"])
  })

  it("rejects invalid UTF-8 in string mode as malformed", () => {
    const error = failure(Framing.decodeAll(Framing.lines({ as: "string" }), u8("ok\n", 0xc3, 0x28, "\n")))
    assert.deepInclude(error, { _tag: "MalformedFrame" })
    // A BOM is a character like any other: kept, not swallowed.
    const bom = Result.getOrThrow(Framing.decodeAll(Framing.lines({ as: "string" }), u8(0xef, 0xbb, 0xbf, "a\n")))
    assert.deepStrictEqual(bom, ["\ufeffa"])
  })

  it("rejects a line over max", () => {
    const codec = Framing.lines({ maxLength: 3 })
    // The limit does not count the line ending.
    assert.deepStrictEqual(events(codec, [u8("abc\r\n")], text), ["abc"])
    assert.deepStrictEqual(events(codec, [u8("abc\r"), u8("\n")], text), ["abc"])
    for (const pieces of everySplit(u8("ok\nabcd\nnext\n"))) {
      assert.deepStrictEqual(events(codec, pieces, text), ["ok", "<FrameTooLarge>"])
    }
  })

  it("resynchronises after an over-long line", () => {
    const codec = Framing.lines({ as: "string", maxLength: 3, resync: true })
    for (const pieces of everySplit(u8("ok\nway too long\nnxt\r\nlonger still\n", 0xff, "\nend\n"))) {
      assert.deepStrictEqual(events(codec, pieces, (s) => s), [
        "ok",
        "<FrameTooLarge>",
        "nxt",
        "<FrameTooLarge>",
        "<MalformedFrame>",
        "end"
      ])
    }
  })

  it("discards an over-long line in bounded memory", () => {
    const decoder = Framing.lines({ maxLength: 16, resync: true }).decoder()
    const junk = new Uint8Array(1024).fill(0x61)
    const out: Array<Uint8Array> = []
    assert.strictEqual(decoder.push(junk, out)?._tag, "FrameTooLarge")
    for (let i = 0; i < 100; i++) {
      assert.isUndefined(decoder.push(junk, out))
      assert.strictEqual(decoder.buffered, 0)
    }
    assert.isUndefined(decoder.push(u8("tail\nfine\n"), out))
    assert.deepStrictEqual(out.map(text), ["fine"])
    assert.isUndefined(decoder.end(out), "the unfinished long line was reported already")
  })

  it("errors on leftover bytes at eof", () => {
    const error = failure(Framing.decodeAll(Framing.lines(), u8("a\nbc")))
    assert.deepInclude(error, { _tag: "IncompleteFrame", remaining: 2 })
  })

  it("encodes with \\n, rejecting what the peer could not read back", () => {
    const codec = Framing.lines({ as: "string", maxLength: 4 })
    assert.deepStrictEqual(text(Result.getOrThrow(Framing.encodeAll(codec, ["a", "", "é"]))), "a\n\né\n")
    assert.match(codec.encode(["a\nb"], [])!.message, /must not contain \\n/)
    assert.match(codec.encode(["a\r"], [])!.message, /must not end with \\r/)
    assert.match(codec.encode(["\ud800"], [])!.message, /lone UTF-16 surrogate/)
    assert.deepInclude(codec.encode(["ééé"], []), { _tag: "FrameTooLarge", size: 6, what: "line" })
    assert.strictEqual(Framing.lines().encode([u8("a\r")], [])?._tag, "MalformedFrame")
  })

  it("decodes under every re-chunking", () =>
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: fc.constantFrom("a", "é", "😀", "\r", " ") }), { maxLength: 10 }),
        CodecLaws.chunking,
        (lines, sizes) => {
          const codec = Framing.lines({ as: "string" })
          const sendable = lines.filter((l) => !l.endsWith("\r"))
          const bytes = Result.getOrThrow(Framing.encodeAll(codec, sendable))
          assert.deepStrictEqual(Result.getOrThrow(Framing.decodeAll(codec, CodecLaws.rechunk(bytes, sizes))), sendable)
        }
      ),
      { numRuns: 100 }
    ))
})
