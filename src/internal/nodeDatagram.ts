/**
 * The node:dgram adapter behind `Datagram`: bind, connect, send, multicast.
 * Node pushes datagrams as events; they land in the bounded receive queue
 * (receiveQueue.ts) that `reads` pulls from, so a slow reader costs dropped
 * datagrams (counted), never memory.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as dgram from "node:dgram"
import { isIP } from "node:net"
import * as Address from "../Address.js"
import type * as Datagram from "../Datagram.js"
import * as NetError from "../NetError.js"
import { metersOf, UdpMeter } from "./metrics.js"
import * as Options from "./options.js"
import { QueueKey, ReceiveQueue } from "./receiveQueue.js"
import { WorkerListenRef } from "./workersListen.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("effect-wire/Datagram")

const DEFAULT_RECEIVE_BUFFER_SIZE = 1024
const MAX_UDP_PAYLOAD_IPV4 = 65_507
const MAX_UDP_PAYLOAD_IPV6 = 65_527

// Building a TcpAddress costs microseconds; most traffic comes from a few
// peers, so their addresses are reused. Cleared when full to stay bounded.
const ADDRESS_CACHE_SIZE = 256

/** Addresses made from what the kernel or the resolver returned are valid: skip the checks. */
const trusted = { disableChecks: true } as const

const familyOf = (ip: string): 4 | 6 => (isIP(ip) === 6 ? 6 : 4)

/**
 * Errors Node throws synchronously carry their explanation in the message
 * (e.g. ERR_SOCKET_BAD_PORT); keep it when no better detail is given.
 */
const thrownDetail = (err: unknown): string | undefined => {
  if (!(err instanceof Error)) return undefined
  const code: unknown = (err as { code?: unknown }).code
  // errno codes (EADDRINUSE, …) are explained by the error kind already.
  return typeof code === "string" && !/^E[A-Z]+$/.test(code) ? err.message : undefined
}

/** @internal */
export const defaultLookup: Datagram.Lookup = (host, family) =>
  Effect.callback<string, NetError.HostNotFound>((resume) => {
    // node:dns and node:dgram are loaded when first used: a TCP-only program never needs them.
    process.getBuiltinModule("node:dns").lookup(host, { family: family ?? 0 }, (err, ip) => {
      if (err === null) return resume(Effect.succeed(ip))
      const e = NetError.fromSystemError(err)
      resume(Effect.fail(
        e._tag === "HostNotFound" ? e : new NetError.HostNotFound({ code: err.code, syscall: err.syscall, cause: err })
      ))
    })
  })

/** Resolve `address.host` to an IP, with the error naming the whole address. */
const resolve = (
  lookup: Datagram.Lookup,
  address: Datagram.UdpAddress,
  family: 4 | 6 | undefined
): Effect.Effect<string, NetError.HostNotFound> =>
  isIP(address.host) !== 0 ? Effect.succeed(address.host) : lookup(address.host, family).pipe(
    Effect.filterOrElse(
      (ip) => isIP(ip) !== 0,
      (ip) =>
        Effect.die(
          new Error(`lookup(${JSON.stringify(address.host)}) returned ${JSON.stringify(ip)}, not an IP address`)
        )
    ),
    Effect.mapError((e) =>
      e.address === undefined
        ? new NetError.HostNotFound({
          address,
          code: e.code,
          syscall: e.syscall,
          cause: e.cause,
          detail: e.detail,
          retryable: e.retryable
        })
        : e
    )
  )

interface Peer {
  readonly ip: string
  readonly port: number
}

/** One node:dgram socket and its state. Both public views are made from it. */
class Handle {
  readonly socket: dgram.Socket
  readonly queue: ReceiveQueue
  readonly family: 4 | 6
  readonly lookup: Datagram.Lookup
  readonly ipv6Only: boolean
  private readonly reads: Stream.Stream<Datagram.Datagram, NetError.ReadError>
  private readonly dropped: Effect.Effect<number>
  /** The socket's own address; set once bound. */
  local: Datagram.UdpAddress
  /** Set while connected: only its datagrams are queued. */
  peer: Peer | undefined = undefined
  private binding: ((err: unknown) => void) | undefined = undefined
  private closing: Promise<void> | undefined = undefined
  private readonly addresses = new Map<string, Datagram.UdpAddress>()
  /** The socket's metrics (internal/metrics.ts), unless they are off. */
  meter: UdpMeter | undefined = undefined

  constructor(
    family: 4 | 6,
    requested: Datagram.UdpAddress,
    options: Datagram.BindOptions,
    capacity: number,
    /** In a worker of `Workers` (reusePort): share the port with the other workers' sockets. */
    readonly reusePort = false
  ) {
    this.family = family
    this.local = requested
    this.lookup = options.lookup ?? defaultLookup
    this.ipv6Only = options.ipv6Only ?? false
    this.queue = new ReceiveQueue(capacity, options.overflowStrategy ?? "dropping")
    const queue = this.queue
    this.reads = Stream.fromPull(Effect.succeed(queue.pull))
    this.dropped = Effect.sync(() => queue.dropped)
    this.socket = process.getBuiltinModule("node:dgram").createSocket({
      type: family === 6 ? "udp6" : "udp4",
      reuseAddr: options.reuseAddress ?? false,
      ipv6Only: this.ipv6Only,
      ...(reusePort ? { reusePort: true } : {})
    })
    this.socket.on("message", (buf, rinfo) => {
      const peer = this.peer
      // connect() does not purge what the kernel queued before it.
      if (peer !== undefined && (rinfo.port !== peer.port || rinfo.address !== peer.ip)) return
      if (this.meter !== undefined) this.meter.received.n++
      this.queue.offer({
        payload: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
        from: this.addressOf(rinfo.address, rinfo.port)
      })
    })
    // After bind, Node emits "error" only for failed receives (sends report
    // through their callbacks): e.g. ECONNREFUSED from an ICMP port
    // unreachable while connected.
    this.socket.on("error", (err) => {
      if (this.binding !== undefined) return this.binding(err)
      const peer = this.peer
      this.queue.fail(NetError.fromSystemError(err, {
        phase: "read",
        address: peer === undefined ? this.local : this.addressOf(peer.ip, peer.port)
      }))
    })
    this.socket.on("close", () => {
      this.meter?.close()
      this.queue.close()
    })
  }

  addressOf(ip: string, port: number): Datagram.UdpAddress {
    const key = `${ip}|${port}`
    let address = this.addresses.get(key)
    if (address === undefined) {
      if (this.addresses.size >= ADDRESS_CACHE_SIZE) this.addresses.clear()
      address = new Address.TcpAddress({ host: ip, port }, trusted)
      this.addresses.set(key, address)
    }
    return address
  }

  bind(ip: string, address: Datagram.UdpAddress): Effect.Effect<void, NetError.ListenError> {
    return Effect.callback<void, NetError.ListenError>((resume) => {
      const failed = (err: unknown) => {
        this.binding = undefined
        resume(Effect.fail(
          NetError.fromSystemError(err, { phase: "listen", address, detail: thrownDetail(err) })
        ))
      }
      this.binding = failed
      try {
        // exclusive: the worker binds itself (SO_REUSEPORT), not through node:cluster's primary.
        this.socket.bind({ port: address.port, address: ip, ...(this.reusePort ? { exclusive: true } : {}) }, () => {
          this.binding = undefined
          const bound = this.socket.address()
          this.local = this.addressOf(bound.address, bound.port)
          resume(Effect.void)
        })
      } catch (err) {
        failed(err)
      }
    })
  }

  /** Socket options that need a bound socket. */
  configure(options: Datagram.BindOptions): Effect.Effect<void, NetError.ListenError> {
    return Effect.suspend(() => {
      const set = <A>(name: string, value: A | undefined, apply: (value: A) => void) => {
        if (value === undefined) return undefined
        try {
          apply(value)
          return undefined
        } catch (err) {
          return NetError.fromSystemError(err, {
            phase: "listen",
            address: this.local,
            detail: `cannot set ${name} to ${JSON.stringify(value)}${
              err instanceof Error && err.message.length > 0 ? ` (${err.message})` : ""
            }`
          })
        }
      }
      const s = this.socket
      const error = set("kernelReceiveBufferBytes", options.kernelReceiveBufferBytes, (n) => s.setRecvBufferSize(n)) ??
        set("kernelSendBufferBytes", options.kernelSendBufferBytes, (n) => s.setSendBufferSize(n)) ??
        set("broadcast", options.broadcast, (b) => s.setBroadcast(b)) ??
        set("ttl", options.ttl, (n) => s.setTTL(n)) ??
        set("multicastTtl", options.multicastTtl, (n) => s.setMulticastTTL(n)) ??
        set("multicastLoopback", options.multicastLoopback, (b) => s.setMulticastLoopback(b)) ??
        set("multicastInterface", options.multicastInterface, (i) => s.setMulticastInterface(i))
      return error === undefined ? Effect.void : Effect.fail(error)
    })
  }

  readonly close: Effect.Effect<void> = Effect.promise(() => {
    this.closing ??= new Promise<void>((resolve) => {
      this.queue.close()
      try {
        this.socket.close(() => resolve())
      } catch {
        // Already closed (ERR_SOCKET_DGRAM_NOT_RUNNING).
        resolve()
      }
    })
    return this.closing
  })

  private sendError(err: unknown, to: Datagram.UdpAddress, payload: Uint8Array): NetError.SendError {
    const code = (err as { code?: unknown } | null)?.code
    const limit = this.family === 6 ? MAX_UDP_PAYLOAD_IPV6 : MAX_UDP_PAYLOAD_IPV4
    const detail = code === "EMSGSIZE"
      ? `${payload.length} bytes is more than one datagram holds (at most ${limit} bytes over IPv${this.family}, less where the path MTU is smaller and fragmentation is off)`
      : code === "ERR_SOCKET_DGRAM_NOT_RUNNING"
      ? "the socket is closed"
      : thrownDetail(err)
    return NetError.fromSystemError(err, { phase: "send", address: to, detail })
  }

  /** Send datagrams already resolved to IPs (`ip` undefined: to the connected peer). */
  sendResolved(
    items: ReadonlyArray<{ readonly payload: Uint8Array; readonly to: Datagram.UdpAddress; readonly ip?: string }>
  ): Effect.Effect<void, NetError.SendError> {
    if (items.length === 0) return Effect.void
    return Effect.callback<void, NetError.SendError>((resume) => {
      let pending = items.length
      let first: NetError.SendError | undefined = undefined
      const done = (error: NetError.SendError | undefined) => {
        if (error !== undefined && first === undefined) first = error
        if (--pending === 0) resume(first === undefined ? Effect.void : Effect.fail(first))
      }
      for (const item of items) {
        const callback = (err: Error | null) => {
          if (err === null && this.meter !== undefined) this.meter.sent.n++
          done(err === null ? undefined : this.sendError(err, item.to, item.payload))
        }
        try {
          if (item.ip === undefined) this.socket.send(item.payload, callback)
          else this.socket.send(item.payload, item.to.port, item.ip, callback)
        } catch (err) {
          done(this.sendError(err, item.to, item.payload))
        }
      }
    })
  }

  /**
   * Resolve a destination for this socket. A dual-stack IPv6 socket reaches
   * IPv4 peers through IPv4-mapped addresses (Node will not map them itself);
   * any other family mismatch fails here with a clear word.
   */
  target(to: Datagram.UdpAddress): Effect.Effect<string, NetError.HostNotFound | NetError.Unknown> {
    const dualStack = this.family === 6 && !this.ipv6Only
    return resolve(this.lookup, to, dualStack ? undefined : this.family).pipe(
      Effect.flatMap((ip) => {
        const family = familyOf(ip)
        if (family === this.family) return Effect.succeed(ip)
        if (dualStack) return Effect.succeed(`::ffff:${ip}`)
        return Effect.fail(
          new NetError.Unknown({
            address: to,
            code: "EINVAL",
            detail: `an IPv${this.family} socket cannot reach the IPv${family} address ${ip}; ` +
              (this.family === 4 ? "bind an IPv6 socket (e.g. [::]:0)" : "bind it without ipv6Only, or bind an IPv4 socket")
          })
        )
      })
    )
  }

  isPeer(to: Datagram.UdpAddress): boolean {
    const peer = this.peer
    return peer !== undefined && to.port === peer.port && (to.host === peer.ip || to.host === this.peerHost)
  }

  /** The host as the user gave it to `connect`, so sends to that same address are recognised. */
  peerHost: string | undefined = undefined

  send(payload: Uint8Array, to: Datagram.UdpAddress): Effect.Effect<void, NetError.SendError> {
    if (this.peer !== undefined) return this.sendToPeer(to, [payload])
    if (isIP(to.host) === this.family) return this.sendResolved([{ payload, to, ip: to.host }])
    return Effect.flatMap(this.target(to), (ip) => this.sendResolved([{ payload, to, ip }]))
  }

  sendAll(datagrams: Iterable<Datagram.Outgoing>): Effect.Effect<void, NetError.SendError> {
    return Effect.suspend(() => {
      const items = Array.from(datagrams)
      if (this.peer !== undefined) {
        const stranger = items.find((d) => !this.isPeer(d.to))
        return stranger === undefined ? this.sendResolved(items) : this.notPeer(stranger.to)
      }
      if (items.every((d) => isIP(d.to.host) === this.family)) {
        return this.sendResolved(items.map((d) => ({ payload: d.payload, to: d.to, ip: d.to.host })))
      }
      return Effect.forEach(items, (d) => Effect.map(this.target(d.to), (ip) => ({ payload: d.payload, to: d.to, ip })))
        .pipe(Effect.flatMap((resolved) => this.sendResolved(resolved)))
    })
  }

  private notPeer(to: Datagram.UdpAddress): Effect.Effect<never> {
    const peer = this.peer
    return Effect.die(
      new Error(
        `this UDP socket is connected to ${Address.format(this.addressOf(peer!.ip, peer!.port))}: ` +
          `it cannot send to ${Address.format(to)}; send from another socket`
      )
    )
  }

  private sendToPeer(to: Datagram.UdpAddress, payloads: ReadonlyArray<Uint8Array>): Effect.Effect<void, NetError.SendError> {
    return this.isPeer(to) ? this.sendResolved(payloads.map((payload) => ({ payload, to }))) : this.notPeer(to)
  }

  /** Connect to `to` for good (see `DatagramSocket.connect`); errors name `reportAs`, the address the user gave. */
  connect(
    to: Datagram.UdpAddress,
    reportAs: Datagram.UdpAddress
  ): Effect.Effect<Datagram.ConnectedDatagramSocket, NetError.ConnectError> {
    return Effect.gen({ self: this }, function*() {
      if (this.peer !== undefined) {
        return yield* Effect.die(
          new Error(`this UDP socket is already connected to ${this.peerHost}; a socket connects once: bind another one`)
        )
      }
      const ip = yield* this.target(to)
      // Uninterruptible: once Node connects, the socket is connected whether or not anyone waits.
      yield* Effect.uninterruptible(
        Effect.callback<void, NetError.ConnectError>((resume) => {
          const failed = (err: unknown) =>
            resume(Effect.fail(
              NetError.fromSystemError(err, { phase: "connect", address: reportAs, detail: thrownDetail(err) })
            ))
          try {
            // Node calls back with the error when connecting fails.
            const connect = this.socket.connect.bind(this.socket) as (
              port: number,
              address: string,
              callback: (err?: Error) => void
            ) => void
            connect(to.port, ip, (err) => {
              if (err !== undefined && err !== null) return failed(err)
              const remote = this.socket.remoteAddress()
              const peer: Peer = { ip: remote.address, port: remote.port }
              // Set synchronously here so that no datagram from another
              // sender slips in before the fiber resumes.
              this.peer = peer
              this.peerHost = reportAs.host
              this.queue.retain((d) => d.from.port === peer.port && d.from.host === peer.ip)
              resume(Effect.void)
            })
          } catch (err) {
            failed(err)
          }
        })
      )
      return this.makeConnected()
    })
  }

  joinMulticast(membership: Datagram.Membership): Effect.Effect<void, NetError.ListenError, Scope.Scope> {
    const { group, interface: iface, source } = membership
    const what = `multicast group ${group}${source === undefined ? "" : ` from source ${source}`}${
      iface === undefined ? "" : ` on interface ${iface}`
    }`
    const apply = (join: boolean) => {
      if (source === undefined) {
        if (join) this.socket.addMembership(group, iface)
        else this.socket.dropMembership(group, iface)
      } else if (join) this.socket.addSourceSpecificMembership(source, group, iface)
      else this.socket.dropSourceSpecificMembership(source, group, iface)
    }
    return Effect.acquireRelease(
      Effect.try({
        try: () => apply(true),
        catch: (err) =>
          NetError.fromSystemError(err, {
            phase: "listen",
            address: this.addressOf(group, this.local.port),
            detail: `cannot join ${what}` +
              ((err as { code?: unknown } | null)?.code === "EADDRINUSE" ? " (already a member)" : "") +
              (thrownDetail(err) === undefined ? "" : `: ${thrownDetail(err)}`)
          })
      }),
      () =>
        Effect.sync(() => {
          try {
            apply(false)
          } catch {
            // Closing the socket already left every group.
          }
        })
    )
  }

  /** The public unconnected view. */
  makeSocket(): Datagram.DatagramSocket {
    const { reads, dropped } = this
    return {
      [TypeId]: TypeId,
      [QueueKey]: this.queue,
      address: this.local,
      reads,
      send: (payload, to) => this.send(payload, to),
      sendAll: (datagrams) => this.sendAll(datagrams),
      connect: (to) => this.connect(to, to),
      joinMulticast: (membership) => this.joinMulticast(membership),
      dropped,
      close: this.close
    } as Datagram.DatagramSocket
  }

  private makeConnected(): Datagram.ConnectedDatagramSocket {
    const peer = this.peer!
    const remoteAddress = this.addressOf(peer.ip, peer.port)
    // Connecting a wildcard-bound socket fixes its source address; report that one.
    const local = this.socket.address()
    const { reads, dropped } = this
    const sendAll = (payloads: Iterable<Uint8Array>) =>
      Effect.suspend(() => this.sendToPeer(remoteAddress, Array.from(payloads)))
    return {
      [TypeId]: TypeId,
      [QueueKey]: this.queue,
      address: this.addressOf(local.address, local.port),
      remoteAddress,
      reads,
      send: (payload) => this.sendToPeer(remoteAddress, [payload]),
      sendAll,
      dropped,
      close: this.close
    } as Datagram.ConnectedDatagramSocket
  }
}

/** The receive queue's capacity; an invalid one is a defect (an option given in code). */
const validCapacity = (options: Datagram.BindOptions): Effect.Effect<number> => {
  const capacity = options.receiveBufferSize ?? DEFAULT_RECEIVE_BUFFER_SIZE
  const reason = Options.positiveInt(capacity)
  return reason === undefined
    ? Effect.succeed(capacity)
    : Effect.die(Options.defect("Datagram", "receiveBufferSize", reason))
}

const open = (
  address: Datagram.UdpAddress,
  options: Datagram.BindOptions
): Effect.Effect<Handle, NetError.ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const capacity = yield* validCapacity(options)
    const ip = yield* resolve(options.lookup ?? defaultLookup, address, undefined)
    const context = yield* Effect.context<never>()
    const meters = metersOf(context)
    // A worker of `Workers` binds a fixed port with SO_REUSEPORT, so that every worker shares it.
    const reusePort = address.port !== 0 && Context.get(context, WorkerListenRef)?.reusePort === true
    const handle = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const handle = new Handle(familyOf(ip), address, options, capacity, reusePort)
        if (meters !== undefined) handle.meter = new UdpMeter(meters, handle.family, handle.queue)
        return handle
      }),
      (handle) => handle.close
    )
    yield* handle.bind(ip, address)
    yield* handle.configure(options)
    return handle
  })

/** @internal */
export const bind = (
  address: Datagram.UdpAddress,
  options: Datagram.BindOptions = {}
): Effect.Effect<Datagram.DatagramSocket, NetError.ListenError, Scope.Scope> =>
  Effect.map(open(address, options), (handle) => handle.makeSocket())

/** @internal */
export const connect = (
  remote: Datagram.UdpAddress,
  options: Datagram.ConnectOptions = {}
): Effect.Effect<Datagram.ConnectedDatagramSocket, NetError.ConnectError | NetError.ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const ip = yield* resolve(options.lookup ?? defaultLookup, remote, undefined)
    const local = options.localAddress ??
      new Address.TcpAddress({ host: familyOf(ip) === 6 ? "::" : "0.0.0.0", port: 0 }, trusted)
    const handle = yield* open(local, options)
    // Connect to the IP just resolved: resolving again could pick another address.
    return yield* handle.connect(new Address.TcpAddress({ host: ip, port: remote.port }, trusted), remote)
  })
