/**
 * The options of node:net sockets and listeners: their defaults, their
 * checks (an invalid option is a defect whose message names it), and the
 * parsed form shared by every socket of a listener.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Socket from "../Socket.js"

const DEFAULT_READ_BUFFER = 64 * 1024
const DEFAULT_KEEPALIVE_MS = 60_000
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000
const DEFAULT_ACCEPT_QUEUE = 1024
const DEFAULT_BACKLOG = 511

/** Socket options after defaults and validation; shared by every socket of a listener. */
export interface SocketConfig {
  readonly noDelay: boolean
  /** 0: off; otherwise the initial delay in ms (Node's 0 means "OS default"). */
  readonly keepAlive: number | false
  /** 0: no idle timeout. */
  readonly idleTimeoutMs: number
  readonly readBufferSize: number
  readonly closeTimeoutMs: number
}

/** A listener's options after defaults and validation. */
export interface ListenConfig {
  /** What every accepted socket gets. */
  readonly socket: SocketConfig
  readonly acceptQueueSize: number
  readonly backlog: number
}

interface CommonOptions {
  readonly noDelay?: boolean | undefined
  readonly keepAlive?: boolean | Duration.Input | undefined
  readonly idleTimeout?: Duration.Input | undefined
  readonly readBufferSize?: number | undefined
  readonly closeTimeout?: Duration.Input | undefined
}

class InvalidOption {
  constructor(readonly message: string) {}
}

const positiveInt = (name: string, value: number | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidOption(`${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}

/** Milliseconds of a duration option; `undefined` for "not set", 0 for zero or infinite. */
export const millis = (name: string, value: Duration.Input | undefined): number | undefined => {
  if (value === undefined) return undefined
  const decoded = Duration.fromInput(value)
  if (Option.isNone(decoded)) throw new InvalidOption(`${name} is not a duration: ${String(value)}`)
  const duration = decoded.value
  if (!Duration.isFinite(duration)) return 0
  return Math.max(0, Math.ceil(Duration.toMillis(duration)))
}

const closeTimeout = (value: Duration.Input | undefined): number => {
  if (value === undefined) return DEFAULT_CLOSE_TIMEOUT_MS
  const ms = millis("closeTimeout", value)!
  if (ms === 0 && !Duration.isZero(Duration.fromInputUnsafe(value))) {
    throw new InvalidOption("closeTimeout must be finite: close must not wait forever on a peer that does not read")
  }
  return ms
}

/** The options every socket has, parsed (throws `InvalidOption`: call it inside {@link withOptions}). */
export const socketConfig = (options: CommonOptions): SocketConfig => {
  const keepAlive = options.keepAlive
  return {
    noDelay: options.noDelay ?? true,
    keepAlive: keepAlive === undefined || keepAlive === false
      ? false
      : keepAlive === true
      ? DEFAULT_KEEPALIVE_MS
      : millis("keepAlive", keepAlive)!,
    idleTimeoutMs: millis("idleTimeout", options.idleTimeout) ?? 0,
    readBufferSize: positiveInt("readBufferSize", options.readBufferSize, DEFAULT_READ_BUFFER),
    closeTimeoutMs: closeTimeout(options.closeTimeout)
  }
}

/** A listener's options, parsed (throws `InvalidOption`: call it inside {@link withOptions}). */
export const listenConfig = (options: Socket.ListenOptions): ListenConfig => ({
  socket: socketConfig(options),
  acceptQueueSize: positiveInt("acceptQueueSize", options.acceptQueueSize, DEFAULT_ACCEPT_QUEUE),
  backlog: positiveInt("backlog", options.backlog, DEFAULT_BACKLOG)
})

/** Invalid options are programming errors: a defect whose message names the option. */
export const withOptions = <A, E, R>(build: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    try {
      return build()
    } catch (e) {
      if (e instanceof InvalidOption) return Effect.die(new Error(e.message))
      throw e
    }
  })
