/**
 * Delimiter framing: any byte sequence, and text lines ending in `\n` or
 * `\r\n`. Documented in `Framing.delimited` and `Framing.lines`.
 *
 * @since 0.1.0
 * @internal
 */
import { Buffer } from "node:buffer"
import type * as Framing from "../../Framing.js"
import { encodeUtf8 } from "../bytes.js"
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
 * Finds a delimiter in a byte stream pushed in pieces. `m` is how many bytes
 * of the delimiter the input seen so far ends with (KMP state), so a
 * delimiter split across pushes is found. Inside a piece the search runs on
 * the native `indexOf` of the delimiter's first byte.
 */
class Searcher {
  m = 0
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
    const D = this.D
    const d = D.length
    if (d === 1) {
      const j = indexOfByte(bytes, D[0]!, from)
      return j < 0 ? -1 : j + 1
    }
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
    if (m > 0) {
      this.m = m
      return -1
    }
    const first = D[0]!
    for (;;) {
      const j = indexOfByte(bytes, first, i)
      if (j < 0) {
        this.m = 0
        return -1
      }
      let k = 1
      while (k < d && j + k < len && bytes[j + k] === D[k]) k++
      if (k === d) {
        this.m = 0
        return j + d
      }
      if (j + k === len) {
        // The earliest partial match reaching the end is the longest one.
        this.m = k
        return -1
      }
      i = j + 1
    }
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
 * delimiter; a frame inside one push is a `subarray`, one spanning pushes is
 * collected in `acc`) and `Discard` (after an over-long frame, with `resync`:
 * dropping bytes up to the next delimiter).
 */
class Decoder<A> implements Framing.Decoder<A> {
  private readonly searcher: Searcher
  private acc: Uint8Array = EMPTY
  private accLen = 0
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
    return this.accLen
  }

  get pending(): number {
    return this.discarding ? this.skipped : this.accLen
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
    // A line that was too long was reported already, even if it never ended.
    if (this.discarding || this.accLen === 0) return undefined
    return this.error = new IncompleteFrame({ codec: this.C.name, remaining: this.accLen })
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
    if (this.acc.length > SHRINK_ABOVE) this.acc = EMPTY
  }

  private append(bytes: Uint8Array, from: number): void {
    const n = bytes.length - from
    const needed = this.accLen + n
    if (needed > this.acc.length) {
      const grown = new Uint8Array(Math.min(Math.max(needed, this.acc.length * 2, 256), this.C.hold))
      grown.set(this.acc.subarray(0, this.accLen), 0)
      this.acc = grown
    }
    this.acc.set(from === 0 ? bytes : bytes.subarray(from), this.accLen)
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

  private run(bytes: Uint8Array, out: Array<A>): Framing.FrameError | undefined {
    const C = this.C
    const d = C.delimiter.length
    const len = bytes.length
    let p = 0
    while (p < len) {
      const e = this.searcher.scan(bytes, p)
      if (this.discarding) {
        if (e < 0) {
          this.skipped += len - p
          return undefined
        }
        this.discarding = false
        this.skipped = 0
        p = e
        continue
      }
      if (e < 0) {
        const total = this.accLen + len - p
        if (total > C.hold) {
          this.reset()
          this.discarding = C.resync
          this.skipped = total
          return this.recover(this.tooLarge(total - (C.hold - C.max), false), undefined)
        }
        this.append(bytes, p)
        return undefined
      }
      const accLen = this.accLen
      const total = accLen + e - p
      let content = total - d
      if (C.crlf && content > 0) {
        const last = content - 1
        if ((last < accLen ? this.acc[last] : bytes[p + last - accLen]) === 0x0d) content--
      }
      if (content > C.max) {
        this.reset()
        return this.recover(this.tooLarge(content, true), bytes.subarray(e))
      }
      const size = C.keep ? total : content
      let frame: Uint8Array
      if (accLen === 0) {
        frame = bytes.subarray(p, p + size)
      } else {
        frame = new Uint8Array(size)
        const fromAcc = accLen < size ? accLen : size
        frame.set(this.acc.subarray(0, fromAcc), 0)
        if (size > fromAcc) frame.set(bytes.subarray(p, p + size - fromAcc), fromAcc)
        this.reset()
      }
      p = e
      if (C.text) {
        const line = decodeUtf8(frame)
        if (line === undefined) {
          return this.recover(
            new MalformedFrame({ codec: C.name, direction: "decode", reason: `a ${C.what} is not valid UTF-8` }),
            bytes.subarray(e)
          )
        }
        out.push(line as A)
      } else {
        out.push(frame as A)
      }
    }
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
