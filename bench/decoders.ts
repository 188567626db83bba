/**
 * Decoder micro-benchmark: every built-in codec, through its raw
 * `decoder().push` and through `Framing.decode` on a Stream (one read per
 * Stream batch, as a socket delivers them), against a hand-written u32
 * big-endian decoder, on byte streams cut at random sizes from 1 B to 64 KiB,
 * for 16 B, 1 KiB and 64 KiB frames.
 *
 *   npm run build && node dist/bench/decoders.js [--quick] [--json] [--no-pretenuring]
 *                                                [--only NAME[,NAME]] [--runs N]
 *
 * `--only` keeps the codecs whose name contains one of the NAMEs (their
 * references and the u32 rows stay); `--runs` sets the timed runs.
 *
 * "vs raw" is the hand-written decoder's CPU time on the raw path over this
 * row's: the target is >= 0.8 at every frame size. "vs stream" compares a
 * Stream row with the hand-written decoder run through the same Stream
 * plumbing (one `Stream.transformPull` stage), which isolates what
 * `Framing.decode` adds to Effect's own per-batch cost. "plumbing only" is that Stream of
 * reads with no stage at all: Effect's floor, whatever the decoder.
 *
 * Each codec is measured against a hand-written decoder of its own wire
 * format, as a competent node user writes it for that format, doing the same
 * work per frame: the u32 one for the length-prefixed codecs (`lengthPrefixed`
 * is its very format; `varint` and `fixed` read even less); for `delimited`
 * and `lines` a `Buffer#indexOf` scan with the tail carried over ("hand-written
 * \0", "hand-written \r\n", "hand-written lines"), plus a fatal `TextDecoder`
 * for `lines(string)`; for `header` one that parses and checks its JSON
 * header. Measuring a codec that scans bytes, decodes text or parses JSON
 * against the u32 decoder measured the format, not the code. Each reference's
 * comment says why it is fair.
 *
 * @since 0.1.0
 */
import type * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Buffer } from "node:buffer"
import v8 from "node:v8"
import * as Framing from "../src/Framing.js"

const argv = process.argv.slice(2)
const args = new Set(argv)
/** The value after a flag, if the flag was given. */
const valueOf = (flag: string): string | undefined => {
  const at = argv.indexOf(flag)
  return at < 0 ? undefined : argv[at + 1]
}
const ONLY = valueOf("--only")?.split(",")
const QUICK = args.has("--quick")
const JSON_OUTPUT = args.has("--json")
/**
 * A diagnosis aid, off by default: V8 may decide to allocate Effect's batch
 * arrays straight in the old generation, and then every frame a batch holds
 * outlives the young-generation GC. This shows what that costs.
 */
const NO_PRETENURING = args.has("--no-pretenuring")
/** Wire bytes per measurement. */
const VOLUME = (QUICK ? 4 : 16) * 1024 * 1024
/**
 * Timed runs per measurement, after one warm-up; the fastest counts (the
 * others lost time to the machine, not the code). `--quick` runs are short,
 * so it takes more of them: with 5, the 1 KiB rows of two runs in a row of
 * the same build swung from 0.68x to 1.36x on the Stream path (the target is
 * judged on the worst row of about 30); with 9, every 1 KiB row stayed
 * within 0.89-1.74x in two runs, and `--quick` takes 42-46 s instead of 31-41.
 */
const RUNS = Number(valueOf("--runs") ?? (QUICK ? 9 : 5))
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`--runs: expected a positive integer, got ${valueOf("--runs")}`)
/** Each timed run repeats the decoding until it lasts this long, so a GC pause or a busy neighbour weighs less. */
const RUN_SECONDS = QUICK ? 0.03 : 0.1
/**
 * ... and until it has decoded this many frames. It matters for 64 KiB
 * frames, where a pass of `VOLUME` is only 64 (quick) or 256 frames and
 * nearly every frame spans reads, so every decoder (and every reference)
 * allocates a 64 KiB array for it: V8 then runs a full collection about
 * every 64 MiB of such arrays (external memory), and a run of a few passes
 * saw 0, 1 or 2 of them by chance. 4096 frames of 64 KiB are 256 MiB, about
 * 4 collections per run; smaller frames reach this count within one pass.
 * What stays is the kernel's: whether malloc hands out recycled memory or
 * fresh pages (a page fault each 4 KiB) varies from run to run, about ±20%
 * for the same decoder at 64 KiB, alike for codec and reference.
 */
const RUN_FRAMES = QUICK ? 4096 : 8192
const FRAME_SIZES = [16, 1024, 64 * 1024] as const
const MAX_CHUNK = 64 * 1024

/** xorshift32: the same "random" chunking on every run and machine. */
const random = (seed: number) => {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 0x100000000
  }
}

// ---------------------------------------------------------------------------
// The baseline: what one would write by hand for | u32 BE length | body |
// ---------------------------------------------------------------------------

class HandWrittenU32 {
  private readonly head = new Uint8Array(4)
  private headFill = 0
  private frame: Uint8Array | undefined = undefined
  private fill = 0

  push(bytes: Uint8Array, out: Array<Uint8Array>): void {
    const len = bytes.length
    let p = 0
    while (p < len) {
      const frame = this.frame
      if (frame !== undefined) {
        const take = Math.min(frame.length - this.fill, len - p)
        frame.set(bytes.subarray(p, p + take), this.fill)
        this.fill += take
        p += take
        if (this.fill === frame.length) {
          out.push(frame)
          this.frame = undefined
        }
        continue
      }
      let n: number
      if (this.headFill === 0 && len - p >= 4) {
        n = ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0
        p += 4
      } else {
        while (this.headFill < 4 && p < len) this.head[this.headFill++] = bytes[p++]!
        if (this.headFill < 4) return
        const h = this.head
        n = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0
        this.headFill = 0
      }
      if (n > 8 * 1024 * 1024) throw new Error(`frame of ${n} bytes`)
      if (len - p >= n) {
        out.push(bytes.subarray(p, p + n))
        p += n
      } else {
        this.frame = new Uint8Array(n)
        this.fill = 0
      }
    }
  }
}

/** The header the `header` codec's workload carries (its Schema is `Header` below). */
interface HandHeader {
  readonly id: number
  readonly length: number
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * The reference of the `header` codec: its wire format (| u32 BE header
 * length | UTF-8 JSON header | body, as long as the header's `length` |)
 * decoded by hand, as a careful node user writes it: parts that lie inside a
 * read are views of it, a part that spans reads is gathered into one array,
 * the header is read with a fatal UTF-8 decoder and `JSON.parse` and its
 * fields checked (`id` an integer, `length` a non-negative one) before the
 * body is read. Comparing `header` with the bare u32 decoder (which parses
 * nothing) measured JSON.parse, not the codec: 0.04x at 16 B frames.
 */
class HandWrittenHeader {
  private readonly head = new Uint8Array(4)
  private headFill = 0
  /** Reading the header (1) or the body (2) of `need` bytes; 0: the length. */
  private state = 0
  private need = 0
  private part: Uint8Array | undefined = undefined
  private fill = 0
  private header: HandHeader | undefined = undefined

  push(bytes: Uint8Array, out: Array<{ readonly header: HandHeader; readonly body: Uint8Array }>): void {
    const len = bytes.length
    let p = 0
    for (;;) {
      if (this.state === 0) {
        if (p === len) return
        let n: number
        if (this.headFill === 0 && len - p >= 4) {
          n = ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0
          p += 4
        } else {
          while (this.headFill < 4 && p < len) this.head[this.headFill++] = bytes[p++]!
          if (this.headFill < 4) return
          const h = this.head
          n = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0
          this.headFill = 0
        }
        if (n > 64 * 1024) throw new Error(`header of ${n} bytes`)
        this.need = n
        this.state = 1
        continue
      }
      let piece: Uint8Array
      if (this.part === undefined && len - p >= this.need) {
        piece = bytes.subarray(p, p + this.need)
        p += this.need
      } else {
        if (p === len) return
        if (this.part === undefined) {
          this.part = new Uint8Array(this.need)
          this.fill = 0
        }
        const take = Math.min(this.need - this.fill, len - p)
        this.part.set(bytes.subarray(p, p + take), this.fill)
        this.fill += take
        p += take
        if (this.fill < this.need) return
        piece = this.part
        this.part = undefined
      }
      if (this.state === 1) {
        const header = JSON.parse(fatalUtf8.decode(piece)) as HandHeader
        if (
          typeof header !== "object" || header === null || !Number.isSafeInteger(header.id) ||
          !Number.isSafeInteger(header.length) || header.length < 0
        ) throw new Error("not a header")
        if (header.length > 8 * 1024 * 1024) throw new Error(`body of ${header.length} bytes`)
        this.header = header
        this.need = header.length
        this.state = 2
      } else {
        out.push({ header: this.header!, body: piece })
        this.state = 0
      }
    }
  }
}

/** The limit the delimiter references enforce, the codecs' default `maxLength`. */
const MAX_LENGTH = 8 * 1024 * 1024

/**
 * The reference of `delimited`: frames ending in a delimiter of one or more
 * bytes, decoded as a careful node user writes it (the design of npm's
 * `binary-split`, minus its copy of every read): `Buffer#indexOf` over the
 * read (a number for a one-byte delimiter, which is `memchr`; a two-byte one
 * is found by looking for its first byte in the same way and checking the
 * second, as a user who cares writes `\r\n`), each frame inside the read a
 * view of it; the unfinished tail kept as a view of its read and joined with
 * the next read's bytes up to the first delimiter only (one copy of a frame
 * that spans reads; a tail that spans several reads is joined again at each,
 * which with reads of 1 B-64 KiB is cheaper than keeping a list); the same
 * limit as the codec (a frame over `maxLength`, a tail that cannot become one
 * within it). Comparing the codecs with the u32 decoder, which scans no bytes,
 * measured the scan: 0.4-0.6x.
 */
class HandWrittenDelimited {
  private tail: Buffer | undefined = undefined

  constructor(private readonly delimiter: Uint8Array) {}

  /** The index just past the first delimiter in `tail ++ bytes[from..]`, counted in `bytes` (it may be below `d` when the delimiter began in the tail), or -1. */
  private find(tail: Buffer | undefined, bytes: Buffer, from: number): number {
    const D = this.delimiter
    if (D.length === 1) {
      const i = bytes.indexOf(D[0]!, from)
      return i < 0 ? -1 : i + 1
    }
    const first = D[0]!
    const second = D[1]!
    if (tail !== undefined && tail[tail.length - 1] === first && bytes[0] === second) return 1
    for (let i = bytes.indexOf(first, from); i >= 0; i = bytes.indexOf(first, i + 1)) {
      if (i + 1 === bytes.length) return -1
      if (bytes[i + 1] === second) return i + 2
    }
    return -1
  }

  push(input: Uint8Array, out: Array<Uint8Array>): void {
    const bytes = input as Buffer
    const d = this.delimiter.length
    const len = bytes.length
    let p = 0
    const tail = this.tail
    if (tail !== undefined) {
      const e = this.find(tail, bytes, 0)
      if (e < 0) {
        if (tail.length + len > MAX_LENGTH + d - 1) throw new Error("frame too long")
        this.tail = Buffer.concat([tail, bytes])
        return
      }
      const size = tail.length + e - d
      if (size > MAX_LENGTH) throw new Error("frame too long")
      out.push(Buffer.concat([tail, bytes.subarray(0, Math.max(0, e - d))], size))
      this.tail = undefined
      p = e
    }
    for (;;) {
      const e = this.find(undefined, bytes, p)
      if (e < 0) break
      if (e - d - p > MAX_LENGTH) throw new Error("frame too long")
      out.push(bytes.subarray(p, e - d))
      p = e
    }
    if (p < len) {
      if (len - p > MAX_LENGTH + d - 1) throw new Error("frame too long")
      this.tail = bytes.subarray(p)
    }
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * The reference of `lines` and `lines(string)`: lines ending in `\n`, a `\r`
 * before it dropped, decoded as {@link HandWrittenDelimited} does (`indexOf(10)`,
 * `memchr`), and for strings each line decoded with a fatal `TextDecoder`
 * (the codec refuses invalid UTF-8 too; `Buffer#toString` would replace it, a
 * different contract). The same limit as the codec.
 */
class HandWrittenLines {
  private tail: Buffer | undefined = undefined

  constructor(private readonly text: boolean) {}

  private emit(line: Uint8Array, out: Array<Uint8Array | string>): void {
    out.push(this.text ? strictUtf8.decode(line) : line)
  }

  push(input: Uint8Array, out: Array<Uint8Array | string>): void {
    const bytes = input as Buffer
    const len = bytes.length
    let p = 0
    const tail = this.tail
    if (tail !== undefined) {
      const i = bytes.indexOf(10)
      if (i < 0) {
        if (tail.length + len > MAX_LENGTH + 1) throw new Error("line too long")
        this.tail = Buffer.concat([tail, bytes])
        return
      }
      let size = tail.length + i
      if ((i > 0 ? bytes[i - 1] : tail[tail.length - 1]) === 13) size--
      if (size > MAX_LENGTH) throw new Error("line too long")
      this.emit(Buffer.concat([tail, bytes.subarray(0, i)], size), out)
      this.tail = undefined
      p = i + 1
    }
    for (;;) {
      const i = bytes.indexOf(10, p)
      if (i < 0) break
      const end = i > p && bytes[i - 1] === 13 ? i - 1 : i
      if (end - p > MAX_LENGTH) throw new Error("line too long")
      this.emit(bytes.subarray(p, end), out)
      p = i + 1
    }
    if (p < len) {
      if (len - p > MAX_LENGTH + 1) throw new Error("line too long")
      this.tail = bytes.subarray(p)
    }
  }
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

interface Subject {
  readonly name: string
  readonly codec: Framing.Codec<any>
  /** `count` frames of `size` bytes of payload, as this codec sends them. */
  readonly frames: (size: number, count: number) => ReadonlyArray<unknown>
  /**
   * The hand-written decoder of this codec's own wire format, when that does
   * more per frame than the u32 one (a JSON header): its rows are measured
   * against it instead.
   */
  readonly reference?: { readonly name: string; readonly decoder: () => Decodes } | undefined
}

interface Decodes {
  push(bytes: Uint8Array, out: Array<any>): unknown
}

/** Payload bytes that are never 0x00, `\r` or `\n`, so every delimiter codec can carry them. */
const payload = (size: number, seed: number): Uint8Array => {
  const next = random(seed)
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = 0x20 + Math.floor(next() * 0x5e)
  return bytes
}

const bodies = (size: number, count: number) => {
  // A handful of distinct bodies, reused: generating megabytes of randomness would dominate the setup.
  const distinct = Array.from({ length: 8 }, (_, i) => payload(size, i + 1))
  return Array.from({ length: count }, (_, i) => distinct[i % distinct.length]!)
}

const Header = Schema.Struct({ id: Schema.Int, length: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) })

const subjects: ReadonlyArray<Subject> = [
  { name: "lengthPrefixed", codec: Framing.lengthPrefixed(), frames: bodies },
  { name: "varint", codec: Framing.varint(), frames: bodies },
  {
    name: "delimited(\\0)",
    codec: Framing.delimited({ delimiter: "\0" }),
    frames: bodies,
    reference: { name: "hand-written \\0", decoder: () => new HandWrittenDelimited(new Uint8Array([0])) }
  },
  {
    name: "delimited(\\r\\n)",
    codec: Framing.delimited({ delimiter: "\r\n" }),
    frames: bodies,
    reference: { name: "hand-written \\r\\n", decoder: () => new HandWrittenDelimited(new Uint8Array([13, 10])) }
  },
  {
    name: "lines",
    codec: Framing.lines(),
    frames: bodies,
    reference: { name: "hand-written lines", decoder: () => new HandWrittenLines(false) }
  },
  {
    name: "lines(string)",
    codec: Framing.lines({ as: "string" }),
    frames: (size, count) => {
      const distinct = bodies(size, 8).map((b) => new TextDecoder().decode(b))
      return Array.from({ length: count }, (_, i) => distinct[i % distinct.length]!)
    },
    reference: { name: "hand-written lines(str)", decoder: () => new HandWrittenLines(true) }
  },
  { name: "fixed", codec: Framing.fixed(16), frames: bodies },
  {
    name: "header",
    codec: Framing.header({ header: Header, bodyLength: (h) => h.length }),
    frames: (size, count) => bodies(size, count).map((body, id) => ({ header: { id, length: size }, body })),
    reference: { name: "hand-written header", decoder: () => new HandWrittenHeader() }
  }
]

/** The encoded stream cut into reads of random sizes. */
const cut = (bytes: Uint8Array, seed: number): Array<Uint8Array> => {
  const next = random(seed)
  const reads: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length;) {
    const size = 1 + Math.floor(next() * MAX_CHUNK)
    reads.push(bytes.subarray(at, at + size))
    at += size
  }
  return reads
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

type Path = "raw" | "stream"

interface Row {
  readonly codec: string
  readonly frameSize: number
  readonly path: Path
  readonly frames: number
  readonly bytes: number
  readonly seconds: number
  readonly framesPerSecond: number
  readonly megabytesPerSecond: number
  /** Time of the hand-written decoder on its raw path over this one's: >= 1 is as fast or faster. */
  readonly ratio: number
  /** Stream rows: the same against the hand-written decoder run through the same Stream plumbing. */
  readonly ratioToStreamBaseline?: number | undefined
}

interface Task {
  readonly codec: string
  readonly path: Path
  readonly frames: number
  readonly bytes: number
  /** Decodes everything once; returns the number of frames (or, for the plumbing row, of reads). */
  readonly run: () => number | Promise<number>
  readonly expect: number
  best: number
  repeat: number
}

const rawPath = (
  decoder: () => Decodes,
  reads: ReadonlyArray<Uint8Array>
) =>
() => {
  const d = decoder()
  const out: Array<unknown> = []
  let frames = 0
  for (let i = 0; i < reads.length; i++) {
    if (d.push(reads[i]!, out) !== undefined) throw new Error("decode failed")
    frames += out.length
    out.length = 0
  }
  return frames
}

/** One Stream batch per read, as a socket delivers them. */
const readStream = (reads: ReadonlyArray<Uint8Array>): Stream.Stream<Uint8Array> =>
  Stream.fromIterable(reads.map((r) => [r] as const)).pipe(Stream.flattenArray)

const count = <A>(frames: Stream.Stream<A, unknown>) => () => {
  let n = 0
  return Effect.runPromise(
    Stream.runForEachArray(frames, (batch) =>
      Effect.sync(() => {
        n += batch.length
      })).pipe(Effect.map(() => n))
  )
}

const streamPath = (codec: Framing.Codec<any>, reads: ReadonlyArray<Uint8Array>) =>
  count(readStream(reads).pipe(Framing.decode(codec)))

/**
 * A hand-written decoder in the plainest Stream stage there is, for the cost
 * of the plumbing alone: a pull that skips reads completing no frame (a Stream
 * never emits an empty batch).
 */
const streamBaseline = (reads: ReadonlyArray<Uint8Array>, make: () => Decodes = () => new HandWrittenU32()) =>
  count(Stream.transformPull(readStream(reads), (upstream) =>
    Effect.sync(() => {
      const decoder = make()
      const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<unknown>, never, void> = Effect.flatMap(upstream, (batch) => {
        const out: Array<unknown> = []
        for (const bytes of batch) decoder.push(bytes, out)
        return out.length > 0 ? Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<unknown>) : pull
      })
      return pull
    })))

/** Effect's own cost per read: the same Stream of reads, counted, with no stage in between. */
const plumbing = (reads: ReadonlyArray<Uint8Array>) => count(readStream(reads))

/** CPU seconds this process has used (all its threads: the GC's helpers count too). */
const cpuSeconds = (): number => {
  const { system, user } = process.cpuUsage()
  return (user + system) / 1e6
}

/** Decodes everything once and checks the count. */
const pass = async (task: Task): Promise<void> => {
  const n = await task.run()
  if (n !== task.expect) throw new Error(`${task.codec}: decoded ${n} frames, expected ${task.expect}`)
}

/**
 * Runs every task `RUNS` times round-robin, so a busy moment of the machine
 * hits them all alike. Time is the process's CPU time, not the wall clock's:
 * on a shared machine a run the scheduler set aside for other processes
 * would otherwise count their time as the decoder's.
 *
 * Round 0 warms up (one pass for the JIT's first compilations) and then
 * counts how many passes fill `RUN_SECONDS`: that is the task's `repeat`, so
 * every task's timed runs last about as long. It used to time ONE pass, the
 * cold one, and derive `repeat` from it: at 64 KiB frames a pass takes 2-5 ms
 * but the cold one could take 50, so some tasks ran 2 passes per timed run and
 * others 22. A pass there allocates 16 MiB of frames that span reads, so V8
 * collects every few passes (external memory), and a 2-pass run could fall
 * between two collections: the best of five such runs measured no GC at all,
 * against runs of peers that paid theirs. The same decoder then read 0.24x in
 * one run and 2.15x in the next.
 */
const measure = async (tasks: ReadonlyArray<Task>): Promise<void> => {
  for (const task of tasks) {
    await pass(task)
    const start = cpuSeconds()
    let passes = 0
    do {
      await pass(task)
      passes++
    } while (passes < 1000 && (cpuSeconds() - start < RUN_SECONDS || passes * task.frames < RUN_FRAMES))
    task.repeat = passes
  }
  for (let round = 1; round <= RUNS; round++) {
    for (const task of tasks) {
      const start = cpuSeconds()
      for (let i = 0; i < task.repeat; i++) await pass(task)
      const seconds = Math.max(1e-6, cpuSeconds() - start) / task.repeat
      if (seconds < task.best) task.best = seconds
    }
  }
}

const format = (r: Row): string =>
  [
    r.codec.padEnd(18),
    `${r.frameSize}`.padStart(6),
    r.path.padEnd(6),
    `${(r.framesPerSecond / 1e6).toFixed(2)}M`.padStart(9),
    `${r.megabytesPerSecond.toFixed(0)}`.padStart(7),
    `${r.ratio.toFixed(2)}x`.padStart(7),
    r.ratioToStreamBaseline === undefined ? "" : `${r.ratioToStreamBaseline.toFixed(2)}x`.padStart(9)
  ].join("  ")

const BASELINE = "hand-written u32"
const PLUMBING = "plumbing only"

const main = async () => {
  if (NO_PRETENURING) v8.setFlagsFromString("--no-allocation-site-pretenuring")
  const results: Array<Row> = []
  console.log(
    `decoders: ${QUICK ? "quick, " : ""}${VOLUME / 1024 / 1024} MiB per run, best of ${RUNS}, reads of 1 B-64 KiB` +
      (NO_PRETENURING ? ", V8 allocation-site pretenuring off" : "")
  )
  console.log(
    ["codec".padEnd(18), "frame".padStart(6), "path".padEnd(6), "frames/s".padStart(9), "MB/s".padStart(7)].join("  ") +
      "  vs raw  vs stream"
  )
  for (const frameSize of FRAME_SIZES) {
    const frames = Math.max(1, Math.floor(VOLUME / (frameSize + 4)))
    const baselineBytes = Result.getOrThrow(Framing.encodeAll(Framing.lengthPrefixed(), bodies(frameSize, frames)))
    const baselineReads = cut(baselineBytes, frameSize)
    const task = (codec: string, path: Path, bytes: number, run: Task["run"], expect = frames): Task => ({
      codec,
      path,
      frames,
      bytes,
      run,
      expect,
      best: Infinity,
      repeat: 1
    })
    const tasks: Array<Task> = [
      task(BASELINE, "raw", baselineBytes.length, rawPath(() => new HandWrittenU32(), baselineReads)),
      task(BASELINE, "stream", baselineBytes.length, streamBaseline(baselineReads)),
      task(PLUMBING, "stream", baselineBytes.length, plumbing(baselineReads), baselineReads.length)
    ]
    /** A subject's rows and the reference rows they are measured against (raw, stream). */
    const against = new Map<Task, readonly [Task, Task]>()
    for (const subject of subjects) {
      if (subject.name === "fixed" && frameSize !== 16) continue
      if (ONLY !== undefined && !ONLY.some((name) => subject.name.includes(name))) continue
      const codec: Framing.Codec<any> = subject.name === "fixed" ? Framing.fixed(frameSize) : subject.codec
      const bytes = Result.getOrThrow(Framing.encodeAll(codec, subject.frames(frameSize, frames)))
      const reads = cut(bytes, frameSize)
      const rows = [
        task(subject.name, "raw", bytes.length, rawPath(codec.decoder, reads)),
        task(subject.name, "stream", bytes.length, streamPath(codec, reads))
      ] as const
      const reference = subject.reference
      if (reference !== undefined) {
        const refs = [
          task(reference.name, "raw", bytes.length, rawPath(reference.decoder, reads)),
          task(reference.name, "stream", bytes.length, streamBaseline(reads, reference.decoder))
        ] as const
        tasks.push(...refs)
        for (const row of [...refs, ...rows]) against.set(row, refs)
      }
      tasks.push(...rows)
    }
    await measure(tasks)
    for (const t of tasks) {
      const [raw, stream] = against.get(t) ?? tasks
      const r: Row = {
        codec: t.codec,
        frameSize,
        path: t.path,
        frames: t.frames,
        bytes: t.bytes,
        seconds: t.best,
        framesPerSecond: t.frames / t.best,
        megabytesPerSecond: t.bytes / t.best / 1e6,
        ratio: raw!.best / t.best,
        ratioToStreamBaseline: t.path === "stream" ? stream!.best / t.best : undefined
      }
      results.push(r)
      console.log(format(r))
    }
  }
  if (JSON_OUTPUT) {
    console.log(JSON.stringify({ benchmark: "decoders", quick: QUICK, volume: VOLUME, runs: RUNS, results }, null, 2))
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
