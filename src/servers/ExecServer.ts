/**
 * The exec server as a Layer: it validates the options and the bind, listens,
 * and answers each connection's request frames in order with an
 * {@link ExecRunner}, whose command slots all connections share.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "../Address.js"
import * as Framing from "../Framing.js"
import { LimitWarning, RATE_NOTE } from "../internal/limitWarning.js"
import type { ListenError, ReadError, WriteError } from "../NetError.js"
import { type Meters, metersOf } from "../internal/metrics.js"
import { IdleTimeout, MemoryBudgetExceeded, WriteTimeout } from "../NetError.js"
import * as Server from "../Server.js"
import type * as Socket from "../Socket.js"
import type * as Tls from "../Tls.js"
import type { ExecConfigError, ExecOptions } from "./ExecPolicy.js"
import { checkBindResolved, InsecureBind, InvalidExecOptions, makePolicy } from "./ExecPolicy.js"
import type { ExecRunner } from "./ExecRunner.js"
import { inheritedDescriptors, makeRunner } from "./ExecRunner.js"
import type { ExecResult } from "./ExecWire.js"
import { encodeResponse, failureResult, requestCodec, Timeout } from "./ExecWire.js"
import type { Holder } from "./internal/execBudget.js"
import { ExecBudget } from "./internal/execBudget.js"
import { clear } from "../internal/bytes.js"
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
 *   long while nothing runs for it, or that takes none of an answer for this
 *   long. A long command never counts as idle. `Duration.infinity` means
 *   none, as leaving it out does.
 * - `writeTimeout` (30 s): a client that does not take a piece of its answer
 *   (256 KiB) within this long is cut with `WriteTimeout`, and the answer's
 *   memory freed. `Duration.infinity` means none.
 * - `memoryBudget` (256 MiB): the bytes the server holds for all its clients
 *   together: request frames read ahead, the output room of each running
 *   command (`maxOutput`) and answers not yet taken. Over it, reading pauses
 *   and new commands wait (at most `queueTimeout`, then `Timeout`); to make
 *   room, the connections whose answers have waited longest for their client
 *   are cut, the largest first, with `MemoryBudgetExceeded` (logged, at most
 *   every 10 s). A running command holds `2 × maxOutput` of it (its output
 *   and the one copy made of it); the budget must hold at least that, one
 *   request and 4 KiB.
 * - `shutdownTimeout` (10 s): on release, how long each connection may finish
 *   the request in hand; then its command is killed.
 * - `tls` (none): speak TLS (see `Tls.ServerOptions`), so requests, their
 *   token and the output cross the network encrypted; with
 *   `clientCertificate: "required"` only clients holding a certificate of
 *   `clientCa` get a connection at all. A connection reaches the server only
 *   after its handshake; a failed one is logged and counted
 *   (`Stats.tlsHandshakesFailed`). It does not replace the `token`: an address
 *   other machines can reach still needs one.
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
  /** Close a connection that sent no request, or took none of an answer, for this long while nothing ran for it (default, or `Duration.infinity`: never). */
  readonly idleTimeout?: Duration.Input | undefined
  /** Cut a client that does not take a piece of its answer within this long (default 30 seconds; `Duration.infinity`: never). */
  readonly writeTimeout?: Duration.Input | undefined
  /** The bytes held for all clients together: frames read ahead, running commands' output, answers not yet taken (default 256 MiB). */
  readonly memoryBudget?: number | undefined
  /** On release, how long the request in hand may finish (default 10 seconds). */
  readonly shutdownTimeout?: Duration.Input | undefined
  /**
   * The permission bits of a Unix socket file, whatever the umask (default
   * 0o600: only this user and root can connect; 0o660 adds the file's group),
   * as `Socket.ListenOptions.unixMode`. From 0 to 0o777.
   */
  readonly unixMode?: number | undefined
  /** Speak TLS: certificate and key, client certificates (see `Tls.ServerOptions`). */
  readonly tls?: Tls.ServerOptions | undefined
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
const DEFAULT_WRITE_TIMEOUT = Duration.seconds(30)
const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024
// Request frames read ahead of the one running, once the client proved it has
// the token (before that, one read at a time): enough for a pipelining client,
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

// An answer is written in pieces of this size, each of which the peer must
// take within the write deadline: a slow reader that keeps reading is never
// cut, one that stops is, whatever the answer's size.
const WRITE_PIECE = 256 * 1024
// What an answer's header frame may add to its bodies, reserved with them.
const HEADER_ROOM = 4 * 1024

/** What the handler of every connection shares: the runner, the deadlines and the memory budget. */
interface Shared {
  readonly runner: ExecRunner
  readonly idleTimeout: Duration.Duration | undefined
  readonly writeTimeout: Duration.Duration | undefined
  readonly budget: ExecBudget
  /** Commands counted by outcome (internal/metrics.ts), unless metrics are off. */
  readonly meters: Meters | undefined
}

/**
 * One connection's state, shared by its reader and its answerer. Before the
 * first request with the right token (on a server that requires one), the
 * reader reads on only once every frame it queued was taken: a client
 * without the token never has more than one read of frames buffered.
 */
class ConnectionState {
  authenticated: boolean
  /** The answerer is closing the connection: bytes still read are dropped. */
  closing = false
  /** Request frames queued and not yet taken. */
  queued = 0
  private wakeReader: (() => void) | undefined = undefined

  constructor(requiresToken: boolean, readonly holder: Holder) {
    this.authenticated = !requiresToken
  }

  /** The reader's pause before authentication: until every frame it queued was taken. */
  readonly readerMayGoOn: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.authenticated || this.queued === 0) return resume(Effect.void)
    this.wakeReader = () => resume(Effect.void)
    return Effect.sync(() => {
      this.wakeReader = undefined
    })
  })

  taken(): void {
    this.queued--
    if (this.queued === 0 || this.authenticated) this.wake()
  }

  wake(): void {
    const wake = this.wakeReader
    this.wakeReader = undefined
    wake?.()
  }
}

/**
 * Read request frames into `inbox`, in order, until EOF (then `End`) or an
 * oversized frame (then `TooLarge`, after which bytes are read and dropped
 * without buffering, so a reset is still noticed). Frames read ahead count in
 * the memory budget; over it, reading pauses.
 */
const readRequests = (
  socket: Socket.Socket,
  decoder: Framing.Decoder<Uint8Array>,
  inbox: Queue.Enqueue<Inbound>,
  state: ConnectionState,
  budget: ExecBudget
): Effect.Effect<void, ReadError> =>
  Effect.suspend(() => {
    const frames: Array<Uint8Array> = []
    let stopped = false
    const onBytes = (bytes: Uint8Array): Effect.Effect<void> => {
      if (stopped || state.closing) return Effect.void
      const error = decoder.push(bytes, frames)
      const items: Array<Inbound> = []
      let size = 0
      for (const payload of frames) {
        items.push({ _tag: "Request", payload })
        size += payload.byteLength
      }
      clear(frames)
      if (error !== undefined) {
        stopped = true
        // With the default adjustment lengthPrefixed fails only with FrameTooLarge; anything else ends the connection.
        items.push(error instanceof Framing.FrameTooLarge ? { _tag: "TooLarge", size: error.size } : END)
      }
      if (items.length === 0) return Effect.void
      state.queued += items.length
      budget.add(state.holder, size)
      return Effect.andThen(
        Queue.offerAll(inbox, items),
        // Over the budget, nothing more is read until it has room again.
        Effect.andThen(state.readerMayGoOn, budget.belowLimit)
      )
    }
    return Stream.runForEach(socket.reads, onBytes).pipe(
      // A frame cut short by the half-close gets no answer: the peer said it sends nothing more.
      Effect.andThen(Effect.suspend(() => stopped ? Effect.void : Queue.offer(inbox, END)))
    )
  })

const writeTimedOut = (socket: Socket.Socket, pending: number, limit: Duration.Duration) =>
  new WriteTimeout({
    address: socket.remoteAddress,
    detail: `${pending} bytes of an answer waited ${Duration.format(limit)} (the exec server's writeTimeout)`
  })

const stalledIdle = (socket: Socket.Socket, pending: number, limit: Duration.Duration) =>
  new IdleTimeout({
    address: socket.remoteAddress,
    detail: `it took none of the ${pending} bytes of an answer for ${Duration.format(limit)} (the exec server's idleTimeout)`
  })

/**
 * Write one answer in pieces of {@link WRITE_PIECE}; each must be taken by
 * the peer within the shorter of `writeTimeout` and `idleTimeout`, or the
 * connection is reset and fails with `WriteTimeout` (or `IdleTimeout`): a
 * peer that stops reading holds neither its connection nor its answer's
 * memory. While a piece waits, the budget may cut the connection.
 */
const writeAnswer = (
  socket: Socket.Socket,
  chunks: ReadonlyArray<Uint8Array>,
  shared: Shared,
  holder: Holder
): Effect.Effect<void, WriteError> => {
  const pieces: Array<Array<Uint8Array>> = [[]]
  let room = WRITE_PIECE
  for (const chunk of chunks) {
    for (let at = 0; at < chunk.byteLength;) {
      if (room === 0) {
        pieces.push([])
        room = WRITE_PIECE
      }
      const n = Math.min(room, chunk.byteLength - at)
      pieces[pieces.length - 1]!.push(at === 0 && n === chunk.byteLength ? chunk : chunk.subarray(at, at + n))
      at += n
      room -= n
    }
  }
  const { idleTimeout, writeTimeout } = shared
  const idleFirst = idleTimeout !== undefined && (writeTimeout === undefined || Duration.isLessThan(idleTimeout, writeTimeout))
  const limit = idleFirst ? idleTimeout : writeTimeout
  let left = 0
  for (const chunk of chunks) left += chunk.byteLength
  return Effect.forEach(pieces, (piece) =>
    Effect.suspend(() => {
      holder.writingSince = performance.now()
      const write = socket.writeAll(piece)
      const pending = left
      for (const part of piece) left -= part.byteLength
      return limit === undefined ? write : Effect.timeoutOrElse(write, {
        duration: limit,
        orElse: () =>
          Effect.andThen(
            socket.reset,
            Effect.fail(idleFirst ? stalledIdle(socket, pending, limit) : writeTimedOut(socket, pending, limit))
          )
      })
    }), { discard: true }).pipe(Effect.ensuring(Effect.sync(() => {
      holder.writingSince = undefined
    })))
}

const responseSize = (result: ExecResult): number => result.stdout.byteLength + result.stderr.byteLength + HEADER_ROOM

const answerRequests = (
  shared: Shared,
  socket: Socket.Socket,
  connection: Server.Connection,
  inbox: Queue.Dequeue<Inbound>,
  readerDone: Deferred.Deferred<void>,
  state: ConnectionState
): Effect.Effect<void, WriteError> => {
  const { budget, idleTimeout, runner } = shared
  const holder = state.holder
  const next = Effect.raceFirst(Queue.take(inbox), Effect.as(connection.draining, END))
  const nextRequest = idleTimeout === undefined
    ? next
    : Effect.timeoutOrElse(next, { duration: idleTimeout, orElse: () => Effect.succeed(END) })
  // Room for the largest answer a command can give, reserved before it runs:
  // twice, as the runner's pipe chunks and its one copy of them meet for a moment.
  const reservation = 2 * runner.policy.maxOutput + HEADER_ROOM
  const noRoom = failureResult(
    new Timeout({
      message: `the server's memory budget (${budget.limit} bytes) had no room for another command's output within ${
        Duration.format(runner.policy.queueTimeout)
      }: answers waiting for their clients fill it; try again later (the server's memoryBudget sets it)`
    })
  )
  /** Answer, then close as the protocol says: the requests behind it are not read. */
  const answerAndClose = (result: ExecResult) =>
    Effect.gen(function*() {
      state.closing = true
      yield* writeAnswer(socket, encodeResponse(result), shared, holder)
      yield* socket.end
      yield* Effect.timeoutOption(Deferred.await(readerDone), LINGER)
    })
  return Effect.gen(function*() {
    // Draining: the request in hand was answered; the ones read ahead are not started.
    while (!(yield* connection.isDraining)) {
      const item = yield* nextRequest
      if (item._tag === "End") return
      state.taken()
      if (item._tag === "TooLarge") {
        shared.meters?.execCommand("RequestTooLarge")
        return yield* answerAndClose(runner.requestTooLarge(item.size))
      }
      budget.release(holder, item.payload.byteLength)
      const reserved = yield* budget.reserve(holder, reservation, runner.policy.queueTimeout)
      const result = reserved ? yield* runner.runFrame(item.payload) : noRoom
      shared.meters?.execCommand(result.header.error?._tag)
      // The answer holds its own size until the peer took it.
      const size = responseSize(result)
      if (reserved) budget.release(holder, reservation - size)
      else budget.add(holder, size)
      const refusal = result.header.error?._tag
      if (refusal === "Unauthorized") {
        yield* answerAndClose(result)
        return
      }
      if (!state.authenticated && refusal !== "BadRequest") {
        state.authenticated = true
        state.wake()
      }
      yield* writeAnswer(socket, encodeResponse(result), shared, holder)
      budget.release(holder, size)
    }
  })
}

const connectionHandler = (shared: Shared) => {
  const { budget, runner } = shared
  const codec = requestCodec({ maxRequestBytes: runner.policy.maxRequestBytes })
  return (socket: Socket.Socket, connection: Server.Connection) =>
    Effect.gen(function*() {
      const inbox = yield* Queue.bounded<Inbound>(READ_AHEAD)
      const readerDone = yield* Deferred.make<void>()
      const cut = yield* Deferred.make<never, MemoryBudgetExceeded>()
      const holder = budget.join((held) =>
        Deferred.doneUnsafe(
          cut,
          Exit.fail(
            new MemoryBudgetExceeded({
              address: socket.remoteAddress,
              detail: `its answer of ${held} bytes waited for the client while the server's ${budget.limit}-byte ` +
                "memoryBudget was full"
            })
          )
        )
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => budget.leave(holder)))
      const state = new ConnectionState(runner.policy.requiresToken, holder)
      const reader = readRequests(socket, codec.decoder(), inbox, state, budget).pipe(
        Effect.andThen(Deferred.succeed(readerDone, undefined)),
        Effect.andThen(Effect.never)
      )
      // Cut by the budget: reset at once, so Node frees the unsent answer.
      const cutOff = Effect.tapError(Deferred.await(cut), () => socket.reset)
      // Reading goes on while a command runs, so a client that resets the
      // connection fails the reader, and the race interrupts the command
      // (which kills its process group and waits for it).
      yield* Effect.raceFirst(
        Effect.raceFirst(answerRequests(shared, socket, connection, inbox, readerDone, state), reader),
        cutOff
      )
    }).pipe(
      Effect.catchTags({
        // The client went away: an ordinary end of a connection, not a server failure.
        ConnectionReset: (e) => Effect.logDebug(`exec: ${e.message}`),
        BrokenPipe: (e) => Effect.logDebug(`exec: ${e.message}`)
      })
    )
}

/**
 * As PID 1 (a container without an init) the server inherits every orphan,
 * and Node reaps only the processes it started: what a command leaves behind
 * (killed with its group) stays a zombie. Node has no call to reap others.
 */
const PID_1_WARNING = "exec: this server runs as PID 1 (a container without an init process): processes that " +
  "commands leave behind are killed but never reaped and stay zombies. Run the container with an init " +
  "(docker run --init, tini, dumb-init) in front of the server"

const checked = <A>(option: string, result: Result.Result<A, string>): Effect.Effect<A, InvalidExecOptions> =>
  Effect.fromResult(Result.mapError(result, (reason) => new InvalidExecOptions({ option, reason })))

const prepare = (options: Omit<ServerOptions, "address">, address: Address.Address) =>
  Effect.gen(function*() {
    const policy = yield* makePolicy(options)
    yield* checkBindResolved(policy, address)
    const maxConnections = yield* checked(
      "maxConnections",
      positiveInt(options.maxConnections, DEFAULT_MAX_CONNECTIONS, Number.MAX_SAFE_INTEGER)
    )
    const idleTimeout = yield* checked("idleTimeout", duration(options.idleTimeout, Duration.infinity, { never: true }))
    const writeTimeout = yield* checked(
      "writeTimeout",
      duration(options.writeTimeout, DEFAULT_WRITE_TIMEOUT, { never: true })
    )
    const shutdownTimeout = yield* checked(
      "shutdownTimeout",
      duration(options.shutdownTimeout, DEFAULT_SHUTDOWN_TIMEOUT, { never: false, finite: "a drain must end" })
    )
    const memoryBudget = yield* checked(
      "memoryBudget",
      positiveInt(options.memoryBudget, DEFAULT_MEMORY_BUDGET, Number.MAX_SAFE_INTEGER)
    )
    // One running command's output room and one request must fit, or nothing could ever run.
    const least = 2 * policy.maxOutput + HEADER_ROOM + policy.maxRequestBytes
    if (memoryBudget < least) {
      return yield* new InvalidExecOptions({
        option: "memoryBudget",
        reason: `must hold one running command's output room and one request (2 × maxOutput + maxRequestBytes + ` +
          `${HEADER_ROOM} = ${least} bytes), got ${memoryBudget}; raise it or lower maxOutput`
      })
    }
    const runner = yield* makeRunner(policy)
    if (process.pid === 1) yield* Effect.logWarning(PID_1_WARNING)
    const inherited = inheritedDescriptors()
    // At debug: a program embedding the server may hold such descriptors on purpose (a test
    // runner's pipe); `serve exec` closes them and says so on stderr.
    if (inherited.length > 0) {
      yield* Effect.logDebug(
        `exec: this process holds ${inherited.length} inherited descriptor(s) without close-on-exec (${
          inherited.map((d) => `fd ${d.fd} ${d.target}`).join(", ")
        }): every command it runs inherits them. Close them at start with Exec.closeInheritedDescriptors() ` +
          "(effect-wire serve exec does), or start the server without them"
      )
    }
    const log = Effect.runForkWith(yield* Effect.context<never>())
    const warning = new LimitWarning(
      yield* Clock.clockWith(Effect.succeed),
      (since) => {
        const message = `exec: ${budget.cuts - reported} connection(s) cut ${since} to stay within the memoryBudget of ` +
          `${memoryBudget} bytes (MemoryBudgetExceeded): their clients did not take their answers. Raise the ` +
          `memoryBudget (serve exec --memory-budget) or lower maxOutput. ${RATE_NOTE}`
        reported = budget.cuts
        return message
      },
      (message) => void log(Effect.logWarning(message))
    )
    let reported = 0
    const budget: ExecBudget = new ExecBudget(memoryBudget, () => warning.hit())
    return {
      handler: connectionHandler({
        runner,
        idleTimeout: Duration.isFinite(idleTimeout) ? idleTimeout : undefined,
        writeTimeout: Duration.isFinite(writeTimeout) ? writeTimeout : undefined,
        budget,
        meters: metersOf(yield* Effect.context<never>())
      }),
      maxConnections,
      shutdownTimeout,
      // The Server's own deadline on Node's write buffer, with the same value (our pieces carry ours).
      writeTimeout,
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
        Server.make({ address, ...prepared, listen: { unixMode }, tls: options.tls }),
        (server) => withIdleTimeout(server, idleTimeout)
      ))
  })

/**
 * Serve exec requests on a listener you already have, such as
 * `MemorySocket.listen()` to test without the network. The bind check uses
 * the listener's address; TLS is the listener's (`Socket.listen` with `tls`).
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
  options: Omit<ServerOptions, "address" | "tls">
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
