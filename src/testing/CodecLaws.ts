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
  if (sizes.length === 0 || sizes.every((n) => n <= 0)) return [all]
  const chunks: Array<Uint8Array> = []
  let at = 0
  for (let i = 0; at < all.length; i = (i + 1) % sizes.length) {
    const size = Math.max(0, Math.floor(sizes[i]!))
    chunks.push(all.subarray(at, at + size))
    at += size
  }
  return chunks
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
const split = <A>(items: ReadonlyArray<A>, sizes: Chunking): Array<Array<A>> => {
  if (sizes.length === 0 || sizes.every((n) => n <= 0)) return [items.slice()]
  const parts: Array<Array<A>> = []
  let at = 0
  for (let i = 0; at < items.length; i = (i + 1) % sizes.length) {
    const size = Math.max(0, Math.floor(sizes[i]!))
    parts.push(items.slice(at, at + size))
    at += size
  }
  return parts
}


// ---------------------------------------------------------------------------
// Laws
// ---------------------------------------------------------------------------

/**
 * A codec broke a law; `message` says which, on which codec, and how.
 *
 * ```ts
 * try { law.check(input) } catch (e) { if (e instanceof CodecLaws.LawViolation) console.error(e.message) }
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class LawViolation extends Data.TaggedError("LawViolation")<{
  readonly law: string
  readonly codec: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.codec} breaks "${this.law}": ${this.detail}`
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

type Event<A> = { readonly frame: A } | { readonly error: Framing.FrameError }

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

const describeEvents = <A>(events: ReadonlyArray<Event<A>>): string =>
  events.length === 0
    ? "nothing"
    : events.map((e) => "error" in e ? `${e.error._tag}` : "frame").join(", ")

const sameEvents = <A>(
  a: ReadonlyArray<Event<A>>,
  b: ReadonlyArray<Event<A>>,
  eq: (x: A, y: A) => boolean
): boolean =>
  a.length === b.length &&
  a.every((x, i) => {
    const y = b[i]!
    if ("error" in x) return "error" in y && x.error._tag === y.error._tag
    return "frame" in y && eq(x.frame, y.frame)
  })

const encodeOrViolate = <A>(codec: Framing.Codec<A>, law: string, frames: ReadonlyArray<A>): Uint8Array => {
  const encoded = Framing.encodeAll(codec, frames)
  if (Result.isFailure(encoded)) {
    throw new LawViolation({
      law,
      codec: codec.name,
      detail: `the encoder rejected frames the arbitrary says are sendable: ${encoded.failure.message}`
    })
  }
  return encoded.success
}

const framesOf = <A>(options: LawOptions<A>): fc.Arbitrary<Array<A>> =>
  fc.array(options.frame, { maxLength: options.maxFrames ?? 8 })

const MAX_STREAM_CHUNKS = 64

const WHOLE: Chunking = []
const ONE_BYTE: Chunking = [1]

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
): Law<{ readonly frames: ReadonlyArray<A>; readonly chunking: Chunking }> => {
  const name = "decode(rechunk(encode(frames))) == frames"
  const eq = options.equals ?? equals
  return {
    name: `${codec.name}: ${name}`,
    arbitrary: fc.record({ frames: framesOf(options), chunking }),
    check: ({ chunking, frames }) => {
      const violate = (detail: string): never => {
        throw new LawViolation({ law: name, codec: codec.name, detail })
      }
      const bytes = encodeOrViolate(codec, name, frames)
      const oneByOne = concat(frames.map((frame) => encodeOrViolate(codec, name, [frame])))
      if (!equals(bytes, oneByOne)) violate("encoding frame by frame gives other bytes than encoding them together")
      const expected = frames.map((frame): Event<A> => ({ frame }))
      for (const sizes of [WHOLE, ONE_BYTE, chunking]) {
        const { buffered, events } = run(codec, rechunk(bytes, sizes), true)
        if (!sameEvents(events, expected, eq)) {
          violate(
            `split as [${sizes.join(",")}], ${frames.length} frames decoded to ${describeEvents(events)}`
          )
        }
        if (buffered !== 0) violate(`the decoder still holds ${buffered} bytes after the last frame`)
      }
      // The pipes add plumbing, not decoding: a few dozen chunks exercise them (thousands would only cost time).
      // Each piece is its own Stream batch (an empty piece is an empty Uint8Array in a batch of one).
      const pieces = rechunk(bytes, chunking)
      const input = Stream.fromArrays(
        ...(pieces.length <= MAX_STREAM_CHUNKS ? pieces : rechunk(bytes, [])).map((piece) => [piece])
      )
      const decoded = Effect.runSync(Effect.result(Stream.runCollect(input.pipe(Framing.decode(codec)))))
      if (Result.isFailure(decoded)) violate(`Framing.decode failed: ${decoded.failure.message}`)
      else {
        const got = decoded.success
        if (got.length !== frames.length || !got.every((a, i) => eq(a, frames[i]!))) {
          violate(`Framing.decode gave ${got.length} frames for ${frames.length}, or other ones`)
        }
      }
      // Each part is one Stream batch; Effect 4 Streams have no empty batches, so empty parts drop out.
      const parts = split(frames, chunking)
      const batches = Stream.fromArrays(...(parts.length <= MAX_STREAM_CHUNKS ? parts : [frames]))
      const encoded = Effect.runSync(Effect.result(Stream.runCollect(batches.pipe(Framing.encode(codec)))))
      if (Result.isFailure(encoded)) violate(`Framing.encode failed: ${encoded.failure.message}`)
      else if (!equals(concat(encoded.success), bytes)) {
        violate("Framing.encode over batches gives other bytes than encoding all frames at once")
      }
    }
  }
}

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
): Law<{ readonly frames: ReadonlyArray<A>; readonly cut: number; readonly chunking: Chunking }> => {
  const name = "leftover bytes at the end are an IncompleteFrame"
  const eq = options.equals ?? equals
  return {
    name: `${codec.name}: ${name}`,
    arbitrary: fc.record({
      frames: fc.array(options.frame, { minLength: 1, maxLength: options.maxFrames ?? 8 }),
      cut: fc.nat(),
      chunking
    }),
    check: ({ chunking, cut, frames }) => {
      const violate = (detail: string): never => {
        throw new LawViolation({ law: name, codec: codec.name, detail })
      }
      const encoded = frames.map((frame) => encodeOrViolate(codec, name, [frame]))
      // Cut points strictly inside a frame's encoding, as (frame index, offset).
      const inside: Array<readonly [number, number]> = []
      encoded.forEach((bytes, i) => {
        for (let k = 1; k < bytes.length; k++) inside.push([i, k])
      })
      if (inside.length === 0) return
      const [index, offset] = inside[cut % inside.length]!
      const bytes = concat([...encoded.slice(0, index), encoded[index]!.subarray(0, offset)])
      const expected: Array<Event<A>> = frames.slice(0, index).map((frame) => ({ frame }))
      for (const sizes of [WHOLE, ONE_BYTE, chunking]) {
        const { events } = run(codec, rechunk(bytes, sizes), true)
        const last = events[events.length - 1]
        const error = last !== undefined && "error" in last ? last.error : undefined
        if (error?._tag !== "IncompleteFrame" || !sameEvents(events.slice(0, -1), expected, eq)) {
          return violate(
            `cut ${offset} bytes into frame ${index}, split as [${sizes.join(",")}]: got ${describeEvents(events)}`
          )
        }
        if (error.remaining !== offset) {
          violate(`cut ${offset} bytes into a frame, IncompleteFrame says ${error.remaining} bytes remain`)
        }
      }
    }
  }
}

/** One way to damage a byte stream. */
type Damage = { readonly at: number; readonly kind: "flip" | "cut" | "insert"; readonly byte: number }

const damage = (bytes: Uint8Array, damages: ReadonlyArray<Damage>): Uint8Array => {
  let result = bytes
  for (const { at, byte, kind } of damages) {
    if (result.length === 0 && kind !== "insert") continue
    const i = at % (result.length + (kind === "insert" ? 1 : 0))
    if (kind === "flip") {
      result = result.slice()
      result[i] = result[i]! ^ (byte === 0 ? 1 : byte)
    } else if (kind === "cut") {
      result = result.subarray(0, i)
    } else {
      result = concat([result.subarray(0, i), new Uint8Array([byte]), result.subarray(i)])
    }
  }
  return result
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
): Law<{ readonly frames: ReadonlyArray<A>; readonly damage: ReadonlyArray<Damage>; readonly chunking: Chunking }> => {
  const name = "what is decoded does not depend on the chunking"
  const eq = options.equals ?? equals
  return {
    name: `${codec.name}: ${name}`,
    arbitrary: fc.record({
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
    check: ({ chunking, damage: damages, frames }) => {
      const bytes = damage(encodeOrViolate(codec, name, frames), damages)
      const whole = run(codec, [bytes], false).events
      for (const sizes of [ONE_BYTE, chunking]) {
        const split = run(codec, rechunk(bytes, sizes), false).events
        if (!sameEvents(split, whole, eq)) {
          throw new LawViolation({
            law: name,
            codec: codec.name,
            detail: `in one chunk: ${describeEvents(whole)}; split as [${sizes.join(",")}]: ${describeEvents(split)}`
          })
        }
      }
    }
  }
}

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
): Law<{ readonly frames: ReadonlyArray<A>; readonly chunking: Chunking }> => {
  const name = "encode rejects what decode rejects, before buffering"
  const eq = options.equals ?? equals
  return {
    name: `${codec.name}: ${name}`,
    arbitrary: fc.record({ frames: framesOf(options), chunking }),
    check: ({ chunking, frames }) => {
      const violate = (detail: string): never => {
        throw new LawViolation({ law: name, codec: codec.name, detail })
      }
      const bytes = encodeOrViolate(options.permissive, name, frames)
      let rejected: { readonly index: number; readonly error: Framing.FrameError } | undefined
      for (let i = 0; i < frames.length && rejected === undefined; i++) {
        const error = codec.encode([frames[i]!], [])
        if (error !== undefined) rejected = { index: i, error }
      }
      const all = codec.encode(frames, [])
      if ((all === undefined) !== (rejected === undefined) || (all !== undefined && all._tag !== rejected?.error._tag)) {
        violate("encoding the frames together and one by one disagree on whether (and why) they are rejected")
      }
      const expected: Array<Event<A>> = (rejected === undefined ? frames : frames.slice(0, rejected.index))
        .map((frame) => ({ frame }))
      if (rejected !== undefined) expected.push({ error: rejected.error })
      for (const sizes of [WHOLE, ONE_BYTE, chunking]) {
        const { events, maxBuffered } = run(codec, rechunk(bytes, sizes), true)
        if (!sameEvents(events, expected, eq)) {
          violate(
            `split as [${sizes.join(",")}]: the encoder says ${describeEvents(expected)}, the decoder ${
              describeEvents(events)
            }`
          )
        }
        if (maxBuffered > options.maxBuffered) {
          violate(`the decoder held ${maxBuffered} bytes, more than ${options.maxBuffered}`)
        }
      }
    }
  }
}

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
