/**
 * The observability flags of `serve`: `--metrics HOST:PORT` serves
 * effect-wire's metrics in Prometheus' text format (loopback unless a host
 * is given), `--metrics off` records none, and `--otlp URL` exports spans
 * and metrics to an OpenTelemetry collector over OTLP/HTTP. The exporters'
 * code loads only when a flag asks for it.
 *
 * With `--workers`, the parent serves the one Prometheus endpoint, with the
 * workers' sums (`WorkerGroup.metrics`, published by the server's start with
 * {@link publishWorkersMetrics}); each worker records its own and exports
 * its own over OTLP, as one instance of the service (`service.instance.id`,
 * `process.pid`); the parent, which serves no connection, exports nothing.
 *
 * ```sh
 * effect-wire serve echo --metrics 9464 --otlp http://127.0.0.1:4318
 * ```
 *
 * @since 0.2.0
 */
import * as Flag from "effect/cli/Flag"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Address from "../Address.js"
import { MetricsEnabled } from "../internal/metrics.js"
import { workerRole } from "../internal/workersListen.js"
import { CliError, messageOf } from "./common.js"

/**
 * `--metrics` and `--otlp`, shared by every `serve` subcommand.
 *
 * ```ts
 * const flags = { ...listenOptions, ...observabilityFlags }
 * ```
 *
 * @since 0.2.0
 * @category flags
 */
export const observabilityFlags = {
  metrics: Flag.String("metrics").pipe(
    Flag.withMetavar("HOST:PORT|PORT|off"),
    Flag.withDescription(
      "Serve the server's metrics for Prometheus at http://HOST:PORT/metrics (a bare PORT listens on 127.0.0.1: " +
        "this machine only; 0 picks a free port), or record none with off. Recorded either way unless off. " +
        "With --workers the parent serves the sums over the workers."
    ),
    Flag.optional
  ),
  otlp: Flag.String("otlp").pipe(
    Flag.withMetavar("URL"),
    Flag.withDescription(
      "Export spans (one per connection and TLS handshake) and metrics to an OpenTelemetry collector over " +
        "OTLP/HTTP, e.g. http://127.0.0.1:4318 (sent every 5 s and at exit). With --workers each worker exports " +
        "its own, told apart by service.instance.id and process.pid."
    ),
    Flag.optional
  )
} as const

/** What `--metrics` asks for. */
type MetricsFlag =
  | { readonly _tag: "Off" }
  | { readonly _tag: "On" }
  | { readonly _tag: "Serve"; readonly host: string; readonly port: number }

const fail = (message: string) => Effect.fail(new CliError({ message }))

const parseMetrics = (value: Option.Option<string>): Effect.Effect<MetricsFlag, CliError> => {
  if (Option.isNone(value) || value.value === "on") return Effect.succeed({ _tag: "On" })
  const text = value.value.trim()
  if (text === "off") return Effect.succeed({ _tag: "Off" })
  const withHost = /^\d+$/.test(text) ? `127.0.0.1:${text}` : text
  return Result.match(Address.parse(withHost), {
    onFailure: (e) => fail(`--metrics ${text}: ${e.message} (give HOST:PORT, a PORT on 127.0.0.1, or off)`),
    onSuccess: (address) =>
      address._tag === "TcpAddress"
        ? Effect.succeed({ _tag: "Serve" as const, host: address.host, port: address.port })
        : fail(`--metrics ${text}: Prometheus scrapes over TCP: give HOST:PORT, a PORT on 127.0.0.1, or off`)
  })
}

const parseOtlp = (value: Option.Option<string>): Effect.Effect<string | undefined, CliError> => {
  if (Option.isNone(value)) return Effect.succeed(undefined)
  let url: URL
  try {
    url = new URL(value.value)
  } catch {
    return fail(`--otlp ${value.value}: not a URL; give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318`)
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return fail(`--otlp ${value.value}: OTLP/HTTP needs an http or https URL, e.g. http://127.0.0.1:4318`)
  }
  return Effect.succeed(url.href)
}

/** Where the Prometheus endpoint of a `--workers` parent finds the group's sums, once the group has started. */
interface WorkersMetrics {
  current: Effect.Effect<ReadonlyArray<Metric.Metric.Snapshot>> | undefined
}

const WorkersMetricsRef = Context.Reference<WorkersMetrics | undefined>("effect-wire/cli/WorkersMetrics", {
  defaultValue: () => undefined
})

/**
 * Hand the `--metrics` endpoint a started `Workers` group's sums: until
 * then it serves an empty page.
 *
 * ```ts
 * const group = yield* Workers.make(server, { workers: 2 })
 * yield* publishWorkersMetrics(group.metrics)
 * ```
 *
 * @since 0.2.0
 * @category combinators
 */
export const publishWorkersMetrics = (
  metrics: Effect.Effect<ReadonlyArray<Metric.Metric.Snapshot>>
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const holder = yield* WorkersMetricsRef
    if (holder !== undefined) holder.current = metrics
  })

/**
 * Runs a `serve` subcommand's program with what `--metrics` and `--otlp`
 * ask for: the Prometheus endpoint is up (and its address printed on
 * stdout, `metrics http://127.0.0.1:9464/metrics`) before the server
 * listens.
 *
 * ```ts
 * const serveIt = (options: Options) => program.pipe(withObservability(options), Effect.scoped)
 * ```
 *
 * @since 0.2.0
 * @category combinators
 */
export const withObservability = (
  options: {
    readonly metrics: Option.Option<string>
    readonly otlp: Option.Option<string>
    readonly workers?: number | "auto" | undefined
  }
) =>
<A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<A, E | CliError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const metrics = yield* parseMetrics(options.metrics)
    const otlp = yield* parseOtlp(options.otlp)
    // In a worker, the parent serves the endpoint (the sums) and says where; the parent of workers exports nothing.
    const worker = workerRole() !== undefined
    if (metrics._tag === "Off" && otlp !== undefined && !worker) {
      yield* Effect.sync(() => void process.stderr.write("--metrics off: --otlp exports spans only\n"))
    }
    const parent = !worker && options.workers !== undefined && options.workers !== 1
    const serve = metrics._tag === "Serve" && !worker
    const exportOtlp = otlp !== undefined && !parent
    const Observability = serve || exportOtlp
      ? yield* Effect.promise(() => import("../Observability.js"))
      : undefined
    const groupMetrics: WorkersMetrics = { current: undefined }
    if (serve) {
      const snapshot = parent
        ? Effect.suspend(() => groupMetrics.current ?? Effect.succeed<ReadonlyArray<Metric.Metric.Snapshot>>([]))
        : undefined
      const bound = yield* Observability!.servePrometheus({ host: metrics.host, port: metrics.port, snapshot }).pipe(
        Effect.mapError((e) =>
          new CliError({ message: `--metrics ${metrics.host}:${metrics.port}: cannot listen: ${messageOf(e.cause)}` })
        )
      )
      yield* Effect.sync(() => void process.stdout.write(`metrics http://${Address.format(bound)}/metrics\n`))
    }
    const configured = Effect.provideService(
      metrics._tag === "Off" ? Effect.provideService(program, MetricsEnabled, false) : program,
      WorkersMetricsRef,
      groupMetrics
    )
    return yield* (!exportOtlp
      ? configured
      : Effect.provide(configured, Observability!.layerOtlp({ url: otlp, serviceName: "effect-wire" })))
  })
