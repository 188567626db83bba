/**
 * The node:tls adapter behind `Tls`: option checks, the client handshake
 * (run after the TCP connect, on Effect's clock, with our own certificate
 * checks so every failure names the certificate), the TLS listener's server
 * (SNI, client certificates, reloadable credentials, handshake failures
 * logged with their typed reason), `startTls`, `info`, and the one mapping
 * from OpenSSL's codes to the typed errors.
 *
 * Reads `../Tls.js`'s error classes only inside functions: Tls.ts imports
 * this module, and Socket.ts reaches this one first.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Net from "node:net"
import type * as NodeTls from "node:tls"
import * as Address from "../Address.js"
import * as NetError from "../NetError.js"
import type * as Socket from "../Socket.js"
import * as Tls from "../Tls.js"
import type { ConnectionSlots } from "./connectionSlots.js"
import { NodeSocket, type Raw, trustedTcpAddress } from "./nodeSocket.js"
import * as Options from "./options.js"
import { type Indexed, SwapSet } from "./swapSet.js"

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000

/**
 * node:tls, loaded when first used: loading it (and OpenSSL's bindings) costs
 * a plaintext server start-up time for nothing. A TLS socket is told apart
 * by its `encrypted` flag, which needs no module.
 */
export const nodeTls = (): typeof NodeTls => process.getBuiltinModule("node:tls")

/** Whether a socket speaks TLS (a node:tls `TLSSocket`), without loading node:tls. */
export const isTlsSocket = (raw: Net.Socket): raw is NodeTls.TLSSocket => (raw as { encrypted?: unknown }).encrypted === true

// -- option checks ----------------------------------------------------------

const check = (where: string, name: string, reason: Options.Reason): void => {
  if (reason !== undefined) throw Options.defect(where, name, reason)
}

const isPem = (u: unknown): u is Tls.Pem => typeof u === "string" || u instanceof Uint8Array

const pemList = (where: string, name: string, value: unknown): Array<string | Buffer> | undefined => {
  if (value === undefined) return undefined
  const list = Array.isArray(value) ? value : [value]
  list.forEach((pem, i) =>
    check(where, Array.isArray(value) ? `${name}[${i}]` : name, isPem(pem) ? undefined : "must be PEM text or bytes")
  )
  return list.map(asPem)
}

const asPem = (pem: Tls.Pem): string | Buffer =>
  typeof pem === "string" ? pem : Buffer.from(pem.buffer, pem.byteOffset, pem.byteLength)

const alpnList = (where: string, value: unknown): Array<string> | undefined => {
  if (value === undefined) return undefined
  check(where, "tls.alpn", Array.isArray(value) && value.length > 0 ? undefined : "must be a non-empty array of protocol names")
  const list = value as Array<unknown>
  list.forEach((p, i) =>
    check(
      where,
      `tls.alpn[${i}]`,
      typeof p === "string" && p.length > 0 && Buffer.byteLength(p) <= 255 ? undefined : "must be 1 to 255 bytes of text"
    )
  )
  return list as Array<string>
}

const handshakeMs = (where: string, value: Duration.Input | undefined, never: boolean): number => {
  if (value === undefined) return DEFAULT_HANDSHAKE_TIMEOUT_MS
  check(
    where,
    "tls.handshakeTimeout",
    Options.duration(value, { never, finite: "a handshake that never ends would hold its socket forever" })
  )
  const d = Duration.fromInputUnsafe(value)
  return Duration.isFinite(d) ? Math.max(1, Math.ceil(Duration.toMillis(d))) : 0
}

const identityOptions = (where: string, name: string, identity: unknown): NodeTls.SecureContextOptions => {
  check(where, name, typeof identity === "object" && identity !== null ? undefined : "must be { cert, key }")
  const { cert, key, passphrase } = identity as Tls.Identity
  check(where, `${name}.cert`, isPem(cert) ? undefined : "must be PEM text or bytes")
  check(where, `${name}.key`, Redacted.isRedacted(key) && isPem(Redacted.value(key)) ? undefined : "must be Redacted PEM text or bytes")
  check(where, `${name}.passphrase`, passphrase === undefined || (Redacted.isRedacted(passphrase) && typeof Redacted.value(passphrase) === "string") ? undefined : "must be Redacted text")
  return {
    cert: asPem(cert),
    key: asPem(Redacted.value(key)),
    ...(passphrase === undefined ? {} : { passphrase: Redacted.value(passphrase) })
  }
}

const versionOf = (where: string, value: unknown): NodeTls.SecureVersion => {
  if (value === undefined) return "TLSv1.2"
  check(where, "tls.minVersion", Options.oneOf(value, ["TLSv1.2", "TLSv1.3"]))
  return value as NodeTls.SecureVersion
}

/** What OpenSSL said when it refused our own material. */
const opensslMessage = (e: unknown): string => {
  const message = e instanceof Error ? e.message : String(e)
  return message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/i, "")
}

// -- client -------------------------------------------------------------------

/** A client's TLS options after checks. */
export interface ClientConfig {
  readonly node: NodeTls.ConnectionOptions
  /** The name the certificate is checked against. */
  readonly servername: string | undefined
  readonly rejectUnauthorized: boolean
  /** 0: none. */
  readonly handshakeTimeoutMs: number
}

let insecureLogged = false

/** The client's options, checked (throws the defect of an invalid one: call it inside `withOptions`). */
export const clientConfig = (where: string, options: Tls.ClientOptions, address: Address.Address): ClientConfig => {
  check(where, "tls", typeof options === "object" && options !== null ? undefined : "must be an object of TLS options")
  const host = address._tag === "TcpAddress" ? address.host : undefined
  check(
    where,
    "tls.servername",
    options.servername === undefined
      ? (host === undefined ? "is required on a Unix address: there is no host name to check the certificate against" : undefined)
      : typeof options.servername === "string" && options.servername.length > 0
      ? undefined
      : "must be a host name"
  )
  check(
    where,
    "tls.rejectUnauthorized",
    options.rejectUnauthorized === undefined || typeof options.rejectUnauthorized === "boolean" ? undefined : "must be a boolean"
  )
  const servername = options.servername ?? host
  const ca = pemList(where, "tls.ca", options.ca)
  const alpn = alpnList(where, options.alpn)
  check(where, "tls.ciphers", options.ciphers === undefined || typeof options.ciphers === "string" ? undefined : "must be an OpenSSL cipher list")
  const node: NodeTls.ConnectionOptions = {
    // SNI carries host names only; an IP address is checked against the IP SANs.
    ...(servername !== undefined && Net.isIP(servername) === 0 ? { servername } : {}),
    ...(ca === undefined ? {} : { ca }),
    ...(options.identity === undefined ? {} : identityOptions(where, "tls.identity", options.identity)),
    ...(alpn === undefined ? {} : { ALPNProtocols: alpn }),
    ...(options.ciphers === undefined ? {} : { ciphers: options.ciphers }),
    minVersion: versionOf(where, options.minVersion),
    // Checked by us on 'secureConnect' (see `verifyServer`), so the error can name the certificate.
    rejectUnauthorized: false
  }
  try {
    // OpenSSL's own check of what we were given, before anything connects.
    node.secureContext = nodeTls().createSecureContext(node)
  } catch (e) {
    throw Options.defect(where, options.identity === undefined ? "tls" : "tls.identity", `is unusable: ${opensslMessage(e)}`)
  }
  return {
    node,
    servername,
    rejectUnauthorized: options.rejectUnauthorized ?? true,
    handshakeTimeoutMs: handshakeMs(where, options.handshakeTimeout, true)
  }
}

/** The once-per-process warning of a client that checks nothing. */
export const warnInsecure = (config: ClientConfig): Effect.Effect<void> =>
  config.rejectUnauthorized || insecureLogged
    ? Effect.void
    : Effect.suspend(() => {
      insecureLogged = true
      return Effect.logWarning(
        "TLS: rejectUnauthorized is false: server certificates and host names are NOT checked, so anyone on the " +
          "path can read and change this traffic (logged once per process)"
      )
    })

/** The Node socket of a TLS client connection (not connected yet). */
export const connectRaw = (address: Address.Address, config: ClientConfig): Raw =>
  // allowHalfOpen is passed on to the net.Socket (Node's typings leave it out): close_notify ends reads, not writes.
  nodeTls().connect(
    address._tag === "TcpAddress"
      ? { ...config.node, ...HALF_OPEN, host: address.host, port: address.port }
      : { ...config.node, ...HALF_OPEN, path: address.path }
  )

const HALF_OPEN = { allowHalfOpen: true } as unknown as NodeTls.ConnectionOptions

const certificateOf = (raw: NodeTls.TLSSocket): NodeTls.PeerCertificate | undefined => {
  try {
    const cert = raw.getPeerCertificate()
    return cert !== null && typeof cert === "object" && Object.keys(cert).length > 0 ? cert : undefined
  } catch {
    return undefined
  }
}

const dn = (name: unknown): string => {
  if (name === null || typeof name !== "object") return ""
  return Object.entries(name as Record<string, unknown>)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : String(v)}`)
    .join(", ")
}

const sansOf = (cert: NodeTls.PeerCertificate): Array<string> =>
  typeof cert.subjectaltname === "string" && cert.subjectaltname.length > 0
    ? cert.subjectaltname.split(", ")
    : []

const certFields = (cert: NodeTls.PeerCertificate | undefined): Tls.TlsErrorArgs =>
  cert === undefined ? {} : {
    subject: dn(cert.subject),
    subjectAltNames: sansOf(cert),
    validFrom: new Date(cert.valid_from),
    validTo: new Date(cert.valid_to)
  }

/** The peer's certificate, as `Tls.info` shows it. */
const peerCertificate = (cert: NodeTls.PeerCertificate): Tls.PeerCertificate => ({
  subject: dn(cert.subject),
  issuer: dn(cert.issuer),
  subjectAltNames: sansOf(cert),
  fingerprint256: cert.fingerprint256,
  serialNumber: cert.serialNumber,
  validFrom: new Date(cert.valid_from),
  validTo: new Date(cert.valid_to)
})

/**
 * The client's check of the server, once the handshake finished: the chain
 * (OpenSSL's verdict) and the host name (Node's `checkServerIdentity`).
 * Returns the error, or undefined when the server is who it should be.
 */
const verifyServer = (
  raw: NodeTls.TLSSocket,
  config: ClientConfig,
  address: Address.Address
): Tls.HandshakeError | undefined => {
  if (!config.rejectUnauthorized) return undefined
  const cert = certificateOf(raw)
  const context = { address, presenter: "server" as const, servername: config.servername, ...certFields(cert) }
  const chain = (raw as unknown as { readonly authorizationError?: unknown }).authorizationError
  // Not authorized for any reason but the host name (which is checked below, to name the SANs): refused.
  if (!raw.authorized && chain !== "ERR_TLS_CERT_ALTNAME_INVALID") {
    const code = chain === undefined || chain === null ? undefined : String(chain)
    return (code === undefined ? undefined : fromCode(code, undefined, context)) ??
      new Tls.HandshakeFailed({ ...context, code, detail: "the server's certificate was not verified" })
  }
  if (cert === undefined) return new Tls.HandshakeFailed({ ...context, detail: "the server sent no certificate" })
  const hostError = nodeTls().checkServerIdentity(config.servername ?? "localhost", cert as NodeTls.PeerCertificate)
  if (hostError !== undefined) {
    return new Tls.HostnameMismatch({ ...context, code: (hostError as NodeJS.ErrnoException).code, cause: hostError })
  }
  return undefined
}

/** The failure of a TLS socket that closed before or during its handshake. */
const closedError = (
  failure: unknown,
  address: Address.Address,
  presenter: Tls.Presenter
): NetError.ConnectError => {
  const typed = fromTlsError(failure, { address, presenter })
  if (typed !== undefined) return typed
  // No error: the peer closed cleanly (a FIN, no alert).
  if (failure === undefined) return new Tls.HandshakeAbandoned({ address, presenter })
  return NetError.fromSystemError(failure, { phase: "connect", address })
}

/**
 * Wait for `socket`'s handshake (`secureConnect` for a client, `secure` for
 * a TLS socket made with `isServer`), bounded on Effect's clock, then check
 * the server as a client. On failure the socket is destroyed.
 */
const awaitHandshake = (
  socket: NodeSocket,
  role: "client" | "server",
  verify: () => Tls.HandshakeError | undefined,
  timeoutMs: number,
  address: Address.Address
): Effect.Effect<void, NetError.ConnectError> => {
  const raw = socket.raw as unknown as NodeTls.TLSSocket
  const event = role === "client" ? "secureConnect" : "secure"
  const wait = Effect.callback<void, NetError.ConnectError>((resume) => {
    const cleanup = () => {
      raw.off(event, onSecure)
      raw.off("close", onClosed)
      raw.off("end", onClosed)
    }
    const onSecure = () => {
      cleanup()
      const error = verify()
      if (error === undefined) return resume(Effect.void)
      raw.destroy()
      resume(Effect.fail(error))
    }
    const onClosed = () => {
      cleanup()
      resume(Effect.fail(closedError(socket.failure, address, role === "client" ? "server" : "client")))
    }
    raw.once(event, onSecure)
    raw.once("close", onClosed)
    // A peer that half-closes before the handshake ended will never finish it
    // (a TLS socket over a half-open socket may never close by itself).
    raw.once("end", onClosed)
    return Effect.sync(cleanup)
  })
  const bounded = timeoutMs === 0 ? wait : wait.pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(timeoutMs),
      orElse: () =>
        Effect.fail(
          new Tls.HandshakeTimeout({ address, detail: `no handshake within ${Duration.format(Duration.millis(timeoutMs))}` })
        )
    })
  )
  return Effect.onError(bounded, () => Effect.sync(() => raw.destroy()))
}

/** A client connection's handshake, once TCP connected (nodeConnect.ts). */
export const clientHandshake = (
  socket: NodeSocket,
  config: ClientConfig,
  address: Address.Address
): Effect.Effect<void, NetError.ConnectError> =>
  Effect.andThen(
    warnInsecure(config),
    awaitHandshake(
      socket,
      "client",
      () => verifyServer(socket.raw as unknown as NodeTls.TLSSocket, config, address),
      config.handshakeTimeoutMs,
      address
    )
  )

// -- errors ---------------------------------------------------------------------

/** Certificate checks (ours or OpenSSL's) by their code. */
const fromCode = (
  code: string,
  cause: unknown,
  context: Omit<Tls.TlsErrorArgs, "cause" | "code">
): Tls.HandshakeError | undefined => {
  const args = { ...context, code, cause }
  switch (code) {
    case "CERT_HAS_EXPIRED":
    case "CERT_NOT_YET_VALID":
      return new Tls.CertificateExpired(args)
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return new Tls.HostnameMismatch(args)
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "CERT_SIGNATURE_FAILURE":
    case "CERT_UNTRUSTED":
    case "CERT_REJECTED":
    case "INVALID_CA":
    case "UNABLE_TO_DECRYPT_CERT_SIGNATURE":
    case "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY":
    case "PATH_LENGTH_EXCEEDED":
    case "INVALID_PURPOSE":
      return new Tls.CertificateUntrusted(args)
    // The peer's alerts about the certificate we sent.
    case "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA":
    case "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE":
    case "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED":
    case "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN":
    case "ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE":
    case "ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED":
    case "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED":
    case "ERR_SSL_TLSV1_ALERT_ACCESS_DENIED":
      return new Tls.CertificateRejected({ ...args, presenter: undefined })
    case "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE":
      return new Tls.PeerCertificateMissing(args)
    case "ERR_SSL_UNSUPPORTED_PROTOCOL":
    case "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION":
    case "ERR_SSL_NO_PROTOCOLS_AVAILABLE":
    case "ERR_SSL_WRONG_SSL_VERSION":
      return new Tls.ProtocolVersionMismatch(args)
    case "ERR_SSL_NO_SHARED_CIPHER":
    case "ERR_SSL_NO_CIPHERS_AVAILABLE":
      return new Tls.NoSharedCipher(args)
    case "ERR_SSL_NO_APPLICATION_PROTOCOL":
    case "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL":
      return new Tls.AlpnMismatch(args)
    case "ERR_TLS_HANDSHAKE_TIMEOUT":
      return new Tls.HandshakeTimeout(args)
    // Not TLS: a plaintext protocol's first bytes, our own ClientHello echoed back, garbage.
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_HTTP_REQUEST":
    case "ERR_SSL_HTTPS_PROXY_REQUEST":
    case "ERR_SSL_PACKET_LENGTH_TOO_LONG":
    case "ERR_SSL_RECORD_LENGTH_MISMATCH":
    case "ERR_SSL_UNEXPECTED_MESSAGE":
    case "ERR_SSL_UNEXPECTED_RECORD":
    case "ERR_SSL_EXCESSIVE_MESSAGE_SIZE":
    case "ERR_SSL_UNKNOWN_PROTOCOL":
      return new Tls.NotTls(args)
    case "ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE":
    case "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE":
      return new Tls.HandshakeFailed({
        ...args,
        detail: "the peer refused the handshake (alert handshake_failure): commonly no cipher in common, " +
          "or it requires a client certificate (tls.identity)"
      })
    default:
      return code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") ? new Tls.HandshakeFailed(args) : undefined
  }
}

/** @internal */
export const fromTlsError = (
  err: unknown,
  context: Omit<Tls.TlsErrorArgs, "cause" | "code">
): Tls.HandshakeError | undefined => {
  const code = (err as { readonly code?: unknown } | undefined)?.code
  return typeof code === "string" ? fromCode(code, err, context) : undefined
}

// -- what a connection negotiated -------------------------------------------------

const tlsSocketOf = (socket: Socket.Socket): NodeTls.TLSSocket | undefined =>
  socket instanceof NodeSocket && isTlsSocket(socket.raw) ? socket.raw : undefined

/** @internal */
export const info = (socket: Socket.Socket): Option.Option<Tls.TlsInfo> => {
  const raw = tlsSocketOf(socket)
  if (raw === undefined) return Option.none()
  const cipher = raw.getCipher()
  const cert = certificateOf(raw)
  const alpn = raw.alpnProtocol
  const servername = (raw as unknown as { readonly servername?: unknown }).servername
  return Option.some({
    protocol: raw.getProtocol() ?? "unknown",
    cipher: cipher?.standardName ?? cipher?.name ?? "unknown",
    alpnProtocol: typeof alpn === "string" ? alpn : undefined,
    servername: typeof servername === "string" ? servername : undefined,
    authorized: raw.authorized,
    peerCertificate: cert === undefined ? Option.none() : Option.some(peerCertificate(cert))
  })
}

// -- server credentials -----------------------------------------------------------

/** The key under which `Tls.ServerCredentials` keeps its state. */
export const CredentialsTypeId: unique symbol = Symbol.for("effect-wire/Tls/ServerCredentials")

/** Server material in node:tls's terms, checked. */
export interface CompiledMaterial {
  readonly identity: NodeTls.SecureContextOptions
  readonly sni: ReadonlyArray<readonly [string, NodeTls.SecureContextOptions]>
  readonly clientCa: Array<string | Buffer> | undefined
}

/** What a `ServerCredentials` holds: the current material, and the listeners to tell of a new one. */
export class CredentialsState {
  generation = 0
  readonly subscribers = new Set<() => void>()
  constructor(public material: CompiledMaterial) {}
}

/** Material in node:tls's terms (throws the defect of a malformed one). */
const compileMaterial = (where: string, prefix: string, material: Partial<Tls.ServerMaterial>): CompiledMaterial => {
  check(where, `${prefix}identity`, material.identity === undefined ? "is required: the certificate and key the server presents" : undefined)
  const sni = material.sni ?? {}
  check(where, `${prefix}sni`, typeof sni === "object" && sni !== null ? undefined : "must be an object of host name to identity")
  return {
    identity: identityOptions(where, `${prefix}identity`, material.identity),
    sni: Object.entries(sni).map(([name, identity]) => {
      check(where, `${prefix}sni`, /^(\*\.)?[A-Za-z0-9.-]+$/.test(name) ? undefined : `has an invalid host name ${JSON.stringify(name)}`)
      return [name.toLowerCase(), identityOptions(where, `${prefix}sni[${JSON.stringify(name)}]`, identity)] as const
    }),
    clientCa: pemList(where, `${prefix}clientCa`, material.clientCa)
  }
}

/**
 * OpenSSL's verdict on compiled material (throws its error), and the contexts
 * it made: the default identity's as options (what a node:tls server is
 * given) and as the context OpenSSL built from them.
 */
const contextsOf = (
  material: CompiledMaterial,
  common: NodeTls.SecureContextOptions
): {
  readonly identity: NodeTls.SecureContextOptions
  readonly identityContext: NodeTls.SecureContext
  readonly sni: ReadonlyArray<readonly [string, NodeTls.SecureContext]>
} => {
  const ca = material.clientCa === undefined ? {} : { ca: material.clientCa }
  const identity = { ...common, ...ca, ...material.identity }
  return {
    identity,
    identityContext: nodeTls().createSecureContext(identity),
    sni: material.sni.map(([name, id]) => [name, nodeTls().createSecureContext({ ...common, ...ca, ...id })] as const)
  }
}

const invalidCredentials = (e: unknown): Tls.InvalidCredentials =>
  new Tls.InvalidCredentials({
    code: typeof (e as { code?: unknown })?.code === "string" ? (e as { code: string }).code : undefined,
    detail: e instanceof Error && e.name === "IllegalArgumentError" ? e.message : opensslMessage(e),
    cause: e
  })

const checkedMaterial = (material: Tls.ServerMaterial): Effect.Effect<CompiledMaterial, Tls.InvalidCredentials> =>
  Effect.try({
    try: () => {
      const compiled = compileMaterial("Tls", "", material)
      contextsOf(compiled, {})
      return compiled
    },
    catch: invalidCredentials
  })

/** @internal */
export const serverCredentials = (material: Tls.ServerMaterial): Effect.Effect<Tls.ServerCredentials, Tls.InvalidCredentials> =>
  Effect.map(checkedMaterial(material), (compiled) => {
    const state = new CredentialsState(compiled)
    return {
      [CredentialsTypeId]: state,
      reload: (next: Tls.ServerMaterial) =>
        Effect.flatMap(checkedMaterial(next), (compiled) =>
          Effect.sync(() => {
            state.material = compiled
            state.generation++
            for (const notify of state.subscribers) notify()
          })),
      generation: Effect.sync(() => state.generation)
    }
  })

// -- server ------------------------------------------------------------------------

/** A listener's TLS options after checks. */
export interface ServerConfig {
  readonly credentials: CredentialsState
  readonly clientCertificate: Tls.ClientCertificate
  readonly alpn: Array<string> | undefined
  readonly common: NodeTls.SecureContextOptions
  readonly handshakeTimeoutMs: number
}

/** The listener's options, checked (throws the defect of an invalid one: call it inside `withOptions`). */
export const serverConfig = (where: string, options: Tls.ServerOptions): ServerConfig => {
  check(where, "tls", typeof options === "object" && options !== null ? undefined : "must be an object of TLS options")
  const given = options.credentials
  check(
    where,
    "tls.credentials",
    given === undefined
      ? undefined
      : options.identity !== undefined || options.sni !== undefined || options.clientCa !== undefined
      ? "cannot be given with identity, sni or clientCa: they are part of the credentials"
      : typeof given === "object" && given !== null && CredentialsTypeId in given
      ? undefined
      : "must come from Tls.serverCredentials"
  )
  const clientCertificate = options.clientCertificate ?? "none"
  check(where, "tls.clientCertificate", Options.oneOf(clientCertificate, ["none", "optional", "required"]))
  check(where, "tls.ciphers", options.ciphers === undefined || typeof options.ciphers === "string" ? undefined : "must be an OpenSSL cipher list")
  const common: NodeTls.SecureContextOptions = {
    minVersion: versionOf(where, options.minVersion),
    ...(options.ciphers === undefined ? {} : { ciphers: options.ciphers })
  }
  let credentials: CredentialsState
  if (given !== undefined) {
    credentials = given[CredentialsTypeId]
  } else {
    const compiled = compileMaterial(where, "tls.", options)
    try {
      contextsOf(compiled, common)
    } catch (e) {
      throw Options.defect(where, "tls", `has unusable certificates or keys: ${opensslMessage(e)}`)
    }
    credentials = new CredentialsState(compiled)
  }
  check(
    where,
    "tls.clientCa",
    clientCertificate !== "none" && credentials.material.clientCa === undefined
      ? `is required with clientCertificate: "${clientCertificate}": the CAs client certificates must chain to`
      : undefined
  )
  return {
    credentials,
    clientCertificate,
    alpn: alpnList(where, options.alpn),
    common,
    handshakeTimeoutMs: handshakeMs(where, options.handshakeTimeout, false)
  }
}

const sniMatch = (
  sni: ReadonlyArray<readonly [string, NodeTls.SecureContext]>,
  servername: string
): NodeTls.SecureContext | undefined => {
  const name = servername.toLowerCase()
  for (const [pattern, context] of sni) if (pattern === name) return context
  const dot = name.indexOf(".")
  if (dot > 0) {
    const wildcard = `*${name.slice(dot)}`
    for (const [pattern, context] of sni) if (pattern === wildcard) return context
  }
  return undefined
}

/** Where a TLS listener reports a failed handshake. */
export interface HandshakeReporter {
  /** The server's slots when a `Server` runs the listener (its log lines), else undefined. */
  readonly slots: () => ConnectionSlots | undefined
  /** Runs an effect from a callback with the context `listen` ran in. */
  readonly fork: (effect: Effect.Effect<void>) => void
  readonly name: () => string
  /** Told of every handshake's outcome (the listener's metrics): its duration, and its error's tag on failure. */
  readonly handshake?: ((durationMs: number, errorTag: string | undefined) => void) | undefined
}

/** How one handshake on a TLS listener failed: what {@link handshakeDone} receives. */
export interface HandshakeOutcome {
  /** The listener's name (its address, or the server's `name`). */
  readonly listener: string
  /** The client. */
  readonly peer: Address.Address
  /** From the TCP accept to the end of the handshake (its refusal included). */
  readonly durationMs: number
  readonly error: Tls.HandshakeError | NetError.NetError
}

/**
 * The one place every failed handshake of every TLS listener ends: it is
 * counted by its tag in `failures` (what `Server.stats` and
 * `Tls.handshakeFailures` read) and logged by the listener's own `report`.
 * (The listener's `HandshakeReporter.handshake` is told of every
 * handshake, successes too: the metrics.)
 */
export const handshakeDone = (failures: Map<string, number>, outcome: HandshakeOutcome): void => {
  failures.set(outcome.error._tag, (failures.get(outcome.error._tag) ?? 0) + 1)
}

/** A TLS listener's server and what it keeps beside a plaintext one. */
export interface TlsServer {
  readonly server: NodeTls.Server
  /** Handshakes that failed, by the tag of their error (see {@link handshakeDone}). */
  readonly failures: Map<string, number>
  /** Stop following credential reloads, destroy the handshakes in progress. */
  readonly close: () => void
}

/** Failures that are the internet's noise rather than a client of ours that cannot connect: logged at debug. */
const NOISE = new Set(["NotTls", "HandshakeTimeout", "ConnectionReset", "Unknown"])

/** A TLS listener's TCP connection, from accept to close: when it was accepted (its handshake's start). */
interface Handshaking extends Indexed {
  readonly socket: Net.Socket
  readonly start: number
}
const kHandshaking: unique symbol = Symbol("effect-wire/internal/nodeTls/handshaking")

/** The TCP socket under a listener's TLS socket. */
const parentOf = (socket: NodeTls.TLSSocket): Net.Socket =>
  (socket as unknown as { readonly _parent?: Net.Socket })._parent ?? socket

/**
 * A server's check of its client's certificate once the handshake ended (the
 * listener's and `startTls`'s): the error to refuse it with, or undefined to
 * serve it. `authorized` and `verdict` are OpenSSL's chain check against `clientCa`.
 */
const verifyClient = (
  socket: NodeTls.TLSSocket,
  clientCertificate: Tls.ClientCertificate,
  authorized: boolean,
  verdict: unknown,
  peer: () => Address.Address
): Tls.HandshakeError | undefined => {
  if (clientCertificate === "none" || authorized) return undefined
  const cert = certificateOf(socket)
  if (cert === undefined && clientCertificate === "optional") return undefined
  const address = peer()
  if (cert === undefined) return new Tls.PeerCertificateMissing({ address })
  const context = { address, presenter: "client" as const, ...certFields(cert) }
  const code = typeof verdict === "string" ? verdict : undefined
  return (code === undefined ? undefined : fromCode(code, undefined, context)) ??
    new Tls.CertificateUntrusted({ ...context, code })
}

/** The node:tls server of a TLS listener. Its accepted sockets arrive on 'secureConnection', paused. */
export const createServer = (
  config: ServerConfig,
  /** node:net's per-connection socket options (TCP_NODELAY, keep-alive), see `acceptOptions`. */
  accepted: Pick<Net.ServerOpts, "noDelay" | "keepAlive" | "keepAliveInitialDelay">,
  reporter: HandshakeReporter
): TlsServer => {
  let contexts = contextsOf(config.credentials.material, config.common)
  const requestCert = config.clientCertificate !== "none"
  const server = nodeTls().createServer({
    ...contexts.identity,
    ...accepted,
    // Not half-open until the handshake succeeded (see 'secureConnection' below): a client that
    // half-closes before then (a FIN, no alert) would otherwise hold its socket until the handshake
    // timeout; this way node:tls ends and closes it at once, and 'tlsClientError' reports it.
    allowHalfOpen: false,
    requestCert,
    // Client certificates are checked on 'secureConnection' below, where the
    // peer and its certificate are still known (Node's own check closes the
    // socket first, and its error names neither).
    rejectUnauthorized: false,
    handshakeTimeout: config.handshakeTimeoutMs,
    ...(config.alpn === undefined ? {} : { ALPNProtocols: config.alpn })
    // No SNICallback: Node's own, over `addContext`, chooses the certificate in C++ and, while no
    // name was added, never pauses the handshake to call into JavaScript (a custom callback cost
    // every handshake a measurable share of its server CPU).
  })
  // Node's SNI matching takes the newest entry that matches, a `*` standing for one label.
  const addSni = (previous: ReadonlyArray<string>) => {
    const names = new Set(contexts.sni.map(([name]) => name))
    const dropped = previous.filter((name) => !names.has(name))
    // A name no longer listed gets the default certificate again; wildcards go before exact names,
    // so that an exact name wins over a wildcard that also matches it, as `sniMatch` does.
    if (dropped.length > 0) {
      const fallback = contexts.identityContext
      for (const name of dropped) server.addContext(name, fallback)
    }
    for (const [name, context] of contexts.sni) if (name.startsWith("*.")) server.addContext(name, context)
    for (const [name, context] of contexts.sni) if (!name.startsWith("*.")) server.addContext(name, context)
  }
  addSni([])
  const reload = () => {
    try {
      const previous = contexts.sni.map(([name]) => name)
      contexts = contextsOf(config.credentials.material, config.common)
      server.setSecureContext(contexts.identity)
      addSni(previous)
    } catch (e) {
      // The material passed OpenSSL's check with default options; with this listener's it did not.
      reporter.fork(Effect.logWarning(`${reporter.name()}: TLS credentials not reloaded: ${opensslMessage(e)}`))
    }
  }
  config.credentials.subscribers.add(reload)
  // The TCP sockets whose handshake is in progress, with when they were accepted
  // (not a Map: see internal/swapSet.ts; each socket holds its own entry).
  const handshaking = new SwapSet<Handshaking>()
  const failures = new Map<string, number>()
  const durationOf = (socket: NodeTls.TLSSocket): number => {
    const entry = (parentOf(socket) as Net.Socket & { [kHandshaking]?: Handshaking })[kHandshaking]
    return entry === undefined ? 0 : performance.now() - entry.start
  }
  // Per connection, a success costs no more than the metrics' histogram.
  const succeeded = (socket: NodeTls.TLSSocket) => reporter.handshake?.(durationOf(socket), undefined)
  const done = (socket: NodeTls.TLSSocket, peer: Address.Address, error: Tls.HandshakeError | NetError.NetError) => {
    const durationMs = durationOf(socket)
    handshakeDone(failures, { listener: reporter.name(), peer, durationMs, error })
    reporter.handshake?.(durationMs, error._tag)
  }

  const report = (socket: NodeTls.TLSSocket, error: Tls.HandshakeError | NetError.NetError, peer: Address.Address) => {
    done(socket, peer, error)
    const slots = reporter.slots()
    const line = `${reporter.name()}: TLS handshake with ${Address.format(peer)} failed: ${error._tag}: ${error.message}`
    // A client that closed before sending a byte is a probe (a TCP health check); one that closed
    // after its ClientHello is likely one that does not trust our certificate.
    const noise = NOISE.has(error._tag) || (error._tag === "HandshakeAbandoned" && parentOf(socket).bytesRead === 0)
    const log = noise ? Effect.logDebug(line) : Effect.logWarning(line)
    if (slots !== undefined) slots.fork(slots.logged(log, { peer: Address.format(peer) }))
    else reporter.fork(Effect.annotateLogs(log, { peer: Address.format(peer) }))
  }
  const peerOf = (tls: NodeTls.TLSSocket): Address.Address => {
    const socket = tls.remoteAddress !== undefined ? tls : parentOf(tls)
    return socket.remoteAddress !== undefined && socket.remotePort !== undefined
      ? trustedTcpAddress(socket.remoteAddress, socket.remotePort)
      : Address.unknownPeer
  }

  function forget(this: Net.Socket & { [kHandshaking]?: Handshaking }): void {
    const entry = this[kHandshaking]
    if (entry !== undefined) handshaking.delete(entry)
  }
  server.on("connection", (socket: Net.Socket & { [kHandshaking]?: Handshaking }) => {
    const entry: Handshaking = { socket, start: performance.now(), setIndex: -1 }
    socket[kHandshaking] = entry
    handshaking.add(entry)
    // Read (and cached by Node) now: a client that closes before its handshake ended is reported
    // once its socket is closed, which no longer knows its peer. The TLS socket of a handshake that
    // succeeds gets the same answer (see 'secureConnection'), so this costs no getpeername call.
    void socket.remoteAddress
    socket.once("close", forget)
  })
  server.on("tlsClientError", (err: Error, socket: NodeTls.TLSSocket) => {
    const peer = peerOf(socket)
    report(
      socket,
      fromTlsError(err, { address: peer, presenter: "client" }) ??
        // Its reads ended: the client half-closed (node:tls then closed it and says "socket hang up").
        (socket.readableEnded
          ? new Tls.HandshakeAbandoned({ address: peer, presenter: "client" })
          : NetError.fromSystemError(err, { phase: "read", address: peer })),
      peer
    )
    socket.destroy()
  })
  // Registered before the listener's own handler: the socket reaches it paused,
  // and a client certificate that does not verify (or a missing one, when
  // required) never reaches it: the listener skips a destroyed socket.
  server.prependListener("secureConnection", (socket: NodeTls.TLSSocket) => {
    socket.pause()
    // Handshaken: from now on the client's close_notify or FIN ends our reads, not our writes.
    socket.allowHalfOpen = true
    const verdict = (socket as unknown as { readonly authorizationError?: unknown }).authorizationError
    // The peer read at accept, for the TLS socket's own `remoteAddress` (it would ask the kernel again).
    const tls = socket as unknown as { _peername?: unknown }
    tls._peername ??= (parentOf(socket) as unknown as { readonly _peername?: unknown })._peername
    const error = verifyClient(socket, config.clientCertificate, socket.authorized, verdict, () => peerOf(socket))
    if (error === undefined) return succeeded(socket)
    report(socket, error, error.address ?? Address.unknownPeer)
    socket.destroy()
  })
  return {
    server,
    failures,
    close: () => {
      config.credentials.subscribers.delete(reload)
      for (const { socket } of handshaking) socket.destroy()
      handshaking.clear()
    }
  }
}

/** @internal */
export const handshakeFailures = (listener: Socket.Listener): Option.Option<Readonly<Record<string, number>>> => {
  const tls = (listener as { readonly tls?: TlsServer | undefined }).tls
  return tls === undefined || !isTlsServer(tls.server)
    ? Option.none()
    : Option.some(Object.fromEntries(tls.failures))
}

/**
 * Is this a TLS listener's server? Its connections arrive on 'secureConnection'. A
 * node:tls `Server` is the `net.Server` with `addContext` (asked without loading node:tls).
 */
export const isTlsServer = (server: Net.Server): server is NodeTls.Server =>
  typeof (server as Partial<NodeTls.Server>).addContext === "function"

// -- STARTTLS ------------------------------------------------------------------------

/**
 * The client certificate of a server-side upgrade. A TLS socket made by hand
 * has nobody to set `authorized` (a listener's server does): OpenSSL's verdict
 * is read here and kept on the socket, where `Tls.info` reads it.
 */
const verifyUpgraded = (
  tls: NodeTls.TLSSocket,
  config: ServerConfig,
  address: Address.Address
): Tls.HandshakeError | undefined => {
  // What node:tls's own server reads for `authorized` (TLSWrap's verifyError: null when the chain verified).
  const handle = (tls as unknown as { readonly _handle?: { verifyError?: () => NodeJS.ErrnoException | null } })._handle
  // Fail closed: without OpenSSL's verdict, the certificate is not trusted.
  const failure = typeof handle?.verifyError === "function" ? handle.verifyError() : new Error("no verdict")
  const verdict = failure === null ? undefined : (failure as NodeJS.ErrnoException).code
  tls.authorized = failure === null && certificateOf(tls) !== undefined
  if (verdict !== undefined) (tls as unknown as { authorizationError: string }).authorizationError = verdict
  return verifyClient(tls, config.clientCertificate, tls.authorized, verdict, () => address)
}

/** @internal */
export const startTls = (
  socket: Socket.Socket,
  options: Tls.StartTlsOptions
): Effect.Effect<void, NetError.ConnectError> =>
  Effect.suspend(() => {
    const where = "Tls.startTls"
    if (!(socket instanceof NodeSocket)) {
      return Effect.die(Options.defect(where, "socket", "must come from Socket.connect or Socket.listen (a node:net socket)"))
    }
    if (isTlsSocket(socket.raw)) return Effect.die(Options.defect(where, "socket", "already speaks TLS"))
    if (socket.isRead) {
      return Effect.die(Options.defect(where, "socket", "is being read (reads or a pump): stop reading before upgrading"))
    }
    if (socket.isClosing || socket.raw.destroyed) {
      return Effect.fail(new NetError.ConnectionReset({ address: socket.remoteAddress, detail: "the connection closed before STARTTLS" }))
    }
    const role = (options as { readonly role?: unknown }).role
    if (role !== "client" && role !== "server") {
      return Effect.die(Options.defect(where, "role", Options.oneOf(role, ["client", "server"]) ?? ""))
    }
    const address = socket.remoteAddress
    let upgrade: () => Effect.Effect<void, NetError.ConnectError>
    try {
      if (role === "client") {
        const config = clientConfig(where, options as Tls.ClientOptions, address)
        upgrade = () => {
          const tls = nodeTls().connect({ ...config.node, ...HALF_OPEN, socket: socket.raw })
          socket.rebind(tls)
          return clientHandshake(socket, config, address)
        }
      } else {
        const config = serverConfig(where, options as Tls.ServerOptions)
        const requestCert = config.clientCertificate !== "none"
        upgrade = () => {
          const contexts = contextsOf(config.credentials.material, config.common)
          const tls = new (nodeTls().TLSSocket)(socket.raw, {
            isServer: true,
            secureContext: contexts.identityContext,
            SNICallback: (servername, cb) => cb(null, sniMatch(contexts.sni, servername)),
            // Checked once the handshake ended (`verifyClient`), as a listener does, so the error names the certificate.
            requestCert,
            rejectUnauthorized: false,
            ...(config.alpn === undefined ? {} : { ALPNProtocols: config.alpn })
          })
          socket.rebind(tls)
          const verify = () => requestCert ? verifyUpgraded(tls, config, address) : undefined
          return awaitHandshake(socket, "server", verify, config.handshakeTimeoutMs, address)
        }
      }
    } catch (e) {
      return Effect.die(e)
    }
    // Bytes read but not pulled (the peer's first TLS bytes) go back to the
    // plaintext socket, where TLS reads them first.
    const pending = (options as Tls.StartTlsPending).pending
    if (pending !== undefined && !(pending instanceof Uint8Array)) {
      return Effect.die(Options.defect(where, "pending", "must be bytes (a Uint8Array)"))
    }
    const early: Array<Uint8Array> = pending === undefined || pending.length === 0 ? [] : [pending]
    const queued = socket.takeQueue()
    if (queued !== undefined) early.push(...queued)
    socket.pauseReading()
    if (early.length > 0) socket.raw.unshift(Buffer.concat(early))
    return upgrade()
  })
