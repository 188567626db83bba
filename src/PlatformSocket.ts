/**
 * Our {@link Socket.Socket} and {@link Socket.Listener} as Effect's own
 * `effect/socket` `Socket` and `SocketServer`, so libraries built on those
 * interfaces (`effect/rpc`'s socket protocol, `Socket.toChannel`, …) run over
 * a connection made with `Socket.connect`, accepted from `Socket.listen`, or
 * made in memory with `MemorySocket`.
 *
 * ```ts
 * import { Effect } from "effect"
 * import * as EffectSocket from "effect/socket/Socket"
 * import * as Address from "effect-wire/Address"
 * import * as PlatformSocket from "effect-wire/PlatformSocket"
 * import * as Socket from "effect-wire/Socket"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const socket = PlatformSocket.fromSocket(yield* Socket.connect(Address.tcp("127.0.0.1", 9000)))
 *   const writer = yield* socket.writer
 *   const { pull } = yield* socket.reader
 *   yield* writer.write("ping")
 *   const reply = yield* pull // fails with a SocketCloseError (code 1000) at EOF
 * }))
 * ```
 *
 * Effect's interface has one error, `SocketError`, with a `reason`; ours are
 * kept as that reason's `cause` (`SocketReadError.cause` is the `ReadError`,
 * e.g. `ConnectionReset`).
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { constVoid } from "effect/Function"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as NetAddress from "effect/net/NetAddress"
import * as Pull from "effect/Pull"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as EffectSocket from "effect/socket/Socket"
import * as SocketServer from "effect/socket/SocketServer"
import * as Stream from "effect/Stream"
import * as Os from "node:os"
import * as Address from "./Address.js"
import { encodeUtf8 } from "./internal/bytes.js"
import { ConnectionSlots } from "./internal/connectionSlots.js"
import * as FiberGroup from "./internal/fiberGroup.js"
import { serverCapabilityOf } from "./internal/listenerCapability.js"
import { CutReadWait, cutsReadWaits, readsPull } from "./internal/socketContract.js"
import type { ConnectError, ListenError, ReadError, WriteError } from "./NetError.js"
import * as Socket from "./Socket.js"


/**
 * How a reader's pull says the connection ended: 1000 at the peer's FIN, 1006
 * once the reader's scope closed. Every connection ends with one, so it is
 * made without a stack trace (which said only where our pull ran, and cost
 * three times the rest of the error).
 */
const closeError = (code: number): EffectSocket.SocketError => {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new EffectSocket.SocketError({ reason: new EffectSocket.SocketCloseError({ code }) })
  } finally {
    Error.stackTraceLimit = limit
  }
}

const readError = (cause: ReadError): EffectSocket.SocketError =>
  new EffectSocket.SocketError({ reason: new EffectSocket.SocketReadError({ cause }) })

const writeError = (cause: WriteError): EffectSocket.SocketError =>
  new EffectSocket.SocketError({ reason: new EffectSocket.SocketWriteError({ cause }) })

const toBytes = (chunk: Uint8Array | string): Uint8Array => typeof chunk === "string" ? encodeUtf8(chunk) : chunk

/**
 * View a connected {@link Socket.Socket} as an `effect/socket` `Socket`.
 *
 * - `reader`: `pull` yields what arrives, in the batches `reads` gives, and
 *   fails on every termination, as the interface asks: the peer's EOF with a
 *   `SocketCloseError` of code 1000, a read error with a `SocketReadError`
 *   whose `cause` is our typed `ReadError`. Closing the reader's scope fails a
 *   suspended `pull`, and every later one, with code 1006, but leaves the
 *   socket open. It is one connection: a second `reader` fails with the error
 *   that ended the first (code 1000 while the first is still open). There is
 *   no TLS `upgrade`.
 * - `writer`: strings are sent as UTF-8, `writeAll` is one batch
 *   (`socket.writeAll`), errors are `SocketWriteError`s with our `WriteError`
 *   as `cause`. A `CloseEvent` with code 1000 closes the socket gracefully;
 *   any other code resets it (RST). Releasing the writer's scope half-closes
 *   (`socket.end`).
 *
 * The socket stays ours: whoever made it closes it.
 *
 * ```ts
 * // An echo written against effect/socket, served by effect-wire.
 * const echo = (socket: Socket.Socket) =>
 *   Effect.scoped(Effect.gen(function*() {
 *     const effectSocket = PlatformSocket.fromSocket(socket)
 *     const writer = yield* effectSocket.writer
 *     const { pull } = yield* effectSocket.reader
 *     while (true) yield* writer.writeAll(yield* pull)
 *   })).pipe(Effect.catchReason("SocketError", "SocketCloseError", () => Effect.void))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSocket = (socket: Socket.Socket): EffectSocket.Socket => {
  // How the connection ended, for a second reader (one connection, no reconnecting); "closed"
  // until a reader saw otherwise: a SocketCloseError 1000, made when a second reader asks (an
  // error costs a stack trace and a Schema check, per connection).
  let terminal: EffectSocket.SocketError | "closed" | undefined

  const reader: EffectSocket.Socket["reader"] = Effect.gen(function*() {
    if (terminal !== undefined) return yield* Effect.fail(terminal === "closed" ? closeError(1000) : terminal)
    terminal = "closed"
    let ended: EffectSocket.SocketError | undefined
    const end = (error: EffectSocket.SocketError) =>
      Effect.sync(() => {
        ended ??= error
        terminal = ended
      })
    // A socket that can cut its read wait gives the pull its `reads` is made of (pulled one at a
    // time below); any other is read through `Stream.toPull`.
    const reads = yield* readsPull(socket)
    // Once the scope closed, what a pull fails with (SocketCloseError 1006); not an ending.
    let closed = false
    let cut: EffectSocket.SocketError | undefined
    const afterClose = Effect.suspend(() => Effect.fail(cut ??= closeError(1006)))
    const pullOnce: Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, EffectSocket.SocketError> = reads.pipe(
      Pull.catchDone(() => Effect.fail(closeError(1000))),
      Effect.mapError((error) => EffectSocket.isSocketError(error) ? error : readError(error)),
      Effect.tapError((error) => error === cut ? Effect.void : end(error))
    )
    // The finalizers are added after toPull (where there is one), so they run first: a pull
    // suspended in another fiber fails instead of hanging.
    let start: () => Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, EffectSocket.SocketError>
    if (cutsReadWaits(socket)) {
      // The socket fails that pull itself (a Node socket can): no race, no fiber, per pull. Pulls
      // from several fibers take turns, as `Stream.toPull`'s would: a pull made while another
      // waits waits for it to end, then pulls again (or sees the scope closed).
      let pulling = false
      let turns: Array<() => void> | undefined
      const pulled = Effect.sync(() => {
        pulling = false
        if (cut !== undefined) socket[CutReadWait](undefined)
        const waiting = turns
        if (waiting !== undefined) {
          turns = undefined
          for (const wake of waiting) wake()
        }
      })
      const turn = Effect.callback<void>((resume) => {
        const wake = () => resume(Effect.void)
        ;(turns ??= []).push(wake)
        return Effect.sync(() => {
          const i = turns?.indexOf(wake) ?? -1
          if (i >= 0) turns!.splice(i, 1)
        })
      })
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          closed = true
          if (pulling) socket[CutReadWait](cut = closeError(1006))
        })
      )
      const guarded = Effect.ensuring(pullOnce, pulled)
      start = () => {
        if (pulling) return Effect.andThen(turn, pull)
        pulling = true
        return guarded
      }
    } else {
      // Any other socket: each pull races the scope's closing.
      const closing = yield* Deferred.make<never, EffectSocket.SocketError>()
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          closed = true
          return Deferred.fail(closing, cut ??= closeError(1006))
        })
      )
      const raced = Effect.raceFirst(pullOnce, Deferred.await(closing))
      start = () => raced
    }
    const pull: Effect.Effect<NonEmptyReadonlyArray<Uint8Array>, EffectSocket.SocketError> = Effect.suspend(() =>
      ended !== undefined ? Effect.fail(ended) : closed ? afterClose : start()
    )
    return { pull, upgrade: EffectSocket.SocketUpgradeError.unsupported }
  })

  const write = (chunk: Uint8Array | string | EffectSocket.CloseEvent): Effect.Effect<void, EffectSocket.SocketError> => {
    if (EffectSocket.isCloseEvent(chunk)) return chunk.code === 1000 ? socket.close : socket.reset
    return Effect.mapError(socket.write(toBytes(chunk)), writeError)
  }

  const writeAll = (
    chunks: NonEmptyReadonlyArray<Uint8Array | string>
  ): Effect.Effect<void, EffectSocket.SocketError> => {
    const batch = chunks.some((chunk) => typeof chunk === "string")
      ? chunks.map(toBytes)
      : chunks as ReadonlyArray<Uint8Array>
    return Effect.mapError(socket.writeAll(batch), writeError)
  }

  return EffectSocket.make({
    reader,
    writer: Effect.acquireRelease(Effect.succeed({ write, writeAll }), () => Effect.ignore(socket.end))
  })
}

/**
 * Connect with {@link Socket.connect} and view the connection as an
 * `effect/socket` `Socket` ({@link fromSocket}). The connection closes with
 * the scope.
 *
 * ```ts
 * const socket = yield* PlatformSocket.connect(Address.tcp("127.0.0.1", 9000))
 * const { pull } = yield* socket.reader
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  address: Address.Address,
  options?: Socket.ConnectOptions | undefined
): Effect.Effect<EffectSocket.Socket, ConnectError, Scope.Scope> =>
  Effect.map(Socket.connect(address, options), fromSocket)

/**
 * An `effect/socket` `Socket` that connects with {@link Socket.connect} each
 * time its `reader` is acquired: what Effect's own client sockets
 * (`NodeSocket.makeNet`) do, and what `effect/rpc`'s
 * `RpcClient.makeProtocolSocket` expects, since it acquires the reader again
 * after every failure. Each acquisition is one connection, read as
 * {@link fromSocket} reads it; closing the reader's scope closes it.
 *
 * - A failed connect fails the acquisition with a `SocketOpenError` whose
 *   `cause` is our typed `ConnectError` (`kind: "Timeout"` for
 *   `ConnectTimeout`, `"Unknown"` otherwise), e.g. `ConnectionRefused` or a
 *   `Tls.HandshakeError`.
 * - `write`/`writeAll` go to the open connection; while none is open they
 *   wait for the next one (a caller bounds that wait, as RpcClient does by
 *   failing its requests when a connect fails). Errors are as in
 *   {@link fromSocket}. Releasing the writer half-closes the open connection.
 *
 * ```ts
 * const ClientLive = RpcClient.layerProtocolSocket().pipe(
 *   Layer.provide(RpcSerialization.layerNdjson),
 *   Layer.provide(Layer.sync(EffectSocket.Socket, () =>
 *     PlatformSocket.reconnecting(Address.tcp("127.0.0.1", 9000), { timeout: "1 second" })
 *   ))
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const reconnecting = (
  address: Address.Address,
  options?: Socket.ConnectOptions | undefined
): EffectSocket.Socket => {
  let current: Socket.Socket | undefined
  const connected = Latch.makeUnsafe(false)

  const reader: EffectSocket.Socket["reader"] = Effect.gen(function*() {
    const socket = yield* Socket.connect(address, options).pipe(
      Effect.mapError((cause) =>
        new EffectSocket.SocketError({
          reason: new EffectSocket.SocketOpenError({
            kind: cause._tag === "ConnectTimeout" ? "Timeout" : "Unknown",
            cause
          })
        })
      )
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (current === socket) {
          current = undefined
          connected.closeUnsafe()
        }
      })
    )
    current = socket
    connected.openUnsafe()
    return yield* fromSocket(socket).reader
  })

  const write = (chunk: Uint8Array | string | EffectSocket.CloseEvent): Effect.Effect<void, EffectSocket.SocketError> =>
    Effect.suspend(() => {
      const socket = current
      if (socket === undefined) return connected.whenOpen(write(chunk))
      if (EffectSocket.isCloseEvent(chunk)) return chunk.code === 1000 ? socket.close : socket.reset
      return Effect.mapError(socket.write(toBytes(chunk)), writeError)
    })

  const writeAll = (
    chunks: NonEmptyReadonlyArray<Uint8Array | string>
  ): Effect.Effect<void, EffectSocket.SocketError> =>
    Effect.suspend(() => {
      const socket = current
      if (socket === undefined) return connected.whenOpen(writeAll(chunks))
      return Effect.mapError(socket.writeAll(chunks.map(toBytes)), writeError)
    })

  return EffectSocket.make({
    reader,
    writer: Effect.acquireRelease(
      Effect.succeed({ write, writeAll }),
      () => current === undefined ? Effect.void : Effect.ignore(current.end)
    )
  })
}

let scopeIds: Map<string, number> | undefined

/** Our address as a NetAddress; a listener's host is a numeric IP (a named IPv6 zone is looked up). */
const toSocketAddress = (address: Address.Address): NetAddress.SocketAddress => {
  if (address._tag === "UnixAddress") return NetAddress.unixPathAddress(address.path)
  const zone = address.host.indexOf("%")
  if (zone !== -1 && !/^\d+$/.test(address.host.slice(zone + 1))) {
    scopeIds ??= NetAddress.scopeIdsFromInterfaces(Object.entries(Os.networkInterfaces()))
  }
  const inet = NetAddress.inetAddressFromHostString(address.host, address.port, scopeIds)
  if (Result.isFailure(inet)) {
    throw new RangeError(`PlatformSocket: a SocketServer needs a numeric IP address, got ${Address.format(address)}`)
  }
  return inet.success
}

/**
 * View a {@link Socket.Listener} as an `effect/socket` `SocketServer`, e.g.
 * for `effect/rpc`'s `RpcServer.layerProtocolSocketServer`.
 *
 * - `address` is the listener's as a `NetAddress` (`InetAddressV4`/`V6` or
 *   `UnixPathAddress`). The listener's host must be a numeric IP (Node's
 *   listeners always report one); otherwise this is a defect.
 * - `run(handler)` serves every accepted connection in its own fiber, with
 *   the connection as an `effect/socket` `Socket` ({@link fromSocket}) and a
 *   scope of its own; the connection closes when the handler ends. A failing
 *   handler is logged (a warning naming the peer) without stopping the
 *   others. It runs until interrupted, also after the listener stopped
 *   accepting; interrupting it interrupts the handlers. On a Node listener
 *   the latest `run` takes the new connections until it ends, then the
 *   latest earlier one still running takes them again, as on Effect's own
 *   servers.
 *
 * ```ts
 * const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
 * const server = PlatformSocket.fromListener(listener)
 * yield* server.run((socket) =>
 *   Effect.gen(function*() {
 *     const writer = yield* socket.writer
 *     const { pull } = yield* socket.reader
 *     while (true) yield* writer.writeAll(yield* pull)
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromListener = (listener: Socket.Listener): SocketServer.SocketServer["Service"] => ({
  address: toSocketAddress(listener.address),
  run: <R, E, _>(handler: (socket: EffectSocket.Socket) => Effect.Effect<_, E, R>) =>
    Effect.scoped(Effect.gen(function*() {
      const serve = (socket: Socket.Socket) =>
        Effect.scoped(handler(fromSocket(socket))).pipe(
          Effect.catchCause((cause) =>
            Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logWarning(
              `connection from ${Address.format(socket.remoteAddress)} failed`,
              cause
            )
          ),
          Effect.ensuring(socket.close)
        )
      // Interrupted, with every connection's fiber, when `run` ends.
      const connections = yield* FiberGroup.make<R>()
      const capability = serverCapabilityOf(listener)
      if (capability !== undefined) {
        // A Node listener hands each connection over in its own callback: a
        // fiber per connection, and no accept stream step, as on `Server`.
        const slots = new ConnectionSlots(Infinity, "queue", "", constVoid, yield* Clock.clockWith(Effect.succeed))
        const taking = capability.acceptInCallbacks((socket) => void connections.run(serve(socket)), slots)
        yield* Effect.addFinalizer(() => Effect.sync(taking.stop))
      } else {
        yield* Stream.runForEach(listener.accept, (socket) => Effect.sync(() => void connections.run(serve(socket))))
      }
      // The listener stopped accepting: serve what is open until interrupted, like Effect's servers.
      return yield* Effect.never
    }))
})

/**
 * Listen with {@link Socket.listen} and provide the listener as
 * `effect/socket`'s `SocketServer` ({@link fromListener}), e.g. for
 * `effect/rpc`'s `RpcServer.layerProtocolSocketServer`. The listener closes
 * when the layer is released.
 *
 * ```ts
 * const RpcLive = RpcServer.layer(Api).pipe(
 *   Layer.provide(RpcServer.layerProtocolSocketServer),
 *   Layer.provide(RpcSerialization.layerNdjson),
 *   Layer.provide(PlatformSocket.layerServer(Address.tcp("127.0.0.1", 9000)))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServer = (
  address: Address.Address,
  options?: Socket.ListenOptions | undefined
): Layer.Layer<SocketServer.SocketServer, ListenError> =>
  Layer.effect(SocketServer.SocketServer, Effect.map(Socket.listen(address, options), fromListener))

/**
 * Connect with {@link Socket.connect} when the layer is built and provide the
 * connection as `effect/socket`'s `Socket` service ({@link fromSocket}), e.g.
 * for `effect/rpc`'s `RpcClient.layerProtocolSocket()`. The connection
 * closes when the layer is released. It is one connection: no reconnecting
 * (a second `reader` fails with how the first one ended); for a client that
 * comes back after its server restarts, provide {@link reconnecting} instead.
 *
 * ```ts
 * const ClientLive = RpcClient.layerProtocolSocket().pipe(
 *   Layer.provide(RpcSerialization.layerNdjson),
 *   Layer.provide(PlatformSocket.layer(Address.tcp("127.0.0.1", 9000)))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  address: Address.Address,
  options?: Socket.ConnectOptions | undefined
): Layer.Layer<EffectSocket.Socket, ConnectError> => Layer.effect(EffectSocket.Socket, connect(address, options))
