/**
 * An in-memory connected socket pair (and listener) implementing the same
 * `Socket` interface as the real one, with bounded buffers, real
 * backpressure and scripted faults, so a protocol can be tested without the
 * network and on the `TestClock`.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   // every byte from a to b arrives as its own read, 10 ms apart
 *   const [a, b] = yield* MemorySocket.makePair({ aToB: { maxChunkSize: 1, delay: "10 millis" } })
 *   yield* a.write(new TextEncoder().encode("hi"))
 *   yield* a.end
 *   return yield* Stream.runCollect(b.reads) // [Uint8Array [104], Uint8Array [105]]
 * }))
 * ```
 *
 * Semantics, matching the Node socket:
 *
 * - `reads`: one pull yields one element, as on a real socket, so a consumer
 *   that stops early (`Stream.take`, `runHead`) loses nothing: the next piece
 *   as written (or as split, up to `maxReadSize` bytes), or with `coalesce`
 *   every ready piece joined into one `Uint8Array`, as a busy TCP receiver does. Peer `end`/`close` ends
 *   it after the bytes sent before; a peer `reset` fails it with
 *   `ConnectionReset` after the bytes sent before. After our own `close` or
 *   `reset` it ends at once.
 * - Writes are accepted at once; when the peer's unread bytes (in flight
 *   included) exceed `bufferSize`, the writer waits until the reader has taken
 *   enough to get back under it.
 * - Writing after our own `end`/`close`/`reset`, or after the peer closed,
 *   fails with `BrokenPipe`; after the peer reset, with `ConnectionReset`.
 * - `end`, `close` and `reset` are idempotent; the scope of
 *   {@link makePair} closes both ends.
 *
 * Addresses are fake: a pair is `unix("memory:a")` ↔ `unix("memory:b")`
 * unless told otherwise; a {@link listen}er on TCP port 0 gets a port from a
 * counter (not a real one), and its clients get `127.0.0.1` with ports from
 * another counter.
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type Pipeable, pipeArguments } from "effect/Pipeable"
import type * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Address from "../Address.js"
import { BrokenPipe, ConnectionRefused, ConnectionReset } from "../NetError.js"
import type { ReadError, WriteError } from "../NetError.js"
import * as Socket from "../Socket.js"
import { concat } from "../internal/bytes.js"
import * as Options from "../internal/options.js"

/**
 * Scripted behaviour of one direction of a pair (the bytes one end writes and
 * the other reads).
 *
 * ```ts
 * const faults: MemorySocket.Faults = {
 *   maxChunkSize: 1,        // every byte its own read
 *   delay: "5 millis",      // each piece arrives 5 ms after the one before
 *   resetAfter: 7,          // the connection breaks after the 7th byte
 *   maxReadSize: 3,         // the reader takes at most 3 bytes per pull
 *   readDelay: "1 second"   // and each pull takes a second
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Faults {
  /** Split every write into pieces of at most this many bytes; each piece is a read of its own. */
  readonly maxChunkSize?: number | undefined
  /**
   * Split every write with this function instead (it must return the bytes
   * it was given, in order). A batch from `writeAll` is split as one write.
   */
  readonly split?: ((bytes: Uint8Array) => ReadonlyArray<Uint8Array>) | undefined
  /** Each piece becomes readable this long after the one before it (or after it was written). Honours the TestClock. */
  readonly delay?: Duration.Input | undefined
  /**
   * The connection is reset once this many bytes have passed in this
   * direction: the reader gets exactly these bytes, then `ConnectionReset`;
   * the write that crossed the limit fails with `ConnectionReset` (unless it
   * ended exactly on it), and so do later writes on both ends.
   */
  readonly resetAfter?: number | undefined
  /**
   * The writer's side half-closes once this many bytes have passed: the
   * reader gets them, then EOF; the write that crossed the limit fails with
   * `BrokenPipe` (unless it ended exactly on it).
   */
  readonly endAfter?: number | undefined
  /** A slow reader: at most this many bytes per pull. */
  readonly maxReadSize?: number | undefined
  /** A slow reader: every pull waits this long first. Honours the TestClock. */
  readonly readDelay?: Duration.Input | undefined
  /** Join every ready piece into one element per pull, as a busy TCP receiver does (default false: one piece per pull). */
  readonly coalesce?: boolean | undefined
}

/**
 * Options of {@link makePair}.
 *
 * ```ts
 * const options: MemorySocket.PairOptions = { bufferSize: 16, bToA: { maxReadSize: 1 } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PairOptions {
  /** Unread bytes per direction (in flight included) before a writer waits (default 65536). */
  readonly bufferSize?: number | undefined
  /** Faults of the bytes `a` writes and `b` reads. */
  readonly aToB?: Faults | undefined
  /** Faults of the bytes `b` writes and `a` reads. */
  readonly bToA?: Faults | undefined
  /** The ends' addresses (default `unix("memory:a")` and `unix("memory:b")`). */
  readonly addresses?: { readonly a: Address.Address; readonly b: Address.Address } | undefined
}

const DEFAULT_BUFFER_SIZE = 64 * 1024

type Event =
  | { readonly _tag: "Data"; readonly bytes: Uint8Array; readonly readyAt: number }
  | { readonly _tag: "End" }
  | { readonly _tag: "Reset" }

const END: Event = { _tag: "End" }
const RESET: Event = { _tag: "Reset" }

interface Settings {
  readonly split: ((bytes: Uint8Array) => ReadonlyArray<Uint8Array>) | undefined
  readonly delayMillis: number
  readonly resetAfter: number | undefined
  readonly endAfter: number | undefined
  readonly maxReadSize: number
  readonly readDelayMillis: number
  readonly coalesce: boolean
}

/** One direction: what one end wrote and the other has not read yet. */
class Pipe {
  private events: Array<Event> = []
  private head = 0
  /** Bytes of the head Data event already read. */
  private offset = 0
  /** Bytes written and not yet read, in flight included: what backpressure bounds. */
  unread = 0
  /** Bytes accepted from the writer so far, for `resetAfter`/`endAfter`. */
  sent = 0
  /** When the last piece becomes readable, so delayed pieces queue behind each other. */
  lastReadyAt = 0
  writerEnded = false
  /** The connection was reset: writes into this pipe fail with ConnectionReset. */
  broken = false
  /** The reading end was closed: nobody will read, writes fail with BrokenPipe. */
  readerClosed = false
  private readonly waiters = new Set<() => boolean>()

  constructor(readonly settings: Settings, readonly bufferSize: number) {}

  peek(): Event | undefined {
    return this.events[this.head]
  }

  push(event: Event): void {
    this.events.push(event)
    if (event._tag === "Data") this.unread += event.bytes.length
    this.notify()
  }

  /** Take readable bytes up to `max` from the head (never across an End or Reset). */
  take(now: number, max: number, maxPieces: number): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    let budget = max
    while (budget > 0 && out.length < maxPieces && this.head < this.events.length) {
      const event = this.events[this.head]!
      if (event._tag !== "Data" || event.readyAt > now) break
      const available = event.bytes.length - this.offset
      if (available <= budget) {
        out.push(this.offset === 0 ? event.bytes : event.bytes.subarray(this.offset))
        budget -= available
        this.offset = 0
        this.head++
      } else {
        out.push(event.bytes.subarray(this.offset, this.offset + budget))
        this.offset += budget
        budget = 0
      }
    }
    this.unread -= max - budget
    // Compact now and then so a long-lived pipe does not keep every event it ever carried.
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head)
      this.head = 0
    }
    this.notify()
    return out
  }

  discard(): void {
    this.events = []
    this.head = 0
    this.offset = 0
    this.unread = 0
    this.notify()
  }

  notify(): void {
    for (const waiter of this.waiters) {
      if (waiter()) this.waiters.delete(waiter)
    }
  }

  /** Suspend until `ready()` holds. The check runs inside the registration, so no change can slip in between. */
  waitUntil(ready: () => boolean): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (ready()) {
        resume(Effect.void)
        return
      }
      const waiter = () => {
        if (!ready()) return false
        resume(Effect.void)
        return true
      }
      this.waiters.add(waiter)
      return Effect.sync(() => {
        this.waiters.delete(waiter)
      })
    })
  }
}

// Options are given in code: a bad one is thrown as Effect's IllegalArgumentError
// (from inside Effect.sync/suspend, so the effect dies with it), naming the option.
const check = (name: string, reason: Options.Reason): void => {
  if (reason !== undefined) throw Options.defect("MemorySocket", name, reason)
}

const positiveInt = (name: string, value: number | undefined): number | undefined => {
  if (value !== undefined) check(name, Options.positiveInt(value))
  return value
}

/** A byte count where 0 is a value like any other (`resetAfter: 0`: the first write breaks the connection). */
const nonNegativeInt = (name: string, value: number | undefined): number | undefined => {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
    check(name, `must be a non-negative integer, got ${value}`)
  }
  return value
}

const splitEvery = (size: number) => (bytes: Uint8Array): ReadonlyArray<Uint8Array> => {
  const pieces: Array<Uint8Array> = []
  for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size))
  return pieces
}

const settingsOf = (faults: Faults | undefined): Settings => {
  const maxChunkSize = positiveInt("maxChunkSize", faults?.maxChunkSize)
  if (maxChunkSize !== undefined && faults?.split !== undefined) {
    throw new Cause.IllegalArgumentError("MemorySocket: give either maxChunkSize or split, not both")
  }
  return {
    split: faults?.split ?? (maxChunkSize === undefined ? undefined : splitEvery(maxChunkSize)),
    delayMillis: faults?.delay === undefined ? 0 : Duration.toMillis(faults.delay),
    resetAfter: nonNegativeInt("resetAfter", faults?.resetAfter),
    endAfter: nonNegativeInt("endAfter", faults?.endAfter),
    maxReadSize: positiveInt("maxReadSize", faults?.maxReadSize) ?? Number.MAX_SAFE_INTEGER,
    readDelayMillis: faults?.readDelay === undefined ? 0 : Duration.toMillis(faults.readDelay),
    coalesce: faults?.coalesce ?? false
  }
}


/** The first `n` bytes of a batch, without copying whole chunks. */
const prefix = (chunks: ReadonlyArray<Uint8Array>, n: number): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let left = n
  for (const chunk of chunks) {
    if (left === 0) break
    const piece = chunk.length <= left ? chunk : chunk.subarray(0, left)
    out.push(piece)
    left -= piece.length
  }
  return out
}

const applySplit = (settings: Settings, chunks: ReadonlyArray<Uint8Array>, total: number): ReadonlyArray<Uint8Array> => {
  if (settings.split === undefined) return chunks
  const whole = concat(chunks, total)
  const pieces = settings.split(whole)
  let length = 0
  for (const piece of pieces) length += piece.length
  if (length !== total) {
    // The split option broke its contract: as wrong an argument as a bad number.
    throw new Cause.IllegalArgumentError(`MemorySocket: split returned ${length} bytes for a write of ${total}`)
  }
  return pieces.filter((piece) => piece.length > 0)
}

class End implements Socket.Socket, Pipeable {
  readonly [Socket.TypeId]: Socket.TypeId = Socket.TypeId
  pipe() {
    return pipeArguments(this, arguments)
  }
  closed = false
  /** Called once when this end is closed or reset (listeners count their connections with it). */
  onClose: (() => void) | undefined = undefined

  constructor(
    readonly localAddress: Address.Address,
    readonly remoteAddress: Address.Address,
    /** What we read. */
    readonly incoming: Pipe,
    /** What we write. */
    readonly outgoing: Pipe
  ) {}

  private writeError(): WriteError | undefined {
    const address = this.remoteAddress
    if (this.closed) return new BrokenPipe({ address, detail: "this socket was closed" })
    if (this.outgoing.writerEnded) return new BrokenPipe({ address, detail: "this side was half-closed with end" })
    if (this.outgoing.broken) return new ConnectionReset({ address })
    if (this.outgoing.readerClosed) return new BrokenPipe({ address, detail: "the peer closed the connection" })
    return undefined
  }

  private enqueue(chunks: ReadonlyArray<Uint8Array>, total: number, now: number): void {
    const pipe = this.outgoing
    const settings = pipe.settings
    for (const piece of applySplit(settings, chunks, total)) {
      let readyAt = 0
      if (settings.delayMillis > 0) {
        readyAt = Math.max(now, pipe.lastReadyAt) + settings.delayMillis
        pipe.lastReadyAt = readyAt
      }
      pipe.push({ _tag: "Data", bytes: piece, readyAt })
    }
    pipe.sent += total
  }

  /** The scripted reset: both directions end in a Reset after what is already queued. */
  breakConnection(): void {
    for (const pipe of [this.outgoing, this.incoming]) {
      if (!pipe.broken) {
        pipe.broken = true
        pipe.push(RESET)
      }
    }
  }

  private writeBatch(input: ReadonlyArray<Uint8Array>): Effect.Effect<void, WriteError> {
    return Effect.suspend(() => {
      const error = this.writeError()
      if (error !== undefined) return Effect.fail(error)
      const chunks = input.filter((chunk) => chunk.length > 0)
      let total = 0
      for (const chunk of chunks) total += chunk.length
      if (total === 0) return Effect.void
      const pipe = this.outgoing
      const settings = pipe.settings
      // A scripted limit cuts the batch at the byte where it falls.
      let limit = total
      let fault: "reset" | "end" | undefined
      if (settings.resetAfter !== undefined && pipe.sent + total >= settings.resetAfter) {
        limit = settings.resetAfter - pipe.sent
        fault = "reset"
      }
      if (settings.endAfter !== undefined && pipe.sent + total >= settings.endAfter) {
        const at = settings.endAfter - pipe.sent
        if (fault === undefined || at < limit) {
          limit = at
          fault = "end"
        }
      }
      const send = (now: number): Effect.Effect<void, WriteError> => {
        if (limit > 0) this.enqueue(limit === total ? chunks : prefix(chunks, limit), limit, now)
        if (fault === "reset") {
          this.breakConnection()
          if (limit < total) return Effect.fail(new ConnectionReset({ address: this.remoteAddress }))
        } else if (fault === "end") {
          pipe.writerEnded = true
          pipe.push(END)
          if (limit < total) {
            return Effect.fail(
              new BrokenPipe({ address: this.remoteAddress, detail: `scripted half-close after ${settings.endAfter} bytes` })
            )
          }
        }
        return this.awaitDrain
      }
      return settings.delayMillis > 0 ? Effect.flatMap(Clock.currentTimeMillis, send) : send(0)
    })
  }

  private readonly awaitDrain: Effect.Effect<void, WriteError> = Effect.suspend(() => {
    const pipe = this.outgoing
    if (pipe.unread <= pipe.bufferSize) return Effect.void
    return pipe.waitUntil(() => pipe.unread <= pipe.bufferSize || pipe.broken || pipe.readerClosed || this.closed)
      .pipe(Effect.flatMap((): Effect.Effect<void, WriteError> => {
        if (pipe.broken) return Effect.fail(new ConnectionReset({ address: this.remoteAddress }))
        if (pipe.readerClosed) {
          return Effect.fail(new BrokenPipe({ address: this.remoteAddress, detail: "the peer closed the connection" }))
        }
        return Effect.void
      }))
  })

  readonly write = (bytes: Uint8Array): Effect.Effect<void, WriteError> => this.writeBatch([bytes])

  readonly writeAll = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, WriteError> => this.writeBatch(chunks)

  readonly end: Effect.Effect<void, WriteError> = Effect.suspend(() => {
    const pipe = this.outgoing
    if (this.closed || pipe.writerEnded) return Effect.void
    // As on Node: ending a connection that was reset reports the reset.
    if (pipe.broken) return Effect.fail(new ConnectionReset({ address: this.remoteAddress }))
    pipe.writerEnded = true
    pipe.push(END)
    return Effect.void
  })

  private markClosed(): void {
    this.closed = true
    const onClose = this.onClose
    this.onClose = undefined
    onClose?.()
  }

  readonly close: Effect.Effect<void> = Effect.sync(() => this.unsafeClose())

  unsafeClose(): void {
    if (this.closed) return
    const out = this.outgoing
    // State first, wake-ups last: a push resumes a waiting fiber at once (Effect 4 callbacks resume synchronously).
    this.markClosed()
    this.incoming.readerClosed = true
    this.incoming.discard()
    if (!out.writerEnded && !out.broken) {
      out.writerEnded = true
      out.push(END)
    }
    out.notify()
  }

  readonly reset: Effect.Effect<void> = Effect.sync(() => {
    if (this.closed) return
    const out = this.outgoing
    // State first, wake-ups last (see unsafeClose).
    this.markClosed()
    // The peer's writes now fail with ConnectionReset; what it sent us is dropped.
    this.incoming.broken = true
    this.incoming.discard()
    if (!out.broken) {
      out.broken = true
      out.push(RESET)
    }
    out.notify()
  })

  private readonly readAt = (now: number): Pull.Pull<NonEmptyReadonlyArray<Uint8Array>, ReadError> => {
    const pipe = this.incoming
    if (this.closed) return Cause.done()
    const head = pipe.peek()
    if (head === undefined) {
      return Effect.andThen(pipe.waitUntil(() => this.closed || pipe.peek() !== undefined), this.step)
    }
    if (head._tag === "End") return Cause.done()
    if (head._tag === "Reset") return Effect.fail(new ConnectionReset({ address: this.remoteAddress }))
    if (head.readyAt > now) return Effect.andThen(Effect.sleep(Duration.millis(head.readyAt - now)), this.step)
    // One element per pull, as on a real socket, so a consumer that stops early
    // (Stream.take, runHead) loses nothing: one piece, or all ready pieces joined.
    // The head is ready Data (never empty), so there is at least one piece.
    const pieces = pipe.take(now, pipe.settings.maxReadSize, pipe.settings.coalesce ? Infinity : 1)
    if (pieces.length > 1) {
      let total = 0
      for (const piece of pieces) total += piece.length
      return Effect.succeed([concat(pieces, total)])
    }
    return Effect.succeed(pieces as unknown as NonEmptyReadonlyArray<Uint8Array>)
  }

  /** One pull. The clock is read only when pieces carry a delay. */
  private readonly step: Pull.Pull<NonEmptyReadonlyArray<Uint8Array>, ReadError> = Effect.suspend(() =>
    this.incoming.settings.delayMillis > 0 ? Effect.flatMap(Clock.currentTimeMillis, this.readAt) : this.readAt(0)
  )

  // Every run pulls from the same pipe, so a second run continues where the first stopped.
  readonly reads: Stream.Stream<Uint8Array, ReadError> = Stream.fromPull(Effect.succeed(
    Effect.suspend(() =>
      this.incoming.settings.readDelayMillis > 0
        ? Effect.andThen(Effect.sleep(Duration.millis(this.incoming.settings.readDelayMillis)), this.step)
        : this.step
    )
  ))

  readonly writes: Sink.Sink<void, Uint8Array, never, WriteError> = Sink.forEachArray((
    chunk: NonEmptyReadonlyArray<Uint8Array>
  ) => this.writeAll(chunk)).pipe(Sink.mapEffect(() => this.end))
}

const unsafeMakePair = (options: PairOptions | undefined): readonly [End, End] => {
  const bufferSize = positiveInt("bufferSize", options?.bufferSize) ?? DEFAULT_BUFFER_SIZE
  const aToB = new Pipe(settingsOf(options?.aToB), bufferSize)
  const bToA = new Pipe(settingsOf(options?.bToA), bufferSize)
  const addressA = options?.addresses?.a ?? Address.unix("memory:a")
  const addressB = options?.addresses?.b ?? Address.unix("memory:b")
  const a = new End(addressA, addressB, bToA, aToB)
  const b = new End(addressB, addressA, aToB, bToA)
  return [a, b]
}

/**
 * Make a connected pair of in-memory sockets: what `a` writes, `b` reads,
 * and back. Closing the scope closes both ends.
 *
 * ```ts
 * const [client, server] = yield* MemorySocket.makePair({
 *   bufferSize: 1024,
 *   bToA: { resetAfter: 10 } // the server's reply breaks off after 10 bytes
 * })
 * ```
 *
 * Invalid options (a `maxChunkSize` of 0, say) are a defect: Effect's
 * `IllegalArgumentError`, naming the option. So is a `split` that does not
 * return the bytes it was given, on the write it splits.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePair = (options?: PairOptions): Effect.Effect<readonly [Socket.Socket, Socket.Socket], never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => unsafeMakePair(options)),
    ([a, b]) => Effect.andThen(a.close, b.close)
  )

/**
 * Options of {@link listen}.
 *
 * ```ts
 * const listener = yield* MemorySocket.listen({ address: Address.unix("/tmp/app.sock"), acceptQueueSize: 8 })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  /** The address to report (default `127.0.0.1:0`); TCP port 0 is replaced by a fake free port. */
  readonly address?: Address.Address | undefined
  /**
   * Connections waiting for the consumer of `accept` (default 1024). Beyond
   * it a connection is closed at once (its client reads EOF) and counted in
   * `refused`, as the Node listener does.
   */
  readonly acceptQueueSize?: number | undefined
  /** Unread bytes per direction before a writer waits, for every connection (default 65536). */
  readonly bufferSize?: number | undefined
}

/**
 * Options of {@link MemoryListener.connect}: the faults of the connection,
 * seen from the client (`send`: client to server; `receive`: server to client).
 *
 * ```ts
 * const client = yield* listener.connect({ receive: { resetAfter: 100 } }) // the reply breaks off
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions {
  /** Faults of the bytes the client sends. */
  readonly send?: Faults | undefined
  /** Faults of the bytes the client receives. */
  readonly receive?: Faults | undefined
  /** Overrides the listener's `bufferSize` for this connection. */
  readonly bufferSize?: number | undefined
}

/**
 * An in-memory `Socket.Listener` plus the `connect` that reaches it, so a
 * whole server can be run against in-memory clients.
 *
 * ```ts
 * const listener = yield* MemorySocket.listen()
 * yield* listener.accept.pipe(
 *   Stream.runForEach((socket) => Effect.forkChild(Stream.run(socket.reads, socket.writes))),
 *   Effect.forkScoped
 * )
 * const client = yield* listener.connect({ send: { maxChunkSize: 1 } })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryListener extends Socket.Listener {
  /**
   * Open a connection to this listener; the client end is closed when the
   * scope closes. Fails with `ConnectionRefused` once the listener stopped
   * accepting.
   */
  readonly connect: (options?: ConnectOptions) => Effect.Effect<Socket.Socket, ConnectionRefused, Scope.Scope>
}

// Fake, process-wide port numbers: unique enough that addresses in logs tell connections apart.
let nextListenerPort = 30000
let nextClientPort = 50000
let nextUnixClient = 1

const fakePort = (counter: "listener" | "client"): number => {
  if (counter === "listener") {
    nextListenerPort = nextListenerPort >= 49999 ? 30000 : nextListenerPort + 1
    return nextListenerPort
  }
  nextClientPort = nextClientPort >= 65535 ? 50000 : nextClientPort + 1
  return nextClientPort
}

/**
 * Start an in-memory listener. Stopping closes the connections never
 * accepted (counted in `refused`); closing the scope stops and closes every
 * accepted socket. `connections` counts the accepted connections still open;
 * unlike the Node listener's, it leaves out those waiting in the queue.
 *
 * ```ts
 * const listener = yield* MemorySocket.listen({ address: Address.tcp("127.0.0.1", 0) })
 * Address.format(listener.address) // e.g. "127.0.0.1:30001" (a fake port)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen = (options?: ListenOptions): Effect.Effect<MemoryListener, never, Scope.Scope> =>
  Effect.suspend(() => {
    const acceptQueueSize = positiveInt("acceptQueueSize", options?.acceptQueueSize) ?? 1024
    const bufferSize = positiveInt("bufferSize", options?.bufferSize)
    const requested = options?.address ?? Address.tcp("127.0.0.1", 0)
    const address = requested._tag === "TcpAddress" && requested.port === 0
      ? Address.tcp(requested.host, fakePort("listener"))
      : requested
    // Signals go through a Pipe's waiter set; its byte queue is unused here.
    const signal = new Pipe(settingsOf(undefined), 1)
    const pending: Array<End> = []
    const accepted = new Set<End>()
    let stopped = false
    let refusedCount = 0

    const stop = Effect.sync(() => {
      if (stopped) return
      stopped = true
      for (const server of pending.splice(0)) {
        refusedCount++
        server.unsafeClose()
      }
      signal.notify()
    })

    const acceptPull: Pull.Pull<NonEmptyReadonlyArray<Socket.Socket>> = Effect.suspend(() => {
      // One connection per pull, as `Socket.Listener.accept` promises: a consumer
      // that stops early (Stream.take) leaves the rest queued for the next run.
      const server = pending.shift()
      if (server !== undefined) {
        accepted.add(server)
        server.onClose = () => accepted.delete(server)
        return Effect.succeed([server])
      }
      if (stopped) return Cause.done()
      return Effect.andThen(signal.waitUntil(() => stopped || pending.length > 0), acceptPull)
    })

    const refused = () =>
      new ConnectionRefused({ address, detail: "the in-memory listener stopped accepting" })

    const connect = (connectOptions?: ConnectOptions): Effect.Effect<Socket.Socket, ConnectionRefused, Scope.Scope> =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          if (stopped) return Effect.fail(refused())
          const clientAddress = address._tag === "TcpAddress"
            ? Address.tcp(address.host, fakePort("client"))
            : Address.unix(`memory:client-${nextUnixClient++}`)
          const [client, server] = unsafeMakePair({
            aToB: connectOptions?.send,
            bToA: connectOptions?.receive,
            bufferSize: connectOptions?.bufferSize ?? bufferSize,
            addresses: { a: clientAddress, b: address }
          })
          if (pending.length >= acceptQueueSize) {
            refusedCount++
            server.unsafeClose()
          } else {
            pending.push(server)
            signal.notify()
          }
          return Effect.succeed(client)
        }),
        (client) => client.close
      )

    const listener: MemoryListener = {
      address,
      accept: Stream.fromPull(Effect.succeed(acceptPull)),
      connections: Effect.sync(() => accepted.size),
      stopAccepting: stop,
      refused: Effect.sync(() => refusedCount),
      connect
    }
    return Effect.as(
      Effect.addFinalizer(() =>
        Effect.andThen(
          stop,
          Effect.forEach(Array.from(accepted), (server) => server.close, { discard: true })
        )
      ),
      listener
    )
  })
