/**
 * effect-wire's metrics as Effect `Metric` series, counted the cheap way: the
 * hot paths (Node's callbacks, a pump's read) add to plain numbers (a
 * {@link Tally}), and each tally is registered once in the `MetricRegistry`
 * as a series whose value is read when a snapshot is taken (Prometheus'
 * scrape, OTLP's export). Histograms are updated once per connection (its
 * duration, its handshake) with `updateUnsafe` and a context kept from when
 * the server started. Names, units and attributes follow OpenTelemetry's
 * semantic conventions; no attribute ever holds a peer's address or port.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import type * as Address from "../Address.js"

/** Are metrics recorded (the default)? See `Metrics.Enabled`. */
export const MetricsEnabled = Context.Reference<boolean>("effect-wire/Metrics/Enabled", {
  defaultValue: () => true
})

/** The metric names, in one place (docs/observability.md lists them). */
export const NAMES = {
  activeConnections: "effect_wire.server.active_connections",
  opened: "effect_wire.server.connection.opened",
  closed: "effect_wire.server.connection.closed",
  duration: "effect_wire.server.connection.duration",
  io: "effect_wire.server.io",
  queued: "effect_wire.server.queued_connections",
  queueDuration: "effect_wire.server.queue.duration",
  handshakeDuration: "effect_wire.tls.handshake.duration",
  handshakeFailures: "effect_wire.tls.handshake.failures",
  clientConnects: "effect_wire.client.connects",
  clientConnectDuration: "effect_wire.client.connect.duration",
  clientIo: "effect_wire.client.io",
  framesDecoded: "effect_wire.frames.decoded",
  framesEncoded: "effect_wire.frames.encoded",
  messagesDecoded: "effect_wire.messages.decoded",
  messagesRejected: "effect_wire.messages.rejected",
  datagrams: "effect_wire.udp.datagrams",
  datagramsDropped: "effect_wire.udp.datagrams.dropped",
  execCommands: "effect_wire.exec.commands"
} as const

/** Seconds: OpenTelemetry's advice for durations of HTTP and Kestrel connections. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300]
const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

type Attributes = Readonly<Record<string, string>>

/**
 * A number the hot path adds to, read when a snapshot is taken; `probes`
 * add what live objects hold (the bytes of connections still open).
 */
export class Tally {
  n = 0
  probes: Set<() => number> | undefined = undefined
  read(): number {
    let total = this.n
    if (this.probes !== undefined) for (const probe of this.probes) total += probe()
    return total
  }
}

const keyOf = (id: string, attributes: Attributes): string =>
  id + JSON.stringify(Object.entries(attributes).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))

const noop = () => {}

/**
 * The metrics of one `MetricRegistry`: every series is made (and
 * registered) once, on first use, and shared by everything recording to it,
 * so two servers on the same address add to the same counters.
 */
export class Meters {
  private readonly tallies = new Map<string, Tally>()
  private readonly histograms = new Map<string, Metric.Metric<number, Metric.HistogramState>>()
  private readonly servers = new Map<string, ServerMeter>()
  private readonly protocols = new Map<string, ProtocolMeter>()

  constructor(readonly context: Context.Context<never>) {}

  tally(
    id: string,
    type: "Counter" | "Gauge",
    unit: string,
    description: string,
    attributes: Attributes
  ): Tally {
    const key = keyOf(id, attributes)
    let tally = this.tallies.get(key)
    if (tally !== undefined) return tally
    const found = new Tally()
    tally = found
    this.tallies.set(key, found)
    const options = { description, attributes: { ...attributes, unit } }
    if (type === "Counter") {
      Metric.registerUnsafe(Metric.counter(id, options), this.context, {
        get: () => ({ count: found.read(), incremental: true }),
        update: noop,
        modify: noop
      })
    } else {
      Metric.registerUnsafe(Metric.gauge(id, options), this.context, {
        get: () => ({ value: found.read() }),
        update: noop,
        modify: noop
      })
    }
    return tally
  }

  /** A histogram series in seconds; `observe` it once per event (not per read). */
  histogram(id: string, description: string, boundaries: ReadonlyArray<number>, attributes: Attributes): Histogram {
    const key = keyOf(id, attributes)
    let metric = this.histograms.get(key)
    if (metric === undefined) {
      metric = Metric.histogram(id, { description, boundaries, attributes: { ...attributes, unit: "s" } })
      this.histograms.set(key, metric)
    }
    return new Histogram(metric, this.context)
  }

  /** The meter of a server (or a bare listener) at `address`, shared by all with the same attributes. */
  server(address: Address.Address): ServerMeter {
    const attributes = addressAttributes(address)
    const key = keyOf("", attributes)
    let meter = this.servers.get(key)
    if (meter === undefined) {
      meter = new ServerMeter(this, attributes)
      this.servers.set(key, meter)
    }
    return meter
  }

  /** A Protocol service's counts, by protocol name and codec. */
  protocol(name: string, codec: string): ProtocolMeter {
    const key = name + "\u0000" + codec
    let meter = this.protocols.get(key)
    if (meter === undefined) {
      meter = {
        framesDecoded: this.frames(codec, "decoded"),
        framesEncoded: this.frames(codec, "encoded"),
        decoded: this.messages(name, "decoded"),
        rejected: this.messages(name, "rejected")
      }
      this.protocols.set(key, meter)
    }
    return meter
  }

  /** Frames a codec decoded and encoded. */
  frames(codec: string, direction: "decoded" | "encoded"): Tally {
    return direction === "decoded"
      ? this.tally(NAMES.framesDecoded, "Counter", "{frame}", "Frames decoded by a framing codec", {
        "effect_wire.codec": codec
      })
      : this.tally(NAMES.framesEncoded, "Counter", "{frame}", "Frames encoded by a framing codec", {
        "effect_wire.codec": codec
      })
  }

  /** Messages a protocol decoded, or rejected (a frame its Schema refused). */
  messages(protocol: string, outcome: "decoded" | "rejected"): Tally {
    return outcome === "decoded"
      ? this.tally(NAMES.messagesDecoded, "Counter", "{message}", "Messages decoded by a Protocol", {
        "effect_wire.protocol": protocol
      })
      : this.tally(NAMES.messagesRejected, "Counter", "{message}", "Frames a Protocol's Schema rejected", {
        "effect_wire.protocol": protocol
      })
  }

  /** UDP datagrams received, sent, or dropped by a full receive queue. */
  datagrams(networkType: string | undefined, direction: "receive" | "transmit" | "dropped"): Tally {
    const base: Record<string, string> = { "network.transport": "udp" }
    if (networkType !== undefined) base["network.type"] = networkType
    return direction === "dropped"
      ? this.tally(
        NAMES.datagramsDropped,
        "Counter",
        "{datagram}",
        "UDP datagrams dropped because a socket's bounded receive queue was full",
        base
      )
      : this.tally(NAMES.datagrams, "Counter", "{datagram}", "UDP datagrams received and sent", {
        ...base,
        "network.io.direction": direction
      })
  }

  /** Exec commands by outcome: `run` (answered), `refused` (with the refusal's tag), `timed_out`. */
  execCommand(errorTag: string | undefined): void {
    const outcome = errorTag === undefined ? "run" : errorTag === "Timeout" ? "timed_out" : "refused"
    const attributes: Record<string, string> = { "effect_wire.outcome": outcome }
    if (outcome === "refused") attributes["error.type"] = errorTag!
    this.tally(NAMES.execCommands, "Counter", "{command}", "Exec server commands by outcome", attributes).n++
  }

  /** A client connection attempt to `address` ended: connected, or failed with `errorTag`. */
  clientConnect(address: Address.Address, seconds: number, errorTag: string | undefined): void {
    const attributes = addressAttributes(address)
    const outcome: Record<string, string> = errorTag === undefined
      ? { ...attributes, "effect_wire.outcome": "connected" }
      : { ...attributes, "effect_wire.outcome": "failed", "error.type": errorTag }
    this.tally(NAMES.clientConnects, "Counter", "{connection}", "Client connection attempts by outcome", outcome).n++
    this.histogram(
      NAMES.clientConnectDuration,
      "Time to connect (and finish the TLS handshake), successful attempts",
      HANDSHAKE_BUCKETS,
      attributes
    ).observe(seconds, errorTag === undefined)
  }

  /** A client connection to `address` closed, having moved these bytes. */
  clientBytes(address: Address.Address, received: number, sent: number): void {
    const attributes = addressAttributes(address)
    const description = "Bytes client connections received and sent (counted when each closes)"
    this.tally(NAMES.clientIo, "Counter", "By", description, { ...attributes, "network.io.direction": "receive" }).n +=
      received
    this.tally(NAMES.clientIo, "Counter", "By", description, { ...attributes, "network.io.direction": "transmit" }).n +=
      sent
  }
}

/** A Protocol service's frames and messages. */
export interface ProtocolMeter {
  readonly framesDecoded: Tally
  readonly framesEncoded: Tally
  readonly decoded: Tally
  readonly rejected: Tally
}

/** A histogram series with the context to update it from a callback. */
export class Histogram {
  constructor(readonly metric: Metric.Metric<number, Metric.HistogramState>, readonly context: Context.Context<never>) {}
  observe(seconds: number, when = true): void {
    if (when) this.metric.updateUnsafe(seconds, this.context)
  }
}

/** OpenTelemetry's connection attributes of a local (server) or remote (client) address. */
export const addressAttributes = (address: Address.Address): Attributes => {
  if (address._tag === "TcpAddress") {
    return {
      "network.transport": "tcp",
      "network.type": address.host.includes(":") ? "ipv6" : "ipv4",
      "server.address": address.host,
      "server.port": String(address.port)
    }
  }
  if (address._tag === "UnixAddress") return { "network.transport": "unix", "server.address": address.path }
  return { "network.transport": "unknown" }
}

/** How a server connection ended, for `effect_wire.server.connection.closed`. */
export type Outcome = "completed" | "failed" | "refused" | "cut"

/** One server's (one address's) series, as plain numbers for the hot paths. */
export class ServerMeter {
  readonly active: Tally
  readonly opened: Tally
  readonly completed: Tally
  readonly cut: Tally
  readonly queued: Tally
  readonly received: Tally
  readonly sent: Tally
  readonly duration: Histogram
  readonly queueDuration: Histogram
  readonly handshakeDuration: Histogram
  private readonly byTag = new Map<string, Tally>()

  constructor(private readonly meters: Meters, private readonly attributes: Attributes) {
    this.active = meters.tally(
      NAMES.activeConnections,
      "Gauge",
      "{connection}",
      "Connections being served now",
      attributes
    )
    this.opened = meters.tally(NAMES.opened, "Counter", "{connection}", "Connections served so far", attributes)
    this.completed = this.closed("completed")
    this.cut = this.closed("cut")
    this.queued = meters.tally(
      NAMES.queued,
      "Gauge",
      "{connection}",
      "Connections accepted and waiting in the accept queue for a slot (maxConnections)",
      attributes
    )
    const io = "Bytes received and sent by the server's connections"
    this.received = meters.tally(NAMES.io, "Counter", "By", io, { ...attributes, "network.io.direction": "receive" })
    this.sent = meters.tally(NAMES.io, "Counter", "By", io, { ...attributes, "network.io.direction": "transmit" })
    this.duration = meters.histogram(
      NAMES.duration,
      "How long connections lasted, from accept to close",
      DURATION_BUCKETS,
      attributes
    )
    this.queueDuration = meters.histogram(
      NAMES.queueDuration,
      "How long connections that found every slot taken waited in the accept queue",
      HANDSHAKE_BUCKETS,
      attributes
    )
    this.handshakeDuration = meters.histogram(
      NAMES.handshakeDuration,
      "TLS handshake duration, successful handshakes",
      HANDSHAKE_BUCKETS,
      attributes
    )
  }

  private closed(outcome: Outcome, errorType?: string): Tally {
    const attributes: Record<string, string> = { ...this.attributes, "effect_wire.outcome": outcome }
    if (errorType !== undefined) attributes["error.type"] = errorType
    return this.meters.tally(NAMES.closed, "Counter", "{connection}", "Connections closed, by outcome", attributes)
  }

  /** A connection failed (or was refused) with this tag: its tally, made on first use. */
  closedWith(outcome: "failed" | "refused", errorType: string): Tally {
    const key = outcome + " " + errorType
    let tally = this.byTag.get(key)
    if (tally === undefined) {
      tally = this.closed(outcome, errorType)
      this.byTag.set(key, tally)
    }
    return tally
  }

  /** A TLS handshake ended: its duration when it succeeded, its failure by tag. */
  handshakeDone(durationMs: number, errorType: string | undefined): void {
    if (errorType === undefined) return this.handshakeDuration.observe(durationMs / 1000)
    const key = "tls " + errorType
    let tally = this.byTag.get(key)
    if (tally === undefined) {
      tally = this.meters.tally(
        NAMES.handshakeFailures,
        "Counter",
        "{handshake}",
        "TLS handshakes that failed, by the error's tag",
        { ...this.attributes, "error.type": errorType }
      )
      this.byTag.set(key, tally)
    }
    tally.n++
  }
}

const byRegistry = new WeakMap<Metric.MetricRegistry, Meters>()

/** The meters of `context`'s `MetricRegistry`, or undefined when `Metrics.Enabled` is false there. */
export const metersOf = (context: Context.Context<never>): Meters | undefined => {
  if (!Context.get(context, MetricsEnabled)) return undefined
  const registry = Context.get(context, Metric.MetricRegistry)
  let meters = byRegistry.get(registry)
  if (meters === undefined) {
    meters = new Meters(context)
    byRegistry.set(registry, meters)
  }
  return meters
}

/** The tag of a failure (`_tag`), for `error.type`; a defect is `"Defect"`. */
export const tagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : "Defect"

/** A UDP socket's counts: received and sent add to shared tallies; its drops are read from its queue. */
export class UdpMeter {
  readonly received: Tally
  readonly sent: Tally
  private readonly dropped: Tally
  private readonly probe: () => number

  constructor(meters: Meters, family: 4 | 6, readonly queue: { readonly dropped: number }) {
    const type = family === 6 ? "ipv6" : "ipv4"
    this.received = meters.datagrams(type, "receive")
    this.sent = meters.datagrams(type, "transmit")
    this.dropped = meters.datagrams(type, "dropped")
    this.probe = () => queue.dropped
    ;(this.dropped.probes ??= new Set()).add(this.probe)
  }

  /** The socket closed: its drops stay counted. */
  close(): void {
    if (this.dropped.probes?.delete(this.probe) === true) this.dropped.n += this.queue.dropped
  }
}
