/**
 * Frames on a byte stream. TCP delivers bytes, not messages: one read can hold
 * half a message or three ("sticky packets"). A {@link Codec} is a pure state
 * machine that cuts bytes into frames and back, and {@link decode}/{@link encode}
 * apply it to any `Stream` as a pipe: one batch of bytes in, one batch of the
 * frames it completed out.
 *
 * ```ts
 * import { Stream } from "effect"
 * import * as Framing from "effect-wire/Framing"
 *
 * const codec = Framing.lengthPrefixed() // | u32 BE length | body |
 * const frames = socket.reads.pipe(Framing.decode(codec)) // Stream<Uint8Array, ReadError | FrameError>
 * const written = Stream.make(hello, world).pipe(Framing.encode(codec), Stream.run(socket.writes))
 * ```
 *
 * Codecs never touch sockets. Their parameters are checked when they are
 * built: nonsense (a length field too narrow for `maxFrameLength`, an empty
 * delimiter, a limit of 0) throws {@link InvalidCodecOptions} at once, not at
 * run time. It is a typed error, not a defect, because codec options often
 * come from configuration. Every limit (`maxFrameLength`, `maxLength`,
 * `maxHeaderLength`, `maxBodyLength`, `fixed`'s `size`) is a positive
 * integer: 0 is refused, never read as "no limit"; leave a limit out for its
 * default.
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import type * as Channel from "effect/Channel"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import type * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as core from "./internal/codecs/core.js"
import * as delimitedCodec from "./internal/codecs/delimited.js"
import * as fixedCodec from "./internal/codecs/fixed.js"
import * as headerCodec from "./internal/codecs/header.js"
import * as lengthPrefixedCodec from "./internal/codecs/lengthPrefixed.js"
import * as varintCodec from "./internal/codecs/varint.js"
import { clear, concat } from "./internal/bytes.js"
import { channelFromTransform, pipeThroughChannel } from "./internal/youngTransforms.js"

// ---------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------

/**
 * Marks a {@link Codec}.
 *
 * ```ts
 * Framing.TypeId in Framing.lines() // true
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: typeof core.TypeId = core.TypeId

/** @since 0.1.0 */
export type TypeId = typeof TypeId

/**
 * A framing: a fresh stateful {@link Decoder} per connection, and a stateless
 * batch encoder. No I/O, no Effect: servers may drive it synchronously.
 *
 * `encode(frames, out)` validates the whole batch first, so it is all or
 * nothing: on a `FrameError` nothing was appended. Otherwise it appends the
 * wire bytes to `out` as few buffers as it can, ready for one `writev`: small
 * frames and every header are copied into one buffer allocated at its final
 * size; bodies of 16 KiB or more are appended by reference (do not mutate them
 * until written). It rejects every frame the decoder would reject, so a peer
 * using the same codec never sees an error you could have caught yourself.
 *
 * ```ts
 * const codec = Framing.lengthPrefixed()
 * const out: Array<Uint8Array> = []
 * const error = codec.encode([hello, world], out) // out: [| 0 0 0 5 | hello | 0 0 0 5 | world |]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Codec<A> {
  readonly [TypeId]: TypeId
  /** Names the codec in error messages, e.g. `lengthPrefixed(32-bit big-endian)`. */
  readonly name: string
  /** A fresh decoder: one per byte stream. */
  readonly decoder: () => Decoder<A>
  /** Appends the wire bytes of `frames` to `out`, or returns why one cannot be sent (appending nothing). */
  readonly encode: (frames: ReadonlyArray<A>, out: Array<Uint8Array>) => FrameError | undefined
}

/**
 * A stateful decoder for one byte stream.
 *
 * - `push(bytes, out)` appends every frame `bytes` completes to `out` and
 *   keeps the bytes of an unfinished frame (at most the codec's limit plus a
 *   few header bytes). A frame inside `bytes` is a `subarray` of it (no copy),
 *   so do not mutate pushed bytes afterwards. On a `FrameError`, `out` holds
 *   the frames before the bad one. The decoder is then `failed` and repeats
 *   the error, unless the codec resynchronises (`resync` of `lines` and
 *   `delimited`): then it skips the bad frame, keeps the rest of `bytes`,
 *   and the next `push` (an empty array will do) goes on from there.
 * - `end(out)` says the input is over: bytes of an unfinished frame make an
 *   `IncompleteFrame` (tokio's "bytes remaining on stream").
 * - `buffered` is how many bytes it holds right now; `pending` is how many
 *   bytes of the frame in progress have arrived (its header included), 0
 *   between frames: what `frameTimeout` watches.
 *
 * ```ts
 * const decoder = Framing.lengthPrefixed().decoder()
 * const frames: Array<Uint8Array> = []
 * for (const bytes of reads) {
 *   const error = decoder.push(bytes, frames)
 *   if (error !== undefined) throw error
 * }
 * const error = decoder.end(frames)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Decoder<A> {
  push(bytes: Uint8Array, out: Array<A>): FrameError | undefined
  end(out: Array<A>): FrameError | undefined
  /**
   * Bytes copied and held for a frame not complete yet (not counting the
   * rest of a push kept, by reference, after a recoverable error).
   */
  readonly buffered: number
  /**
   * Bytes of the frame in progress that have arrived, its header included
   * (held or not): 0 exactly between frames, and what `end` would report as
   * `IncompleteFrame.remaining`. Every built-in decoder has it. A decoder of
   * your own may leave it out; `frameTimeout` then watches `buffered`, which
   * misses a frame whose header was read but none of its body.
   */
  readonly pending?: number | undefined
  /** Whether an error ended this decoder: every later call repeats it. */
  readonly failed: boolean
}

/**
 * A frame announced (or, when sending, given) larger than the codec's limit.
 * Decoders see it from the header, before buffering a single byte of the body,
 * so a peer claiming 4 GiB costs nothing. `size` is the announced size; when
 * `exact` is false (a delimiter not seen yet) it is a lower bound. `option`
 * names the setting that sets `limit`.
 *
 * ```ts
 * frames.pipe(Stream.catchTag("FrameTooLarge", (e) => Stream.fail(`${e.size} > ${e.limit}`)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const FrameTooLarge: typeof core.FrameTooLarge = core.FrameTooLarge

/**
 * The instance type of {@link FrameTooLarge}.
 *
 * ```ts
 * const sizeOf = (e: Framing.FrameTooLarge) => e.size
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type FrameTooLarge = core.FrameTooLarge

/**
 * The input ended inside a frame; `remaining` is how many bytes of it had
 * arrived.
 *
 * ```ts
 * frames.pipe(Stream.catchTag("IncompleteFrame", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const IncompleteFrame: typeof core.IncompleteFrame = core.IncompleteFrame

/**
 * The instance type of {@link IncompleteFrame}.
 *
 * ```ts
 * const leftover = (e: Framing.IncompleteFrame) => e.remaining
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type IncompleteFrame = core.IncompleteFrame

/**
 * A frame that breaks the codec's rules: a negative adjusted length, an
 * over-long varint, invalid UTF-8 in a text line, a header that is not JSON or
 * does not match its Schema (`cause` holds the `Schema.SchemaError`), or, when
 * sending, a frame the peer could not read back (a line containing `\n`).
 * `direction` says which side noticed.
 *
 * ```ts
 * Effect.catchTag("MalformedFrame", (e) => Console.error(e.reason))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const MalformedFrame: typeof core.MalformedFrame = core.MalformedFrame

/**
 * The instance type of {@link MalformedFrame}.
 *
 * ```ts
 * const why = (e: Framing.MalformedFrame) => e.reason
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type MalformedFrame = core.MalformedFrame

/**
 * A frame took longer than `frameTimeout` from its first byte to its last:
 * the peer sends too slowly, or stopped in the middle of a frame. `limit` is
 * the frame timeout and `received` how many bytes of the frame had arrived.
 * It comes from a pipe or a server that watches time ({@link decode} with
 * `frameTimeout`, the framed byte servers), never from a codec, so it is not
 * one of the {@link FrameError}s.
 *
 * ```ts
 * frames.pipe(Stream.catchTag("FrameTimeout", (e) => Stream.fail(`stalled after ${e.received} bytes`)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const FrameTimeout: typeof core.FrameTimeout = core.FrameTimeout

/**
 * The instance type of {@link FrameTimeout}.
 *
 * ```ts
 * const arrived = (e: Framing.FrameTimeout) => e.received
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type FrameTimeout = core.FrameTimeout

/**
 * Codec parameters that make no sense, thrown when the codec is built (a
 * programming or configuration mistake, never a run-time condition): a typed
 * error naming the `option`, so that configuration can be reported back.
 *
 * ```ts
 * Framing.lengthPrefixed({ lengthBytes: 2 }) // fine: maxFrameLength defaults to 65535
 * Framing.lengthPrefixed({ lengthBytes: 2, maxFrameLength: 100_000 }) // throws InvalidCodecOptions
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const InvalidCodecOptions: typeof core.InvalidCodecOptions = core.InvalidCodecOptions

/**
 * The instance type of {@link InvalidCodecOptions}.
 *
 * ```ts
 * const option = (e: Framing.InvalidCodecOptions) => e.option
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type InvalidCodecOptions = core.InvalidCodecOptions

/**
 * Everything decoding or encoding frames can fail with; each has its own `_tag`.
 *
 * ```ts
 * const describe = (e: Framing.FrameError) => e._tag === "FrameTooLarge" ? `${e.size} > ${e.limit}` : e.message
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type FrameError = FrameTooLarge | IncompleteFrame | MalformedFrame

/**
 * Is this value a {@link FrameError}?
 *
 * ```ts
 * Effect.catchIf(Framing.isFrameError, (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isFrameError = (u: unknown): u is FrameError =>
  u instanceof core.FrameTooLarge || u instanceof core.IncompleteFrame || u instanceof core.MalformedFrame

/**
 * Is this value a {@link Codec}?
 *
 * ```ts
 * Framing.isCodec(Framing.lines()) // true
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isCodec = (u: unknown): u is Codec<unknown> => typeof u === "object" && u !== null && TypeId in u

/**
 * Make a codec of your own from a decoder factory and a batch encoder; check
 * it with `testing/CodecLaws`.
 *
 * ```ts
 * const codec = Framing.make({ name: "mine", decoder: () => new MyDecoder(), encode: myEncode })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <A>(codec: {
  readonly name: string
  readonly decoder: () => Decoder<A>
  readonly encode: (frames: ReadonlyArray<A>, out: Array<Uint8Array>) => FrameError | undefined
}) => Codec<A> = core.make

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

/**
 * Options of {@link lengthPrefixed}; Netty's LengthFieldBasedFrameDecoder
 * calls them lengthFieldLength, lengthFieldOffset, lengthAdjustment and
 * initialBytesToStrip.
 *
 * ```ts
 * const options: Framing.LengthPrefixedOptions = { lengthBytes: 2, endian: "little", maxFrameLength: 4096 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LengthPrefixedOptions {
  /** Width of the length field (default 4). */
  readonly lengthBytes?: 1 | 2 | 3 | 4 | 8 | undefined
  /** Byte order of the length field (default `"big"`, network order). */
  readonly endian?: "big" | "little" | undefined
  /** Header bytes before the length field (default 0); they are written as zeros. */
  readonly offset?: number | undefined
  /**
   * Added to the field's value to get the number of bytes after the field
   * (default 0). A length that counts the whole header is
   * `-(offset + lengthBytes)`.
   */
  readonly adjustment?: number | undefined
  /**
   * Bytes dropped from the front of each frame, 0 to `offset + lengthBytes`
   * (default: all of them, so frames are bodies). With less, frames keep
   * their header, and encoding checks that the length field they carry is right.
   */
  readonly strip?: number | undefined
  /**
   * The most bytes after the length field (default 8 MiB, or less if the
   * field cannot count that far). Checked from the header before any body
   * byte is buffered; from 1 to 4 GiB.
   */
  readonly maxFrameLength?: number | undefined
}

/**
 * Frames led by a length field (tokio's LengthDelimitedCodec, Netty's
 * LengthFieldBasedFrameDecoder and LengthFieldPrepender). By default a 4-byte
 * big-endian length, then that many bytes; frames are the bodies:
 *
 * ```text
 * | 00 00 00 0B | Hello world |  -->  | Hello world |
 * ```
 *
 * With a 2-byte prefix before the field, a length counting the whole header,
 * and the header kept (`offset: 2, adjustment: -6, strip: 0`):
 *
 * ```text
 * | CA FE | 00 00 00 11 | Hello world |  -->  | CA FE 00 00 00 11 Hello world |
 * ```
 *
 * ```ts
 * const codec = Framing.lengthPrefixed({ lengthBytes: 2, maxFrameLength: 1024 })
 * const frames = socket.reads.pipe(Framing.decode(codec))
 * ```
 *
 * Throws {@link InvalidCodecOptions} when the options make no sense: a length
 * field too narrow for `maxFrameLength`, an adjustment under which every
 * length is negative or every frame too large, `strip` beyond the header.
 *
 * @since 0.1.0
 * @category codecs
 */
export const lengthPrefixed: (options?: LengthPrefixedOptions) => Codec<Uint8Array> = lengthPrefixedCodec.lengthPrefixed

/**
 * Options of {@link varint}.
 *
 * ```ts
 * const options: Framing.VarintOptions = { maxFrameLength: 1 << 20 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface VarintOptions {
  /** The largest frame (default 8 MiB; from 1 to 4 GiB). */
  readonly maxFrameLength?: number | undefined
}

/**
 * Frames led by their length as an unsigned LEB128 varint, as protobuf's
 * delimited streams and libp2p use. Non-minimal varints (padded with `0x80`
 * bytes) are a `MalformedFrame`, as libp2p's unsigned-varint requires; a varint
 * already over `maxFrameLength` fails as `FrameTooLarge` before it even ends.
 *
 * ```text
 * | AC 02 | 300 bytes |  -->  | 300 bytes |
 * ```
 *
 * ```ts
 * const codec = Framing.varint({ maxFrameLength: 1 << 20 })
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const varint: (options?: VarintOptions) => Codec<Uint8Array> = varintCodec.varint

/**
 * Options of {@link delimited}.
 *
 * ```ts
 * const options: Framing.DelimitedOptions = { delimiter: "\r\n", maxLength: 1024, resync: true }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DelimitedOptions {
  /** The bytes that end each frame; a string is taken as UTF-8. Not empty. */
  readonly delimiter: Uint8Array | string
  /** The longest frame, not counting the delimiter (default 8 MiB; from 1 to 4 GiB). */
  readonly maxLength?: number | undefined
  /** Whether frames end with their delimiter (default false). */
  readonly keepDelimiter?: boolean | undefined
  /**
   * After a frame over `maxLength`: false (default) the decoder fails; true
   * it reports `FrameTooLarge`, drops bytes up to the next delimiter without
   * holding them, and goes on (like tokio's LinesCodec).
   */
  readonly resync?: boolean | undefined
}

/**
 * Frames ended by a delimiter of one or more bytes. Memory stays bounded: a
 * frame still without its delimiter after `maxLength` bytes fails at once.
 *
 * ```text
 * | Hello \0 world \0 |  -->  | Hello | world |
 * ```
 *
 * ```ts
 * const codec = Framing.delimited({ delimiter: "\0", maxLength: 4096 })
 * ```
 *
 * Throws {@link InvalidCodecOptions} for an empty delimiter.
 *
 * @since 0.1.0
 * @category codecs
 */
export const delimited: (options: DelimitedOptions) => Codec<Uint8Array> = delimitedCodec.delimited

/**
 * Options of {@link lines}.
 *
 * ```ts
 * const options: Framing.LinesOptions = { as: "string", maxLength: 1024 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LinesOptions {
  /** The longest line, not counting `\r\n` or `\n` (default 8 MiB; from 1 to 4 GiB). */
  readonly maxLength?: number | undefined
  /** Frames as bytes (default) or as strings (UTF-8; invalid UTF-8 is a `MalformedFrame`). */
  readonly as?: "bytes" | "string" | undefined
  /** After an over-long (or, as strings, non-UTF-8) line, report it, skip to the next line, and go on. */
  readonly resync?: boolean | undefined
}

/**
 * Text lines ending in `\n` or `\r\n` (the line ending is not part of the
 * frame). Encoding appends `\n`, and rejects a line containing `\n` or ending
 * in `\r`, which the peer could not read back.
 *
 * ```text
 * | GET a\r\n | PUT b\n |  -->  | GET a | PUT b |
 * ```
 *
 * ```ts
 * const commands = socket.reads.pipe(Framing.decode(Framing.lines({ as: "string", maxLength: 1024 })))
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const lines: {
  (options?: LinesOptions & { readonly as?: "bytes" | undefined }): Codec<Uint8Array>
  (options: LinesOptions & { readonly as: "string" }): Codec<string>
} = delimitedCodec.lines as any

/**
 * Frames of exactly `size` bytes. Encoding any other size is a
 * `MalformedFrame`; throws {@link InvalidCodecOptions} unless `size` is a
 * positive integer.
 *
 * ```text
 * | 0102 0304 05 |  -- fixed(2) -->  | 0102 | 0304 |  (and IncompleteFrame(1) at the end)
 * ```
 *
 * ```ts
 * const samples = socket.reads.pipe(Framing.decode(Framing.fixed(4)))
 * ```
 *
 * @since 0.1.0
 * @category codecs
 */
export const fixed: (size: number) => Codec<Uint8Array> = fixedCodec.fixed

/**
 * A frame of the {@link header} codec: the decoded header and the raw body.
 *
 * ```ts
 * const frame: Framing.HeaderFrame<{ readonly length: number }> = { header: { length: 2 }, body: new Uint8Array(2) }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HeaderFrame<H> {
  readonly header: H
  readonly body: Uint8Array
}

/**
 * Options of {@link header}.
 *
 * ```ts
 * const options: Framing.HeaderOptions<{ readonly n: number }, { readonly n: number }> = {
 *   header: Schema.Struct({ n: Schema.Number }),
 *   bodyLength: (h) => h.n
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HeaderOptions<H, I> {
  /** The header's Schema; its encoded side is written as JSON. */
  readonly header: Schema.Codec<H, I>
  /** How long the body after this header is. */
  readonly bodyLength: (header: H) => number
  /** The longest header JSON, in bytes (default 64 KiB; from 1 to 4 GiB - 1). */
  readonly maxHeaderLength?: number | undefined
  /** The longest body (default 8 MiB; from 1 to 4 GiB); checked before a byte of it is buffered. */
  readonly maxBodyLength?: number | undefined
}

/**
 * The tutorials' "custom data header": a 4-byte big-endian length, a UTF-8
 * JSON header described by a Schema, then a raw body whose length a header
 * field gives. Frames are `{ header, body }`.
 *
 * ```text
 * | 00 00 00 23 | {"stdoutLength":5,"stderrLength":0} | hello |  -->  { header, body: | hello | }
 * ```
 *
 * ```ts
 * const Output = Schema.Struct({ stdoutLength: Schema.Int, stderrLength: Schema.Int })
 * const codec = Framing.header({ header: Output, bodyLength: (h) => h.stdoutLength + h.stderrLength })
 * ```
 *
 * A header that is not UTF-8 JSON or does not match the Schema is a
 * `MalformedFrame` whose `cause` says why. Encoding runs the decoder's checks
 * on what it writes, so a header that JSON cannot carry (`NaN`) fails when sent.
 *
 * @since 0.1.0
 * @category codecs
 */
export const header: <H, I>(options: HeaderOptions<H, I>) => Codec<HeaderFrame<H>> = headerCodec.header

// ---------------------------------------------------------------------------
// Stream pipes
// ---------------------------------------------------------------------------

/**
 * One pipe stage, run synchronously on whole batches: `push` appends what a
 * batch completes to `out` and returns `undefined` to go on, a `FrameError` to
 * fail after emitting `out`, or `STOP` to end after emitting `out`.
 */
interface Stage<Out, In> {
  readonly push: (batch: Arr.NonEmptyReadonlyArray<In>, out: Array<Out>) => FrameError | typeof STOP | undefined
  readonly end: (out: Array<Out>) => FrameError | undefined
  /** With a frame timeout: the watch over its decoder. */
  readonly watch?: core.FrameWatch<unknown> | undefined
}

const STOP: unique symbol = Symbol("effect-wire/Framing/STOP")

type FrameChannel<Out, In, E> = Channel.Channel<
  Arr.NonEmptyReadonlyArray<Out>,
  E | FrameError | FrameTimeout,
  void,
  Arr.NonEmptyReadonlyArray<In>,
  E,
  unknown
>

/**
 * Runs a {@link Stage} as a channel: one batch in, at most one batch out, no
 * Effect per frame. A batch that completes nothing pulls the next one (a Stream
 * must never emit an empty batch). What a batch completed before an error
 * comes out first, the error on the next pull; upstream errors pass through.
 * A stage with a frame timeout bounds the wait for the next batch while a
 * frame is in progress, on Effect's clock.
 */
const stageChannel = <Out, In, E>(make: () => Stage<Out, In>): FrameChannel<Out, In, E> =>
  channelFromTransform((upstream: Pull.Pull<Arr.NonEmptyReadonlyArray<In>, E, unknown>) =>
    Effect.clockWith((clock) =>
      Effect.sync(() => {
        type P = Pull.Pull<Arr.NonEmptyReadonlyArray<Out>, E | FrameError | FrameTimeout, void>
        const stage = make()
        const watch = stage.watch
        // When the frame in progress must be complete, in the clock's milliseconds; undefined between frames.
        let expiresAt: number | undefined
        // Once set, every later pull returns it: the end of the stream, or its error.
        let last: P | undefined
        const finish = (out: Array<Out>, error: FrameError | undefined): P => {
          last = error === undefined ? Cause.done() : Effect.fail(error)
          return out.length > 0 ? Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<Out>) : last
        }
        const onSuccess = (batch: Arr.NonEmptyReadonlyArray<In>): P => {
          const out: Array<Out> = []
          const outcome = stage.push(batch, out)
          if (outcome !== undefined) return finish(out, outcome === STOP ? undefined : outcome)
          if (watch !== undefined) {
            const progress = watch.progress()
            if (progress === "idle") expiresAt = undefined
            else if (progress === "begun") expiresAt = clock.currentTimeMillisUnsafe() + watch.millis
          }
          return out.length > 0 ? Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<Out>) : pull
        }
        // The end of the input, or an error of it (or of the frame's time), passed on.
        const onFailure = (cause: Cause.Cause<E | FrameTimeout | Cause.Done<unknown>>): P => {
          if (!Pull.isDoneCause(cause)) return Effect.failCause(cause as Cause.Cause<E | FrameTimeout>)
          const out: Array<Out> = []
          return finish(out, stage.end(out))
        }
        const handlers = { onSuccess, onFailure }
        // Built once and run for every batch: a pull allocates no Effect of its own between frames.
        const fromUpstream: P = Effect.matchCauseEffect(upstream, handlers)
        const expired = Effect.suspend(() => Effect.fail(watch!.expired()))
        // The next batch, within what is left of the frame's time once a frame is in progress.
        const next = (): P => {
          if (expiresAt === undefined) return fromUpstream
          const left = expiresAt - clock.currentTimeMillisUnsafe()
          return Effect.matchCauseEffect(
            left <= 0 ? expired : Effect.timeoutOrElse(upstream, { duration: left, orElse: () => expired }),
            handlers
          )
        }
        const pull: P = Effect.suspend(() => last ?? next())
        return pull
      })
    )
  )

const decodeStage = <A>(codec: Codec<A>, frameTimeout: Duration.Duration | undefined): Stage<A, Uint8Array> => {
  const decoder = codec.decoder()
  const watch = frameTimeout === undefined ? undefined : new core.FrameWatch(decoder, codec.name, frameTimeout)
  const push = watch === undefined ? decoder : watch
  return {
    push: (chunks, out) => {
      for (let i = 0; i < chunks.length; i++) {
        const error = push.push(chunks[i]!, out)
        if (error !== undefined) return error
      }
      return undefined
    },
    end: (out) => decoder.end(out),
    watch: watch as core.FrameWatch<unknown> | undefined
  }
}

/**
 * Options of {@link decode}.
 *
 * ```ts
 * const options: Framing.DecodeOptions = { frameTimeout: "30 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions {
  /**
   * The longest a frame may take from its first byte to its last; past it
   * the stream fails with {@link FrameTimeout}. Between frames no time limit
   * runs (that is an idle timeout's job). Above 0; `Duration.infinity`, like
   * leaving it out, means none. 0 is refused (a defect, as for a server's
   * options given in code). It needs the decoder's `pending` to see a frame
   * begin (see {@link Decoder}).
   */
  readonly frameTimeout?: Duration.Input | undefined
}


/**
 * Cut a byte stream into frames: each batch of bytes becomes one batch of the
 * frames it completed (no Effect per frame). At the end of the input, bytes
 * of an unfinished frame fail the stream with `IncompleteFrame`. A fresh
 * decoder is made each time the stream runs. With `frameTimeout` (see
 * {@link DecodeOptions}) a frame that takes longer from its first byte to
 * its last fails the stream with {@link FrameTimeout}, so that a peer
 * sending one byte at a time cannot hold a connection that an idle timeout
 * would never close.
 *
 * ```ts
 * const frames = socket.reads.pipe(Framing.decode(Framing.lengthPrefixed()))
 * // Stream<Uint8Array, ReadError | FrameError>
 * const bounded = socket.reads.pipe(Framing.decode(Framing.lines(), { frameTimeout: "30 seconds" }))
 * // Stream<Uint8Array, ReadError | FrameError | FrameTimeout>
 * ```
 *
 * @since 0.1.0
 * @category pipes
 */
export const decode: {
  <A>(codec: Codec<A>): <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<A, E | FrameError, R>
  <A>(
    codec: Codec<A>,
    options: DecodeOptions
  ): <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<A, E | FrameError | FrameTimeout, R>
  <E, R, A>(self: Stream.Stream<Uint8Array, E, R>, codec: Codec<A>): Stream.Stream<A, E | FrameError, R>
  <E, R, A>(
    self: Stream.Stream<Uint8Array, E, R>,
    codec: Codec<A>,
    options: DecodeOptions
  ): Stream.Stream<A, E | FrameError | FrameTimeout, R>
} = dual(
  (args) => Stream.isStream(args[0]),
  <E, R, A>(
    self: Stream.Stream<Uint8Array, E, R>,
    codec: Codec<A>,
    options?: DecodeOptions
  ): Stream.Stream<A, E | FrameError | FrameTimeout, R> => {
    const frameTimeout = core.frameTimeoutOf("Framing.decode", options?.frameTimeout)
    return pipeThroughChannel(self, stageChannel<A, Uint8Array, E>(() => decodeStage(codec, frameTimeout)))
  }
)

const EMPTY = new Uint8Array(0)

const decodeResultStage = <A>(codec: Codec<A>): Stage<Result.Result<A, FrameError>, Uint8Array> => {
  const decoder = codec.decoder()
  const frames: Array<A> = []
  // Moves decoded frames into `out` as successes, then the error (if any) as a failure; true if decoding can go on.
  const settle = (out: Array<Result.Result<A, FrameError>>, error: FrameError | undefined): boolean => {
    for (let i = 0; i < frames.length; i++) out.push(Result.succeed(frames[i]!))
    clear(frames)
    if (error === undefined) return true
    out.push(Result.fail(error))
    return !decoder.failed
  }
  return {
    push: (chunks, out) => {
      for (let i = 0; i < chunks.length; i++) {
        let error = decoder.push(chunks[i]!, frames)
        while (error !== undefined) {
          if (!settle(out, error)) return STOP
          const next = decoder.push(EMPTY, frames)
          // A decoder that repeats the same error is stuck, whatever `failed` says.
          if (next === error) return STOP
          error = next
        }
        settle(out, undefined)
      }
      return undefined
    },
    end: (out) => {
      let error = decoder.end(frames)
      while (error !== undefined && settle(out, error)) {
        const next = decoder.end(frames)
        if (next === error) break
        error = next
      }
      settle(out, undefined)
      return undefined
    }
  }
}

/**
 * Like {@link decode}, but a frame error is a value, `Result.fail(error)`,
 * instead of a failure. With a codec that resynchronises
 * (`lines({ resync: true })`) the stream goes on after it, so a server can
 * answer "line too long" and read the next line; otherwise the failure is the
 * stream's last element.
 *
 * ```ts
 * socket.reads.pipe(
 *   Framing.decodeResult(Framing.lines({ as: "string", maxLength: 80, resync: true })),
 *   Stream.map(Result.match({ onFailure: (e) => `error: ${e.message}`, onSuccess: (line) => line.toUpperCase() }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category pipes
 */
export const decodeResult: {
  <A>(
    codec: Codec<A>
  ): <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<Result.Result<A, FrameError>, E, R>
  <E, R, A>(self: Stream.Stream<Uint8Array, E, R>, codec: Codec<A>): Stream.Stream<Result.Result<A, FrameError>, E, R>
} = dual(
  2,
  <E, R, A>(self: Stream.Stream<Uint8Array, E, R>, codec: Codec<A>): Stream.Stream<Result.Result<A, FrameError>, E, R> =>
    // The stage never returns a FrameError, so the stream cannot fail with one.
    pipeThroughChannel(
      self,
      stageChannel<Result.Result<A, FrameError>, Uint8Array, E>(() => decodeResultStage(codec))
    ) as Stream.Stream<Result.Result<A, FrameError>, E, R>
)

const encodeStage = <A>(codec: Codec<A>): Stage<Uint8Array, A> => ({
  push: (frames, out) => codec.encode(frames, out),
  end: () => undefined
})

/**
 * Turn frames into bytes: each batch of frames becomes one batch of buffers
 * (see {@link Codec}), which `Socket.writes` sends as one `writev`. A frame
 * the codec cannot send fails the stream before any byte of its batch is
 * emitted.
 *
 * ```ts
 * yield* Stream.make(hello, world).pipe(Framing.encode(Framing.lengthPrefixed()), Stream.run(socket.writes))
 * ```
 *
 * @since 0.1.0
 * @category pipes
 */
export const encode: {
  <A>(codec: Codec<A>): <E, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<Uint8Array, E | FrameError, R>
  <A, E, R>(self: Stream.Stream<A, E, R>, codec: Codec<A>): Stream.Stream<Uint8Array, E | FrameError, R>
} = dual(
  2,
  <A, E, R>(self: Stream.Stream<A, E, R>, codec: Codec<A>): Stream.Stream<Uint8Array, E | FrameError, R> =>
    // A stage without a frame timeout never fails with FrameTimeout.
    pipeThroughChannel(self, stageChannel<Uint8Array, A, E>(() => encodeStage(codec))) as Stream.Stream<
      Uint8Array,
      E | FrameError,
      R
    >
)

// ---------------------------------------------------------------------------
// Whole buffers
// ---------------------------------------------------------------------------

/**
 * Decode a complete buffer (or several, in order): every frame, or the first
 * error, including `IncompleteFrame` for leftover bytes.
 *
 * ```ts
 * Framing.decodeAll(Framing.lines({ as: "string" }), bytes) // Result<Array<string>, FrameError>
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeAll = <A>(
  codec: Codec<A>,
  bytes: Uint8Array | Iterable<Uint8Array>
): Result.Result<Array<A>, FrameError> => {
  const decoder = codec.decoder()
  const out: Array<A> = []
  for (const chunk of bytes instanceof Uint8Array ? [bytes] : bytes) {
    const error = decoder.push(chunk, out)
    if (error !== undefined) return Result.fail(error)
  }
  const error = decoder.end(out)
  return error === undefined ? Result.succeed(out) : Result.fail(error)
}

/**
 * Encode frames into one contiguous buffer.
 *
 * ```ts
 * Framing.encodeAll(Framing.lines({ as: "string" }), ["a", "b"]) // Success(| a \n b \n |)
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const encodeAll = <A>(codec: Codec<A>, frames: Iterable<A>): Result.Result<Uint8Array, FrameError> => {
  const out: Array<Uint8Array> = []
  const error = codec.encode(Array.isArray(frames) ? frames : Array.from(frames), out)
  if (error !== undefined) return Result.fail(error)
  return Result.succeed(concat(out))
}
