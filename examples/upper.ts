/**
 * The upper-case server written by hand: a server is a Layer whose handler
 * turns the socket's reads into its writes. The client sends a sentence,
 * half-closes, and reads the answer to the end.
 * Run: node dist/examples/upper.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Stream } from "effect"
import * as Address from "effect-wire/Address"
import * as Server from "effect-wire/Server"
import * as Socket from "effect-wire/Socket"

// Byte by byte (ASCII a-z only), so a read that splits a UTF-8 character is harmless.
const upperCase = (bytes: Uint8Array) => bytes.map((b) => (b >= 97 && b <= 122 ? b - 32 : b))

export const server = Server.layer({
  address: Address.tcp("127.0.0.1", 0),
  handler: (socket) => socket.reads.pipe(Stream.map(upperCase), Stream.run(socket.writes))
})

export const client = Effect.gen(function*() {
  const { address } = yield* Server.Server
  const socket = yield* Socket.connect(address, { timeout: "2 seconds" })
  yield* socket.write(new TextEncoder().encode("effect-wire, make me loud"))
  yield* socket.end // we are done sending; the server answers what it has, then closes
  const reply = yield* Stream.decodeText(socket.reads).pipe(Stream.mkString)
  yield* Console.log(`${Address.format(address)} answered: ${reply}`)
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
