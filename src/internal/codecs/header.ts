/**
 * The tutorials' "custom data header": a length-prefixed JSON header whose
 * fields give the length of the raw body after it. Documented in
 * `Framing.header`.
 *
 * @since 0.1.0
 * @internal
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type * as Framing from "../../Framing.js"
import { encodeUtf8 } from "../bytes.js"
import { FlatJson, NOT_FLAT } from "../flatJson.js"
import { compiledDecoderSync, compiledEncoder, schemaErrorOf } from "../schemaJit.js"
import {
  Batch,
  clip,
  decodeUtf8,
  DEFAULT_MAX,
  type Direction,
  FrameTooLarge,
  Gather,
  incomplete,
  invalid,
  limit,
  make,
  MalformedFrame,
  MAX_LIMIT
} from "./core.js"

const LENGTH = 0
const HEADER = 1
const BODY = 2

interface Config<H> {
  readonly name: string
  /** The header Schema's decoder: the header, or a throw that `schemaErrorOf` reads. */
  readonly decodeHeader: (u: unknown) => H
  readonly encodeHeader: (h: H) => Result.Result<unknown, Schema.SchemaError>
  readonly bodyLength: (header: H) => number
  readonly maxHeader: number
  readonly maxBody: number
  /** The fast path of `JSON.parse` for flat headers, its caches shared by every decoder of the codec. */
  readonly json: FlatJson
}

/** A header or body over its limit (`maxHeaderLength`, `maxBodyLength`). */
const partTooLarge = (
  codec: string,
  direction: Direction,
  what: "header" | "body",
  limit: number,
  size: number
): FrameTooLarge =>
  new FrameTooLarge({
    codec,
    direction,
    what,
    option: what === "header" ? "maxHeaderLength" : "maxBodyLength",
    limit,
    size,
    exact: true
  })

const describe = (error: Schema.SchemaError): string => clip(error.message)

/** Where {@link readHeader} leaves why a header could not be read (a `MalformedFrame`): the decoder itself, or the encoder's. */
interface Failed {
  error: Framing.FrameError | undefined
}

/** What {@link readHeader} returns for a header it could not read (the reason is in its `Failed`). */
const UNREAD: unique symbol = Symbol("effect-wire/Framing/header/unread")

const malformedHeader = (C: { readonly name: string }, into: Failed, reason: string, cause?: unknown): typeof UNREAD => {
  into.error = new MalformedFrame({ codec: C.name, direction: "decode", reason, cause })
  return UNREAD
}

/**
 * Reads a header from its JSON bytes, `bytes[start..end]`, or says (in
 * `into`) why it is malformed. It runs once per frame, so a header that reads
 * allocates nothing but the header: no view of its bytes when they lie in one
 * read, no text for a flat one (`internal/flatJson`), no `Result` around it.
 */
const readHeader = <H>(
  C: Config<H>,
  bytes: Uint8Array,
  start: number,
  end: number,
  into: Failed
): H | typeof UNREAD => {
  let json: unknown = C.json.parse(bytes, start, end)
  if (json === NOT_FLAT) {
    const text = decodeUtf8(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end))
    if (text === undefined) return malformedHeader(C, into, "the header is not valid UTF-8")
    try {
      json = JSON.parse(text)
    } catch (cause) {
      return malformedHeader(C, into, `the header is not JSON (${clip(String((cause as Error).message))})`, cause)
    }
  }
  try {
    return C.decodeHeader(json)
  } catch (thrown) {
    // A defect in the Schema (a transformation that throws) is thrown on, as before.
    const error = schemaErrorOf(thrown)
    return malformedHeader(C, into, `the header does not match its schema: ${describe(error)}`, error)
  }
}

/** Validates what `bodyLength` says; a string is why it is unusable. */
const checkBodyLength = (n: number): string | undefined =>
  typeof n === "number" && Number.isSafeInteger(n) && n >= 0
    ? undefined
    : `bodyLength gave ${String(n)} for this header; expected a non-negative integer`

const readU32 = (b: Uint8Array, i: number): number =>
  b[i]! * 0x1000000 + ((b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!)

/**
 * The decode state machine: `Length` (the 4-byte header length, which may
 * arrive in pieces), `Header(need)` and `Body(need)`.
 */
class Decoder<H> implements Framing.Decoder<Framing.HeaderFrame<H>> {
  private state: typeof LENGTH | typeof HEADER | typeof BODY = LENGTH
  private readonly lengthBuffer = new Uint8Array(4)
  private lengthFill = 0
  private headerLength = 0
  private header: H | undefined = undefined
  private bodyLength = 0
  private readonly piece = new Gather()
  /** The error this decoder stopped on; `readHeader` sets it (as `Failed`) too. */
  error: Framing.FrameError | undefined = undefined

  constructor(private readonly C: Config<H>) {}

  get buffered(): number {
    return this.state === LENGTH ? this.lengthFill : this.piece.fill
  }

  get pending(): number {
    return this.state === LENGTH
      ? this.lengthFill
      : this.state === HEADER
      ? 4 + this.headerLength - this.piece.need
      : 4 + this.headerLength + this.bodyLength - this.piece.need
  }

  get failed(): boolean {
    return this.error !== undefined
  }

  private tooLarge(what: "header" | "body", limit: number, size: number): Framing.FrameError {
    return this.error = partTooLarge(this.C.name, "decode", what, limit, size)
  }

  push(bytes: Uint8Array, out: Array<Framing.HeaderFrame<H>>): Framing.FrameError | undefined {
    if (this.error !== undefined) return this.error
    const C = this.C
    const len = bytes.length
    const piece = this.piece
    let p = 0
    for (;;) {
      if (this.state === LENGTH) {
        if (p === len) return undefined
        let n: number
        if (this.lengthFill === 0 && len - p >= 4) {
          n = readU32(bytes, p)
          p += 4
        } else {
          while (this.lengthFill < 4 && p < len) this.lengthBuffer[this.lengthFill++] = bytes[p++]!
          if (this.lengthFill < 4) return undefined
          n = readU32(this.lengthBuffer, 0)
          this.lengthFill = 0
        }
        if (n > C.maxHeader) return this.tooLarge("header", C.maxHeader, n)
        this.headerLength = n
        piece.begin(n)
        this.state = HEADER
      } else if (this.state === HEADER) {
        let header: H | typeof UNREAD
        const size = piece.need
        if (piece.fill === 0 && len - p >= size) {
          // The whole header is in this read: read it where it lies.
          piece.need = 0
          p += size
          header = readHeader(C, bytes, p - size, p, this)
        } else {
          if (p === len) return undefined
          p = piece.take(bytes, p)
          if (piece.need > 0) return undefined
          const gathered = piece.piece
          header = readHeader(C, gathered, 0, gathered.length, this)
        }
        if (header === UNREAD) return this.error
        const n = C.bodyLength(header)
        const bad = checkBodyLength(n)
        if (bad !== undefined) {
          return this.error = new MalformedFrame({ codec: C.name, direction: "decode", reason: bad })
        }
        if (n > C.maxBody) return this.tooLarge("body", C.maxBody, n)
        this.header = header
        this.bodyLength = n
        piece.begin(n)
        this.state = BODY
      } else {
        if (p === len && piece.need > 0) return undefined
        p = piece.take(bytes, p)
        if (piece.need > 0) return undefined
        out.push({ header: this.header!, body: piece.piece })
        this.header = undefined
        this.state = LENGTH
      }
    }
  }

  end(_out: Array<Framing.HeaderFrame<H>>): Framing.FrameError | undefined {
    return this.error ??= incomplete(this.C.name, this.pending)
  }
}


const encoder = <H>(C: Config<H>) =>
(frames: ReadonlyArray<Framing.HeaderFrame<H>>, out: Array<Uint8Array>): Framing.FrameError | undefined => {
  const malformed = (reason: string, cause?: unknown) =>
    new MalformedFrame({ codec: C.name, direction: "encode", reason, cause })
  const tooLarge = (what: "header" | "body", limit: number, size: number) =>
    partTooLarge(C.name, "encode", what, limit, size)
  const batch = new Batch(out)
  const failed: Failed = { error: undefined }
  const headers: Array<Uint8Array> = new Array(frames.length)
  for (let i = 0; i < frames.length; i++) {
    const { body, header } = frames[i]!
    const encoded = C.encodeHeader(header)
    if (Result.isFailure(encoded)) {
      return malformed(`the header does not match its schema: ${describe(encoded.failure)}`, encoded.failure)
    }
    let text: string | undefined
    try {
      text = JSON.stringify(encoded.success)
    } catch (cause) {
      return malformed(`the header cannot be written as JSON (${clip(String((cause as Error).message))})`, cause)
    }
    if (text === undefined) return malformed("the header encodes to nothing JSON can carry")
    const bytes = encodeUtf8(text)
    if (bytes.length > C.maxHeader) return tooLarge("header", C.maxHeader, bytes.length)
    // Check with the decoder's own steps: JSON is lossy (NaN, Infinity, undefined), and what the peer would reject must not be sent.
    const read = readHeader(C, bytes, 0, bytes.length, failed)
    if (read === UNREAD) {
      const why = failed.error as MalformedFrame
      return malformed(`the header would not read back: ${why.reason}`, why.cause)
    }
    const n = C.bodyLength(read)
    const bad = checkBodyLength(n)
    if (bad !== undefined) return malformed(bad)
    if (body.length !== n) return malformed(`bodyLength says ${n} bytes for this header, but the body has ${body.length}`)
    if (n > C.maxBody) return tooLarge("body", C.maxBody, n)
    headers[i] = bytes
    batch.reserveInline(4)
    batch.reserve(bytes.length)
    batch.reserve(body.length)
  }
  const buffer = batch.start()
  for (let i = 0; i < frames.length; i++) {
    const bytes = headers[i]!
    const at = batch.position
    const n = bytes.length
    buffer[at] = n >>> 24
    buffer[at + 1] = (n >>> 16) & 0xff
    buffer[at + 2] = (n >>> 8) & 0xff
    buffer[at + 3] = n & 0xff
    batch.advance(4)
    batch.copy(bytes)
    batch.copy(frames[i]!.body)
  }
  batch.flush()
  return undefined
}

/** @internal */
export const header = <H, I>(options: Framing.HeaderOptions<H, I>): Framing.Codec<Framing.HeaderFrame<H>> => {
  const name = "header"
  if (!Schema.isSchema(options?.header)) invalid(name, "header", "expected a Schema for the header")
  if (typeof options.bodyLength !== "function") {
    invalid(name, "bodyLength", "expected a function from the header to its body's length")
  }
  const config: Config<H> = {
    name,
    // Every frame's header goes through the Schema: compiled, it is a few typeof checks (internal/schemaJit.ts).
    decodeHeader: compiledDecoderSync(options.header),
    encodeHeader: compiledEncoder(options.header),
    bodyLength: options.bodyLength,
    maxHeader: limit(name, "maxHeaderLength", options.maxHeaderLength, 64 * 1024, 2 ** 32 - 1),
    maxBody: limit(name, "maxBodyLength", options.maxBodyLength, DEFAULT_MAX, MAX_LIMIT),
    json: new FlatJson()
  }
  return make({ name, decoder: () => new Decoder(config), encode: encoder(config) })
}
