/**
 * What every codec shares: the type id, the errors, parameter checks (on
 * `internal/options`' checks, a bad value thrown as the typed
 * `InvalidCodecOptions`) and the byte helpers. Public names are re-exported
 * (and documented) by `Framing`.
 *
 * @since 0.1.0
 * @internal
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import type * as Framing from "../../Framing.js"
import { allocFrame, allocUnsafe } from "../bytes.js"
import * as Check from "../options.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("effect-wire/Framing/Codec")

/** @internal */
export type TypeId = typeof TypeId

/** @internal */
export type Direction = "decode" | "encode"

/** @internal */
export class FrameTooLarge extends Data.TaggedError("FrameTooLarge")<{
  readonly codec: string
  readonly direction: Direction
  readonly what: string
  readonly option: string
  readonly limit: number
  readonly size: number
  readonly exact: boolean
}> {
  override get message(): string {
    const size = `${this.exact ? "" : "at least "}${this.size} bytes`
    return this.direction === "decode"
      ? `${this.codec}: the peer sent a ${this.what} of ${size}, over the limit of ${this.limit} bytes ` +
        `(${this.option}); raise ${this.option} if such ${this.what}s are legitimate, ` +
        `otherwise check that both sides use the same framing`
      : `${this.codec}: cannot send a ${this.what} of ${size}: the limit is ${this.limit} bytes (${this.option}) ` +
        `and the peer would reject it; split the data or raise ${this.option} on both sides`
  }
}

/** @internal */
export class IncompleteFrame extends Data.TaggedError("IncompleteFrame")<{
  readonly codec: string
  readonly remaining: number
}> {
  override get message(): string {
    return `${this.codec}: the input ended inside a frame, with ${this.remaining} byte${
      this.remaining === 1 ? "" : "s"
    } of it left over: the peer closed mid-frame, or the two sides disagree on the framing`
  }
}

/** A frame over `maxFrameLength` (the length-prefixed codecs' limit). */
export const frameTooLarge = (
  codec: string,
  direction: Direction,
  limit: number,
  size: number,
  exact: boolean
): FrameTooLarge => new FrameTooLarge({ codec, direction, what: "frame", option: "maxFrameLength", limit, size, exact })

/**
 * A decoder's `end` when only the frame in progress can be left over:
 * nothing when `pending` is 0, otherwise an `IncompleteFrame` of those bytes.
 */
export const incomplete = (codec: string, pending: number): IncompleteFrame | undefined =>
  pending === 0 ? undefined : new IncompleteFrame({ codec, remaining: pending })

/** @internal */
export class MalformedFrame extends Data.TaggedError("MalformedFrame")<{
  readonly codec: string
  readonly direction: Direction
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.direction === "decode"
      ? `${this.codec}: malformed frame from the peer: ${this.reason}`
      : `${this.codec}: cannot encode this frame: ${this.reason}`
  }
}

/** @internal */
export class FrameTimeout extends Data.TaggedError("FrameTimeout")<{
  readonly codec: string
  readonly limit: Duration.Duration
  readonly received: number
}> {
  override get message(): string {
    return `${this.codec}: a frame took longer than ${Duration.format(this.limit)} from its first byte ` +
      `(frameTimeout): ${this.received} byte${this.received === 1 ? "" : "s"} of it had arrived. The peer sends ` +
      `too slowly or stopped in the middle of a frame; raise frameTimeout if such peers are legitimate`
  }
}

/**
 * Checks a `frameTimeout` option given in code: undefined for none (left out,
 * or `Duration.infinity`). Above 0; an invalid one throws the defect
 * (`IllegalArgumentError`) naming it, as a server's options do.
 */
export const frameTimeoutOf = (where: string, input: Duration.Input | undefined): Duration.Duration | undefined => {
  if (input === undefined) return undefined
  const reason = Check.duration(input, { never: true })
  if (reason !== undefined) throw Check.defect(where, "frameTimeout", reason)
  const duration = Duration.fromInputUnsafe(input)
  return Duration.isFinite(duration) ? duration : undefined
}

/**
 * Where a frame stands after some pushes, for `frameTimeout`: `"idle"`
 * (between frames), `"begun"` (the frame in progress began since the last
 * look: its clock starts now), `"going"` (it began before: its clock runs on).
 */
export type Progress = "idle" | "begun" | "going"

/**
 * The bytes of the frame in progress: the decoder's `pending`, or, for a
 * decoder of one's own without it, `buffered`.
 */
export const pendingOf = (decoder: Framing.Decoder<unknown>): number => decoder.pending ?? decoder.buffered

/**
 * What a frame deadline keeps: the decoder it watches, and whether the frame
 * in progress began since the last look. {@link FrameWatch} is one; a handler
 * that watches its own decoder (the framed byte servers) is another, so that
 * a connection costs no second object.
 */
export interface FrameClock<A> {
  readonly decoder: Framing.Decoder<A>
  begun: boolean
}

/** Push `bytes` through the clock's decoder, noting whether the frame now pending began with them. */
export const pushWatched = <A>(
  clock: FrameClock<A>,
  bytes: Uint8Array,
  out: Array<A>
): Framing.FrameError | undefined => {
  const decoder = clock.decoder
  const idle = pendingOf(decoder) === 0
  const before = out.length
  const error = decoder.push(bytes, out)
  // A frame completed, or none was in progress: whatever is pending now began with these bytes.
  if (idle || out.length > before) clock.begun = true
  return error
}

/** Where the clock's frame stands since the last look (and start a new look). */
export const progressOf = (clock: FrameClock<unknown>): Progress => {
  const begun = clock.begun
  clock.begun = false
  return pendingOf(clock.decoder) === 0 ? "idle" : begun ? "begun" : "going"
}

/** The error of a frame that outlived `limit`: how much of it had arrived. */
export const frameTimedOut = (clock: FrameClock<unknown>, codec: string, limit: Duration.Duration): FrameTimeout =>
  new FrameTimeout({ codec, limit, received: pendingOf(clock.decoder) })

/**
 * Watches a decoder for `frameTimeout`: pushes go through it, and
 * {@link progress} says whether a frame is in progress and whether it began
 * since the last look. Time is the caller's: a pump in Node's callbacks, or
 * a fiber with Effect's clock.
 */
export class FrameWatch<A> implements FrameClock<A> {
  begun = false
  /** The limit in milliseconds. */
  readonly millis: number
  constructor(readonly decoder: Framing.Decoder<A>, readonly codec: string, readonly limit: Duration.Duration) {
    this.millis = Duration.toMillis(limit)
  }

  push(bytes: Uint8Array, out: Array<A>): Framing.FrameError | undefined {
    return pushWatched(this, bytes, out)
  }

  progress(): Progress {
    return progressOf(this)
  }

  expired(): FrameTimeout {
    return frameTimedOut(this, this.codec, this.limit)
  }
}

/** @internal */
export class InvalidCodecOptions extends Data.TaggedError("InvalidCodecOptions")<{
  readonly codec: string
  readonly option: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.codec}: invalid option ${this.option}: ${this.reason}`
  }
}

/** @internal */
export const make = <A>(codec: {
  readonly name: string
  readonly decoder: () => Framing.Decoder<A>
  readonly encode: (frames: ReadonlyArray<A>, out: Array<Uint8Array>) => Framing.FrameError | undefined
}): Framing.Codec<A> => ({ [TypeId]: TypeId, name: codec.name, decoder: codec.decoder, encode: codec.encode })

/** @internal */
export const EMPTY: Uint8Array = new Uint8Array(0)

/** 8 MiB, tokio's default maximum frame length. */
export const DEFAULT_MAX = 8 * 1024 * 1024

/**
 * The largest frame any codec accepts: V8 cannot allocate a `Uint8Array` over
 * 4 GiB on Node 20, so a larger limit would promise what cannot be kept.
 */
export const MAX_LIMIT = 2 ** 32

/**
 * Bodies at least this long are handed to the writer by reference instead of
 * being copied into the batch buffer: a writev of one more buffer is cheaper
 * than copying this much.
 */
export const BY_REFERENCE = 16 * 1024

/** @internal */
export const invalid = (codec: string, option: string, reason: string): never => {
  throw new InvalidCodecOptions({ codec, option, reason })
}

/**
 * Checks a limit (a frame, line, header or body length, a frame size) and
 * returns it (or the default): a positive integer up to `max`. 0 is refused,
 * never read as "no limit" (`internal/options`).
 */
export const limit = (codec: string, option: string, value: number | undefined, fallback: number, max: number): number => {
  if (value === undefined) return fallback
  const reason = Check.positiveInt(value, max)
  return reason === undefined ? value : invalid(codec, option, reason)
}

/** Checks an integer option that is a value, not a limit (an offset, an adjustment), and returns it (or the default). */
export const integer = (
  codec: string,
  option: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number
): number => {
  if (value === undefined) return fallback
  const reason = Check.integer(value, min, max)
  return reason === undefined ? value : invalid(codec, option, reason)
}

/**
 * Appends byte runs to `out`: small ones are copied into one batch buffer
 * allocated at its final size, runs of {@link BY_REFERENCE} bytes or more are
 * passed by reference. Callers first `reserve` every run's size, then `copy`
 * or `pass` them in the same order.
 */
export class Batch {
  private size = 0
  private buffer: Uint8Array = EMPTY
  private pos = 0
  private segment = 0
  constructor(private readonly out: Array<Uint8Array>) {}
  /** Plans a run of `n` bytes that `copy` will add (by reference if long). */
  reserve(n: number): void {
    if (n < BY_REFERENCE) this.size += n
  }
  /** Plans `n` bytes the caller writes into the buffer itself (then `advance`). */
  reserveInline(n: number): void {
    this.size += n
  }
  /**
   * Allocates the batch buffer once every run was reserved. It is not zeroed:
   * every reserved byte must be written (by `copy` or by the caller).
   */
  start(): Uint8Array {
    if (this.size > 0) this.buffer = allocUnsafe(this.size)
    return this.buffer
  }
  /** The write position in the batch buffer; advance it with `advance`. */
  get position(): number {
    return this.pos
  }
  advance(n: number): void {
    this.pos += n
  }
  copy(bytes: Uint8Array): void {
    if (bytes.length >= BY_REFERENCE) return this.pass(bytes)
    this.buffer.set(bytes, this.pos)
    this.pos += bytes.length
  }
  pass(bytes: Uint8Array): void {
    this.flush()
    this.out.push(bytes)
  }
  flush(): void {
    const { buffer, pos, segment } = this
    // The whole buffer (one batch of small frames, the common case) goes out as it is: no view of it.
    if (pos > segment) this.out.push(segment === 0 && pos === buffer.length ? buffer : buffer.subarray(segment, pos))
    this.segment = pos
  }
}

/**
 * A piece of known size that may arrive over several pushes: taken by
 * `subarray` when it lies inside one push, otherwise copied once into a buffer
 * allocated at its final size.
 */
export class Gather {
  /** The completed piece, set by `take` when it returns with `need === 0`. */
  piece: Uint8Array = EMPTY
  /** Bytes still missing. */
  need = 0
  /** Bytes already copied into `buffer`. */
  fill = 0
  private buffer: Uint8Array | undefined = undefined

  begin(size: number): void {
    this.need = size
    this.fill = 0
    this.buffer = undefined
  }

  /** Takes what it can from `bytes[p..]`; returns the new position. */
  take(bytes: Uint8Array, p: number): number {
    const avail = bytes.length - p
    const need = this.need
    if (this.buffer === undefined) {
      if (avail >= need) {
        this.piece = need === 0 ? EMPTY : bytes.subarray(p, p + need)
        this.need = 0
        return p + need
      }
      this.buffer = allocFrame(need)
    }
    const take = avail < need ? avail : need
    this.buffer.set(p === 0 && take === bytes.length ? bytes : bytes.subarray(p, p + take), this.fill)
    this.fill += take
    this.need -= take
    if (this.need === 0) {
      this.piece = this.buffer
      this.buffer = undefined
      this.fill = 0
    }
    return p + take
  }
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * UTF-8 bytes to a string, or `undefined` if they are not valid UTF-8. Very
 * short ASCII runs skip the native decoder, whose call costs more than they
 * do; from about 12 bytes on it is the faster one on Node 24 (62 ns for 23
 * bytes, against 110 for this loop and `String.fromCharCode`).
 */
export const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  const n = bytes.length
  if (n <= 10) {
    let ascii = true
    for (let i = 0; i < n; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false
        break
      }
    }
    if (ascii) return n === 0 ? "" : String.fromCharCode.apply(null, bytes as unknown as Array<number>)
  }
  try {
    return fatalUtf8.decode(bytes)
  } catch {
    return undefined
  }
}

const LONE_SURROGATE = /\p{Surrogate}/u

/**
 * Whether a string survives UTF-8 encoding unchanged: a lone surrogate would
 * be replaced by U+FFFD, so the peer would read a different string.
 */
export const isWellFormed = (s: string): boolean => !LONE_SURROGATE.test(s)

/** Shortens text meant for an error message. */
export const clip = (s: string, max = 300): string => s.length <= max ? s : `${s.slice(0, max)}…`
