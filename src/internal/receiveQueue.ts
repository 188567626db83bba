/**
 * A UDP socket's bounded receive queue: a ring buffer that drops (and counts)
 * instead of growing when the reader is slow, pulled as one batch per pull or
 * one datagram at a time.
 *
 * @internal
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Pull from "effect/Pull"
import type * as Datagram from "../Datagram.js"
import type * as NetError from "../NetError.js"

/**
 * The bounded receive queue: a ring buffer, a single pending read error and
 * the fibers waiting for either.
 *
 * @internal
 */
export class ReceiveQueue {
  private readonly ring: Array<Datagram.Datagram | undefined>
  private head = 0
  private size = 0
  private pendingError: NetError.ReadError | undefined = undefined
  private closed = false
  private readonly waiters = new Set<() => void>()
  dropped = 0
  /** Told of every drop (a server warns about them). */
  onDrop: (() => void) | undefined = undefined

  constructor(readonly capacity: number, readonly strategy: Datagram.OverflowStrategy) {
    this.ring = new Array(capacity)
  }

  offer(datagram: Datagram.Datagram): void {
    if (this.closed) return
    if (this.size === this.capacity) {
      this.dropped++
      this.onDrop?.()
      if (this.strategy === "sliding") {
        // The tail of a full ring is its head: overwrite the oldest.
        this.ring[this.head] = datagram
        this.head = (this.head + 1) % this.capacity
      }
      return
    }
    this.ring[(this.head + this.size) % this.capacity] = datagram
    this.size++
    this.wakeAfterReads()
  }

  /** Keeps the first error not yet read: a storm of ICMP errors must not grow memory either. */
  fail(error: NetError.ReadError): void {
    if (this.closed || this.pendingError !== undefined) return
    this.pendingError = error
    this.wake()
  }

  close(): void {
    this.closed = true
    this.wake()
  }

  /** Keep only the queued datagrams `keep` accepts (not counted as dropped: they were never wanted). */
  retain(keep: (datagram: Datagram.Datagram) => boolean): void {
    const kept = this.takeAll().filter(keep)
    for (const d of kept) this.offer(d)
  }

  /** Forget everything queued, datagrams and error alike. */
  clear(): void {
    this.takeAll()
    this.pendingError = undefined
  }

  private takeAll(): Array<Datagram.Datagram> {
    const out = new Array<Datagram.Datagram>(this.size)
    for (let i = 0; i < this.size; i++) {
      const at = (this.head + i) % this.capacity
      out[i] = this.ring[at]!
      this.ring[at] = undefined
    }
    this.head = 0
    this.size = 0
    return out
  }

  /** The next queued datagram, if any, without waiting. */
  poll(): Datagram.Datagram | undefined {
    return this.size > 0 ? this.takeOne() : undefined
  }

  private takeOne(): Datagram.Datagram {
    const datagram = this.ring[this.head]!
    this.ring[this.head] = undefined
    this.head = (this.head + 1) % this.capacity
    this.size--
    return datagram
  }

  private wakeScheduled = false

  /**
   * libuv reads up to 32 datagrams per readiness event, each its own
   * callback. Waking the reader in the check phase, right after those
   * callbacks, hands it the whole batch as one pull instead of one
   * datagram per fiber wake-up, at no added latency (same loop iteration).
   */
  private wakeAfterReads(): void {
    if (this.waiters.size === 0 || this.wakeScheduled) return
    this.wakeScheduled = true
    setImmediate(() => {
      this.wakeScheduled = false
      this.wake()
    })
  }

  private wake(): void {
    if (this.waiters.size === 0) return
    const waiters = Array.from(this.waiters)
    this.waiters.clear()
    for (const wake of waiters) wake()
  }

  private readonly await: Effect.Effect<void> = Effect.callback<void>((resume) => {
    const wake = () => resume(Effect.void)
    this.waiters.add(wake)
    return Effect.sync(() => {
      this.waiters.delete(wake)
    })
  })

  private readonly takeError = (): NetError.ReadError | undefined => {
    const error = this.pendingError
    this.pendingError = undefined
    return error
  }

  /** Everything queued as one (never empty) batch; `Cause.Done` once closed and empty. */
  readonly pull: Pull.Pull<NonEmptyReadonlyArray<Datagram.Datagram>, NetError.ReadError> = Effect.suspend(
    (): Pull.Pull<NonEmptyReadonlyArray<Datagram.Datagram>, NetError.ReadError> => {
      if (this.size > 0) return Effect.succeed(this.takeAll() as unknown as NonEmptyReadonlyArray<Datagram.Datagram>)
      const error = this.takeError()
      if (error !== undefined) return Effect.fail(error)
      if (this.closed) return Cause.done()
      return Effect.andThen(this.await, this.pull)
    }
  )

  /** The next datagram alone; `None` once closed and empty. */
  readonly receive: Effect.Effect<Option.Option<Datagram.Datagram>, NetError.ReadError> = Effect.suspend(() => {
    if (this.size > 0) return Effect.succeed(Option.some(this.takeOne()))
    const error = this.takeError()
    if (error !== undefined) return Effect.fail(error)
    if (this.closed) return Effect.succeed(Option.none())
    return Effect.andThen(this.await, this.receive)
  })
}

/** Where a socket keeps its queue. */
export const QueueKey: unique symbol = Symbol.for("effect-wire/Datagram/queue")

/**
 * The receive queue behind a socket made by nodeDatagram.ts, for a server,
 * which warns about drops, and for the request client, which needs single
 * takes and a way to drop stale replies.
 *
 * @internal
 */
export const queueOf = (socket: Datagram.ConnectedDatagramSocket | Datagram.DatagramSocket): ReceiveQueue =>
  (socket as unknown as { readonly [QueueKey]: ReceiveQueue })[QueueKey]
