/**
 * Where a socket lives. A TCP address (`host`, `port`; IPv4, IPv6 or a host
 * name) or a Unix domain socket path. The address picks the transport.
 *
 * ```ts
 * import * as Address from "effect-wire/Address"
 *
 * Address.format(Address.unsafeParse("[::1]:9000")) // "[::1]:9000"
 * ```
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Result from "effect/Result"
import { isIP } from "node:net"

/**
 * Options of the {@link TcpAddress} and {@link UnixAddress} constructors.
 * `disableChecks` skips the field checks, for values already known good
 * (what a socket reports, what a Schema has decoded).
 *
 * ```ts
 * new Address.TcpAddress({ host: "10.0.0.7", port: 443 }, { disableChecks: true })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface MakeOptions {
  readonly disableChecks?: boolean | undefined
}

/**
 * A TCP (or UDP) endpoint. `host` is an IPv4 address, an IPv6 address
 * without brackets, or a host name; `port` an integer in 0-65535, which the
 * constructor checks (an empty host or another port throws an
 * {@link InvalidAddress}). Equal and hashed by value. Plain data: this
 * module loads no Schema; `AddressSchema` has the Schemas.
 *
 * ```ts
 * const a = Address.tcp("127.0.0.1", 0) // port 0: let the kernel choose
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class TcpAddress extends Data.Class<{
  readonly _tag: "TcpAddress"
  readonly host: string
  readonly port: number
}> {
  constructor(fields: { readonly host: string; readonly port: number }, options?: MakeOptions) {
    if (options?.disableChecks !== true) checkTcp(fields.host, fields.port)
    super({ _tag: "TcpAddress", host: fields.host, port: fields.port })
  }

  /** The address as {@link format} writes it: `${address}` in a log line reads `[::1]:9000`. */
  override toString(): string {
    return format(this)
  }
}

/**
 * A Unix domain socket path. The constructor throws an
 * {@link InvalidAddress} for an empty path.
 *
 * ```ts
 * const a = Address.unix("/tmp/app.sock")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class UnixAddress extends Data.Class<{
  readonly _tag: "UnixAddress"
  readonly path: string
}> {
  constructor(fields: { readonly path: string }, options?: MakeOptions) {
    if (options?.disableChecks !== true && fields.path.length === 0) {
      throw new InvalidAddress({ input: "unix:", reason: "the unix socket path is empty" })
    }
    super({ _tag: "UnixAddress", path: fields.path })
  }

  /** The address as {@link format} writes it: `unix:/run/app.sock`. */
  override toString(): string {
    return format(this)
  }
}

const checkTcp = (host: string, port: number): void => {
  if (host.length === 0) throw new InvalidAddress({ input: `:${port}`, reason: "the host is empty" })
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidAddress({
      input: `${host.includes(":") ? `[${host}]` : host}:${port}`,
      reason: `port ${port} is not an integer in 0-65535`
    })
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export type Address = TcpAddress | UnixAddress

/**
 * The input to {@link parse} was not an address. `reason` says what is wrong.
 *
 * ```ts
 * Address.parse("9000").pipe(Result.mapError((e) => e.message))
 * // Failure("invalid address \"9000\": expected host:port, [ipv6]:port or unix:/path")
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidAddress extends Data.TaggedError("InvalidAddress")<{
  readonly input: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid address ${JSON.stringify(this.input)}: ${this.reason}`
  }
}

/**
 * Make a TCP address.
 *
 * ```ts
 * Address.tcp("::1", 8080) // formats as "[::1]:8080"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const tcp = (host: string, port: number): TcpAddress => new TcpAddress({ host, port })

/**
 * Make a Unix domain socket address.
 *
 * ```ts
 * Address.unix("/run/app.sock")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const unix = (path: string): UnixAddress => new UnixAddress({ path })

const UNKNOWN_PEER_HOST = "unknown peer"

/**
 * The peer of an accepted TCP connection that nobody can name any more: it
 * reset the connection before the server accepted it, and the kernel no
 * longer knows who it was. `remoteAddress` is then this value, never the
 * listener's own address. It formats as `unknown peer`, is no
 * {@link isLoopback} address and cannot be connected to; test for it with
 * {@link isUnknownPeer}.
 *
 * ```ts
 * Address.format(Address.unknownPeer) // "unknown peer"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const unknownPeer: TcpAddress = new TcpAddress({ host: UNKNOWN_PEER_HOST, port: 0 })

/**
 * Is this the {@link unknownPeer}?
 *
 * ```ts
 * const peer = Address.isUnknownPeer(socket.remoteAddress) ? "gone before we knew it" : Address.format(socket.remoteAddress)
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isUnknownPeer = (address: Address): boolean =>
  address._tag === "TcpAddress" && address.host === UNKNOWN_PEER_HOST && address.port === 0

// Linux's sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
const MAX_UNIX_PATH_BYTES = 107
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/
const PORT = /^(?:0|[1-9][0-9]{0,4})$/
const EXPECTED = "expected host:port, [ipv6]:port or unix:/path"

const parsePort = (input: string, text: string): Result.Result<number, InvalidAddress> => {
  if (!PORT.test(text)) {
    return Result.fail(new InvalidAddress({ input, reason: `port ${JSON.stringify(text)} is not a decimal number` }))
  }
  const port = Number(text)
  return port <= 65535
    ? Result.succeed(port)
    : Result.fail(new InvalidAddress({ input, reason: `port ${port} is out of range 0-65535` }))
}

/**
 * Parse `127.0.0.1:9000`, `localhost:80`, `[::1]:9000` or `unix:/tmp/x.sock`.
 * Anything else is an {@link InvalidAddress} saying what is wrong.
 * `format` is its inverse.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const address = yield* Effect.fromResult(Address.parse("[::1]:9000"))
 *   return address.host // "::1"
 * })
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Result.Result<Address, InvalidAddress> => {
  if (input.startsWith("unix:")) {
    const path = input.slice(5)
    if (path.length === 0) return Result.fail(new InvalidAddress({ input, reason: "the unix socket path is empty" }))
    if (path.includes("\0")) return Result.fail(new InvalidAddress({ input, reason: "the unix socket path contains NUL" }))
    const bytes = Buffer.byteLength(path)
    if (bytes > MAX_UNIX_PATH_BYTES) {
      return Result.fail(
        new InvalidAddress({
          input,
          reason: `the unix socket path is ${bytes} bytes; the limit is ${MAX_UNIX_PATH_BYTES}`
        })
      )
    }
    return Result.succeed(unix(path))
  }
  if (input.startsWith("[")) {
    const close = input.indexOf("]")
    if (close < 0 || input[close + 1] !== ":") {
      return Result.fail(new InvalidAddress({ input, reason: "expected [ipv6]:port" }))
    }
    const host = input.slice(1, close)
    if (isIP(host) !== 6) {
      return Result.fail(new InvalidAddress({ input, reason: `${JSON.stringify(host)} is not an IPv6 address` }))
    }
    return Result.map(parsePort(input, input.slice(close + 2)), (port) => tcp(host, port))
  }
  const colon = input.lastIndexOf(":")
  if (colon < 0) return Result.fail(new InvalidAddress({ input, reason: EXPECTED }))
  const host = input.slice(0, colon)
  if (host.includes(":")) {
    return Result.fail(
      new InvalidAddress({ input, reason: `an IPv6 address needs brackets: [${host}]:${input.slice(colon + 1)}` })
    )
  }
  if (host.length === 0) return Result.fail(new InvalidAddress({ input, reason: `the host is empty; ${EXPECTED}` }))
  if (isIP(host) !== 4 && (!HOSTNAME.test(host) || /^[0-9.]+$/.test(host))) {
    return Result.fail(
      new InvalidAddress({ input, reason: `${JSON.stringify(host)} is neither an IP address nor a host name` })
    )
  }
  return Result.map(parsePort(input, input.slice(colon + 1)), (port) => tcp(host, port))
}

/**
 * Like {@link parse} but throws the {@link InvalidAddress}. For literals in
 * programs and tests.
 *
 * ```ts
 * const a = Address.unsafeParse("127.0.0.1:0")
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const unsafeParse = (input: string): Address => Result.getOrThrow(parse(input))

/**
 * Parse a UDP address (`127.0.0.1:5300`, `localhost:53`, `[::1]:5300`) as the
 * type `Datagram` and `DatagramServer` take (`Datagram.UdpAddress`, the same
 * shape as a TCP address), so it passes straight to `bind`, `send` or
 * `request`. A `unix:` path is an {@link InvalidAddress}: UDP has none.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const server = yield* Effect.fromResult(Address.parseUdp("127.0.0.1:5300"))
 *   return yield* DatagramServer.request(new TextEncoder().encode("ping"), server)
 * })
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseUdp = (input: string): Result.Result<TcpAddress, InvalidAddress> =>
  input.startsWith("unix:")
    ? Result.fail(
      new InvalidAddress({ input, reason: "a unix: path is not a UDP address; expected host:port or [ipv6]:port" })
    )
    : parse(input) as Result.Result<TcpAddress, InvalidAddress>

/**
 * Like {@link parseUdp} but throws the {@link InvalidAddress}. For literals in
 * programs and tests.
 *
 * ```ts
 * const socket = yield* Datagram.bind(Address.unsafeParseUdp("127.0.0.1:0"))
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const unsafeParseUdp = (input: string): TcpAddress => Result.getOrThrow(parseUdp(input))

/**
 * Render an address the way {@link parse} reads it ({@link unknownPeer}, which
 * nothing parses, as `unknown peer`).
 *
 * ```ts
 * Address.format(Address.tcp("::1", 80)) // "[::1]:80"
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (address: Address): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path}`
    : isUnknownPeer(address)
    ? UNKNOWN_PEER_HOST
    : address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`

/**
 * True for addresses that only this machine can reach: 127.0.0.0/8, ::1,
 * `localhost` and Unix sockets. Servers use it to refuse risky binds.
 *
 * ```ts
 * Address.isLoopback(Address.tcp("0.0.0.0", 80)) // false
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isLoopback = (address: Address): boolean => {
  if (address._tag === "UnixAddress") return true
  const host = address.host.toLowerCase()
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host) ||
    /^::ffff:127\.\d+\.\d+\.\d+$/.test(host)
}

/**
 * Is this value an {@link Address}?
 *
 * ```ts
 * Address.isAddress(Address.unix("/tmp/s")) // true
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isAddress = (u: unknown): u is Address => u instanceof TcpAddress || u instanceof UnixAddress
