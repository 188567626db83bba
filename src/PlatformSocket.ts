/**
 * Our {@link Socket.Socket} as an `@effect/platform` `Socket`, so libraries
 * built on the platform interface (`@effect/rpc`'s socket protocol,
 * `Socket.toChannel`, …) run over a connection made with `Socket.connect` or
 * accepted from `Socket.listen`.
 *
 * ```ts
 * import * as PlatformSocket from "effect-wire/PlatformSocket"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const socket = yield* Socket.connect(Address.tcp("127.0.0.1", 9000))
 *   const platform = PlatformSocket.fromSocket(socket)
 *   const write = yield* platform.writer
 *   yield* write("ping")
 *   yield* platform.run((bytes) => Console.log(bytes.length))
 * }))
 * ```
 *
 * @since 0.1.0
 */
import * as Platform from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "./Address.js"
import type { ConnectError, ListenError } from "./NetError.js"
import * as Socket from "./Socket.js"

const encoder = new TextEncoder()

/**
 * View a connected {@link Socket.Socket} as an `@effect/platform` `Socket`.
 *
 * - `run`/`runRaw` read until the peer's EOF (then succeed) or a read error
 *   (`SocketGenericError` with reason `"Read"`, the typed `NetError` as its
 *   `cause`). As on the platform's Node socket, an Effect returned by the
 *   handler runs in its own fiber; at EOF `run` first waits for the handler
 *   effects already started, so no reply is cut off. The wrapper holds one
 *   connection: a `run` after EOF returns at once.
 * - `writer` gives a write function (strings are sent as UTF-8); releasing
 *   its scope half-closes the socket. A `CloseEvent` with code 1000 closes the
 *   socket gracefully; any other code resets it (RST).
 *
 * ```ts
 * const echo = (socket: Socket.Socket) =>
 *   Effect.scoped(Effect.gen(function*() {
 *     const platform = PlatformSocket.fromSocket(socket)
 *     const write = yield* platform.writer
 *     yield* platform.run(write)
 *   }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSocket = (socket: Socket.Socket): Platform.Socket => {
  const runRaw = <_, E = never, R = never>(
    handler: (_: string | Uint8Array) => Effect.Effect<_, E, R> | void,
    options?: { readonly onOpen?: Effect.Effect<void> | undefined } | undefined
  ): Effect.Effect<void, Platform.SocketError | E, R> =>
    Effect.scoped(
      Effect.gen(function*() {
        const fibers = yield* FiberSet.make<unknown, E>()
        const runFork = yield* FiberSet.runtime(fibers)<R>()
        if (options?.onOpen !== undefined) yield* options.onOpen
        const readLoop = socket.reads.pipe(
          Stream.runForEachChunk((chunk) =>
            Effect.sync(() => {
              for (const bytes of chunk) {
                const result = handler(bytes)
                if (Effect.isEffect(result)) runFork(result)
              }
            })
          ),
          Effect.mapError((cause) => new Platform.SocketGenericError({ reason: "Read", cause })),
          Effect.zipRight(FiberSet.awaitEmpty(fibers))
        )
        // A failing handler effect ends the run with its error, as on the platform's sockets.
        return yield* Effect.raceFirst(readLoop, FiberSet.join(fibers))
      })
    ).pipe(Effect.interruptible)

  const write = (chunk: Uint8Array | string | Platform.CloseEvent): Effect.Effect<void, Platform.SocketError> => {
    if (Platform.isCloseEvent(chunk)) return chunk.code === 1000 ? socket.close : socket.reset
    return Effect.mapError(
      socket.write(typeof chunk === "string" ? encoder.encode(chunk) : chunk),
      (cause) => new Platform.SocketGenericError({ reason: "Write", cause })
    )
  }

  return Platform.Socket.of({
    [Platform.TypeId]: Platform.TypeId,
    run: runRaw as Platform.Socket["run"],
    runRaw,
    writer: Effect.acquireRelease(Effect.succeed(write), () => Effect.ignore(socket.end))
  })
}

/**
 * Connect with {@link Socket.connect} and view the connection as an
 * `@effect/platform` `Socket`. The connection closes with the scope.
 *
 * ```ts
 * const platform = yield* PlatformSocket.connect(Address.tcp("127.0.0.1", 9000))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (
  address: Address.Address,
  options?: Socket.ConnectOptions | undefined
): Effect.Effect<Platform.Socket, ConnectError, Scope.Scope> => Effect.map(Socket.connect(address, options), fromSocket)

/**
 * View a {@link Socket.Listener} as an `@effect/platform` `SocketServer`:
 * `run(handler)` serves every accepted connection in its own fiber with the
 * connection as a platform `Socket`, closes the connection when the handler
 * ends, and logs a handler's failure without stopping the others. It runs
 * until interrupted; interrupting it interrupts the handlers.
 *
 * ```ts
 * const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
 * const server = PlatformSocket.fromListener(listener)
 * yield* server.run((socket) => Effect.scoped(Effect.flatMap(socket.writer, (write) => socket.run(write))))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromListener = (listener: Socket.Listener): SocketServer.SocketServer["Type"] => ({
  address: listener.address._tag === "TcpAddress"
    ? { _tag: "TcpAddress", hostname: listener.address.host, port: listener.address.port }
    : { _tag: "UnixAddress", path: listener.address.path },
  run: <R, E, _>(handler: (socket: Platform.Socket) => Effect.Effect<_, E, R>) =>
    Effect.scoped(
      Effect.gen(function*() {
        const connections = yield* FiberSet.make<unknown, never>()
        const runFork = yield* FiberSet.runtime(connections)<R>()
        const serve = (socket: Socket.Socket) =>
          handler(fromSocket(socket)).pipe(
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning(
                `connection from ${Address.format(socket.remoteAddress)} failed`,
                cause
              )
            ),
            Effect.ensuring(socket.close)
          )
        yield* Stream.runForEach(listener.accept, (socket) => Effect.sync(() => runFork(serve(socket))))
        // The listener stopped accepting: serve what is open until interrupted, like the platform's servers.
        return yield* Effect.never
      })
    ) as Effect.Effect<never, SocketServer.SocketServerError, R>
})

/**
 * Listen with {@link Socket.listen} and provide the platform's
 * `SocketServer`, e.g. for `@effect/rpc`'s `RpcServer.layerProtocolSocketServer`.
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
  Layer.scoped(SocketServer.SocketServer, Effect.map(Socket.listen(address, options), fromListener))

/**
 * Connect with {@link Socket.connect} and provide the connection as the
 * platform's `Socket` service, e.g. for `@effect/rpc`'s
 * `RpcClient.layerProtocolSocket()`. The connection closes when the layer is
 * released. It is one connection: no reconnecting.
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
): Layer.Layer<Platform.Socket, ConnectError> => Layer.scoped(Platform.Socket, connect(address, options))
