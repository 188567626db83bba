import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Framing from "effect-wire/Framing"
import * as CodecLaws from "effect-wire/testing/CodecLaws"

// The tutorials' command-output response: a JSON header with the two lengths, then stdout and stderr.
const Output = Schema.Struct({
  exitCode: Schema.Int,
  stdoutLength: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  stderrLength: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
})
type Output = typeof Output.Type
const codec = Framing.header({ header: Output, bodyLength: (h) => h.stdoutLength + h.stderrLength })

const enc = new TextEncoder()
const u32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
const wire = (json: string, body: ReadonlyArray<number> = []) => {
  const header = enc.encode(json)
  return Uint8Array.from([...u32(header.length), ...header, ...body])
}
const failure = <A>(result: Result.Result<A, Framing.FrameError>) =>
  Result.isFailure(result) ? result.failure : undefined

describe("Framing.header", () => {
  it("reads | 00 00 00 2F | {header} | body | --> { header, body }", () => {
    const bytes = wire(`{"exitCode":0,"stdoutLength":5,"stderrLength":1}`, [...enc.encode("hello!")])
    for (const sizes of [[], [1], [3, 0, 7]]) {
      const frames = Result.getOrThrow(Framing.decodeAll(codec, CodecLaws.rechunk(bytes, sizes)))
      assert.deepStrictEqual(frames.map((f) => f.header), [{ exitCode: 0, stdoutLength: 5, stderrLength: 1 }])
      assert.strictEqual(new TextDecoder().decode(frames[0]!.body), "hello!")
    }
  })

  it("encodes what it decodes, header as JSON", () => {
    const frame = { header: { exitCode: 2, stdoutLength: 0, stderrLength: 3 }, body: enc.encode("err") }
    const bytes = Result.getOrThrow(Framing.encodeAll(codec, [frame]))
    const json = `{"exitCode":2,"stdoutLength":0,"stderrLength":3}`
    assert.deepStrictEqual(Array.from(bytes), Array.from(wire(json, [...enc.encode("err")])))
    assert.isTrue(CodecLaws.equals(Result.getOrThrow(Framing.decodeAll(codec, bytes)), [frame]))
  })

  it("reads an empty body at once, without waiting for more bytes", () => {
    const decoder = codec.decoder()
    const out: Array<Framing.HeaderFrame<Output>> = []
    assert.isUndefined(decoder.push(wire(`{"exitCode":0,"stdoutLength":0,"stderrLength":0}`), out))
    assert.strictEqual(out.length, 1)
    assert.strictEqual(out[0]!.body.length, 0)
  })

  it("reads incomplete header length, header and body", () => {
    const bytes = wire(`{"exitCode":1,"stdoutLength":2,"stderrLength":0}`, [1, 2])
    for (const cut of [2, 4, 10, bytes.length - 1]) {
      const decoder = codec.decoder()
      const out: Array<Framing.HeaderFrame<Output>> = []
      decoder.push(bytes.subarray(0, cut), out)
      assert.strictEqual(out.length, 0)
      decoder.push(bytes.subarray(cut), out)
      assert.strictEqual(out.length, 1)
    }
  })

  it("rejects a header over maxHeaderLength before buffering it", () => {
    const decoder = Framing.header({ header: Output, bodyLength: () => 0, maxHeaderLength: 100 }).decoder()
    const error = decoder.push(Uint8Array.from(u32(0xffffffff)), [])
    assert.deepInclude(error, { _tag: "FrameTooLarge", what: "header", option: "maxHeaderLength", size: 0xffffffff })
    assert.match(error!.message, /header of 4294967295 bytes, over the limit of 100 bytes \(maxHeaderLength\)/)
    assert.strictEqual(decoder.buffered, 0)
  })

  it("rejects frame over max before buffering body", () => {
    const c = Framing.header({ header: Output, bodyLength: (h) => h.stdoutLength, maxBodyLength: 1024 })
    const decoder = c.decoder()
    const error = decoder.push(wire(`{"exitCode":0,"stdoutLength":4294967295,"stderrLength":0}`, [1, 2, 3]), [])
    assert.deepInclude(error, { _tag: "FrameTooLarge", what: "body", option: "maxBodyLength", limit: 1024 })
    assert.strictEqual(decoder.buffered, 0)
  })

  it("rejects a header that is not JSON, or not what the Schema says, as malformed with the cause", () => {
    const notJson = failure(Framing.decodeAll(codec, wire(`{"exitCode":`)))
    assert.strictEqual(notJson?._tag, "MalformedFrame")
    assert.match(notJson!.message, /the header is not JSON/)
    assert.instanceOf((notJson as Framing.MalformedFrame).cause, SyntaxError)

    const wrong = failure(Framing.decodeAll(codec, wire(`{"exitCode":0,"stdoutLength":-1,"stderrLength":0}`)))
    assert.match(wrong!.message, /does not match its schema[\s\S]*stdoutLength/)
    assert.isTrue(Schema.isSchemaError((wrong as Framing.MalformedFrame).cause))

    const notUtf8 = failure(Framing.decodeAll(codec, Uint8Array.from([0, 0, 0, 1, 0xff])))
    assert.match(notUtf8!.message, /not valid UTF-8/)
  })

  it("reads every header as JSON.parse does, where it lies in a read or gathered across reads", () => {
    // Flat headers take the fast path (internal/flatJson), the others JSON.parse: the codec must not tell them apart.
    const texts = [
      `{"id":7,"length":0}`,
      ` { "id" : -0 ,\t"type":"data" , "ok":true,"none":null }\r\n`,
      `{"a":1,"b":2,"a":3}`,
      `{"b":1,"1":2,"0":3}`,
      `{}`,
      `{"":""}`,
      `{"n":1.5e3,"big":12345678901234567890}`,
      `{"s":"tab\\t \\u00e9 \\"q\\"","u":"é"}`,
      `{"nested":{"a":[1,{"b":null}]}}`,
      `{"__proto__":{"polluted":true}}`,
      `[1,2]`,
      `"text"`,
      `42`
    ]
    const any = Framing.header({ header: Schema.Unknown, bodyLength: () => 0 })
    const all = Uint8Array.from(texts.flatMap((text) => [...wire(text)]))
    for (const sizes of [[], [1], [3, 0, 7], [5, 11, 2, 64]]) {
      const frames = Result.getOrThrow(Framing.decodeAll(any, CodecLaws.rechunk(all, sizes)))
      assert.strictEqual(frames.length, texts.length)
      frames.forEach((frame, i) => {
        const expected = JSON.parse(texts[i]!)
        assert.deepStrictEqual(frame.header, expected, texts[i])
        if (typeof expected === "object" && expected !== null) {
          assert.deepStrictEqual(Object.keys(frame.header as object), Object.keys(expected), texts[i])
          assert.strictEqual(Object.getPrototypeOf(frame.header), Object.getPrototypeOf(expected), texts[i])
        }
      })
      assert.isTrue(Object.is((frames[1]!.header as { id: number }).id, -0))
      assert.isFalse("polluted" in {})
    }
    // What JSON.parse refuses fails as before, with JSON.parse's own reason, in one read or in pieces.
    for (const text of [`{"id":01}`, `{"id":1,}`, `{"id":1} x`, `{"id":tru}`, `{"id"`]) {
      const reason = (() => {
        try {
          JSON.parse(text)
        } catch (e) {
          return (e as Error).message
        }
      })()
      for (const sizes of [[], [1]]) {
        const error = failure(Framing.decodeAll(any, CodecLaws.rechunk(wire(text), sizes)))
        assert.strictEqual((error as Framing.MalformedFrame).reason, `the header is not JSON (${reason})`, text)
      }
    }
  })

  it("rejects a bodyLength that is not a length", () => {
    const c = Framing.header({ header: Schema.Struct({ n: Schema.Number }), bodyLength: (h) => h.n })
    assert.match(failure(Framing.decodeAll(c, wire(`{"n":1.5}`)))!.message, /bodyLength gave 1.5/)
    assert.match(c.encode([{ header: { n: -1 }, body: new Uint8Array(0) }], [])!.message, /bodyLength gave -1/)
  })

  it("errors on leftover bytes at eof", () => {
    const bytes = wire(`{"exitCode":0,"stdoutLength":3,"stderrLength":0}`, [1, 2])
    assert.deepInclude(failure(Framing.decodeAll(codec, bytes)), { _tag: "IncompleteFrame", remaining: bytes.length })
  })

  it("encode rejects what the peer would reject", () => {
    const body = new Uint8Array(3)
    const mismatch = codec.encode([{ header: { exitCode: 0, stdoutLength: 1, stderrLength: 1 }, body }], [])
    assert.match(mismatch!.message, /bodyLength says 2 bytes for this header, but the body has 3/)
    const invalid = codec.encode([{ header: { exitCode: 0.5, stdoutLength: 3, stderrLength: 0 }, body }], [])
    assert.match(invalid!.message, /does not match its schema/)
    // NaN is a number to the Schema, but JSON writes null: the peer could not read it back.
    const lossy = Framing.header({ header: Schema.Struct({ x: Schema.Number }), bodyLength: () => 0 })
    assert.match(lossy.encode([{ header: { x: NaN }, body: new Uint8Array(0) }], [])!.message, /would not read back/)
    const small = Framing.header({ header: Output, bodyLength: (h) => h.stdoutLength, maxBodyLength: 2 })
    assert.deepInclude(small.encode([{ header: { exitCode: 0, stdoutLength: 3, stderrLength: 0 }, body }], []), {
      _tag: "FrameTooLarge",
      what: "body",
      direction: "encode"
    })
  })

  it("rejects options that are not a Schema and a function", () => {
    assert.throws(() => Framing.header({ header: {} as typeof Output, bodyLength: () => 0 }), /expected a Schema/)
    assert.throws(() => Framing.header({ header: Output, bodyLength: 3 as any }), /bodyLength/)
    assert.throws(() => Framing.header({ header: Output, bodyLength: () => 0, maxHeaderLength: 2 ** 32 }), /maxHeaderLength/)
  })

  describe("command output: a 1 MiB body", () => {
    const MiB = 1024 * 1024
    const stdout = new Uint8Array(MiB - 10).map((_, i) => (i * 31) & 255)
    const stderr = new Uint8Array(10).fill(0x45)
    const body = new Uint8Array(MiB)
    body.set(stdout, 0)
    body.set(stderr, stdout.length)
    const response = { header: { exitCode: 0, stdoutLength: stdout.length, stderrLength: stderr.length }, body }
    const bytes = Result.getOrThrow(Framing.encodeAll(codec, [response, response]))

    const checkFrames = (frames: ReadonlyArray<Framing.HeaderFrame<Output>>, count = 2) => {
      assert.strictEqual(frames.length, count)
      for (const frame of frames) {
        assert.deepStrictEqual(frame.header, response.header)
        assert.isTrue(CodecLaws.equals(frame.body.subarray(0, frame.header.stdoutLength), stdout))
        assert.isTrue(CodecLaws.equals(frame.body.subarray(frame.header.stdoutLength), stderr))
      }
    }

    for (const size of [1, 7, 64 * 1024]) {
      it(`arrives in ${size}-byte pieces (raw decoder)`, () => {
        const decoder = codec.decoder()
        const frames: Array<Framing.HeaderFrame<Output>> = []
        let most = 0
        let error: Framing.FrameError | undefined
        for (let at = 0; at < bytes.length && error === undefined; at += size) {
          error = decoder.push(bytes.subarray(at, at + size), frames)
          if (decoder.buffered > most) most = decoder.buffered
        }
        assert.isUndefined(error ?? decoder.end(frames))
        checkFrames(frames)
        assert.isAtMost(most, MiB, "never more than one body held")
      })
    }

    for (const size of [7, 64 * 1024]) {
      it.effect(`arrives in ${size}-byte pieces (Framing.decode)`, () =>
        Effect.gen(function*() {
          // One response: 150,000 Stream chunks of 7 bytes already take a second.
          const one = Result.getOrThrow(Framing.encodeAll(codec, [response]))
          const pieces = CodecLaws.rechunk(one, [size]).map((piece) => [piece] as const)
          const reads = Stream.fromIterable(pieces).pipe(Stream.flattenArray)
          const frames = yield* reads.pipe(Framing.decode(codec), Stream.runCollect)
          checkFrames(frames, 1)
        }))
    }
  })
})
