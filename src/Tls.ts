/**
 * TLS for sockets and servers: the options of `Socket.connect(address, { tls })`
 * and `Socket.listen(address, { tls })` (and `Server`'s `tls`), what a
 * connection negotiated ({@link info}), reloadable server credentials
 * ({@link serverCredentials}), the upgrade of a plaintext connection
 * ({@link startTls}), and one tagged error per handshake failure a person
 * would fix differently, each naming what to change.
 *
 * ```ts
 * const socket = yield* Socket.connect(Address.tcp("api.example.test", 443), {
 *   tls: { ca: caPem, alpn: ["h2", "http/1.1"] }
 * })
 * const negotiated = Tls.info(socket) // Option.some({ protocol: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", ... })
 * ```
 *
 * @since 0.2.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Address from "./Address.js"
// Called, never read at load: nodeTls.ts imports this module's error classes (a cycle Socket.ts enters first).
import * as internal from "./internal/nodeTls.js"
import type * as NetError from "./NetError.js"
import type * as Socket from "./Socket.js"

/**
 * PEM text (or its bytes): one certificate or a chain, leaf first.
 *
 * @since 0.2.0
 * @category models
 */
export type Pem = string | Uint8Array

/**
 * The lowest protocol version accepted (default `"TLSv1.2"`).
 *
 * @since 0.2.0
 * @category models
 */
export type MinVersion = "TLSv1.2" | "TLSv1.3"

/**
 * A certificate chain and its private key: a server's identity, or a
 * client's for mutual TLS. The key and its passphrase are `Redacted`, so
 * they never show in a log line or an error.
 *
 * ```ts
 * const identity: Tls.Identity = { cert: certPem, key: Redacted.make(keyPem) }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Identity {
  /** The certificate chain, leaf first (PEM). */
  readonly cert: Pem
  /** The private key (PEM). */
  readonly key: Redacted.Redacted<Pem>
  /** The passphrase of an encrypted key. */
  readonly passphrase?: Redacted.Redacted<string> | undefined
}

/**
 * Options of a TLS client (`Socket.connect(address, { tls })`, `startTls` on
 * the client side). Everything has a safe default: the system's CAs, the
 * host name checked, TLS 1.2 at least, a 10-second handshake.
 *
 * ```ts
 * Socket.connect(Address.tcp("127.0.0.1", 8443), { tls: { ca: caPem, servername: "api.example.test" } })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ClientOptions {
  /** The CAs to trust (default: Node's bundled root CAs). Replaces the default set. */
  readonly ca?: Pem | ReadonlyArray<Pem> | undefined
  /**
   * The name sent in SNI and checked against the certificate (default: the
   * host of the address, unless it is an IP address, which is then checked
   * against the certificate's IP SANs). Required on a Unix address.
   */
  readonly servername?: string | undefined
  /** Our certificate and key, for a server that asks for one (mutual TLS). */
  readonly identity?: Identity | undefined
  /** ALPN protocols we offer, in order of preference. */
  readonly alpn?: ReadonlyArray<string> | undefined
  /** Default `"TLSv1.2"`. */
  readonly minVersion?: MinVersion | undefined
  /** OpenSSL cipher list for TLS 1.2 (default: Node's). */
  readonly ciphers?: string | undefined
  /**
   * Check the server's certificate and host name (default true). `false`
   * accepts any certificate: anyone on the path can read and change the
   * traffic. It is logged once per process as a warning.
   */
  readonly rejectUnauthorized?: boolean | undefined
  /**
   * The longest the handshake may take once the TCP connection exists
   * (default 10 seconds; `Duration.infinity` for none; 0 is refused), on
   * Effect's `Clock`: `HandshakeTimeout`.
   */
  readonly handshakeTimeout?: Duration.Input | undefined
}

/**
 * Whether a server asks clients for a certificate: `"none"` (default),
 * `"optional"` (asked; a client without one is served, one whose certificate
 * does not verify against `clientCa` is refused), `"required"` (a client
 * without a verified certificate is refused).
 *
 * @since 0.2.0
 * @category models
 */
export type ClientCertificate = "none" | "optional" | "required"

/**
 * The certificates a server presents and trusts: what
 * {@link ServerCredentials} can swap while the server runs.
 *
 * ```ts
 * const material: Tls.ServerMaterial = {
 *   identity: { cert: certPem, key: Redacted.make(keyPem) },
 *   sni: { "api.example.test": { cert: apiPem, key: Redacted.make(apiKey) } }
 * }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ServerMaterial {
  /** The certificate for clients that send no SNI name, or a name not in `sni`. */
  readonly identity: Identity
  /** More certificates, by the host name a client asks for (SNI); `*.example.test` matches one label. */
  readonly sni?: Readonly<Record<string, Identity>> | undefined
  /** The CAs client certificates must chain to (needed unless `clientCertificate` is `"none"`). */
  readonly clientCa?: Pem | ReadonlyArray<Pem> | undefined
}

/**
 * A server's certificates as a live value: listeners built with it use the
 * current material for every new handshake, and `reload` swaps it (open
 * connections keep what they negotiated). Make it with
 * {@link serverCredentials}.
 *
 * ```ts
 * const credentials = yield* Tls.serverCredentials(material)
 * yield* Server.make({ address, handler, tls: { credentials } })
 * yield* credentials.reload(renewedMaterial) // fails with InvalidCredentials and keeps the old ones
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ServerCredentials {
  readonly [internal.CredentialsTypeId]: internal.CredentialsState
  /** Swap the material for new handshakes; on failure nothing changes. */
  readonly reload: (material: ServerMaterial) => Effect.Effect<void, InvalidCredentials>
  /** How many times the material was swapped. */
  readonly generation: Effect.Effect<number>
}

/**
 * Options of a TLS listener (`Socket.listen(address, { tls })`, `Server`'s
 * `tls`). Give the certificates either inline (`identity`, `sni`,
 * `clientCa`, checked when listening: unusable ones are a defect) or as
 * reloadable `credentials`.
 *
 * ```ts
 * Server.layer({ address, handler, tls: { identity: { cert, key: Redacted.make(key) }, alpn: ["x-mine"] } })
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface ServerOptions extends Partial<ServerMaterial> {
  /** Reloadable certificates (instead of `identity`, `sni` and `clientCa`). */
  readonly credentials?: ServerCredentials | undefined
  /** Default `"none"`. */
  readonly clientCertificate?: ClientCertificate | undefined
  /** ALPN protocols we accept, in our order of preference; a client offering none of them is refused. */
  readonly alpn?: ReadonlyArray<string> | undefined
  /** Default `"TLSv1.2"`. */
  readonly minVersion?: MinVersion | undefined
  /** OpenSSL cipher list for TLS 1.2 (default: Node's). */
  readonly ciphers?: string | undefined
  /**
   * The longest a client may take to complete its handshake (default 10
   * seconds, above 0 and finite); counted and logged as `HandshakeTimeout`.
   */
  readonly handshakeTimeout?: Duration.Input | undefined
}

/**
 * A certificate as a handler sees it.
 *
 * @since 0.2.0
 * @category models
 */
export interface PeerCertificate {
  /** e.g. `"CN=client.test"`. */
  readonly subject: string
  readonly issuer: string
  /** e.g. `["DNS:client.test", "IP Address:127.0.0.1"]`. */
  readonly subjectAltNames: ReadonlyArray<string>
  /** SHA-256 fingerprint, `AB:CD:...`. */
  readonly fingerprint256: string
  readonly serialNumber: string
  readonly validFrom: Date
  readonly validTo: Date
}

/**
 * What the handshake of a connection negotiated.
 *
 * @since 0.2.0
 * @category models
 */
export interface TlsInfo {
  /** e.g. `"TLSv1.3"`. */
  readonly protocol: string
  /** The cipher suite's standard name, e.g. `"TLS_AES_256_GCM_SHA384"`. */
  readonly cipher: string
  /** The ALPN protocol agreed on, when both sides offered some. */
  readonly alpnProtocol: string | undefined
  /** The SNI name: the one we sent (client) or the client asked for (server). */
  readonly servername: string | undefined
  /** The peer's certificate verified (always true for a client, unless `rejectUnauthorized: false`). */
  readonly authorized: boolean
  /** The peer's certificate, when it sent one. */
  readonly peerCertificate: Option.Option<PeerCertificate>
}

/**
 * What a TLS connection negotiated; `Option.none()` for a plaintext socket
 * (or one that is not on node:tls, such as a `MemorySocket`).
 *
 * ```ts
 * const handler = (socket: Socket.Socket) =>
 *   Option.match(Tls.info(socket), {
 *     onNone: () => Effect.void,
 *     onSome: (tls) => Effect.log(`${tls.protocol} ${tls.cipher} from ${Option.map(tls.peerCertificate, (c) => c.subject)}`)
 *   })
 * ```
 *
 * @since 0.2.0
 * @category getters
 */
export const info = (socket: Socket.Socket): Option.Option<TlsInfo> => internal.info(socket)

/**
 * How many handshakes a TLS listener refused, by the tag of their error
 * (`{ NotTls: 3, CertificateUntrusted: 1 }`); `Option.none()` for a listener
 * that is not a node:tls one. Each is also logged (see `Socket.ListenOptions.tls`).
 *
 * ```ts
 * const listener = yield* Socket.listen(address, { tls })
 * const failed = Tls.handshakeFailures(listener) // Option.some({ HandshakeTimeout: 2 })
 * ```
 *
 * @since 0.2.0
 * @category getters
 */
export const handshakeFailures = (listener: Socket.Listener): Option.Option<Readonly<Record<string, number>>> =>
  internal.handshakeFailures(listener)

/**
 * Check server material and make it a live, reloadable value for
 * `ServerOptions.credentials`. Fails with {@link InvalidCredentials} when
 * OpenSSL refuses it (not PEM, a key that does not match its certificate, a
 * wrong passphrase).
 *
 * ```ts
 * const credentials = yield* Tls.serverCredentials({ identity: { cert, key: Redacted.make(key) } })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const serverCredentials = (material: ServerMaterial): Effect.Effect<ServerCredentials, InvalidCredentials> =>
  internal.serverCredentials(material)

/**
 * The side of an upgrade: the client sends the ClientHello, the server
 * answers it.
 *
 * @since 0.2.0
 * @category models
 */
export type StartTlsOptions =
  | ({ readonly role: "client" } & ClientOptions & StartTlsPending)
  | ({ readonly role: "server" } & ServerOptions & StartTlsPending)

/**
 * What {@link startTls} takes on either side besides the TLS options.
 *
 * @since 0.2.0
 * @category models
 */
export interface StartTlsPending {
  /**
   * Bytes you already pulled from `reads` past the command that started the
   * upgrade (a client that sends its ClientHello right after `STARTTLS`
   * without waiting for an answer): handed to TLS before anything else.
   */
  readonly pending?: Uint8Array | undefined
}

/**
 * Upgrade an established plaintext connection (from `Socket.connect` or
 * `Socket.listen`) to TLS in place (STARTTLS): once it succeeds the same
 * `socket` reads and writes through TLS, and {@link info} describes it. Call
 * it when both sides agreed to upgrade and nobody is pulling `reads`; bytes
 * that arrived but were not pulled yet (the peer's ClientHello) are handed
 * to TLS, never lost, and so are bytes you pulled past the command, given as
 * `pending`. It fails like a TLS `connect` (a `Tls.HandshakeError`, or the
 * connection closing), and the connection is then destroyed. A socket that
 * is not a node:net socket (a `MemorySocket`) is a defect. The server side
 * asks for client certificates as a listener does (`clientCertificate`,
 * `clientCa`): a missing or unverified one fails the server's upgrade with
 * `PeerCertificateMissing` or the certificate's error.
 *
 * ```ts
 * yield* socket.write(encoder.encode("OK starting TLS\r\n"))
 * yield* Tls.startTls(socket, { role: "server", identity, clientCa, clientCertificate: "required" })
 * ```
 *
 * @since 0.2.0
 * @category combinators
 */
export const startTls = (
  socket: Socket.Socket,
  options: StartTlsOptions
): Effect.Effect<void, NetError.ConnectError> => internal.startTls(socket, options)

// -- errors ---------------------------------------------------------------

/**
 * Who presented the certificate an error is about: `"server"` when we are the
 * client, `"client"` when we are the server (a client certificate).
 *
 * @since 0.2.0
 * @category models
 */
export type Presenter = "server" | "client"

/**
 * What every TLS error carries.
 *
 * @since 0.2.0
 * @category models
 */
export interface TlsErrorFields {
  /** The peer. */
  readonly address?: Address.Address | undefined
  /** OpenSSL's or Node's code, e.g. `CERT_HAS_EXPIRED`, `ERR_SSL_NO_SHARED_CIPHER`. */
  readonly code?: string | undefined
  /** Whether trying again may succeed without changing anything. */
  readonly retryable: boolean
  /** The original error. */
  readonly cause?: unknown
  /** Who presented the certificate, for certificate errors. */
  readonly presenter?: Presenter | undefined
  /** The name we checked the certificate against (SNI / host). */
  readonly servername?: string | undefined
  /** The certificate's subject, when known. */
  readonly subject?: string | undefined
  /** The certificate's subject alternative names, when known. */
  readonly subjectAltNames?: ReadonlyArray<string> | undefined
  readonly validFrom?: Date | undefined
  readonly validTo?: Date | undefined
  /** Extra words for the message (a limit, what was offered). */
  readonly detail?: string | undefined
}

/**
 * Constructor arguments: {@link TlsErrorFields} with `retryable` defaulting
 * to the kind's.
 *
 * @since 0.2.0
 * @category models
 */
export type TlsErrorArgs = Omit<TlsErrorFields, "retryable"> & { readonly retryable?: boolean | undefined }

/**
 * The instance shape every TLS error shares.
 *
 * @since 0.2.0
 * @category models
 */
export interface TlsErrorOf<Tag extends string> extends Cause.YieldableError, Omit<TlsErrorFields, "cause"> {
  readonly _tag: Tag
}

const peerOf = (e: TlsErrorFields): string => e.address === undefined ? "the peer" : Address.format(e.address)
const whose = (e: TlsErrorFields): string =>
  e.presenter === "client" ? `the client certificate of ${peerOf(e)}` : `the certificate of ${peerOf(e)}`
const subjectOf = (e: TlsErrorFields): string => e.subject === undefined ? "" : ` (${e.subject})`
const tail = (e: TlsErrorFields): string =>
  `${e.detail === undefined ? "" : `: ${e.detail}`}${e.code === undefined ? "" : ` [${e.code}]`}`

const Kind = <Tag extends string>(
  tag: Tag,
  retryable: boolean,
  describe: (e: TlsErrorFields) => string
): new(args?: TlsErrorArgs) => TlsErrorOf<Tag> => {
  class Base extends Data.TaggedError(tag)<TlsErrorFields> {
    constructor(args: TlsErrorArgs = {}) {
      super({ ...args, retryable: args.retryable ?? retryable })
    }
    override get message(): string {
      return describe(this)
    }
  }
  return Base
}

/**
 * The peer's certificate does not chain to a CA we trust (unknown issuer,
 * self-signed, incomplete chain).
 *
 * ```ts
 * Effect.catchTag("CertificateUntrusted", (e) => Console.error(e.message)) // "... add the CA that issued it to tls.ca"
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class CertificateUntrusted extends Kind(
  "CertificateUntrusted",
  false,
  (e) =>
    `${whose(e)}${subjectOf(e)} is not trusted` +
    (e.presenter === "client"
      ? ": it must be issued by a CA in the server's clientCa"
      : ": add the CA that issued it to tls.ca (or have the server send its intermediate certificates)") +
    tail(e)
) {}

/**
 * The peer's certificate has expired, or is not valid yet (`code` says
 * which, `validFrom`/`validTo` when).
 *
 * ```ts
 * Effect.catchTag("CertificateExpired", (e) => Console.error(`renew it: ${e.message}`))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class CertificateExpired extends Kind(
  "CertificateExpired",
  false,
  (e) => {
    const notYet = e.code === "CERT_NOT_YET_VALID"
    const when = notYet
      ? (e.validFrom === undefined ? "" : ` until ${e.validFrom.toISOString()}`)
      : (e.validTo === undefined ? "" : ` on ${e.validTo.toISOString()}`)
    return `${whose(e)}${subjectOf(e)} ${notYet ? `is not valid yet${when}: check this machine's clock` : `expired${when}: it must be renewed`}` +
      tail({ ...e, code: e.code })
  }
) {}

/**
 * The server's certificate is valid, but not for the name we connected to.
 * The message lists the names it is valid for.
 *
 * ```ts
 * // "certificate of 10.0.0.5:443 is for example.test, *.example.org, not api.example.test: ..."
 * Effect.catchTag("HostnameMismatch", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class HostnameMismatch extends Kind(
  "HostnameMismatch",
  false,
  (e) => {
    const names = (e.subjectAltNames ?? []).map((n) => n.replace(/^(DNS|IP Address):/, "")).join(", ")
    return `the certificate of ${peerOf(e)} is for ${names.length > 0 ? names : e.subject ?? "other names"}, not ${
      e.servername ?? "the host we connected to"
    }: connect with a name it was issued for, or set tls.servername` + tail(e)
  }
) {}

/**
 * The peer refused OUR certificate: as a client, the server did not trust
 * the certificate we sent (unknown CA, bad or expired certificate) or
 * required one we did not send.
 *
 * ```ts
 * Effect.catchTag("CertificateRejected", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class CertificateRejected extends Kind(
  "CertificateRejected",
  false,
  (e) =>
    `${peerOf(e)} rejected our certificate: ` +
    (e.code === "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED"
      ? "it requires a client certificate: set tls.identity"
      : "give tls.identity a certificate issued by a CA the peer trusts") + tail(e)
) {}

/**
 * As a server requiring client certificates: the client sent none.
 *
 * ```ts
 * // logged by the server: "client 10.0.0.7:51234 sent no certificate, and one is required (clientCertificate: \"required\")"
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class PeerCertificateMissing extends Kind(
  "PeerCertificateMissing",
  false,
  (e) => `client ${peerOf(e)} sent no certificate, and one is required (clientCertificate: "required")` + tail(e)
) {}

/**
 * The two sides have no protocol version in common (say TLS 1.3 only
 * against TLS 1.2 only).
 *
 * ```ts
 * Effect.catchTag("ProtocolVersionMismatch", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class ProtocolVersionMismatch extends Kind(
  "ProtocolVersionMismatch",
  false,
  (e) => `no TLS version in common with ${peerOf(e)}: compare minVersion on both sides` + tail(e)
) {}

/**
 * The two sides have no cipher suite in common (TLS 1.2 `ciphers`).
 *
 * ```ts
 * Effect.catchTag("NoSharedCipher", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class NoSharedCipher extends Kind(
  "NoSharedCipher",
  false,
  (e) => `no cipher suite in common with ${peerOf(e)}: compare the ciphers both sides allow` + tail(e)
) {}

/**
 * The two sides have no ALPN protocol in common.
 *
 * ```ts
 * Effect.catchTag("AlpnMismatch", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class AlpnMismatch extends Kind(
  "AlpnMismatch",
  false,
  (e) => `no ALPN protocol in common with ${peerOf(e)}: compare tls.alpn on both sides` + tail(e)
) {}

/**
 * The handshake did not finish within `handshakeTimeout`: the peer stalled,
 * or it does not speak TLS and waits for us to talk first.
 *
 * ```ts
 * Socket.connect(address, { tls: { handshakeTimeout: "3 seconds" } }).pipe(Effect.retry({ times: 2, while: (e) => e.retryable }))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class HandshakeTimeout extends Kind(
  "HandshakeTimeout",
  true,
  (e) => `TLS handshake with ${peerOf(e)} did not finish in time: is it a TLS endpoint, and is it overloaded?` + tail(e)
) {}

/**
 * The peer closed its side of the connection (a clean FIN, no alert) before
 * the handshake finished. A client that does not trust the server's
 * certificate often does just that (node:tls clients do), and so does a
 * server refusing a client certificate under TLS 1.2, or a port probe;
 * `presenter` says whose certificate may be at fault. The connection is
 * released at once, not at `handshakeTimeout`.
 *
 * ```ts
 * // logged by a server: "client 10.0.0.7:51234 closed the connection before the TLS handshake finished: ..."
 * Effect.catchTag("HandshakeAbandoned", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class HandshakeAbandoned extends Kind(
  "HandshakeAbandoned",
  false,
  (e) =>
    e.presenter === "client"
      ? `client ${peerOf(e)} closed the connection before the TLS handshake finished: commonly a client that does ` +
        "not trust our certificate (check the CA it trusts and the name it connects to), or a probe" + tail(e)
      : `${peerOf(e)} closed the connection before the TLS handshake finished: commonly a server that refused our ` +
        "client certificate (set tls.identity to one issued by a CA it trusts), or one that does not speak TLS" + tail(e)
) {}

/**
 * The peer sent something that is not TLS: a plaintext protocol (HTTP,
 * a line protocol) on a TLS port, or a TLS client on a plaintext port.
 *
 * ```ts
 * Effect.catchTag("NotTls", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class NotTls extends Kind(
  "NotTls",
  false,
  (e) =>
    `${peerOf(e)} does not speak TLS: check that both sides use TLS on this port (or neither does)` + tail(e)
) {}

/**
 * Any other handshake failure; `code` and `cause` say what OpenSSL reported.
 * A client sees a bare `handshake_failure` alert when a server finds no cipher
 * in common, or requires a certificate under TLS 1.2.
 *
 * ```ts
 * Effect.catchTag("HandshakeFailed", (e) => Console.error(e.code, e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class HandshakeFailed extends Kind(
  "HandshakeFailed",
  false,
  (e) => `TLS handshake with ${peerOf(e)} failed` + tail(e)
) {}

/**
 * OpenSSL refused a certificate or key of ours: not PEM, a key that does not
 * match its certificate, a wrong passphrase, an unusable CA.
 *
 * ```ts
 * Tls.serverCredentials(material).pipe(Effect.catchTag("InvalidCredentials", (e) => Console.error(e.message)))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidCredentials extends Kind(
  "InvalidCredentials",
  false,
  (e) => `unusable TLS credentials${tail(e)}`
) {}

/**
 * Every way a handshake can fail (a connection reset during it fails with
 * the `NetError` of that instead; one closed cleanly is `HandshakeAbandoned`).
 *
 * @since 0.2.0
 * @category models
 */
export type HandshakeError =
  | CertificateUntrusted
  | CertificateExpired
  | HostnameMismatch
  | CertificateRejected
  | PeerCertificateMissing
  | ProtocolVersionMismatch
  | NoSharedCipher
  | AlpnMismatch
  | HandshakeTimeout
  | HandshakeAbandoned
  | NotTls
  | HandshakeFailed

/**
 * The handshake error for a Node/OpenSSL error of a TLS socket: the one
 * mapping, used by clients, servers and `startTls`; `undefined` for an error
 * that is not about TLS (a reset: a `NetError`).
 *
 * ```ts
 * Tls.fromTlsError(err, { address, presenter: "server" })?._tag // "CertificateExpired"
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromTlsError = (
  err: unknown,
  context: Omit<TlsErrorArgs, "cause" | "code"> = {}
): HandshakeError | undefined => internal.fromTlsError(err, context)
