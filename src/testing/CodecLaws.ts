/**
 * Property laws every framing codec must obey, for checking your own codecs
 * (and ours) with fast-check's `fc.assert` inside any test (`it` from
 * `@effect/vitest` included). A law is a name, a fast-check arbitrary of
 * inputs and a `check` that throws a {@link LawViolation} when the codec
 * breaks it:
 *
 * - round trip: for every list of frames and every way of splitting and
 *   merging the bytes (one byte at a time, everything in one chunk, random
 *   splits with empty chunks), decoding the encoding gives the frames back,
 *   through the raw decoder and through the `Stream` pipes alike;
 * - end of input: bytes of an unfinished frame at the end are an
 *   `IncompleteFrame` saying how many;
 * - chunking independence: on damaged input too, what the decoder yields
 *   (frames and errors) does not depend on how the bytes were split;
 * - limits: what the encoder rejects, the decoder rejects with the same error
 *   at the same frame, without ever holding more than a bound.
 *
 * A failure's message reads without rerunning fast-check: it shows the input
 * bytes, the frames expected and decoded (in hex, long ones shortened with
 * their size stated) and the chunking used (see {@link LawViolation}).
 *
 * ```ts
 * import { describe, it } from "@effect/vitest"
 * import * as fc from "fast-check"
 * import * as Framing from "effect-wire/Framing"
 * import * as CodecLaws from "effect-wire/testing/CodecLaws"
 *
 * describe("my codec", () => {
 *   for (const law of CodecLaws.all(myCodec, { frame: fc.uint8Array({ maxLength: 64 }) })) {
 *     it(law.name, () => fc.assert(fc.property(law.arbitrary, (input) => law.check(input)), { numRuns: 200 }))
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import * as Framing from "../Framing.js"
import { concat } from "../internal/bytes.js"

// ---------------------------------------------------------------------------
// Re-chunking
// ---------------------------------------------------------------------------

/**
 * How to split a byte stream: chunk sizes, used in turn and cycled. `[]`
 * keeps everything in one chunk, `[1]` is one byte at a time, a `0` makes an
 * empty chunk.
 *
 * ```ts
 * const byteByByte: CodecLaws.Chunking = [1]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Chunking = ReadonlyArray<number>

/**
 * Split and merge bytes (one buffer, or several to be merged first) into
 * chunks of the given sizes, cycled; empty sizes or all zeros keep one chunk.
 *
 * ```ts
 * CodecLaws.rechunk(new Uint8Array([1, 2, 3, 4, 5]), [2, 0, 1]) // [1 2], [], [3], [4 5]
 * ```
 *
 * @since 0.1.0
 * @category re-chunking
 */
export const rechunk = (bytes: Uint8Array | ReadonlyArray<Uint8Array>, sizes: Chunking): Array<Uint8Array> => {
  const all = bytes instanceof Uint8Array ? bytes : concat(bytes)
  return cutCycled(all.length, sizes, () => all, (from, to) => all.subarray(from, to))
}

/**
 * Cuts `length` items into pieces of the sizes, cycled (`piece(from, to)`
 * makes one); `whole()` alone when the sizes are empty or all zeros.
 */
const cutCycled = <P>(
  length: number,
  sizes: Chunking,
  whole: () => P,
  piece: (from: number, to: number) => P
): Array<P> => {
  if (sizes.length === 0 || sizes.every((n) => n <= 0)) return [whole()]
  const pieces: Array<P> = []
  let at = 0
  for (let i = 0; at < length; i = (i + 1) % sizes.length) {
    const size = Math.max(0, Math.floor(sizes[i]!))
    pieces.push(piece(at, at + size))
    at += size
  }
  return pieces
}

/**
 * Arbitrary ways to split a byte stream: everything in one chunk, one byte at
 * a time, small random pieces with empty chunks, and larger ones.
 *
 * ```ts
 * fc.assert(fc.property(frames, CodecLaws.chunking, (fs, sizes) => check(fs, sizes)))
 * ```
 *
 * @since 0.1.0
 * @category re-chunking
 */
export const chunking: fc.Arbitrary<Chunking> = fc.oneof(
  fc.constant<Chunking>([]),
  fc.constant<Chunking>([1]),
  fc.array(fc.integer({ min: 0, max: 16 }), { minLength: 1, maxLength: 8 }),
  fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 4 })
)

/** Splits a list the way {@link rechunk} splits bytes. */
const split = <A>(items: ReadonlyArray<A>, sizes: Chunking): Array<Array<A>> =>
  cutCycled(items.length, sizes, () => items.slice(), (from, to) => items.slice(from, to))


// ---------------------------------------------------------------------------
// Laws
// ---------------------------------------------------------------------------

/**
 * A codec broke a law. `message` says which law, on which codec and how, then
 * shows what broke it so it reads without rerunning fast-check: the input
 * bytes and the frames expected and decoded (in hex, long ones shortened with
 * their size stated) and the chunking used:
 *
 * ```text
 * lossy breaks "decode(rechunk(encode(frames))) == frames": the decoder gave other frames: frame 0 differs in length: 5 bytes expected, 4 decoded
 *   input: 00 00 00 05 68 65 6c 6c 6f (9 bytes)
 *   chunking: [] (one chunk)
 *   expected: 1 frame
 *     0: 68 65 6c 6c 6f (5 bytes)
 *   decoded: 1 frame
 *     0: 68 65 6c 6c (4 bytes)
 * ```
 *
 * The same facts are fields, for a test of your own: `input`, `chunking`,
 * and `expected` and `decoded` (frames, with a `FrameError` where the decoder
 * reported one).
 *
 * ```ts
 * try { law.check(input) } catch (e) { if (e instanceof CodecLaws.LawViolation) console.error(e.message, e.decoded) }
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class LawViolation extends Data.TaggedError("LawViolation")<{
  readonly law: string
  readonly codec: string
  readonly detail: string
  /** The bytes being decoded when the law broke. */
  readonly input?: Uint8Array | undefined
  /** How `input` was split (for a Stream encoding: how the frames were batched). */
  readonly chunking?: Chunking | undefined
  /** What should have come out: frames, and the `FrameError` where one was due. */
  readonly expected?: ReadonlyArray<unknown> | undefined
  /** What came out: frames, and the `FrameError`s the decoder reported. */
  readonly decoded?: ReadonlyArray<unknown> | undefined
  /** The lines `message` shows after the first (the facts above, formatted). */
  readonly report?: ReadonlyArray<string> | undefined
}> {
  override get message(): string {
    const head = `${this.codec} breaks "${this.law}": ${this.detail}`
    return this.report === undefined || this.report.length === 0 ? head : [head, ...this.report].join("\n")
  }
}

/**
 * One law: run `check` on inputs drawn from `arbitrary`, e.g. with
 * `fc.assert(fc.property(law.arbitrary, (input) => law.check(input)))`.
 *
 * ```ts
 * const law: CodecLaws.Law<{ readonly frames: ReadonlyArray<Uint8Array>; readonly chunking: CodecLaws.Chunking }> =
 *   CodecLaws.roundTrip(Framing.varint(), { frame: fc.uint8Array() })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Law<I> {
  readonly name: string
  readonly arbitrary: fc.Arbitrary<I>
  /** Returns normally when the law holds, throws a {@link LawViolation} otherwise. */
  readonly check: (input: I) => void
}

/**
 * What the laws need to know about the frames.
 *
 * ```ts
 * const options: CodecLaws.LawOptions<string> = { frame: fc.string().filter((s) => !s.includes("\n")) }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LawOptions<A> {
  /** Frames the codec can send (the encoder accepts every one). */
  readonly frame: fc.Arbitrary<A>
  /** Frame equality (default: structural, bytes compared by value). */
  readonly equals?: ((a: A, b: A) => boolean) | undefined
  /** The most frames per input (default 8). */
  readonly maxFrames?: number | undefined
}

/**
 * Options of {@link limits}.
 *
 * ```ts
 * const options: CodecLaws.LimitOptions<Uint8Array> = {
 *   frame: fc.uint8Array({ maxLength: 32 }),
 *   permissive: Framing.varint(),
 *   maxBuffered: 16
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LimitOptions<A> extends LawOptions<A> {
  /**
   * The same codec with larger limits: it encodes the frames the strict
   * codec must reject. `frame` should draw frames this twin can send, on
   * both sides of the strict limits.
   */
  readonly permissive: Framing.Codec<A>
  /** The most bytes the strict decoder may hold at any time (its limit plus its header). */
  readonly maxBuffered: number
}

/**
 * Structural equality: `Uint8Array`s by bytes, arrays and plain objects by
 * their entries, everything else with `Object.is` (except 0 and -0, which
 * JSON cannot tell apart).
 *
 * ```ts
 * CodecLaws.equals({ body: new Uint8Array([1]) }, { body: new Uint8Array([1]) }) // true
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const equals = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    if (a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
    return true
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => equals(x, b[i]))
  }
  if (typeof a === "object" && typeof b === "object" && a !== null && b !== null) {
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    return ka.length === kb.length &&
      ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && equals((a as any)[k], (b as any)[k]))
  }
  return Number.isNaN(a) && Number.isNaN(b)
}

// ---------------------------------------------------------------------------
// Failure reports
// ---------------------------------------------------------------------------

/** How many bytes {@link hex} shows by default: enough for a header and the start of a body. */
const HEX_BYTES = 32

/** How many frames a report lists per side. */
const LISTED = 8

const thousands = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",")

const plural = (n: number, one: string, many = `${one}s`): string => `${thousands(n)} ${n === 1 ? one : many}`

const hexOf = (bytes: Uint8Array): string => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ")

/**
 * Bytes in hex, with their size; past `maxBytes` (default 32) only the first
 * and the last few are shown, around a `…`.
 *
 * ```ts
 * CodecLaws.hex(new Uint8Array([0, 0, 0, 5, 104, 101, 108, 108, 111])) // "00 00 00 05 68 65 6c 6c 6f (9 bytes)"
 * CodecLaws.hex(new Uint8Array(4096), 4) // "00 00 00 … 00 (4,096 bytes)"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const hex = (bytes: Uint8Array, maxBytes: number = HEX_BYTES): string => {
  const size = `(${plural(bytes.length, "byte")})`
  if (bytes.length === 0) return size
  const max = Math.max(2, Math.floor(maxBytes))
  if (bytes.length <= max) return `${hexOf(bytes)} ${size}`
  const tail = Math.max(1, Math.floor(max / 4))
  return `${hexOf(bytes.subarray(0, max - tail))} … ${hexOf(bytes.subarray(bytes.length - tail))} ${size}`
}

const describeError = (error: Framing.FrameError): string => {
  switch (error._tag) {
    case "IncompleteFrame":
      return `IncompleteFrame (${plural(error.remaining, "byte")} left over)`
    case "FrameTooLarge":
      return `FrameTooLarge (${error.direction}: ${error.exact ? "" : "at least "}${plural(error.size, "byte")}, ` +
        `limit ${thousands(error.limit)})`
    case "MalformedFrame":
      return `MalformedFrame (${error.direction}: ${error.reason})`
  }
}

const MAX_CHARS = 48
const MAX_DEPTH = 4

/** A frame (or anything in one) on one line: bytes in hex, strings quoted, long ones shortened. */
const show = (value: unknown, depth = 0): string => {
  if (value instanceof Uint8Array) return hex(value)
  if (typeof value === "string") {
    return value.length <= MAX_CHARS
      ? JSON.stringify(value)
      : `${JSON.stringify(value.slice(0, MAX_CHARS))}… (${plural(value.length, "char")})`
  }
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value)
  if (typeof value === "bigint") return `${value}n`
  if (typeof value !== "object" || value === null) return String(value)
  if (Framing.isFrameError(value)) return describeError(value)
  if (depth >= MAX_DEPTH) return "…"
  if (Array.isArray(value)) {
    const items = value.slice(0, LISTED).map((x) => show(x, depth + 1))
    if (value.length > LISTED) items.push(`… ${value.length - LISTED} more`)
    return `[${items.join(", ")}]`
  }
  const keys = Object.keys(value)
  const entries = keys.slice(0, LISTED).map((k) => `${k}: ${show((value as Record<string, unknown>)[k], depth + 1)}`)
  if (keys.length > LISTED) entries.push(`… ${keys.length - LISTED} more`)
  return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`
}

const showSafely = (value: unknown): string => {
  try {
    return show(value)
  } catch {
    return "(cannot be shown)"
  }
}

type Event<A> = { readonly frame: A } | { readonly error: Framing.FrameError }

const isError = <A>(event: Event<A>): event is { readonly error: Framing.FrameError } => "error" in event

/** Events as the `expected`/`decoded` fields hold them: frames, and errors as themselves. */
const flatten = <A>(events: ReadonlyArray<Event<A>>): ReadonlyArray<unknown> =>
  events.map((e) => isError(e) ? e.error : e.frame)

const sameEvent = <A>(x: Event<A>, y: Event<A>, eq: (a: A, b: A) => boolean): boolean =>
  isError(x) ? isError(y) && x.error._tag === y.error._tag : !isError(y) && eq(x.frame, y.frame)

const sameEvents = <A>(
  a: ReadonlyArray<Event<A>>,
  b: ReadonlyArray<Event<A>>,
  eq: (x: A, y: A) => boolean
): boolean => a.length === b.length && a.every((x, i) => sameEvent(x, b[i]!, eq))

/** The index of the first event that differs (the shorter length when one list starts the other). */
const firstDifference = <A>(
  a: ReadonlyArray<Event<A>>,
  b: ReadonlyArray<Event<A>>,
  eq: (x: A, y: A) => boolean
): number => {
  let i = 0
  while (i < a.length && i < b.length && sameEvent(a[i]!, b[i]!, eq)) i++
  return i
}

/** "2 frames", "1 frame, then IncompleteFrame (3 bytes left over)", "4 frames, 2 errors", "nothing"… */
const summary = <A>(events: ReadonlyArray<Event<A>>): string => {
  if (events.length === 0) return "nothing"
  const errors = events.filter(isError)
  const count = events.length - errors.length
  const frames = plural(count, "frame")
  if (errors.length === 0) return frames
  const last = events[events.length - 1]!
  if (errors.length > 1 || !isError(last)) return `${frames}, ${plural(errors.length, "error")}`
  return count === 0 ? describeError(last.error) : `${frames}, then ${describeError(last.error)}`
}

/** Where two byte arrays part: "at byte 17" or "in length: 5 bytes expected, 4 decoded". */
const bytesDiffer = (a: Uint8Array, b: Uint8Array, ours: string, theirs: string): string => {
  let j = 0
  while (j < a.length && j < b.length && a[j] === b[j]) j++
  return j < a.length && j < b.length
    ? `at byte ${thousands(j)}`
    : `in length: ${plural(a.length, "byte")} ${ours}, ${thousands(b.length)} ${theirs}`
}

/** Where `decoded` first departs from `expected`, in a few words ("frame 3 differs at byte 2"). */
const difference = <A>(
  expected: ReadonlyArray<Event<A>>,
  decoded: ReadonlyArray<Event<A>>,
  eq: (x: A, y: A) => boolean,
  names: readonly [expected: string, decoded: string] = ["expected", "decoded"]
): string => {
  const i = firstDifference(expected, decoded, eq)
  const frame = expected.slice(0, i).filter((e) => !isError(e)).length
  const x = expected[i]
  const y = decoded[i]
  if (x === undefined) {
    if (y === undefined) return "the same frames, and errors with the same tags"
    return isError(y)
      ? `an unexpected ${describeError(y.error)} after ${plural(frame, "frame")}`
      : `an extra frame ${frame}`
  }
  if (y === undefined) {
    return isError(x) ? `no ${x.error._tag} after ${plural(frame, "frame")}` : `frame ${frame} missing`
  }
  if (isError(x)) {
    return isError(y)
      ? `${describeError(y.error)} where ${describeError(x.error)} was due`
      : `frame ${frame} where ${describeError(x.error)} was due`
  }
  if (isError(y)) return `${describeError(y.error)} where frame ${frame} was due`
  return x.frame instanceof Uint8Array && y.frame instanceof Uint8Array
    ? `frame ${frame} differs ${bytesDiffer(x.frame, y.frame, ...names)}`
    : `frame ${frame} differs`
}

const describeChunking = (sizes: Chunking, bytes: Uint8Array): string => {
  const spec = `[${sizes.join(",")}]`
  if (sizes.length === 0 || sizes.every((n) => n <= 0)) return `${spec} (one chunk)`
  const chunks = plural(rechunk(bytes, sizes).length, "chunk")
  return sizes.length === 1 && sizes[0] === 1 ? `${spec} (one byte at a time, ${chunks})` : `${spec} (cycled: ${chunks})`
}

/** Up to {@link LISTED} events from `start`, one a line, frames numbered from 0. */
const listEvents = <A>(label: string, events: ReadonlyArray<Event<A>>, start: number): Array<string> => {
  const lines = [`  ${label}: ${summary(events)}`]
  let frame = events.slice(0, start).filter((e) => !isError(e)).length
  if (start > 0 && start < events.length) lines.push(`    … (${start} before)`)
  const end = Math.min(events.length, start + LISTED)
  for (let i = Math.min(start, events.length); i < end; i++) {
    const event = events[i]!
    lines.push(isError(event) ? `    error: ${describeError(event.error)}` : `    ${frame++}: ${showSafely(event.frame)}`)
  }
  if (end < events.length) lines.push(`    … (${events.length - end} more)`)
  return lines
}

interface Report<A> {
  readonly input?: Uint8Array | undefined
  /** Lines on how the input was made (the cut, the damage), after it. */
  readonly context?: ReadonlyArray<string> | undefined
  readonly chunking?: Chunking | undefined
  /** How to describe the chunking, when it is not of `input`'s bytes. */
  readonly chunkingLine?: string | undefined
  readonly expected?: ReadonlyArray<Event<A>> | undefined
  readonly expectedLabel?: string | undefined
  readonly decoded?: ReadonlyArray<Event<A>> | undefined
}

/** A {@link LawViolation} with the report its message shows. */
const violation = <A>(
  law: string,
  codec: Framing.Codec<A>,
  detail: string,
  report: Report<A>,
  eq: (x: A, y: A) => boolean
): LawViolation => {
  const lines: Array<string> = []
  if (report.input !== undefined) lines.push(`  input: ${hex(report.input)}`)
  for (const line of report.context ?? []) lines.push(`  ${line}`)
  if (report.chunkingLine !== undefined) lines.push(`  chunking: ${report.chunkingLine}`)
  else if (report.chunking !== undefined) {
    lines.push(`  chunking: ${describeChunking(report.chunking, report.input ?? new Uint8Array(0))}`)
  }
  const { decoded, expected } = report
  // Both lists start a little before the first difference, so it is in view however long they are.
  const start = expected !== undefined && decoded !== undefined
    ? Math.max(0, firstDifference(expected, decoded, eq) - 2)
    : 0
  if (expected !== undefined) lines.push(...listEvents(report.expectedLabel ?? "expected", expected, start))
  if (decoded !== undefined) lines.push(...listEvents("decoded", decoded, start))
  return new LawViolation({
    law,
    codec: codec.name,
    detail,
    input: report.input,
    chunking: report.chunking,
    expected: expected === undefined ? undefined : flatten(expected),
    decoded: decoded === undefined ? undefined : flatten(decoded),
    report: lines
  })
}

const framesAsEvents = <A>(frames: ReadonlyArray<A>): Array<Event<A>> => frames.map((frame) => ({ frame }))

// ---------------------------------------------------------------------------
// Running a decoder
// ---------------------------------------------------------------------------

/** The most error recoveries followed in one decoding: a resynchronising decoder recovers once per bad frame. */
const MAX_RECOVERIES = 10_000

/**
 * Everything a fresh decoder yields for these chunks, following recoverable
 * errors. `maxBuffered` is the most it held after any push.
 */
const run = <A>(
  codec: Framing.Codec<A>,
  chunks: ReadonlyArray<Uint8Array>,
  stopAtError: boolean
): { readonly events: Array<Event<A>>; readonly maxBuffered: number; readonly buffered: number } => {
  const decoder = codec.decoder()
  const events: Array<Event<A>> = []
  const out: Array<A> = []
  let maxBuffered = 0
  let recoveries = 0
  const settle = (error: Framing.FrameError | undefined): boolean => {
    for (const frame of out) events.push({ frame })
    out.length = 0
    if (decoder.buffered > maxBuffered) maxBuffered = decoder.buffered
    if (error === undefined) return true
    events.push({ error })
    if (++recoveries > MAX_RECOVERIES) throw new Error(`${codec.name}: more than ${MAX_RECOVERIES} recoveries`)
    return !stopAtError && !decoder.failed
  }
  const EMPTY = new Uint8Array(0)
  for (const chunk of chunks) {
    let error = decoder.push(chunk, out)
    while (error !== undefined) {
      if (!settle(error)) return { events, maxBuffered, buffered: decoder.buffered }
      error = decoder.push(EMPTY, out)
    }
    settle(undefined)
  }
  let error = decoder.end(out)
  while (error !== undefined && settle(error)) error = decoder.end(out)
  settle(undefined)
  return { events, maxBuffered, buffered: decoder.buffered }
}

const encodeOrViolate = <A>(
  codec: Framing.Codec<A>,
  law: string,
  frames: ReadonlyArray<A>,
  eq: (x: A, y: A) => boolean
): Uint8Array => {
  const encoded = Framing.encodeAll(codec, frames)
  if (Result.isFailure(encoded)) {
    throw violation(
      law,
      codec,
      `the encoder rejected frames the arbitrary says are sendable: ${encoded.failure.message}`,
      { expected: framesAsEvents(frames), expectedLabel: "frames" },
      eq
    )
  }
  return encoded.success
}

const framesOf = <A>(options: LawOptions<A>): fc.Arbitrary<Array<A>> =>
  fc.array(options.frame, { maxLength: options.maxFrames ?? 8 })

const MAX_STREAM_CHUNKS = 64

const WHOLE: Chunking = []
const ONE_BYTE: Chunking = [1]

// ---------------------------------------------------------------------------
// The laws
// ---------------------------------------------------------------------------

/** What a law's check is given: frame equality, and ways to throw this law's {@link LawViolation}. */
interface Checking<A> {
  readonly eq: (x: A, y: A) => boolean
  readonly violate: (detail: string, report: Report<A>) => never
  /** The frames encoded by `by`; a violation when its encoder refuses frames the arbitrary says are sendable. */
  readonly encode: (by: Framing.Codec<A>, frames: ReadonlyArray<A>) => Uint8Array
}

/** A law named `name` about `codec`, drawing its inputs from `arbitrary`. */
const law = <A, I>(
  codec: Framing.Codec<A>,
  name: string,
  options: LawOptions<A>,
  arbitrary: fc.Arbitrary<NoInfer<I>>,
  check: (input: I, checking: Checking<A>) => void
): Law<I> => {
  const eq = options.equals ?? equals
  const checking: Checking<A> = {
    eq,
    violate: (detail, report) => {
      throw violation(name, codec, detail, report, eq)
    },
    encode: (by, frames) => encodeOrViolate(by, name, frames, eq)
  }
  return { name: `${codec.name}: ${name}`, arbitrary, check: (input) => check(input, checking) }
}

/** A law whose input is frames and a chunking of their encoding. */
const framesLaw = <A>(
  codec: Framing.Codec<A>,
  name: string,
  options: LawOptions<A>,
  check: (input: { readonly frames: ReadonlyArray<A>; readonly chunking: Chunking }, checking: Checking<A>) => void
): Law<{ readonly frames: ReadonlyArray<A>; readonly chunking: Chunking }> =>
  law(codec, name, options, fc.record({ frames: framesOf(options), chunking }), check)

/**
 * Decoding the encoding gives the frames back, under every chunking (always
 * including one chunk and one byte at a time), through the raw decoder and
 * through the `Framing.decode`/`Framing.encode` pipes; encoding frame by
 * frame gives the same bytes as encoding them all at once; the decoder holds
 * nothing at the end.
 *
 * ```ts
 * const law = CodecLaws.roundTrip(Framing.lines(), { frame: fc.uint8Array().filter((b) => !b.includes(10)) })
 * it(law.name, () => fc.assert(fc.property(law.arbitrary, (input) => law.check(input))))
 * ```
 *
 * @since 0.1.0
 * @category laws
 */
export const roundTrip = <A>(
  codec: Framing.Codec<A>,
  options: LawOptions<A>
): Law<{ readonly frames: ReadonlyArray<A>; readonly chunking: Chunking }> =>
  framesLaw(codec, "decode(rechunk(encode(frames))) == frames", options, ({ chunking, frames }, { encode, eq, violate }) => {
    const expected = framesAsEvents(frames)
    const bytes = encode(codec, frames)
    const oneByOne = concat(frames.map((frame) => encode(codec, [frame])))
    if (!equals(bytes, oneByOne)) {
      violate(
        `encoding frame by frame gives other bytes than encoding them together (${
          bytesDiffer(bytes, oneByOne, "together", "one by one")
        })`,
        {
          context: [`encoded together: ${hex(bytes)}`, `encoded one by one: ${hex(oneByOne)}`],
          expected,
          expectedLabel: "frames"
        }
      )
    }
    for (const sizes of [WHOLE, ONE_BYTE, chunking]) {
      const { buffered, events } = run(codec, rechunk(bytes, sizes), true)
      const report: Report<A> = { input: bytes, chunking: sizes, expected, decoded: events }
      if (!sameEvents(events, expected, eq)) {
        violate(`the decoder gave other frames: ${difference(expected, events, eq)}`, report)
      }
      if (buffered !== 0) violate(`the decoder still holds ${buffered} bytes after the last frame`, report)
    }
    // The pipes add plumbing, not decoding: a few dozen chunks exercise them (thousands would only cost time).
    // Each piece is its own Stream batch (an empty piece is an empty Uint8Array in a batch of one).
    const pieces = rechunk(bytes, chunking)
    const streamChunking = pieces.length <= MAX_STREAM_CHUNKS ? chunking : WHOLE
    const input = Stream.fromArrays(...rechunk(bytes, streamChunking).map((piece) => [piece]))
    const got: Array<Event<A>> = []
    const decoded = Effect.runSync(Effect.result(
      input.pipe(Framing.decode(codec), Stream.runForEach((frame) => Effect.sync(() => got.push({ frame }))))
    ))
    const pipeReport = (): Report<A> => ({
      input: bytes,
      chunking: streamChunking,
      chunkingLine: `${describeChunking(streamChunking, bytes)}, a Stream batch each`,
      expected,
      decoded: got
    })
    if (Result.isFailure(decoded)) {
      const failure = decoded.failure
      if (Framing.isFrameError(failure)) got.push({ error: failure })
      violate(`Framing.decode failed: ${failure.message}`, pipeReport())
    } else if (!sameEvents(got, expected, eq)) {
      violate(`Framing.decode gave other frames: ${difference(expected, got, eq)}`, pipeReport())
    }
    // Each part is one Stream batch; Effect 4 Streams have no empty batches, so empty parts drop out.
    const parts = split(frames, chunking)
    const batches = parts.length <= MAX_STREAM_CHUNKS ? parts : [frames]
    const encoded = Effect.runSync(
      Effect.result(Stream.runCollect(Stream.fromArrays(...batches).pipe(Framing.encode(codec))))
    )
    const batchReport = (context: ReadonlyArray<string>): Report<A> => ({
      context,
      chunking: parts.length <= MAX_STREAM_CHUNKS ? chunking : WHOLE,
      chunkingLine: `[${(parts.length <= MAX_STREAM_CHUNKS ? chunking : WHOLE).join(",")}] (frames per Stream batch, ${
        plural(batches.filter((b) => b.length > 0).length, "batch", "batches")
      })`,
      expected,
      expectedLabel: "frames"
    })
    if (Result.isFailure(encoded)) {
      violate(`Framing.encode failed: ${encoded.failure.message}`, batchReport([`encoded together: ${hex(bytes)}`]))
    } else {
      const streamed = concat(encoded.success)
      if (!equals(streamed, bytes)) {
        violate(
          `Framing.encode over batches gives other bytes than encoding all frames at once (${
            bytesDiffer(bytes, streamed, "at once", "over batches")
          })`,
          batchReport([`encoded at once: ${hex(bytes)}`, `Framing.encode gave: ${hex(streamed)}`])
        )
      }
    }
  })

/**
 * Input that ends inside a frame is an `IncompleteFrame` whose `remaining`
 * counts the bytes of the unfinished frame; the frames before it are decoded.
 *
 * ```ts
 * const law = CodecLaws.endOfInput(Framing.fixed(4), { frame: fc.uint8Array({ minLength: 4, maxLength: 4 }) })
 * ```
 *
 * @since 0.1.0
 * @category laws
 */
export const endOfInput = <A>(
  codec: Framing.Codec<A>,
  options: LawOptions<A>
): Law<{ readonly frames: ReadonlyArray<A>; readonly cut: number; readonly chunking: Chunking }> =>
  law(
    codec,
    "leftover bytes at the end are an IncompleteFrame",
    options,
    fc.record({
      frames: fc.array(options.frame, { minLength: 1, maxLength: options.maxFrames ?? 8 }),
      cut: fc.nat(),
      chunking
    }),
    ({ chunking, cut, frames }, { encode, eq, violate }) => {
      const encoded = frames.map((frame) => encode(codec, [frame]))
      // Cut points strictly inside a frame's encoding, as (frame index, offset).
      const inside: Array<readonly [number, number]> = []
      encoded.forEach((bytes, i) => {
        for (let k = 1; k < bytes.length; k++) inside.push([i, k])
      })
      if (inside.length === 0) return
      const [index, offset] = inside[cut % inside.length]!
      const bytes = concat([...encoded.slice(0, index), encoded[index]!.subarray(0, offset)])
      const expected: Array<Event<A>> = [
        ...framesAsEvents(frames.slice(0, index)),
        { error: new Framing.IncompleteFrame({ codec: codec.name, remaining: offset }) }
      ]
      const cutAt = `cut ${plural(offset, "byte")} into frame ${index}`
      const where = `${cutAt} (of ${frames.length}, encoded as ${hex(encoded[index]!)})`
      for (const sizes of [WHOLE, ONE_BYTE, chunking]) {
        const { events } = run(codec, rechunk(bytes, sizes), true)
        const report: Report<A> = { input: bytes, context: [where], chunking: sizes, expected, decoded: events }
        const last = events[events.length - 1]
        const error = last !== undefined && isError(last) ? last.error : undefined
        if (error?._tag !== "IncompleteFrame" || !sameEvents(events, expected, eq)) {
          violate(`input ${cutAt}: ${difference(expected, events, eq)}`, report)
        } else if (error.remaining !== offset) {
          violate(`cut ${plural(offset, "byte")} into a frame, IncompleteFrame says ${error.remaining} bytes remain`, report)
        }
      }
    }
  )

/** One way to damage a byte stream. */
type Damage = { readonly at: number; readonly kind: "flip" | "cut" | "insert"; readonly byte: number }

const byteHex = (b: number): string => `0x${b.toString(16).padStart(2, "0")}`

/** The damaged bytes, and what was done where (damage that had no bytes to act on is left out). */
const damage = (
  bytes: Uint8Array,
  damages: ReadonlyArray<Damage>
): { readonly bytes: Uint8Array; readonly done: Array<string> } => {
  let result = bytes
  const done: Array<string> = []
  for (const { at, byte, kind } of damages) {
    if (result.length === 0 && kind !== "insert") continue
    const i = at % (result.length + (kind === "insert" ? 1 : 0))
    if (kind === "flip") {
      const mask = byte === 0 ? 1 : byte
      result = result.slice()
      result[i] = result[i]! ^ mask
      done.push(`flip byte ${i} (xor ${byteHex(mask)})`)
    } else if (kind === "cut") {
      result = result.subarray(0, i)
      done.push(`cut at byte ${i}`)
    } else {
      result = concat([result.subarray(0, i), new Uint8Array([byte]), result.subarray(i)])
      done.push(`insert ${byteHex(byte)} at byte ${i}`)
    }
  }
  return { bytes: result, done }
}

/**
 * What the decoder yields (frames, errors, and the frames after an error it
 * recovers from) does not depend on the chunking, on valid and on damaged
 * input (bytes flipped, inserted, cut off), and decoding never throws.
 *
 * ```ts
 * const law = CodecLaws.chunkingIndependence(Framing.varint(), { frame: fc.uint8Array() })
 * ```
 *
 * @since 0.1.0
 * @category laws
 */
export const chunkingIndependence = <A>(
  codec: Framing.Codec<A>,
  options: LawOptions<A>
): Law<{ readonly frames: ReadonlyArray<A>; readonly damage: ReadonlyArray<Damage>; readonly chunking: Chunking }> =>
  law(
    codec,
    "what is decoded does not depend on the chunking",
    options,
    fc.record({
      frames: framesOf(options),
      damage: fc.array(
        fc.record({
          at: fc.nat(),
          kind: fc.constantFrom<Damage["kind"]>("flip", "cut", "insert"),
          byte: fc.integer({ min: 0, max: 255 })
        }),
        { maxLength: 3 }
      ),
      chunking
    }),
    ({ chunking, damage: damages, frames }, { encode, eq, violate }) => {
      const encoded = encode(codec, frames)
      const { bytes, done } = damage(encoded, damages)
      const whole = run(codec, [bytes], false).events
      for (const sizes of [ONE_BYTE, chunking]) {
        const split = run(codec, rechunk(bytes, sizes), false).events
        if (!sameEvents(split, whole, eq)) {
          violate(
            `split, it decodes otherwise than in one chunk: ${difference(whole, split, eq, ["in one chunk", "split"])}`,
            {
              input: bytes,
              context: done.length === 0 ? [] : [`damage: ${done.join(", ")}`, `encoded: ${hex(encoded)}`],
              chunking: sizes,
              expected: whole,
              expectedLabel: "expected (one chunk)",
              decoded: split
            }
          )
        }
      }
    }
  )

/**
 * Encode rejects what decode would reject, and decode rejects without
 * buffering: for frames the strict codec's encoder refuses (too large,
 * malformed), decoding their encoding by a permissive twin with the strict
 * decoder fails with the same error tag at the same frame, holding at most
 * `maxBuffered` bytes at any time even one byte at a time; frames it accepts
 * decode back unchanged.
 *
 * ```ts
 * const law = CodecLaws.limits(Framing.varint({ maxFrameLength: 16 }), {
 *   permissive: Framing.varint({ maxFrameLength: 64 }),
 *   frame: fc.uint8Array({ maxLength: 32 }),
 *   maxBuffered: 16
 * })
 * ```
 *
 * @since 0.1.0
 * @category laws
 */
export const limits = <A>(
  codec: Framing.Codec<A>,
  options: LimitOptions<A>
): Law<{ readonly frames: ReadonlyArray<A>; readonly chunking: Chunking }> =>
  framesLaw(
    codec,
    "encode rejects what decode rejects, before buffering",
    options,
    ({ chunking, frames }, { encode, eq, violate }) => {
      const bytes = encode(options.permissive, frames)
      let rejected: { readonly index: number; readonly error: Framing.FrameError } | undefined
      for (let i = 0; i < frames.length && rejected === undefined; i++) {
        const error = codec.encode([frames[i]!], [])
        if (error !== undefined) rejected = { index: i, error }
      }
      const all = codec.encode(frames, [])
      if ((all === undefined) !== (rejected === undefined) || (all !== undefined && all._tag !== rejected?.error._tag)) {
        violate("encoding the frames together and one by one disagree on whether (and why) they are rejected", {
          context: [
            `together: ${all === undefined ? "accepted" : describeError(all)}`,
            `one by one: ${
              rejected === undefined ? "all accepted" : `frame ${rejected.index} rejected, ${describeError(rejected.error)}`
            }`
          ],
          expected: framesAsEvents(frames),
          expectedLabel: "frames"
        })
      }
      const expected: Array<Event<A>> = framesAsEvents(rejected === undefined ? frames : frames.slice(0, rejected.index))
      if (rejected !== undefined) expected.push({ error: rejected.error })
      for (const sizes of [WHOLE, ONE_BYTE, chunking]) {
        const { events, maxBuffered } = run(codec, rechunk(bytes, sizes), true)
        const report: Report<A> = {
          input: bytes,
          context: [`encoded by ${options.permissive.name}, the permissive twin`],
          chunking: sizes,
          expected,
          decoded: events
        }
        if (!sameEvents(events, expected, eq)) {
          violate(`the decoder disagrees with the encoder: ${difference(expected, events, eq)}`, report)
        }
        if (maxBuffered > options.maxBuffered) {
          violate(`the decoder held ${maxBuffered} bytes, more than ${options.maxBuffered}`, report)
        }
      }
    }
  )

/**
 * Every law for one codec: {@link roundTrip}, {@link endOfInput},
 * {@link chunkingIndependence}, and {@link limits} when a permissive twin is
 * given.
 *
 * ```ts
 * for (const law of CodecLaws.all(codec, { frame })) {
 *   it(law.name, () => fc.assert(fc.property(law.arbitrary, (input) => law.check(input))))
 * }
 * ```
 *
 * @since 0.1.0
 * @category laws
 */
export const all = <A>(
  codec: Framing.Codec<A>,
  options: LawOptions<A> & {
    readonly permissive?: Framing.Codec<A> | undefined
    readonly maxBuffered?: number | undefined
    /** Frames for the limits law, on both sides of the limits (default: `frame`). */
    readonly anyFrame?: fc.Arbitrary<A> | undefined
  }
): ReadonlyArray<Law<any>> => {
  const laws: Array<Law<any>> = [
    roundTrip(codec, options),
    endOfInput(codec, options),
    chunkingIndependence(codec, options)
  ]
  if (options.permissive !== undefined && options.maxBuffered !== undefined) {
    laws.push(limits(codec, {
      ...options,
      frame: options.anyFrame ?? options.frame,
      permissive: options.permissive,
      maxBuffered: options.maxBuffered
    }))
  }
  return laws
}
