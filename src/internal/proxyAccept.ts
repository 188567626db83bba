/**
 * The server side of the PROXY protocol on node:net: a listener's new
 * connection is checked against `trustedSources`, its header read in Node's
 * callbacks (bounded by `headerTimeout` and `maxHeaderSize`), the bytes after
 * it put back in the socket's buffer, and only then is it handed on, with the
 * header that becomes its `remoteAddress`. A refused connection is closed,
 * counted by tag, logged at debug and summed up in a warning at most every
 * 10 seconds; the listener goes on. With TLS the header comes first and the
 * handshake after it.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import type * as NodeTls from "node:tls"
import * as Address from "../Address.js"
import * as ProxyProtocol from "../ProxyProtocol.js"
import type * as Socket from "../Socket.js"
import type { ConnectionSlots } from "./connectionSlots.js"
import { LimitWarning, RATE_NOTE } from "./limitWarning.js"
import { trustedTcpAddress } from "./nodeSocket.js"
import * as Check from "./options.js"
import { type Indexed, SwapSet } from "./swapSet.js"

const DEFAULT_HEADER_TIMEOUT = Duration.seconds(5)

/** The checked server options. */
export interface ProxyConfig {
  readonly trusted: Net.BlockList
  readonly trustedSources: ReadonlyArray<string>
  readonly versions: ReadonlyArray<ProxyProtocol.Version>
  readonly headerTimeoutMs: number
  readonly maxHeaderSize: number
}

/** One trusted source: an address or a CIDR network; undefined when it is neither. */
const addTrusted = (list: Net.BlockList, source: string): boolean => {
  const [host, bits, extra] = source.split("/")
  if (extra !== undefined || host === undefined) return false
  const family = Net.isIPv4(host) ? "ipv4" : Net.isIPv6(host) ? "ipv6" : undefined
  if (family === undefined) return false
  if (bits === undefined) {
    list.addAddress(host, family)
    return true
  }
  const prefix = Number(bits)
  if (!/^[0-9]{1,3}$/.test(bits) || prefix > (family === "ipv4" ? 32 : 128)) return false
  list.addSubnet(host, prefix, family)
  return true
}

/** The options checked (an invalid one is a defect naming it, thrown: callers run inside `withOptions`). */
export const proxyConfig = (where: string, options: ProxyProtocol.ServerOptions): ProxyConfig => {
  const invalid = (name: string, reason: string) => Check.defect(where, `proxyProtocol.${name}`, reason)
  const sources = options.trustedSources
  if (!Array.isArray(sources) || sources.length === 0) {
    throw invalid(
      "trustedSources",
      "must list the load balancers' addresses or networks (e.g. [\"10.0.0.0/8\"]): trusting every peer would let " +
        "any client claim any address"
    )
  }
  const trusted = new Net.BlockList()
  for (const source of sources) {
    if (typeof source !== "string" || !addTrusted(trusted, source)) {
      throw invalid("trustedSources", `must hold IP addresses or CIDR networks, got ${JSON.stringify(source)}`)
    }
  }
  const versions = options.versions ?? ["v1", "v2"]
  if (!Array.isArray(versions) || versions.length === 0 || versions.some((v) => v !== "v1" && v !== "v2")) {
    throw invalid("versions", `must list "v1" and/or "v2", got ${JSON.stringify(versions)}`)
  }
  const timeout = options.headerTimeout ?? DEFAULT_HEADER_TIMEOUT
  const timeoutReason = Check.duration(timeout, { never: false, finite: "a client must not hold a connection without a header forever" })
  if (timeoutReason !== undefined) throw invalid("headerTimeout", timeoutReason)
  const maxHeaderSize = options.maxHeaderSize ?? ProxyProtocol.DEFAULT_MAX_HEADER_SIZE
  const sizeReason = Check.integer(maxHeaderSize, ProxyProtocol.MIN_MAX_HEADER_SIZE, ProxyProtocol.MAX_MAX_HEADER_SIZE)
  if (sizeReason !== undefined) throw invalid("maxHeaderSize", sizeReason)
  return {
    trusted,
    trustedSources: sources,
    versions,
    headerTimeoutMs: Math.max(1, Math.round(Duration.toMillis(Duration.fromInputUnsafe(timeout)))),
    maxHeaderSize
  }
}

/** Where the reader logs. */
export interface ProxyReporter {
  /** The server's slots when a `Server` runs the listener (its log lines), else undefined. */
  readonly slots: () => ConnectionSlots | undefined
  /** Runs an effect from a callback with the context `listen` ran in. */
  readonly fork: (effect: Effect.Effect<void>) => void
  readonly name: () => string
}

/** Remember the header a socket came with (read by `ProxyProtocol.headerOf`). */
export const attachHeader = (socket: Socket.Socket, header: ProxyProtocol.Header): void => {
  ;(socket as unknown as Record<symbol, ProxyProtocol.Header>)[ProxyProtocol.HeaderKey] = header
}

/** The header of each raw socket handed to node:tls, until its handshake is done. */
const headers = new WeakMap<object, ProxyProtocol.Header>()

/** The address a header says the client has, if it says one. */
export const clientOf = (header: ProxyProtocol.Header): Address.Address | undefined =>
  header.command === "PROXY" ? header.source : undefined

const peerOf = (raw: Net.Socket): Address.TcpAddress | undefined =>
  raw.remoteAddress !== undefined && raw.remotePort !== undefined
    ? trustedTcpAddress(raw.remoteAddress, raw.remotePort)
    : undefined

/** A connection that closed before sending a byte: a TCP health check, a port scan. */
const isSilent = (error: ProxyProtocol.HeaderError) =>
  error._tag === "ProxyHeaderTruncated" && error.detail === "it sent nothing"

/** A connection whose header is being read. */
interface Reading extends Indexed {
  readonly raw: Net.Socket
}

/** Reads the header of each new connection of one listener. */
export class ProxyReader {
  /** Connections whose header is being read (not a `Set`: see internal/swapSet.ts). */
  readonly reading = new SwapSet<Reading>()
  /** Refused connections by tag. */
  readonly failures = new Map<string, number>()
  private sinceWarning = new Map<string, number>()
  private lastError: ProxyProtocol.HeaderError | undefined = undefined
  private warning: LimitWarning | undefined = undefined
  private closed = false

  constructor(
    readonly config: ProxyConfig,
    readonly reporter: ProxyReporter,
    /** For a TLS listener: the node:tls server that does the handshake once the header is read. */
    readonly tls: NodeTls.Server | undefined,
    /** Unix peers have no address to check: the socket file's mode decides who connects. */
    readonly isTcp: boolean
  ) {}

  /** Read `raw`'s header, then call `done` (for TLS: once the handshake after it succeeded). */
  read(raw: Net.Socket, done: (raw: Net.Socket, header: ProxyProtocol.Header) => void): void {
    const peer = peerOf(raw)
    if (this.isTcp) {
      if (peer === undefined) {
        // Reset before we got to it: nothing to read, nobody to log.
        raw.destroy()
        return
      }
      const family = Net.isIPv4(peer.host) ? "ipv4" : "ipv6"
      if (!this.config.trusted.check(peer.host, family)) {
        return this.refuse(
          raw,
          new ProxyProtocol.UntrustedProxySource({
            address: peer,
            detail: `trusted: ${this.config.trustedSources.join(", ")}`
          })
        )
      }
    }
    const decoder = ProxyProtocol.decoder({
      versions: this.config.versions,
      maxHeaderSize: this.config.maxHeaderSize,
      address: peer
    })
    const reading: Reading = { raw, setIndex: -1 }
    this.reading.add(reading)
    const cleanup = () => {
      clearTimeout(timer)
      this.reading.delete(reading)
      raw.off("data", onData)
      raw.off("end", onEnd)
      raw.off("error", onEnd)
      raw.off("close", onEnd)
    }
    const fail = (error: ProxyProtocol.HeaderError) => {
      cleanup()
      this.refuse(raw, error)
    }
    const onData = (chunk: Buffer) => {
      const step = decoder.push(chunk)
      if (step._tag === "NeedMore") return
      if (step._tag === "Failed") return fail(step.error)
      cleanup()
      raw.pause()
      // The bytes after the header are the connection's first data (a TLS ClientHello, a request).
      if (step.rest.length > 0) {
        raw.unshift(Buffer.from(step.rest.buffer, step.rest.byteOffset, step.rest.byteLength))
      }
      if (this.tls === undefined) return done(raw, step.header)
      headers.set(raw, step.header)
      this.tls.emit("connection", raw)
    }
    const onEnd = () => fail(decoder.end())
    const timer = setTimeout(
      () =>
        fail(
          new ProxyProtocol.ProxyHeaderTimeout({
            address: peer,
            detail: `none within ${Duration.format(Duration.millis(this.config.headerTimeoutMs))}` +
              (decoder.buffered > 0 ? ` (${decoder.buffered} byte(s) came)` : "")
          })
        ),
      this.config.headerTimeoutMs
    )
    timer.unref?.()
    raw.on("data", onData)
    raw.on("end", onEnd)
    raw.on("error", onEnd)
    raw.on("close", onEnd)
    raw.resume()
  }

  /** The header of a TLS socket whose handshake followed a header read here. */
  tlsHeader(socket: NodeTls.TLSSocket): ProxyProtocol.Header | undefined {
    const parent = (socket as unknown as { readonly _parent?: object | null })._parent
    return parent == null ? undefined : headers.get(parent)
  }

  private refuse(raw: Net.Socket, error: ProxyProtocol.HeaderError): void {
    raw.destroy()
    // The listener closed it: not the peer's doing, nothing to count or log.
    if (this.closed) return
    this.failures.set(error._tag, (this.failures.get(error._tag) ?? 0) + 1)
    const peer = error.address === undefined ? "a Unix peer" : Address.format(error.address)
    this.log(Effect.logDebug(`${this.reporter.name()}: closed the connection from ${peer}: ${error._tag}: ${error.message}`), peer)
    if (isSilent(error)) return
    this.sinceWarning.set(error._tag, (this.sinceWarning.get(error._tag) ?? 0) + 1)
    this.lastError = error
    this.warningOf().hit()
  }

  private log(effect: Effect.Effect<void>, peer?: string): void {
    const slots = this.reporter.slots()
    const annotated = peer === undefined ? effect : Effect.annotateLogs(effect, { peer })
    if (slots !== undefined) slots.fork(slots.logged(annotated))
    else this.reporter.fork(annotated)
  }

  private warningOf(): LimitWarning {
    if (this.warning !== undefined) return this.warning
    const clock = { currentTimeMillisUnsafe: () => Date.now() } as never
    this.warning = new LimitWarning(clock, (since) => this.describe(since), (message) => this.log(Effect.logWarning(message)))
    return this.warning
  }

  private describe(since: string): string {
    const counts = Array.from(this.sinceWarning).map(([tag, n]) => `${n} ${tag}`).join(", ")
    const total = Array.from(this.sinceWarning.values()).reduce((a, b) => a + b, 0)
    this.sinceWarning = new Map()
    const last = this.lastError === undefined ? "" : ` The last: ${this.lastError.message}.`
    return `${this.reporter.name()}: closed ${total === 1 ? "1 connection" : `${total} connections`} for their ` +
      `PROXY protocol header ${since} (${counts}).${last} ${RATE_NOTE}`
  }

  /** The listener's end: every connection still sending its header is closed. */
  close(): void {
    this.closed = true
    for (const { raw } of this.reading) raw.destroy()
    this.reading.clear()
  }
}
