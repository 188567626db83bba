/**
 * Every network failure as its own tagged error, so `Effect.catchTag` picks
 * exactly the one you can handle. Each carries the `address` involved, the
 * errno `code`, the `syscall`, whether a retry may help (`retryable`), the
 * original `cause`, and a message a person can act on.
 *
 * ```ts
 * Socket.connect(Address.tcp("127.0.0.1", 9000)).pipe(
 *   Effect.catchTag("ConnectionRefused", (e) => Console.log(e.message))
 * )
 * ```
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Address from "./Address.js"
import type * as Tls from "./Tls.js"

/**
 * What every {@link NetError} carries.
 *
 * @since 0.1.0
 * @category models
 */
export interface NetErrorFields {
  /** The address the operation was about (the peer for connect, the local one for listen). */
  readonly address?: Address.Address | undefined
  /** The errno code, e.g. `ECONNREFUSED`. */
  readonly code?: string | undefined
  /** The system call that failed, e.g. `connect`. */
  readonly syscall?: string | undefined
  /** Whether trying again later may succeed. */
  readonly retryable: boolean
  /** The original error. */
  readonly cause?: unknown
  /** Extra words for the message (a limit, a size, what was being done). */
  readonly detail?: string | undefined
}

/**
 * Constructor arguments: like {@link NetErrorFields}, but `retryable` takes the
 * kind's default when left out.
 *
 * @since 0.1.0
 * @category models
 */
export type NetErrorArgs = Omit<NetErrorFields, "retryable"> & { readonly retryable?: boolean | undefined }

const where = (address: Address.Address | undefined): string =>
  address === undefined ? "the peer" : Address.format(address)

/**
 * The instance shape every kind shares: a yieldable error with its own `_tag`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NetErrorOf<Tag extends string> extends Cause.YieldableError, Omit<NetErrorFields, "cause"> {
  readonly _tag: Tag
}

const Kind = <Tag extends string>(
  tag: Tag,
  retryable: boolean,
  describe: (where: string) => string
): new(args?: NetErrorArgs) => NetErrorOf<Tag> => {
  class Base extends Data.TaggedError(tag)<NetErrorFields> {
    constructor(args: NetErrorArgs = {}) {
      super({ ...args, retryable: args.retryable ?? retryable })
    }
    override get message(): string {
      const code = this.code === undefined ? "" : ` (${this.code})`
      const detail = this.detail === undefined ? "" : `: ${this.detail}`
      return `${describe(where(this.address))}${code}${detail}`
    }
  }
  return Base
}

/**
 * Nothing listens at the address (ECONNREFUSED; for UDP, ICMP port unreachable).
 *
 * ```ts
 * Effect.catchTag("ConnectionRefused", () => Effect.retry(connect, Schedule.spaced("1 second")))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionRefused extends Kind(
  "ConnectionRefused",
  true,
  (a) => `connection to ${a} refused: is the server running and listening there?`
) {}

/**
 * The peer aborted the connection (ECONNRESET).
 *
 * ```ts
 * socket.reads.pipe(Stream.catchTag("ConnectionReset", () => Stream.empty))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionReset extends Kind(
  "ConnectionReset",
  true,
  (a) => `connection with ${a} was reset by the peer`
) {}

/**
 * The connection was not established within the connect timeout.
 *
 * ```ts
 * Socket.connect(address, { timeout: "2 seconds" }).pipe(Effect.catchTag("ConnectTimeout", onTimeout))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectTimeout extends Kind(
  "ConnectTimeout",
  true,
  (a) => `connecting to ${a} timed out: the host may be down or a firewall may drop packets`
) {}

/**
 * No byte moved either way for the idle timeout; the socket was closed.
 *
 * ```ts
 * Socket.connect(address, { idleTimeout: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class IdleTimeout extends Kind(
  "IdleTimeout",
  false,
  (a) => `connection with ${a} was idle too long and was closed`
) {}

/**
 * Something already listens on the address (EADDRINUSE).
 *
 * ```ts
 * Socket.listen(address).pipe(Effect.catchTag("AddressInUse", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class AddressInUse extends Kind(
  "AddressInUse",
  false,
  (a) => `address ${a} is already in use`
) {}

/**
 * The address is not on this machine (EADDRNOTAVAIL), e.g. binding to another host's IP.
 *
 * ```ts
 * Effect.catchTag("AddressNotAvailable", () => Socket.listen(Address.tcp("127.0.0.1", 0)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class AddressNotAvailable extends Kind(
  "AddressNotAvailable",
  false,
  (a) => `address ${a} is not available on this machine`
) {}

/**
 * The operating system refused (EACCES/EPERM), e.g. a port below 1024 without privileges.
 *
 * ```ts
 * Effect.catchTag("PermissionDenied", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PermissionDenied extends Kind(
  "PermissionDenied",
  false,
  (a) => `permission denied for ${a}: ports below 1024 and some paths need privileges`
) {}

/**
 * A Unix socket path cannot be created because a directory on it does not
 * exist, or is a file (ENOENT, ENOTDIR; libuv reports a missing directory as
 * EACCES, so listening checks). `detail` names the directory.
 *
 * ```ts
 * Socket.listen(Address.unix("/run/app/s.sock")).pipe(
 *   Effect.catchTag("PathNotFound", (e) => Console.error(e.message)) // "... the directory /run/app does not exist (ENOENT)"
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class PathNotFound extends Kind(
  "PathNotFound",
  false,
  (a) => `cannot listen on ${a}`
) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` (${this.code})`
    return `cannot listen on ${where(this.address)}: ${this.detail ?? "a directory on its path does not exist"}${code}`
  }
}

/**
 * The host name did not resolve (ENOTFOUND; EAI_AGAIN is a temporary DNS failure and retryable).
 *
 * ```ts
 * if (error._tag === "HostNotFound" && error.retryable) retryLater()
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class HostNotFound extends Kind(
  "HostNotFound",
  false,
  (a) => `host of ${a} was not found: check the name`
) {}

/**
 * No route to the host (EHOSTUNREACH).
 *
 * ```ts
 * Effect.catchTag("HostUnreachable", onUnreachable)
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class HostUnreachable extends Kind(
  "HostUnreachable",
  true,
  (a) => `host ${a} is unreachable`
) {}

/**
 * No route to the network (ENETUNREACH), e.g. IPv6 without an IPv6 route.
 *
 * ```ts
 * Effect.catchTag("NetworkUnreachable", onUnreachable)
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class NetworkUnreachable extends Kind(
  "NetworkUnreachable",
  true,
  (a) => `network of ${a} is unreachable`
) {}

/**
 * Writing after the peer (or we) closed the connection (EPIPE, write after end).
 *
 * ```ts
 * socket.write(bytes).pipe(Effect.catchTag("BrokenPipe", () => Effect.void))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class BrokenPipe extends Kind(
  "BrokenPipe",
  false,
  (a) => `cannot write to ${a}: the connection is closed`
) {}

/**
 * The peer did not take the bytes written to it within the write timeout
 * (`writeTimeout`): they waited in our buffer, the connection was closed.
 * `detail` says how many bytes were pending and for how long. A peer that
 * stops reading must not hold a connection, and its unread output, forever.
 *
 * ```ts
 * Socket.connect(address, { writeTimeout: "30 seconds" }).pipe(
 *   Effect.flatMap((socket) => socket.write(bytes)),
 *   Effect.catchTag("WriteTimeout", (e) => Console.error(e.message))
 * )
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class WriteTimeout extends Kind(
  "WriteTimeout",
  false,
  (a) => `${a} did not take the bytes written to it within the write timeout; the connection was closed`
) {}

/**
 * A server over its memory budget (`Server.Options.memoryBudget`) closed this
 * connection, one of those holding the most memory (input not yet framed or
 * read, output the peer has not taken). `detail` gives the connection's share
 * and the budget.
 *
 * ```ts
 * client.request(bigPayload).pipe(Effect.catchTag("MemoryBudgetExceeded", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class MemoryBudgetExceeded extends Kind(
  "MemoryBudgetExceeded",
  false,
  (a) => `connection with ${a} was closed to keep the server within its memory budget`
) {}

/**
 * A datagram larger than the transport allows (EMSGSIZE; 65,507 bytes on IPv4 UDP).
 *
 * ```ts
 * udp.send(payload, to).pipe(Effect.catchTag("MessageTooLarge", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class MessageTooLarge extends Kind(
  "MessageTooLarge",
  false,
  (a) => `message to ${a} is too large for one datagram`
) {}

/**
 * Any failure without a kind of its own. `code` and `cause` say what happened.
 *
 * ```ts
 * Effect.catchTag("Unknown", (e) => Console.error(e.code, e.message))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class Unknown extends Kind(
  "Unknown",
  false,
  (a) => `network operation with ${a} failed`
) {}

/**
 * A Unix socket file the client does not trust, refused before connecting
 * (`unixOwner`): it, a symlink to it, or a directory above it belongs to
 * another user, or others may write to such a directory. That user could be
 * impersonating the server and receive what the client sends (a token).
 * `detail` names the file or directory and its owner.
 *
 * ```ts
 * Exec.client(Address.unix("/run/app/exec.sock")).pipe(
 *   Effect.catchTag("UntrustedSocketOwner", (e) => Console.error(e.message))
 * )
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class UntrustedSocketOwner extends Kind(
  "UntrustedSocketOwner",
  false,
  (a) => `refusing to connect to ${a}`
) {
  override get message(): string {
    return `refusing to connect to ${where(this.address)}: ${
      this.detail ?? "its socket file belongs to another user"
    }; whoever owns it would receive what is sent. To trust its owner, list the uid in unixOwner (or pass "any")`
  }
}

/**
 * Any network failure.
 *
 * @since 0.1.0
 * @category models
 */
export type NetError =
  | ConnectionRefused
  | ConnectionReset
  | ConnectTimeout
  | IdleTimeout
  | AddressInUse
  | AddressNotAvailable
  | PermissionDenied
  | PathNotFound
  | HostNotFound
  | HostUnreachable
  | NetworkUnreachable
  | BrokenPipe
  | WriteTimeout
  | MemoryBudgetExceeded
  | MessageTooLarge
  | Unknown
  | UntrustedSocketOwner

/**
 * What connecting can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectError =
  // With `tls`, connecting includes the handshake (see the Tls module).
  | Tls.HandshakeError
  | ConnectionRefused
  | ConnectionReset
  | ConnectTimeout
  | AddressNotAvailable
  | PermissionDenied
  | HostNotFound
  | HostUnreachable
  | NetworkUnreachable
  | Unknown
  | UntrustedSocketOwner

/**
 * What listening (or binding a UDP socket) can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type ListenError =
  | AddressInUse
  | AddressNotAvailable
  | PermissionDenied
  | PathNotFound
  | HostNotFound
  | Unknown

/**
 * What reading from a connected socket can fail with. Peer EOF is not an error.
 * A connection cut for a stalled write (`WriteTimeout`) or by a server's
 * memory budget fails its reads with that reason too.
 *
 * @since 0.1.0
 * @category models
 */
export type ReadError =
  | ConnectionReset
  | IdleTimeout
  | ConnectionRefused
  | WriteTimeout
  | MemoryBudgetExceeded
  | Unknown

/**
 * What writing to a connected socket can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type WriteError =
  | BrokenPipe
  | ConnectionReset
  | IdleTimeout
  | WriteTimeout
  | MemoryBudgetExceeded
  | Unknown

/**
 * What sending a datagram can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type SendError =
  | MessageTooLarge
  | ConnectionRefused
  | HostNotFound
  | HostUnreachable
  | NetworkUnreachable
  | AddressNotAvailable
  | PermissionDenied
  | BrokenPipe
  | Unknown

/**
 * The phase an error happened in; picks the union {@link fromSystemError} narrows to.
 *
 * @since 0.1.0
 * @category models
 */
export interface Phases {
  readonly connect: ConnectError
  readonly listen: ListenError
  readonly read: ReadError
  readonly write: WriteError
  readonly send: SendError
  readonly any: NetError
}

const PHASE_TAGS: { readonly [P in keyof Phases]: ReadonlySet<NetError["_tag"]> } = {
  connect: new Set([
    "ConnectionRefused",
    "ConnectionReset",
    "ConnectTimeout",
    "AddressNotAvailable",
    "PermissionDenied",
    "HostNotFound",
    "HostUnreachable",
    "NetworkUnreachable",
    "Unknown",
    "UntrustedSocketOwner"
  ]),
  listen: new Set(["AddressInUse", "AddressNotAvailable", "PermissionDenied", "PathNotFound", "HostNotFound", "Unknown"]),
  read: new Set(["ConnectionReset", "IdleTimeout", "ConnectionRefused", "WriteTimeout", "MemoryBudgetExceeded", "Unknown"]),
  write: new Set(["BrokenPipe", "ConnectionReset", "IdleTimeout", "WriteTimeout", "MemoryBudgetExceeded", "Unknown"]),
  send: new Set([
    "MessageTooLarge",
    "ConnectionRefused",
    "HostNotFound",
    "HostUnreachable",
    "NetworkUnreachable",
    "AddressNotAvailable",
    "PermissionDenied",
    "BrokenPipe",
    "Unknown"
  ]),
  any: new Set([
    "ConnectionRefused",
    "ConnectionReset",
    "ConnectTimeout",
    "IdleTimeout",
    "AddressInUse",
    "AddressNotAvailable",
    "PermissionDenied",
    "PathNotFound",
    "HostNotFound",
    "HostUnreachable",
    "NetworkUnreachable",
    "BrokenPipe",
    "WriteTimeout",
    "MemoryBudgetExceeded",
    "MessageTooLarge",
    "Unknown",
    "UntrustedSocketOwner"
  ])
}

const BY_CODE: Record<string, new(args: NetErrorArgs) => NetError> = {
  ECONNREFUSED: ConnectionRefused,
  ECONNRESET: ConnectionReset,
  ECONNABORTED: ConnectionReset,
  ETIMEDOUT: ConnectTimeout,
  EADDRINUSE: AddressInUse,
  EADDRNOTAVAIL: AddressNotAvailable,
  EACCES: PermissionDenied,
  EPERM: PermissionDenied,
  ENOENT: PathNotFound,
  ENOTDIR: PathNotFound,
  ENOTFOUND: HostNotFound,
  EAI_AGAIN: HostNotFound,
  EAI_NONAME: HostNotFound,
  EAI_FAIL: HostNotFound,
  EHOSTUNREACH: HostUnreachable,
  EHOSTDOWN: HostUnreachable,
  ENETUNREACH: NetworkUnreachable,
  ENETDOWN: NetworkUnreachable,
  EPIPE: BrokenPipe,
  ERR_STREAM_WRITE_AFTER_END: BrokenPipe,
  ERR_STREAM_DESTROYED: BrokenPipe,
  ERR_SOCKET_CLOSED: BrokenPipe,
  EMSGSIZE: MessageTooLarge,
  ERR_SOCKET_DGRAM_NOT_RUNNING: BrokenPipe
}

const RETRYABLE_CODES = new Set(["EAI_AGAIN"])

interface SystemErrorLike {
  readonly code?: unknown
  readonly syscall?: unknown
  readonly message?: unknown
  readonly errors?: unknown
}

/**
 * Node's happy-eyeballs connect (`autoSelectFamily`) fails with an
 * `AggregateError` holding one error per address tried. The most telling one is
 * the first that is not a plain refusal or timeout, else the first.
 */
const unpack = (err: unknown): unknown => {
  if (err instanceof AggregateError || (typeof err === "object" && err !== null && Array.isArray((err as SystemErrorLike).errors))) {
    const errors = (err as { errors: ReadonlyArray<unknown> }).errors
    if (errors.length === 0) return err
    const telling = errors.find((e) => {
      const code = (e as SystemErrorLike)?.code
      return code !== "ECONNREFUSED" && code !== "ETIMEDOUT"
    })
    return telling ?? errors[0]
  }
  return err
}

/**
 * The one mapping from a Node system error to a {@link NetError}, narrowed to
 * the union of the phase: a code that cannot happen in that phase becomes
 * `Unknown` (with the code kept), so signatures stay exact.
 *
 * ```ts
 * server.on("error", (err) => resume(Effect.fail(NetError.fromSystemError(err, { phase: "listen", address }))))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSystemError = <P extends keyof Phases = "any">(
  err: unknown,
  context: { readonly phase?: P | undefined; readonly address?: Address.Address | undefined; readonly detail?: string | undefined } = {}
): Phases[P] => {
  const inner = unpack(err)
  const sys = (typeof inner === "object" && inner !== null ? inner : {}) as SystemErrorLike
  const code = typeof sys.code === "string" ? sys.code : undefined
  const syscall = typeof sys.syscall === "string" ? sys.syscall : undefined
  const detail = context.detail ?? (code === undefined && typeof sys.message === "string" ? sys.message : undefined)
  const args: NetErrorArgs = {
    address: context.address,
    code,
    syscall,
    cause: err,
    detail,
    ...(code !== undefined && RETRYABLE_CODES.has(code) ? { retryable: true } : {})
  }
  const Ctor = code === undefined ? undefined : BY_CODE[code]
  const candidate = Ctor === undefined ? new Unknown(args) : new Ctor(args)
  const allowed = PHASE_TAGS[(context.phase ?? "any") as keyof Phases]
  return (allowed.has(candidate._tag) ? candidate : new Unknown(args)) as Phases[P]
}

/**
 * Is this value one of the {@link NetError}s?
 *
 * ```ts
 * Effect.catchIf(NetError.isNetError, (e) => Console.error(e.message))
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isNetError = (u: unknown): u is NetError =>
  typeof u === "object" && u !== null && "_tag" in u && PHASE_TAGS.any.has((u as { _tag: NetError["_tag"] })._tag) &&
  "retryable" in u
