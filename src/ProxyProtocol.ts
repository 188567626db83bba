/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): the header a load
 * balancer writes at the start of a TCP connection to say who the client
 * really is, before the client's own bytes.
 *
 * ```
 *  client 203.0.113.7:51000 ──▶ HAProxy ──▶ server (sees HAProxy's address as its peer)
 *                                  │
 *                                  └─ writes first:  | PROXY header (v1 text / v2 binary) | client bytes… |
 * ```
 *
 * This module is the pure part: the header as a value, {@link encode}, an
 * incremental {@link decoder} (a header split over any number of reads, the
 * bytes after it handed back), and one tagged error per way a header can be
 * refused. `Server.layer({ proxyProtocol })` reads the header before the
 * handler runs; `Socket.connect(address, { proxyHeader })` writes one.
 *
 * ```ts
 * const bytes = ProxyProtocol.encode(ProxyProtocol.v2(Address.tcp("203.0.113.7", 51000), Address.tcp("10.0.0.2", 443)))
 * const step = ProxyProtocol.decoder().push(bytes) // { _tag: "Done", header, rest }
 * ```
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import { isIPv4, isIPv6 } from "node:net"
import * as Address from "./Address.js"
import type * as Socket from "./Socket.js"

// -- the header ---------------------------------------------------------------

/**
 * A version of the protocol: `"v1"` is a text line (`PROXY TCP4 … \r\n`),
 * `"v2"` a binary block with a 12-byte signature and optional TLVs.
 *
 * @since 0.2.0
 * @category models
 */
export type Version = "v1" | "v2"

/**
 * What the connection carried between the client and the load balancer.
 * `"UNKNOWN"`: not said (v1 `UNKNOWN`, v2 `UNSPEC`, a v2 `LOCAL` header);
 * the connection's real peer is kept. v1 only has `TCP4`, `TCP6` and `UNKNOWN`.
 *
 * @since 0.2.0
 * @category models
 */
export type Protocol = "TCP4" | "TCP6" | "UDP4" | "UDP6" | "UNIX_STREAM" | "UNIX_DGRAM" | "UNKNOWN"

/**
 * One of the SSL TLV's fields (`PP2_SUBTYPE_SSL_*`), as text.
 *
 * @since 0.2.0
 * @category models
 */
export type SslField = "version" | "cn" | "cipher" | "sigAlg" | "keyAlg"

/**
 * A v2 type-length-value extension. The ones the specification names are
 * decoded (`Alpn`, `Authority`, `UniqueId`, `Ssl`; `Crc32c` is checked on
 * decode and computed on encode); any other type is kept as `Raw`.
 *
 * @since 0.2.0
 * @category models
 */
export type Tlv =
  | { readonly _tag: "Alpn"; readonly protocol: string }
  | { readonly _tag: "Authority"; readonly hostname: string }
  | { readonly _tag: "Crc32c" }
  | { readonly _tag: "UniqueId"; readonly id: Uint8Array }
  | {
    readonly _tag: "Ssl"
    /** `PP2_CLIENT_*` bits: 1 SSL, 2 client certificate on this connection, 4 on the session. */
    readonly client: number
    /** 0 when the client presented a certificate that verified. */
    readonly verify: number
    readonly fields: ReadonlyArray<SslTlv>
  }
  | RawTlv

/**
 * A TLV of a type this module does not decode (`NOOP`, `NETNS`, custom
 * `0xE0`–`0xEF`, …), kept as its bytes.
 *
 * @since 0.2.0
 * @category models
 */
export interface RawTlv {
  readonly _tag: "Raw"
  readonly type: number
  readonly value: Uint8Array
}

/**
 * A field inside the SSL TLV.
 *
 * @since 0.2.0
 * @category models
 */
export type SslTlv = { readonly _tag: "SslField"; readonly name: SslField; readonly value: string } | RawTlv

/**
 * A PROXY protocol header. `command: "PROXY"` carries the client
 * (`source`) and the address it connected to (`destination`);
 * `"LOCAL"` (v2 only: a load balancer's own health check) carries none and
 * the connection's real peer stands. UDP endpoints are `TcpAddress`es, as
 * in the `Datagram` module.
 *
 * ```ts
 * const header: ProxyProtocol.Header = ProxyProtocol.v1(Address.tcp("203.0.113.7", 51000), Address.tcp("10.0.0.2", 443))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Header {
  readonly version: Version
  readonly command: "PROXY" | "LOCAL"
  readonly protocol: Protocol
  /** The original client; undefined for `UNKNOWN` and `LOCAL`. */
  readonly source: Address.Address | undefined
  /** The address the client connected to; undefined for `UNKNOWN` and `LOCAL`. */
  readonly destination: Address.Address | undefined
  /** v2 extensions, in wire order (always empty for v1). */
  readonly tlvs: ReadonlyArray<Tlv>
}

const protocolOf = (source: Address.Address, destination: Address.Address, dgram: boolean): Protocol => {
  if (source._tag !== destination._tag) {
    throw new Cause.IllegalArgumentError("ProxyProtocol: source and destination must both be TCP or both be Unix addresses")
  }
  if (source._tag === "UnixAddress") return dgram ? "UNIX_DGRAM" : "UNIX_STREAM"
  const six = isIPv6(source.host)
  if (six !== isIPv6((destination as Address.TcpAddress).host)) {
    throw new Cause.IllegalArgumentError("ProxyProtocol: source and destination must both be IPv4 or both be IPv6")
  }
  return dgram ? (six ? "UDP6" : "UDP4") : six ? "TCP6" : "TCP4"
}

/**
 * A v1 (text) header for a TCP connection from `source` to `destination`
 * (both IPv4 or both IPv6); without addresses, `PROXY UNKNOWN`.
 *
 * ```ts
 * ProxyProtocol.v1(Address.tcp("203.0.113.7", 51000), Address.tcp("10.0.0.2", 443)) // PROXY TCP4 203.0.113.7 10.0.0.2 51000 443
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const v1 = (source?: Address.TcpAddress, destination?: Address.TcpAddress): Header =>
  source === undefined || destination === undefined
    ? { version: "v1", command: "PROXY", protocol: "UNKNOWN", source: undefined, destination: undefined, tlvs: [] }
    : { version: "v1", command: "PROXY", protocol: protocolOf(source, destination, false), source, destination, tlvs: [] }

/**
 * A v2 (binary) `PROXY` header: TCP over IPv4 or IPv6, or a Unix stream
 * (`datagram: true` for UDP or a Unix datagram socket), with TLVs.
 *
 * ```ts
 * ProxyProtocol.v2(Address.tcp("2001:db8::7", 51000), Address.tcp("2001:db8::2", 443), {
 *   tlvs: [{ _tag: "Alpn", protocol: "h2" }, { _tag: "Crc32c" }]
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const v2 = (
  source: Address.Address,
  destination: Address.Address,
  options?: { readonly tlvs?: ReadonlyArray<Tlv> | undefined; readonly datagram?: boolean | undefined } | undefined
): Header => ({
  version: "v2",
  command: "PROXY",
  protocol: protocolOf(source, destination, options?.datagram === true),
  source,
  destination,
  tlvs: options?.tlvs ?? []
})

/**
 * The v2 `LOCAL` header a load balancer sends on its own connections (health
 * checks): the server keeps the connection's real peer.
 *
 * ```ts
 * ProxyProtocol.encode(ProxyProtocol.local) // 16 bytes
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const local: Header = {
  version: "v2",
  command: "LOCAL",
  protocol: "UNKNOWN",
  source: undefined,
  destination: undefined,
  tlvs: []
}

/**
 * The first TLV of a kind, if the header has one.
 *
 * ```ts
 * const alpn = ProxyProtocol.tlv(header, "Alpn") // Option<{ _tag: "Alpn", protocol: "h2" }>
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const tlv = <Tag extends Tlv["_tag"]>(header: Header, tag: Tag): Option.Option<Extract<Tlv, { _tag: Tag }>> => {
  const found = header.tlvs.find((t) => t._tag === tag)
  return Option.fromUndefinedOr(found as Extract<Tlv, { _tag: Tag }> | undefined)
}

// -- errors -------------------------------------------------------------------

/**
 * What every PROXY header error carries.
 *
 * @since 0.2.0
 * @category models
 */
export interface HeaderErrorFields {
  /** The peer that sent it (the load balancer, or whoever connected). */
  readonly address?: Address.Address | undefined
  /** What exactly was wrong. */
  readonly detail?: string | undefined
  /** Never: the same peer sending the same bytes is refused again. */
  readonly retryable: false
}

/**
 * The instance shape every PROXY header error shares.
 *
 * @since 0.2.0
 * @category models
 */
export interface HeaderErrorOf<Tag extends string> extends Cause.YieldableError, HeaderErrorFields {
  readonly _tag: Tag
}

const peerOf = (e: HeaderErrorFields): string => e.address === undefined ? "the peer" : Address.format(e.address)
const detailOf = (e: HeaderErrorFields): string => e.detail === undefined ? "" : `: ${e.detail}`

const Kind = <Tag extends string>(
  tag: Tag,
  describe: (e: HeaderErrorFields) => string
): new(args?: Omit<HeaderErrorFields, "retryable">) => HeaderErrorOf<Tag> => {
  class Base extends Data.TaggedError(tag)<HeaderErrorFields> {
    constructor(args: Omit<HeaderErrorFields, "retryable"> = {}) {
      super({ ...args, retryable: false })
    }
    override get message(): string {
      return describe(this)
    }
  }
  return Base
}

/**
 * The bytes at the start of the connection are not a valid PROXY header
 * (no signature, a bad field, a length that lies, a bad checksum).
 *
 * ```ts
 * Effect.catchTag("MalformedProxyHeader", (e) => Console.error(e.message))
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class MalformedProxyHeader extends Kind(
  "MalformedProxyHeader",
  (e) =>
    `${peerOf(e)} sent no valid PROXY protocol header${detailOf(e)}; a server with proxyProtocol on only takes ` +
    "connections through a load balancer that sends one (HAProxy: send-proxy or send-proxy-v2)"
) {}

/**
 * A header came from an address that is not in `trustedSources`: anyone
 * could claim any client address, so only the load balancers may.
 *
 * ```ts
 * Server.layer({ address, handler, proxyProtocol: { trustedSources: ["10.0.0.0/8"] } })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class UntrustedProxySource extends Kind(
  "UntrustedProxySource",
  (e) =>
    `connection from ${peerOf(e)} refused: it is not in proxyProtocol.trustedSources${detailOf(e)}; ` +
    "add the load balancer's address (or its network as a CIDR) if it is one"
) {}

/**
 * The whole header did not arrive within `headerTimeout`.
 *
 * ```ts
 * Server.layer({ address, handler, proxyProtocol: { trustedSources, headerTimeout: "2 seconds" } })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class ProxyHeaderTimeout extends Kind(
  "ProxyHeaderTimeout",
  (e) =>
    `${peerOf(e)} did not send a whole PROXY protocol header in time${detailOf(e)}; ` +
    "raise proxyProtocol.headerTimeout if the load balancer is that slow"
) {}

/**
 * A v2 header announced more bytes than `maxHeaderSize` (or a v1 line ran
 * past the 107 bytes the specification allows).
 *
 * ```ts
 * Server.layer({ address, handler, proxyProtocol: { trustedSources, maxHeaderSize: 16384 } })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class ProxyHeaderTooLarge extends Kind(
  "ProxyHeaderTooLarge",
  (e) =>
    `${peerOf(e)} sent a PROXY protocol header that is too large${detailOf(e)}; ` +
    "raise proxyProtocol.maxHeaderSize if the load balancer adds that many TLVs"
) {}

/**
 * The connection ended before its header was whole.
 *
 * ```ts
 * Effect.catchTag("ProxyHeaderTruncated", () => Effect.void)
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class ProxyHeaderTruncated extends Kind(
  "ProxyHeaderTruncated",
  (e) => `${peerOf(e)} closed the connection before its PROXY protocol header was complete${detailOf(e)}`
) {}

/**
 * A valid header of a version the server does not accept (`versions`).
 *
 * ```ts
 * Server.layer({ address, handler, proxyProtocol: { trustedSources, versions: ["v1", "v2"] } })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export class ProxyVersionRefused extends Kind(
  "ProxyVersionRefused",
  (e) =>
    `${peerOf(e)} sent a PROXY protocol header of a version this server does not accept${detailOf(e)}; ` +
    "add it to proxyProtocol.versions or change the load balancer's (HAProxy: send-proxy is v1, send-proxy-v2 v2)"
) {}

/**
 * Any reason a connection's PROXY header was refused.
 *
 * @since 0.2.0
 * @category models
 */
export type HeaderError =
  | MalformedProxyHeader
  | UntrustedProxySource
  | ProxyHeaderTimeout
  | ProxyHeaderTooLarge
  | ProxyHeaderTruncated
  | ProxyVersionRefused

// -- options ------------------------------------------------------------------

/**
 * The server side's options (`Server.Options.proxyProtocol`,
 * `Socket.ListenOptions.proxyProtocol`).
 *
 * @since 0.2.0
 * @category models
 */
export interface ServerOptions {
  /**
   * Who may send a header: addresses (`"10.0.0.5"`, `"::1"`) and networks
   * (`"10.0.0.0/8"`, `"fd00::/8"`). A connection from anywhere else is
   * closed with `UntrustedProxySource` before a byte is read. Required and
   * not empty: trusting everyone would let any client claim any address.
   */
  readonly trustedSources: ReadonlyArray<string>
  /** The versions accepted (default both). */
  readonly versions?: ReadonlyArray<Version> | undefined
  /** The whole header must arrive within this (default 5 seconds; above 0 and finite). */
  readonly headerTimeout?: Duration.Input | undefined
  /**
   * The largest v2 header accepted, in bytes, TLVs included (default 4096;
   * from 232 to 65551). A v1 header is at most 107 bytes whatever this says.
   */
  readonly maxHeaderSize?: number | undefined
}

/**
 * The counts of connections refused for their PROXY header, by error tag,
 * on a listener made with `proxyProtocol` (none otherwise).
 *
 * ```ts
 * const refused = ProxyProtocol.headerFailures(listener) // Option.some({ UntrustedProxySource: 2 })
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const headerFailures = (listener: Socket.Listener): Option.Option<Readonly<Record<string, number>>> => {
  const failures = (listener as { readonly proxyFailures?: Map<string, number> | undefined }).proxyFailures
  return failures === undefined ? Option.none() : Option.some(Object.fromEntries(failures))
}

/** @internal Where a socket keeps the header it came with. */
export const HeaderKey: unique symbol = Symbol.for("effect-wire/ProxyProtocol/header") as never

/**
 * The PROXY header a connection came with, on a listener (or `Server`) made
 * with `proxyProtocol`: its TLVs (ALPN, authority, SSL, …) and the address
 * the client connected to. `socket.remoteAddress` is already its `source`.
 *
 * ```ts
 * const handler = (socket: Socket.Socket) =>
 *   Option.match(ProxyProtocol.headerOf(socket), { onNone: () => "direct", onSome: (h) => h.command })
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
export const headerOf = (socket: Socket.Socket): Option.Option<Header> =>
  Option.fromUndefinedOr((socket as unknown as { readonly [HeaderKey]?: Header })[HeaderKey])

// -- bytes --------------------------------------------------------------------

const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20) // "PROXY "
const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a)
/** The longest v1 line, CRLF included (the specification's limit). */
export const V1_MAX_LENGTH = 107
const V2_FIXED = 16
const UNIX_PATH_BYTES = 108
/** The default and the bounds of `maxHeaderSize`. */
export const DEFAULT_MAX_HEADER_SIZE = 4096
/** The smallest `maxHeaderSize`: a v2 header with two Unix paths fits. */
export const MIN_MAX_HEADER_SIZE = V2_FIXED + 2 * UNIX_PATH_BYTES
/** The largest header v2 can announce. */
export const MAX_MAX_HEADER_SIZE = V2_FIXED + 0xffff

const FAMILY: Record<Exclude<Protocol, "UNKNOWN">, number> = {
  TCP4: 0x11,
  UDP4: 0x12,
  TCP6: 0x21,
  UDP6: 0x22,
  UNIX_STREAM: 0x31,
  UNIX_DGRAM: 0x32
}
const PROTOCOL_OF_FAMILY = new Map<number, Protocol>([
  [0x00, "UNKNOWN"],
  ...Object.entries(FAMILY).map(([p, b]) => [b, p as Protocol] as const)
])
const ADDRESS_BYTES: Record<Protocol, number> = {
  TCP4: 12,
  UDP4: 12,
  TCP6: 36,
  UDP6: 36,
  UNIX_STREAM: 2 * UNIX_PATH_BYTES,
  UNIX_DGRAM: 2 * UNIX_PATH_BYTES,
  UNKNOWN: 0
}

const TLV_ALPN = 0x01
const TLV_AUTHORITY = 0x02
const TLV_CRC32C = 0x03
const TLV_UNIQUE_ID = 0x05
const TLV_SSL = 0x20
const SSL_FIELDS: ReadonlyArray<readonly [number, SslField]> = [
  [0x21, "version"],
  [0x22, "cn"],
  [0x23, "cipher"],
  [0x24, "sigAlg"],
  [0x25, "keyAlg"]
]
const SSL_FIELD_OF_TYPE = new Map(SSL_FIELDS)
const SSL_TYPE_OF_FIELD = new Map(SSL_FIELDS.map(([t, n]) => [n, t] as const))
const KNOWN_TLV = new Set([TLV_ALPN, TLV_AUTHORITY, TLV_CRC32C, TLV_UNIQUE_ID, TLV_SSL])

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC32C (Castagnoli), as the v2 `PP2_TYPE_CRC32C` TLV needs. */
export const crc32c = (bytes: Uint8Array): number => {
  let crc = 0xffffffff
  for (let i = 0; i < bytes.length; i++) crc = CRC32C_TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

// IPv4 and IPv6 text ⇄ bytes (the v2 block carries addresses as bytes).

const ipv4Bytes = (host: string): Array<number> | undefined =>
  isIPv4(host) ? host.split(".").map(Number) : undefined

const ipv6Bytes = (host: string): Uint8Array | undefined => {
  if (!isIPv6(host) || host.includes("%")) return undefined
  let text = host
  const out = new Uint8Array(16)
  const lastColon = text.lastIndexOf(":")
  let tail: Array<number> | undefined
  if (text.indexOf(".", lastColon) >= 0) {
    tail = ipv4Bytes(text.slice(lastColon + 1))
    if (tail === undefined) return undefined
    text = `${text.slice(0, lastColon + 1)}0:0`
  }
  const halves = text.split("::")
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)))
  const left = groups(halves[0]!)
  const right = halves.length === 2 ? groups(halves[1]!) : []
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
  all.forEach((g, i) => {
    out[2 * i] = g >> 8
    out[2 * i + 1] = g & 0xff
  })
  if (tail !== undefined) out.set(tail, 12)
  return out
}

/**
 * RFC 5952 text, written as Node (libuv) writes a peer's address: an
 * IPv4-mapped address as `::ffff:a.b.c.d`, an IPv4-compatible one as `::a.b.c.d`.
 */
const formatIpv6 = (b: Uint8Array, at: number): string => {
  const groups: Array<number> = []
  for (let i = 0; i < 8; i++) groups.push((b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!)
  const dotted = `${b[at + 12]}.${b[at + 13]}.${b[at + 14]}.${b[at + 15]}`
  if (groups.slice(0, 5).every((g) => g === 0)) {
    if (groups[5] === 0xffff) return `::ffff:${dotted}`
    if (groups[5] === 0 && groups[6] !== 0) return `::${dotted}`
  }
  let bestStart = -1
  let bestLength = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  const hex = (gs: Array<number>) => gs.map((g) => g.toString(16)).join(":")
  return bestStart < 0
    ? hex(groups)
    : `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`
}

// -- encode -------------------------------------------------------------------

const illegal = (what: string): never => {
  throw new Cause.IllegalArgumentError(`ProxyProtocol.encode: ${what}`)
}

const portOf = (a: Address.Address | undefined): number => {
  const port = (a as Address.TcpAddress).port
  return Number.isInteger(port) && port >= 0 && port <= 0xffff ? port : illegal(`port ${port} is not from 0 to 65535`)
}

const tcpOf = (a: Address.Address | undefined, protocol: Protocol): Address.TcpAddress =>
  a?._tag === "TcpAddress" ? a : illegal(`${protocol} needs TCP addresses (host and port) as source and destination`)

const encodeV1 = (header: Header): Uint8Array => {
  if (header.command !== "PROXY") illegal("v1 has no LOCAL command (use v2)")
  if (header.tlvs.length > 0) illegal("v1 has no TLVs (use v2)")
  if (header.protocol === "UNKNOWN") return utf8.encode("PROXY UNKNOWN\r\n")
  if (header.protocol !== "TCP4" && header.protocol !== "TCP6") illegal(`v1 has no ${header.protocol} (use v2)`)
  const src = tcpOf(header.source, header.protocol)
  const dst = tcpOf(header.destination, header.protocol)
  const valid = header.protocol === "TCP4" ? isIPv4 : isIPv6
  for (const a of [src, dst]) {
    if (!valid(a.host)) illegal(`${a.host} is not an ${header.protocol === "TCP4" ? "IPv4" : "IPv6"} address`)
  }
  return utf8.encode(
    `PROXY ${header.protocol} ${src.host} ${dst.host} ${portOf(src)} ${portOf(dst)}\r\n`
  )
}

const tlvBytes = (type: number, value: Uint8Array): Array<Uint8Array> => {
  if (value.length > 0xffff) illegal(`a TLV of type 0x${type.toString(16)} is longer than 65535 bytes`)
  return [Uint8Array.of(type, value.length >> 8, value.length & 0xff), value]
}

const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const rawTlv = (t: RawTlv, known: (type: number) => boolean): Array<Uint8Array> => {
  if (!Number.isInteger(t.type) || t.type < 0 || t.type > 0xff) illegal(`TLV type ${t.type} is not a byte`)
  if (known(t.type)) illegal(`TLV type 0x${t.type.toString(16)} has its own tag: use it, not Raw`)
  return tlvBytes(t.type, t.value)
}

const encodeTlv = (t: Tlv): Array<Uint8Array> => {
  switch (t._tag) {
    case "Alpn":
      return tlvBytes(TLV_ALPN, utf8.encode(t.protocol))
    case "Authority":
      return tlvBytes(TLV_AUTHORITY, utf8.encode(t.hostname))
    case "Crc32c":
      return tlvBytes(TLV_CRC32C, new Uint8Array(4))
    case "UniqueId":
      if (t.id.length > 128) illegal("a UniqueId TLV is at most 128 bytes")
      return tlvBytes(TLV_UNIQUE_ID, t.id)
    case "Ssl": {
      const fields = t.fields.flatMap((f) =>
        f._tag === "SslField"
          ? tlvBytes(SSL_TYPE_OF_FIELD.get(f.name) ?? illegal(`unknown SSL field ${f.name}`), utf8.encode(f.value))
          : rawTlv(f, (type) => SSL_FIELD_OF_TYPE.has(type))
      )
      const head = new Uint8Array(5)
      head[0] = t.client
      new DataView(head.buffer).setUint32(1, t.verify >>> 0)
      return tlvBytes(TLV_SSL, concatBytes([head, ...fields]))
    }
    case "Raw":
      return rawTlv(t, (type) => KNOWN_TLV.has(type))
  }
}

const unixPath = (a: Address.Address | undefined, protocol: Protocol): Uint8Array => {
  if (a?._tag !== "UnixAddress") return illegal(`${protocol} needs Unix addresses as source and destination`)
  const bytes = utf8.encode(a.path)
  if (bytes.length > UNIX_PATH_BYTES || bytes.includes(0)) {
    illegal(`a Unix path is at most ${UNIX_PATH_BYTES} bytes, without NUL: ${JSON.stringify(a.path)}`)
  }
  const out = new Uint8Array(UNIX_PATH_BYTES)
  out.set(bytes)
  return out
}

const encodeV2 = (header: Header): Uint8Array => {
  if (header.command === "LOCAL") {
    if (header.protocol !== "UNKNOWN" || header.tlvs.length > 0 || header.source !== undefined) {
      illegal("a LOCAL header carries no addresses and no TLVs (the receiver ignores them)")
    }
  }
  const protocol = header.protocol
  let addresses: Uint8Array
  if (protocol === "UNKNOWN") {
    addresses = new Uint8Array(0)
  } else if (protocol === "UNIX_STREAM" || protocol === "UNIX_DGRAM") {
    addresses = concatBytes([unixPath(header.source, protocol), unixPath(header.destination, protocol)])
  } else {
    const src = tcpOf(header.source, protocol)
    const dst = tcpOf(header.destination, protocol)
    const four = protocol === "TCP4" || protocol === "UDP4"
    const bytesOf = (host: string) =>
      (four ? ipv4Bytes(host) : ipv6Bytes(host)) ?? illegal(`${host} is not an ${four ? "IPv4" : "IPv6"} address`)
    const ports = new Uint8Array(4)
    const view = new DataView(ports.buffer)
    view.setUint16(0, portOf(src))
    view.setUint16(2, portOf(dst))
    addresses = concatBytes([Uint8Array.from(bytesOf(src.host)), Uint8Array.from(bytesOf(dst.host)), ports])
  }
  if (header.tlvs.filter((t) => t._tag === "Crc32c").length > 1) illegal("a header has at most one Crc32c TLV")
  const tlvs = header.tlvs.flatMap(encodeTlv)
  const body = concatBytes([addresses, ...tlvs])
  if (body.length > 0xffff) illegal("the address block and TLVs are longer than 65535 bytes")
  const fixed = new Uint8Array(V2_FIXED)
  fixed.set(V2_SIGNATURE)
  fixed[12] = 0x20 | (header.command === "LOCAL" ? 0 : 1)
  fixed[13] = protocol === "UNKNOWN" ? 0 : FAMILY[protocol]
  fixed[14] = body.length >> 8
  fixed[15] = body.length & 0xff
  const out = concatBytes([fixed, body])
  // The checksum covers the whole header with its own field zeroed.
  const crcAt = findCrc(out)
  if (crcAt !== undefined) new DataView(out.buffer).setUint32(crcAt, crc32c(out))
  return out
}

/** Where the CRC32C TLV's value starts in a whole v2 header, if it has one. */
const findCrc = (header: Uint8Array): number | undefined => {
  const protocol = PROTOCOL_OF_FAMILY.get(header[13]!) ?? "UNKNOWN"
  let at = V2_FIXED + ADDRESS_BYTES[protocol]
  while (at + 3 <= header.length) {
    const length = (header[at + 1]! << 8) | header[at + 2]!
    if (header[at] === TLV_CRC32C) return at + 3
    at += 3 + length
  }
  return undefined
}

/**
 * The bytes of a header, to write before anything else on a connection. An
 * impossible header (a v1 `LOCAL`, a TLV on v1, mixed address families, a
 * port above 65535, more than 65535 bytes of TLVs) is a defect
 * (`IllegalArgumentError`). A `Crc32c` TLV gets the header's checksum.
 *
 * ```ts
 * const bytes = ProxyProtocol.encode(ProxyProtocol.v1(Address.tcp("203.0.113.7", 51000), Address.tcp("10.0.0.2", 443)))
 * // "PROXY TCP4 203.0.113.7 10.0.0.2 51000 443\r\n"
 * ```
 *
 * @since 0.2.0
 * @category encoding
 */
export const encode = (header: Header): Uint8Array => header.version === "v1" ? encodeV1(header) : encodeV2(header)

// -- decode -------------------------------------------------------------------

/**
 * Options of {@link decoder}.
 *
 * @since 0.2.0
 * @category models
 */
export interface DecoderOptions {
  /** The versions accepted (default both); another is `ProxyVersionRefused`. */
  readonly versions?: ReadonlyArray<Version> | undefined
  /** See {@link ServerOptions}'s `maxHeaderSize` (default 4096). */
  readonly maxHeaderSize?: number | undefined
  /** The peer, named in the errors. */
  readonly address?: Address.Address | undefined
}

/**
 * One step of a {@link Decoder}: more bytes needed, the header with the
 * bytes that followed it in the same reads (the connection's first data), or
 * why it was refused.
 *
 * @since 0.2.0
 * @category models
 */
export type Step =
  | { readonly _tag: "NeedMore" }
  | { readonly _tag: "Done"; readonly header: Header; readonly rest: Uint8Array }
  | { readonly _tag: "Failed"; readonly error: HeaderError }

/**
 * Reads one header from a connection's first reads, however they are split.
 * It buffers at most the header (`maxHeaderSize`) and gives up as soon as
 * the bytes cannot start a valid one.
 *
 * @since 0.2.0
 * @category models
 */
export interface Decoder {
  /** The next read. After `Done` or `Failed`, further calls are a defect. */
  push(bytes: Uint8Array): Step
  /** The connection ended: why that is an error (`ProxyHeaderTruncated`). */
  end(): HeaderError
  /** Bytes buffered so far. */
  readonly buffered: number
}

const NEED_MORE: Step = { _tag: "NeedMore" }

const hexStart = (bytes: Uint8Array, n: number) =>
  Array.from(bytes.subarray(0, Math.min(n, 16)), (b) => b.toString(16).padStart(2, "0")).join(" ")

class HeaderDecoder implements Decoder {
  private buffer: Uint8Array = new Uint8Array(0)
  private length = 0
  private finished = false
  readonly versions: ReadonlySet<Version>
  readonly maxHeaderSize: number
  readonly address: Address.Address | undefined

  constructor(options: DecoderOptions) {
    this.versions = new Set(options.versions ?? ["v1", "v2"])
    this.maxHeaderSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE
    this.address = options.address
  }

  get buffered(): number {
    return this.length
  }

  push(bytes: Uint8Array): Step {
    if (this.finished) throw new Error("ProxyProtocol decoder: push after the header was decoded or refused")
    let view: Uint8Array
    if (this.length === 0) {
      // The usual case: the whole header is in the first read; no copy.
      view = bytes
    } else {
      this.append(bytes)
      view = this.buffer.subarray(0, this.length)
    }
    const step = this.step(view)
    if (step._tag !== "NeedMore") {
      this.finished = true
      this.buffer = new Uint8Array(0)
      this.length = 0
    } else if (view === bytes) {
      this.append(bytes)
    }
    return step
  }

  end(): HeaderError {
    this.finished = true
    const had = this.length
    this.buffer = new Uint8Array(0)
    this.length = 0
    return new ProxyHeaderTruncated({
      address: this.address,
      detail: had === 0 ? "it sent nothing" : `after ${had} byte(s)`
    })
  }

  private append(bytes: Uint8Array): void {
    const need = this.length + bytes.length
    if (need > this.buffer.length) {
      // Doubling, so a header arriving a byte at a time costs linear time; never past the limit plus one read.
      const grown = new Uint8Array(Math.max(need, Math.min(this.buffer.length * 2 || 64, MAX_MAX_HEADER_SIZE + 1)))
      grown.set(this.buffer.subarray(0, this.length))
      this.buffer = grown
    }
    this.buffer.set(bytes, this.length)
    this.length = need
  }

  private fail(error: HeaderError): Step {
    return { _tag: "Failed", error }
  }

  private malformed(detail: string): Step {
    return this.fail(new MalformedProxyHeader({ address: this.address, detail }))
  }

  private refuse(version: Version): Step {
    return this.fail(
      new ProxyVersionRefused({
        address: this.address,
        detail: `it sent ${version}; accepted: ${Array.from(this.versions).join(", ")}`
      })
    )
  }

  private step(bytes: Uint8Array): Step {
    if (bytes.length === 0) return NEED_MORE
    if (bytes[0] === V1_PREFIX[0]) {
      if (!startsWith(bytes, V1_PREFIX)) return this.noSignature(bytes)
      if (bytes.length < V1_PREFIX.length) return NEED_MORE
      if (!this.versions.has("v1")) return this.refuse("v1")
      return this.v1(bytes)
    }
    if (!startsWith(bytes, V2_SIGNATURE)) return this.noSignature(bytes)
    if (bytes.length < V2_FIXED) return NEED_MORE
    if (!this.versions.has("v2")) return this.refuse("v2")
    return this.v2(bytes)
  }

  private noSignature(bytes: Uint8Array): Step {
    return this.malformed(`the connection starts with ${hexStart(bytes, 16)}, not "PROXY " (v1) or the v2 signature`)
  }

  private v1(bytes: Uint8Array): Step {
    const limit = Math.min(bytes.length, V1_MAX_LENGTH)
    let end = -1
    for (let i = V1_PREFIX.length; i < limit; i++) {
      const b = bytes[i]!
      if (b === 0x0d) {
        if (i + 1 >= bytes.length) return NEED_MORE
        if (bytes[i + 1] !== 0x0a) return this.malformed("v1 line has a CR not followed by LF")
        end = i
        break
      }
      if (b < 0x20 || b > 0x7e) return this.malformed(`v1 line holds the byte 0x${b.toString(16).padStart(2, "0")}`)
    }
    if (end < 0) {
      if (bytes.length < V1_MAX_LENGTH) return NEED_MORE
      return this.fail(
        new ProxyHeaderTooLarge({
          address: this.address,
          detail: `no CRLF within ${V1_MAX_LENGTH} bytes, the longest v1 line the specification allows`
        })
      )
    }
    const line = String.fromCharCode(...bytes.subarray(V1_PREFIX.length, end))
    const rest = bytes.subarray(end + 2)
    const fields = line.split(" ")
    const protocol = fields[0]
    if (protocol === "UNKNOWN") {
      return { _tag: "Done", header: v1(), rest }
    }
    if (protocol !== "TCP4" && protocol !== "TCP6") {
      return this.malformed(`v1 protocol ${JSON.stringify(protocol)} is not TCP4, TCP6 or UNKNOWN`)
    }
    if (fields.length !== 5) {
      return this.malformed(`v1 ${protocol} line has ${fields.length - 1} field(s) after the protocol, not 4`)
    }
    const [, srcHost, dstHost, srcPort, dstPort] = fields as [string, string, string, string, string]
    const valid = protocol === "TCP4" ? isIPv4 : isIPv6
    for (const host of [srcHost, dstHost]) {
      if (!valid(host) || host.includes("%")) {
        return this.malformed(`v1 ${protocol} address ${JSON.stringify(host)} is not an IPv${protocol === "TCP4" ? 4 : 6} address`)
      }
    }
    const ports: Array<number> = []
    for (const port of [srcPort, dstPort]) {
      if (!/^(0|[1-9][0-9]{0,4})$/.test(port) || Number(port) > 0xffff) {
        return this.malformed(`v1 port ${JSON.stringify(port)} is not a number from 0 to 65535`)
      }
      ports.push(Number(port))
    }
    const header: Header = {
      version: "v1",
      command: "PROXY",
      protocol,
      source: tcp(srcHost, ports[0]!),
      destination: tcp(dstHost, ports[1]!),
      tlvs: []
    }
    return { _tag: "Done", header, rest }
  }

  private v2(bytes: Uint8Array): Step {
    const versionCommand = bytes[12]!
    if (versionCommand >> 4 !== 2) {
      return this.malformed(`v2 version nibble is ${versionCommand >> 4}, not 2`)
    }
    const command = versionCommand & 0x0f
    if (command > 1) return this.malformed(`v2 command ${command} is neither LOCAL (0) nor PROXY (1)`)
    const protocol = PROTOCOL_OF_FAMILY.get(bytes[13]!)
    if (protocol === undefined) {
      return this.malformed(`v2 family and transport byte 0x${bytes[13]!.toString(16).padStart(2, "0")} is not one the specification defines`)
    }
    const length = (bytes[14]! << 8) | bytes[15]!
    const total = V2_FIXED + length
    if (total > this.maxHeaderSize) {
      return this.fail(
        new ProxyHeaderTooLarge({
          address: this.address,
          detail: `it announces ${total} bytes; maxHeaderSize is ${this.maxHeaderSize}`
        })
      )
    }
    if (command === 1 && length < ADDRESS_BYTES[protocol]) {
      return this.malformed(`v2 length ${length} is shorter than the ${ADDRESS_BYTES[protocol]} address bytes of ${protocol}`)
    }
    if (bytes.length < total) return NEED_MORE
    const rest = bytes.subarray(total)
    // LOCAL: the receiver ignores the whole block (the specification's rule).
    if (command === 0) return { _tag: "Done", header: local, rest }
    const block = bytes.subarray(0, total)
    let source: Address.Address | undefined
    let destination: Address.Address | undefined
    const at = V2_FIXED
    const view = new DataView(block.buffer, block.byteOffset, block.byteLength)
    switch (protocol) {
      case "TCP4":
      case "UDP4":
        source = tcp(`${block[at]}.${block[at + 1]}.${block[at + 2]}.${block[at + 3]}`, view.getUint16(at + 8))
        destination = tcp(`${block[at + 4]}.${block[at + 5]}.${block[at + 6]}.${block[at + 7]}`, view.getUint16(at + 10))
        break
      case "TCP6":
      case "UDP6":
        source = tcp(formatIpv6(block, at), view.getUint16(at + 32))
        destination = tcp(formatIpv6(block, at + 16), view.getUint16(at + 34))
        break
      case "UNIX_STREAM":
      case "UNIX_DGRAM":
        source = unix(block, at)
        destination = unix(block, at + UNIX_PATH_BYTES)
        break
      case "UNKNOWN":
        break
    }
    const tlvs = this.tlvs(block, at + ADDRESS_BYTES[protocol], total, false)
    if (!Array.isArray(tlvs)) return tlvs as Step
    const header: Header = { version: "v2", command: "PROXY", protocol, source, destination, tlvs: tlvs as Array<Tlv> }
    return { _tag: "Done", header, rest }
  }

  /** The TLVs from `start` to `end`, or the failure. */
  private tlvs(block: Uint8Array, start: number, end: number, ssl: boolean): Array<Tlv | SslTlv> | Step {
    const out: Array<Tlv | SslTlv> = []
    let at = start
    while (at < end) {
      if (at + 3 > end) return this.malformed(`a TLV at byte ${at} is cut short by the header's length`)
      const type = block[at]!
      const length = (block[at + 1]! << 8) | block[at + 2]!
      const from = at + 3
      const to = from + length
      if (to > end) {
        return this.malformed(`TLV 0x${type.toString(16)} at byte ${at} announces ${length} bytes, past the header's end`)
      }
      const value = block.subarray(from, to)
      at = to
      if (ssl) {
        const name = SSL_FIELD_OF_TYPE.get(type)
        out.push(name === undefined ? { _tag: "Raw", type, value: value.slice() } : { _tag: "SslField", name, value: fromUtf8.decode(value) })
        continue
      }
      switch (type) {
        case TLV_ALPN:
          out.push({ _tag: "Alpn", protocol: fromUtf8.decode(value) })
          break
        case TLV_AUTHORITY:
          out.push({ _tag: "Authority", hostname: fromUtf8.decode(value) })
          break
        case TLV_CRC32C: {
          if (length !== 4) return this.malformed(`the CRC32C TLV is ${length} bytes, not 4`)
          const expected = new DataView(value.buffer, value.byteOffset, 4).getUint32(0)
          const copy = block.slice()
          copy.fill(0, from, to)
          const actual = crc32c(copy)
          if (actual !== expected) {
            return this.malformed(
              `its CRC32C is 0x${expected.toString(16)} but the header's is 0x${actual.toString(16)} (corrupted on the way)`
            )
          }
          out.push({ _tag: "Crc32c" })
          break
        }
        case TLV_UNIQUE_ID:
          if (length > 128) return this.malformed(`the unique ID TLV is ${length} bytes; the specification allows 128`)
          out.push({ _tag: "UniqueId", id: value.slice() })
          break
        case TLV_SSL: {
          if (length < 5) return this.malformed(`the SSL TLV is ${length} bytes, less than its 5 fixed ones`)
          const fields = this.tlvs(block, from + 5, to, true)
          if (!Array.isArray(fields)) return fields
          const verify = new DataView(value.buffer, value.byteOffset + 1, 4).getUint32(0)
          out.push({ _tag: "Ssl", client: value[0]!, verify, fields: fields as Array<SslTlv> })
          break
        }
        default:
          out.push({ _tag: "Raw", type, value: value.slice() })
      }
    }
    return out
  }
}

const startsWith = (bytes: Uint8Array, prefix: Uint8Array): boolean => {
  const n = Math.min(bytes.length, prefix.length)
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false
  return true
}

const tcp = (host: string, port: number) => new Address.TcpAddress({ host, port }, { disableChecks: true })

const unix = (block: Uint8Array, at: number): Address.UnixAddress => {
  const field = block.subarray(at, at + UNIX_PATH_BYTES)
  const nul = field.indexOf(0)
  return new Address.UnixAddress({ path: fromUtf8.decode(nul < 0 ? field : field.subarray(0, nul)) }, {
    disableChecks: true
  })
}

/**
 * A decoder for one connection's header (see {@link Decoder}). An invalid
 * `maxHeaderSize` or `versions` is a defect.
 *
 * ```ts
 * const decoder = ProxyProtocol.decoder({ versions: ["v2"] })
 * for (const read of reads) {
 *   const step = decoder.push(read)
 *   if (step._tag === "Done") return [step.header, step.rest] // rest: the client's first bytes
 *   if (step._tag === "Failed") throw step.error
 * }
 * ```
 *
 * @since 0.2.0
 * @category decoding
 */
export const decoder = (options: DecoderOptions = {}): Decoder => {
  const max = options.maxHeaderSize
  if (max !== undefined && (!Number.isInteger(max) || max < MIN_MAX_HEADER_SIZE || max > MAX_MAX_HEADER_SIZE)) {
    throw new Cause.IllegalArgumentError(
      `ProxyProtocol: maxHeaderSize must be an integer from ${MIN_MAX_HEADER_SIZE} to ${MAX_MAX_HEADER_SIZE}, got ${max}`
    )
  }
  const versions = options.versions
  if (versions !== undefined && (versions.length === 0 || versions.some((v) => v !== "v1" && v !== "v2"))) {
    throw new Cause.IllegalArgumentError(
      `ProxyProtocol: versions must list "v1" and/or "v2", got ${JSON.stringify(versions)}`
    )
  }
  return new HeaderDecoder(options)
}
