/**
 * OTLP/HTTP export, against a receiver in the test: an HTTP server on
 * loopback that decodes the JSON payloads `effect/observability` sends and
 * keeps every span and metric name. `serve echo --otlp URL` as a process, and
 * the library's spans in-process: a connection's span with its attributes,
 * the error's tag, a client connect joining its caller's trace, TLS
 * handshakes, Protocol's request spans when asked.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Observability from "../src/Observability.js"
import * as Protocol from "../src/Protocol.js"
import * as Echo from "../src/servers/Echo.js"
import * as Server from "../src/Server.js"
import * as Socket from "../src/Socket.js"
import { spanOf } from "../src/internal/tracing.js"
import { certs } from "./helpers/certs.js"
import { dist, startCli } from "./helpers/cliBuild.js"

interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: number | string
  readonly doubleValue?: number
  readonly boolValue?: boolean
}
interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: OtlpValue }>
  readonly status: { readonly code: number }
}

/** What a receiver got: every span, and the names of every metric. */
interface Received {
  readonly spans: Array<OtlpSpan>
  readonly metrics: Set<string>
  readonly paths: Set<string>
}

/** An OTLP/HTTP receiver on loopback, port 0, closed with the scope. */
const receiver = Effect.acquireRelease(
  Effect.callback<{ readonly url: string; readonly received: Received; readonly server: Http.Server }>((resume) => {
    const received: Received = { spans: [], metrics: new Set(), paths: new Set() }
    const server = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        received.paths.add(req.url ?? "")
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        for (const rs of body.resourceSpans ?? []) {
          for (const ss of rs.scopeSpans ?? []) received.spans.push(...ss.spans)
        }
        for (const rm of body.resourceMetrics ?? []) {
          for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) received.metrics.add(m.name)
        }
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, received, server }))
    })
  }),
  ({ server }) => Effect.sync(() => void server.close())
)

const attribute = (span: OtlpSpan, key: string): string | number | boolean | undefined => {
  const value = span.attributes.find((a) => a.key === key)?.value
  if (value === undefined) return undefined
  return value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.doubleValue ?? value.boolValue)
}

const loopback = Address.tcp("127.0.0.1", 0)

/** Waits (bounded: 10 s) until the receiver got a span matching `check`. */
const spanWhere = (received: Received, check: (span: OtlpSpan) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      const span = received.spans.find(check)
      if (span !== undefined) return span
      yield* Effect.sleep(Duration.millis(50))
    }
    return yield* Effect.die(new Error(`no such span among ${received.spans.map((s) => s.name).join(", ")}`))
  })

const exchange = (address: Address.Address, text: string) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* Socket.connect(address)
    yield* socket.write(new TextEncoder().encode(text))
    yield* socket.end
    yield* Stream.runDrain(socket.reads)
  }))

describe("OTLP export", () => {
  it.live("serve echo --otlp URL: a span per connection, and the metrics, reach the collector", () =>
    Effect.gen(function*() {
      const { received, url } = yield* receiver
      const server = startCli(dist, ["serve", "echo", "--port", "0", "--otlp", url], { timeoutMs: 60_000 })
      yield* Effect.addFinalizer(() => Effect.sync(() => server.signal("SIGKILL")))
      const line = yield* Effect.promise(() => server.waitFor(/^listening tcp /))
      const port = Number(line.split(":").pop())
      yield* exchange(Address.tcp("127.0.0.1", port), "hello otlp")
      // SIGTERM: the server drains, and what is buffered is exported as the program ends.
      server.signal("SIGTERM")
      const exit = yield* Effect.promise(() => server.exit)
      assert.strictEqual(exit.code, 0, exit.stderr)
      const span = yield* spanWhere(received, (s) => s.name === "effect_wire.server.connection")
      assert.strictEqual(attribute(span, "server.port"), port)
      assert.strictEqual(attribute(span, "server.address"), "127.0.0.1")
      assert.strictEqual(attribute(span, "network.transport"), "tcp")
      assert.strictEqual(attribute(span, "network.peer.address"), "127.0.0.1")
      assert.strictEqual(attribute(span, "effect_wire.outcome"), "completed")
      assert.strictEqual(attribute(span, "effect_wire.bytes_received"), 10)
      assert.strictEqual(span.kind, 2) // SPAN_KIND_SERVER
      assert.isTrue(received.paths.has("/v1/metrics"))
      assert.isTrue(received.metrics.has("effect_wire.server.io"), [...received.metrics].join(", "))
      assert.isTrue(received.metrics.has("effect_wire.server.connection.closed"))
    }))

  it.live("in a program: failures carry their tag, a connect joins its caller's trace, handshakes and requests", () =>
    Effect.gen(function*() {
      const { received, url } = yield* receiver
      const c = certs()
      const program = Effect.gen(function*() {
        // A connection that fails: its span carries the error's tag.
        const idle = yield* Server.make({
          address: loopback,
          idleTimeout: Duration.millis(50),
          logLevel: "None",
          handler: (socket) => Stream.run(socket.reads, socket.writes)
        })
        const caller = yield* Effect.scoped(Effect.gen(function*() {
          const socket = yield* Socket.connect(idle.address)
          yield* Stream.runDrain(socket.reads).pipe(Effect.ignore)
          return yield* Effect.currentSpan
        })).pipe(Effect.withSpan("caller"))
        // A TLS server: a handshake span.
        const tls = yield* Echo.make({
          address: loopback,
          tls: { identity: { cert: c.server.cert, key: Redacted.make(c.server.key) } }
        })
        const client = yield* Echo.client(tls.address, { tls: { ca: c.ca, servername: "localhost" } })
        yield* client.request("hi")
        // Request spans, asked for.
        const Kv = Protocol.make({
          name: "kv",
          framing: Framing.lines(),
          incoming: Schema.Struct({ n: Schema.Number }),
          outgoing: Schema.Struct({ n: Schema.Number })
        })
        const kv = yield* Server.make({
          address: loopback,
          handler: Protocol.serve(Kv, (r) => Effect.succeed({ n: r.n + 1 }), { traceRequests: true })
        })
        yield* exchange(kv.address, '{"n":1}\n{"n":2}\n')
        return { caller, idle: idle.address as Address.TcpAddress, kv: kv.address as Address.TcpAddress }
      })
      const otlp = Observability.layerOtlp({ url, exportInterval: "100 millis" })
      const { caller, idle, kv } = yield* Effect.scoped(Effect.provide(program, otlp))

      const failed = yield* spanWhere(
        received,
        (s) => s.name === "effect_wire.server.connection" && attribute(s, "server.port") === idle.port
      )
      assert.strictEqual(attribute(failed, "effect_wire.outcome"), "failed")
      assert.strictEqual(attribute(failed, "error.type"), "IdleTimeout")
      assert.strictEqual(failed.status.code, 2) // STATUS_CODE_ERROR

      const connect = yield* spanWhere(
        received,
        (s) => s.name === "effect_wire.client.connect" && attribute(s, "server.port") === idle.port
      )
      assert.strictEqual(connect.traceId, caller.traceId)
      assert.strictEqual(connect.parentSpanId, caller.spanId)
      assert.strictEqual(connect.kind, 3) // SPAN_KIND_CLIENT

      const handshake = yield* spanWhere(received, (s) => s.name === "effect_wire.tls.handshake" && s.kind === 2)
      assert.strictEqual(handshake.status.code !== 2, true)
      yield* spanWhere(received, (s) => s.name === "effect_wire.tls.handshake" && s.kind === 3)

      const connection = yield* spanWhere(
        received,
        (s) => s.name === "effect_wire.server.connection" && attribute(s, "server.port") === kv.port
      )
      const requests = received.spans.filter((s) => s.name === "effect_wire.protocol.request")
      assert.strictEqual(requests.length, 2)
      for (const request of requests) {
        assert.strictEqual(request.parentSpanId, connection.spanId)
        assert.strictEqual(attribute(request, "effect_wire.protocol"), "kv")
      }
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.live("no spans are made without a tracer that exports (the default)", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback)
      yield* Effect.forkScoped(Socket.connect(listener.address))
      const [accepted] = yield* Stream.runCollect(Stream.take(listener.accept, 1))
      assert.isUndefined(spanOf(accepted))
    }))
})
