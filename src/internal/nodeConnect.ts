/**
 * `Socket.connect` on node:net: open a TCP or Unix connection in its own
 * scope, bounded by the connect timeout, with typed errors; with `tls`, a
 * node:tls connection whose handshake (internal/nodeTls.ts) completes first.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Net from "node:net"
import type * as Address from "../Address.js"
import * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"
import { errnoOf, NodeSocket, type Raw } from "./nodeSocket.js"
import { millis, socketConfig, withOptions } from "./nodeSocketOptions.js"
import * as Options from "./options.js"
import { checkSocketOwner, unixOwnerReason } from "./unixSocketFile.js"
import { clientConfig, clientHandshake, connectRaw } from "./nodeTls.js"
import { clientMeter } from "./metricsClient.js"
import { clientSpan, SPAN_NAMES, tracerOf } from "./tracing.js"
import { identity } from "effect/Function"
import { proxyHeaderBytes, tlsAfterHeader } from "./proxyConnect.js"

/**
 * A Unix path without a socket file means nobody listens there: the same
 * situation as ECONNREFUSED, so `catchTag("ConnectionRefused")` retry loops
 * also cover a server that has not created its socket yet.
 */
const connectError = (failure: unknown, address: Address.Address): NetError.ConnectError => {
  if (address._tag === "UnixAddress" && errnoOf(failure) === "ENOENT") {
    return new NetError.ConnectionRefused({
      address,
      code: "ENOENT",
      syscall: "connect",
      cause: failure,
      detail: "no socket file exists at this path"
    })
  }
  return NetError.fromSystemError(failure, { phase: "connect", address })
}

const awaitConnect = (socket: NodeSocket, address: Address.Address): Effect.Effect<void, NetError.ConnectError> =>
  Effect.callback((resume) => {
    const raw = socket.raw
    const cleanup = () => {
      raw.off("connect", onConnect)
      raw.off("close", onClosed)
    }
    const onConnect = () => {
      cleanup()
      socket.established(undefined)
      resume(Effect.void)
    }
    const onClosed = () => {
      cleanup()
      resume(Effect.fail(connectError(socket.failure, address)))
    }
    raw.once("connect", onConnect)
    raw.once("close", onClosed)
    return Effect.sync(cleanup)
  })

/** @internal */
export const connect = (
  address: Address.Address,
  options: Socket.ConnectOptions = {}
): Effect.Effect<Socket.Socket, NetError.ConnectError, Scope.Scope> =>
  withOptions(() => {
    const config = socketConfig(options)
    const tls = options.tls === undefined ? undefined : clientConfig("Socket", options.tls, address)
    const timeoutMs = millis("timeout", options.timeout) ?? 0
    const unixOwner = options.unixOwner ?? "any"
    const ownerReason = unixOwnerReason(unixOwner)
    if (ownerReason !== undefined) throw Options.defect("Socket", "unixOwner", ownerReason)
    const proxyHeader = proxyHeaderBytes(options)
    return traced(address, Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        // Before anything is sent: a socket file someone else put there is not our server.
        if (address._tag === "UnixAddress" && unixOwner !== "any") {
          const untrusted = checkSocketOwner(address, unixOwner)
          if (untrusted !== undefined) return yield* Effect.fail(untrusted)
        }
        // A scope of its own, so a failed attempt leaves nothing behind in the caller's scope.
        const scope = yield* Scope.fork(yield* Effect.scope, "sequential")
        const meter = clientMeter(yield* Effect.context<never>(), address)
        const isTcp = address._tag === "TcpAddress"
        const raw: Raw = tls !== undefined
          ? (proxyHeader !== undefined ? tlsAfterHeader(address, tls.node, proxyHeader) : connectRaw(address, tls))
          : isTcp
          ? Net.createConnection({ host: address.host, port: address.port, allowHalfOpen: true })
          : Net.createConnection({ path: address.path, allowHalfOpen: true })
        // Paused until the first pull: nothing is read that nobody asked for.
        raw.pause()
        // Node sends it first, once connected: before any write of ours.
        if (proxyHeader !== undefined && tls === undefined) raw.write(proxyHeader)
        const socket = new NodeSocket(raw, config, isTcp, address, undefined)
        if (meter !== undefined) yield* Scope.addFinalizer(scope, meter.closed(socket))
        yield* Scope.addFinalizer(scope, socket.close)
        const attempt = timeoutMs === 0 ? awaitConnect(socket, address) : awaitConnect(socket, address).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(timeoutMs),
            orElse: () =>
              Effect.fail(
                new NetError.ConnectTimeout({
                  address,
                  detail: `no connection within ${Duration.format(Duration.millis(timeoutMs))}`
                })
              )
          })
        )
        yield* restore(attempt).pipe(meter?.attempt ?? identity, Effect.onError(() => Scope.close(scope, Exit.void)))
        // TLS: the handshake has a time limit of its own, from the TCP connect on.
        if (tls !== undefined) {
          yield* restore(tracedHandshake(address, clientHandshake(socket, tls, address))).pipe(
            meter?.attempt ?? identity,
            Effect.onError(() => Scope.close(scope, Exit.void))
          )
        }
        meter?.connected()
        return socket as Socket.Socket
      })
    ))
  })

/** A connect as a client span, when spans are made (internal/tracing.ts). */
const traced = <A, E, R>(address: Address.Address, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Effect.context<never>(),
    (context) => tracerOf(context) === undefined ? effect : clientSpan(SPAN_NAMES.connect, address, effect)
  )

const tracedHandshake = <A, E, R>(address: Address.Address, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Effect.context<never>(),
    (context) => tracerOf(context) === undefined ? effect : clientSpan(SPAN_NAMES.handshake, address, effect)
  )
