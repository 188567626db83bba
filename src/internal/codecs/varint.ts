/**
 * Unsigned LEB128 length prefix (protobuf's delimited streams, libp2p's
 * unsigned-varint). Documented in `Framing.varint`.
 *
 * @since 0.1.0
 * @internal
 */
import type * as Framing from "../../Framing.js"
import { Batch, DEFAULT_MAX, frameTooLarge, Gather, incomplete, limit, make, MalformedFrame, MAX_LIMIT } from "./core.js"

const HEAD = 0
const DATA = 1

/** 128^k for k = 0..8: the weight of the k-th varint byte. */
const WEIGHT = Array.from({ length: 9 }, (_, k) => 128 ** k)

/** The weight of the fifth varint byte: no valid length needs a sixth. */
const FAST_WEIGHT = 128 ** 4

const varintSize = (n: number): number => {
  let size = 1
  while (n >= WEIGHT[size]!) size++
  return size
}

/**
 * The decode state machine: `Head` (reading the varint, one byte at a time,
 * `value` and `count` so far) and `Data(need)` (body bytes still to come).
 */
class Decoder implements Framing.Decoder<Uint8Array> {
  private state: typeof HEAD | typeof DATA = HEAD
  private value = 0
  private count = 0
  private readonly body = new Gather()
  private error: Framing.FrameError | undefined = undefined

  constructor(private readonly name: string, private readonly max: number) {}

  get buffered(): number {
    return this.state === HEAD ? 0 : this.body.fill
  }

  get pending(): number {
    return this.state === HEAD ? this.count : this.count + this.value - this.body.need
  }

  get failed(): boolean {
    return this.error !== undefined
  }

  private tooLarge(size: number, exact: boolean): Framing.FrameError {
    return this.error = frameTooLarge(this.name, "decode", this.max, size, exact)
  }

  push(bytes: Uint8Array, out: Array<Uint8Array>): Framing.FrameError | undefined {
    if (this.error !== undefined) return this.error
    const len = bytes.length
    const max = this.max
    const body = this.body
    let p = 0
    while (p < len) {
      if (this.state === HEAD) {
        if (this.count === 0) {
          // The common case: a whole varint in this push, read in place.
          let q = p
          let value = 0
          let weight = 1
          let b = 0x80
          while (b >= 0x80 && q < len && weight <= FAST_WEIGHT) {
            b = bytes[q++]!
            value += (b & 0x7f) * weight
            weight *= 128
          }
          if (b < 0x80 && (b !== 0 || q === p + 1) && value <= max) {
            if (len - q >= value) {
              out.push(bytes.subarray(q, q + value))
              p = q + value
              continue
            }
            this.count = q - p
            this.value = value
            p = q
            this.state = DATA
            body.begin(value)
            continue
          }
          // Split across pushes, over-long or too large: byte by byte, below, says which.
        }
        const b = bytes[p++]!
        if (b === 0 && this.count > 0) {
          this.error = new MalformedFrame({
            codec: this.name,
            direction: "decode",
            reason: `over-long varint: ${this.count + 1} bytes for a value that fits in ${this.count}`
          })
          return this.error
        }
        this.value += (b & 0x7f) * WEIGHT[this.count]!
        this.count++
        if (b >= 0x80) {
          // Minimal encoding: more bytes follow, so the value is at least 128^count.
          const least = this.value + WEIGHT[this.count]!
          if (least > max) return this.tooLarge(least, false)
          continue
        }
        if (this.value > max) return this.tooLarge(this.value, true)
        this.state = DATA
        body.begin(this.value)
        continue
      }
      p = body.take(bytes, p)
      if (body.need === 0) {
        out.push(body.piece)
        this.state = HEAD
        this.value = 0
        this.count = 0
      }
    }
    return undefined
  }

  end(_out: Array<Uint8Array>): Framing.FrameError | undefined {
    return this.error ??= incomplete(this.name, this.pending)
  }
}

/** @internal */
export const varint = (options: Framing.VarintOptions = {}): Framing.Codec<Uint8Array> => {
  const name = "varint"
  const max = limit(name, "maxFrameLength", options.maxFrameLength, DEFAULT_MAX, MAX_LIMIT)
  return make({
    name,
    decoder: () => new Decoder(name, max),
    encode: (frames, out) => {
      const batch = new Batch(out)
      for (let i = 0; i < frames.length; i++) {
        const n = frames[i]!.length
        if (n > max) {
          return frameTooLarge(name, "encode", max, n, true)
        }
        batch.reserveInline(varintSize(n))
        batch.reserve(n)
      }
      const buffer = batch.start()
      for (let i = 0; i < frames.length; i++) {
        const frame = frames[i]!
        let n = frame.length
        let at = batch.position
        while (n >= 0x80) {
          buffer[at++] = (n % 128) | 0x80
          n = Math.floor(n / 128)
        }
        buffer[at++] = n
        batch.advance(at - batch.position)
        batch.copy(frame)
      }
      batch.flush()
      return undefined
    }
  })
}
