import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Message from "../src/Message.js"

const bytes = (s: string) => new TextEncoder().encode(s)

const Event = Schema.Union(
  Schema.TaggedStruct("Join", { user: Schema.String, at: Schema.Int, tags: Schema.Array(Schema.String) }),
  Schema.TaggedStruct("Say", {
    user: Schema.String,
    text: Schema.String,
    // exact: JSON has no `undefined`, so `{ score: undefined }` would come back as `{}`.
    score: Schema.optionalWith(Schema.Number.pipe(Schema.finite()), { exact: true })
  }),
  Schema.TaggedStruct("Leave", { user: Schema.String, reason: Schema.NullOr(Schema.String) })
)
type Event = typeof Event.Type

// Types whose encoded side is not plain JSON data: a Date (as a string), a bigint (as a string), raw bytes.
const Blob = Schema.Struct({
  id: Schema.BigInt,
  at: Schema.Date,
  body: Schema.Uint8ArrayFromSelf,
  meta: Schema.Struct({ a: Schema.Boolean, b: Schema.Array(Schema.Int) })
})

const Request = Schema.Struct({ id: Schema.Number, method: Schema.String })

const isEvent = Schema.equivalence(Event)
const isBlob = Schema.equivalence(Blob)

describe("Message", () => {
  describe("round trips", () => {
    it.prop("json: decode(encode(a)) == a", { event: Arbitrary.make(Event) }, ({ event }) => {
      const format = Message.json(Event)
      const frame = Either.getOrThrow(format.encode(event))
      assert.isTrue(isEvent(Either.getOrThrow(format.decode(frame)), event))
    })

    it.prop("msgpack: decode(encode(a)) == a", { event: Arbitrary.make(Event) }, ({ event }) => {
      const format = Message.msgpack(Event)
      const frame = Either.getOrThrow(format.encode(event))
      assert.isTrue(isEvent(Either.getOrThrow(format.decode(frame)), event))
    })

    it.prop("msgpack carries bytes, dates and bigints", { blob: Arbitrary.make(Blob) }, ({ blob }) => {
      const format = Message.msgpack(Blob)
      const decoded = Either.getOrThrow(format.decode(Either.getOrThrow(format.encode(blob))))
      assert.isTrue(isBlob(decoded, blob))
      assert.deepStrictEqual(Array.from(decoded.body), Array.from(blob.body))
    }, { fastCheck: { numRuns: 50 } })

    it("json writes the Schema's encoded form as UTF-8", () => {
      const frame = Either.getOrThrow(Message.json(Event).encode({ _tag: "Say", user: "zoë", text: "hi" }))
      assert.strictEqual(new TextDecoder().decode(frame), `{"_tag":"Say","user":"zoë","text":"hi"}`)
    })
  })

  describe("malformed frames", () => {
    const expectDecodeError = (result: Either.Either<unknown, Message.MessageDecodeError>) => {
      assert.isTrue(Either.isLeft(result))
      const error = Either.getLeft(result).pipe((o) => o._tag === "Some" ? o.value : assert.fail("expected Left"))
      assert.strictEqual(error._tag, "MessageDecodeError")
      assert.isTrue(ParseResult.isParseError(error.cause))
      return error
    }

    it("not JSON: the syntax error is inside the ParseError", () => {
      const error = expectDecodeError(Message.json(Request).decode(bytes(`{"id": 1,`)))
      assert.include(error.message, "cannot decode a json message of 9 bytes")
      assert.include(error.cause.message, "not JSON")
      assert.strictEqual(error.format, "json")
      assert.deepStrictEqual(Array.from(error.frame), Array.from(bytes(`{"id": 1,`)))
    })

    it("invalid UTF-8 is malformed, not replaced with U+FFFD", () => {
      const error = expectDecodeError(Message.json(Schema.String).decode(new Uint8Array([0x22, 0xff, 0x22])))
      assert.include(error.message, "not JSON")
    })

    it("valid JSON of the wrong shape: the ParseError says where", () => {
      const error = expectDecodeError(Message.json(Request).decode(bytes(`{"id":"7","method":"ping"}`)))
      const issues = ParseResult.ArrayFormatter.formatErrorSync(error.cause)
      assert.deepStrictEqual(issues.map((i) => i.path), [["id"]])
      assert.include(error.message, `Expected number, actual "7"`)
    })

    it("parseOptions reach Schema", () => {
      const strict = Message.json(Request, { parseOptions: { onExcessProperty: "error" } })
      expectDecodeError(strict.decode(bytes(`{"id":1,"method":"ping","extra":true}`)))
      assert.isTrue(Either.isRight(Message.json(Request).decode(bytes(`{"id":1,"method":"ping","extra":true}`))))
    })

    it("msgpack: truncated, trailing bytes, invalid and wrong shape are all MessageDecodeError", () => {
      const format = Message.msgpack(Request)
      const good = Either.getOrThrow(format.encode({ id: 1, method: "ping" }))
      expectDecodeError(format.decode(good.subarray(0, good.length - 2)))
      const trailing = new Uint8Array(good.length + 1)
      trailing.set(good)
      expectDecodeError(format.decode(trailing))
      expectDecodeError(format.decode(new Uint8Array([0xc1])))
      expectDecodeError(format.decode(new Uint8Array([])))
      const wrong = Either.getOrThrow(Message.msgpack(Schema.Struct({ id: Schema.String })).encode({ id: "x" }))
      const error = expectDecodeError(format.decode(wrong))
      assert.include(error.message, "cannot decode a msgpack message")
    })

    it("a huge bad frame makes a bounded message", () => {
      const huge = bytes(JSON.stringify({ id: "x".repeat(100_000), method: "m" }))
      const error = expectDecodeError(Message.json(Request).decode(huge))
      assert.isBelow(error.message.length, 2100)
      assert.include(error.message, "more characters")
    })
  })

  describe("values that do not encode", () => {
    it("NaN and Infinity in JSON fail instead of becoming null", () => {
      const format = Message.json(Schema.Struct({ x: Schema.Number }))
      const result = format.encode({ x: NaN })
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) {
        assert.strictEqual(result.left._tag, "MessageEncodeError")
        assert.isTrue(ParseResult.isParseError(result.left.cause))
        assert.include(result.left.message, "NaN has no JSON representation")
        assert.deepStrictEqual(result.left.value, { x: NaN })
      }
      assert.isTrue(Either.isLeft(format.encode({ x: Infinity })))
      // msgpack has floats for them
      assert.isTrue(Either.isRight(Message.msgpack(Schema.Struct({ x: Schema.Number })).encode({ x: NaN })))
    })

    it("a bigint in JSON fails; a value the Schema rejects fails", () => {
      const big = Message.json(Schema.BigIntFromSelf).encode(1n)
      assert.isTrue(Either.isLeft(big) && big.left.message.includes("BigInt"))
      const notInt = Message.json(Schema.Int).encode(1.5)
      assert.isTrue(Either.isLeft(notInt) && notInt.left.message.includes("Expected an integer"))
      assert.isTrue(Either.isLeft(Message.msgpack(Schema.Int).encode(1.5)))
    })
  })

  describe("custom formats", () => {
    it("make turns any Schema from bytes into a format", () => {
      const Utf8 = Schema.transform(Schema.Uint8ArrayFromSelf, Schema.String, {
        strict: true,
        decode: (b) => new TextDecoder().decode(b),
        encode: (s) => new TextEncoder().encode(s)
      })
      const format = Message.make("utf8", Utf8.pipe(Schema.compose(Schema.NumberFromString)))
      assert.strictEqual(format.name, "utf8")
      assert.isTrue(Message.isFormat(format))
      assert.strictEqual(Either.getOrThrow(format.decode(bytes("42"))), 42)
      const error = format.decode(bytes("x"))
      assert.isTrue(Either.isLeft(error) && error.left.message.startsWith("cannot decode a utf8 message of 1 bytes"))
    })
  })

  describe("stream pipes", () => {
    const format = Message.json(Request)
    const frames = (...texts: Array<string>) => Stream.fromIterable(texts.map(bytes))

    it.effect("decode: many frames in one chunk become many messages, in order", () =>
      Effect.gen(function*() {
        const input = Array.from({ length: 100 }, (_, i) => `{"id":${i},"method":"m${i}"}`)
        const out = yield* frames(...input).pipe(Stream.rechunk(37), Message.decode(format), Stream.runCollect)
        assert.deepStrictEqual(Chunk.toArray(out), Array.from({ length: 100 }, (_, i) => ({ id: i, method: `m${i}` })))
      }))

    it.effect("decode: the messages before a bad frame come out, then the stream fails", () =>
      Effect.gen(function*() {
        const seen: Array<number> = []
        const error = yield* frames(`{"id":1,"method":"a"}`, `{"id":2,"method":"b"}`, `nope`, `{"id":3,"method":"c"}`)
          .pipe(
            Stream.rechunk(10),
            Message.decode(format),
            Stream.runForEach((r) => Effect.sync(() => seen.push(r.id))),
            Effect.flip
          )
        assert.deepStrictEqual(seen, [1, 2])
        assert.strictEqual(error._tag, "MessageDecodeError")
      }))

    it.effect("decodeEither keeps going past a bad frame", () =>
      Effect.gen(function*() {
        const out = yield* frames(`{"id":1,"method":"a"}`, `nope`, `{"id":3,"method":"c"}`).pipe(
          Message.decodeEither(format),
          Stream.map(Either.match({ onLeft: (e) => e._tag, onRight: (r) => r.id })),
          Stream.runCollect
        )
        assert.deepStrictEqual(Chunk.toArray(out), [1, "MessageDecodeError", 3])
      }))

    it.effect("encode then decode (data-first forms too)", () =>
      Effect.gen(function*() {
        const events: Array<Event> = [
          { _tag: "Join", user: "a", at: 1, tags: [] },
          { _tag: "Leave", user: "a", reason: null }
        ]
        const wire = Message.encode(Stream.fromIterable(events), Message.msgpack(Event))
        const back = yield* Stream.runCollect(Message.decode(wire, Message.msgpack(Event)))
        assert.deepStrictEqual(Chunk.toArray(back), events)
      }))

    it.effect("encode fails the stream on a value that does not encode", () =>
      Effect.gen(function*() {
        const error = yield* Stream.make({ x: 1 }, { x: NaN }).pipe(
          Message.encode(Message.json(Schema.Struct({ x: Schema.Number }))),
          Stream.runDrain,
          Effect.flip
        )
        assert.strictEqual(error._tag, "MessageEncodeError")
      }))
  })
})
