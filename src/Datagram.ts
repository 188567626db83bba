/**
 * UDP sockets as scoped resources. `bind` opens a socket whose `reads` stream
 * the datagrams it receives, each with the sender's address, through a
 * bounded queue that drops (and counts) instead of growing when the reader is
 * slow; `send` sends one datagram. Closing the scope closes the socket.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const socket = yield* Datagram.bind(Address.tcp("127.0.0.1", 0))
 *   yield* socket.send(new TextEncoder().encode("ping"), socket.address) // to ourselves
 *   return yield* Stream.runHead(socket.reads) // Option.some({ payload: <"ping">, from: socket.address })
 * }))
 * ```
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Address from "./Address.js"
import * as internal from "./internal/datagram.js"
import type { ConnectError, HostNotFound, ListenError, ReadError, SendError } from "./NetError.js"

/**
 * Marks the sockets made here; see {@link isDatagramSocket}.
 *
 * ```ts
 * Datagram.TypeId in value
 * ```
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: typeof internal.TypeId = internal.TypeId

/** @since 0.1.0 */
export type TypeId = typeof TypeId

/**
 * A UDP endpoint. UDP addresses have the same shape as TCP ones (`host`,
 * `port`), so this is `Address.TcpAddress` under a name that reads right;
 * make one with `Address.tcp(host, port)`, parse one with `Address.parseUdp`
 * (`Address.parse` also reads `unix:` paths, which UDP has not).
 *
 * ```ts
 * const to: Datagram.UdpAddress = Address.unsafeParseUdp("[::1]:5353")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type UdpAddress = Address.TcpAddress

/**
 * One received datagram: its bytes (possibly none: an empty datagram is a
 * real datagram) and the address it came from, ready to reply to.
 *
 * ```ts
 * const reply = (socket: Datagram.DatagramSocket, d: Datagram.Datagram) => socket.send(d.payload, d.from)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Datagram {
  readonly payload: Uint8Array
  readonly from: UdpAddress
}

/**
 * One datagram to send with {@link DatagramSocket.sendAll}.
 *
 * ```ts
 * socket.sendAll([{ payload: a, to: peer }, { payload: b, to: peer }])
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Outgoing {
  readonly payload: Uint8Array
  readonly to: UdpAddress
}

/**
 * What the receive queue does with a datagram that arrives when it is full:
 * `"dropping"` drops the new one (keep the oldest), `"sliding"` drops the
 * oldest queued one (keep the newest). Either way `dropped` counts it.
 *
 * ```ts
 * // Telemetry: the newest readings matter most.
 * Datagram.bind(address, { receiveBufferSize: 256, overflowStrategy: "sliding" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type OverflowStrategy = "dropping" | "sliding"

/**
 * Resolves a host name to one IP address, of the given family when one is
 * given. The default is the operating system's resolver (`dns.lookup`).
 *
 * ```ts
 * const lookup: Datagram.Lookup = (host) =>
 *   host === "stats" ? Effect.succeed("127.0.0.1") : Effect.fail(new NetError.HostNotFound({ code: "ENOTFOUND" }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Lookup = (host: string, family: 4 | 6 | undefined) => Effect.Effect<string, HostNotFound>

/**
 * A multicast group to join: `group` on `interface` (the local address of
 * the interface; default: the one the kernel picks), or, when `source` is
 * given, only the datagrams `source` sends to `group` (source-specific
 * multicast, groups 232.0.0.0/8 and ff3x::/32).
 *
 * ```ts
 * const membership: Datagram.Membership = { group: "239.255.0.1", interface: "127.0.0.1" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Membership {
  readonly group: string
  readonly interface?: string | undefined
  readonly source?: string | undefined
}

/**
 * A bound UDP socket.
 *
 * - `reads` yields the datagrams not read yet; one pull takes everything
 *   queued as one batch (never an empty one). Running it again continues
 *   where the last run stopped (a run that stops in the middle of a batch,
 *   e.g. `Stream.take`, discards the rest of that batch). It fails with the
 *   typed error when the socket reports one (e.g. `ConnectionRefused` in
 *   connected mode) and ends when the socket closes.
 * - `send` resolves once the kernel accepted the datagram; the errors it can
 *   fail with (e.g. `MessageTooLarge`) are reported by the kernel, so they
 *   are known only then.
 * - `connect` switches to connected mode, for good.
 *
 * ```ts
 * const echo = (socket: Datagram.DatagramSocket) =>
 *   Stream.runForEach(socket.reads, (d) => socket.send(d.payload, d.from))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DatagramSocket {
  readonly [TypeId]: TypeId
  /** The address actually bound (port 0 resolved to the real port). */
  readonly address: UdpAddress
  /** Received datagrams, through the bounded receive queue. */
  readonly reads: Stream.Stream<Datagram, ReadError>
  /**
   * Send one datagram. A host name is resolved on every send. While the
   * socket is connected, only the connected peer is a valid destination
   * (anything else is a defect: Node refuses it).
   */
  readonly send: (payload: Uint8Array, to: UdpAddress) => Effect.Effect<void, SendError>
  /** Send several datagrams, each on its own; fails with the first error after all were tried. */
  readonly sendAll: (datagrams: Iterable<Outgoing>) => Effect.Effect<void, SendError>
  /**
   * Connect to one peer: sends go to it without an address, only its
   * datagrams are read (queued datagrams from others are discarded), and
   * ICMP errors about it surface. It is one-way: Linux gives a socket bound to port 0 a new port when it
   * disconnects, which would leave `address` wrong, so there is no
   * disconnect. Connecting twice is a defect.
   */
  readonly connect: (to: UdpAddress) => Effect.Effect<ConnectedDatagramSocket, ConnectError>
  /** Join a multicast group until the scope closes, then leave it. */
  readonly joinMulticast: (membership: Membership) => Effect.Effect<void, ListenError, Scope.Scope>
  /** How many datagrams the full receive queue dropped so far. */
  readonly dropped: Effect.Effect<number>
  /** Close the socket now (idempotent); `reads` ends after the datagrams already queued. */
  readonly close: Effect.Effect<void>
}

/**
 * A UDP socket connected to one peer: `send` needs no address, `reads` holds
 * only that peer's datagrams, and ICMP "port unreachable" for the peer
 * surfaces as `ConnectionRefused` on `reads`.
 *
 * ```ts
 * const socket = yield* Datagram.connect(Address.tcp("127.0.0.1", 5353))
 * yield* socket.send(query)
 * const reply = yield* socket.reads.pipe(Stream.runHead)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectedDatagramSocket {
  readonly [TypeId]: TypeId
  /** Our end, as the kernel chose it for this peer. */
  readonly address: UdpAddress
  /** The peer (its host name resolved). */
  readonly remoteAddress: UdpAddress
  /** The peer's datagrams. */
  readonly reads: Stream.Stream<Datagram, ReadError>
  /** Send one datagram to the peer. */
  readonly send: (payload: Uint8Array) => Effect.Effect<void, SendError>
  /** Send several datagrams to the peer; fails with the first error after all were tried. */
  readonly sendAll: (payloads: Iterable<Uint8Array>) => Effect.Effect<void, SendError>
  /** How many datagrams the full receive queue dropped so far. */
  readonly dropped: Effect.Effect<number>
  /** Close the socket now (idempotent). */
  readonly close: Effect.Effect<void>
}

/**
 * Options of {@link bind}.
 *
 * ```ts
 * const options: Datagram.BindOptions = { reuseAddress: true, multicastTtl: 0, multicastInterface: "127.0.0.1" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface BindOptions {
  /** Capacity of the receive queue, in datagrams (default 1024). */
  readonly receiveBufferSize?: number | undefined
  /** What a full receive queue drops (default `"dropping"`: the newest). */
  readonly overflowStrategy?: OverflowStrategy | undefined
  /** Let several sockets bind the same address and port (SO_REUSEADDR; all of them must set it). */
  readonly reuseAddress?: boolean | undefined
  /** For `::`, receive IPv6 only (default false: IPv4 peers arrive as `::ffff:a.b.c.d`). */
  readonly ipv6Only?: boolean | undefined
  /** Kernel receive buffer in bytes (SO_RCVBUF; Linux doubles it). Distinct from `receiveBufferSize`. */
  readonly kernelReceiveBufferBytes?: number | undefined
  /** Kernel send buffer in bytes (SO_SNDBUF; Linux doubles it). */
  readonly kernelSendBufferBytes?: number | undefined
  /** Allow sending to broadcast addresses (SO_BROADCAST). */
  readonly broadcast?: boolean | undefined
  /** Unicast IP time-to-live / hop limit, 1-255. */
  readonly ttl?: number | undefined
  /** Multicast TTL / hop limit, 0-255 (default 1: this network only; 0: this host only). */
  readonly multicastTtl?: number | undefined
  /** Whether our own multicast datagrams loop back to this host (default true). */
  readonly multicastLoopback?: boolean | undefined
  /** Local address of the interface outgoing multicast uses (IPv6: `::%eth0`). */
  readonly multicastInterface?: string | undefined
  /** Host name resolution (default: the OS resolver). */
  readonly lookup?: Lookup | undefined
}

/**
 * Options of {@link connect}.
 *
 * ```ts
 * Datagram.connect(server, { localAddress: Address.tcp("127.0.0.1", 0) })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectOptions extends BindOptions {
  /** Where to bind (default: the wildcard address of the peer's family, port 0). */
  readonly localAddress?: UdpAddress | undefined
}

/**
 * Bind a UDP socket; IPv4 or IPv6 follows the address's host (a host name
 * is resolved first). Port 0 lets the kernel pick; read it from `address`.
 * Fails with `AddressInUse`, `AddressNotAvailable`, `PermissionDenied` or
 * `HostNotFound`. Closing the scope closes the socket.
 *
 * ```ts
 * const socket = yield* Datagram.bind(Address.tcp("::1", 0), {
 *   receiveBufferSize: 4096,
 *   overflowStrategy: "sliding"
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const bind: (
  address: UdpAddress,
  options?: BindOptions
) => Effect.Effect<DatagramSocket, ListenError, Scope.Scope> = internal.bind

/**
 * Bind a UDP socket (by default on the wildcard address of the peer's
 * family, port 0) and connect it to `remote` for the life of the scope.
 *
 * ```ts
 * const socket = yield* Datagram.connect(Address.tcp("127.0.0.1", 5353))
 * yield* socket.send(new TextEncoder().encode("hello"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect: (
  remote: UdpAddress,
  options?: ConnectOptions
) => Effect.Effect<ConnectedDatagramSocket, ConnectError | ListenError, Scope.Scope> = internal.connect

/**
 * Is this value a {@link DatagramSocket} or a {@link ConnectedDatagramSocket}?
 *
 * ```ts
 * Datagram.isDatagramSocket(value)
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isDatagramSocket = (u: unknown): u is DatagramSocket | ConnectedDatagramSocket =>
  typeof u === "object" && u !== null && TypeId in u
