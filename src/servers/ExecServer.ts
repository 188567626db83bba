/**
 * The exec server as a Layer: it validates the options and the bind, listens,
 * and answers each connection's request frames in order with an
 * {@link ExecRunner}, whose command slots all connections share.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "../Address.js"
import * as Framing from "../Framing.js"
import type { ListenError, ReadError, WriteError } from "../NetError.js"
import * as Server from "../Server.js"
import type * as Socket from "../Socket.js"
import type { ExecConfigError, ExecOptions } from "./ExecPolicy.js"
import { checkBind, InsecureBind, InvalidExecOptions, makePolicy } from "./ExecPolicy.js"
import type { ExecRunner } from "./ExecRunner.js"
import { makeRunner } from "./ExecRunner.js"
import { encodeResponse, requestCodec } from "./ExecWire.js"
import { duration, positiveInt } from "./internal/execOptions.js"

/**
 * Options of {@link make} and {@link layer}: the {@link ExecOptions} and where
 * and how to listen.
 *
 * - `address` (default `127.0.0.1`, port 0): an address other machines can
 *   reach needs a `token`, or the server refuses to start ({@link InsecureBind}).
 * - `maxConnections` (1024): connections served at once; further ones wait.
 *   The `concurrency` limit on commands is shared by all connections.
 * - `idleTimeout` (none): close a connection that sends no request for this
 *   long while nothing runs for it. A long command never counts as idle.
 *   `Duration.infinity` means none, as leaving it out does.
 * - `shutdownTimeout` (10 s): on release, how long each connection may finish
 *   the request in hand; then its command is killed.
 *
 * As for {@link ExecOptions}, 0 is refused everywhere and a bad value fails
 * with the typed `InvalidExecOptions`; `idleTimeout` is the one limit
 * `Duration.infinity` lifts.
 *
 * ```ts
 * const options: Exec.ServerOptions = {
 *   allow: ["uptime", "df"],
 *   address: Address.tcp("127.0.0.1", 9000),
 *   timeout: "5 seconds",
 *   idleTimeout: "1 minute"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions extends ExecOptions {
  /** Where to listen (default `127.0.0.1`, port 0). */
  readonly address?: Address.Address | undefined
  /** Connections served at once (default 1024); further ones wait. */
  readonly maxConnections?: number | undefined
  /** Close a connection that sent no request for this long while nothing ran for it (default, or `Duration.infinity`: never). */
  readonly idleTimeout?: Duration.Input | undefined
  /** On release, how long the request in hand may finish (default 10 seconds). */
  readonly shutdownTimeout?: Duration.Input | undefined
  /**
   * The permission bits of a Unix socket file, whatever the umask (default
   * 0o600: only this user and root can connect; 0o660 adds the file's group),
   * as `Socket.ListenOptions.unixMode`. From 0 to 0o777.
   */
  readonly unixMode?: number | undefined
}

/**
 * Every way starting an exec server can fail: the address cannot be bound,
 * the options are unusable, or the bind would expose commands without a token.
 *
 * ```ts
 * Exec.make(options).pipe(Effect.catch((e: Exec.ServeError) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ServeError = ListenError | ExecConfigError | InsecureBind

/**
 * The running exec server that {@link layer} provides: its bound address,
 * counters and shutdown report. Its own tag, so it composes with the other
 * built-in servers in one program.
 *
 * ```ts
 * const server = yield* Exec.Exec
 * yield* Console.log(`exec server on ${Address.format(server.address)}`)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Exec extends Context.Service<Exec, Server.RunningServer>()("effect-wire/servers/Exec") {}

const DEFAULT_ADDRESS = Address.tcp("127.0.0.1", 0)
const DEFAULT_MAX_CONNECTIONS = 1024
const DEFAULT_SHUTDOWN_TIMEOUT = Duration.seconds(10)
// Request frames read ahead of the one running: enough for a pipelining client,
// few enough that a connection holds about this many frames (or socket reads)
// at most. While they are full, reading pauses, and a reset is noticed only
// when the answer in hand is written.
const READ_AHEAD = 16
// After refusing an oversized frame, how long the rest of it is read and
// dropped before the socket is closed: closing with unread bytes makes the
// kernel send RST, which can destroy the answer before the client read it.
const LINGER = Duration.seconds(1)

type Inbound =
  | { readonly _tag: "Request"; readonly payload: Uint8Array }
  | { readonly _tag: "TooLarge"; readonly size: number }
  | { readonly _tag: "End" }

const END: Inbound = { _tag: "End" }

/**
 * Read request frames into `inbox`, in order, until EOF (then `End`) or an
 * oversized frame (then `TooLarge`, after which bytes are read and dropped
 * without buffering, so a reset is still noticed).
 */
const readRequests = (
  socket: Socket.Socket,
  decoder: Framing.Decoder<Uint8Array>,
  inbox: Queue.Enqueue<Inbound>
): Effect.Effect<void, ReadError> =>
  Effect.suspend(() => {
    const frames: Array<Uint8Array> = []
    let stopped = false
    const onBytes = (bytes: Uint8Array): Effect.Effect<void> => {
      if (stopped) return Effect.void
      const error = decoder.push(bytes, frames)
      const items: Array<Inbound> = frames.map((payload) => ({ _tag: "Request", payload }))
      frames.length = 0
      if (error !== undefined) {
        stopped = true
        // With the default adjustment lengthPrefixed fails only with FrameTooLarge; anything else ends the connection.
        items.push(error instanceof Framing.FrameTooLarge ? { _tag: "TooLarge", size: error.size } : END)
      }
      return items.length === 0 ? Effect.void : Queue.offerAll(inbox, items)
    }
    return Stream.runForEach(socket.reads, onBytes).pipe(
      // A frame cut short by the half-close gets no answer: the peer said it sends nothing more.
      Effect.andThen(Effect.suspend(() => stopped ? Effect.void : Queue.offer(inbox, END)))
    )
  })

const answerRequests = (
  runner: ExecRunner,
  socket: Socket.Socket,
  connection: Server.Connection,
  inbox: Queue.Dequeue<Inbound>,
  readerDone: Deferred.Deferred<void>,
  idleTimeout: Duration.Duration | undefined
): Effect.Effect<void, WriteError> => {
  const next = Effect.raceFirst(Queue.take(inbox), Effect.as(connection.draining, END))
  const nextRequest = idleTimeout === undefined
    ? next
    : Effect.timeoutOrElse(next, { duration: idleTimeout, orElse: () => Effect.succeed(END) })
  return Effect.gen(function*() {
    // Draining: the request in hand was answered; the ones read ahead are not started.
    while (!(yield* connection.isDraining)) {
      const item = yield* nextRequest
      if (item._tag === "End") return
      if (item._tag === "TooLarge") {
        yield* socket.writeAll(encodeResponse(runner.requestTooLarge(item.size)))
        yield* socket.end
        yield* Effect.timeoutOption(Deferred.await(readerDone), LINGER)
        return
      }
      const result = yield* runner.runFrame(item.payload)
      yield* socket.writeAll(encodeResponse(result))
    }
  })
}

const connectionHandler = (runner: ExecRunner, idleTimeout: Duration.Duration | undefined) => {
  const codec = requestCodec({ maxRequestBytes: runner.policy.maxRequestBytes })
  return (socket: Socket.Socket, connection: Server.Connection) =>
    Effect.gen(function*() {
      const inbox = yield* Queue.bounded<Inbound>(READ_AHEAD)
      const readerDone = yield* Deferred.make<void>()
      const reader = readRequests(socket, codec.decoder(), inbox).pipe(
        Effect.andThen(Deferred.succeed(readerDone, undefined)),
        Effect.andThen(Effect.never)
      )
      // Reading goes on while a command runs, so a client that resets the
      // connection fails the reader, and the race interrupts the command
      // (which kills its process group and waits for it).
      yield* Effect.raceFirst(answerRequests(runner, socket, connection, inbox, readerDone, idleTimeout), reader)
    }).pipe(
      Effect.catchTags({
        // The client went away: an ordinary end of a connection, not a server failure.
        ConnectionReset: (e) => Effect.logDebug(`exec: ${e.message}`),
        BrokenPipe: (e) => Effect.logDebug(`exec: ${e.message}`)
      })
    )
}

const checked = <A>(option: string, result: Result.Result<A, string>): Effect.Effect<A, InvalidExecOptions> =>
  Effect.fromResult(Result.mapError(result, (reason) => new InvalidExecOptions({ option, reason })))

const prepare = (options: Omit<ServerOptions, "address">, address: Address.Address) =>
  Effect.gen(function*() {
    const policy = yield* makePolicy(options)
    yield* Effect.fromResult(checkBind(policy, address))
    const maxConnections = yield* checked(
      "maxConnections",
      positiveInt(options.maxConnections, DEFAULT_MAX_CONNECTIONS, Number.MAX_SAFE_INTEGER)
    )
    const idleTimeout = yield* checked("idleTimeout", duration(options.idleTimeout, Duration.infinity, { never: true }))
    const shutdownTimeout = yield* checked(
      "shutdownTimeout",
      duration(options.shutdownTimeout, DEFAULT_SHUTDOWN_TIMEOUT, { never: false, finite: "a drain must end" })
    )
    const runner = yield* makeRunner(policy)
    return {
      handler: connectionHandler(runner, Duration.isFinite(idleTimeout) ? idleTimeout : undefined),
      maxConnections,
      shutdownTimeout,
      idleTimeout
    }
  })

/** The server's limits, with the idle timeout its handler applies (the `Server` sets none for it). */
const withIdleTimeout = (server: Server.RunningServer, idleTimeout: Duration.Duration): Server.RunningServer => ({
  ...server,
  limits: { ...server.limits, idleTimeout }
})

/**
 * Start an exec server in the current scope: check the options and the
 * allowlist, refuse a reachable address without a token, then listen. Each
 * connection's requests are answered one at a time, in order; commands of all
 * connections share the `concurrency` slots. Closing the scope stops
 * accepting, lets each connection finish the request in hand (within
 * `shutdownTimeout`), then closes it.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* Exec.make({ allow: ["uptime"], address: Address.tcp("127.0.0.1", 9000) })
 *   yield* Console.log(`listening on ${Address.format(server.address)}`)
 *   return yield* Effect.never
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: ServerOptions): Effect.Effect<Server.RunningServer, ServeError, Scope.Scope> =>
  Effect.suspend(() => {
    const address = options.address ?? DEFAULT_ADDRESS
    const unixMode = options.unixMode
    if (unixMode !== undefined && !(Number.isInteger(unixMode) && unixMode >= 0 && unixMode <= 0o777)) {
      return Effect.fail(
        new InvalidExecOptions({ option: "unixMode", reason: `must be permission bits from 0 to 0o777, got ${unixMode}` })
      )
    }
    return Effect.flatMap(prepare(options, address), ({ idleTimeout, ...prepared }) =>
      Effect.map(
        Server.make({ address, ...prepared, listen: { unixMode } }),
        (server) => withIdleTimeout(server, idleTimeout)
      ))
  })

/**
 * Serve exec requests on a listener you already have, such as
 * `MemorySocket.listen()` to test without the network. The bind check uses
 * the listener's address.
 *
 * ```ts
 * const listener = yield* MemorySocket.listen()
 * yield* Exec.fromListener(listener, { allow: ["echo"] })
 * const client = yield* Exec.clientFromSocket(yield* listener.connect())
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromListener = (
  listener: Socket.Listener,
  options: Omit<ServerOptions, "address">
): Effect.Effect<Server.RunningServer, ExecConfigError | InsecureBind, Scope.Scope> =>
  Effect.flatMap(prepare(options, listener.address), ({ idleTimeout, ...prepared }) =>
    Effect.map(Server.fromListener(listener, prepared), (server) => withIdleTimeout(server, idleTimeout)))

/**
 * The exec server as a Layer providing {@link Exec}: building it checks the
 * options and listens, releasing it drains (see {@link make}).
 *
 * ```ts
 * const ExecLive = Exec.layer({
 *   allow: ["uptime", "df"],
 *   address: Address.tcp("0.0.0.0", 9000),
 *   token: Redacted.make(process.env.EXEC_TOKEN ?? "")
 * })
 * NodeRuntime.runMain(Layer.launch(ExecLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ServerOptions): Layer.Layer<Exec, ServeError> => Layer.effect(Exec, make(options))

/**
 * {@link layer} on 127.0.0.1 with a free port, for tests: read the port from
 * the {@link Exec} service.
 *
 * ```ts
 * it.live("runs echo", () =>
 *   Effect.gen(function*() {
 *     const client = yield* Exec.client((yield* Exec.Exec).address)
 *     assert.strictEqual((yield* client.run(["echo", "hi"])).header.exitCode, 0)
 *   }).pipe(Effect.provide(Exec.layerTest({ allow: ["echo"] }))))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (options: Omit<ServerOptions, "address">): Layer.Layer<Exec, ServeError> =>
  layer({ ...options, address: DEFAULT_ADDRESS })
