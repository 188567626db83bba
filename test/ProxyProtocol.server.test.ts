/**
 * The PROXY protocol over real loopback sockets: a server made with
 * `proxyProtocol` reads the header before every kind of handler (fiber,
 * pump, Protocol.serve), shows the client's address, keeps the bytes after
 * the header, and closes hostile connections with a typed, counted, logged
 * error while it goes on serving.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Protocol from "../src/Protocol.js"
import * as ProxyProtocol from "../src/ProxyProtocol.js"
import * as Server from "../src/Server.js"
import * as Socket from "../src/Socket.js"
import { certs } from "./helpers/certs.js"
import { freePort, openFds } from "./helpers/sockets.js"

const loopback = Address.tcp("127.0.0.1", 0)
const client = Address.tcp("203.0.113.7", 51000)
const lb = Address.tcp("10.0.0.2", 443)
const trusted = { trustedSources: ["127.0.0.0/8", "::1"] }
const text = (s: string) => new TextEncoder().encode(s)

/** A raw node:net client: writes each part in its own write, reads to the end (or until the server closes). */
const rawClient = (address: Address.Address, parts: ReadonlyArray<Uint8Array | string>, options?: { readonly end?: boolean }) =>
  Effect.callback<{ readonly data: string; readonly closed: "end" | "reset" }>((resume) => {
    const { host, port } = address as Address.TcpAddress
    const socket = Net.connect({ host, port })
    let data = ""
    socket.on("data", (d) => void (data += d.toString("latin1")))
    socket.on("error", () => {})
    socket.on("close", (hadError) => resume(Effect.succeed({ data, closed: hadError ? "reset" : "end" })))
    socket.on("connect", () => {
      for (const part of parts) socket.write(part)
      if (options?.end !== false) socket.end()
    })
    return Effect.sync(() => socket.destroy())
  })

/** The handler's answer: the peer it sees, then every byte it read. */
const fiberHandler = (socket: Socket.Socket) =>
  Effect.gen(function*() {
    yield* socket.write(text(`${Address.format(socket.remoteAddress)}|`))
    yield* Stream.run(socket.reads, socket.writes)
  })

const pumpHandler = Server.pump((socket) => {
  let first = true
  return {
    onRead: (bytes, out) => {
      if (first) out.push(text(`${Address.format(socket.remoteAddress)}|`))
      first = false
      out.push(bytes)
    },
    onEnd: () => undefined
  }
})

const Lines = Protocol.make({ framing: Framing.lines(), incoming: Schema.String, outgoing: Schema.String, format: "json" })
const protocolHandler = Protocol.serve(Lines, (request, connection) =>
  Effect.succeed(`${Address.format(connection.socket.remoteAddress)}|${request}`))

const handlers = [
  ["a fiber handler", fiberHandler, "hello", (peer: string) => `${peer}|hello`],
  ["a pump handler (Node's callbacks)", pumpHandler, "hello", (peer: string) => `${peer}|hello`],
  ["Protocol.serve", protocolHandler, "\"hello\"\n", (peer: string) => `"${peer}|hello"\n`]
] as const

const withServer = <A, E>(
  options: Partial<Server.Options<unknown, never>>,
  body: (server: Server.RunningServer) => Effect.Effect<A, E>
) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* Server.make({
      address: loopback,
      handler: fiberHandler,
      logLevel: "None",
      proxyProtocol: trusted,
      ...options
    } as Server.Options<unknown, never>)
    return yield* body(server)
  }))

/** Collected log lines, and a wait for one. */
const logLines = () => {
  const lines: Array<string> = []
  const logger = Logger.make<unknown, void>(({ logLevel, message }) => {
    lines.push(`${logLevel.toUpperCase()} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return { lines, layer: Logger.layer([logger]) }
}

describe("PROXY protocol on a server", () => {
  for (const [name, handler, request, answer] of handlers) {
    for (const version of ["v1", "v2"] as const) {
      it.live(`${name} sees the client's address from a ${version} header, and the bytes in the header's read`, () =>
        withServer({ handler: handler as never }, (server) =>
          Effect.gen(function*() {
            const header = version === "v1" ? ProxyProtocol.v1(client, lb) : ProxyProtocol.v2(client, lb)
            const bytes = ProxyProtocol.encode(header)
            // The header and the first request in one write: the request must not be lost.
            const wire = new Uint8Array([...bytes, ...text(request)])
            const { data } = yield* rawClient(server.address, [wire])
            assert.strictEqual(data, answer("203.0.113.7:51000"))
            // And split in three writes, the cut inside the header.
            const split = yield* rawClient(server.address, [bytes.subarray(0, 7), bytes.subarray(7), text(request)])
            assert.strictEqual(split.data, answer("203.0.113.7:51000"))
          })))
    }
  }

  it.live("Socket.connect's proxyHeader is written first; ProxyProtocol.headerOf gives the header and its TLVs", () =>
    Effect.gen(function*() {
      let seen: Option.Option<ProxyProtocol.Header> = Option.none()
      const handler = (socket: Socket.Socket) =>
        Effect.gen(function*() {
          seen = ProxyProtocol.headerOf(socket)
          yield* fiberHandler(socket)
        })
      yield* withServer({ handler }, (server) =>
        Effect.scoped(Effect.gen(function*() {
          const header = ProxyProtocol.v2(Address.tcp("2001:db8::7", 4000), Address.tcp("2001:db8::1", 443), {
            tlvs: [{ _tag: "Alpn", protocol: "h2" }, { _tag: "Authority", hostname: "api.example.test" }, { _tag: "Crc32c" }]
          })
          const socket = yield* Socket.connect(server.address, { proxyHeader: header })
          yield* socket.write(text("x"))
          yield* socket.end
          const reply = new TextDecoder().decode(Buffer.concat(yield* Stream.runCollect(socket.reads)))
          assert.strictEqual(reply, "[2001:db8::7]:4000|x")
          assert.deepStrictEqual(Option.getOrThrow(seen), header)
        })))
    }))

  it.live("a v2 LOCAL header (a health check) keeps the real peer; UNKNOWN too", () =>
    withServer({}, (server) =>
      Effect.gen(function*() {
        const local = yield* rawClient(server.address, [ProxyProtocol.encode(ProxyProtocol.local), "a"])
        assert.match(local.data, /^127\.0\.0\.1:\d+\|a$/)
        const unknown = yield* rawClient(server.address, [ProxyProtocol.encode(ProxyProtocol.v1()), "b"])
        assert.match(unknown.data, /^127\.0\.0\.1:\d+\|b$/)
      })))

  it.live("hostile headers are closed with their typed error, counted and logged; the server goes on", () => {
    const logs = logLines()
    return Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { proxyProtocol: { ...trusted, headerTimeout: "300 millis" } })
      const server = yield* Server.fromListener(listener, { handler: pumpHandler, logLevel: "Debug" })
      const hostile: ReadonlyArray<readonly [string, ReadonlyArray<Uint8Array | string>, boolean]> = [
        ["MalformedProxyHeader", ["GET / HTTP/1.1\r\n\r\n"], true],
        ["MalformedProxyHeader", ["PROXY TCP4 1.2.3.4 nope 1 2\r\nhello"], true],
        ["ProxyHeaderTooLarge", [new Uint8Array([...ProxyProtocol.encode(ProxyProtocol.local).subarray(0, 14), 0xff, 0xff])], true],
        ["ProxyHeaderTooLarge", [`PROXY UNKNOWN ${"x".repeat(200)}`], true],
        ["ProxyHeaderTruncated", ["PROXY TCP4 1.2.3.4"], true],
        // Slowloris: part of a header, then nothing, the connection held open.
        ["ProxyHeaderTimeout", ["PROXY TCP4 1.2.3.4 "], false],
        ["ProxyVersionRefused", [], true]
      ]
      const before = openFds()
      for (const [tag, parts, end] of hostile) {
        if (tag === "ProxyVersionRefused") continue
        const { data } = yield* rawClient(server.address, parts, { end })
        assert.strictEqual(data, "", tag)
      }
      const counts = Option.getOrThrow(ProxyProtocol.headerFailures(listener))
      assert.deepStrictEqual(counts, {
        MalformedProxyHeader: 2,
        ProxyHeaderTooLarge: 2,
        ProxyHeaderTruncated: 1,
        ProxyHeaderTimeout: 1
      })
      // The server goes on, and no handler ran for any of them.
      const ok = yield* rawClient(server.address, [ProxyProtocol.encode(ProxyProtocol.v1(client, lb)), "ok"])
      assert.strictEqual(ok.data, "203.0.113.7:51000|ok")
      const stats = yield* server.stats
      assert.strictEqual(stats.accepted, 1)
      assert.strictEqual(stats.failed, 0)
      // Nothing left open: the refused connections' descriptors are closed.
      assert.isAtMost(openFds(), before)
      // One debug line per refusal, one warning summing them up (rate-limited).
      const debug = logs.lines.filter((l) => l.startsWith("DEBUG") && l.includes("closed the connection from 127.0.0.1"))
      assert.strictEqual(debug.length, 6, logs.lines.join("\n"))
      assert.isTrue(debug.some((l) => l.includes("ProxyHeaderTimeout") && l.includes("none within 300ms")), debug.join("\n"))
      const warnings = logs.lines.filter((l) => l.startsWith("WARN"))
      assert.strictEqual(warnings.length, 1, logs.lines.join("\n"))
      assert.match(warnings[0]!, /closed 1 connection for their PROXY protocol header since the server started \(1 MalformedProxyHeader\)\. The last: 127\.0\.0\.1:\d+ sent no valid PROXY protocol header/)
    }).pipe(Effect.provide(logs.layer), Effect.scoped)
  })

  it.live("a peer not in trustedSources is refused before a byte is read; a version not accepted is refused", () =>
    Effect.gen(function*() {
      const logs = logLines()
      yield* Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback, { proxyProtocol: { trustedSources: ["10.0.0.0/8"] } })
        const server = yield* Server.fromListener(listener, { handler: fiberHandler })
        const refused = yield* rawClient(server.address, [ProxyProtocol.encode(ProxyProtocol.v1(client, lb)), "x"])
        assert.strictEqual(refused.data, "")
        assert.deepStrictEqual(Option.getOrThrow(ProxyProtocol.headerFailures(listener)), { UntrustedProxySource: 1 })
        assert.deepStrictEqual((yield* server.stats).proxyHeaderFailures, { UntrustedProxySource: 1 })
        assert.isTrue(
          logs.lines.some((l) =>
            l.startsWith("WARN") && /connection from 127\.0\.0\.1:\d+ refused: it is not in proxyProtocol\.trustedSources: trusted: 10\.0\.0\.0\/8/.test(l)
          ),
          logs.lines.join("\n")
        )
        const v2Only = yield* Socket.listen(loopback, { proxyProtocol: { ...trusted, versions: ["v2"] } })
        yield* Server.fromListener(v2Only, { handler: fiberHandler })
        const v1 = yield* rawClient(v2Only.address, [ProxyProtocol.encode(ProxyProtocol.v1(client, lb)), "x"])
        assert.strictEqual(v1.data, "")
        assert.deepStrictEqual(Option.getOrThrow(ProxyProtocol.headerFailures(v2Only)), { ProxyVersionRefused: 1 })
        assert.isTrue(Option.isNone(ProxyProtocol.headerFailures(yield* Socket.listen(loopback))))
        const plain = yield* Server.make({ address: loopback, handler: fiberHandler })
        assert.isUndefined((yield* plain.stats).proxyHeaderFailures)
      }).pipe(Effect.provide(logs.layer), Effect.scoped)
    }))

  it.live("100 slow and hostile connections at once leave no descriptor open and do not stop the server", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { proxyProtocol: { ...trusted, headerTimeout: "500 millis" } })
      const server = yield* Server.fromListener(listener, { handler: pumpHandler, logLevel: "None" })
      const before = openFds()
      const parts = ["PROXY ", "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c", "garbage", "PROXY TCP6 ::1 ::1 1"]
      const results = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => rawClient(server.address, [parts[i % parts.length]!], { end: i % 2 === 0 }),
        { concurrency: "unbounded" }
      )
      assert.isTrue(results.every((r) => r.data === ""))
      const counts = Option.getOrThrow(ProxyProtocol.headerFailures(listener))
      assert.strictEqual(Object.values(counts).reduce((a, b) => a + b, 0), 100)
      assert.strictEqual((listener as unknown as { proxy: { reading: Set<unknown> } }).proxy.reading.size, 0)
      assert.isAtMost(openFds(), before)
      const ok = yield* rawClient(server.address, [ProxyProtocol.encode(ProxyProtocol.v2(client, lb)), "ok"])
      assert.strictEqual(ok.data, "203.0.113.7:51000|ok")
    }).pipe(Effect.scoped))

  it.live("TLS behind a PROXY header: the header comes first, then the handshake (node:tls's client and ours)", () =>
    withServer({
      handler: pumpHandler,
      tls: { identity: { cert: certs().server.cert, key: Redacted.make(certs().server.key) } }
    }, (server) =>
      Effect.callback<string>((resume) => {
        const { port } = server.address as Address.TcpAddress
        const raw = Net.connect({ host: "127.0.0.1", port }, () => {
          raw.write(ProxyProtocol.encode(ProxyProtocol.v2(client, lb)))
          const tls = NodeTls.connect({ socket: raw, ca: certs().ca, servername: "localhost" }, () => {
            tls.end("secret")
          })
          let data = ""
          tls.on("data", (d) => void (data += d))
          tls.on("error", (e) => resume(Effect.succeed(`error ${e.message}`)))
          tls.on("close", () => resume(Effect.succeed(data)))
        })
      }).pipe(
        Effect.map((data) => assert.strictEqual(data, "203.0.113.7:51000|secret")),
        // Our own client: the header on the TCP connection, then the handshake.
        Effect.andThen(Effect.scoped(Effect.gen(function*() {
          const socket = yield* Socket.connect(server.address, {
            tls: { ca: certs().ca, servername: "localhost" },
            proxyHeader: ProxyProtocol.v1(Address.tcp("198.51.100.9", 7), Address.tcp("10.0.0.2", 443))
          })
          yield* socket.write(text("ours"))
          yield* socket.end
          const reply = new TextDecoder().decode(Buffer.concat(yield* Stream.runCollect(socket.reads)))
          assert.strictEqual(reply, "198.51.100.9:7|ours")
        }))),
        // A refused connection is still a typed ConnectError with a header and TLS.
        Effect.andThen(Effect.gen(function*() {
          const nobody = Address.tcp("127.0.0.1", yield* freePort)
          const refused = yield* Effect.flip(Effect.scoped(Socket.connect(nobody, {
            tls: { ca: certs().ca, servername: "localhost" },
            proxyHeader: ProxyProtocol.local
          })))
          assert.strictEqual(refused._tag, "ConnectionRefused")
        }))
      )))

  it.live("closing the listener closes the connections still sending a header, without counting them as refused", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const listener = yield* Scope.provide(scope)(Socket.listen(loopback, { proxyProtocol: trusted }))
      const reading = (listener as unknown as { proxy: { reading: Iterable<{ raw: unknown }> & { size: number } } }).proxy
        .reading
      const client = yield* Effect.forkChild(rawClient(listener.address, ["PROXY TCP4 "], { end: false }), { startImmediately: true })
      for (let i = 0; i < 500 && reading.size === 0; i++) yield* Effect.sleep("2 millis")
      assert.strictEqual(reading.size, 1)
      // The server's side of it: once its 'close' has run, the reader has seen it too (its listener came first).
      const raw = Array.from(reading)[0]!.raw as NodeJS.EventEmitter
      const closed = Effect.callback<void>((resume) => void raw.once("close", () => resume(Effect.void)))
      const serverSide = yield* Effect.forkChild(closed, { startImmediately: true })
      yield* Scope.close(scope, Exit.void)
      yield* Fiber.join(serverSide)
      const { data } = yield* Fiber.join(client)
      assert.strictEqual(data, "")
      assert.strictEqual(reading.size, 0)
      assert.deepStrictEqual(Option.getOrThrow(ProxyProtocol.headerFailures(listener)), {})
    }))

  it.live("invalid options are defects naming them", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ProxyProtocol.ServerOptions, RegExp]> = [
        [{ trustedSources: [] }, /proxyProtocol\.trustedSources must list the load balancers/],
        [{ trustedSources: ["10.0.0.0/33"] }, /must hold IP addresses or CIDR networks, got "10\.0\.0\.0\/33"/],
        [{ trustedSources: ["lb.example"] }, /got "lb\.example"/],
        [{ trustedSources: ["::1"], versions: ["v3" as never] }, /proxyProtocol\.versions/],
        [{ trustedSources: ["::1"], headerTimeout: 0 }, /proxyProtocol\.headerTimeout must be above 0/],
        [{ trustedSources: ["::1"], headerTimeout: "Infinity" as never }, /proxyProtocol\.headerTimeout/],
        [{ trustedSources: ["::1"], maxHeaderSize: 100 }, /proxyProtocol\.maxHeaderSize must be an integer from 232/]
      ]
      for (const [proxyProtocol, message] of cases) {
        const exit = yield* Effect.exit(Effect.scoped(Server.make({ address: loopback, handler: fiberHandler, proxyProtocol })))
        assert.isTrue(Exit.hasDies(exit), String(message))
        assert.match(String(exit), message)
      }
      const impossible = yield* Effect.exit(
        Effect.scoped(Socket.connect(loopback, { proxyHeader: { ...ProxyProtocol.local, version: "v1" } }))
      )
      assert.match(String(impossible), /Socket: proxyHeader is impossible: v1 has no LOCAL/)
    }))
})
