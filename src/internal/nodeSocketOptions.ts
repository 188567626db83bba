/**
 * The options of node:net sockets and listeners: their defaults, their
 * checks (by `internal/options`: an invalid option is a defect, Effect's
 * `IllegalArgumentError`, whose message names it), and the parsed form shared
 * by every socket of a listener.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Socket from "../Socket.js"
import * as Options from "./options.js"

const DEFAULT_READ_BUFFER = 64 * 1024
const DEFAULT_KEEPALIVE_MS = 60_000
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000
const DEFAULT_ACCEPT_QUEUE = 1024
const DEFAULT_BACKLOG = 511
/** Only the listener's user (and root) may connect to its Unix socket file, whatever the umask. */
const DEFAULT_UNIX_MODE = 0o600

/** Socket options after defaults and validation; shared by every socket of a listener. */
export interface SocketConfig {
  readonly noDelay: boolean
  /** false: off; otherwise the initial delay in ms, above 0. */
  readonly keepAlive: number | false
  /** 0: no idle timeout (`Duration.infinity`); a 0 given is refused. */
  readonly idleTimeoutMs: number
  /** 0: no write timeout (`Duration.infinity`, the default); a 0 given is refused. */
  readonly writeTimeoutMs: number
  readonly readBufferSize: number
  readonly closeTimeoutMs: number
}

/** A listener's options after defaults and validation. */
export interface ListenConfig {
  /** What every accepted socket gets. */
  readonly socket: SocketConfig
  readonly acceptQueueSize: number
  readonly backlog: number
  /** The permission bits of a Unix listener's socket file. */
  readonly unixMode: number
}

interface CommonOptions {
  readonly noDelay?: boolean | undefined
  readonly keepAlive?: boolean | Duration.Input | undefined
  readonly idleTimeout?: Duration.Input | undefined
  readonly writeTimeout?: Duration.Input | undefined
  readonly readBufferSize?: number | undefined
  readonly closeTimeout?: Duration.Input | undefined
}

/** Throws the option's defect (call it inside {@link withOptions}). */
const check = (name: string, reason: Options.Reason): void => {
  if (reason !== undefined) throw Options.defect("Socket", name, reason)
}

const positiveInt = (name: string, value: number | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  check(name, Options.positiveInt(value))
  return value
}

/** Milliseconds of a time limit that may be lifted: `undefined` when not set, 0 for `Duration.infinity` (none). */
export const millis = (name: string, value: Duration.Input | undefined): number | undefined => {
  if (value === undefined) return undefined
  check(name, Options.duration(value, { never: true }))
  const duration = Duration.fromInputUnsafe(value)
  return Duration.isFinite(duration) ? Math.ceil(Duration.toMillis(duration)) : 0
}

const closeTimeout = (value: Duration.Input | undefined): number => {
  if (value === undefined) return DEFAULT_CLOSE_TIMEOUT_MS
  check(
    "closeTimeout",
    Options.duration(value, { never: false, finite: "close must not wait forever on a peer that does not read" })
  )
  return Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(value)))
}

/**
 * A listener's `net.Server` (or `tls.Server`) options that set TCP_NODELAY and
 * keep-alive on each accepted handle as node:net accepts it: the same socket
 * options as `setNoDelay`/`setKeepAlive` per socket, without their cost (on a
 * TLS socket each such call goes through the TLS wrapper, a measurable part of
 * a handshake's CPU).
 */
export const acceptOptions = (config: SocketConfig): {
  readonly noDelay: boolean
  readonly keepAlive: boolean
  readonly keepAliveInitialDelay: number
} => ({
  noDelay: config.noDelay,
  keepAlive: config.keepAlive !== false,
  keepAliveInitialDelay: config.keepAlive === false ? 0 : config.keepAlive
})

/** The options every socket has, parsed (throws the defect of an invalid one: call it inside {@link withOptions}). */
export const socketConfig = (options: CommonOptions): SocketConfig => {
  const keepAlive = options.keepAlive
  return {
    noDelay: options.noDelay ?? true,
    keepAlive: keepAlive === undefined || keepAlive === false
      ? false
      : keepAlive === true
      ? DEFAULT_KEEPALIVE_MS
      // Duration.infinity: no probe ever, as with false.
      : millis("keepAlive", keepAlive) || false,
    idleTimeoutMs: millis("idleTimeout", options.idleTimeout) ?? 0,
    writeTimeoutMs: millis("writeTimeout", options.writeTimeout) ?? 0,
    readBufferSize: positiveInt("readBufferSize", options.readBufferSize, DEFAULT_READ_BUFFER),
    closeTimeoutMs: closeTimeout(options.closeTimeout)
  }
}

const unixMode = (value: number | undefined): number => {
  if (value === undefined) return DEFAULT_UNIX_MODE
  const ok = typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0o777
  check(
    "unixMode",
    ok ? undefined : `must be permission bits from 0 to 0o777, e.g. 0o660, got ${
      typeof value === "number" && Number.isInteger(value) && value >= 0 ? `0o${value.toString(8)}` : String(value)
    }`
  )
  return value
}

/** A listener's options, parsed (throws the defect of an invalid one: call it inside {@link withOptions}). */
export const listenConfig = (options: Socket.ListenOptions): ListenConfig => ({
  socket: socketConfig(options),
  acceptQueueSize: positiveInt("acceptQueueSize", options.acceptQueueSize, DEFAULT_ACCEPT_QUEUE),
  backlog: positiveInt("backlog", options.backlog, DEFAULT_BACKLOG),
  unixMode: unixMode(options.unixMode)
})

/** Invalid options are programming errors: a defect whose message names the option. */
export const withOptions = <A, E, R>(build: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    try {
      return build()
    } catch (e) {
      if (Cause.isIllegalArgumentError(e)) return Effect.die(e)
      throw e
    }
  })
