/**
 * Message formats compile their Schemas with Schema's JIT (src/internal/schemaJit.ts).
 * The compiled path must agree with Schema's interpreter on every input: the
 * same value (same keys, same order) or the same error, word for word.
 * Each Schema is built twice from scratch (no AST shared with checks, so the
 * interpreter's copy never meets a compiled node): one goes through the
 * format, the other stays interpreted as the reference.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Path from "node:path"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { ParseOptions } from "effect/SchemaAST"
import * as Msgpackr from "msgpackr"
import * as Message from "../src/Message.js"
import { functionsMadeBy } from "./helpers/functionCalls.js"

/** Schemas as users write them for messages; each call builds new ASTs. */
const schemas = {
  // The bench's message: three plain fields.
  "plain Struct": () => Schema.Struct({ seq: Schema.Number, conn: Schema.Number, pad: Schema.String }),
  "tagged union with checks, optional keys, null, arrays": () =>
    Schema.Union([
      Schema.TaggedStruct("Join", {
        user: Schema.String.check(Schema.isMinLength(1)),
        at: Schema.Number.check(Schema.isInt()),
        tags: Schema.Array(Schema.String)
      }),
      Schema.TaggedStruct("Say", {
        user: Schema.String,
        text: Schema.String,
        score: Schema.optionalKey(Schema.Number.check(Schema.isFinite()))
      }),
      Schema.TaggedStruct("Leave", { user: Schema.String, reason: Schema.NullOr(Schema.String) })
    ]),
  "nested Structs, literals, booleans": () =>
    Schema.Struct({
      kind: Schema.Literals(["get", "put"]),
      ok: Schema.Boolean,
      items: Schema.Array(Schema.Struct({ key: Schema.String, size: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)) })),
      meta: Schema.optionalKey(Schema.Struct({ trace: Schema.NullOr(Schema.String) }))
    }),
  "a field with an encoding": () =>
    Schema.Struct({ id: Schema.NumberFromString.check(Schema.isInt()), name: Schema.String }),
  // Declarations and transformations whose encoded side is not plain JSON data (msgpack carries it).
  "bigints, dates, bytes, nested arrays": () =>
    Schema.Struct({
      id: Schema.BigIntFromString,
      at: Schema.DateFromString,
      body: Schema.Uint8Array,
      meta: Schema.Struct({ a: Schema.Boolean, b: Schema.Array(Schema.Number.check(Schema.isInt())) })
    })
} as const

const optionsCases: ReadonlyArray<readonly [string, ParseOptions | undefined]> = [
  ["default options", undefined],
  ["onExcessProperty: error", { onExcessProperty: "error" }],
  ["errors: all", { errors: "all" }]
]

const Mutation = Schema.Literals(["valid", "replace", "delete", "extra", "whole"])
const KEYS = ["seq", "conn", "pad", "_tag", "user", "at", "tags", "score", "reason", "kind", "ok", "items", "meta", "id", "name"]

/** A valid encoded value, or one spoiled in one place: a field replaced, removed or added, or anything at all. */
const spoil = (encoded: unknown, mutation: typeof Mutation.Type, noise: unknown, pick: number): unknown => {
  if (mutation === "whole") return noise
  if (mutation === "valid" || typeof encoded !== "object" || encoded === null) return encoded
  const copy: Record<string, unknown> = { ...(encoded as Record<string, unknown>) }
  const keys = Object.keys(copy)
  const key = keys.length > 0 ? keys[pick % keys.length]! : KEYS[pick % KEYS.length]!
  if (mutation === "replace") copy[key] = noise
  else if (mutation === "delete") delete copy[key]
  else copy[KEYS[pick % KEYS.length]! + "_extra"] = noise
  return copy
}

/** A value's keys, in order, at every depth (bigints written out). */
const keysInOrder = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? `${v}n` : v))

/** The same outcome: equal values with keys in the same order, or errors with the same text. */
const sameOutcome = (actual: Result.Result<unknown, { readonly message: string }>, expected: Result.Result<unknown, { readonly message: string }>) => {
  if (Result.isSuccess(expected)) {
    assert.isTrue(Result.isSuccess(actual), Result.isFailure(actual) ? actual.failure.message : "")
    if (Result.isSuccess(actual)) {
      assert.deepStrictEqual(actual.success, expected.success)
      assert.strictEqual(keysInOrder(actual.success), keysInOrder(expected.success))
    }
  } else {
    assert.isTrue(Result.isFailure(actual), "the compiled path accepted what Schema's interpreter rejects")
    if (Result.isFailure(actual)) assert.strictEqual(actual.failure.message, expected.failure.message)
  }
}

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))

describe("Message formats compile their Schemas", () => {
  it("a format decodes and encodes through Schema's generated code", () => {
    // Schema's JIT makes its decoders with `new Function`; count the calls while a format is made and used.
    const made = functionsMadeBy(() => {
      const format = Message.json(schemas["plain Struct"]())
      const frame = Result.getOrThrow(format.encode({ seq: 1, conn: 2, pad: "x" }))
      assert.deepStrictEqual(Result.getOrThrow(format.decode(frame)), { seq: 1, conn: 2, pad: "x" })
    })
    assert.isAbove(made, 0)
  })

  it("where code generation is forbidden, formats run on the interpreter with the same results", () => {
    // The same decodes and encodes in a Node that refuses `new Function` (as a hardened runtime may).
    const message = Path.resolve(import.meta.dirname, "../dist/src/Message.js")
    const script = `
      import * as Schema from "effect/Schema"
      import * as Message from ${JSON.stringify(message)}
      const S = Schema.Struct({ seq: Schema.Number, conn: Schema.Number.check(Schema.isInt()), pad: Schema.String })
      const f = Message.json(S)
      const text = (r) => r._tag === "Success" ? JSON.stringify(r.success) : r.failure.message
      const bytes = (s) => new TextEncoder().encode(s)
      console.log(JSON.stringify([
        text(f.decode(bytes('{"seq":1,"conn":2,"pad":"x","extra":0}'))),
        text(f.decode(bytes('{"seq":1,"conn":2.5,"pad":"x"}'))),
        text(f.decode(bytes('[1]'))),
        f.encode({ seq: 1, conn: 2, pad: "x" })._tag,
        text(f.encode({ seq: 1, conn: "2", pad: "x" }))
      ]))`
    const run = (flags: ReadonlyArray<string>) =>
      JSON.parse(
        execFileSync(process.execPath, [...flags, "--input-type=module", "-e", script], {
          cwd: Path.resolve(import.meta.dirname, ".."),
          encoding: "utf8",
          timeout: 30_000
        })
      ) as Array<string>
    const forbidden = run(["--disallow-code-generation-from-strings"])
    assert.deepStrictEqual(forbidden, run([]))
    assert.strictEqual(forbidden[0], `{"seq":1,"conn":2,"pad":"x"}`)
    assert.include(forbidden[1], "Expected an integer")
    assert.strictEqual(forbidden[3], "Success")
  })

  for (const [name, make] of Object.entries(schemas)) {
    for (const [label, parseOptions] of optionsCases) {
      describe(`${name}, ${label}`, () => {
        const compiled = make() as Schema.Codec<unknown, unknown>
        const reference = make() as Schema.Codec<unknown, unknown>
        const options = { reportInput: true, ...parseOptions }
        const json = Message.json(compiled, { parseOptions })
        const msgpack = Message.msgpack(compiled, { parseOptions })
        const decodeCompiled = Schema.decodeUnknownResult(compiled, options)
        const encodeCompiled = Schema.encodeUnknownResult(compiled, options)
        const decodeReference = Schema.decodeUnknownResult(reference, options)
        const encodeReference = Schema.encodeUnknownResult(reference, options)

        it.prop(
          "decoding: the same value or the same error as the interpreter",
          { value: reference, mutation: Mutation, noise: Schema.Json, pick: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 99 })) },
          ({ mutation, noise, pick, value }) => {
            const encoded = Result.getOrThrow(encodeReference(value))
            const input = spoil(encoded, mutation, noise, pick)
            const expected = decodeReference(input)
            sameOutcome(decodeCompiled(input), expected)
            // Through the formats: JSON text (what JSON can hold of `input`) and MessagePack.
            const text = JSON.stringify(input)
            if (text !== undefined) {
              const viaJson = decodeReference(JSON.parse(text))
              sameOutcome(Result.mapError(json.decode(bytes(input)), (e) => e.cause), viaJson)
            }
            sameOutcome(Result.mapError(msgpack.decode(Msgpackr.encode(input)), (e) => e.cause), decodeReference(Msgpackr.decode(Msgpackr.encode(input))))
          },
          { arbitrary: { runs: 150 } }
        )

        it.prop(
          "encoding: the same bytes or the same error as the interpreter",
          { value: reference, mutation: Mutation, noise: Schema.Json, pick: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 99 })) },
          ({ mutation, noise, pick, value }) => {
            // Values of the Type side, spoiled the same ways: a handler may return anything at run time.
            const input = spoil(value, mutation, noise, pick)
            const expected = encodeReference(input)
            sameOutcome(encodeCompiled(input), expected)
            const viaJson = json.encode(input)
            if (Result.isSuccess(expected)) {
              const text = JSON.stringify(expected.success)
              if (Result.isSuccess(viaJson)) assert.strictEqual(new TextDecoder().decode(viaJson.success), text)
              // Only what JSON cannot write (NaN, Infinity) fails after the Schema accepted it.
              else assert.include(viaJson.failure.message, "no JSON representation")
              const viaMsgpack = msgpack.encode(input)
              assert.deepStrictEqual(Array.from(Result.getOrThrow(viaMsgpack)), Array.from(Msgpackr.encode(expected.success)))
            } else {
              assert.isTrue(Result.isFailure(viaJson))
              if (Result.isFailure(viaJson)) assert.strictEqual(viaJson.failure.cause.message, expected.failure.message)
            }
          },
          { arbitrary: { runs: 150 } }
        )
      })
    }
  }
})
