/**
 * TLS over real loopback sockets, with certificates made at test time
 * (test/helpers/certs.ts): our client against node:tls and OpenSSL servers,
 * our listener against node:tls and OpenSSL clients, every handshake error
 * by its tag, what a handler sees, the byte servers, framing, half-close and
 * idle timeouts over TLS, STARTTLS and certificate reload.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Protocol from "../src/Protocol.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import * as Tls from "../src/Tls.js"
import { certs, type Pair } from "./helpers/certs.js"
import { countBytes, readAll, serve, stalled } from "./helpers/sockets.js"

const c = certs()
const loopback = Address.tcp("127.0.0.1", 0)
const text = (s: string) => new TextEncoder().encode(s)
const identity = (pair: Pair): Tls.Identity => ({ cert: pair.cert, key: Redacted.make(pair.key) })
/** What our clients use by default: trust the test CA, check "localhost". */
const trusting: Tls.ClientOptions = { ca: c.ca, servername: "localhost" }

/** A node:tls server we did not write, closed with the scope: it answers "hi" and echoes. */
const nodeTlsServer = (options: NodeTls.TlsOptions) =>
  Effect.acquireRelease(
    Effect.callback<{ server: NodeTls.Server; address: Address.Address; errors: Array<string> }>((resume) => {
      const errors: Array<string> = []
      const server = NodeTls.createServer(options, (socket) => {
        socket.on("error", () => {})
        socket.write("hi:")
        socket.pipe(socket)
      })
      server.on("tlsClientError", (e: NodeJS.ErrnoException) => void errors.push(String(e.code)))
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as Net.AddressInfo
        resume(Effect.succeed({ server, address: Address.tcp("127.0.0.1", port), errors }))
      })
    }),
    ({ server }) => Effect.sync(() => server.close())
  )

/** The failure of an effect that must fail. */
const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return Effect.die(new Error("expected a failure, got a success"))
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isNone(error)) return Effect.die(new Error(`expected a failure, got ${Cause.pretty(exit.cause)}`))
    return Effect.succeed(error.value)
  })

describe("Tls client (Socket.connect with tls)", () => {
  it.live("talks to a node:tls server, and reports what was negotiated", () =>
    Effect.gen(function*() {
      const { address } = yield* nodeTlsServer({ cert: c.server.cert, key: c.server.key, ALPNProtocols: ["x-two", "x-one"] })
      const socket = yield* Socket.connect(address, { tls: { ...trusting, alpn: ["x-one"] } })
      yield* socket.write(text("ping"))
      yield* socket.end
      const got = yield* readAll(socket)
      assert.strictEqual(got.toString(), "hi:ping")
      const info = Option.getOrThrow(Tls.info(socket))
      assert.strictEqual(info.protocol, "TLSv1.3")
      assert.match(info.cipher, /^TLS_/)
      assert.strictEqual(info.alpnProtocol, "x-one")
      assert.strictEqual(info.servername, "localhost")
      assert.isTrue(info.authorized)
      const peer = Option.getOrThrow(info.peerCertificate)
      assert.strictEqual(peer.subject, "CN=localhost")
      assert.strictEqual(peer.issuer, "CN=effect-wire test CA")
      assert.include(peer.subjectAltNames, "DNS:example.test")
      assert.match(peer.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
      assert.isTrue(peer.validTo.getTime() > Date.now())
    }))

  it.live("a plaintext socket has no TLS info", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback)
      const socket = yield* Socket.connect(listener.address)
      assert.isTrue(Option.isNone(Tls.info(socket)))
    }))

  it.live("checks an IP address against the certificate's IP SANs when no servername is given", () =>
    Effect.gen(function*() {
      const { address } = yield* nodeTlsServer({ cert: c.server.cert, key: c.server.key })
      const socket = yield* Socket.connect(address, { tls: { ca: c.ca } })
      yield* socket.end
      assert.strictEqual((yield* readAll(socket)).toString(), "hi:")
      const wrong = yield* nodeTlsServer({ cert: c.wrongHost.cert, key: c.wrongHost.key })
      const error = yield* failureOf(Socket.connect(wrong.address, { tls: { ca: c.ca } }))
      assert.strictEqual(error._tag, "HostnameMismatch")
    }))

  const serverCases: ReadonlyArray<{
    readonly name: string
    readonly server: NodeTls.TlsOptions
    readonly client?: Tls.ClientOptions
    readonly tag: string
    readonly code?: string
    readonly message: RegExp
  }> = [
    {
      name: "a CA we do not trust",
      server: { cert: c.server.cert, key: c.server.key },
      client: { servername: "localhost" },
      tag: "CertificateUntrusted",
      code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      message: /certificate of 127\.0\.0\.1:\d+ \(CN=localhost\) is not trusted: add the CA that issued it to tls\.ca/
    },
    {
      name: "a self-signed certificate",
      server: { cert: c.selfSigned.cert, key: c.selfSigned.key },
      tag: "CertificateUntrusted",
      code: "DEPTH_ZERO_SELF_SIGNED_CERT",
      message: /is not trusted/
    },
    {
      name: "a chain ending in a CA we do not trust",
      server: { cert: c.otherClient.cert + c.otherCa, key: c.otherClient.key },
      client: { ca: c.ca, servername: "intruder.test" },
      tag: "CertificateUntrusted",
      code: "SELF_SIGNED_CERT_IN_CHAIN",
      message: /is not trusted/
    },
    {
      name: "an expired certificate",
      server: { cert: c.expired.cert, key: c.expired.key },
      tag: "CertificateExpired",
      code: "CERT_HAS_EXPIRED",
      message: /\(CN=localhost\) expired on 2020-01-02T00:00:00\.000Z: it must be renewed/
    },
    {
      name: "a certificate not valid yet",
      server: { cert: c.notYetValid.cert, key: c.notYetValid.key },
      tag: "CertificateExpired",
      code: "CERT_NOT_YET_VALID",
      message: /is not valid yet until 2099-01-01T00:00:00\.000Z: check this machine's clock/
    },
    {
      name: "a certificate for another host",
      server: { cert: c.wrongHost.cert, key: c.wrongHost.key },
      client: { ca: c.ca, servername: "api.example.test" },
      tag: "HostnameMismatch",
      code: "ERR_TLS_CERT_ALTNAME_INVALID",
      message: /is for other\.test, \*\.example\.org, not api\.example\.test: connect with a name it was issued for, or set tls\.servername/
    },
    {
      name: "no protocol version in common",
      server: { cert: c.server.cert, key: c.server.key, maxVersion: "TLSv1.2" },
      client: { ...trusting, minVersion: "TLSv1.3" },
      tag: "ProtocolVersionMismatch",
      message: /no TLS version in common/
    },
    {
      name: "no ALPN protocol in common",
      server: { cert: c.server.cert, key: c.server.key, ALPNProtocols: ["h2"] },
      client: { ...trusting, alpn: ["x-mine"] },
      tag: "AlpnMismatch",
      code: "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL",
      message: /no ALPN protocol in common .*compare tls\.alpn on both sides/
    },
    {
      name: "a server requiring a client certificate (TLS 1.2: a bare handshake_failure alert)",
      server: { cert: c.server.cert, key: c.server.key, requestCert: true, rejectUnauthorized: true, ca: c.ca, maxVersion: "TLSv1.2" },
      tag: "HandshakeFailed",
      code: "ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE",
      message: /requires a client certificate/
    },
    {
      name: "our client certificate from an unknown CA (TLS 1.2)",
      server: { cert: c.server.cert, key: c.server.key, requestCert: true, ca: c.ca, maxVersion: "TLSv1.2" },
      client: { ...trusting, identity: identity(c.otherClient) },
      // node:tls verifies after the handshake and just closes: no alert tells us why, the message guesses.
      tag: "HandshakeAbandoned",
      message: /closed the connection before the TLS handshake finished: commonly a server that refused our client certificate/
    }
  ]
  for (const { client, code, message, name, server, tag } of serverCases) {
    it.live(`${name}: ${tag}`, () =>
      Effect.gen(function*() {
        const peer = yield* nodeTlsServer(server)
        const error = yield* failureOf(Socket.connect(peer.address, { tls: client ?? trusting }))
        assert.strictEqual(error._tag, tag, error.message)
        if (code !== undefined) assert.strictEqual((error as Tls.HandshakeFailed).code, code)
        assert.match(error.message, message)
        assert.strictEqual((error as Tls.HandshakeFailed).retryable, tag === "ConnectionReset")
      }))
  }

  it.live("rejectUnauthorized: false connects to anything, and says so once", () =>
    Effect.gen(function*() {
      const peer = yield* nodeTlsServer({ cert: c.selfSigned.cert, key: c.selfSigned.key })
      const lines: Array<string> = []
      const logger = Logger.make<unknown, void>(({ message }) => void lines.push(String(message)))
      const connectTwice = Effect.gen(function*() {
        for (let i = 0; i < 2; i++) {
          const socket = yield* Socket.connect(peer.address, { tls: { servername: "localhost", rejectUnauthorized: false } })
          assert.isFalse(Option.getOrThrow(Tls.info(socket)).authorized)
          yield* socket.close
        }
      })
      yield* connectTwice.pipe(Effect.provide(Logger.layer([logger])))
      assert.strictEqual(lines.filter((l) => l.includes("rejectUnauthorized is false")).length, 1)
    }))

  it.live("a TLS client on a plaintext port: NotTls", () =>
    Effect.gen(function*() {
      // A plaintext protocol that talks first (SMTP, FTP): its banner is not a TLS record.
      const listener = yield* Socket.listen(loopback)
      yield* serve(listener, (socket) => Effect.andThen(socket.write(text("220 smtp.example.test ESMTP ready\r\n")), socket.end))
      const error = yield* failureOf(Socket.connect(listener.address, { tls: trusting }))
      assert.strictEqual(error._tag, "NotTls")
      assert.match(error.message, /does not speak TLS/)
      // An echo server sends our own ClientHello back.
      const echo = yield* Socket.listen(loopback)
      yield* serve(echo, (socket) => Stream.run(socket.reads, socket.writes))
      assert.strictEqual((yield* failureOf(Socket.connect(echo.address, { tls: trusting })))._tag, "NotTls")
    }))

  it.live("a peer that never answers the ClientHello: HandshakeTimeout after handshakeTimeout", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback)
      yield* serve(listener, () => Effect.never)
      const started = Date.now()
      const error = yield* failureOf(Socket.connect(listener.address, { tls: { ...trusting, handshakeTimeout: "300 millis" } }))
      const took = Date.now() - started
      assert.strictEqual(error._tag, "HandshakeTimeout")
      assert.isTrue((error as Tls.HandshakeTimeout).retryable)
      assert.match(error.message, /did not finish in time: .*no handshake within 300ms/)
      assert.isAtLeast(took, 290)
      assert.isBelow(took, 5000)
    }))

  it.live("invalid TLS options are defects naming the option", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Tls.ClientOptions, string, Address.Address?]> = [
        [{ minVersion: "TLSv1.1" as "TLSv1.2" }, "Socket: tls.minVersion must be"],
        [{ handshakeTimeout: 0 }, "Socket: tls.handshakeTimeout must be above 0"],
        [{ alpn: [] }, "Socket: tls.alpn must be a non-empty array"],
        [{ identity: { cert: c.client.cert, key: c.client.key as unknown as Redacted.Redacted<string> } }, "Socket: tls.identity.key must be Redacted"],
        [{ identity: { cert: c.client.cert, key: Redacted.make(c.server.key) } }, "Socket: tls.identity is unusable: "],
        [{}, "Socket: tls.servername is required on a Unix address", Address.unix("/tmp/x.sock")]
      ]
      for (const [tls, message, address] of cases) {
        const exit = yield* Effect.exit(Socket.connect(address ?? Address.tcp("127.0.0.1", 9), { tls }))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), message)
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.isTrue(Cause.isIllegalArgumentError(defect), String(defect))
        assert.include((defect as Error).message, message)
      }
    }))

  it.live("a key is never shown: Redacted in options, absent from errors", () =>
    Effect.gen(function*() {
      const options: Tls.ClientOptions = { ...trusting, identity: identity(c.client) }
      assert.notInclude(String(options.identity!.key), "PRIVATE KEY")
      const peer = yield* nodeTlsServer({ cert: c.expired.cert, key: c.expired.key })
      const error = yield* failureOf(Socket.connect(peer.address, { tls: options }))
      assert.notInclude(JSON.stringify(error), "PRIVATE KEY")
    }))
})

// -- interop with OpenSSL -----------------------------------------------------

/** Start `openssl` with args; resolves once `ready` shows on its output. Killed with the scope. */
const openssl = (args: ReadonlyArray<string>, ready: RegExp) =>
  Effect.acquireRelease(
    Effect.callback<{ child: ChildProcess; output: () => string }>((resume) => {
      const child = spawn("openssl", args, { stdio: ["pipe", "pipe", "pipe"] })
      let out = ""
      let done = false
      const onData = (d: Buffer) => {
        out += d.toString()
        if (!done && ready.test(out)) {
          done = true
          resume(Effect.succeed({ child, output: () => out }))
        }
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", onData)
      child.on("exit", (code) => {
        if (!done) {
          done = true
          resume(Effect.die(new Error(`openssl exited ${code}: ${out}`)))
        }
      })
    }),
    ({ child }) => Effect.sync(() => void child.kill("SIGKILL"))
  )

describe("Tls interop with OpenSSL", () => {
  it.live("our client against openssl s_server, with a client certificate", () =>
    Effect.gen(function*() {
      const port = yield* Effect.callback<number>((resume) => {
        const s = Net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = s.address() as Net.AddressInfo
          s.close(() => resume(Effect.succeed(port)))
        })
      })
      const server = yield* openssl([
        "s_server", "-accept", `127.0.0.1:${port}`, "-cert", c.server.certFile, "-key", c.server.keyFile,
        "-CAfile", c.caFile, "-Verify", "1", "-rev", "-naccept", "1"
      ], /ACCEPT/)
      const socket = yield* Socket.connect(Address.tcp("127.0.0.1", port), { tls: { ...trusting, identity: identity(c.client) } })
      // -rev answers each line reversed.
      yield* socket.write(text("olleh\n"))
      const reply = yield* socket.reads.pipe(
        Stream.map((b) => Buffer.from(b).toString()),
        Stream.scan(() => "", (a, b) => a + b),
        Stream.takeUntil((s) => s.includes("hello")),
        Stream.runLast
      )
      assert.include(Option.getOrThrow(reply), "hello")
      assert.match(server.output(), /client\.test/)
    }))
})

// -- server side -------------------------------------------------------------

/** Log lines, as a logger layer and a wait for a line that matches (bounded). */
const logLines = () => {
  const lines: Array<string> = []
  const waiters: Array<() => void> = []
  const logger = Logger.make<unknown, void>(({ logLevel, message }) => {
    lines.push(`${logLevel.toUpperCase()} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    for (const wake of waiters.splice(0)) wake()
  })
  const find = (pattern: RegExp) => lines.find((l) => pattern.test(l))
  const next = (pattern: RegExp, within = 5000): Effect.Effect<string> =>
    Effect.callback<string>((resume) => {
      const check = () => {
        const hit = find(pattern)
        if (hit !== undefined) {
          clearTimeout(timer)
          resume(Effect.succeed(hit))
        } else waiters.push(check)
      }
      const timer = setTimeout(() => resume(Effect.die(new Error(`no log line ${pattern} in:\n${lines.join("\n")}`))), within)
      check()
      return Effect.sync(() => clearTimeout(timer))
    })
  return { lines, layer: Logger.layer([logger]), next }
}

/** A node:tls client we did not write: connects, sends `payload`, half-closes, resolves with everything read. */
const nodeTlsClient = (address: Address.Address, options: NodeTls.ConnectionOptions, payload = "ping") =>
  Effect.callback<{ readonly data: string; readonly error: string | undefined; readonly socket: NodeTls.TLSSocket }>((resume) => {
    const { port } = address as Address.TcpAddress
    let data = ""
    let error: string | undefined
    const socket = NodeTls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: c.ca, ...options }, () => {
      socket.end(payload)
    })
    socket.on("data", (d) => void (data += d.toString()))
    socket.on("error", (e: NodeJS.ErrnoException) => void (error ??= String(e.code)))
    socket.on("close", () => resume(Effect.succeed({ data, error, socket })))
  })

const serverIdentity = { identity: identity(c.server) }

describe("Tls server (Socket.listen / Server with tls)", () => {
  it.live("Echo over TLS (the pump path): a node:tls client, our client, and Echo.client", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, tls: serverIdentity })
      const node = yield* nodeTlsClient(server.address, {}, "hello")
      assert.strictEqual(node.data, "hello")
      assert.isUndefined(node.error)
      const client = yield* Echo.client(server.address, { tls: trusting })
      assert.strictEqual(Buffer.from(yield* client.request("again")).toString(), "again")
      // A framed Echo over TLS.
      const framed = yield* Echo.make({ address: loopback, tls: serverIdentity, framing: "lines" })
      const lines = yield* Echo.client(framed.address, { tls: trusting, framing: "lines" })
      assert.strictEqual(Buffer.from(yield* lines.request("one")).toString(), "one")
    }))

  it.live("a handler sees what the handshake negotiated, and the client certificate", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<Tls.TlsInfo>()
      const server = yield* Server.make({
        address: loopback,
        tls: { ...serverIdentity, clientCa: c.ca, clientCertificate: "required", alpn: ["x-b", "x-a"] },
        handler: (socket) =>
          Effect.andThen(Deferred.succeed(seen, Option.getOrThrow(Tls.info(socket))), Stream.run(socket.reads, socket.writes))
      })
      const socket = yield* Socket.connect(server.address, { tls: { ...trusting, identity: identity(c.client), alpn: ["x-a", "x-b"] } })
      const info = yield* Deferred.await(seen)
      assert.strictEqual(info.protocol, "TLSv1.3")
      assert.strictEqual(info.alpnProtocol, "x-b")
      assert.strictEqual(info.servername, "localhost")
      assert.isTrue(info.authorized)
      const peer = Option.getOrThrow(info.peerCertificate)
      assert.strictEqual(peer.subject, "CN=client.test")
      assert.deepStrictEqual(peer.subjectAltNames, ["DNS:client.test"])
      assert.strictEqual(Option.getOrThrow(Tls.info(socket)).alpnProtocol, "x-b")
    }))

  it.live("failed handshakes are logged with their typed reason and never disturb the listener", () =>
    Effect.gen(function*() {
      const log = logLines()
      yield* Effect.gen(function*() {
        const server = yield* Echo.make({
          address: loopback,
          logLevel: "Debug",
          tls: { ...serverIdentity, clientCa: c.ca, clientCertificate: "required", alpn: ["x-mine"] }
        })
        const { port } = server.address as Address.TcpAddress
        // Plaintext on the TLS port (noise: debug).
        const plain = yield* Socket.connect(server.address)
        yield* plain.write(text("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        yield* Effect.ignore(readAll(plain))
        yield* log.next(/DEBUG .*TLS handshake with 127\.0\.0\.1:\d+ failed: NotTls: .*\[ERR_SSL_HTTP_REQUEST\]/)
        // No client certificate (a client of ours that cannot connect: warning).
        const none = yield* nodeTlsClient(server.address, { ALPNProtocols: ["x-mine"] })
        assert.strictEqual(none.data, "")
        yield* log.next(/WARN .*failed: PeerCertificateMissing: client 127\.0\.0\.1:\d+ sent no certificate, and one is required/)
        // A certificate from a CA the server does not trust.
        yield* nodeTlsClient(server.address, { cert: c.otherClient.cert, key: c.otherClient.key, ALPNProtocols: ["x-mine"] })
        yield* log.next(/WARN .*failed: CertificateUntrusted: the client certificate of 127\.0\.0\.1:\d+ \(CN=intruder\.test\) is not trusted: it must be issued by a CA in the server's clientCa/)
        // An expired client certificate.
        yield* nodeTlsClient(server.address, { cert: c.expired.cert, key: c.expired.key, ALPNProtocols: ["x-mine"] })
        yield* log.next(/WARN .*failed: CertificateExpired: the client certificate of .* \(CN=localhost\) expired on 2020-01-02/)
        // No ALPN protocol in common.
        yield* nodeTlsClient(server.address, { cert: c.client.cert, key: c.client.key, ALPNProtocols: ["h2"] })
        yield* log.next(/WARN .*failed: AlpnMismatch/)
        // The listener still serves.
        const good = yield* nodeTlsClient(server.address, { cert: c.client.cert, key: c.client.key, ALPNProtocols: ["x-mine"] }, "still here")
        assert.strictEqual(good.data, "still here")
        assert.isAbove(port, 0)
        const stats = yield* server.stats
        assert.strictEqual(stats.accepted, 1)
        // Server.stats counts each refused handshake by its tag (each was logged above, after it was counted).
        assert.strictEqual(stats.tlsHandshakesFailed, 5)
        assert.deepStrictEqual(stats.tlsHandshakeFailures, {
          NotTls: 1,
          PeerCertificateMissing: 1,
          CertificateUntrusted: 1,
          CertificateExpired: 1,
          AlpnMismatch: 1
        })
        // A plaintext server has no TLS counters at all.
        const plaintext = yield* (yield* Echo.make({ address: loopback })).stats
        assert.deepStrictEqual(Object.keys(plaintext), ["accepted", "active", "completed", "failed", "refused"])
      }).pipe(Effect.scoped, Effect.provide(log.layer))
    }))

  it.live("Tls.handshakeFailures counts a bare listener's refused handshakes by tag", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { tls: serverIdentity })
      yield* serve(listener, (socket) => Stream.run(socket.reads, socket.writes))
      assert.deepStrictEqual(Option.getOrThrow(Tls.handshakeFailures(listener)), {})
      const plain = yield* Socket.connect(listener.address)
      yield* plain.write(text("HELLO\r\n"))
      yield* Effect.ignore(readAll(plain))
      // Counted before the connection is closed: the close is the event to wait for.
      assert.deepStrictEqual(Option.getOrThrow(Tls.handshakeFailures(listener)), { NotTls: 1 })
      assert.strictEqual((yield* nodeTlsClient(listener.address, {}, "fine")).data, "fine")
      assert.deepStrictEqual(Option.getOrThrow(Tls.handshakeFailures(listener)), { NotTls: 1 })
      assert.isTrue(Option.isNone(Tls.handshakeFailures(yield* Socket.listen(loopback))))
    }))

  it.live("a client that stalls mid-handshake is cut at handshakeTimeout and logged", () =>
    Effect.gen(function*() {
      const log = logLines()
      yield* Effect.gen(function*() {
        const server = yield* Echo.make({ address: loopback, logLevel: "Debug", tls: { ...serverIdentity, handshakeTimeout: "300 millis" } })
        const started = Date.now()
        // TCP connects, then never sends a ClientHello.
        const silent = yield* Socket.connect(server.address)
        yield* Effect.ignore(readAll(silent))
        const took = Date.now() - started
        assert.isAtLeast(took, 250)
        assert.isBelow(took, 5000)
        yield* log.next(/DEBUG .*failed: HandshakeTimeout/)
      }).pipe(Effect.scoped, Effect.provide(log.layer))
    }))

  /** A raw TCP client that sends `first` (maybe nothing) and half-closes: resolves when the server closed its side. */
  const endsMidHandshake = (address: Address.Address, first: Uint8Array) =>
    Effect.callback<number>((resume) => {
      const started = Date.now()
      const { port } = address as Address.TcpAddress
      const client = Net.connect({ host: "127.0.0.1", port }, () => {
        if (first.length > 0) client.write(first)
        client.end()
      })
      client.on("error", () => {})
      client.on("close", () => resume(Effect.succeed(Date.now() - started)))
      client.resume()
      return Effect.sync(() => client.destroy())
    }).pipe(Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die(new Error("the server held the connection")) }))

  it.live("a client that half-closes mid-handshake (a FIN) is released at once as HandshakeAbandoned, not at handshakeTimeout", () =>
    Effect.gen(function*() {
      const log = logLines()
      yield* Effect.gen(function*() {
        const server = yield* Echo.make({ address: loopback, logLevel: "Debug", tls: { ...serverIdentity, handshakeTimeout: "30 seconds" } })
        // Nothing at all, then the first bytes of a ClientHello's record header.
        const silent = yield* endsMidHandshake(server.address, new Uint8Array(0))
        const partial = yield* endsMidHandshake(server.address, new Uint8Array([0x16, 0x03, 0x01]))
        assert.isBelow(silent, 5000)
        assert.isBelow(partial, 5000)
        const stats = yield* server.stats
        assert.deepStrictEqual(stats.tlsHandshakeFailures, { HandshakeAbandoned: 2 })
        assert.strictEqual(stats.accepted, 0)
        // Closed before a byte (a TCP health check): debug; after some of a ClientHello (a client that gave up): warning.
        yield* log.next(/DEBUG .*failed: HandshakeAbandoned: client 127\.0\.0\.1:\d+ closed the connection before the TLS handshake finished/)
        yield* log.next(/WARN .*failed: HandshakeAbandoned: client 127\.0\.0\.1:\d+ closed .*does not trust our certificate/)
        // The listener still serves, and a client that half-closes AFTER its handshake still gets its answer.
        const good = yield* nodeTlsClient(server.address, {}, "after")
        assert.strictEqual(good.data, "after")
        assert.deepStrictEqual((yield* server.stats).tlsHandshakeFailures, { HandshakeAbandoned: 2 })
      }).pipe(Effect.scoped, Effect.provide(log.layer))
    }))

  it.live("clientCertificate optional: served without one, refused with one that does not verify", () =>
    Effect.gen(function*() {
      const log = logLines()
      yield* Effect.gen(function*() {
        const seen: Array<Option.Option<Tls.PeerCertificate>> = []
        const server = yield* Server.make({
          address: loopback,
          tls: { ...serverIdentity, clientCa: c.ca, clientCertificate: "optional" },
          handler: (socket) =>
            Effect.andThen(
              Effect.sync(() => seen.push(Option.getOrThrow(Tls.info(socket)).peerCertificate)),
              Stream.run(socket.reads, socket.writes)
            )
        })
        assert.strictEqual((yield* nodeTlsClient(server.address, {}, "anon")).data, "anon")
        assert.strictEqual((yield* nodeTlsClient(server.address, { cert: c.client.cert, key: c.client.key }, "me")).data, "me")
        const refused = yield* nodeTlsClient(server.address, { cert: c.otherClient.cert, key: c.otherClient.key }, "intruder")
        assert.strictEqual(refused.data, "")
        yield* log.next(/WARN .*CertificateUntrusted: the client certificate of .*\(CN=intruder\.test\) is not trusted/)
        assert.strictEqual(seen.length, 2)
        assert.isTrue(Option.isNone(seen[0]!))
        assert.strictEqual(Option.getOrThrow(seen[1]!).subject, "CN=client.test")
      }).pipe(Effect.scoped, Effect.provide(log.layer))
    }))

  it.live("SNI: the certificate for the name the client asks for", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({
        address: loopback,
        tls: { ...serverIdentity, sni: { "api.example.test": identity(c.server2), "*.example.org": identity(c.wrongHost) } }
      })
      const subjectFor = (servername: string) =>
        Effect.scoped(Effect.map(
          Socket.connect(server.address, { tls: { ca: c.ca, servername } }),
          (socket) => Option.getOrThrow(Option.getOrThrow(Tls.info(socket)).peerCertificate).subject
        ))
      assert.strictEqual(yield* subjectFor("api.example.test"), "CN=api.example.test")
      assert.strictEqual(yield* subjectFor("API.Example.Test"), "CN=api.example.test")
      assert.strictEqual(yield* subjectFor("www.example.org"), "CN=other.test")
      assert.strictEqual(yield* subjectFor("localhost"), "CN=localhost")
    }))

  it.live("SNI follows reloads: a name added, an exact name over a wildcard, a name dropped", () =>
    Effect.gen(function*() {
      const credentials = yield* Tls.serverCredentials({ identity: identity(c.server) })
      const server = yield* Echo.make({ address: loopback, tls: { credentials } })
      const subjectFor = (servername: string) =>
        Effect.scoped(Effect.map(
          Socket.connect(server.address, { tls: { ca: c.ca, servername, rejectUnauthorized: false } }),
          (socket) => Option.getOrThrow(Option.getOrThrow(Tls.info(socket)).peerCertificate).subject
        ))
      assert.strictEqual(yield* subjectFor("api.example.test"), "CN=localhost")
      yield* credentials.reload({
        identity: identity(c.server),
        sni: { "*.example.test": identity(c.wrongHost), "api.example.test": identity(c.server2) }
      })
      assert.strictEqual(yield* subjectFor("api.example.test"), "CN=api.example.test")
      assert.strictEqual(yield* subjectFor("www.example.test"), "CN=other.test")
      yield* credentials.reload({ identity: identity(c.server), sni: { "*.example.test": identity(c.wrongHost) } })
      assert.strictEqual(yield* subjectFor("api.example.test"), "CN=other.test")
      yield* credentials.reload({ identity: identity(c.server) })
      assert.strictEqual(yield* subjectFor("api.example.test"), "CN=localhost")
      assert.strictEqual(yield* subjectFor("www.example.test"), "CN=localhost")
    }))

  it.live("invalid server options are defects naming the option", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Tls.ServerOptions, string]> = [
        [{}, "Socket: tls.identity is required"],
        [{ ...serverIdentity, clientCertificate: "required" }, "Socket: tls.clientCa is required with clientCertificate: \"required\""],
        [{ identity: { cert: c.server.cert, key: Redacted.make(c.client.key) } }, "Socket: tls has unusable certificates or keys: "],
        [{ ...serverIdentity, handshakeTimeout: "Infinity" as never }, "Socket: tls.handshakeTimeout must be"]
      ]
      for (const [tls, message] of cases) {
        const exit = yield* Effect.exit(Effect.scoped(Socket.listen(loopback, { tls })))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.isTrue(Cause.isIllegalArgumentError(defect), `${message}: ${String(defect)}`)
        assert.include((defect as Error).message, message)
      }
    }))
})

describe("Tls: the rest of the library over TLS", () => {
  it.live("half-close: the client's close_notify ends the server's reads, and the server still answers", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: loopback,
        tls: serverIdentity,
        handler: (socket) =>
          Effect.gen(function*() {
            const got = yield* readAll(socket)
            yield* socket.write(text(`read ${got.length} bytes, then EOF`))
            yield* socket.end
          })
      })
      const socket = yield* Socket.connect(server.address, { tls: trusting })
      yield* socket.write(text("12345"))
      yield* socket.end
      assert.strictEqual((yield* readAll(socket)).toString(), "read 5 bytes, then EOF")
    }))

  it.live("backpressure over TLS: a client that does not read stops the Echo (pump path) from reading, then gets every byte", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, tls: serverIdentity })
      const hog = yield* Socket.connect(server.address, { tls: trusting })
      // 32 MiB in 64 KiB writes, none of the echo read back yet.
      let written = 0
      const chunk = Buffer.alloc(64 * 1024, 0x61)
      const writer = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 512 }), () =>
        Effect.andThen(hog.write(chunk), Effect.sync(() => void (written += chunk.length)))))
      // Every buffer on the way back fills, the server stops reading, our writes stop.
      const stuckAt = yield* stalled("bytes written over TLS", () => written)
      assert.isBelow(stuckAt, 32 * 1024 * 1024, "nothing was held back")
      // Reading resumes the whole chain: every byte comes back, in order.
      const reader = yield* Effect.forkChild(countBytes(hog))
      yield* Fiber.join(writer)
      yield* hog.end
      assert.strictEqual(yield* Fiber.join(reader), 32 * 1024 * 1024)
    }))

  it.live("idle timeout over TLS", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, tls: serverIdentity, idleTimeout: "200 millis" })
      const socket = yield* Socket.connect(server.address, { tls: trusting })
      const started = Date.now()
      yield* Effect.ignore(readAll(socket))
      assert.isAtLeast(Date.now() - started, 150)
      assert.isBelow(Date.now() - started, 5000)
    }))

  it.live("drain: closing the server half-closes its TLS connections", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<string>()
      yield* Effect.gen(function*() {
        const server = yield* Echo.make({ address: loopback, tls: serverIdentity })
        const socket = yield* Socket.connect(server.address, { tls: trusting })
        yield* socket.write(text("in flight"))
        // The echo came back: the connection is established and served.
        const echoed = yield* Stream.runHead(socket.reads)
        assert.strictEqual(Buffer.from(Option.getOrThrow(echoed)).toString(), "in flight")
        yield* Effect.forkDetach(Effect.flatMap(readAll(socket), (b) => Deferred.succeed(closed, `EOF after ${b.length} bytes`)))
      }).pipe(Effect.scoped)
      assert.strictEqual(yield* Deferred.await(closed), "EOF after 0 bytes")
    }))

  it.live("maxConnections counts handshaken connections only", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, tls: serverIdentity, maxConnections: 1, overflow: "refuse" })
      // A client stuck before its ClientHello takes no slot.
      const silent = yield* Socket.connect(server.address)
      const client = yield* Echo.client(server.address, { tls: trusting })
      assert.strictEqual(Buffer.from(yield* client.request("fits")).toString(), "fits")
      yield* silent.close
    }))

  it.live("openssl s_client against our Echo, with a client certificate", () =>
    Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback, tls: { ...serverIdentity, clientCa: c.ca, clientCertificate: "required" } })
      const { port } = server.address as Address.TcpAddress
      const client = yield* openssl([
        "s_client", "-connect", `127.0.0.1:${port}`, "-CAfile", c.caFile, "-servername", "localhost",
        "-verify_return_error", "-cert", c.client.certFile, "-key", c.client.keyFile, "-quiet", "-ign_eof"
      ], /verify return:1|depth=0/)
      client.child.stdin!.end("from openssl\n")
      yield* Effect.callback<void>((resume) => {
        if (client.output().includes("from openssl")) return resume(Effect.void)
        const check = () => client.output().includes("from openssl") && resume(Effect.void)
        client.child.stdout!.on("data", check)
        client.child.on("exit", () => resume(Effect.void))
      })
      assert.include(client.output(), "from openssl")
    }))
})

describe("Tls: certificate reload", () => {
  it.live("new handshakes use the reloaded certificate, open connections keep theirs, a bad one changes nothing", () =>
    Effect.gen(function*() {
      const credentials = yield* Tls.serverCredentials({ identity: identity(c.server) })
      const server = yield* Echo.make({ address: loopback, tls: { credentials } })
      const subjectOf = (socket: Socket.Socket) =>
        Option.getOrThrow(Option.getOrThrow(Tls.info(socket)).peerCertificate).subject
      const before = yield* Socket.connect(server.address, { tls: trusting })
      assert.strictEqual(subjectOf(before), "CN=localhost")
      yield* credentials.reload({ identity: identity(c.server2) })
      assert.strictEqual(yield* credentials.generation, 1)
      const after = yield* Socket.connect(server.address, { tls: trusting })
      assert.strictEqual(subjectOf(after), "CN=api.example.test")
      // The connection made before the reload still works.
      yield* before.write(text("still"))
      assert.strictEqual(Buffer.from(Option.getOrThrow(yield* Stream.runHead(before.reads))).toString(), "still")
      // A key that does not match its certificate: refused, and nothing changes.
      const bad = yield* failureOf(credentials.reload({ identity: { cert: c.server.cert, key: Redacted.make(c.client.key) } }))
      assert.strictEqual(bad._tag, "InvalidCredentials")
      assert.match(bad.message, /unusable TLS credentials: .*key values mismatch/)
      assert.notInclude(bad.message, "PRIVATE KEY")
      assert.strictEqual(yield* credentials.generation, 1)
      const third = yield* Socket.connect(server.address, { tls: trusting })
      assert.strictEqual(subjectOf(third), "CN=api.example.test")
    }))

  it.live("serverCredentials refuses what OpenSSL cannot use", () =>
    Effect.gen(function*() {
      const error = yield* failureOf(Tls.serverCredentials({ identity: { cert: "not a certificate", key: Redacted.make(c.server.key) } }))
      assert.strictEqual(error._tag, "InvalidCredentials")
    }))
})

describe("Tls.startTls (STARTTLS)", () => {
  /** Pull `reads` until a whole line came: the line, and the bytes after it. */
  const readLine = (socket: Socket.Socket) =>
    Effect.gen(function*() {
      let got = Buffer.alloc(0)
      for (let i = 0; i < 1000; i++) {
        const end = got.indexOf("\r\n")
        if (end >= 0) return { line: got.subarray(0, end).toString(), rest: got.subarray(end + 2) }
        const next = yield* Stream.runHead(socket.reads)
        if (Option.isNone(next)) break
        got = Buffer.concat([got, next.value])
      }
      return yield* Effect.die(new Error(`no line in ${JSON.stringify(got.toString())}`))
    })

  /** A line server: STARTTLS → "OK" (unless `quiet`), upgrade, then echo. */
  const lineServer = (quiet: boolean) =>
    Server.make({
      address: loopback,
      handler: (socket) =>
        Effect.gen(function*() {
          const { line, rest } = yield* readLine(socket)
          if (line !== "STARTTLS") return yield* socket.write(text("ERR\r\n"))
          if (!quiet) yield* socket.write(text("OK\r\n"))
          yield* Tls.startTls(socket, { role: "server", ...serverIdentity, pending: rest })
          yield* socket.write(text(`secure ${Option.getOrThrow(Tls.info(socket)).protocol}:`))
          yield* Stream.run(socket.reads, socket.writes)
        })
    })

  it.live("both sides of our own sockets: STARTTLS, OK, then encrypted", () =>
    Effect.gen(function*() {
      const server = yield* lineServer(false)
      const socket = yield* Socket.connect(server.address)
      assert.isTrue(Option.isNone(Tls.info(socket)))
      yield* socket.write(text("STARTTLS\r\n"))
      assert.strictEqual((yield* readLine(socket)).line, "OK")
      yield* Tls.startTls(socket, { role: "client", ...trusting })
      const info = Option.getOrThrow(Tls.info(socket))
      assert.strictEqual(Option.getOrThrow(info.peerCertificate).subject, "CN=localhost")
      yield* socket.write(text("over tls"))
      yield* socket.end
      assert.strictEqual((yield* readAll(socket)).toString(), "secure TLSv1.3:over tls")
    }))

  it.live("a client that sends its ClientHello right after STARTTLS: no byte of it is lost", () =>
    Effect.gen(function*() {
      const server = yield* lineServer(true)
      const { port } = server.address as Address.TcpAddress
      // node:tls over a plaintext socket: the command and the ClientHello leave back to back.
      const reply = yield* Effect.callback<string>((resume) => {
        const raw = Net.connect({ host: "127.0.0.1", port }, () => {
          raw.write("STARTTLS\r\n")
          const tls = NodeTls.connect({ socket: raw, servername: "localhost", ca: c.ca }, () => tls.end("pipelined"))
          let data = ""
          tls.on("data", (d) => void (data += d.toString()))
          tls.on("error", (e) => resume(Effect.die(e)))
          tls.on("close", () => resume(Effect.succeed(data)))
        })
      })
      assert.strictEqual(reply, "secure TLSv1.3:pipelined")
    }))

  it.live("a failed upgrade is a typed error, and the upgraded side's handshake errors are the same as connect's", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({
        address: loopback,
        handler: (socket) =>
          Effect.flatMap(readLine(socket), ({ rest }) =>
            Tls.startTls(socket, { role: "server", identity: identity(c.expired), pending: rest }))
      })
      const socket = yield* Socket.connect(server.address)
      yield* socket.write(text("STARTTLS\r\n"))
      const error = yield* failureOf(Tls.startTls(socket, { role: "client", ...trusting }))
      assert.strictEqual(error._tag, "CertificateExpired")
    }))

  /**
   * STARTTLS with client certificates: a server that upgrades with `server` options and answers
   * with the subject of the client's certificate, and our client upgrading with `client` options.
   * Resolves with how the server's upgrade ended and what the client read (until the server closed).
   */
  const upgradeWithClientCertificate = (
    server: Partial<Tls.ServerOptions>,
    client: Tls.ClientOptions
  ) =>
    Effect.gen(function*() {
      const upgraded = yield* Deferred.make<Exit.Exit<Option.Option<Tls.TlsInfo>, unknown>>()
      const listening = yield* Server.make({
        address: loopback,
        handler: (socket) =>
          Effect.gen(function*() {
            const { rest } = yield* readLine(socket)
            yield* socket.write(text("OK\r\n"))
            const exit = yield* Effect.exit(Tls.startTls(socket, { role: "server", ...serverIdentity, ...server, pending: rest }))
            yield* Deferred.succeed(upgraded, Exit.map(exit, () => Tls.info(socket)))
            if (Exit.isFailure(exit)) return
            const peer = Option.getOrThrow(Tls.info(socket)).peerCertificate
            yield* socket.write(text(`hello ${Option.match(peer, { onNone: () => "anonymous", onSome: (c) => c.subject })}`))
            yield* socket.end
          })
      })
      const socket = yield* Socket.connect(listening.address)
      yield* socket.write(text("STARTTLS\r\n"))
      assert.strictEqual((yield* readLine(socket)).line, "OK")
      // Under TLS 1.3 the client's handshake completes before the server judges its certificate.
      yield* Tls.startTls(socket, { role: "client", ...client })
      const reply = (yield* Effect.orElseSucceed(readAll(socket), () => Buffer.alloc(0))).toString()
      return { server: yield* Deferred.await(upgraded), reply }
    })

  it.live("the server side asks for client certificates: required and given, verified against clientCa", () =>
    Effect.gen(function*() {
      const { reply, server } = yield* upgradeWithClientCertificate(
        { clientCa: c.ca, clientCertificate: "required" },
        { ...trusting, identity: identity(c.client) }
      )
      assert.strictEqual(reply, "hello CN=client.test")
      const info = Option.getOrThrow(Option.getOrThrow(Exit.getSuccess(server)))
      assert.isTrue(info.authorized)
      assert.strictEqual(Option.getOrThrow(info.peerCertificate).subject, "CN=client.test")
    }))

  it.live("the server side refuses a missing client certificate when required: PeerCertificateMissing", () =>
    Effect.gen(function*() {
      const { reply, server } = yield* upgradeWithClientCertificate({ clientCa: c.ca, clientCertificate: "required" }, trusting)
      assert.strictEqual(reply, "")
      assert.isTrue(Exit.isFailure(server))
      const error = Option.getOrThrow(Cause.findErrorOption((server as Exit.Failure<never, Tls.HandshakeError>).cause))
      assert.strictEqual(error._tag, "PeerCertificateMissing")
      assert.match(error.message, /client 127\.0\.0\.1:\d+ sent no certificate, and one is required/)
    }))

  it.live("the server side refuses a client certificate from a CA it does not trust: CertificateUntrusted", () =>
    Effect.gen(function*() {
      const { reply, server } = yield* upgradeWithClientCertificate(
        { clientCa: c.ca, clientCertificate: "optional" },
        { ...trusting, identity: identity(c.otherClient) }
      )
      assert.strictEqual(reply, "")
      const error = Option.getOrThrow(Cause.findErrorOption((server as Exit.Failure<never, Tls.HandshakeError>).cause))
      assert.strictEqual(error._tag, "CertificateUntrusted")
      assert.match(error.message, /the client certificate of 127\.0\.0\.1:\d+ \(CN=intruder\.test\) is not trusted/)
    }))

  it.live("the server side with optional client certificates serves a client without one", () =>
    Effect.gen(function*() {
      const { reply, server } = yield* upgradeWithClientCertificate({ clientCa: c.ca, clientCertificate: "optional" }, trusting)
      assert.strictEqual(reply, "hello anonymous")
      const info = Option.getOrThrow(Option.getOrThrow(Exit.getSuccess(server)))
      assert.isTrue(Option.isNone(info.peerCertificate))
      assert.isFalse(info.authorized)
    }))

  it.live("misuse is a defect: a socket being read, or one that already speaks TLS", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { tls: serverIdentity })
      yield* serve(listener, (socket) => Stream.run(socket.reads, socket.writes))
      const secure = yield* Socket.connect(listener.address, { tls: trusting })
      const exit = yield* Effect.exit(Tls.startTls(secure, { role: "client", ...trusting }))
      assert.include(String(Exit.isFailure(exit) ? Cause.squash(exit.cause) : ""), "Tls.startTls: socket already speaks TLS")
      const plain = yield* Socket.listen(loopback)
      const socket = yield* Socket.connect(plain.address)
      const reading = yield* Effect.forkChild(Stream.runDrain(socket.reads))
      yield* Effect.yieldNow
      const busy = yield* Effect.exit(Tls.startTls(socket, { role: "client", ...trusting }))
      assert.include(String(Exit.isFailure(busy) ? Cause.squash(busy.cause) : ""), "is being read")
      yield* Fiber.interrupt(reading)
    }))
})

describe("Tls: more peers and stages", () => {
  it.live("Protocol.serve and Protocol.client over TLS (JSON in length-prefixed frames)", () =>
    Effect.gen(function*() {
      const Add = Schema.Struct({ a: Schema.Number, b: Schema.Number })
      const Sum = Schema.Struct({ sum: Schema.Number })
      const server = Protocol.make({ framing: Framing.lengthPrefixed(), incoming: Add, outgoing: Sum })
      const client = Protocol.make({ framing: Framing.lengthPrefixed(), incoming: Sum, outgoing: Add })
      const running = yield* Server.make({
        address: loopback,
        tls: serverIdentity,
        handler: Protocol.serve(server, ({ a, b }) => Effect.succeed({ sum: a + b }))
      })
      const socket = yield* Socket.connect(running.address, { tls: trusting })
      const calls = yield* Protocol.client(socket, client)
      for (let i = 0; i < 50; i++) assert.strictEqual((yield* calls.request({ a: i, b: 1 })).sum, i + 1)
    }))

  it.live("openssl s_server refusing our client certificate (TLS 1.2, unknown CA alert): CertificateRejected", () =>
    Effect.gen(function*() {
      const port = yield* Effect.callback<number>((resume) => {
        const s = Net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = s.address() as Net.AddressInfo
          s.close(() => resume(Effect.succeed(port)))
        })
      })
      yield* openssl([
        "s_server", "-accept", `127.0.0.1:${port}`, "-cert", c.server.certFile, "-key", c.server.keyFile,
        "-CAfile", c.caFile, "-Verify", "1", "-verify_return_error", "-tls1_2", "-naccept", "1"
      ], /ACCEPT/)
      const error = yield* failureOf(Socket.connect(Address.tcp("127.0.0.1", port), { tls: { ...trusting, identity: identity(c.otherClient) } }))
      assert.strictEqual(error._tag, "CertificateRejected", error.message)
      assert.match(error.message, /rejected our certificate: give tls\.identity a certificate issued by a CA the peer trusts/)
    }))

  it.live("a node:tls server with only TLS 1.2 ciphers we refuse: the server logs NoSharedCipher", () =>
    Effect.gen(function*() {
      const log = logLines()
      yield* Effect.gen(function*() {
        const server = yield* Echo.make({
          address: loopback,
          tls: { ...serverIdentity, ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" }
        })
        yield* nodeTlsClient(server.address, { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-CHACHA20-POLY1305" })
        yield* log.next(/WARN .*failed: NoSharedCipher: no cipher suite in common with 127\.0\.0\.1:\d+/)
      }).pipe(Effect.scoped, Effect.provide(log.layer))
    }))
})
