/**
 * The `header` codec compiles its header Schema with Schema's JIT
 * (src/internal/schemaJit.ts). Whatever a peer sends as a header, the codec
 * must answer as Schema's interpreter does: the same header, or a
 * MalformedFrame quoting the same Schema error. The reference Schema is a
 * second copy built from fresh ASTs, never compiled.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Framing from "effect-wire/Framing"
import { LITERAL_PARAMETER } from "../src/internal/flatJson.js"
import { functionsMadeBy } from "./helpers/functionCalls.js"

const makeOutput = () =>
  Schema.Struct({
    exitCode: Schema.Number.check(Schema.isInt()),
    stdoutLength: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
    stderrLength: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
    command: Schema.optionalKey(Schema.NullOr(Schema.String))
  })

const enc = new TextEncoder()
const u32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
const wire = (json: string) => {
  const header = enc.encode(json)
  return Uint8Array.from([...u32(header.length), ...header])
}

const Mutation = Schema.Literals(["valid", "replace", "delete", "extra", "whole"])
const KEYS = ["exitCode", "stdoutLength", "stderrLength", "command"]

const spoil = (value: Record<string, unknown>, mutation: typeof Mutation.Type, noise: unknown, pick: number): unknown => {
  if (mutation === "whole") return noise
  if (mutation === "valid") return value
  const copy: Record<string, unknown> = { ...value }
  const key = KEYS[pick % KEYS.length]!
  if (mutation === "replace") copy[key] = noise
  else if (mutation === "delete") delete copy[key]
  else copy[`${key}_extra`] = noise
  return copy
}

describe("Framing.header compiles its header Schema", () => {
  it("decodes headers through Schema's generated code", () => {
    // The header's flat JSON is read by internal/flatJson, which compiles an object literal too: those are not counted.
    const made = functionsMadeBy(() => {
      const codec = Framing.header({ header: makeOutput(), bodyLength: (h) => h.stdoutLength + h.stderrLength })
      const frames = Result.getOrThrow(
        Framing.decodeAll(codec, wire(`{"exitCode":0,"stdoutLength":0,"stderrLength":0}`))
      )
      assert.deepStrictEqual(frames[0]!.header, { exitCode: 0, stdoutLength: 0, stderrLength: 0 })
    }, (args) => args[0] !== LITERAL_PARAMETER)
    assert.isAbove(made, 0)
  })

  const compiled = makeOutput()
  const reference = makeOutput()
  const codec = Framing.header({ header: compiled, bodyLength: (h) => h.stdoutLength + h.stderrLength })
  const decodeReference = Schema.decodeUnknownResult(reference)

  it.prop(
    "any JSON header: the same header, or the same Schema error, as the interpreter",
    {
      value: reference,
      mutation: Mutation,
      noise: Schema.Json,
      pick: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 99 }))
    },
    ({ mutation, noise, pick, value }) => {
      // Bodies stay empty: the lengths say 0 (a body would only follow the header).
      const header = spoil({ ...value, stdoutLength: 0, stderrLength: 0 }, mutation, noise, pick)
      const json = JSON.stringify(header)
      const expected = decodeReference(JSON.parse(json))
      const decoder = codec.decoder()
      const out: Array<Framing.HeaderFrame<typeof compiled.Type>> = []
      const error = decoder.push(wire(json), out)
      if (Result.isSuccess(expected)) {
        const lengths = expected.success.stdoutLength + expected.success.stderrLength
        if (lengths === 0) {
          assert.isUndefined(error)
          assert.deepStrictEqual(out.map((f) => f.header), [expected.success])
          assert.strictEqual(JSON.stringify(out[0]!.header), JSON.stringify(expected.success))
        } else {
          // A spoiled length asks for a body that never comes.
          assert.isUndefined(error)
          assert.strictEqual(out.length, 0)
        }
      } else {
        assert.strictEqual(error?._tag, "MalformedFrame")
        if (error?._tag === "MalformedFrame") {
          assert.strictEqual(error.reason, `the header does not match its schema: ${expected.failure.message}`)
        }
      }
    },
    { arbitrary: { runs: 300 } }
  )
})
