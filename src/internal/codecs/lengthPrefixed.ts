/**
 * Length-field framing (Netty's LengthFieldBasedFrameDecoder/LengthFieldPrepender,
 * tokio's LengthDelimitedCodec). Documented in `Framing.lengthPrefixed`.
 *
 * @since 0.1.0
 * @internal
 */
import type * as Framing from "../../Framing.js"
import { allocFrame } from "../bytes.js"
import {
  Batch,
  DEFAULT_MAX,
  EMPTY,
  frameTooLarge,
  incomplete,
  integer,
  invalid,
  limit,
  make,
  MalformedFrame,
  MAX_LIMIT
} from "./core.js"

interface Layout {
  readonly name: string
  readonly lengthBytes: number
  readonly little: boolean
  /** Bytes before the length field. */
  readonly offset: number
  /** Added to the length field's value to get the number of bytes after the field. */
  readonly adjustment: number
  /** Bytes dropped from the front of each frame (0..head). */
  readonly strip: number
  /** The largest number of bytes after the length field. */
  readonly max: number
  /** offset + lengthBytes: the header up to the end of the length field. */
  readonly head: number
}

const POW32 = 2 ** 32

/** Reads an unsigned integer of 1, 2, 3, 4 or 8 bytes. Values above 2^53 lose precision, but every such value is far over any limit. */
const readUint = (b: Uint8Array, i: number, n: number, little: boolean): number => {
  if (little) {
    switch (n) {
      case 1:
        return b[i]!
      case 2:
        return b[i]! | (b[i + 1]! << 8)
      case 3:
        return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16)
      case 4:
        return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16)) + b[i + 3]! * 0x1000000
      default:
        return readUint(b, i, 4, true) + readUint(b, i + 4, 4, true) * POW32
    }
  }
  switch (n) {
    case 1:
      return b[i]!
    case 2:
      return (b[i]! << 8) | b[i + 1]!
    case 3:
      return (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!
    case 4:
      return b[i]! * 0x1000000 + ((b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!)
    default:
      return readUint(b, i, 4, false) * POW32 + readUint(b, i + 4, 4, false)
  }
}

const writeUint = (b: Uint8Array, i: number, n: number, little: boolean, value: number): void => {
  let v = value
  for (let k = 0; k < n; k++) {
    const byte = v % 256
    b[little ? i + k : i + n - 1 - k] = byte
    v = (v - byte) / 256
  }
}

const HEAD = 0
const DATA = 1

/**
 * The decode state machine: `Head` (reading the header, which may arrive in
 * pieces) and `Data(need)` (the length is known; `need` body bytes to go).
 */
class Decoder implements Framing.Decoder<Uint8Array> {
  private state: typeof HEAD | typeof DATA = HEAD
  /** Header bytes when the header spans pushes. */
  private readonly headBuffer: Uint8Array
  private headFill = 0
  /** Data: the body length, and how much of it is still to come. */
  private length = 0
  private need = 0
  /** The frame at its final size, once a byte of it had to be copied. */
  private frame: Uint8Array | undefined = undefined
  private fill = 0
  private error: Framing.FrameError | undefined = undefined

  /** The default layout (u32 big-endian, stripped, no offset or adjustment): a tighter loop for it. */
  private readonly u32be: boolean

  constructor(private readonly L: Layout) {
    this.headBuffer = new Uint8Array(L.head)
    this.u32be = L.lengthBytes === 4 && !L.little && L.offset === 0 && L.strip === 4 && L.adjustment === 0
  }

  get buffered(): number {
    return this.state === HEAD ? this.headFill : this.fill
  }

  get pending(): number {
    return this.state === HEAD ? this.headFill : this.L.head + this.length - this.need
  }

  get failed(): boolean {
    return this.error !== undefined
  }

  private reject(length: number): Framing.FrameError {
    const L = this.L
    this.headFill = 0
    this.error = length < 0
      ? new MalformedFrame({
        codec: L.name,
        direction: "decode",
        reason: `the length field says ${length - L.adjustment}, which with the adjustment of ${L.adjustment} ` +
          `leaves ${length} bytes: negative`
      })
      : frameTooLarge(L.name, "decode", L.max, length, true)
    return this.error
  }

  /**
   * One push in three steps: finish the frame a previous push left open (its
   * header, then its body), take every whole frame inside this push as a view
   * of it, then start the frame its tail begins. The middle step is the hot
   * one, and it runs again right after a frame that spanned pushes, which at
   * 1 KiB frames and 32 KiB reads is how nearly every push begins.
   */
  push(bytes: Uint8Array, out: Array<Uint8Array>): Framing.FrameError | undefined {
    if (this.error !== undefined) return this.error
    const L = this.L
    const head = L.head
    const len = bytes.length
    let p = 0
    if (this.headFill > 0) {
      p = this.resumeHead(bytes, out)
      if (p < 0) return this.error
    }
    if (this.state === DATA) {
      // No body byte yet: nothing to allocate before one comes (the body may then lie inside one push).
      if (p === len) return undefined
      p = this.resumeBody(bytes, p, out)
      if (p === len) return undefined
    }
    if (this.u32be) {
      const max = L.max
      while (len - p >= 4) {
        const length = bytes[p]! * 0x1000000 + ((bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!)
        if (length > max) return this.reject(length)
        const end = p + 4 + length
        if (end > len) break
        out.push(bytes.subarray(p + 4, end))
        p = end
      }
    } else {
      while (len - p >= head) {
        const length = readUint(bytes, p + L.offset, L.lengthBytes, L.little) + L.adjustment
        if (length > L.max || length < 0) return this.reject(length)
        const end = p + head + length
        if (end > len) break
        out.push(bytes.subarray(p + L.strip, end))
        p = end
      }
    }
    if (p === len) return undefined
    if (len - p >= head) {
      // The header is here (and was checked above), the body goes on in the next push: copy what came of it.
      const length = readUint(bytes, p + L.offset, L.lengthBytes, L.little) + L.adjustment
      const frame = allocFrame(head - L.strip + length)
      frame.set(bytes.subarray(p + L.strip), 0)
      this.frame = frame
      this.fill = len - p - L.strip
      this.length = length
      this.need = p + head + length - len
      this.state = DATA
      return undefined
    }
    const headBuffer = this.headBuffer
    for (let k = 0; p + k < len; k++) headBuffer[k] = bytes[p + k]!
    this.headFill = len - p
    return undefined
  }

  /**
   * Completes a header that began in an earlier push: returns the position
   * after it (all of `bytes` if it is still incomplete), or -1 on a length
   * out of bounds. A complete header moves to `DATA` (or emits an empty frame).
   */
  private resumeHead(bytes: Uint8Array, out: Array<Uint8Array>): number {
    const L = this.L
    const head = L.head
    const take = Math.min(head - this.headFill, bytes.length)
    for (let k = 0; k < take; k++) this.headBuffer[this.headFill + k] = bytes[k]!
    this.headFill += take
    if (this.headFill < head) return take
    const length = readUint(this.headBuffer, L.offset, L.lengthBytes, L.little) + L.adjustment
    if (length > L.max || length < 0) {
      this.reject(length)
      return -1
    }
    this.headFill = 0
    this.length = length
    this.need = length
    this.state = DATA
    if (L.strip < head) {
      this.frame = allocFrame(head - L.strip + length)
      this.frame.set(this.headBuffer.subarray(L.strip), 0)
      this.fill = head - L.strip
    }
    if (length === 0) {
      out.push(this.frame ?? EMPTY)
      this.frame = undefined
      this.fill = 0
      this.state = HEAD
    }
    return take
  }

  /** Takes what it can of the open frame's body from `bytes[p..]`; returns the position after it. */
  private resumeBody(bytes: Uint8Array, p: number, out: Array<Uint8Array>): number {
    const len = bytes.length
    const avail = len - p
    const need = this.need
    let frame = this.frame
    if (frame === undefined) {
      // Only the body is kept and none of it is copied yet: it may lie inside this push.
      if (avail >= need) {
        out.push(bytes.subarray(p, p + need))
        this.state = HEAD
        return p + need
      }
      frame = this.frame = allocFrame(need)
      this.fill = 0
    }
    const take = avail < need ? avail : need
    frame.set(p === 0 && take === len ? bytes : bytes.subarray(p, p + take), this.fill)
    this.fill += take
    this.need -= take
    if (this.need === 0) {
      out.push(frame)
      this.frame = undefined
      this.fill = 0
      this.state = HEAD
    }
    return p + take
  }

  end(_out: Array<Uint8Array>): Framing.FrameError | undefined {
    return this.error ??= incomplete(this.L.name, this.pending)
  }
}

const encoder = (L: Layout) => {
  const kept = L.head - L.strip
  const scratch = new Uint8Array(L.head)
  const from = Math.max(L.strip, L.offset)
  const malformed = (reason: string) => new MalformedFrame({ codec: L.name, direction: "encode", reason })
  return (frames: ReadonlyArray<Uint8Array>, out: Array<Uint8Array>): Framing.FrameError | undefined => {
    const batch = new Batch(out)
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!
      const length = frame.length - kept
      if (length < 0) {
        return malformed(`a frame keeps the ${kept} header bytes after the first ${L.strip}, but this one has only ${frame.length}`)
      }
      if (length > L.max) {
        return frameTooLarge(L.name, "encode", L.max, length, true)
      }
      const value = length - L.adjustment
      if (value < 0) {
        return malformed(`a body of ${length} bytes is shorter than the length adjustment of ${L.adjustment}`)
      }
      if (kept > 0 && from < L.head) {
        // The frame carries (part of) the length field: it must say what the decoder will read.
        writeUint(scratch, L.offset, L.lengthBytes, L.little, value)
        for (let k = from; k < L.head; k++) {
          if (frame[k - L.strip] !== scratch[k]) {
            const said = readUint(frame, L.offset - L.strip, L.lengthBytes, L.little)
            return malformed(
              L.offset >= L.strip
                ? `the frame's length field says ${said}, but its body of ${length} bytes needs ${value}`
                : `the kept part of the length field does not match a body of ${length} bytes (needs ${value})`
            )
          }
        }
      }
      batch.reserveInline(L.strip)
      batch.reserve(frame.length)
    }
    const buffer = batch.start()
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!
      if (L.strip > 0) {
        // Header bytes the decoder strips are written here; the rest travel inside the frame.
        const at = batch.position
        // Stripped header bytes before the length field carry nothing we know: zeros.
        if (L.offset > 0) buffer.fill(0, at, at + Math.min(L.offset, L.strip))
        const value = frame.length - kept - L.adjustment
        if (L.strip === L.head) writeUint(buffer, at + L.offset, L.lengthBytes, L.little, value)
        else if (L.strip > L.offset) {
          writeUint(scratch, L.offset, L.lengthBytes, L.little, value)
          buffer.set(scratch.subarray(L.offset, L.strip), at + L.offset)
        }
        batch.advance(L.strip)
      }
      batch.copy(frame)
    }
    batch.flush()
    return undefined
  }
}

/** @internal */
export const lengthPrefixed = (options: Framing.LengthPrefixedOptions = {}): Framing.Codec<Uint8Array> => {
  const lengthBytes = options.lengthBytes ?? 4
  const endian = options.endian ?? "big"
  const name = `lengthPrefixed(${lengthBytes * 8}-bit ${endian}-endian)`
  if (![1, 2, 3, 4, 8].includes(lengthBytes)) {
    invalid(name, "lengthBytes", `expected 1, 2, 3, 4 or 8, got ${String(lengthBytes)}`)
  }
  if (endian !== "big" && endian !== "little") invalid(name, "endian", `expected "big" or "little", got ${String(endian)}`)
  const offset = integer(name, "offset", options.offset, 0, 0, 65536)
  const head = offset + lengthBytes
  const adjustment = integer(name, "adjustment", options.adjustment, 0, -MAX_LIMIT, MAX_LIMIT)
  const strip = integer(name, "strip", options.strip, head, 0, head)
  const largestValue = lengthBytes === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * lengthBytes) - 1
  const representable = largestValue + adjustment
  if (representable < 0) {
    invalid(
      name,
      "adjustment",
      `with a ${lengthBytes}-byte length field (at most ${largestValue}) an adjustment of ${adjustment} ` +
        `makes every frame length negative`
    )
  }
  const max = limit(name, "maxFrameLength", options.maxFrameLength, Math.min(DEFAULT_MAX, representable), MAX_LIMIT)
  if (max > representable) {
    invalid(
      name,
      "maxFrameLength",
      `a ${lengthBytes}-byte length field holds at most ${largestValue}, too narrow for frames of ` +
        `${max} bytes${adjustment === 0 ? "" : ` with an adjustment of ${adjustment}`}: ` +
        `use a wider length field or a maxFrameLength of at most ${representable}`
    )
  }
  if (adjustment > max) {
    invalid(
      name,
      "adjustment",
      `every frame has at least ${adjustment} bytes after the length field, more than maxFrameLength (${max})`
    )
  }
  const layout: Layout = { name, lengthBytes, little: endian === "little", offset, adjustment, strip, max, head }
  return make({ name, decoder: () => new Decoder(layout), encode: encoder(layout) })
}
