/**
 * Exporters for effect-wire's metrics (see `Metrics`) and spans, built on
 * `effect/observability`: a Prometheus scrape endpoint (`PrometheusMetrics`
 * on Effect's HTTP server) and OTLP/HTTP export of traces and metrics
 * (`OtlpTracer`, `OtlpMetrics`). A subpath of its own
 * (`effect-wire/Observability`), not in the root entry: it loads Node's
 * HTTP server and client, which a program that exports nothing never needs.
 *
 * ```ts
 * const Live = Layer.mergeAll(EchoLive, Observability.layerPrometheus({ port: 9464 }))
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as HttpServerError from "effect/http/HttpServerError"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import * as Address from "./Address.js"
import * as Check from "./internal/options.js"
import { SpansEnabled } from "./internal/tracing.js"
import { workerRole } from "./internal/workersListen.js"

/**
 * Whether effect-wire makes its spans (default `true`): one per server
 * connection, client connect and TLS handshake. They are made only when a
 * tracer that exports is installed (anything but Effect's built-in one, e.g.
 * {@link layerOtlp}), so by default a connection costs no span.
 *
 * ```ts
 * const quiet = Effect.provideService(program, Observability.Spans, false)
 * ```
 *
 * @since 0.2.0
 * @category references
 */
export const Spans = SpansEnabled

// The HTTP server and client load only when an exporter is used.
const loadPrometheus = () =>
  Promise.all([
    import("@effect/platform-node/NodeHttpServer"),
    import("effect/http/HttpRouter"),
    import("effect/observability/PrometheusMetrics"),
    import("node:http"),
    import("effect/http/HttpServerResponse")
  ])
const loadOtlp = () =>
  Promise.all([
    import("@effect/platform-node/NodeHttpClient"),
    import("effect/observability/OtlpMetrics"),
    import("effect/observability/OtlpSerialization"),
    import("effect/observability/OtlpTracer")
  ])

/**
 * Options of {@link servePrometheus} and {@link layerPrometheus}.
 *
 * ```ts
 * const options: Observability.PrometheusOptions = { host: "127.0.0.1", port: 9464, path: "/metrics" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface PrometheusOptions {
  /** Where to listen (default 127.0.0.1: this machine only). */
  readonly host?: string | undefined
  /** The port (default 9464, Prometheus' registered port for OpenTelemetry exporters); 0 picks a free one. */
  readonly port?: number | undefined
  /** The path Prometheus scrapes (default `/metrics`). */
  readonly path?: `/${string}` | undefined
  /**
   * Where the series come from, taken at each scrape (default: the current
   * `Metric.MetricRegistry`'s). A `Workers` group's parent serves its
   * workers' sums with `snapshot: group.metrics`.
   */
  readonly snapshot?: Effect.Effect<ReadonlyArray<Metric.Metric.Snapshot>> | undefined
}

/** Prometheus' text format of `snapshot`, rendered by effect/observability's formatter (it reads a registry). */
const formatSnapshot = (
  PrometheusMetrics: typeof import("effect/observability/PrometheusMetrics"),
  snapshot: ReadonlyArray<Metric.Metric.Snapshot>
): string => {
  const registry: Metric.MetricRegistry = new Map()
  for (const [i, { state, ...meta }] of snapshot.entries()) {
    registry.set(String(i), { ...meta, hooks: { get: () => state, update: () => {}, modify: () => {} } })
  }
  return PrometheusMetrics.formatUnsafe(Context.make(Metric.MetricRegistry, registry))
}

/**
 * Serve the metrics of the current `Metric.MetricRegistry` (effect-wire's
 * and any of your own), or the `snapshot` option's (a `Workers` group's
 * sums), in Prometheus' text format, over HTTP, until the scope closes;
 * succeeds with the address bound. It is
 * `PrometheusMetrics.layerHttp` from `effect/observability` on Effect's
 * Node HTTP server. Fails with `ServeError` when it cannot listen.
 *
 * ```ts
 * const address = yield* Observability.servePrometheus({ port: 0 })
 * console.log(`scrape http://${Address.format(address)}/metrics`)
 * ```
 *
 * @since 0.2.0
 * @category prometheus
 */
export const servePrometheus = (
  options?: PrometheusOptions | undefined
): Effect.Effect<Address.TcpAddress, HttpServerError.ServeError, Scope.Scope> =>
  Effect.suspend(() => {
    const host = options?.host ?? "127.0.0.1"
    const port = options?.port ?? 9464
    const reason = Check.integer(port, 0, 65535)
    if (reason !== undefined) return Effect.die(Check.defect("Observability.servePrometheus", "port", reason))
    return Effect.flatMap(Effect.promise(loadPrometheus), ([NodeHttpServer, HttpRouter, PrometheusMetrics, Http, Response]) => {
      const path = options?.path ?? "/metrics"
      const snapshot = options?.snapshot
      const route = snapshot === undefined
        ? PrometheusMetrics.layerHttp({ path })
        : HttpRouter.add(
          "GET",
          path,
          Effect.map(snapshot, (s) =>
            Response.text(formatSnapshot(PrometheusMetrics, s), {
              contentType: "text/plain; version=0.0.4; charset=utf-8"
            }))
        )
      const app = HttpRouter.serve(route, {
        disableLogger: true,
        disableListenLog: true
      })
      // Scrapes keep their connection open: closing waits at most a second for them.
      const http = Http.createServer()
      const server = NodeHttpServer.layer(() => http, { host, port, gracefulShutdownTimeout: Duration.seconds(1) })
      return Effect.map(Layer.build(Layer.provide(app, server)), () => {
        const bound = http.address()
        return typeof bound === "object" && bound !== null
          ? new Address.TcpAddress({ host: bound.address, port: bound.port }, { disableChecks: true })
          : new Address.TcpAddress({ host, port }, { disableChecks: true })
      })
    })
  })

/**
 * {@link servePrometheus} as a Layer: serves while the Layer is in use.
 *
 * ```ts
 * const Live = Layer.mergeAll(EchoLive, Observability.layerPrometheus({ port: 9464 }))
 * ```
 *
 * @since 0.2.0
 * @category prometheus
 */
export const layerPrometheus = (
  options?: PrometheusOptions | undefined
): Layer.Layer<never, HttpServerError.ServeError> => Layer.effectDiscard(servePrometheus(options))

/**
 * Options of {@link layerOtlp}.
 *
 * ```ts
 * const options: Observability.OtlpOptions = { url: "http://127.0.0.1:4318", serviceName: "chat" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface OtlpOptions {
  /** The collector's base URL, e.g. `http://127.0.0.1:4318`: traces go to `/v1/traces`, metrics to `/v1/metrics`. */
  readonly url: string
  /** `service.name` of the resource (default `effect-wire`). */
  readonly serviceName?: string | undefined
  /** How often spans and metrics are sent (default 5 seconds; whatever is left is sent when the Layer ends). */
  readonly exportInterval?: Duration.Input | undefined
  /**
   * More attributes of the resource; they win over the defaults and over
   * `OTEL_RESOURCE_ATTRIBUTES`. By default each process is one instance of
   * the service: `service.instance.id` (a random UUID per process) and
   * `process.pid`, plus `effect_wire.worker` (its slot) in a `Workers`
   * worker, unless `OTEL_RESOURCE_ATTRIBUTES` names them. That is how a
   * collector tells apart, and adds up, the processes of one service.
   */
  readonly resourceAttributes?: Readonly<Record<string, string | number | boolean>> | undefined
}

const instanceId = Crypto.randomUUID()

/** This process's identity as resource attributes, leaving out what `OTEL_RESOURCE_ATTRIBUTES` sets. */
const processAttributes = (): Record<string, string | number> => {
  const fromEnv = new Set(
    (process.env["OTEL_RESOURCE_ATTRIBUTES"] ?? "").split(",").map((pair) => {
      const key = pair.split("=")[0]!.trim()
      try {
        return decodeURIComponent(key)
      } catch {
        return key
      }
    })
  )
  const role = workerRole()
  const defaults: Record<string, string | number> = {
    "service.instance.id": instanceId,
    "process.pid": process.pid,
    ...(role === undefined ? {} : { "effect_wire.worker": role.worker })
  }
  for (const key of fromEnv) delete defaults[key]
  return defaults
}

/**
 * Export spans (as the `Tracer`) and metrics over OTLP/HTTP with JSON
 * payloads, through `effect/observability`'s `OtlpTracer` and `OtlpMetrics`
 * and Node's HTTP client. What is still buffered is sent when the Layer is
 * released.
 *
 * ```ts
 * const Live = Layer.provide(EchoLive, Observability.layerOtlp({ url: "http://127.0.0.1:4318" }))
 * ```
 *
 * @since 0.2.0
 * @category otlp
 */
export const layerOtlp = (options: OtlpOptions): Layer.Layer<never> => {
  const base = options.url.replace(/\/+$/, "")
  const resource = {
    serviceName: options.serviceName ?? "effect-wire",
    attributes: { ...processAttributes(), ...options.resourceAttributes }
  }
  const exportInterval = options.exportInterval ?? Duration.seconds(5)
  return Layer.unwrap(Effect.map(Effect.promise(loadOtlp), ([NodeHttpClient, OtlpMetrics, OtlpSerialization, OtlpTracer]) =>
    Layer.mergeAll(
      OtlpTracer.layer({ url: `${base}/v1/traces`, resource, exportInterval }),
      OtlpMetrics.layer({ url: `${base}/v1/metrics`, resource, exportInterval })
    ).pipe(
      Layer.provide(OtlpSerialization.layerJson),
      Layer.provide(NodeHttpClient.layerNodeHttp)
    ) as Layer.Layer<never>))
}
