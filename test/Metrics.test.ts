import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import * as Datagram from "../src/Datagram.js"
import * as Framing from "../src/Framing.js"
import * as Protocol from "../src/Protocol.js"
import * as Exec from "../src/servers/Exec.js"
import { certs } from "./helpers/certs.js"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as Metrics from "../src/Metrics.js"
import * as Echo from "../src/servers/Echo.js"
import * as Server from "../src/Server.js"
import * as Socket from "../src/Socket.js"
import { eventually } from "./helpers/sockets.js"

const loopback = Address.tcp("127.0.0.1", 0)

type Series = { readonly id: string; readonly attributes: Record<string, string> | undefined; readonly state: any }

/** The value of one series (a counter's count, a gauge's value, a histogram's count). */
const valueOf = (snapshot: ReadonlyArray<Series>, id: string, attributes: Record<string, string>): number => {
  const matching = snapshot.filter((m) =>
    m.id === id && Object.entries(attributes).every(([k, v]) => m.attributes?.[k] === v)
  )
  let total = 0
  for (const m of matching) total += m.state.count ?? m.state.value ?? 0
  return total
}

/** A registry of the test's own, so counts start at 0. */
const isolated = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

const exchange = (address: Address.Address, bytes: number) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* Socket.connect(address)
    yield* socket.write(new Uint8Array(bytes).fill(65))
    yield* socket.end
    let received = 0
    yield* Stream.runForEach(socket.reads, (chunk) => Effect.sync(() => void (received += chunk.length)))
    return received
  }))

const snapshot = Metric.snapshot as Effect.Effect<ReadonlyArray<Series>>

describe("Metrics", () => {
  it.live("a pump server (Echo) counts connections, outcomes, duration and exact bytes", () =>
    isolated(Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback })
      const port = String((server.address as Address.TcpAddress).port)
      const attrs = { "server.port": port, "network.transport": "tcp", "network.type": "ipv4" }
      assert.strictEqual(yield* exchange(server.address, 1000), 1000)
      assert.strictEqual(yield* exchange(server.address, 2345), 2345)
      const done = yield* eventually(
        "two connections closed",
        snapshot,
        (s) => valueOf(s, Metrics.names.closed, { ...attrs, "effect_wire.outcome": "completed" }) === 2 &&
          valueOf(s, Metrics.names.activeConnections, attrs) === 0 &&
          valueOf(s, Metrics.names.duration, attrs) === 2
      )
      assert.strictEqual(valueOf(done, Metrics.names.opened, attrs), 2)
      assert.strictEqual(valueOf(done, Metrics.names.io, { ...attrs, "network.io.direction": "receive" }), 3345)
      assert.strictEqual(valueOf(done, Metrics.names.io, { ...attrs, "network.io.direction": "transmit" }), 3345)
      // Never a peer address or port among the attributes.
      for (const m of done) {
        for (const key of Object.keys(m.attributes ?? {})) assert.notInclude(key, "peer")
      }
    })))

  it.live("bytes of a connection still open are counted when a snapshot is taken", () =>
    isolated(Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback })
      const attrs = { "server.port": String((server.address as Address.TcpAddress).port) }
      const socket = yield* Socket.connect(server.address)
      yield* socket.write(new Uint8Array(777))
      let got = 0
      const reads = yield* Stream.toPull(socket.reads)
      while (got < 777) got += (yield* reads).reduce((n, c) => n + c.length, 0)
      const s = yield* snapshot
      assert.strictEqual(valueOf(s, Metrics.names.io, { ...attrs, "network.io.direction": "receive" }), 777)
      assert.strictEqual(valueOf(s, Metrics.names.activeConnections, attrs), 1)
    })))

  it.live("a failed connection is counted by its error's tag, a refused one by the limit", () =>
    isolated(Effect.gen(function*() {
      const server = yield* Server.make({
        address: loopback,
        maxConnections: 1,
        overflow: "refuse",
        idleTimeout: Duration.millis(50),
        logLevel: "None",
        handler: (socket) => Stream.run(socket.reads, socket.writes)
      })
      const attrs = { "server.port": String((server.address as Address.TcpAddress).port) }
      const idle = yield* Socket.connect(server.address)
      // Served: the second is refused while the first holds the only slot.
      yield* eventually("served", server.stats, (s) => s.active === 1)
      const refused = yield* Socket.connect(server.address)
      yield* Stream.runDrain(refused.reads).pipe(Effect.ignore)
      yield* Stream.runDrain(idle.reads).pipe(Effect.ignore)
      const s = yield* eventually(
        "idle timeout and refusal counted",
        snapshot,
        (s) =>
          valueOf(s, Metrics.names.closed, { ...attrs, "effect_wire.outcome": "failed", "error.type": "IdleTimeout" }) ===
            1
      )
      assert.strictEqual(
        valueOf(s, Metrics.names.closed, { ...attrs, "effect_wire.outcome": "refused", "error.type": "MaxConnections" }),
        1
      )
      assert.strictEqual(valueOf(s, Metrics.names.opened, attrs), 1)
    })))

  it.live("Metrics.Enabled false records nothing", () =>
    isolated(Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback })
      yield* exchange(server.address, 10)
      yield* eventually("closed", server.stats, (s) => s.completed === 1)
      const s = yield* snapshot
      assert.deepStrictEqual(s.filter((m) => m.id.startsWith("effect_wire")), [])
    }).pipe(Effect.provideService(Metrics.Enabled, false))))

  it.live("client connects are counted by outcome, with their duration and bytes", () =>
    isolated(Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback })
      const port = String((server.address as Address.TcpAddress).port)
      assert.strictEqual(yield* exchange(server.address, 321), 321)
      // A port nobody listens on: the one of a server that stopped.
      const gone = yield* Effect.scoped(Effect.map(Echo.make({ address: loopback }), (s) => s.address))
      const refused = yield* Effect.flip(Effect.scoped(Socket.connect(gone)))
      assert.strictEqual(refused._tag, "ConnectionRefused")
      const s = yield* snapshot
      const attrs = { "server.port": port }
      assert.strictEqual(valueOf(s, Metrics.names.clientConnects, { ...attrs, "effect_wire.outcome": "connected" }), 1)
      assert.strictEqual(valueOf(s, Metrics.names.clientConnectDuration, attrs), 1)
      assert.strictEqual(valueOf(s, Metrics.names.clientIo, { ...attrs, "network.io.direction": "transmit" }), 321)
      assert.strictEqual(valueOf(s, Metrics.names.clientIo, { ...attrs, "network.io.direction": "receive" }), 321)
      assert.strictEqual(
        valueOf(s, Metrics.names.clientConnects, {
          "server.port": String((gone as Address.TcpAddress).port),
          "effect_wire.outcome": "failed",
          "error.type": "ConnectionRefused"
        }),
        1
      )
    })))

  it.live("UDP datagrams received, sent, and dropped by a full receive queue", () =>
    isolated(Effect.gen(function*() {
      const receiver = yield* Datagram.bind(loopback, { receiveBufferSize: 2 })
      const sender = yield* Datagram.bind(loopback)
      for (let i = 0; i < 5; i++) yield* sender.send(new Uint8Array([i]), receiver.address)
      const s = yield* eventually(
        "five received",
        snapshot,
        (s) => valueOf(s, Metrics.names.datagrams, { "network.io.direction": "receive" }) === 5
      )
      assert.strictEqual(valueOf(s, Metrics.names.datagrams, { "network.io.direction": "transmit" }), 5)
      assert.strictEqual(valueOf(s, Metrics.names.datagramsDropped, { "network.transport": "udp" }), 3)
    })))

  it.live("a Protocol service counts frames per codec and messages, rejected ones apart", () =>
    isolated(Effect.gen(function*() {
      const Kv = Protocol.make({
        name: "kv",
        framing: Framing.lines(),
        incoming: Schema.Struct({ n: Schema.Number }),
        outgoing: Schema.Struct({ n: Schema.Number })
      })
      const server = yield* Server.make({
        address: loopback,
        logLevel: "None",
        handler: Protocol.serve(Kv, (request) => Effect.succeed({ n: request.n + 1 }))
      })
      const socket = yield* Socket.connect(server.address)
      yield* socket.write(new TextEncoder().encode('{"n":1}\n{"n":2}\n{"n":"three"}\n'))
      yield* Stream.runDrain(socket.reads).pipe(Effect.ignore)
      const s = yield* snapshot
      const lines = { "effect_wire.codec": Kv.framing.name }
      assert.strictEqual(valueOf(s, Metrics.names.framesDecoded, lines), 3)
      assert.strictEqual(valueOf(s, Metrics.names.framesEncoded, lines), 2)
      assert.strictEqual(valueOf(s, Metrics.names.messagesDecoded, { "effect_wire.protocol": "kv" }), 2)
      assert.strictEqual(valueOf(s, Metrics.names.messagesRejected, { "effect_wire.protocol": "kv" }), 1)
      const port = String((server.address as Address.TcpAddress).port)
      const failed = yield* eventually(
        "the connection failed with the decode error",
        snapshot,
        (s) => valueOf(s, Metrics.names.closed, { "server.port": port, "effect_wire.outcome": "failed" }) === 1
      )
      assert.strictEqual(
        valueOf(failed, Metrics.names.closed, { "server.port": port, "error.type": "MessageDecodeError" }),
        1
      )
    })))

  it.live("TLS handshakes: the duration of those that succeed, the failures by tag", () =>
    isolated(Effect.gen(function*() {
      const c = certs()
      const server = yield* Echo.make({
        address: loopback,
        logLevel: "None",
        tls: { identity: { cert: c.server.cert, key: Redacted.make(c.server.key) } }
      })
      const attrs = { "server.port": String((server.address as Address.TcpAddress).port) }
      const client = yield* Echo.client(server.address, { tls: { ca: c.ca, servername: "localhost" } })
      assert.strictEqual(new TextDecoder().decode(yield* client.request("hi")), "hi")
      // Plain TCP to a TLS port: NotTls on the server's side.
      const plain = yield* Socket.connect(server.address)
      yield* plain.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"))
      yield* Stream.runDrain(plain.reads).pipe(Effect.ignore)
      const s = yield* eventually(
        "the failure counted",
        snapshot,
        (s) => valueOf(s, Metrics.names.handshakeFailures, attrs) === 1
      )
      assert.strictEqual(valueOf(s, Metrics.names.handshakeDuration, attrs), 1)
      assert.strictEqual(valueOf(s, Metrics.names.handshakeFailures, { ...attrs, "error.type": "NotTls" }), 1)
    })))

  it.live("exec commands by outcome: run, refused (by tag), timed out", () =>
    isolated(Effect.gen(function*() {
      const server = yield* Exec.make({ address: loopback, allow: ["echo", "sleep"], timeout: "200 millis" })
      const client = yield* Exec.client(server.address)
      yield* client.run(["echo", "hello"])
      yield* Effect.ignore(client.run(["cat", "/etc/passwd"]))
      yield* Effect.ignore(client.run(["sleep", "5"]))
      const s = yield* snapshot
      assert.strictEqual(valueOf(s, Metrics.names.execCommands, { "effect_wire.outcome": "run" }), 1)
      assert.strictEqual(
        valueOf(s, Metrics.names.execCommands, { "effect_wire.outcome": "refused", "error.type": "CommandNotAllowed" }),
        1
      )
      assert.strictEqual(valueOf(s, Metrics.names.execCommands, { "effect_wire.outcome": "timed_out" }), 1)
    })))

  it.live("the accept queue: its length at snapshot time, the time a connection waited in it", () =>
    isolated(Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, maxConnections: 1, logLevel: "None" })
      const attrs = { "server.port": String((server.address as Address.TcpAddress).port) }
      const first = yield* Socket.connect(server.address)
      yield* eventually("served", server.stats, (s) => s.active === 1)
      const second = yield* Socket.connect(server.address)
      yield* eventually("queued", snapshot, (s) => valueOf(s, Metrics.names.queued, attrs) === 1)
      yield* first.close
      yield* eventually("the second served", server.stats, (s) => s.accepted === 2)
      const s = yield* snapshot
      assert.strictEqual(valueOf(s, Metrics.names.queued, attrs), 0)
      assert.strictEqual(valueOf(s, Metrics.names.queueDuration, attrs), 1)
      yield* second.close
    })))

  it.live("a connection the drain cuts after shutdownTimeout is closed with outcome cut", () =>
    isolated(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Server.make({
        address: loopback,
        shutdownTimeout: Duration.millis(50),
        logLevel: "None",
        handler: () => Effect.never
      }).pipe(Scope.provide(scope))
      const attrs = { "server.port": String((server.address as Address.TcpAddress).port) }
      yield* Socket.connect(server.address)
      yield* eventually("served", server.stats, (s) => s.active === 1)
      yield* Scope.close(scope, Exit.void)
      const s = yield* snapshot
      assert.strictEqual(valueOf(s, Metrics.names.closed, { ...attrs, "effect_wire.outcome": "cut" }), 1)
      assert.strictEqual(valueOf(s, Metrics.names.activeConnections, attrs), 0)
    })))
})
