/**
 * STARTTLS: a line protocol that starts in plaintext, and continues
 * encrypted once the client says `STARTTLS` and the server answers `OK`
 * (as SMTP, IMAP and XMPP do). Both sides upgrade the same socket in place
 * with `Tls.startTls`; then the server upper-cases every line.
 * Run: node dist/examples/starttls.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Option, Redacted, Stream } from "effect"
import * as Address from "effect-wire/Address"
import * as Framing from "effect-wire/Framing"
import * as Server from "effect-wire/Server"
import * as Socket from "effect-wire/Socket"
import * as Tls from "effect-wire/Tls"

// A self-signed certificate for localhost, for this example only: make your own (docs/tls.md).
const cert = `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUKI1jsfFCJLEoCeibo1wm7wiQAEIwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNjAwMDYyNloYDzIxMjYxMTEy
MDAwNjI2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASU0u7yZ+H7PPD7kwdBa3gBlunPa+K9bfD8hqkLRXTU/4S7ELo1znba
a05Yl56rZUGgoH0zoprJ6AakUPFfP05Ho28wbTAdBgNVHQ4EFgQUSiSvoRyh7QA2
FRJ27eD/tk3e4LowHwYDVR0jBBgwFoAUSiSvoRyh7QA2FRJ27eD/tk3e4LowDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIhALgpC2auzAPMjfqo/nfrKJx9awQ5i0uKTPxqB5g/saHBAiAk
X3NpPvbR2l5BnRGSNY69d79uCmslMwUXu+RcsNesXA==
-----END CERTIFICATE-----
`
const key = Redacted.make(`-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3z5xGwm//gSg5lYD
ci1CdQNkK1Bqb4mJMXp2g0afiAihRANCAASU0u7yZ+H7PPD7kwdBa3gBlunPa+K9
bfD8hqkLRXTU/4S7ELo1znbaa05Yl56rZUGgoH0zoprJ6AakUPFfP05H
-----END PRIVATE KEY-----
`)

const lines = Framing.lines({ as: "string", maxLength: 1000 })
const send = (socket: Socket.Socket, line: string) => socket.write(new TextEncoder().encode(`${line}\r\n`))
/** One line; nobody reads past it, so the peer's first TLS bytes stay queued for startTls. */
const readLine = (socket: Socket.Socket) =>
  socket.reads.pipe(Framing.decode(lines), Stream.runHead, Effect.map(Option.getOrElse(() => "")))

export const server = Server.layer({
  address: Address.tcp("127.0.0.1", 0),
  handler: (socket) =>
    Effect.gen(function*() {
      if ((yield* readLine(socket)) !== "STARTTLS") return yield* send(socket, "ERR say STARTTLS first")
      yield* send(socket, "OK")
      yield* Tls.startTls(socket, { role: "server", identity: { cert, key } })
      yield* socket.reads.pipe(
        Framing.decode(lines),
        Stream.map((line) => line.toUpperCase()),
        Framing.encode(lines),
        Stream.run(socket.writes)
      )
    })
})

export const client = Effect.gen(function*() {
  const { address } = yield* Server.Server
  const socket = yield* Socket.connect(address, { timeout: "2 seconds" })
  yield* send(socket, "STARTTLS")
  yield* Console.log(`server: ${yield* readLine(socket)}`)
  yield* Tls.startTls(socket, { role: "client", ca: cert, servername: "localhost" })
  const { protocol } = Option.getOrThrow(Tls.info(socket))
  yield* send(socket, `now over ${protocol}`)
  yield* Console.log(`server: ${yield* readLine(socket)}`)
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
