/**
 * effect-wire's metrics: Effect `Metric` series that servers, client sockets,
 * UDP sockets, Protocol services and the exec server record on their own,
 * in the `Metric.MetricRegistry` of the context they were started in (the
 * process-wide default unless you provide one). They are on by default;
 * their names, units and attributes follow OpenTelemetry's semantic
 * conventions (`network.transport`, `network.type`, `server.address`,
 * `server.port`, `error.type`), and no attribute ever holds a peer's
 * address or port. Read them with `Metric.snapshot`, or export them with
 * `effect-wire/Observability` (Prometheus, OTLP). docs/observability.md
 * lists every series.
 *
 * Counting costs the hot path one addition to a plain number: the registry
 * reads those numbers only when a snapshot is taken.
 *
 * ```ts
 * const snapshot = yield* Metric.snapshot
 * const active = snapshot.find((m) => m.id === Metrics.names.activeConnections)
 * ```
 *
 * @since 0.2.0
 */
import * as Layer from "effect/Layer"
import { MetricsEnabled, NAMES } from "./internal/metrics.js"

/**
 * Whether effect-wire records metrics in this context (default `true`).
 * Read when a server, listener, socket or service starts: provide `false`
 * to run them without any (what `effect-wire serve --metrics off` does).
 *
 * ```ts
 * const quiet = Effect.provideService(program, Metrics.Enabled, false)
 * ```
 *
 * @since 0.2.0
 * @category references
 */
export const Enabled = MetricsEnabled

/**
 * A Layer turning effect-wire's metrics off for what it is provided to.
 *
 * ```ts
 * const program = Effect.provide(main, Metrics.layerDisabled)
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerDisabled: Layer.Layer<never> = Layer.succeed(MetricsEnabled)(false)

/**
 * The names of effect-wire's metrics (OpenTelemetry style, with dots;
 * Prometheus shows them with underscores: `effect_wire_server_io`).
 *
 * ```ts
 * Metrics.names.activeConnections // "effect_wire.server.active_connections"
 * ```
 *
 * @since 0.2.0
 * @category names
 */
export const names: {
  readonly [K in keyof typeof NAMES]: (typeof NAMES)[K]
} = NAMES
