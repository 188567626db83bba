/**
 * Delimiter framing: any byte sequence, and text lines ending in `\n` or
 * `\r\n`. Documented in `Framing.delimited` and `Framing.lines`.
 *
 * @since 0.1.0
 * @internal
 */
import { Buffer } from "node:buffer"
import type * as Framing from "../../Framing.js"
import { allocFrame, encodeUtf8 } from "../bytes.js"
import {
  Batch,
  decodeUtf8,
  DEFAULT_MAX,
  EMPTY,
  FrameTooLarge,
  IncompleteFrame,
  invalid,
  isWellFormed,
  limit,
  make,
  MalformedFrame,
  MAX_LIMIT
} from "./core.js"

const bufferIndexOf = Buffer.prototype.indexOf

/**
 * The index of `byte` in `bytes[from..]`, or -1. Node's `Buffer#indexOf` runs
 * `memchr`: 2x faster than `Uint8Array#indexOf` on 16-byte spans and 5-10x on
 * kilobytes. It reads any `Uint8Array`, no `Buffer` needed.
 */
const indexOfByte = (bytes: Uint8Array, byte: number, from: number): number =>
  bufferIndexOf.call(bytes as Buffer, byte, from)

/**
 * How far a loop in JavaScript looks for a delimiter before it calls
 * `memchr`: the native call costs about 20 ns, the loop under half a
 * nanosecond a byte (16-byte frames: 11 ns a frame against 28).
 */
const NEAR = 48

/**
 * Finds a delimiter in a byte stream pushed in pieces. `m` is how many bytes
 * of the delimiter the input seen so far ends with (KMP state), so a
 * delimiter split across pushes is found. Inside a piece the search looks for
 * the delimiter's first byte: while frames are short, with a loop over the
 * next {@link NEAR} bytes first, else with the native `indexOf`.
 */
class Searcher {
  m = 0
  /** Whether the last delimiter was found within {@link NEAR} bytes of where its search began. */
  private near = true
  private readonly fail: Int32Array
  constructor(private readonly D: Uint8Array) {
    // KMP failure function: fail[k] = longest proper border of D[0..k].
    const fail = new Int32Array(D.length)
    for (let k = 1, b = 0; k < D.length; k++) {
      while (b > 0 && D[k] !== D[b]) b = fail[b - 1]!
      if (D[k] === D[b]) b++
      fail[k] = b
    }
    this.fail = fail
  }

  private step(m: number, byte: number): number {
    const D = this.D
    while (m > 0 && D[m] !== byte) m = this.fail[m - 1]!
    return D[m] === byte ? m + 1 : m
  }

  /** The index just past the first delimiter ending in `bytes[from..]`, or -1. */
  scan(bytes: Uint8Array, from: number): number {
    return this.m > 0 ? this.resume(bytes, from) : this.find(bytes, from)
  }

  /** `scan` when the input so far ends with `m` bytes of the delimiter: the KMP steps, then `find`. */
  private resume(bytes: Uint8Array, from: number): number {
    const d = this.D.length
    const len = bytes.length
    let m = this.m
    let i = from
    while (m > 0 && i < len) {
      m = this.step(m, bytes[i++]!)
      if (m === d) {
        this.m = 0
        return i
      }
    }
    this.m = m
    return m > 0 ? -1 : this.find(bytes, i)
  }

  /**
   * `scan` with no partial delimiter before `from`: the native search for the
   * delimiter's first byte, then a check of the rest. Small enough to be
   * inlined into the decoder's loop.
   */
  find(bytes: Uint8Array, from: number): number {
    const D = this.D
    const d = D.length
    if (d === 1) {
      const j = this.first(bytes, from)
      return j < 0 ? -1 : j + 1
    }
    const len = bytes.length
    for (let i = from;;) {
      const j = this.first(bytes, i)
      if (j < 0) return -1
      let k = 1
      while (k < d && j + k < len && bytes[j + k] === D[k]) k++
      if (k === d) return j + d
      if (j + k === len) {
        // The earliest partial match reaching the end is the longest one.
        this.m = k
        return -1
      }
      i = j + 1
    }
  }

  /** The index of the delimiter's first byte in `bytes[from..]`, or -1. */
  private first(bytes: Uint8Array, from: number): number {
    const first = this.D[0]!
    if (this.near) {
      const len = bytes.length
      const stop = len - from > NEAR ? from + NEAR : len
      for (let i = from; i < stop; i++) if (bytes[i] === first) return i
      if (stop === len) return -1
      this.near = false
      return indexOfByte(bytes, first, stop)
    }
    const j = indexOfByte(bytes, first, from)
    if (j >= 0 && j - from < NEAR) this.near = true
    return j
  }
}

interface Config {
  readonly name: string
  readonly what: string
  readonly delimiter: Uint8Array
  readonly keep: boolean
  /** Lines: a `\r` before the `\n` is part of the line ending. */
  readonly crlf: boolean
  readonly max: number
  /** The most bytes held while no delimiter has been seen; more cannot make a frame within `max`. */
  readonly hold: number
  readonly resync: boolean
  readonly text: boolean
}

const SHRINK_ABOVE = 64 * 1024

/**
 * The decode state machine: `Frame` (collecting the bytes of a frame until a
 * delimiter) and `Discard` (after an over-long frame, with `resync`: dropping
 * bytes up to the next delimiter). A frame inside one push is a `subarray` of
 * it. The unfinished frame at the end of a push is kept as a view of that
 * push (`tail`; the contract forbids mutating pushed bytes), and copied only
 * when it completes, straight into the frame: one copy for a frame over two
 * pushes. A frame over more pushes gathers its older pieces in `acc`.
 */
class Decoder<A> implements Framing.Decoder<A> {
  private readonly searcher: Searcher
  /** The unfinished frame's bytes from the pushes before the last one that held some of it. */
  private acc: Uint8Array = EMPTY
  private accLen = 0
  /** The unfinished frame's bytes from the last push that held some: a view of it. */
  private tail: Uint8Array = EMPTY
  private discarding = false
  /** With `resync`: the rest of a push after a recoverable error, decoded by the next call. */
  private readonly deferred: Array<Uint8Array> = []
  /** While discarding: the bytes of the over-long frame dropped so far. */
  private skipped = 0
  private error: Framing.FrameError | undefined = undefined

  constructor(private readonly C: Config) {
    this.searcher = new Searcher(C.delimiter)
  }

  get buffered(): number {
    return this.accLen + this.tail.length
  }

  get pending(): number {
    return this.discarding ? this.skipped : this.accLen + this.tail.length
  }

  get failed(): boolean {
    return this.error !== undefined
  }

  push(bytes: Uint8Array, out: Array<A>): Framing.FrameError | undefined {
    if (this.error !== undefined) return this.error
    if (this.deferred.length === 0) return bytes.length === 0 ? undefined : this.run(bytes, out)
    if (bytes.length > 0) this.deferred.push(bytes)
    return this.drain(out)
  }

  end(out: Array<A>): Framing.FrameError | undefined {
    if (this.error !== undefined) return this.error
    const error = this.drain(out)
    if (error !== undefined) return error
    const held = this.accLen + this.tail.length
    // A line that was too long was reported already, even if it never ended.
    if (this.discarding || held === 0) return undefined
    return this.error = new IncompleteFrame({ codec: this.C.name, remaining: held })
  }

  private drain(out: Array<A>): Framing.FrameError | undefined {
    while (this.deferred.length > 0) {
      const error = this.run(this.deferred.shift()!, out)
      if (error !== undefined) return error
    }
    return undefined
  }

  /** A recoverable error with `resync`, else the decoder's last word. */
  private recover(error: Framing.FrameError, rest: Uint8Array | undefined): Framing.FrameError {
    if (!this.C.resync) return this.error = error
    if (rest !== undefined && rest.length > 0) this.deferred.unshift(rest)
    return error
  }

  private reset(): void {
    this.accLen = 0
    this.tail = EMPTY
    if (this.acc.length > SHRINK_ABOVE) this.acc = EMPTY
  }

  /** Copies `bytes` after the `accLen` bytes of `acc`, growing it (up to the bound) if needed. */
  private append(bytes: Uint8Array): void {
    const needed = this.accLen + bytes.length
    if (needed > this.acc.length) {
      const grown = new Uint8Array(Math.min(Math.max(needed, this.acc.length * 2, 256), this.C.hold))
      grown.set(this.acc.subarray(0, this.accLen), 0)
      this.acc = grown
    }
    this.acc.set(bytes, this.accLen)
    this.accLen = needed
  }

  private tooLarge(size: number, exact: boolean): Framing.FrameError {
    const C = this.C
    return new FrameTooLarge({
      codec: C.name,
      direction: "decode",
      what: C.what,
      option: "maxLength",
      limit: C.max,
      size,
      exact
    })
  }

  /** No delimiter can end within the bound: the frame is over-long, whatever comes next. */
  private overflow(total: number): Framing.FrameError {
    const C = this.C
    this.reset()
    this.discarding = C.resync
    this.skipped = total
    return this.recover(this.tooLarge(total - (C.hold - C.max), false), undefined)
  }

  private notUtf8(rest: Uint8Array): Framing.FrameError {
    const C = this.C
    return this.recover(
      new MalformedFrame({ codec: C.name, direction: "decode", reason: `a ${C.what} is not valid UTF-8` }),
      rest
    )
  }

  private run(bytes: Uint8Array, out: Array<A>): Framing.FrameError | undefined {
    const C = this.C
    const len = bytes.length
    let p = 0
    if (this.discarding) {
      const e = this.searcher.scan(bytes, 0)
      if (e < 0) {
        this.skipped += len
        return undefined
      }
      this.discarding = false
      this.skipped = 0
      p = e
    } else if (this.accLen + this.tail.length > 0) {
      const e = this.searcher.scan(bytes, 0)
      if (e < 0) {
        // Still no delimiter: keep this push too, the older pieces copied.
        const total = this.accLen + this.tail.length + len
        if (total > C.hold) return this.overflow(total)
        if (this.tail.length > 0) this.append(this.tail)
        this.tail = bytes
        return undefined
      }
      const error = this.spanned(bytes, e, out)
      if (error !== undefined) return error
      p = e
    }
    // The frames inside this push, as views of it. No partial delimiter is pending here: `find`, not `scan`.
    const searcher = this.searcher
    const d = C.delimiter.length
    const crlf = C.crlf
    const max = C.max
    const keep = C.keep
    const text = C.text
    while (p < len) {
      const e = searcher.find(bytes, p)
      if (e < 0) break
      let content = e - d
      if (crlf && content > p && bytes[content - 1] === 0x0d) content--
      if (content - p > max) return this.recover(this.tooLarge(content - p, true), bytes.subarray(e))
      const frame = bytes.subarray(p, keep ? e : content)
      p = e
      if (text) {
        const line = decodeUtf8(frame)
        if (line === undefined) return this.notUtf8(bytes.subarray(e))
        out.push(line as A)
      } else {
        out.push(frame as A)
      }
    }
    if (p < len) {
      if (len - p > C.hold) return this.overflow(len - p)
      this.tail = p === 0 ? bytes : bytes.subarray(p)
    }
    return undefined
  }

  /**
   * The frame that began in an earlier push and ends at `e` in this one: the
   * first bytes of `acc ++ tail ++ bytes`, copied once into a frame of its
   * final size (for text, into `acc`, decoded from there: the string is what
   * is kept).
   */
  private spanned(bytes: Uint8Array, e: number, out: Array<A>): Framing.FrameError | undefined {
    const C = this.C
    const accLen = this.accLen
    const tail = this.tail
    const held = accLen + tail.length
    const total = held + e
    let content = total - C.delimiter.length
    if (C.crlf && content > 0) {
      const i = content - 1
      const last = i < accLen ? this.acc[i] : i < held ? tail[i - accLen] : bytes[i - held]
      if (last === 0x0d) content--
    }
    if (content > C.max) {
      this.reset()
      return this.recover(this.tooLarge(content, true), bytes.subarray(e))
    }
    const size = C.keep ? total : content
    const fromTail = Math.max(0, Math.min(tail.length, size - accLen))
    const fromBytes = Math.max(0, size - held)
    if (C.text) {
      if (fromTail > 0) this.append(fromTail === tail.length ? tail : tail.subarray(0, fromTail))
      if (fromBytes > 0) this.append(bytes.subarray(0, fromBytes))
      const line = decodeUtf8(this.acc.subarray(0, size))
      this.reset()
      if (line === undefined) return this.notUtf8(bytes.subarray(e))
      out.push(line as A)
      return undefined
    }
    const frame = allocFrame(size)
    const fromAcc = Math.min(accLen, size)
    if (fromAcc > 0) frame.set(this.acc.subarray(0, fromAcc), 0)
    if (fromTail > 0) frame.set(fromTail === tail.length ? tail : tail.subarray(0, fromTail), fromAcc)
    if (fromBytes > 0) frame.set(bytes.subarray(0, fromBytes), held)
    this.reset()
    out.push(frame as A)
    return undefined
  }
}

const tooLargeToSend = (C: Config, size: number) =>
  new FrameTooLarge({ codec: C.name, direction: "encode", what: C.what, option: "maxLength", limit: C.max, size, exact: true })

const malformed = (C: Config, reason: string) =>
  new MalformedFrame({ codec: C.name, direction: "encode", reason })

const encodeDelimited = (C: Config) => {
  const D = C.delimiter
  const d = D.length
  return (frames: ReadonlyArray<Uint8Array>, out: Array<Uint8Array>): Framing.FrameError | undefined => {
    const batch = new Batch(out)
    const searcher = new Searcher(D)
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!
      searcher.m = 0
      const end = searcher.scan(frame, 0)
      if (C.keep) {
        if (end !== frame.length || frame.length < d) {
          return malformed(C, "with keepDelimiter a frame must end with the delimiter and contain no other")
        }
        if (frame.length - d > C.max) return tooLargeToSend(C, frame.length - d)
        batch.reserve(frame.length)
        continue
      }
      // The decoder splits at the first delimiter of frame ++ delimiter: it must be the appended one.
      let clean = end < 0
      for (let k = 0; clean && k < d - 1; k++) clean = searcher.scan(D.subarray(k, k + 1), 0) < 0
      if (!clean) return malformed(C, "the frame contains the delimiter, so the peer would read it as two frames")
      if (frame.length > C.max) return tooLargeToSend(C, frame.length)
      batch.reserve(frame.length)
      batch.reserveInline(d)
    }
    const buffer = batch.start()
    for (let i = 0; i < frames.length; i++) {
      batch.copy(frames[i]!)
      if (!C.keep) {
        buffer.set(D, batch.position)
        batch.advance(d)
      }
    }
    batch.flush()
    return undefined
  }
}

const NL = new Uint8Array([0x0a])
const textEncoder = new TextEncoder()

const encodeLines = <A extends Uint8Array | string>(C: Config) =>
(frames: ReadonlyArray<A>, out: Array<Uint8Array>): Framing.FrameError | undefined => {
  const batch = new Batch(out)
  const bytes: Array<Uint8Array> = new Array(frames.length)
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!
    let line: Uint8Array
    if (typeof frame === "string") {
      if (frame.includes("\n")) return malformed(C, "a line must not contain \\n")
      if (frame.endsWith("\r")) return malformed(C, "a line must not end with \\r: the peer would read it as part of \\r\\n")
      if (!isWellFormed(frame)) return malformed(C, "the line has a lone UTF-16 surrogate, which UTF-8 cannot carry")
      line = encodeUtf8(frame)
    } else {
      line = frame
      if (indexOfByte(line, 0x0a, 0) >= 0) return malformed(C, "a line must not contain \\n")
      if (line.length > 0 && line[line.length - 1] === 0x0d) {
        return malformed(C, "a line must not end with \\r: the peer would read it as part of \\r\\n")
      }
    }
    if (line.length > C.max) return tooLargeToSend(C, line.length)
    bytes[i] = line
    batch.reserve(line.length)
    batch.reserveInline(1)
  }
  const buffer = batch.start()
  for (let i = 0; i < bytes.length; i++) {
    batch.copy(bytes[i]!)
    buffer[batch.position] = 0x0a
    batch.advance(1)
  }
  batch.flush()
  return undefined
}

/** @internal */
export const delimited = (options: Framing.DelimitedOptions): Framing.Codec<Uint8Array> => {
  const given = options?.delimiter
  const delimiter = typeof given === "string" ? textEncoder.encode(given) : given
  const name = `delimited(${
    delimiter instanceof Uint8Array ? JSON.stringify(new TextDecoder().decode(delimiter)) : "?"
  })`
  if (!(delimiter instanceof Uint8Array)) return invalid(name, "delimiter", "expected a string or a Uint8Array")
  if (delimiter.length === 0) return invalid(name, "delimiter", "the delimiter is empty")
  const max = limit(name, "maxLength", options.maxLength, DEFAULT_MAX, MAX_LIMIT)
  const config: Config = {
    name,
    what: "frame",
    delimiter: delimiter.slice(),
    keep: options.keepDelimiter ?? false,
    crlf: false,
    max,
    hold: max + delimiter.length - 1,
    resync: options.resync ?? false,
    text: false
  }
  return make({ name, decoder: () => new Decoder(config), encode: encodeDelimited(config) })
}

/** @internal */
export const lines = <A extends Uint8Array | string>(options: Framing.LinesOptions = {}): Framing.Codec<A> => {
  const as = options.as ?? "bytes"
  const name = as === "string" ? "lines(string)" : "lines"
  if (as !== "bytes" && as !== "string") invalid(name, "as", `expected "bytes" or "string", got ${String(as)}`)
  const max = limit(name, "maxLength", options.maxLength, DEFAULT_MAX, MAX_LIMIT)
  const config: Config = {
    name,
    what: "line",
    delimiter: NL,
    keep: false,
    crlf: true,
    max,
    hold: max + 1,
    resync: options.resync ?? false,
    text: as === "string"
  }
  return make<A>({ name, decoder: () => new Decoder(config), encode: encodeLines(config) })
}
