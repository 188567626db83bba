/**
 * A connected stream socket (TCP or Unix; the address picks the transport) as
 * a scoped resource: `reads` is a pull-based `Stream` with backpressure (the
 * kernel socket is paused while nobody pulls), writes wait for `drain` only
 * when the kernel buffer is full, and closing the scope closes the handle.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const socket = yield* Socket.connect(Address.tcp("127.0.0.1", 9000))
 *   yield* socket.write(new TextEncoder().encode("hello"))
 *   yield* socket.end
 *   return yield* Stream.runCollect(socket.reads)
 * }))
 * ```
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import type * as Stream from "effect/Stream"
import type * as Address from "./Address.js"
import * as internal from "./internal/nodeSocket.js"
import type { ConnectError, ListenError, ReadError, WriteError } from "./NetError.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-wire/Socket")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A connected, bidirectional byte stream.
 *
 * - `reads` yields the bytes not read yet, one chunk per socket read. Running
 *   it again continues where the last run stopped; run it from one fiber at a
 *   time. Peer EOF ends it normally.
 * - `write`/`writeAll` resolve once Node accepted the bytes, waiting for
 *   `drain` only when Node's buffer is full. `writeAll` sends its chunks in one
 *   corked batch (one `writev`).
 * - `end` half-closes (sends FIN; `reads` keeps working); `reset` aborts with
 *   RST; `close` ends gracefully and releases the handle. All three are
 *   idempotent.
 *
 * ```ts
 * const echo = (socket: Socket.Socket) => Stream.run(socket.reads, socket.writes)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Socket {
  readonly [TypeId]: TypeId
  /** Our end of the connection. */
  readonly localAddress: Address.Address
  /** The peer's end of the connection. */
  readonly remoteAddress: Address.Address
  /** The bytes the peer sends, pulled with backpressure. */
  readonly reads: Stream.Stream<Uint8Array, ReadError>
  /** Write one chunk. */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, WriteError>
  /** Write several chunks as one batch (cork/writev). */
  readonly writeAll: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, WriteError>
  /** A sink that writes every chunk (each incoming Stream chunk as one batch) and half-closes when done. */
  readonly writes: Sink.Sink<void, Uint8Array, never, WriteError>
  /** Half-close: no more writes; the peer sees EOF; reads continue. */
  readonly end: Effect.Effect<void, WriteError>
  /** Abort the connection with RST. */
  readonly reset: Effect.Effect<void>
  /** Close the connection and release the handle. */
  readonly close: Effect.Effect<void>
}

/**
 * A listening socket: the bound address (port 0 resolved to the real port)
 * and the stream of accepted connections. Each accepted socket is closed when
 * its consumer calls `close`, or at the latest when the listener's scope
 * closes.
 *
 * ```ts
 * const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
 * console.log(Address.format(listener.address)) // "127.0.0.1:40123"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Listener {
  /** The address actually bound. */
  readonly address: Address.Address
  /** Accepted connections, in order of arrival. Ends when the listener closes. */
  readonly accept: Stream.Stream<Socket>
  /** How many accepted sockets are open right now. */
  readonly connections: Effect.Effect<number>
  /** Stop accepting; open connections are left alone. Idempotent. */
  readonly stopAccepting: Effect.Effect<void>
  /**
   * Connections closed at once because the accept queue was full
   * (`acceptQueueSize` sockets waiting for the consumer of `accept`) or the
   * listener had stopped accepting.
   */
  readonly refused: Effect.Effect<number>
}

/**
 * Options of {@link connect}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions {
  /** Give up with `ConnectTimeout` after this long (default: the OS's own timeout). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Disable Nagle's algorithm (default true: latency first). */
  readonly noDelay?: boolean | undefined
  /** Enable TCP keep-alive probes after this much idle time (true: 60 seconds). */
  readonly keepAlive?: boolean | Duration.DurationInput | undefined
  /** No byte either way for this long → `IdleTimeout` and the socket closes. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Bytes buffered from the kernel before reading pauses (default 64 KiB). */
  readonly readBufferSize?: number | undefined
  /** How long `close` waits for accepted writes to be flushed before it destroys the socket (default 2 seconds). */
  readonly closeTimeout?: Duration.DurationInput | undefined
}

/**
 * Options of {@link listen}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  /** Kernel accept backlog (default 511). */
  readonly backlog?: number | undefined
  /** For `::`, accept IPv6 only (default false: dual stack). */
  readonly ipv6Only?: boolean | undefined
  /** Applied to every accepted socket. */
  readonly noDelay?: boolean | undefined
  /** Applied to every accepted socket. */
  readonly keepAlive?: boolean | Duration.DurationInput | undefined
  /** Applied to every accepted socket. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Applied to every accepted socket. */
  readonly readBufferSize?: number | undefined
  /** Applied to every accepted socket. */
  readonly closeTimeout?: Duration.DurationInput | undefined
  /**
   * Accepted connections waiting for the consumer of `accept` (default 1024).
   * Connections beyond it are closed at once and counted in `refused`.
   */
  readonly acceptQueueSize?: number | undefined
}

/**
 * Connect to a TCP or Unix address. The socket is closed when the scope closes.
 *
 * ```ts
 * const socket = yield* Socket.connect(Address.tcp("127.0.0.1", 9000), { timeout: "2 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect: (
  address: Address.Address,
  options?: ConnectOptions
) => Effect.Effect<Socket, ConnectError, Scope.Scope> = internal.connect

/**
 * Listen on a TCP or Unix address (port 0: the kernel picks a free port; read
 * it from `listener.address`). A stale Unix socket file (nobody listening) is
 * removed first; a live one is `AddressInUse`. Closing the scope stops
 * listening, closes every accepted socket and removes the Unix socket file.
 *
 * ```ts
 * const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
 * yield* listener.accept.pipe(
 *   Stream.runForEach((socket) => Effect.fork(Stream.run(socket.reads, socket.writes)))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen: (
  address: Address.Address,
  options?: ListenOptions
) => Effect.Effect<Listener, ListenError, Scope.Scope> = internal.listen

/**
 * Is this value a {@link Socket}?
 *
 * ```ts
 * Socket.isSocket(value)
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isSocket = (u: unknown): u is Socket => typeof u === "object" && u !== null && TypeId in u
