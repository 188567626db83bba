/**
 * `internal/flatJson`, the `header` codec's fast path of `JSON.parse`: for
 * every text it reads, exactly what `JSON.parse` gives (keys, their order,
 * values, `-0`, the prototype); for every other text `NOT_FLAT`, so that the
 * codec's `JSON.parse` decides (and names the error). Checked against
 * `JSON.parse` itself on generated flat objects, on texts it must leave alone,
 * and on random mutations of both.
 */
import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "fast-check"
import { FlatJson, NOT_FLAT } from "../src/internal/flatJson.js"

const enc = new TextEncoder()

/** What JSON.parse makes of the text, or "throws". */
const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return "throws"
  }
}

/** Same keys in the same order, same prototype, values the same by `Object.is` (so -0 is not 0). */
const assertSame = (actual: unknown, expected: unknown, text: string) => {
  assert.isTrue(typeof expected === "object" && expected !== null && !Array.isArray(expected), `${text}: not an object`)
  const a = actual as Record<string, unknown>
  const e = expected as Record<string, unknown>
  assert.strictEqual(Object.getPrototypeOf(a), Object.getPrototypeOf(e), text)
  assert.deepStrictEqual(Object.keys(a), Object.keys(e), text)
  for (const key of Object.keys(e)) assert.isTrue(Object.is(a[key], e[key]), `${text}: ${key}`)
}

/** Parses `text` where it lies inside other bytes, as a header inside a read. */
const parseInside = (json: FlatJson, text: string, before = "9}", after = "0}") => {
  const bytes = enc.encode(before + text + after)
  const start = enc.encode(before).length
  return json.parse(bytes, start, start + enc.encode(text).length)
}

const space = FastCheck.constantFrom("", "", "", " ", "\t", "\n", "\r\n", "  ")
/** Keys: a few that repeat (so the caches and the compiled shapes are used), and any printable ASCII. */
const key = FastCheck.oneof(
  FastCheck.constantFrom("id", "length", "type", "", "0", "1", "a b", "constructor", "toString", "__proto__"),
  FastCheck.string({ unit: FastCheck.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) })
    .filter((s) => !s.includes("\"") && !s.includes("\\"))
)
/** Values the fast path reads, written as JSON writes them. */
const flatValue = FastCheck.oneof(
  FastCheck.integer({ min: -1000, max: 1000 }).map(String),
  FastCheck.constantFrom("-0", "0", "999999999999999", "-999999999999999", "true", "false", "null"),
  FastCheck.string({ unit: FastCheck.integer({ min: 0x20, max: 0x7f }).map((c) => String.fromCharCode(c)) })
    .filter((s) => !s.includes("\"") && !s.includes("\\"))
    .map((s) => `"${s}"`)
)
/** Values it leaves to JSON.parse (valid or not). */
const otherValue = FastCheck.constantFrom(
    "1.5",
    "1e3",
    "1E-2",
    "-",
    "01",
    "-01",
    "1234567890123456",
    "\"a\\nb\"",
    "\"\\u0041\"",
    "\"é\"",
    "\"\u2028\"",
    "[1]",
    "{}",
    "{\"a\":1}",
    "tru",
    "nul",
    "falsey",
    "\"a\tb\"",
    "\"unterminated"
)
/** Any JSON value, flat or not. */
const anyValue = FastCheck.oneof(flatValue, otherValue, FastCheck.jsonValue().map((v) => JSON.stringify(v)))

const objectText = (members: ReadonlyArray<readonly [string, string, string, string]>, outer: string): string =>
  `${outer}{${members.map(([k, v, s1, s2]) => `${s1}"${k}"${s2}:${s1}${v}${s2}`).join(",")}}${outer}`

const member = (value: FastCheck.Arbitrary<string>) => FastCheck.tuple(key, value, space, space)

describe("internal/flatJson", () => {
  it("reads flat objects exactly as JSON.parse does", () => {
    const json = new FlatJson()
    FastCheck.assert(
      FastCheck.property(FastCheck.array(member(flatValue), { maxLength: 8 }), space, (members, outer) => {
        const text = objectText(members, outer)
        const expected = parsed(text)
        const actual = parseInside(json, text)
        if (members.some(([k]) => k === "__proto__")) return assert.strictEqual(actual, NOT_FLAT)
        assert.notStrictEqual(actual, NOT_FLAT, text)
        assertSame(actual, expected, text)
      }),
      { numRuns: 2000 }
    )
  })

  it("leaves everything else to JSON.parse", () => {
    const json = new FlatJson()
    FastCheck.assert(
      FastCheck.property(
        FastCheck.array(member(flatValue), { maxLength: 4 }),
        member(otherValue),
        FastCheck.nat(),
        (members, other, at) => {
          const all = [...members]
          all.splice(at % (all.length + 1), 0, other)
          const text = objectText(all, "")
          assert.strictEqual(parseInside(json, text), NOT_FLAT, text)
        }
      ),
      { numRuns: 1000 }
    )
  })

  it("never reads what JSON.parse would not: random texts and mutations", () => {
    const json = new FlatJson()
    const mutated = FastCheck.tuple(
      FastCheck.array(member(anyValue), { maxLength: 5 }),
      FastCheck.nat(),
      FastCheck.integer({ min: 0, max: 127 }),
      FastCheck.constantFrom("replace", "delete", "insert", "cut")
    ).map(([members, at, byte, how]) => {
      const text = objectText(members, "")
      const i = at % (text.length + 1)
      const c = String.fromCharCode(byte)
      return how === "replace"
        ? text.slice(0, i) + c + text.slice(i + 1)
        : how === "delete"
        ? text.slice(0, i) + text.slice(i + 1)
        : how === "insert"
        ? text.slice(0, i) + c + text.slice(i)
        : text.slice(0, i)
    })
    FastCheck.assert(
      FastCheck.property(FastCheck.oneof(mutated, FastCheck.string(), FastCheck.jsonValue().map((v) => JSON.stringify(v))), (text) => {
        const actual = parseInside(json, text)
        if (actual === NOT_FLAT) return
        const expected = parsed(text)
        assert.notStrictEqual(expected, "throws", `read ${text}, which JSON.parse refuses`)
        assertSame(actual, expected, text)
      }),
      { numRuns: 3000 }
    )
  })

  it("stops at the end it is given, whatever follows", () => {
    const json = new FlatJson()
    // Each of these would read differently (or at all) with one more byte.
    assert.deepStrictEqual(parseInside(json, `{"a":1}`, "", "2"), { a: 1 })
    assert.deepStrictEqual(parseInside(json, `{"a":tru`, "", "e}"), NOT_FLAT)
    assert.deepStrictEqual(parseInside(json, `{"a":1`, "", "}"), NOT_FLAT)
    assert.deepStrictEqual(parseInside(json, `{"a`, "", `":1}`), NOT_FLAT)
    assert.deepStrictEqual(parseInside(json, `{"a":"x`, "", `"}`), NOT_FLAT)
    assert.deepStrictEqual(parseInside(json, `{`, "", `}`), NOT_FLAT)
    assert.deepStrictEqual(parseInside(json, ``, "", `{}`), NOT_FLAT)
    assert.deepStrictEqual(parseInside(json, `{"a":1} `, "{", ` x`), { a: 1 })
  })

  it("keeps JSON's own rules for the cases an object literal or an assignment would get wrong", () => {
    const json = new FlatJson()
    const read = (text: string) => parseInside(json, text)
    // A repeated key: the last value, at the first one's place.
    assertSame(read(`{"a":1,"b":2,"a":3}`), { a: 3, b: 2 }, "repeated key")
    // Index-like keys come first, in ascending order, as JSON.parse puts them.
    assertSame(read(`{"b":1,"1":2,"0":3}`), JSON.parse(`{"b":1,"1":2,"0":3}`), "index keys")
    assert.isTrue(Object.is((read(`{"n":-0}`) as { n: number }).n, -0))
    // "__proto__" is an own property for JSON.parse; assigned, it would set the prototype.
    assert.strictEqual(read(`{"__proto__":{"polluted":1}}`), NOT_FLAT)
    assert.strictEqual(read(`{"__proto__":1}`), NOT_FLAT)
    assertSame(read(`{"constructor":1,"toString":"x"}`), { constructor: 1, toString: "x" }, "Object.prototype names")
  })

  it("keeps its own copy of a cached key: bytes reused by their owner do not change what a later key reads as", () => {
    const json = new FlatJson()
    // A Buffer, whose slice() is a view: a cache that kept a view would see "axb" turn into "ayb".
    const reused = Buffer.from(`{"axb":1}`)
    assertSame(json.parse(reused, 0, reused.length), { axb: 1 }, "first")
    reused.write(`{"ayb":2}`)
    assertSame(json.parse(reused, 0, reused.length), { ayb: 2 }, "same bytes, rewritten")
    const fresh = Buffer.from(`{"axb":3}`)
    assertSame(json.parse(fresh, 0, fresh.length), { axb: 3 }, "the first key again")
  })

  it("serves shapes that alternate, and more of them than it keeps at hand, each with its own keys in its own order", () => {
    const json = new FlatJson()
    // Same keys in another order, a prefix, one key more, one key changed: none may pass for another.
    const shapes = [
      `{"id":1,"length":16}`,
      `{"length":16,"id":1}`,
      `{"id":1}`,
      `{"id":1,"length":16,"type":"reply"}`,
      `{"id":1,"lengtH":16}`,
      `{"error":"nope","id":1}`,
      `{}`
    ]
    // Two alternating (a request and its reply), then all of them in turn, then backwards, three times over.
    const order = [0, 3, 0, 3, 0, 3, ...shapes.map((_, i) => i), ...shapes.map((_, i) => shapes.length - 1 - i)]
    for (let round = 0; round < 3; round++) {
      for (const i of order) {
        const text = shapes[i]!.replace("1", String(round * 100 + i))
        assertSame(parseInside(json, text), JSON.parse(text), text)
      }
    }
  })

  it("reads any number of key sequences (compiled up to a bound, then assigned) and keys longer than its cache", () => {
    const json = new FlatJson()
    const long = "k".repeat(100)
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 100; i++) {
        const text = `{"f${i}":${i},"${long}":"v","g${i % 7}":true}`
        assertSame(parseInside(json, text), JSON.parse(text), text)
      }
    }
    const many = `{${Array.from({ length: 500 }, (_, i) => `"k${i}":${i}`).join(",")}}`
    assertSame(parseInside(json, many), JSON.parse(many), "500 keys")
  })
})
