import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"
import * as Stream from "effect/Stream"
import * as Msgpackr from "msgpackr"
import * as Message from "../src/Message.js"

const bytes = (s: string) => new TextEncoder().encode(s)

// Well-formed strings: MessagePack strings are UTF-8, which cannot carry the lone surrogates that Effect 4's
// string arbitrary makes. With a code point check the arbitrary draws ASCII and astral characters instead.
const Text = Schema.String.check(Schema.isMinCodePoints(0))

const Event = Schema.Union([
  Schema.TaggedStruct("Join", { user: Text, at: Schema.Int, tags: Schema.Array(Text) }),
  Schema.TaggedStruct("Say", {
    user: Text,
    text: Text,
    // optionalKey (exact): JSON has no `undefined`, so `{ score: undefined }` would come back as `{}`.
    score: Schema.optionalKey(Schema.Finite)
  }),
  Schema.TaggedStruct("Leave", { user: Text, reason: Schema.NullOr(Text) })
])
type Event = typeof Event.Type

// Types whose encoded side is not plain JSON data: a Date (as a string), a bigint (as a string), raw bytes.
const Blob = Schema.Struct({
  id: Schema.BigIntFromString,
  at: Schema.DateFromString,
  body: Schema.Uint8Array,
  meta: Schema.Struct({ a: Schema.Boolean, b: Schema.Array(Schema.Int) })
})

const Request = Schema.Struct({ id: Schema.Number, method: Schema.String })

const isEvent = Schema.toEquivalence(Event)
const isBlob = Schema.toEquivalence(Blob)

describe("Message", () => {
  describe("round trips", () => {
    it.prop("json: decode(encode(a)) == a", { event: Event }, ({ event }) => {
      const format = Message.json(Event)
      const frame = Result.getOrThrow(format.encode(event))
      assert.isTrue(isEvent(Result.getOrThrow(format.decode(frame)), event))
    })

    it.prop("msgpack: decode(encode(a)) == a", { event: Event }, ({ event }) => {
      const format = Message.msgpack(Event)
      const frame = Result.getOrThrow(format.encode(event))
      assert.isTrue(isEvent(Result.getOrThrow(format.decode(frame)), event))
    })

    it.prop("msgpack carries bytes, dates and bigints", { blob: Blob }, ({ blob }) => {
      const format = Message.msgpack(Blob)
      const decoded = Result.getOrThrow(format.decode(Result.getOrThrow(format.encode(blob))))
      assert.isTrue(isBlob(decoded, blob))
      assert.deepStrictEqual(Array.from(decoded.body), Array.from(blob.body))
    }, { arbitrary: { runs: 50 } })

    it("the wire format is the encoded form: bigints and dates as strings, bytes as MessagePack bin", () => {
      const Stamp = Schema.Struct({ id: Schema.BigIntFromString, at: Schema.DateFromString, body: Schema.Uint8Array })
      const stamp = { id: 9007199254740993n, at: new Date(0), body: new Uint8Array([1, 2, 3]) }
      const str = (s: string) => [0xa0 | s.length, ...bytes(s)]
      // map 16 of 3 (msgpackr's default), fixstr keys and values, bin 8 of 3 bytes: what Effect 3's MsgPack wrote.
      const id = str("9007199254740993")
      const at = str("1970-01-01T00:00:00.000Z")
      const wire = [0xde, 0, 3, ...str("id"), ...id, ...str("at"), ...at, ...str("body"), 0xc4, 3, 1, 2, 3]
      const frame = Result.getOrThrow(Message.msgpack(Stamp).encode(stamp))
      assert.deepStrictEqual(Array.from(frame), wire)
      assert.deepStrictEqual(Msgpackr.decode(frame), {
        id: "9007199254740993",
        at: "1970-01-01T00:00:00.000Z",
        body: Buffer.from([1, 2, 3])
      })
      const JsonStamp = Schema.Struct({ id: Schema.BigIntFromString, at: Schema.DateFromString })
      const json = Result.getOrThrow(Message.json(JsonStamp).encode({ id: stamp.id, at: stamp.at }))
      const text = new TextDecoder().decode(json)
      assert.strictEqual(text, `{"id":"9007199254740993","at":"1970-01-01T00:00:00.000Z"}`)
    })

    it("json writes the Schema's encoded form as UTF-8", () => {
      const frame = Result.getOrThrow(Message.json(Event).encode({ _tag: "Say", user: "zoë", text: "hi" }))
      assert.strictEqual(new TextDecoder().decode(frame), `{"_tag":"Say","user":"zoë","text":"hi"}`)
    })
  })

  describe("the direct path (parse, then the Schema) agrees with the composed format.schema", () => {
    const formats = { json: Message.json(Event), msgpack: Message.msgpack(Event) }
    for (const [name, format] of Object.entries(formats)) {
      const viaSchema = Schema.decodeUnknownResult(format.schema, { reportInput: true })
      const encodeViaSchema = Schema.encodeResult(format.schema, { reportInput: true })

      it.prop(`${name}: same values both ways`, { event: Event }, ({ event }) => {
        const frame = Result.getOrThrow(format.encode(event))
        assert.deepStrictEqual(Array.from(frame), Array.from(Result.getOrThrow(encodeViaSchema(event))))
        assert.isTrue(isEvent(Result.getOrThrow(format.decode(frame)), Result.getOrThrow(viaSchema(frame))))
      })

      it(`${name}: the same errors, word for word`, () => {
        const wire = name === "json" ? (v: unknown) => bytes(JSON.stringify(v)) : (v: unknown) => Msgpackr.encode(v)
        const frames = [
          wire({ _tag: "Say", user: "a", text: 1 }),
          wire({ _tag: "Nope" }),
          wire("not an object"),
          new Uint8Array([0xc1]),
          new Uint8Array([])
        ]
        for (const frame of frames) {
          const direct = format.decode(frame)
          const composed = viaSchema(frame)
          assert.isTrue(Result.isFailure(direct) && Result.isFailure(composed))
          if (Result.isFailure(direct) && Result.isFailure(composed)) {
            assert.strictEqual(direct.failure.cause.message, composed.failure.message)
          }
        }
        const bad = { _tag: "Say", user: "a", text: "b", score: NaN } as unknown as Event
        const direct = format.encode(bad)
        const composed = encodeViaSchema(bad)
        assert.strictEqual(Result.isFailure(direct), Result.isFailure(composed))
        if (Result.isFailure(direct) && Result.isFailure(composed)) {
          assert.strictEqual(direct.failure.cause.message, composed.failure.message)
        }
      })
    }
  })

  describe("malformed frames", () => {
    const expectDecodeError = (result: Result.Result<unknown, Message.MessageDecodeError>) => {
      assert.isTrue(Result.isFailure(result))
      const error = Result.getFailure(result).pipe((o) => o._tag === "Some" ? o.value : assert.fail("expected Failure"))
      assert.strictEqual(error._tag, "MessageDecodeError")
      assert.isTrue(Schema.isSchemaError(error.cause))
      return error
    }

    it("not JSON: the syntax error is inside the SchemaError", () => {
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

    it("valid JSON of the wrong shape: the SchemaError says where", () => {
      const error = expectDecodeError(Message.json(Request).decode(bytes(`{"id":"7","method":"ping"}`)))
      const issues = SchemaIssue.makeFormatterStandardSchemaV1()(error.cause.issue).issues
      assert.deepStrictEqual(issues.map((i) => i.path), [["id"]])
      assert.include(error.message, `Expected number, got "7"`)
    })

    it("parseOptions reach Schema", () => {
      const strict = Message.json(Request, { parseOptions: { onExcessProperty: "error" } })
      expectDecodeError(strict.decode(bytes(`{"id":1,"method":"ping","extra":true}`)))
      assert.isTrue(Result.isSuccess(Message.json(Request).decode(bytes(`{"id":1,"method":"ping","extra":true}`))))
    })

    it("msgpack: truncated, trailing bytes, invalid and wrong shape are all MessageDecodeError", () => {
      const format = Message.msgpack(Request)
      const good = Result.getOrThrow(format.encode({ id: 1, method: "ping" }))
      expectDecodeError(format.decode(good.subarray(0, good.length - 2)))
      const trailing = new Uint8Array(good.length + 1)
      trailing.set(good)
      expectDecodeError(format.decode(trailing))
      expectDecodeError(format.decode(new Uint8Array([0xc1])))
      expectDecodeError(format.decode(new Uint8Array([])))
      const wrong = Result.getOrThrow(Message.msgpack(Schema.Struct({ id: Schema.String })).encode({ id: "x" }))
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
      assert.isTrue(Result.isFailure(result))
      if (Result.isFailure(result)) {
        assert.strictEqual(result.failure._tag, "MessageEncodeError")
        assert.isTrue(Schema.isSchemaError(result.failure.cause))
        assert.include(result.failure.message, "NaN has no JSON representation")
        assert.deepStrictEqual(result.failure.value, { x: NaN })
      }
      assert.isTrue(Result.isFailure(format.encode({ x: Infinity })))
      // msgpack has floats for them
      assert.isTrue(Result.isSuccess(Message.msgpack(Schema.Struct({ x: Schema.Number })).encode({ x: NaN })))
    })

    it("a bigint in JSON fails; a value the Schema rejects fails", () => {
      const big = Message.json(Schema.BigInt).encode(1n)
      assert.isTrue(Result.isFailure(big) && big.failure.message.includes("BigInt"))
      const notInt = Message.json(Schema.Int).encode(1.5)
      assert.isTrue(Result.isFailure(notInt) && notInt.failure.message.includes("Expected an integer"))
      assert.isTrue(Result.isFailure(Message.msgpack(Schema.Int).encode(1.5)))
    })
  })

  describe("custom formats", () => {
    it("make turns any Schema from bytes into a format", () => {
      const Utf8 = Schema.Uint8Array.pipe(Schema.decodeTo(
        Schema.String,
        SchemaTransformation.transform<string, Uint8Array>({
          decode: (b) => new TextDecoder().decode(b),
          encode: (s) => new TextEncoder().encode(s)
        })
      ))
      // v4 NumberFromString decodes "x" to NaN; FiniteFromString rejects it, as v3 NumberFromString did.
      const format = Message.make("utf8", Utf8.pipe(Schema.decodeTo(Schema.FiniteFromString)))
      assert.strictEqual(format.name, "utf8")
      assert.isTrue(Message.isFormat(format))
      assert.strictEqual(Result.getOrThrow(format.decode(bytes("42"))), 42)
      const error = format.decode(bytes("x"))
      assert.isTrue(Result.isFailure(error) && error.failure.message.startsWith("cannot decode a utf8 message of 1 bytes"))
    })
  })

  describe("stream pipes", () => {
    const format = Message.json(Request)
    const frames = (...texts: Array<string>) => Stream.fromIterable(texts.map(bytes))

    it.effect("decode: many frames in one chunk become many messages, in order", () =>
      Effect.gen(function*() {
        const input = Array.from({ length: 100 }, (_, i) => `{"id":${i},"method":"m${i}"}`)
        const out = yield* frames(...input).pipe(Stream.rechunk(37), Message.decode(format), Stream.runCollect)
        assert.deepStrictEqual(out, Array.from({ length: 100 }, (_, i) => ({ id: i, method: `m${i}` })))
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

    it.effect("decodeResult keeps going past a bad frame", () =>
      Effect.gen(function*() {
        const out = yield* frames(`{"id":1,"method":"a"}`, `nope`, `{"id":3,"method":"c"}`).pipe(
          Message.decodeResult(format),
          Stream.map(Result.match({ onFailure: (e) => e._tag, onSuccess: (r) => r.id })),
          Stream.runCollect
        )
        assert.deepStrictEqual(out, [1, "MessageDecodeError", 3])
      }))

    it.effect("encode then decode (data-first forms too)", () =>
      Effect.gen(function*() {
        const events: Array<Event> = [
          { _tag: "Join", user: "a", at: 1, tags: [] },
          { _tag: "Leave", user: "a", reason: null }
        ]
        const wire = Message.encode(Stream.fromIterable(events), Message.msgpack(Event))
        const back = yield* Stream.runCollect(Message.decode(wire, Message.msgpack(Event)))
        assert.deepStrictEqual(back, events)
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
