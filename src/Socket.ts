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
import type { Pipeable } from "effect/Pipeable"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import type * as Stream from "effect/Stream"
import type * as Address from "./Address.js"
import * as internal from "./internal/socket.js"
import type { ConnectError, ListenError, ReadError, WriteError } from "./NetError.js"
import type * as ProxyProtocol from "./ProxyProtocol.js"
import type * as Tls from "./Tls.js"

/**
 * Marks a value as a {@link Socket}; shared by every implementation (Node,
 * in-memory), so {@link isSocket} recognises them all.
 *
 * ```ts
 * Socket.TypeId in value
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: typeof internal.TypeId = internal.TypeId

/** @since 0.1.0 */
export type TypeId = typeof TypeId

/**
 * A connected, bidirectional byte stream.
 *
 * - `reads` yields the bytes not read yet. Each pull yields everything
 *   received since the previous pull as ONE element: the buffer as Node read
 *   it (no copy) or, when several reads queued up meanwhile, those buffers
 *   joined once. One element per pulled batch means nothing is lost when a
 *   consumer stops early (`Stream.take(1)`, `Stream.runHead`): running `reads`
 *   again continues exactly where the last run stopped. While nobody pulls, at
 *   most `readBufferSize` bytes are buffered and then the socket is paused, so
 *   the kernel's flow control slows the peer. Run it from one fiber at a time.
 *   Peer EOF ends it normally; after EOF it is empty.
 * - `write`/`writeAll` resolve once Node accepted the bytes, waiting for
 *   `drain` only when Node's buffer is over its high-water mark. `writeAll`
 *   sends its chunks in one corked batch (one `writev`). Writing after `end`,
 *   `close` or `reset` fails with `BrokenPipe`.
 * - `end` half-closes: it sends FIN after everything written and resolves
 *   once Node handed it all to the kernel; `reads` keeps working.
 * - `reset` aborts with RST (a Unix socket is just destroyed).
 * - `close` (also what closing the connection's scope does) ends `reads`,
 *   sends FIN after the bytes already accepted by `write`, waits up to
 *   `closeTimeout` (default 2 seconds) for Node to flush them to the kernel,
 *   then releases the handle. Bytes that reached the kernel are still
 *   delivered after that; a peer that never reads cannot hold `close` longer
 *   than the timeout. Incoming bytes are discarded meanwhile.
 * - `end`, `reset` and `close` are idempotent.
 * - After `idleTimeout` with no byte moved either way, pending and later reads
 *   and writes fail with `IdleTimeout` and the socket is destroyed. A reader
 *   that stops pulling moves no bytes, so it counts as idle too; so do bytes
 *   we keep writing that the peer never takes.
 * - With `writeTimeout`, bytes written that still wait for the peer after
 *   that long fail reads and writes with `WriteTimeout`, and the socket is
 *   destroyed.
 * - Addresses: TCP ends report IP and port. A Unix client end has no name of
 *   its own, so both ends of a Unix connection report the listener's path.
 *
 * ```ts
 * const echo = (socket: Socket.Socket) => Stream.run(socket.reads, socket.writes)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Socket extends Pipeable {
  readonly [TypeId]: TypeId
  /** Our end of the connection (for Unix sockets: the listener's path). */
  readonly localAddress: Address.Address
  /** The peer's end of the connection (for Unix sockets: the listener's path). */
  readonly remoteAddress: Address.Address
  /** The bytes the peer sends, pulled with backpressure; ends at the peer's EOF. */
  readonly reads: Stream.Stream<Uint8Array, ReadError>
  /** Write one chunk; waits only when Node's write buffer is full. */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, WriteError>
  /** Write several chunks as one batch (cork/writev). */
  readonly writeAll: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, WriteError>
  /** A sink that writes every chunk (each incoming batch as one `writev`) and half-closes when the stream ends. */
  readonly writes: Sink.Sink<void, Uint8Array, never, WriteError>
  /** Half-close: no more writes; the peer sees EOF once the written bytes are out; reads continue. */
  readonly end: Effect.Effect<void, WriteError>
  /** Abort the connection with RST; unflushed bytes are dropped. */
  readonly reset: Effect.Effect<void>
  /** Flush (bounded by `closeTimeout`), close and release the handle. */
  readonly close: Effect.Effect<void>
}

/**
 * A listening socket: the bound address (port 0 resolved to the real port)
 * and the stream of accepted connections.
 *
 * Node accepts connections as they come; they wait in a bounded queue
 * (`acceptQueueSize`) until the consumer of `accept` pulls them. When the queue
 * is full, further connections are closed at once and counted in `refused`.
 * Each accepted socket is closed when its consumer calls `close`, or at the
 * latest when the listener's scope closes, which also stops listening and
 * removes a Unix socket file.
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
  /**
   * Accepted connections, in order of arrival, one per pull. Ends once the
   * listener stopped accepting and the queue is empty.
   */
  readonly accept: Stream.Stream<Socket>
  /** How many accepted sockets are open right now (queued ones included). */
  readonly connections: Effect.Effect<number>
  /**
   * Stop accepting: the listening handle closes (new connects are refused),
   * `accept` ends after the queued connections, open connections are left
   * alone. A graceful-drain server calls it first. Idempotent.
   */
  readonly stopAccepting: Effect.Effect<void>
  /**
   * Connections closed at once because the accept queue was full
   * (`acceptQueueSize` sockets waiting for the consumer of `accept`).
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
  /**
   * Speak TLS (see the `Tls` module): `connect` succeeds once the handshake
   * did and the server's certificate and host name check out, and fails
   * with a `Tls.HandshakeError` (part of `ConnectError`) otherwise. `{}`
   * trusts Node's bundled root CAs.
   */
  readonly tls?: Tls.ClientOptions | undefined
  /**
   * Give up with `ConnectTimeout` after this long and destroy the attempt
   * (default, or `Duration.infinity`: the OS's own timeout; 0 is refused).
   * Measured on Effect's `Clock`.
   */
  readonly timeout?: Duration.Input | undefined
  /** Disable Nagle's algorithm (default true: latency first). TCP only. */
  readonly noDelay?: boolean | undefined
  /**
   * Enable TCP keep-alive probes after this much idle time (true: 60 seconds;
   * default, false or `Duration.infinity`: off; 0 is refused). TCP only.
   */
  readonly keepAlive?: boolean | Duration.Input | undefined
  /**
   * No byte either way for this long → `IdleTimeout` and the socket closes
   * (default, or `Duration.infinity`: never; 0 is refused).
   */
  readonly idleTimeout?: Duration.Input | undefined
  /**
   * Bytes written that are still waiting in our buffer after this long (the
   * peer does not take what we write) fail the connection with
   * `WriteTimeout`, reads and writes alike, and the socket closes (default,
   * or `Duration.infinity`: never; 0 is refused). Checked once per timeout,
   * so a cut comes between once and twice it. It bounds how long a peer
   * that stops reading holds what we wrote to it.
   */
  readonly writeTimeout?: Duration.Input | undefined
  /** Reading pauses once more than this many received bytes wait to be pulled (default 64 KiB). */
  readonly readBufferSize?: number | undefined
  /**
   * How long `close` waits for accepted writes to be flushed before it
   * destroys the socket (default 2 seconds; above 0 and finite).
   */
  readonly closeTimeout?: Duration.Input | undefined
  /**
   * Whose Unix socket file to connect to (ignored for TCP). `"any"` (the
   * default, as every socket library): whoever's. `"self"`: only a file of
   * this process's user or root; an array of uids: only theirs (and root's).
   * Then the file, a symlink at the path and every directory above the file
   * must belong to them and be writable by nobody else (a sticky directory
   * such as /tmp is fine); otherwise the connect fails with
   * `UntrustedSocketOwner` before anything is sent, since whoever could put
   * a file there would receive what the client sends. Use it when what you
   * send matters (a token), above all as root. Anything else is a defect.
   */
  readonly unixOwner?: "any" | "self" | ReadonlyArray<number> | undefined
  /**
   * Write this PROXY protocol header (see the `ProxyProtocol` module) before
   * anything else, as a load balancer does: before the TLS handshake with
   * `tls`. An impossible header is a defect.
   */
  readonly proxyHeader?: ProxyProtocol.Header | undefined
}

/**
 * Options of {@link listen}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  /**
   * Speak TLS (see the `Tls` module): a connection is accepted once its
   * handshake succeeded; a failed handshake is logged with its typed reason
   * (see `Tls.HandshakeError`) and never reaches `accept`.
   */
  readonly tls?: Tls.ServerOptions | undefined
  /** Kernel accept backlog (default 511; the kernel caps it at `net.core.somaxconn`). */
  readonly backlog?: number | undefined
  /** For `::`, accept IPv6 only (default false: dual stack). */
  readonly ipv6Only?: boolean | undefined
  /** Applied to every accepted socket (default true). */
  readonly noDelay?: boolean | undefined
  /** Applied to every accepted socket. */
  readonly keepAlive?: boolean | Duration.Input | undefined
  /** Applied to every accepted socket. */
  readonly idleTimeout?: Duration.Input | undefined
  /** Applied to every accepted socket (see {@link ConnectOptions}). */
  readonly writeTimeout?: Duration.Input | undefined
  /** Applied to every accepted socket. */
  readonly readBufferSize?: number | undefined
  /** Applied to every accepted socket. */
  readonly closeTimeout?: Duration.Input | undefined
  /**
   * Accepted connections waiting for the consumer of `accept` (default 1024).
   * Connections beyond it are closed at once and counted in `refused`.
   */
  readonly acceptQueueSize?: number | undefined
  /**
   * The permission bits of a Unix socket file, whatever the umask (default
   * 0o600). Connecting needs write permission on the file: with 0o600 only
   * the listener's user (and root) can connect; 0o660 adds the file's group
   * (the listener's group: run it under the group you mean); 0o666 lets any
   * local user connect. The file is created with this mode before it
   * appears at its path, so there is no moment with a wider one. Unix only
   * (ignored for TCP); from 0 to 0o777, anything else is a defect.
   */
  readonly unixMode?: number | undefined
  /**
   * Read a PROXY protocol header (HAProxy's v1 or v2) at the start of every
   * connection, before it is accepted: its `remoteAddress` becomes the
   * client's the header names (see the `ProxyProtocol` module). A peer not
   * in `trustedSources`, or a malformed, oversized or slow header, closes
   * the connection (counted, logged); the listener goes on. With `tls`, the
   * header comes before the handshake. Invalid options are defects.
   */
  readonly proxyProtocol?: ProxyProtocol.ServerOptions | undefined
}

/**
 * Connect to a TCP or Unix address. The socket is closed (see `close`) when
 * the scope closes; a failed or timed-out attempt leaves nothing open. Invalid
 * options (a negative `readBufferSize`, a malformed duration) are defects.
 * With `tls`, it succeeds once the TLS handshake did, and fails with a
 * `Tls.HandshakeError` (part of `ConnectError`) otherwise.
 *
 * ```ts
 * const socket = yield* Socket.connect(Address.tcp("127.0.0.1", 9000), { timeout: "2 seconds" })
 * const secure = yield* Socket.connect(Address.tcp("example.test", 443), { tls: { ca: caPem } })
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
 * it from `listener.address`). A stale Unix socket file (connecting to it is
 * refused) is removed first; a live one is `AddressInUse`; a file that is not
 * a socket is `AddressInUse` too and is never deleted. A Unix socket file
 * gets `unixMode` (default 0o600: only this user and root can connect),
 * never the umask's mode. Closing the scope stops listening, destroys every
 * accepted socket still open and removes the Unix socket file it created.
 * Invalid options are defects.
 *
 * ```ts
 * const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
 * yield* listener.accept.pipe(
 *   Stream.runForEach((socket) => Effect.forkChild(Stream.run(socket.reads, socket.writes)))
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

/**
 * A synchronous handler for {@link pump}: it turns each read into the bytes
 * to send back, and the end of input into the last ones. It keeps its own
 * state (a decoder, counters) and must be made fresh for each connection.
 *
 * ```ts
 * const upper = (): Socket.PumpHandler<never> => ({
 *   onRead: (bytes, out) => void out.push(bytes.map((b) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b))),
 *   onEnd: () => undefined
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PumpHandler<E> {
  /**
   * One read: push what to send into `out` (sent as one batch, one `writev`).
   * Return an error to end the connection once `out` is sent. The bytes are
   * the handler's to keep; Node does not reuse them.
   */
  readonly onRead: (bytes: Uint8Array, out: Array<Uint8Array>) => E | undefined
  /**
   * The peer half-closed: push any last bytes into `out`, or return an error
   * (input ended inside a frame, say). Without an error, the pump half-closes
   * once `out` is flushed.
   */
  readonly onEnd: (out: Array<Uint8Array>) => E | undefined
}

/**
 * Options of {@link pump}.
 *
 * @since 0.1.0
 * @category models
 */
export interface PumpOptions {
  /**
   * When it aborts, the pump stops reading, half-closes (after what it has
   * already written) and succeeds: `Server`'s `connection.signal` aborts when
   * the server starts draining.
   */
  readonly signal?: AbortSignal | undefined
  /**
   * On a socket that is not a Node socket (`MemorySocket`, a wrapper): a
   * batch of output not written within this long (the peer does not read)
   * fails the pump with `WriteTimeout`, on Effect's clock (default, or
   * `Duration.infinity`: none). A Node socket applies its own `writeTimeout`
   * (a {@link connect} or {@link listen} option) instead.
   */
  readonly writeTimeout?: Duration.Input | undefined
}

/**
 * Serve a connection with a synchronous {@link PumpHandler}: every read is
 * answered by the handler's output, written as one batch; at the peer's EOF
 * the handler's last output is written and the socket half-closes; the effect
 * then succeeds once Node handed everything to the kernel. It fails with the
 * handler's error (after sending the output of that read), or with the
 * socket's `ReadError`/`WriteError`.
 *
 * Backpressure is end to end: while Node's write buffer is over its
 * high-water mark, reading pauses until it drains, so a peer that does not
 * read cannot grow our memory. On a socket from {@link connect} or
 * {@link listen} the handler runs inside Node's own callbacks, with no fiber
 * step per read (the built-in byte servers run on it); on any other `Socket`
 * (an in-memory one, a wrapper) the same contract holds over `reads` and
 * `writeAll`.
 *
 * ```ts
 * const echo = (socket: Socket.Socket) =>
 *   Socket.pump(socket, { onRead: (bytes, out) => void out.push(bytes), onEnd: () => undefined })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const pump: <E>(
  socket: Socket,
  handler: PumpHandler<E>,
  options?: PumpOptions
) => Effect.Effect<void, E | ReadError | WriteError> = internal.pump
