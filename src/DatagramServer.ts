/**
 * A UDP server is a Layer: it binds when the Layer is built (failing with the
 * typed `ListenError`), runs the handler on every datagram with bounded
 * concurrency and sends what it returns back to the sender. A failing handler
 * is logged with the peer and never stops the server. `request` is the
 * matching client: send, wait for the reply, resend on timeout.
 *
 * ```ts
 * const EchoLive = DatagramServer.layer({
 *   address: Address.tcp("127.0.0.1", 5300),
 *   handler: (datagram) => Effect.succeed(datagram.payload)
 * })
 *
 * const reply = DatagramServer.request(new TextEncoder().encode("hi"), Address.tcp("127.0.0.1", 5300))
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as Address from "./Address.js"
import * as Datagram from "./Datagram.js"
import * as FiberGroup from "./internal/fiberGroup.js"
import { LimitWarning, RATE_NOTE } from "./internal/limitWarning.js"
import * as Check from "./internal/options.js"
import { queueOf, type ReceiveQueue } from "./internal/receiveQueue.js"
import * as NetError from "./NetError.js"

/**
 * What a handler may return: bytes to send back to the sender (an empty
 * array is an empty reply datagram), `Option.some(bytes)` likewise, or
 * nothing / `Option.none()` for no reply.
 *
 * ```ts
 * const handler = (d: Datagram.Datagram): Effect.Effect<DatagramServer.Reply> =>
 *   Effect.succeed(d.payload.length === 0 ? Option.none() : Option.some(d.payload))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Reply = Option.Option<Uint8Array> | Uint8Array | void

/**
 * Options of {@link make} and {@link layer}.
 *
 * ```ts
 * const options: DatagramServer.Options<never, never> = {
 *   address: Address.tcp("::1", 0),
 *   handler: (d) => Effect.succeed(d.payload),
 *   concurrency: 8,
 *   socket: { receiveBufferSize: 4096 }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E, R> {
  /** Where to bind. Port 0 picks a free port; read the real one from the service. */
  readonly address: Datagram.UdpAddress
  /** Handles one datagram; what it returns is sent back to `datagram.from`. */
  readonly handler: (datagram: Datagram.Datagram) => Effect.Effect<Reply, E, R>
  /**
   * At most this many handlers run at once (default 64). When all are busy,
   * datagrams wait in the socket's receive queue (`socket.receiveBufferSize`),
   * then are dropped, counted in `dropped` and logged (one warning at most
   * every 10 seconds, with the number dropped).
   */
  readonly concurrency?: number | undefined
  /** Name used in log lines (default: the address). */
  readonly name?: string | undefined
  /** Socket options (receive queue size and strategy, kernel buffers, multicast, …). */
  readonly socket?: Datagram.BindOptions | undefined
}

/**
 * Counters of a running server.
 *
 * ```ts
 * const { dropped } = yield* Effect.flatMap(DatagramServer.DatagramServer, (s) => s.stats)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Datagrams handed to the handler. */
  readonly received: number
  /** Replies sent. */
  readonly replied: number
  /** Handlers (or their replies) that failed; each is logged. */
  readonly failed: number
  /** Datagrams dropped because the receive queue was full (logged: one warning at most every 10 seconds). */
  readonly dropped: number
}

/**
 * A running UDP server: its bound address and counters.
 *
 * ```ts
 * const server = yield* DatagramServer.DatagramServer
 * console.log(Address.format(server.address))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningDatagramServer {
  /** The address actually bound (port 0 resolved). */
  readonly address: Datagram.UdpAddress
  /** Current counters. */
  readonly stats: Effect.Effect<Stats>
}

/**
 * The service a {@link layer} provides.
 *
 * ```ts
 * const address = yield* Effect.map(DatagramServer.DatagramServer, (s) => s.address)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class DatagramServer
  extends Context.Service<DatagramServer, RunningDatagramServer>()("effect-wire/DatagramServer")
{}

const DEFAULT_CONCURRENCY = 64

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value
    return typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e)
  }
  return Cause.pretty(cause)
}

const replyBytes = (reply: Reply): Uint8Array | undefined =>
  reply instanceof Uint8Array ? reply : Option.isOption(reply) ? Option.getOrUndefined(reply) : undefined

/**
 * Start a UDP server in the current scope. Closing the scope interrupts the
 * handlers in flight and closes the socket.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* DatagramServer.make({
 *     address: Address.tcp("127.0.0.1", 0),
 *     handler: (d) => Effect.succeed(d.payload) // echo
 *   })
 *   yield* Console.log(`udp on ${Address.format(server.address)}`)
 *   return yield* Effect.never
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E, R>(
  options: Options<E, R>
): Effect.Effect<RunningDatagramServer, NetError.ListenError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY
    const bad = Check.positiveInt(concurrency)
    if (bad !== undefined) return yield* Effect.die(Check.defect("DatagramServer", "concurrency", bad))
    const socket = yield* Datagram.bind(options.address, options.socket)
    const name = options.name ?? Address.format(socket.address)
    const counters = { received: 0, replied: 0, failed: 0 }

    // A full receive queue drops datagrams in Node's callbacks: say so, at most every 10 s.
    const queue = queueOf(socket)
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    let droppedAtWarning = 0
    const drops = new LimitWarning(
      yield* Clock.clockWith(Effect.succeed),
      (since) => {
        const dropped = queue.dropped - droppedAtWarning
        droppedAtWarning = queue.dropped
        return `${name}: the receive queue is full (socket.receiveBufferSize: ${queue.capacity} datagrams) ` +
          `while all ${concurrency} handlers are busy (concurrency): ${dropped} datagram${dropped === 1 ? "" : "s"} ` +
          `dropped ${since}. ` +
          "Raise concurrency if the handlers wait on I/O, or socket.receiveBufferSize to absorb bursts. " +
          RATE_NOTE
      },
      (message) => void runFork(toStderr(Effect.annotateLogs(Effect.logWarning(message), { server: name })))
    )
    queue.onDrop = () => drops.hit()

    const logFailure = (what: string, peer: Datagram.UdpAddress, cause: Cause.Cause<unknown>) =>
      Effect.suspend(() => {
        counters.failed++
        return Effect.logWarning(`${name}: ${what} ${Address.format(peer)} failed: ${describeCause(cause)}`).pipe(
          Effect.annotateLogs({ server: name, peer: Address.format(peer) }),
          toStderr
        )
      })

    const handle = (datagram: Datagram.Datagram): Effect.Effect<void, never, R> =>
      Effect.suspend(() => {
        counters.received++
        return options.handler(datagram)
      }).pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.failCause(cause)
            : Effect.as(logFailure("handler for a datagram from", datagram.from, cause), undefined)
        ),
        Effect.flatMap((reply) => {
          const bytes = replyBytes(reply)
          if (bytes === undefined) return Effect.void
          return socket.send(bytes, datagram.from).pipe(
            Effect.matchCauseEffect({
              onSuccess: () => Effect.sync(() => void counters.replied++),
              onFailure: (cause) => logFailure("reply to", datagram.from, cause)
            })
          )
        }),
        // An interruption that is the handler's own business ends only its datagram.
        Effect.catchCause(() => Effect.void)
      )

    // One fiber per datagram, under a semaphore taken before the next pull:
    // with every handler busy the server stops reading, and the receive
    // queue drops and counts. (Stream.mapEffect with concurrency costs
    // several times more per datagram.)
    const permits = yield* Semaphore.make(concurrency)
    const handlers = yield* FiberGroup.make<R>()
    const dispatch = (datagram: Datagram.Datagram) =>
      Effect.andThen(
        permits.take(1),
        Effect.sync(() => {
          handlers.run(Effect.ensuring(handle(datagram), permits.release(1)))
        })
      )
    const serve = Stream.runForEach(socket.reads, dispatch).pipe(
      Effect.as(false),
      // A read error (rare on an unconnected socket) is logged; the socket
      // stays open and reading resumes where it stopped.
      Effect.catch((error) =>
        Effect.logWarning(`${name}: receiving failed: ${error.message}`).pipe(
          Effect.annotateLogs({ server: name }),
          toStderr,
          Effect.as(true)
        )
      )
    )
    yield* Effect.forkScoped(Effect.repeat(serve, { while: (again) => again }))

    return {
      address: socket.address,
      stats: Effect.map(socket.dropped, (dropped) => ({ ...counters, dropped }))
    }
  })

/**
 * A UDP server as a Layer providing the {@link DatagramServer} service.
 * Building it binds; releasing it stops the handlers and closes the socket.
 *
 * ```ts
 * const EchoLive = DatagramServer.layer({
 *   address: Address.tcp("127.0.0.1", 5300),
 *   handler: (d) => Effect.succeed(d.payload),
 *   concurrency: 16
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(options: Options<E, R>): Layer.Layer<DatagramServer, NetError.ListenError, R> =>
  Layer.effect(DatagramServer, make(options))

/**
 * {@link layer} bound to 127.0.0.1 on a free port, for tests: read the
 * port from the service.
 *
 * ```ts
 * const TestLive = DatagramServer.layerTest({ handler: (d) => Effect.succeed(d.payload) })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = <E, R>(
  options: Omit<Options<E, R>, "address">
): Layer.Layer<DatagramServer, NetError.ListenError, R> =>
  layer({ ...options, address: Address.tcp("127.0.0.1", 0) })

/**
 * No reply came from `address` after `attempts` tries, each waiting
 * `timeout`. UDP loses datagrams silently, so a lost datagram and a server
 * that is not running look the same.
 *
 * ```ts
 * DatagramServer.request(query, server).pipe(
 *   Effect.catchTag("RequestTimeout", (e) => Console.error(e.message))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class RequestTimeout extends Data.TaggedError("RequestTimeout")<{
  readonly address: Datagram.UdpAddress
  readonly attempts: number
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `no reply from ${Address.format(this.address)} after ${this.attempts} attempt(s) of ${
      Duration.format(this.timeout)
    } each: is a server running there, and is the network dropping datagrams?`
  }
}

/**
 * What a request can fail with: no reply in time, or the socket's own errors
 * (`ConnectionRefused` when the peer's host answers that nothing listens).
 *
 * ```ts
 * const answer: Effect.Effect<Uint8Array, DatagramServer.RequestError> = DatagramServer.request(query, server)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type RequestError =
  | RequestTimeout
  | NetError.SendError
  | NetError.ReadError
  | NetError.ConnectError
  | NetError.ListenError

/**
 * How a request waits and retries.
 *
 * ```ts
 * const options: DatagramServer.RequestOptions = {
 *   timeout: "300 millis",
 *   schedule: Schedule.max([Schedule.spaced("1 second"), Schedule.recurs(10)])
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestOptions {
  /** How long each attempt waits for the reply (default 1 second; above 0 and finite, or a defect). */
  readonly timeout?: Duration.Input | undefined
  /**
   * When to try again after a timeout: every recurrence is one more attempt,
   * after the schedule's delay (default: 3 retries, 100 ms, 200 ms, 400 ms
   * apart). Only timeouts are retried; a reply that comes in the meantime
   * still answers the request.
   */
  readonly schedule?: Schedule.Schedule<unknown, RequestTimeout> | undefined
}

/**
 * Options of {@link client} and {@link request}.
 *
 * ```ts
 * DatagramServer.client(server, { timeout: "200 millis", socket: { receiveBufferSize: 16 } })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions extends RequestOptions {
  /** Options of the client's socket. */
  readonly socket?: Datagram.ConnectOptions | undefined
  /**
   * Whether `reply` answers `request`: replies that do not match are
   * discarded and the wait goes on. Give it when the protocol lets a reply
   * be told from the reply to another request (a request id it echoes; for
   * an echo server, equal bytes). With it the client keeps one socket; it
   * must reject the reply to any earlier request, or a late one can still
   * answer a later request.
   */
  readonly match?: ((request: Uint8Array, reply: Uint8Array) => boolean) | undefined
}

/**
 * A request/reply client bound to one server. Requests on one client run
 * one at a time, and a late reply to an earlier request never answers a
 * later one:
 *
 * - With `match` (see {@link ClientOptions}), replies are correlated with
 *   their requests: any that does not match is discarded.
 * - Without it (UDP replies carry no request id, and our echo and upper
 *   servers have none), the reply is the first datagram from the server
 *   after the request was sent, and the client keeps its socket only while
 *   every datagram it sent has been answered. After a request that may
 *   still be answered (it was retried, timed out, failed or was
 *   interrupted), the next request goes out from a fresh socket, with a new
 *   source port: the late replies go to the closed one. Replies still queued
 *   when a request starts are discarded.
 *
 * What remains without `match`: a reply the network duplicates, arriving
 * after the next request was sent, is taken for its reply; a client bound to
 * a fixed local port (`socket.localAddress`) gets the same port back, and
 * with it the late replies; and the kernel may, rarely, hand out a port it
 * used a moment before. Give `match` when the protocol allows it.
 *
 * ```ts
 * // A protocol whose replies start with the request's 4-byte id.
 * const rpc = yield* DatagramServer.client(server, {
 *   match: (request, reply) => reply.length >= 4 && Buffer.compare(request.subarray(0, 4), reply.subarray(0, 4)) === 0
 * })
 * const reply = yield* rpc.request(withId(nextId++, query))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DatagramClient {
  /** The server, its host name resolved. */
  readonly remoteAddress: Datagram.UdpAddress
  /** Send `payload` and wait for the reply, retrying on timeout. */
  readonly request: (payload: Uint8Array, options?: RequestOptions) => Effect.Effect<Uint8Array, RequestError>
}

const DEFAULT_TIMEOUT = Duration.seconds(1)
const DEFAULT_SCHEDULE: Schedule.Schedule<unknown, RequestTimeout> = Schedule.max([
  Schedule.exponential("100 millis"),
  Schedule.recurs(3)
])

/** One connected socket of a client, in a scope of its own so that it can be replaced. */
interface ClientSocket {
  readonly socket: Datagram.ConnectedDatagramSocket
  readonly queue: ReceiveQueue
  readonly scope: Scope.Closeable
}

/**
 * The server's own log lines go to stderr (Effect's built-in loggers honour
 * `LogToStderr`), like `Server`'s: a program's stdout stays its own.
 */
const toStderr = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(self, References.LogToStderr, true)

/**
 * A request's `timeout` is above 0 and finite: UDP loses datagrams without a
 * word, so a request that waited forever would hang on the first loss.
 */
const requestTimeoutProblem = (timeout: Duration.Input | undefined): Cause.IllegalArgumentError | undefined => {
  if (timeout === undefined) return undefined
  const bad = Check.duration(timeout, { never: false, finite: "a lost datagram would leave the request waiting forever" })
  return bad === undefined ? undefined : Check.defect("DatagramServer.client", "timeout", bad)
}

/**
 * A {@link DatagramClient} on its own connected socket, closed with the scope.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const upper = yield* DatagramServer.client(Address.tcp("127.0.0.1", 5300), { timeout: "200 millis" })
 *   return yield* upper.request(new TextEncoder().encode("hello")) // "HELLO"
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const client = (
  to: Datagram.UdpAddress,
  options: ClientOptions = {}
): Effect.Effect<DatagramClient, NetError.ConnectError | NetError.ListenError, Scope.Scope> =>
  Effect.gen(function*() {
    const badTimeout = requestTimeoutProblem(options.timeout)
    if (badTimeout !== undefined) return yield* Effect.die(badTimeout)
    const parent = yield* Effect.scope
    const open = (address: Datagram.UdpAddress): Effect.Effect<ClientSocket, NetError.ConnectError | NetError.ListenError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const scope = yield* Scope.fork(parent, "sequential")
          const socket = yield* restore(Scope.provide(Datagram.connect(address, options.socket), scope)).pipe(
            Effect.onError(() => Scope.close(scope, Exit.void))
          )
          return { socket, queue: queueOf(socket), scope }
        })
      )
    let current = yield* open(to)
    // The server as first resolved: a replacement socket talks to the same peer.
    const remoteAddress = current.socket.remoteAddress
    // Some datagram sent from `current` may still be answered: the next request needs a fresh socket.
    let outstanding = false
    const match = options.match
    const lock = yield* Semaphore.make(1)
    const closed = new NetError.BrokenPipe({ address: to, detail: "the client's socket closed while waiting for a reply" })

    const fresh = Effect.suspend(() => {
      if (!outstanding || match !== undefined) return Effect.succeed(current)
      return Scope.close(current.scope, Exit.void).pipe(
        Effect.andThen(open(remoteAddress)),
        Effect.tap((next) =>
          Effect.sync(() => {
            current = next
            outstanding = false
          })
        )
      )
    })

    const request = (payload: Uint8Array, overrides: RequestOptions = {}) =>
      Effect.suspend(() => {
        const badOverride = requestTimeoutProblem(overrides.timeout)
        if (badOverride !== undefined) return Effect.die(badOverride)
        const timeout = Duration.fromInputUnsafe(overrides.timeout ?? options.timeout ?? DEFAULT_TIMEOUT)
        const schedule = overrides.schedule ?? options.schedule ?? DEFAULT_SCHEDULE
        let attempts = 0
        let answered = false
        const answers = (reply: Datagram.Datagram) => match === undefined || match(payload, reply.payload)
        return Effect.flatMap(fresh, ({ queue, socket }) => {
          const poll = (): Datagram.Datagram | undefined => {
            for (;;) {
              const reply = queue.poll()
              if (reply === undefined || answers(reply)) return reply
            }
          }
          const receive: Effect.Effect<Uint8Array, Exclude<RequestError, RequestTimeout>> = Effect.flatMap(
            queue.receive,
            Option.match({
              onNone: () => Effect.fail(closed),
              onSome: (reply) => answers(reply) ? Effect.succeed(reply.payload) : receive
            })
          )
          // Failures other than a timeout travel in the success channel, so
          // the schedule sees (and retries) nothing but timeouts.
          const attempt: Effect.Effect<Result.Result<Uint8Array, Exclude<RequestError, RequestTimeout>>, RequestTimeout> =
            Effect.suspend(() => {
              const early = poll()
              if (early !== undefined) return Effect.succeed(Result.succeed(early.payload))
              attempts++
              return socket.send(payload).pipe(
                Effect.andThen(receive),
                Effect.result,
                Effect.timeoutOrElse({
                  duration: timeout,
                  orElse: () => Effect.fail(new RequestTimeout({ address: socket.remoteAddress, attempts, timeout }))
                })
              )
            })
          return Effect.sync(() => queue.clear()).pipe(
            Effect.andThen(Effect.retry(attempt, schedule)),
            Effect.flatMap(Effect.fromResult),
            Effect.tap(() => Effect.sync(() => void (answered = true)))
          )
        }).pipe(
          // One reply was taken: every attempt but one may still be answered.
          Effect.ensuring(Effect.sync(() => {
            if (attempts > (answered ? 1 : 0)) outstanding = true
          }))
        )
      }).pipe(lock.withPermits(1))

    return { remoteAddress, request }
  })

/**
 * Send one request to `to` from a fresh socket and wait for the reply,
 * retrying on timeout (see {@link RequestOptions}); fails with
 * {@link RequestTimeout} after the last attempt.
 *
 * ```ts
 * const reply = yield* DatagramServer.request(new TextEncoder().encode("ping"), Address.tcp("127.0.0.1", 5300), {
 *   timeout: "250 millis",
 *   schedule: Schedule.max([Schedule.spaced("50 millis"), Schedule.recurs(5)])
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const request = (
  payload: Uint8Array,
  to: Datagram.UdpAddress,
  options: ClientOptions = {}
): Effect.Effect<Uint8Array, RequestError> =>
  Effect.scoped(Effect.flatMap(client(to, options), (c) => c.request(payload)))
