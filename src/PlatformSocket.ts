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
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Address from "./Address.js"
import type { ConnectError } from "./NetError.js"
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
