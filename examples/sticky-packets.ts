/**
 * TCP's "sticky packets": three messages sent in one write arrive as one
 * read, so a server that takes each read for a message gets one message.
 * A length before each message (Framing.lengthPrefixed) cuts them apart again.
 * Run: node dist/examples/sticky-packets.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Context, Effect, Layer, Stream } from "effect"
import * as Address from "effect-wire/Address"
import * as Framing from "effect-wire/Framing"
import * as Server from "effect-wire/Server"
import * as Socket from "effect-wire/Socket"

const show = (bytes: Uint8Array) => JSON.stringify(new TextDecoder().decode(bytes))
const messages = ["alpha", "beta", "gamma"].map((text) => new TextEncoder().encode(text))

// A server that prints every message it receives; `cut` decides where one ends.
const printing = <E>(name: string, cut: (reads: Socket.Socket["reads"]) => Stream.Stream<Uint8Array, E>) =>
  Server.make({
    address: Address.tcp("127.0.0.1", 0),
    handler: (socket) => Stream.runForEach(cut(socket.reads), (m) => Console.log(`${name} server got ${show(m)}`))
  })
class Broken extends Context.Service<Broken, Server.RunningServer>()("Broken") {}
class Fixed extends Context.Service<Fixed, Server.RunningServer>()("Fixed") {}

export const server = Layer.merge(
  Layer.effect(Broken, printing("broken", (reads) => reads)), // one read taken for one message
  Layer.effect(Fixed, printing("fixed", Framing.decode(Framing.lengthPrefixed())))
)

const sendInOneWrite = (address: Address.Address, bytes: Uint8Array) =>
  Effect.gen(function*() {
    const socket = yield* Socket.connect(address, { timeout: "2 seconds" })
    yield* socket.write(bytes)
    yield* socket.end
    yield* Stream.runDrain(socket.reads) // the server closes once it has read everything
  }).pipe(Effect.scoped)

export const client = Effect.gen(function*() {
  yield* sendInOneWrite((yield* Broken).address, Buffer.concat(messages))
  const framed = yield* Effect.fromResult(Framing.encodeAll(Framing.lengthPrefixed(), messages))
  yield* sendInOneWrite((yield* Fixed).address, framed)
})

client.pipe(Effect.provide(server), NodeRuntime.runMain)
