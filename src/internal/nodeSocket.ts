/**
 * A connected node:net socket as a `Socket`: reads queue up to
 * `readBufferSize` and then pause the socket, writes go straight to Node, and
 * close, end and reset follow the `Socket` contract.
 *
 * Hot paths (every read, every write) are plain JS: one small state object
 * per socket, event handlers shared by all sockets (they find their state
 * through a symbol on the Node socket), no Effect queue or fiber per socket.
 * Effect only appears where a caller has to wait.
 *
 * This module must not import values from ../Socket.js (Socket.ts imports it).
 *
 * @internal
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { constTrue } from "effect/Function"
import * as Pull from "effect/Pull"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import { pipeArguments } from "effect/Pipeable"
import type * as Net from "node:net"
import * as Address from "../Address.js"
import * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"
import { BudgetKey, formatBytes, type Member, type MemoryBudget } from "./memoryBudget.js"
import type { SocketConfig } from "./nodeSocketOptions.js"
import { pumpEffect } from "./nodePump.js"
import { CloseInCallbacks, CutReadWait, ONE_READER, PullReads, PumpInCallbacks, TypeId } from "./socketContract.js"
import { sinkFromTransform, streamFromPull } from "./youngTransforms.js"

const END_VOID: Sink.End<void> = [undefined]

/** Where a Node socket keeps its wrapper, so shared handlers need no closure per socket. */
const kOwner = Symbol.for("effect-wire/internal/NodeSocket")

/** @internal */
export type Raw = Net.Socket & { [kOwner]?: NodeSocket | undefined }

const TrustedTcpAddress = (() => {
  function TcpAddress(this: { _tag: "TcpAddress"; host: string; port: number }, host: string, port: number) {
    this._tag = "TcpAddress"
    this.host = host
    this.port = port
  }
  TcpAddress.prototype = Address.TcpAddress.prototype
  return TcpAddress as unknown as new(host: string, port: number) => object
})()

/**
 * A `TcpAddress` of a host and port that Node reported (well-formed, so not
 * validated), made without the class's constructor: the same own fields in
 * the same order on the same prototype, so `Equal`, `Hash`, `Schema.is` and
 * encoding see an ordinary instance. One is made for every connection's
 * peer; `new TcpAddress({ host, port }, { disableChecks: true })` also
 * allocates its argument and copies it field by field (measured ~0.05 µs
 * against this one's ~0.003). Made by a constructor, not `Object.create`
 * and stores, whose property array V8 puts in the old generation
 * (internal/youngTransforms.ts).
 *
 * @internal
 */
export const trustedTcpAddress = (host: string, port: number): Address.TcpAddress =>
  new TrustedTcpAddress(host, port) as unknown as Address.TcpAddress

const tcpAddress = (host: string | undefined, port: number | undefined, fallback: Address.Address): Address.Address =>
  host === undefined || host.length === 0 || port === undefined ? fallback : trustedTcpAddress(host, port)

/** A listener on one of these accepts connections to any of the machine's addresses. */
const isWildcard = (host: string): boolean => host === "0.0.0.0" || host === "::" || host === ""

const UNNAMED_IPV4 = new Address.TcpAddress({ host: "0.0.0.0", port: 0 }, { disableChecks: true })
const UNNAMED_IPV6 = new Address.TcpAddress({ host: "::", port: 0 }, { disableChecks: true })

/** @internal */
export const errnoOf = (error: unknown): unknown => (error as NodeJS.ErrnoException | undefined)?.code

const READING = 1 // we asked Node to flow; cleared while the read buffer is full
const EOF = 2 // the peer's FIN arrived
const CLOSED = 4 // Node's 'close' fired: the handle is gone
const CLOSING = 8 // close/reset was called: reads end, incoming bytes are discarded
const ENDED = 16 // end was called: no more writes
const CONNECTED = 32
const BUDGET_WAIT = 64 // reading is wanted, but the server's memory budget paused it

/** The failures we raise ourselves: reads and writes fail with them as they are. */
const isOurCut = (failure: unknown): failure is NetError.IdleTimeout | NetError.WriteTimeout | NetError.MemoryBudgetExceeded =>
  failure instanceof NetError.IdleTimeout || failure instanceof NetError.WriteTimeout ||
  failure instanceof NetError.MemoryBudgetExceeded

type Resume<A, E> = (effect: Effect.Effect<A, E>) => void
/** One element per pull: everything received since the last pull; the end is `Cause.Done`. */
type ReadPull = Pull.Pull<NonEmptyReadonlyArray<Uint8Array>, NetError.ReadError>

/** The listener side of an accepted socket: told when the socket closes. */
export interface Owner {
  readonly release: (socket: NodeSocket) => void
}

/**
 * What drives a socket from Node's callbacks instead of `reads` (a running
 * `Socket.pump`, see nodePump.ts): the socket's event handlers hand it every
 * event.
 */
export interface CallbackReader {
  read(bytes: Buffer): void
  end(): void
  finish(exit: Exit.Exit<void, unknown>): void
  drained(): void
  /** Input bytes its handler holds (a decoder's unfinished frame), for the memory budget. */
  held(): number
}

/** A parked connection's handler, seen from its socket (see `NodeSocket.parked`). */
export interface ParkedHandler {
  /** Bytes it holds: the frames of the read it is answering, and replies not written yet. */
  held(): number
  /** The connection closed (cut by a limit, reset by the peer) while it waited. */
  closed(): void
}

/**
 * Bytes waiting in Node's buffer for the peer to take them, watched for the
 * write timeout: made when a write leaves bytes waiting, dropped once none
 * wait. Times are `performance.now()`.
 */
interface StallWatch {
  /** Since when the oldest bytes may have waited. */
  since: number
  /** How many bytes waited then, and how many the kernel had taken by then. */
  pending: number
  base: number
  timer: ReturnType<typeof setTimeout> | undefined
}

/** Bytes the kernel has taken from Node's buffer so far. */
const takenOf = (raw: Raw): number => (raw.bytesWritten ?? 0) - raw.writableLength

/**
 * One connected socket. Reads: Node flows into `queue` until `readBufferSize`
 * bytes wait, then it is paused until a pull takes the queue as one element.
 * Writes go straight to Node and wait only when `write()` returns false.
 */
export class NodeSocket implements Socket.Socket, Member {
  declare readonly [TypeId]: Socket.TypeId
  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
  localAddress: Address.Address
  remoteAddress: Address.Address
  /** Received buffers nobody pulled yet; undefined while empty so idle sockets stay small. */
  queue: Array<Buffer> | undefined = undefined
  queued = 0
  flags = 0
  /** The first failure: a Node error, or our IdleTimeout. */
  failure: unknown = undefined
  reader: Resume<NonEmptyReadonlyArray<Uint8Array>, NetError.ReadError | Cause.Done> | undefined = undefined
  /** A `Socket.pump` driving this socket from Node's callbacks, if one runs. */
  direct: CallbackReader | undefined = undefined
  drainWaiters: Array<Resume<void, NetError.WriteError>> | undefined = undefined
  /** Who waits in `endWith` for Node to hand everything written to the kernel. */
  endWaiters: Array<(exit: Exit.Exit<void, NetError.WriteError>) => void> | undefined = undefined
  /** The wait for the next read, made once per socket (see `poll`). */
  awaitRead: ReadPull | undefined = undefined
  /** What the next wait in `reads` fails with instead of waiting, while set (`[CutReadWait]`). */
  readCut: unknown = undefined
  /** `reads`, `writes`, `write` and `writeAll`, each made on first use and kept. */
  readStream: Stream.Stream<Uint8Array, NetError.ReadError> | undefined = undefined
  writeSink: Sink.Sink<void, Uint8Array, never, NetError.WriteError> | undefined = undefined
  writeOne: ((bytes: Uint8Array) => Effect.Effect<void, NetError.WriteError>) | undefined = undefined
  writeMany: ((chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, NetError.WriteError>) | undefined = undefined
  /** Bytes waiting for the peer, while a write or idle timeout watches them. */
  stall: StallWatch | undefined = undefined
  /**
   * While a connection served in callbacks is parked (its handler waits in a
   * fiber, no pump reads): what that handler holds, for the memory budget,
   * and what to do if the connection closes meanwhile.
   */
  parked: ParkedHandler | undefined = undefined
  /** The server's memory budget, when it has one and this socket counts in it. */
  budget: MemoryBudget | undefined = undefined
  charged = 0
  budgetIndex = -1
  /** `performance.now()` when accepted (a listener's metrics), and when it began to wait in the accept queue. */
  openedAt = 0
  /** Its place in its listener's set of open sockets (internal/swapSet.ts). */
  setIndex = -1
  queuedAt = 0

  constructor(
    /** Replaced once by `rebind` when the connection upgrades to TLS (STARTTLS). */
    public raw: Raw,
    readonly config: SocketConfig,
    readonly isTcp: boolean,
    address: Address.Address,
    readonly owner: Owner | undefined
  ) {
    this.localAddress = address
    // An accepted TCP socket learns its peer in `established`; it is never the listener.
    this.remoteAddress = owner !== undefined && isTcp ? Address.unknownPeer : address
    raw[kOwner] = this
    raw.on("data", onData)
    raw.on("end", onEnd)
    raw.on("error", onError)
    raw.on("close", onClose)
    raw.on("drain", onDrain)
  }

  /**
   * Called once the connection exists: at once for accepted sockets (with
   * the listener's address), on 'connect' for ours. Node answers from
   * getsockname/getpeername, which fail once the connection was reset: a
   * peer that reset before we accepted it is `Address.unknownPeer`, never
   * the listener's address; an end of ours that cannot be named is the
   * wildcard with port 0, as getsockname reports an unbound socket. An
   * accepted socket's end is the listener's own address when the listener is
   * bound to one IP (only a wildcard listener's connections arrive at
   * several), and node:net has set its TCP_NODELAY and keep-alive as it
   * accepted it (the listener's `acceptOptions`).
   */
  established(listenerAddress: Address.Address | undefined): void {
    const raw = this.raw
    const config = this.config
    this.flags |= CONNECTED
    if (this.isTcp) {
      const peer = listenerAddress === undefined ? this.remoteAddress : Address.unknownPeer
      if (listenerAddress !== undefined && listenerAddress._tag === "TcpAddress" && !isWildcard(listenerAddress.host)) {
        this.localAddress = listenerAddress
      } else {
        const ours = listenerAddress ?? (this.remoteAddress._tag === "TcpAddress" && this.remoteAddress.host.includes(":")
          ? UNNAMED_IPV6
          : UNNAMED_IPV4)
        const host = raw.localAddress
        const port = raw.localPort
        // An accepted connection's end is usually the listener's own address: share it.
        this.localAddress = ours._tag === "TcpAddress" && ours.port === port && ours.host === host
          ? ours
          : tcpAddress(host, port, ours)
      }
      this.remoteAddress = tcpAddress(raw.remoteAddress, raw.remotePort, peer)
      if (listenerAddress === undefined) {
        raw.setNoDelay(config.noDelay)
        if (config.keepAlive !== false) raw.setKeepAlive(true, config.keepAlive)
      }
    }
    if (config.idleTimeoutMs > 0) {
      raw.setTimeout(config.idleTimeoutMs)
      raw.on("timeout", onTimeout)
    }
  }

  // -- reads ----------------------------------------------------------------

  startReading(): void {
    if ((this.flags & (READING | EOF | CLOSED)) === 0) {
      if (this.budget?.paused === true) {
        this.flags |= BUDGET_WAIT
        return
      }
      this.flags |= READING
      this.raw.resume()
    }
  }

  wakeReader(): void {
    const reader = this.reader
    if (reader !== undefined) {
      this.reader = undefined
      // Effect 4 resumes the waiting fiber right here, inside Node's callback,
      // with what a pull gives now (one step less per read than an Effect that polls).
      reader(this.poll())
    }
  }

  /** Everything queued as one element; else the failure; else the end; else wait. */
  poll(): ReadPull {
    const queued = this.takeQueued()
    if (queued !== undefined) return Effect.succeed(queued)
    if (this.failure !== undefined) return Effect.fail(this.readError())
    if ((this.flags & (EOF | CLOSED | CLOSING)) !== 0) return Cause.done()
    if (this.reader !== undefined || this.direct !== undefined) {
      return Effect.die(new Error(ONE_READER))
    }
    this.startReading()
    return this.awaitRead ??= this.makeAwaitRead()
  }

  /**
   * The wait for the next read, one Effect per socket for every wait: a read
   * resumes it with what `poll` gives then. Its cancel needs no check of
   * whose wait it is: it runs while the fiber still waits (no other can wait
   * meanwhile, `ONE_READER`), and an interrupted fiber's cancel has cleared
   * `reader` before any later read, so no read is taken for a fiber that
   * will not use it.
   */
  makeAwaitRead(): ReadPull {
    const cancel = Effect.sync(() => {
      this.reader = undefined
    })
    return Effect.callback((resume) => {
      if (this.readCut !== undefined) return resume(Effect.fail(this.readCut as NetError.ReadError))
      this.reader = resume
      return cancel
    })
  }

  /** See `CutsReadWaits` in socketContract.ts. */
  [CutReadWait](error: unknown): void {
    this.readCut = error
    const reader = this.reader
    if (error === undefined || reader === undefined) return
    this.reader = undefined
    reader(Effect.fail(error as NetError.ReadError))
  }

  get reads(): Stream.Stream<Uint8Array, NetError.ReadError> {
    // The pull is the socket's own state: a stream run again continues where the last run stopped.
    return this.readStream ??= streamFromPull(Effect.succeed(this[PullReads]))
  }

  /** The pull `reads` is made of, for a reader that pulls it itself (see `CutsReadWaits`). */
  get [PullReads](): ReadPull {
    return Effect.suspend(() => this.poll())
  }

  takeQueued(): NonEmptyReadonlyArray<Uint8Array> | undefined {
    const queue = this.queue
    if (queue === undefined) return undefined
    const queued = this.queued
    this.queue = undefined
    this.queued = 0
    if (this.budget !== undefined) this.budget.update(this)
    this.startReading()
    // One element per Stream chunk: an operator that stops early (take, runHead)
    // must not drop bytes that were pulled along with the ones it wanted. A
    // queue of one read is that chunk already (nothing else refers to it now).
    // Joining a backlog costs a copy; handing it over one read per pull was
    // tried: it costs an echo a write and a wait for 'drain' per read, and
    // the peak memory of a 4 × 64 MiB stream echo stayed at 151 MB.
    return queue.length === 1 ? queue as [Buffer] : [Buffer.concat(queue, queued)]
  }

  readError(): NetError.ReadError {
    const failure = this.failure
    if (isOurCut(failure)) return failure
    // A write failed with EPIPE: the peer is gone, which is what reads know as a reset.
    if (errnoOf(failure) === "EPIPE") {
      return new NetError.ConnectionReset({
        address: this.remoteAddress,
        code: "EPIPE",
        syscall: (failure as NodeJS.ErrnoException).syscall,
        cause: failure,
        detail: "the peer closed the connection while we were writing"
      })
    }
    return NetError.fromSystemError(failure, { phase: "read", address: this.remoteAddress })
  }

  // -- writes ---------------------------------------------------------------

  writeError(): NetError.WriteError {
    const failure = this.failure
    if (failure !== undefined) {
      return isOurCut(failure)
        ? failure
        : NetError.fromSystemError(failure, { phase: "write", address: this.remoteAddress })
    }
    return new NetError.BrokenPipe({
      address: this.remoteAddress,
      detail: (this.flags & (CLOSED | CLOSING)) === 0 && (this.flags & ENDED) !== 0
        ? "this side already half-closed the connection with end"
        : "the socket is closed"
    })
  }

  canWrite(): boolean {
    return this.failure === undefined && (this.flags & (CLOSED | CLOSING | ENDED)) === 0 && !this.raw.destroyed
  }

  /**
   * `write()` answers from the buffer size before the write; a large chunk
   * that the kernel took at once still reports false. Below the high-water
   * mark now means there is room: no need to wait a tick for 'drain'.
   */
  flushed(): boolean {
    const raw = this.raw
    return raw.writableLength < raw.writableHighWaterMark
  }

  awaitDrain(): Effect.Effect<void, NetError.WriteError> {
    return Effect.callback((resume) => {
      if (!this.raw.writableNeedDrain) return resume(Effect.void)
      if ((this.flags & CLOSED) !== 0) return resume(Effect.fail(this.writeError()))
      const waiters = this.drainWaiters ??= []
      waiters.push(resume)
      return Effect.sync(() => {
        const i = waiters.indexOf(resume)
        if (i >= 0) waiters.splice(i, 1)
      })
    })
  }

  settleDrainWaiters(result: Effect.Effect<void, NetError.WriteError>): void {
    const waiters = this.drainWaiters
    if (waiters === undefined || waiters.length === 0) return
    this.drainWaiters = undefined
    for (const resume of waiters) resume(result)
  }

  // `write` and `writeAll` may be called detached (`Stream.runForEach(s, socket.write)`):
  // each is a closure, made on first use, since most connections use neither.
  get write(): (bytes: Uint8Array) => Effect.Effect<void, NetError.WriteError> {
    return this.writeOne ??= (bytes) => Effect.suspend(() => this.writeNow([bytes]) ?? Effect.void)
  }

  get writeAll(): (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, NetError.WriteError> {
    return this.writeMany ??= (chunks) => Effect.suspend(() => this.writeNow(chunks) ?? Effect.void)
  }

  /**
   * Writes a batch at once; returns what must happen before the next write:
   * nothing (undefined), a wait for 'drain', or the failure.
   */
  writeNow(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, NetError.WriteError> | undefined {
    if (!this.canWrite()) return Effect.fail(this.writeError())
    const raw = this.raw
    const n = chunks.length
    if (n === 0) return undefined
    let ok: boolean
    if (n === 1) ok = raw.write(chunks[0]!)
    else {
      // Corked writes leave as one writev on uncork.
      raw.cork()
      ok = true
      for (let i = 0; i < n; i++) ok = raw.write(chunks[i]!)
      raw.uncork()
    }
    this.afterWrite()
    return ok || this.flushed() ? undefined : this.awaitDrain()
  }

  /** After a write: watch bytes left waiting (the write timeout), and charge the memory budget. */
  afterWrite(): void {
    if (this.stall === undefined) this.watchStall()
    if (this.budget !== undefined) this.budget.update(this)
  }

  /**
   * Bytes are left waiting for the peer: with a write timeout, watch them.
   * The connection is cut once bytes waited that long; checked once per
   * timeout, it acts between once and twice it, with one timer per socket
   * at most and nothing per write. (The idle timeout needs no such watch:
   * Node's idle timer is refreshed by bytes read and by writes the kernel
   * completes, and a write made while an earlier one waits only queues.)
   */
  watchStall(): void {
    const period = this.config.writeTimeoutMs
    if (period === 0) return
    const raw = this.raw
    const pending = raw.writableLength
    if (pending === 0) return
    this.stall = { since: performance.now(), pending, base: takenOf(raw), timer: undefined }
    this.armStall(period)
  }

  armStall(millis: number): void {
    const timer = setTimeout(onStall, Math.max(1, Math.ceil(millis)), this)
    timer.unref()
    this.stall!.timer = timer
  }

  checkStall(): void {
    const w = this.stall
    if (w === undefined) return
    w.timer = undefined
    const raw = this.raw
    const pending = raw.writableLength
    if (pending === 0 || this.failure !== undefined || (this.flags & CLOSED) !== 0 || raw.destroyed) {
      this.stall = undefined
      return
    }
    const now = performance.now()
    const taken = takenOf(raw)
    // Every byte that waited at `since` is gone: the oldest one waiting now came later.
    if (taken - w.base >= w.pending) {
      w.since = now
      w.pending = pending
      w.base = taken
    }
    const writeTimeoutMs = this.config.writeTimeoutMs
    if (now - w.since >= writeTimeoutMs) {
      return this.cutFor(
        new NetError.WriteTimeout({
          address: this.remoteAddress,
          detail: `${formatBytes(pending)} written to it were still waiting after ${Math.round(now - w.since)} ms ` +
            `(writeTimeout: ${writeTimeoutMs} ms)`
        })
      )
    }
    this.armStall(w.since + writeTimeoutMs - now)
  }

  /** Close the connection at once: pending and later reads and writes fail with `error`. */
  cutFor(error: NetError.IdleTimeout | NetError.WriteTimeout | NetError.MemoryBudgetExceeded): void {
    if (this.failure === undefined) this.failure = error
    // What nobody pulled yet goes now: a cut must free the memory it held.
    this.queue = undefined
    this.queued = 0
    this.raw.destroy()
  }

  // -- memory budget ----------------------------------------------------------

  /** Joins the server's memory budget (see memoryBudget.ts). */
  [BudgetKey](budget: MemoryBudget): void {
    if ((this.flags & CLOSED) !== 0) return
    this.budget = budget
    budget.join(this)
  }

  heldInput(): number {
    const direct = this.direct
    const held = direct === undefined ? this.queued : this.queued + direct.held()
    return this.parked === undefined ? held : held + this.parked.held()
  }

  pendingOutput(): number {
    return this.raw.writableLength
  }

  budgetPause(): void {
    if ((this.flags & READING) === 0) return
    this.flags = (this.flags & ~READING) | BUDGET_WAIT
    this.raw.pause()
  }

  budgetResume(): void {
    if ((this.flags & BUDGET_WAIT) === 0) return
    this.flags &= ~BUDGET_WAIT
    this.startReading()
  }

  get writes(): Sink.Sink<void, Uint8Array, never, NetError.WriteError> {
    // An upstream failure never reaches a sink in Effect 4 (the stream restores
    // it after the sink): only a normal end half-closes.
    return this.writeSink ??= sinkFromTransform((upstream) => {
      // One loop step per batch: `step` writes it at once, and what must come
      // first (a wait for 'drain', a failed write) runs before the next pull.
      let first: Effect.Effect<void, NetError.WriteError> | undefined
      const loop = Effect.whileLoop({
        while: constTrue,
        body: () => {
          if (first === undefined) return upstream
          const wait = first
          first = undefined
          return Effect.andThen(wait, upstream)
        },
        step: (chunks: NonEmptyReadonlyArray<Uint8Array>) => {
          first = this.writeNow(chunks)
        }
      }) as Effect.Effect<never, NetError.WriteError | Cause.Done>
      return Pull.catchDone(loop, () => this.endAs(END_VOID))
    })
  }

  // -- lifecycle ------------------------------------------------------------

  /**
   * Half-close: send FIN after everything written, then call `done` once Node
   * handed it all to the kernel (at once when there is nothing to wait for).
   * Returns how to stop waiting, when there is a wait.
   */
  endWith(done: (exit: Exit.Exit<void, NetError.WriteError>) => void): (() => void) | undefined {
    const raw = this.raw
    if (raw.writableFinished) return void done(Exit.void)
    if (this.failure !== undefined) return void done(Exit.fail(this.writeError()))
    if ((this.flags & (CLOSED | CLOSING)) !== 0 || raw.destroyed) return void done(Exit.void)
    if ((this.flags & ENDED) === 0) {
      this.flags |= ENDED
      raw.end()
    }
    if (raw.writableFinished) return void done(Exit.void)
    // Told by the shared 'finish' listener, or by 'close' (onClose) if the flush never finishes.
    const waiters = this.endWaiters
    if (waiters === undefined) {
      this.endWaiters = [done]
      raw.on("finish", onFinished)
    } else waiters.push(done)
    return () => {
      const waiters = this.endWaiters
      const i = waiters === undefined ? -1 : waiters.indexOf(done)
      if (i < 0) return
      waiters!.splice(i, 1)
      if (waiters!.length > 0) return
      this.endWaiters = undefined
      this.raw.off("finish", onFinished)
    }
  }

  settleEndWaiters(exit: Exit.Exit<void, NetError.WriteError>): void {
    const waiters = this.endWaiters
    if (waiters === undefined) return
    this.endWaiters = undefined
    this.raw.off("finish", onFinished)
    for (const done of waiters) done(exit)
  }

  get end(): Effect.Effect<void, NetError.WriteError> {
    return this.endAs(undefined)
  }

  /** `end` succeeding with `value` (one Effect step less than `Effect.as(end, value)`). */
  endAs<A>(value: A): Effect.Effect<A, NetError.WriteError> {
    return Effect.callback((resume) => {
      const cancel = this.endWith((exit) => resume(exit._tag === "Success" ? Effect.succeed(value) : Exit.failCause(exit.cause)))
      return cancel === undefined ? undefined : Effect.sync(cancel)
    })
  }

  get reset(): Effect.Effect<void> {
    return Effect.sync(() => this.unsafeReset())
  }

  unsafeReset(): void {
    const raw = this.raw
    this.beginClosing()
    if (raw.destroyed) return
    if (this.isTcp && (this.flags & CONNECTED) !== 0) {
      try {
        raw.resetAndDestroy()
        return
      } catch {
        // Not a TCP handle after all: a plain destroy is the closest abort.
      }
    }
    raw.destroy()
  }

  /** Reads end at once; what is still queued or arrives from now on is dropped. */
  beginClosing(): void {
    if ((this.flags & CLOSING) !== 0) return
    this.flags |= CLOSING
    this.queue = undefined
    this.queued = 0
    this.wakeReader()
    // Like reads, a pump ends normally when the socket is closed under it.
    this.direct?.finish(Exit.void)
  }

  /** `Socket.pump` on this socket: Node's callbacks drive the handler (nodePump.ts). */
  [PumpInCallbacks]<E>(
    handler: Socket.PumpHandler<E>,
    signal: AbortSignal | undefined
  ): Effect.Effect<void, E | NetError.ReadError | NetError.WriteError> {
    return pumpEffect(this, handler, signal)
  }

  /** `closeWith`, for `Server` (see socketContract.ts). */
  [CloseInCallbacks](done: () => void): (() => void) | undefined {
    return this.closeWith(done)
  }

  /** Someone reads this socket: a fiber through `reads`, or a pump. */
  get isRead(): boolean {
    return this.reader !== undefined || this.direct !== undefined
  }

  /** The peer's FIN arrived. */
  get isEof(): boolean {
    return (this.flags & EOF) !== 0
  }

  /** Closed, or being closed: reads are over. */
  get isClosing(): boolean {
    return (this.flags & (CLOSED | CLOSING)) !== 0
  }

  /** Takes the buffers `reads` left queued, without resuming reading. */
  /** The oldest queued read, taken off the queue (undefined when none is queued). */
  shiftQueue(): Buffer | undefined {
    const queue = this.queue
    if (queue === undefined) return undefined
    const bytes = queue.shift()!
    if (queue.length === 0) {
      this.queue = undefined
      this.queued = 0
    } else this.queued -= bytes.length
    if (this.budget !== undefined) this.budget.update(this)
    return bytes
  }

  takeQueue(): Array<Buffer> | undefined {
    const queue = this.queue
    this.queue = undefined
    this.queued = 0
    if (this.budget !== undefined) this.budget.update(this)
    return queue
  }

  /** Stop reading until `startReading`: the peer is not reading what we write. */
  pauseReading(): void {
    this.flags &= ~(READING | BUDGET_WAIT)
    this.raw.pause()
  }

  get close(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const cancel = this.closeWith(() => resume(Effect.void))
      return cancel === undefined ? undefined : Effect.sync(cancel)
    })
  }

  /**
   * End the write side, wait until Node flushed what it accepted (bounded by
   * `closeTimeout`), then destroy; `done` is called then (at once when there
   * is nothing to wait for). Incoming bytes are read and dropped meanwhile,
   * so the kernel closes with FIN rather than RST. Returns how to cut the
   * wait short (destroying at once), when there is a wait.
   */
  closeWith(done: () => void): (() => void) | undefined {
    const raw = this.raw
    this.beginClosing()
    if (raw.destroyed) return void done()
    if ((this.flags & CONNECTED) === 0 || this.failure !== undefined) {
      raw.destroy()
      return void done()
    }
    if ((this.flags & READING) === 0 && (this.flags & EOF) === 0) {
      this.flags |= READING
      raw.resume()
    }
    if (!raw.writableEnded) {
      this.flags |= ENDED
      raw.end()
    }
    if (raw.writableFinished) {
      raw.destroy()
      return void done()
    }
    const cleanup = () => {
      clearTimeout(timer)
      raw.off("finish", finished)
      raw.off("close", finished)
    }
    const finished = () => {
      cleanup()
      raw.destroy()
      done()
    }
    // A Node timer, not Effect's Clock: the bound on holding an OS handle
    // must also hold under a TestClock that nobody advances.
    const timer = setTimeout(finished, this.config.closeTimeoutMs)
    raw.once("finish", finished)
    raw.once("close", finished)
    return () => {
      cleanup()
      raw.destroy()
    }
  }

  /**
   * STARTTLS (internal/nodeTls.ts): from now on this socket reads and writes
   * through `next`, a TLS socket over the current one, which owns the old
   * one from here (its errors reach us through `next`). Reading stays paused
   * until the next pull.
   */
  rebind(next: Raw): void {
    const old = this.raw
    old.off("data", onData)
    old.off("end", onEnd)
    old.off("error", onError)
    old.off("close", onClose)
    old.off("drain", onDrain)
    old.off("timeout", onTimeout)
    old.off("finish", onFinished)
    old.setTimeout(0)
    old.on("error", ignoreError)
    delete old[kOwner]
    this.raw = next
    next[kOwner] = this
    next.pause()
    this.flags &= ~READING
    next.on("data", onData)
    next.on("end", onEnd)
    next.on("error", onError)
    next.on("close", onClose)
    next.on("drain", onDrain)
    if (this.endWaiters !== undefined) next.on("finish", onFinished)
    if (this.config.idleTimeoutMs > 0) {
      next.setTimeout(this.config.idleTimeoutMs)
      next.on("timeout", onTimeout)
    }
  }

  /** Immediate destroy, for listener shutdown. */
  unsafeDestroy(): void {
    this.beginClosing()
    this.raw.destroy()
  }
}

function ignoreError(): void {}

function onData(this: Raw, chunk: Buffer): void {
  const s = this[kOwner]
  if (s === undefined || (s.flags & CLOSING) !== 0) return
  const direct = s.direct
  if (direct !== undefined) return direct.read(chunk)
  const queue = s.queue
  if (queue === undefined) s.queue = [chunk]
  else queue.push(chunk)
  s.queued += chunk.length
  if (s.queued > s.config.readBufferSize) {
    s.flags &= ~READING
    this.pause()
  }
  if (s.budget !== undefined) s.budget.update(s)
  s.wakeReader()
}

function onEnd(this: Raw): void {
  const s = this[kOwner]
  if (s === undefined) return
  s.flags |= EOF
  s.wakeReader()
  s.direct?.end()
}

function onError(this: Raw, error: Error): void {
  const s = this[kOwner]
  // A TLS socket over a refused connection reports the refusal after 'close': nobody waits for it then.
  if (s === undefined) return
  if (s.failure === undefined) s.failure = error
  s.wakeReader()
  s.direct?.finish(Exit.fail(s.readError()))
}

function onClose(this: Raw): void {
  const s = this[kOwner]
  if (s === undefined) return
  s.flags |= CLOSED
  // Released first: a fiber woken below runs inside this callback and must see the socket gone.
  s.owner?.release(s)
  s.wakeReader()
  s.direct?.finish(s.failure === undefined ? Exit.void : Exit.fail(s.readError()))
  s.parked?.closed()
  if (s.drainWaiters !== undefined) s.settleDrainWaiters(Effect.suspend(() => Effect.fail(s.writeError())))
  if (s.endWaiters !== undefined) s.settleEndWaiters(this.writableFinished ? Exit.void : Exit.fail(s.writeError()))
  const stall = s.stall
  if (stall !== undefined) {
    if (stall.timer !== undefined) clearTimeout(stall.timer)
    s.stall = undefined
  }
  s.budget?.leave(s)
  // Node's dead socket stays reachable from its handle's wrapper until a full
  // GC, and a young-generation GC keeps whatever it reaches: cut here, this
  // wrapper, its streams and the connection's fiber can die young (what
  // survives a scavenge per connection, in a fresh process: 4.9 KB before,
  // 2.0 KB after, raw node 1.5 KB; see docs/performance.md).
  this[kOwner] = undefined
}

function onDrain(this: Raw): void {
  const s = this[kOwner]
  if (s === undefined) return
  s.settleDrainWaiters(Effect.void)
  s.direct?.drained()
  if (s.budget !== undefined) s.budget.update(s)
}

function onFinished(this: Raw): void {
  this[kOwner]?.settleEndWaiters(Exit.void)
}

function onStall(s: NodeSocket): void {
  s.checkStall()
}

function onTimeout(this: Raw): void {
  const s = this[kOwner]
  if (s === undefined) return
  if (s.failure === undefined) {
    s.failure = new NetError.IdleTimeout({
      address: s.remoteAddress,
      detail: `no byte moved either way for ${s.config.idleTimeoutMs} ms`
    })
  }
  this.destroy()
}

Object.defineProperty(NodeSocket.prototype, TypeId, { value: TypeId })
