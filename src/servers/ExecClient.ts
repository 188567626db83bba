/**
 * The exec client: one connection on which calls may overlap, each request
 * sent as it comes (pipelined) and each answer, read with
 * `ExecWire.responseCodec`, handed to its caller in order; with the errors
 * between client and server.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as Address from "../Address.js"
import * as Options from "../internal/options.js"
import type { ConnectError, ReadError, WriteError } from "../NetError.js"
import * as Socket from "../Socket.js"
import type * as Tls from "../Tls.js"
import type { ExecError, ExecRequest, ExecResult, ResponseLimits } from "./ExecWire.js"
import {
  checkRequest,
  encodeRequest,
  failureResult,
  MalformedResponse,
  malformedResponse,
  responseCodec
} from "./ExecWire.js"

/**
 * The connection ended before every request was answered: the server closed
 * it (shutting down, idle, or after refusing an oversized frame), it ended in
 * the middle of a response, or this client reset it after an interrupted or
 * timed-out request. `reason` says which. The client cannot be used again.
 *
 * ```ts
 * client.run(["uptime"]).pipe(Effect.catchTag("ExecConnectionClosed", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ExecConnectionClosed extends Data.TaggedError("ExecConnectionClosed")<{
  readonly address: Address.Address
  readonly reason: string
}> {
  override get message(): string {
    return `the connection to the exec server at ${Address.format(this.address)} is closed: ${this.reason}`
  }
}

/**
 * No answer within the client's `timeout`. The client reset the connection,
 * so the server killed what it was running for it; make a new client to retry.
 *
 * ```ts
 * client.run(["make"]).pipe(Effect.catchTag("ResponseTimeout", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ResponseTimeout extends Data.TaggedError("ResponseTimeout")<{
  readonly address: Address.Address
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `no answer from the exec server at ${Address.format(this.address)} within ${
      Duration.format(this.timeout)
    }; the connection was reset so the server stops the command; raise the client's timeout or shorten the command`
  }
}

/**
 * What can go wrong between the client and the server, as opposed to the
 * server's refusals (`ExecError`).
 *
 * ```ts
 * const retryable = (e: Exec.TransportError) => e._tag === "ExecConnectionClosed" || e._tag === "ConnectionReset"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TransportError = ReadError | WriteError | MalformedResponse | ExecConnectionClosed | ResponseTimeout

/**
 * Everything {@link ExecClient.run} can fail with: a refusal of the server
 * (with the server's tag, e.g. `CommandNotAllowed`) or a transport error.
 *
 * ```ts
 * client.run(["ls"]).pipe(Effect.catchTags({ CommandNotAllowed: () => Effect.succeed(undefined) }))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ClientError = ExecError | TransportError

/**
 * Options of {@link client} and {@link clientFromSocket}.
 *
 * - `token`: sent with every request that has none of its own.
 * - `timeout` (none): the longest a connect and each call (`run`, `runAll`,
 *   `request`) may take; past it the call fails with {@link ResponseTimeout}
 *   (or `ConnectTimeout`) and the connection is reset. It is above 0, or
 *   `Duration.infinity` for none (the connect then waits as long as the OS
 *   lets it); 0 is refused, never read as "no limit".
 * - `maxHeaderBytes` (64 KiB) and `maxBodyBytes` (64 MiB, at most 4 GiB): the
 *   largest response header and stdout + stderr the client accepts; a larger
 *   one is a `MalformedResponse`. What the client buffers stays within them.
 * - `unixOwner` (`"self"`): whose Unix socket file {@link client} connects
 *   to. By default only one of this user or root, in directories nobody
 *   else can write to: a file another user put at the path is refused with
 *   `UntrustedSocketOwner` before the token is sent. A list of uids trusts
 *   those users (and root), `"any"` everyone (see `Socket.ConnectOptions`).
 * - `tls` (none): speak TLS to a server started with `tls` (see
 *   `Tls.ClientOptions`): the server's certificate and host name are checked
 *   before the first request (and its token) is sent, and `identity` presents
 *   a client certificate to a server that requires one. A failed handshake
 *   is a typed `Tls.HandshakeError` of {@link client}. Only {@link client}
 *   takes it: {@link clientFromSocket} uses the socket as it is.
 *
 * Client options are given in code, like `Socket`'s, so a bad `timeout` is a
 * defect (Effect's `IllegalArgumentError`, "Exec client: timeout must be
 * above 0, got 0 …"), not a typed error like the server's `InvalidExecOptions`
 * (whose options often come from configuration).
 *
 * ```ts
 * const client = yield* Exec.client(address, { token: Redacted.make("s3cret"), timeout: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions extends ResponseLimits {
  /** Sent with every request that carries no token of its own. */
  readonly token?: string | Redacted.Redacted<string> | undefined
  /** The longest a connect and each call may take (default, or `Duration.infinity`: no limit; 0 is refused). */
  readonly timeout?: Duration.Input | undefined
  /** Whose Unix socket file to connect to (default `"self"`: this user's or root's). */
  readonly unixOwner?: "any" | "self" | ReadonlyArray<number> | undefined
  /** Speak TLS (server certificate checked, optional client certificate); {@link client} only. */
  readonly tls?: Tls.ClientOptions | undefined
}

/** The client's `timeout`, `undefined` for none; a bad one is the defect of an option given in code. */
const timeoutOf = (options: ClientOptions | undefined): Effect.Effect<Duration.Duration | undefined> =>
  Effect.suspend(() => {
    if (options?.timeout === undefined) return Effect.succeed(undefined)
    const reason = Options.duration(options.timeout, { never: true })
    if (reason !== undefined) return Effect.die(Options.defect("Exec client", "timeout", reason))
    const timeout = Duration.fromInputUnsafe(options.timeout)
    return Effect.succeed(Duration.isFinite(timeout) ? timeout : undefined)
  })

/**
 * A client on one connection. Calls may overlap, from one fiber (`runAll`)
 * or several: requests are sent as they come and pipelined, and each gets
 * its own answer (the server answers in order).
 *
 * - `run(argv)`: the result of a command that ran, whatever its exit code
 *   (exit 1 is a success with `header.exitCode === 1`); a refusal fails with
 *   the server's error (`CommandNotAllowed`, `Unauthorized`, `Timeout`, …).
 * - `runAll(argvs)`: sends every request in one write, then collects the
 *   answers in order, each a refusal or a result; only transport errors fail it.
 * - `request(request)`: the raw response, refusals included (a timed-out
 *   command's partial output is in it).
 *
 * Interrupting a call whose request was sent resets the connection, so the
 * server kills the command (and anything else pipelined on this connection).
 * So does closing the client's scope while answers are outstanding.
 *
 * ```ts
 * const result = yield* client.run(["uname", "-s"])
 * const [a, b] = yield* client.runAll([["date"], ["uptime"]])
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecClient {
  /** The server's address. */
  readonly address: Address.Address
  /** Run one command: its result, or the server's refusal as a typed error. */
  readonly run: (argv: ExecRequest["argv"]) => Effect.Effect<ExecResult, ClientError>
  /** Send all in one write, then collect the answers in order. */
  readonly runAll: (
    argvs: ReadonlyArray<ExecRequest["argv"]>
  ) => Effect.Effect<Array<Result.Result<ExecResult, ExecError>>, TransportError>
  /** One request, answered with the raw response (refusals in `header.error`). */
  readonly request: (request: ExecRequest) => Effect.Effect<ExecResult, TransportError>
}

type Waiter = Deferred.Deferred<ExecResult, TransportError>

/**
 * An exec client over a socket you already have (e.g. one end of
 * `MemorySocket.makePair`). The client reads the socket from a fiber of the
 * current scope; closing the scope with answers outstanding resets it.
 *
 * ```ts
 * const socket = yield* Socket.connect(address)
 * const client = yield* Exec.clientFromSocket(socket, { token: "s3cret" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientFromSocket = (
  socket: Socket.Socket,
  options?: Omit<ClientOptions, "tls">
): Effect.Effect<ExecClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const address = socket.remoteAddress
    const token = options?.token === undefined
      ? undefined
      : Redacted.isRedacted(options.token)
      ? Redacted.value(options.token)
      : options.token
    const timeout = yield* timeoutOf(options)
    // What the decoder holds stays within the limits (plus one read): a large
    // response costs one copy, none when it arrives in one read.
    const decoder = responseCodec({ maxHeaderBytes: options?.maxHeaderBytes, maxBodyBytes: options?.maxBodyBytes })
      .decoder()
    const results: Array<ExecResult> = []
    // Answers come in request order: the head of `waiting` gets the next one.
    const waiting: Array<Waiter> = []
    let broken: TransportError | undefined
    const sendLock = yield* Semaphore.make(1)

    const breakWith = (error: TransportError): void => {
      broken ??= error
      for (const waiter of waiting.splice(0)) Deferred.doneUnsafe(waiter, Exit.fail(error))
    }

    // Hands every response the bytes complete to its waiter, then reports the decoder's error, if any.
    const onBytes = (bytes: Uint8Array): Effect.Effect<void, MalformedResponse> => {
      const error = decoder.push(bytes, results)
      for (let i = 0; i < results.length; i++) {
        const waiter = waiting.shift()
        if (waiter === undefined) {
          results.length = 0
          return Effect.fail(new MalformedResponse({ reason: "a response arrived for no request" }))
        }
        Deferred.doneUnsafe(waiter, Exit.succeed(results[i]!))
      }
      results.length = 0
      return error === undefined ? Effect.void : Effect.fail(malformedResponse(error))
    }

    const closedReason = (): string => {
      const incomplete = decoder.end(results)
      return incomplete?._tag === "IncompleteFrame"
        ? `the server closed it in the middle of a response, after ${incomplete.remaining} bytes of it`
        : waiting.length > 0
        ? `the server closed it before answering ${waiting.length} request(s); it may be shutting ` +
          "down, idle-closing, or have refused an oversized request"
        : "the server closed it"
    }

    const reader = Stream.runForEach(socket.reads, onBytes).pipe(
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.sync(() => breakWith(error)).pipe(
            // A malformed stream cannot be resynchronised; a failed read means the socket is gone anyway.
            Effect.andThen(error._tag === "MalformedResponse" ? socket.reset : Effect.void)
          ),
        onSuccess: () =>
          Effect.sync(() => breakWith(new ExecConnectionClosed({ address, reason: closedReason() }))).pipe(
            // The server sends nothing more; ending our side lets it close at once.
            Effect.andThen(Effect.ignore(socket.end))
          )
      })
    )
    yield* Effect.forkScoped(reader)

    const abandon = (reason: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (broken !== undefined) return Effect.void
        return Effect.andThen(socket.reset, Effect.sync(() => breakWith(new ExecConnectionClosed({ address, reason }))))
      })
    const abandonInterrupted = abandon(
      "this client reset it to abandon an interrupted or timed-out request; make a new client"
    )

    // Added after the reader fork, so it runs before the reader is interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => waiting.length > 0 ? abandon("the client's scope was closed") : Effect.void).pipe(
        Effect.andThen(
          Effect.sync(() => breakWith(new ExecConnectionClosed({ address, reason: "the client's scope was closed" })))
        )
      )
    )

    const send = (requests: ReadonlyArray<ExecRequest>): Effect.Effect<Array<Waiter>, TransportError> =>
      sendLock.withPermits(1)(
        Effect.suspend(() => {
          if (broken !== undefined) return Effect.fail(broken)
          const waiters = requests.map(() => Deferred.makeUnsafe<ExecResult, TransportError>())
          waiting.push(...waiters)
          return socket.writeAll(requests.map(encodeRequest)).pipe(
            // A frame cut short by interruption would garble every later request.
            Effect.onInterrupt(() => abandonInterrupted),
            Effect.tapError((error) => Effect.sync(() => breakWith(error))),
            Effect.as(waiters)
          )
        })
      )

    const exchange = (requests: ReadonlyArray<ExecRequest>): Effect.Effect<Array<ExecResult>, TransportError> => {
      const exchanged = Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(send(requests)), (waiters) =>
          restore(Effect.forEach(waiters, (waiter) => Deferred.await(waiter))).pipe(
            Effect.onInterrupt(() => abandonInterrupted)
          ))
      )
      return timeout === undefined ? exchanged : Effect.timeoutOrElse(exchanged, {
        duration: timeout,
        orElse: () => Effect.fail(new ResponseTimeout({ address, timeout }))
      })
    }

    // The client sends nothing it knows to be bad: a request the server would refuse as BadRequest is answered here.
    const withToken = (request: ExecRequest) =>
      checkRequest(request.token === undefined && token !== undefined ? { ...request, token } : request)

    const request = (request: ExecRequest): Effect.Effect<ExecResult, TransportError> => {
      const checked = withToken(request)
      return Result.isFailure(checked)
        ? Effect.succeed(failureResult(checked.failure))
        : Effect.map(exchange([checked.success]), (results) => results[0]!)
    }

    const client: ExecClient = {
      address,
      request,
      run: (argv) =>
        Effect.flatMap(request({ argv }), (result) =>
          result.header.error === undefined ? Effect.succeed(result) : Effect.fail(result.header.error)),
      runAll: (argvs) =>
        Effect.suspend(() => {
          const checked = argvs.map((argv) => withToken({ argv }))
          const valid = checked.flatMap((c) => Result.isSuccess(c) ? [c.success] : [])
          return Effect.map(valid.length === 0 ? Effect.succeed([]) : exchange(valid), (results) => {
            let next = 0
            return checked.map((c): Result.Result<ExecResult, ExecError> => {
              if (Result.isFailure(c)) return Result.fail(c.failure)
              const result = results[next++]!
              return result.header.error === undefined ? Result.succeed(result) : Result.fail(result.header.error)
            })
          })
        })
    }
    return client
  })

/**
 * Connect to an exec server and make a client on the connection, closed with
 * the scope (see {@link ExecClient}). Its options are checked before it
 * connects (a bad one is a defect, see {@link ClientOptions}). A Unix socket
 * file of another user is refused (`UntrustedSocketOwner`) unless
 * `unixOwner` trusts them: the token would go to whoever put it there.
 *
 * ```ts
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const client = yield* Exec.client(Address.tcp("127.0.0.1", 9000), { token: "s3cret" })
 *   const result = yield* client.run(["uname", "-s"])
 *   return result.header.exitCode === 0 ? new TextDecoder().decode(result.stdout) : "failed"
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const client = (
  address: Address.Address,
  options?: ClientOptions
): Effect.Effect<ExecClient, ConnectError, Scope.Scope> =>
  Effect.flatMap(
    timeoutOf(options),
    (timeout) =>
      Effect.flatMap(
        Socket.connect(address, { timeout, unixOwner: options?.unixOwner ?? "self", tls: options?.tls }),
        (socket) => clientFromSocket(socket, options)
      )
  )
