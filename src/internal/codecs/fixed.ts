/**
 * Fixed-size frames. Documented in `Framing.fixed`.
 *
 * @since 0.1.0
 * @internal
 */
import type * as Framing from "../../Framing.js"
import { Batch, Gather, incomplete, invalid, limit, make, MalformedFrame, MAX_LIMIT } from "./core.js"

/** The decode state machine has one state, `Data(need)`: `need` bytes of the current frame to go. */
class Decoder implements Framing.Decoder<Uint8Array> {
  private readonly frame = new Gather()
  private error: Framing.FrameError | undefined = undefined

  constructor(private readonly name: string, private readonly size: number) {
    this.frame.begin(size)
  }

  get buffered(): number {
    return this.frame.fill
  }

  get pending(): number {
    return this.size - this.frame.need
  }

  get failed(): boolean {
    return this.error !== undefined
  }

  push(bytes: Uint8Array, out: Array<Uint8Array>): Framing.FrameError | undefined {
    if (this.error !== undefined) return this.error
    const size = this.size
    const len = bytes.length
    const frame = this.frame
    let p = 0
    if (frame.need !== size) {
      p = frame.take(bytes, 0)
      if (frame.need > 0) return undefined
      out.push(frame.piece)
      frame.begin(size)
    }
    for (; p + size <= len; p += size) out.push(bytes.subarray(p, p + size))
    if (p < len) frame.take(bytes, p)
    return undefined
  }

  end(_out: Array<Uint8Array>): Framing.FrameError | undefined {
    return this.error ??= incomplete(this.name, this.pending)
  }
}

/** @internal */
export const fixed = (size: number): Framing.Codec<Uint8Array> => {
  const name = `fixed(${String(size)})`
  if (size === undefined) invalid(name, "size", "the frame size is required")
  const n = limit(name, "size", size, 0, MAX_LIMIT)
  return make({
    name,
    decoder: () => new Decoder(name, n),
    encode: (frames, out) => {
      const batch = new Batch(out)
      for (let i = 0; i < frames.length; i++) {
        const length = frames[i]!.length
        if (length !== n) {
          return new MalformedFrame({
            codec: name,
            direction: "encode",
            reason: `every frame must be exactly ${n} bytes, this one is ${length}`
          })
        }
        batch.reserve(length)
      }
      batch.start()
      for (let i = 0; i < frames.length; i++) batch.copy(frames[i]!)
      batch.flush()
      return undefined
    }
  })
}
