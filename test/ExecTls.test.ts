/**
 * The exec server and client over TLS (issue 14), on real loopback sockets
 * with certificates made at test time: a command run with a token, whose
 * bytes a relay between the two never sees in clear; mutual TLS, where a
 * client without a certificate of the CA never gets a command run.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Net from "node:net"
import * as Address from "../src/Address.js"
import * as Exec from "../src/servers/Exec.js"
import type * as Tls from "../src/Tls.js"
import { certs, type Pair } from "./helpers/certs.js"

const c = certs()
const loopback = Address.tcp("127.0.0.1", 0)
const identity = (pair: Pair): Tls.Identity => ({ cert: pair.cert, key: Redacted.make(pair.key) })
const trusting: Tls.ClientOptions = { ca: c.ca, servername: "localhost" }
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

/**
 * A TCP relay to `target` that keeps every byte it carries, both ways: what
 * anyone on the path would see. Closed with the scope.
 */
const relay = (target: Address.TcpAddress) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly address: Address.TcpAddress; readonly seen: () => Buffer; readonly server: Net.Server }>(
      (resume) => {
        const seen: Array<Buffer> = []
        const server = Net.createServer((client) => {
          const upstream = Net.connect({ host: target.host, port: target.port })
          for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
            from.on("data", (chunk: Buffer) => {
              seen.push(chunk)
              to.write(chunk)
            })
            from.on("end", () => to.end())
            from.on("error", () => to.destroy())
          }
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as Net.AddressInfo
          resume(Effect.succeed({ address: Address.tcp("127.0.0.1", port), seen: () => Buffer.concat(seen), server }))
        })
      }
    ),
    ({ server }) => Effect.sync(() => server.close())
  )

describe("Exec over TLS", () => {
  it.live("a command runs with its token over TLS; a relay on the path sees neither the token nor the command nor its output", () =>
    Effect.gen(function*() {
      const token = "t0ken-only-inside-tls"
      const server = yield* Exec.make({
        allow: ["echo"],
        address: loopback,
        token: Redacted.make(token),
        tls: { identity: identity(c.server) }
      })
      const path = yield* relay(server.address as Address.TcpAddress)
      const client = yield* Exec.client(path.address, { token: Redacted.make(token), tls: trusting })
      const result = yield* client.run(["echo", "secret-output-7391"])
      assert.strictEqual(result.header.exitCode, 0)
      assert.strictEqual(text(result.stdout), "secret-output-7391\n")
      const wire = path.seen()
      assert.isAbove(wire.length, 0)
      for (const clear of [token, "secret-output-7391", "echo"]) {
        assert.strictEqual(wire.indexOf(clear), -1, `${clear} crossed the relay in clear`)
      }
      // A wrong token is still refused, inside TLS.
      const wrong = yield* Exec.client(server.address, { token: "wrong", tls: trusting })
      const refused = yield* Effect.flip(wrong.run(["echo", "x"]))
      assert.strictEqual(refused._tag, "Unauthorized")
      // A plaintext client gets no command run: the server took its bytes for a broken handshake.
      const plain = yield* Exec.client(server.address, { token, timeout: "5 seconds" })
      assert.isTrue(Exit.isFailure(yield* Effect.exit(plain.run(["echo", "x"]))))
      const stats = yield* server.stats
      assert.strictEqual(stats.tlsHandshakeFailures?.["NotTls"], 1)
    }).pipe(Effect.scoped))

  it.live("mutual TLS: a client certificate of the CA runs commands; a client without one, or with another CA's, runs none", () =>
    Effect.gen(function*() {
      const server = yield* Exec.make({
        allow: ["echo"],
        address: loopback,
        tls: { identity: identity(c.server), clientCa: c.ca, clientCertificate: "required" }
      })
      const trusted = yield* Exec.client(server.address, { tls: { ...trusting, identity: identity(c.client) } })
      assert.strictEqual(text((yield* trusted.run(["echo", "mutual"])).stdout), "mutual\n")
      // TLS 1.3: the client's handshake ends before the server checked its certificate, so the refusal
      // arrives as the first read's failure; either way no command runs.
      for (const tls of [trusting, { ...trusting, identity: identity(c.otherClient) }]) {
        const outcome = yield* Effect.exit(
          Effect.flatMap(Exec.client(server.address, { tls, timeout: "5 seconds" }), (client) => client.run(["echo", "no"]))
        )
        assert.isTrue(Exit.isFailure(outcome))
      }
      const stats = yield* server.stats
      assert.strictEqual(stats.accepted, 1)
      assert.deepStrictEqual(stats.tlsHandshakeFailures, { PeerCertificateMissing: 1, CertificateUntrusted: 1 })
    }).pipe(Effect.scoped))

  it.live("a server certificate the client does not trust: the typed handshake error, before any request is sent", () =>
    Effect.gen(function*() {
      const server = yield* Exec.make({ allow: ["echo"], address: loopback, tls: { identity: identity(c.server) } })
      const error = yield* Effect.flip(Exec.client(server.address, { tls: { servername: "localhost" } }))
      assert.strictEqual(error._tag, "CertificateUntrusted")
      const wrongName = yield* Effect.flip(Exec.client(server.address, { tls: { ca: c.ca, servername: "other.test" } }))
      assert.strictEqual(wrongName._tag, "HostnameMismatch")
    }).pipe(Effect.scoped))
})
