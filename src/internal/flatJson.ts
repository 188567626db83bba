/**
 * `JSON.parse` of UTF-8 bytes for the common small header, read straight
 * from the bytes: one flat object whose keys are plain ASCII and whose values
 * are plain ASCII strings, integers of up to 15 digits, `true`, `false` or
 * `null`, as in `{"id":7,"length":16}`. For such a text it returns exactly
 * what `JSON.parse(new TextDecoder().decode(bytes))` returns (the same keys
 * in the same order, the same values, `-0` included); for anything else
 * (nesting, escapes, fractions, non-ASCII, a syntax error) it returns
 * {@link NOT_FLAT} and the caller runs `TextDecoder` and `JSON.parse`, which
 * also say what is wrong.
 *
 * It is the `header` codec's per-frame cost: with a 16-byte body, decoding
 * the header's text (`TextDecoder`) and `JSON.parse` were most of a frame's
 * time; this reads a header like `{"id":123456,"length":16}` in about a fifth
 * of their time (55 against 265 ns on a busy 2-core machine). Keys
 * repeat from frame to frame, so their strings are kept (a small cache,
 * overwritten, never growing); objects of a key sequence seen before are made
 * by one object literal (compiled once per sequence, at most
 * {@link MAX_SHAPES} of them, like Schema's own JIT; where `new Function` is
 * forbidden, by plain assignments).
 *
 * @since 0.2.0
 * @internal
 */

/** What {@link FlatJson.parse} returns for a text it does not read (the caller parses it the usual way). */
export const NOT_FLAT: unique symbol = Symbol("effect-wire/flatJson/notFlat")

/** Longest number of digits read here: below 2^53, where `n * 10 + d` is exact. */
const MAX_DIGITS = 15
/** Keys up to this length are cached. */
const MAX_CACHED_KEY = 32
/** Cached keys (direct-mapped: a new key overwrites the slot's old one). */
const KEY_SLOTS = 64
/** Key sequences with a compiled object literal; later ones use plain assignments. */
const MAX_SHAPES = 32
/** The last key sequences made, compared key by key (cached keys are the same strings) before any lookup. */
const RECENT_SHAPES = 4
/** Objects with more keys than this are made by plain assignments: a header is small, a peer's 10,000-key one is not worth compiling. */
const MAX_SHAPE_KEYS = 64

const latin1Slice: ((this: Uint8Array, start: number, end: number) => string) | undefined =
  typeof Buffer === "function" && typeof (Buffer.prototype as any).latin1Slice === "function"
    ? (Buffer.prototype as any).latin1Slice
    : undefined

const asciiDecoder = new TextDecoder("utf-8", { ignoreBOM: true })

/** `bytes[start..end]`, all ASCII, as a string. */
const ascii = (bytes: Uint8Array, start: number, end: number): string =>
  latin1Slice !== undefined
    ? latin1Slice.call(bytes, start, end)
    : asciiDecoder.decode(bytes.subarray(start, end))

interface CachedKey {
  readonly bytes: Uint8Array
  readonly text: string
}

/** A compiled object literal for one key sequence. */
type Make = (values: ReadonlyArray<unknown>) => Record<string, unknown>

/** The one parameter of the literals it compiles (tests tell these functions from Schema's JIT's by it). */
export const LITERAL_PARAMETER = "flatJsonValues"

let codegen: boolean | undefined

const compile = (keys: ReadonlyArray<string>): Make | undefined => {
  if (codegen === false) return undefined
  try {
    // Keys are printable ASCII without `"` or `\` (and never `__proto__`): JSON.stringify makes each a plain string literal.
    const body = `return {${keys.map((key, i) => `${JSON.stringify(key)}:${LITERAL_PARAMETER}[${i}]`).join(",")}}`
    const make = new Function(LITERAL_PARAMETER, body) as Make
    codegen = true
    return make
  } catch {
    codegen = false
    return undefined
  }
}

const assign = (keys: ReadonlyArray<string>, values: ReadonlyArray<unknown>, n: number): Record<string, unknown> => {
  const object: Record<string, unknown> = {}
  for (let i = 0; i < n; i++) object[keys[i]!] = values[i]
  return object
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

/** The first position from `p` on that is not JSON whitespace (`end` if none). */
const skipSpace = (bytes: Uint8Array, p: number, end: number): number => {
  while (p < end && isSpace(bytes[p]!)) p++
  return p
}

/**
 * A reader of flat JSON objects; it keeps its caches between calls, so one
 * per codec serves every connection. Not re-entrant (it is synchronous).
 */
export class FlatJson {
  private readonly slots: Array<CachedKey | undefined> = new Array(KEY_SLOTS).fill(undefined)
  private readonly keys: Array<string> = []
  private readonly values: Array<unknown> = []
  /** The last {@link RECENT_SHAPES} key sequences made, and their literals; `next` is replaced next. */
  private readonly recent: Array<{ readonly keys: ReadonlyArray<string>; readonly make: Make }> = []
  private next = 0
  private readonly shapes = new Map<string, Make>()

  /** The key in `bytes[start..end]` (printable ASCII), from the cache when it was seen before. */
  private key(bytes: Uint8Array, start: number, end: number): string {
    const n = end - start
    if (n === 0 || n > MAX_CACHED_KEY) return ascii(bytes, start, end)
    const slot = (n * 31 + bytes[start]! * 7 + bytes[end - 1]!) & (KEY_SLOTS - 1)
    const cached = this.slots[slot]
    if (cached !== undefined && cached.bytes.length === n) {
      const known = cached.bytes
      let i = 0
      while (i < n && known[i] === bytes[start + i]) i++
      if (i === n) return cached.text
    }
    const text = ascii(bytes, start, end)
    // A copy: a Buffer's slice() is a view, and the reads it views may be reused by their owner.
    const copy = new Uint8Array(n)
    copy.set(bytes.subarray(start, end))
    this.slots[slot] = { bytes: copy, text }
    return text
  }

  /** The object made of the `n` keys and values just read. */
  private make(n: number): Record<string, unknown> {
    const keys = this.keys
    // A stream's headers come in a few shapes (a request, its reply, an error), often alternating.
    const recent = this.recent
    for (let r = 0; r < recent.length; r++) {
      const shape = recent[r]!
      const known = shape.keys
      if (known.length !== n) continue
      let i = 0
      while (i < n && known[i] === keys[i]) i++
      if (i === n) return shape.make(this.values)
    }
    // Keys hold no NUL, and the count tells `{}` from `{"":0}`.
    const id = `${n}:${keys.slice(0, n).join("\u0000")}`
    let make = this.shapes.get(id)
    if (make === undefined && this.shapes.size < MAX_SHAPES && n <= MAX_SHAPE_KEYS) {
      make = compile(keys.slice(0, n))
      if (make !== undefined) this.shapes.set(id, make)
    }
    if (make === undefined) return assign(keys, this.values, n)
    recent[this.next] = { keys: keys.slice(0, n), make }
    this.next = (this.next + 1) % RECENT_SHAPES
    return make(this.values)
  }

  /**
   * `JSON.parse` of the UTF-8 text in `bytes[start..end]` when it is a flat
   * object this reads, else {@link NOT_FLAT}.
   *
   * ```ts
   * const json = new FlatJson()
   * json.parse(new TextEncoder().encode(`{"id":7,"length":16}`), 0, 20) // { id: 7, length: 16 }
   * ```
   */
  parse(bytes: Uint8Array, start: number, end: number): Record<string, unknown> | typeof NOT_FLAT {
    let p = skipSpace(bytes, start, end)
    if (p === end || bytes[p] !== 0x7b) return NOT_FLAT
    p = skipSpace(bytes, p + 1, end)
    if (p === end) return NOT_FLAT
    const keys = this.keys
    const values = this.values
    let n = 0
    if (bytes[p] === 0x7d) {
      p++
    } else {
      for (;;) {
        // A key: printable ASCII, no escapes.
        if (bytes[p] !== 0x22) return NOT_FLAT
        const keyStart = ++p
        let c = 0
        while (p < end && (c = bytes[p]!) !== 0x22) {
          if (c < 0x20 || c === 0x5c || c >= 0x80) return NOT_FLAT
          p++
        }
        if (p === end) return NOT_FLAT
        const key = this.key(bytes, keyStart, p)
        // An own property "__proto__" cannot be made by assignment or a literal.
        if (key === "__proto__") return NOT_FLAT
        p = skipSpace(bytes, p + 1, end)
        if (p === end || bytes[p] !== 0x3a) return NOT_FLAT
        p = skipSpace(bytes, p + 1, end)
        if (p === end) return NOT_FLAT
        c = bytes[p]!
        let value: unknown
        if (c === 0x22) {
          const valueStart = ++p
          while (p < end && (c = bytes[p]!) !== 0x22) {
            if (c < 0x20 || c === 0x5c || c >= 0x80) return NOT_FLAT
            p++
          }
          if (p === end) return NOT_FLAT
          value = ascii(bytes, valueStart, p)
          p++
        } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
          const negative = c === 0x2d
          if (negative) p++
          const digits = p
          let v = 0
          while (p < end && (c = bytes[p]!) >= 0x30 && c <= 0x39) {
            v = v * 10 + (c - 0x30)
            p++
          }
          const count = p - digits
          // No digits, a leading zero (invalid JSON), or too many to add up exactly: JSON.parse decides.
          if (count === 0 || count > MAX_DIGITS || (count > 1 && bytes[digits] === 0x30)) return NOT_FLAT
          // A fraction or an exponent: JSON.parse rounds it.
          if (p < end && (c === 0x2e || c === 0x65 || c === 0x45)) return NOT_FLAT
          value = negative ? -v : v
        } else if (c === 0x74 && end - p >= 4 && bytes[p + 1] === 0x72 && bytes[p + 2] === 0x75 && bytes[p + 3] === 0x65) {
          value = true
          p += 4
        } else if (
          c === 0x66 && end - p >= 5 && bytes[p + 1] === 0x61 && bytes[p + 2] === 0x6c && bytes[p + 3] === 0x73 &&
          bytes[p + 4] === 0x65
        ) {
          value = false
          p += 5
        } else if (c === 0x6e && end - p >= 4 && bytes[p + 1] === 0x75 && bytes[p + 2] === 0x6c && bytes[p + 3] === 0x6c) {
          value = null
          p += 4
        } else {
          return NOT_FLAT
        }
        keys[n] = key
        values[n] = value
        n++
        p = skipSpace(bytes, p, end)
        if (p === end) return NOT_FLAT
        c = bytes[p]!
        p++
        if (c === 0x7d) break
        if (c !== 0x2c) return NOT_FLAT
        p = skipSpace(bytes, p, end)
        if (p === end) return NOT_FLAT
      }
    }
    if (skipSpace(bytes, p, end) !== end) return NOT_FLAT
    const object = this.make(n)
    // Let go of the values (they may be long strings) until the next parse.
    for (let i = 0; i < n; i++) values[i] = undefined
    return object
  }
}
