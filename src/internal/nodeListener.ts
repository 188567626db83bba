/**
 * `Socket.listen` on node:net: the listening handle, a bounded queue between
 * Node's 'connection' events and the consumer of `accept`, the accepted
 * sockets still open, and what it offers a `Server` (nodeServe.ts).
 *
 * @internal
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import * as Address from "../Address.js"
import * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"
import type { ConnectionSlots } from "./connectionSlots.js"
import { ServerCapability } from "./listenerCapability.js"
import { acceptInCallbacks, servePumps } from "./nodeServe.js"
import { metersOf } from "./metrics.js"
import { ListenerMeter } from "./metricsListener.js"
import { ConnectionTracer, tracerOf } from "./tracing.js"
import type * as ProxyProtocol from "../ProxyProtocol.js"
import { attachHeader, clientOf, type ProxyConfig, proxyConfig, ProxyReader } from "./proxyAccept.js"
import { NodeSocket, type Owner, type Raw } from "./nodeSocket.js"
import { SwapSet } from "./swapSet.js"
import { acceptOptions, type ListenConfig, listenConfig, withOptions } from "./nodeSocketOptions.js"
import { createServer, isTlsServer, type ServerConfig, serverConfig, type TlsServer } from "./nodeTls.js"
import {
  discardPrivateBind,
  listenError,
  makePrivateBind,
  prepareUnixPath,
  type PrivateBind,
  publishSocketFile,
  removeOwnSocketFile
} from "./unixSocketFile.js"
import { type WorkerListen, WorkerListenRef } from "./workersListen.js"

type Resume<A, E> = (effect: Effect.Effect<A, E>) => void

/** A server taking a listener's connections in its callbacks (see `acceptInCallbacks`). */
export interface Acceptor {
  /** Serves or refuses a new connection; false leaves it in the queue, where `take` finds it later. */
  readonly take: (socket: NodeSocket) => boolean
  /** Takes what waits in the queue, as far as its limit allows (it is the last one again). */
  readonly takeQueued: () => void
}

/**
 * The accept side: a bounded queue between Node's 'connection' events and the
 * consumer of `accept`, and the set of accepted sockets still open.
 */
export class NodeListener implements Socket.Listener, Owner {
  address: Address.Address
  readonly open = new SwapSet<NodeSocket>()
  /** Accepted sockets not yet pulled; `head` avoids O(n) shifts. */
  pending: Array<NodeSocket> = []
  head = 0
  refusedCount = 0
  stopped = false
  waiters: Array<Resume<NonEmptyReadonlyArray<Socket.Socket>, Cause.Done>> = []
  unixInode: number | undefined = undefined
  /**
   * Who takes connections in Node's 'connection' callback instead of
   * `accept` (servers whose connections need no accept stream): those still
   * running, in the order they started; the last one takes them.
   */
  readonly acceptors: Array<Acceptor> = []
  /** The server told of refusals, once one asked (`reportRefusals`). */
  slots: ConnectionSlots | undefined = undefined
  /** A TLS listener's node:tls side: its handshakes in progress and failures. */
  tls: TlsServer | undefined = undefined
  /** The listener's metrics and spans (internal/metricsListener.ts), unless both are off. */
  meter: ListenerMeter | undefined = undefined
  /** With `proxyProtocol`: reads each connection's header before it is taken (proxyAccept.ts). */
  proxy: ProxyReader | undefined = undefined

  /** Refused PROXY headers by tag (`ProxyProtocol.headerFailures`). */
  get proxyFailures(): Map<string, number> | undefined {
    return this.proxy?.failures
  }

  /** On the prototype, so that a wrapper made by spreading the listener does not inherit it. */
  get [ServerCapability](): ServerCapability {
    return {
      reportRefusals: (slots) => {
        this.slots = slots
      },
      servePumps: (make, slots, runtime) => servePumps(this, make, slots, runtime),
      acceptInCallbacks: (serve, slots) => acceptInCallbacks(this, slots, serve),
      tlsHandshakeFailures: () => this.tls?.failures,
      proxyHeaderFailures: () => this.proxy?.failures
    }
  }

  constructor(
    readonly server: Net.Server,
    readonly config: ListenConfig,
    readonly requested: Address.Address
  ) {
    this.address = requested
    // A TLS listener's connections arrive once their handshake succeeded.
    server.on(isTlsServer(server) ? "secureConnection" : "connection", (raw: Raw) => this.onConnection(raw))
  }

  onConnection(raw: Raw, header?: ProxyProtocol.Header): void {
    // Refused by an earlier listener of the same event (a TLS client certificate that does not verify).
    if (raw.destroyed) return
    // Connections still sending their PROXY header wait in the same bounded queue.
    if (this.stopped || this.waiting + (this.proxy?.reading.size ?? 0) >= this.config.acceptQueueSize) {
      this.refusedCount++
      raw.destroy()
      if (!this.stopped) this.slots?.acceptQueueFull(this.config.acceptQueueSize)
      return
    }
    if (this.proxy !== undefined && header === undefined) {
      return this.proxy.read(raw, (raw, header) => this.onConnection(raw, header))
    }
    const socket = new NodeSocket(raw, this.config.socket, this.requested._tag === "TcpAddress", this.address, this)
    socket.established(this.address)
    if (header !== undefined) {
      attachHeader(socket, header)
      socket.remoteAddress = clientOf(header) ?? socket.remoteAddress
    }
    this.open.add(socket)
    this.meter?.accepted(socket)
    const acceptor = this.acceptors[this.acceptors.length - 1]
    if (acceptor !== undefined && this.head >= this.pending.length && acceptor.take(socket)) return
    if (this.meter !== undefined) socket.queuedAt = socket.openedAt
    this.pending.push(socket)
    const waiter = this.waiters.shift()
    if (waiter !== undefined) waiter(Effect.suspend(() => this.pollAccept()))
  }

  release(socket: NodeSocket): void {
    this.open.delete(socket)
    this.meter?.released(socket)
  }

  /** Accepted sockets waiting to be taken. */
  get waiting(): number {
    return this.pending.length - this.head
  }

  take(): NodeSocket | undefined {
    if (this.head >= this.pending.length) return undefined
    const socket = this.pending[this.head]!
    if (socket.queuedAt > 0) this.meter?.dequeued(socket)
    this.pending[this.head++] = undefined as unknown as NodeSocket
    if (this.head === this.pending.length) {
      this.pending = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head)
      this.head = 0
    }
    return socket
  }

  /** The next socket, one per pull; `Cause.Done` once stopped and drained (the end of `accept`). */
  pollAccept(): Pull.Pull<NonEmptyReadonlyArray<Socket.Socket>> {
    const socket = this.take()
    if (socket !== undefined) return Effect.succeed([socket])
    if (this.stopped) return Cause.done()
    return Effect.callback((resume) => {
      this.waiters.push(resume)
      return Effect.sync(() => {
        const i = this.waiters.indexOf(resume)
        if (i >= 0) this.waiters.splice(i, 1)
      })
    })
  }

  get accept(): Stream.Stream<Socket.Socket> {
    return Stream.fromPull(Effect.succeed(Effect.suspend(() => this.pollAccept())))
  }

  get connections(): Effect.Effect<number> {
    return Effect.sync(() => this.open.size)
  }

  get refused(): Effect.Effect<number> {
    return Effect.sync(() => this.refusedCount)
  }

  get stopAccepting(): Effect.Effect<void> {
    return Effect.sync(() => this.unsafeStop())
  }

  unsafeStop(): void {
    if (this.stopped) return
    this.stopped = true
    this.server.close()
    if (this.head >= this.pending.length) {
      const waiters = this.waiters
      this.waiters = []
      for (const resume of waiters) resume(Cause.done())
    }
  }

  /** Scope end: stop listening, destroy every accepted socket, remove our Unix socket file. */
  shutdown(): void {
    this.meter?.stop()
    this.unsafeStop()
    this.tls?.close()
    this.proxy?.close()
    for (const socket of this.open) socket.unsafeDestroy()
    this.open.clear()
    this.pending = []
    this.head = 0
    const waiters = this.waiters
    this.waiters = []
    for (const resume of waiters) resume(Cause.done())
    if (this.address._tag === "UnixAddress" && this.unixInode !== undefined) {
      removeOwnSocketFile(this.address.path, this.unixInode)
    }
  }
}

const startListening = (
  address: Address.Address,
  options: Socket.ListenOptions,
  config: ListenConfig,
  tls: { readonly config: ServerConfig; readonly fork: (effect: Effect.Effect<void>) => void } | undefined,
  proxy: { readonly config: ProxyConfig; readonly fork: (effect: Effect.Effect<void>) => void } | undefined,
  worker: WorkerListen | undefined
): Effect.Effect<NodeListener, NetError.ListenError> =>
  Effect.callback((resume) => {
    // A Unix socket file is bound in a private directory and given its mode
    // there, so that it never exists at its path with the umask's mode.
    let bind: PrivateBind | undefined
    if (address._tag === "UnixAddress") {
      try {
        bind = makePrivateBind(address)
      } catch (e) {
        return resume(Effect.fail(listenError(e, address)))
      }
    }
    // TCP_NODELAY and keep-alive are set by node:net on each accepted handle (see NodeSocket.established).
    const accepted = acceptOptions(config.socket)
    const tlsServer: TlsServer | undefined = tls === undefined ? undefined : createServer(tls.config, accepted, {
      slots: () => listener.slots,
      fork: tls.fork,
      name: () => Address.format(listener.address),
      handshake: (durationMs, errorTag) => listener.meter?.handshake(durationMs, errorTag)
    })
    // With a PROXY header, a plain server listens: the header comes before the TLS handshake.
    const server: Net.Server = (proxy === undefined ? tlsServer?.server : undefined) ??
      Net.createServer({ allowHalfOpen: true, pauseOnConnect: true, ...accepted })
    const listener: NodeListener = new NodeListener(server, config, address)
    listener.tls = tlsServer
    if (proxy !== undefined) {
      listener.proxy = new ProxyReader(proxy.config, {
        slots: () => listener.slots,
        fork: proxy.fork,
        name: () => Address.format(listener.address)
      }, tlsServer?.server, address._tag === "TcpAddress")
      tlsServer?.server.on("secureConnection", (socket: Raw) => {
        const header = listener.proxy!.tlsHeader(socket as never)
        if (header !== undefined) listener.onConnection(socket, header)
        else socket.destroy()
      })
    }
    const onFailure = (err: Error) => {
      server.off("listening", onListening)
      if (bind !== undefined) discardPrivateBind(bind)
      resume(Effect.fail(
        address._tag === "UnixAddress"
          ? listenError(err, address)
          : NetError.fromSystemError(err, { phase: "listen", address })
      ))
    }
    const onListening = () => {
      server.off("error", onFailure)
      // Accept errors (EMFILE, ECONNABORTED) are transient and Node keeps
      // listening; without a handler they would crash the process.
      server.on("error", () => {})
      const bound = server.address()
      if (address._tag === "TcpAddress") {
        if (bound !== null && typeof bound === "object") {
          listener.address = new Address.TcpAddress({ host: bound.address, port: bound.port }, { disableChecks: true })
          worker?.listening(listener.address)
        }
      } else if (bind !== undefined) {
        const published = publishSocketFile(bind, address, config.unixMode)
        if ("error" in published) {
          server.close()
          return resume(Effect.fail(published.error))
        }
        listener.unixInode = published.inode
      }
      resume(Effect.succeed(listener))
    }
    server.once("error", onFailure)
    server.once("listening", onListening)
    if (address._tag === "TcpAddress") {
      server.listen({
        host: address.host,
        // In a worker of `Workers`: the group's port, shared with SO_REUSEPORT (internal/workersListen.ts).
        port: worker === undefined ? address.port : worker.portFor(address.port),
        backlog: config.backlog,
        ipv6Only: options.ipv6Only ?? false,
        ...(worker?.reusePort === true ? { reusePort: true, exclusive: true } : {})
      })
    } else {
      server.listen({ path: bind!.path, backlog: config.backlog })
    }
    return Effect.sync(() => {
      // Interrupted while starting: nothing may be left behind.
      server.close()
      tlsServer?.close()
      if (bind !== undefined) discardPrivateBind(bind)
    })
  })

/** Workers cannot share a Unix socket file: each binds a private path and links it into place. */
const unixInWorkers = (address: Address.UnixAddress) =>
  new Cause.IllegalArgumentError(
    `Workers: worker processes cannot share the Unix socket ${address.path} (each would replace the ` +
      "others' file); listen on a TCP address to run several workers, or run one process per socket file"
  )

/** @internal */
export const listen = (
  address: Address.Address,
  options: Socket.ListenOptions = {}
): Effect.Effect<Socket.Listener, NetError.ListenError, Scope.Scope> =>
  withOptions(() => {
    const config = listenConfig(options)
    const tlsConfig = options.tls === undefined ? undefined : serverConfig("Socket", options.tls)
    const proxyConfig_ = options.proxyProtocol === undefined ? undefined : proxyConfig("Socket", options.proxyProtocol)
    // A TLS listener logs failed handshakes from Node's callbacks, with the caller's logger (PROXY headers too).
    const start = Effect.flatMap(Effect.context<never>(), (context) => {
      const runFork = Effect.runForkWith(context)
      const fork = (e: Effect.Effect<void>) => void runFork(e)
      const tls = tlsConfig === undefined ? undefined : { config: tlsConfig, fork }
      const proxy = proxyConfig_ === undefined ? undefined : { config: proxyConfig_, fork }
      const meters = metersOf(context)
      const tracer = tracerOf(context)
      const started = startListening(address, options, config, tls, proxy, Context.get(context, WorkerListenRef))
      return meters === undefined && tracer === undefined ? started : Effect.map(started, (listener) => {
        listener.meter = new ListenerMeter(
          listener,
          meters?.server(listener.address),
          tracer === undefined ? undefined : new ConnectionTracer(tracer, context, listener.address)
        )
        return listener
      })
    })
    const acquire = address._tag === "UnixAddress"
      ? Effect.andThen(
        Effect.flatMap(Effect.context<never>(), (context) =>
          Context.get(context, WorkerListenRef)?.shared === true ? Effect.die(unixInWorkers(address)) : Effect.void),
        Effect.andThen(prepareUnixPath(address), start)
      )
      : start
    return Effect.acquireRelease(acquire, (listener) => Effect.sync(() => listener.shutdown())) as Effect.Effect<
      Socket.Listener,
      NetError.ListenError,
      Scope.Scope
    >
  })
