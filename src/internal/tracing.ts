/**
 * effect-wire's spans: one per server connection (made in Node's callbacks,
 * with the tracer and parent span of the context the listener was started
 * in), one per client connect and one per TLS handshake, with
 * OpenTelemetry's attributes, the error's tag on failure and the drain's
 * outcome. Made only when a tracer that exports is installed (anything but
 * Effect's built-in one, e.g. `Observability.layerOtlp`) and `Spans` is not
 * turned off: by default a connection costs no span.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as Address from "../Address.js"
import { addressAttributes, tagOf } from "./metrics.js"
import * as Check from "./options.js"

/** Whether effect-wire makes its spans (default true; they are made only when a tracer that exports is installed). */
export const SpansEnabled = Context.Reference<boolean>("effect-wire/Observability/Spans", {
  defaultValue: () => true
})

export const SPAN_NAMES = {
  connection: "effect_wire.server.connection",
  connect: "effect_wire.client.connect",
  handshake: "effect_wire.tls.handshake",
  request: "effect_wire.protocol.request"
} as const

/** Where a socket carries its connection span. */
export const kSpan = Symbol.for("effect-wire/internal/tracing/span")

interface WithSpan {
  [kSpan]?: Tracer.Span | undefined
}

/** OpenTelemetry's attributes of an address on a span (the port a number). */
const spanAttributes = (address: Address.Address): Record<string, string | number> =>
  Object.fromEntries(
    Object.entries(addressAttributes(address)).map(([k, v]) => k === "server.port" ? [k, Number(v)] : [k, v])
  )

/** The tracer to make effect-wire's spans with in `context`, or undefined when none should be made. */
export const tracerOf = (context: Context.Context<never>): Tracer.Tracer | undefined => {
  if (!Context.get(context, SpansEnabled)) return undefined
  const tracer = Context.get(context, Tracer.Tracer)
  return tracer === Tracer.nativeTracer ? undefined : tracer
}

const nanos = (): bigint => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1_000_000))

/** The spans of one listener's connections and handshakes. */
export class ConnectionTracer {
  private readonly parent: Option.Option<Tracer.AnySpan>
  private readonly attributes: ReadonlyArray<readonly [string, string | number]>

  constructor(private readonly tracer: Tracer.Tracer, context: Context.Context<never>, address: Address.Address) {
    this.parent = Context.getOption(context, Tracer.ParentSpan)
    this.attributes = Object.entries(spanAttributes(address))
  }

  private span(name: string, startTime: bigint): Tracer.Span {
    const span = this.tracer.span({
      name,
      parent: this.parent,
      annotations: Context.empty(),
      links: [],
      startTime,
      kind: "server",
      root: false,
      sampled: true
    })
    for (const [k, v] of this.attributes) span.attribute(k, v)
    return span
  }

  /** A connection was accepted: its span starts, carried by the socket until it ends. */
  start(socket: WithSpan & { readonly remoteAddress: Address.Address }): void {
    const span = this.span(SPAN_NAMES.connection, nanos())
    const peer = socket.remoteAddress
    if (peer._tag === "TcpAddress") {
      span.attribute("network.peer.address", peer.host)
      span.attribute("network.peer.port", peer.port)
    }
    socket[kSpan] = span
  }

  /** A handshake ended (`durationMs` after it began): its span, with the error's tag on failure. */
  handshake(durationMs: number, errorTag: string | undefined): void {
    const end = nanos()
    const span = this.span(SPAN_NAMES.handshake, end - BigInt(Math.round(durationMs * 1_000_000)))
    if (errorTag !== undefined) span.attribute("error.type", errorTag)
    span.end(end, errorTag === undefined ? Exit.void : Exit.fail(errorTag))
  }
}

/** The connection span a socket carries, if any. */
export const spanOf = (socket: unknown): Tracer.Span | undefined =>
  typeof socket === "object" && socket !== null ? (socket as WithSpan)[kSpan] : undefined

/**
 * A served connection ended: its span ends with the outcome (`completed`,
 * `failed` with `error.type`, `cut` by the drain; `effect_wire.drain` says
 * whether a drain cut it or it finished during one) and the bytes it moved.
 */
export const endConnectionSpan = (
  socket: unknown,
  outcome: "completed" | "failed" | "cut",
  exit: Exit.Exit<unknown, unknown> | undefined,
  draining = false
): void => {
  const span = spanOf(socket)
  if (span === undefined) return
  ;(socket as WithSpan)[kSpan] = undefined
  span.attribute("effect_wire.outcome", outcome)
  if (outcome === "cut") span.attribute("effect_wire.drain", "cut")
  else if (draining) span.attribute("effect_wire.drain", "finished")
  if (outcome === "failed" && exit !== undefined && Exit.isFailure(exit)) {
    const error = exit.cause.reasons.find((r) => r._tag === "Fail")
    span.attribute("error.type", error === undefined ? "Defect" : tagOf((error as { readonly error: unknown }).error))
  }
  const raw = (socket as { readonly raw?: { readonly bytesRead?: number; readonly bytesWritten?: number } }).raw
  if (raw !== undefined) {
    span.attribute("effect_wire.bytes_received", raw.bytesRead ?? 0)
    span.attribute("effect_wire.bytes_sent", raw.bytesWritten ?? 0)
  }
  span.end(nanos(), exit ?? Exit.void)
}

/** `effect` as a client span (`Socket.connect`, a client's TLS handshake), when spans are made. */
export const clientSpan = <A, E, R>(
  name: string,
  address: Address.Address,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withSpan(
    Effect.tapError(effect, (error) => Effect.annotateCurrentSpan("error.type", tagOf(error))),
    name,
    { kind: "client", attributes: spanAttributes(address) }
  )

/**
 * `Protocol.serve`'s `traceRequests`: wraps each handler call in a request
 * span, the child of its connection's span when it has one; undefined when
 * not asked. A value other than a boolean is a defect.
 */
export const requestTracing = (
  where: string,
  protocol: string | undefined,
  option: unknown
): (<A, E, R>(effect: Effect.Effect<A, E, R>, socket: unknown) => Effect.Effect<A, E, R>) | undefined => {
  if (option === undefined || option === false) return undefined
  if (option !== true) throw Check.defect(where, "traceRequests", "must be true or false")
  const attributes = { "effect_wire.protocol": protocol ?? "unnamed" }
  return (effect, socket) => {
    const parent = spanOf(socket)
    return Effect.withSpan(
      effect,
      SPAN_NAMES.request,
      parent === undefined ? { kind: "server", attributes } : { kind: "server", attributes, parent }
    )
  }
}
