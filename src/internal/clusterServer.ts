/**
 * An `effect/socket` `SocketServer` whose connections are served by an
 * effect-wire `Server` (limits, drain, stats): the server runs from the moment
 * the listener is bound, and each connection waits for the handler that
 * `SocketServer.run` installs (effect/rpc installs it right after).
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"
import type * as Scope from "effect/Scope"
import type * as EffectSocket from "effect/socket/Socket"
import type * as SocketServer from "effect/socket/SocketServer"
import * as PlatformSocket from "../PlatformSocket.js"
import * as Server from "../Server.js"
import type * as Socket from "../Socket.js"

/** The handler of the current `run`, with the services it was called with. */
interface Installed {
  readonly handler: (socket: EffectSocket.Socket) => Effect.Effect<unknown, unknown>
  /** Completes when that `run` ends: its connections end too. */
  readonly stopped: Deferred.Deferred<void>
}

/**
 * Serve `listener` with a `Server` under `options`, and return the
 * `SocketServer` whose `run` supplies the connections' handler, with the
 * running server (its stats, limits and drain report).
 */
export const make = (
  listener: Socket.Listener,
  options: Omit<Server.ListenerOptions<never, never>, "handler">
): Effect.Effect<
  { readonly socketServer: SocketServer.SocketServer["Service"]; readonly server: Server.RunningServer },
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    let installed: Installed | undefined
    const ready = Latch.makeUnsafe(false)
    const whenInstalled = ready.whenOpen(Effect.sync(() => installed!))

    const server = yield* Server.fromListener(listener, {
      ...options,
      handler: (socket, connection) =>
        Effect.flatMap(whenInstalled, ({ handler, stopped }) =>
          handler(PlatformSocket.fromSocket(socket)).pipe(
            // On drain, or when its `run` ends, a connection ends: by then effect/rpc's server is gone.
            Effect.raceFirst(connection.draining),
            Effect.raceFirst(Deferred.await(stopped))
          )).pipe(
            // Don't wait for a `run` that never comes beyond the drain.
            Effect.raceFirst(connection.draining),
            Effect.asVoid
          )
    })

    const run = <R, E, _>(handler: (socket: EffectSocket.Socket) => Effect.Effect<_, E, R>) =>
      Effect.contextWith((services: Context.Context<R>) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            const entry: Installed = {
              handler: (socket) => Effect.provideContext(handler(socket), services),
              stopped: Deferred.makeUnsafe<void>()
            }
            installed = entry
            ready.openUnsafe()
            return entry
          }),
          () => Effect.never,
          (entry) =>
            Effect.suspend(() => {
              if (installed === entry) {
                installed = undefined
                ready.closeUnsafe()
              }
              return Deferred.succeed(entry.stopped, void 0)
            })
        )
      )

    const socketServer: SocketServer.SocketServer["Service"] = {
      address: PlatformSocket.fromListener(listener).address,
      run
    }
    return { socketServer, server }
  })
