/**
 * The one-shot question: the client asks "1+5=?" on a line, the server
 * answers "6" on a line. Framing.lines cuts the byte stream into questions.
 * Run: node dist/examples/question.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Option, Stream } from "effect"
import * as Address from "effect-wire/Address"
import * as Framing from "effect-wire/Framing"
import * as Server from "effect-wire/Server"
import * as Socket from "effect-wire/Socket"

const lines = Framing.lines({ as: "string", maxLength: 100 })

const answer = (question: string): string => {
  const sum = /^\s*(\d+)\s*\+\s*(\d+)\s*=\s*\?\s*$/.exec(question)
  return sum === null ? "I only add: ask like 1+5=?" : String(Number(sum[1]) + Number(sum[2]))
}

export const server = Server.layer({
  address: Address.tcp("127.0.0.1", 0),
  handler: (socket) =>
    socket.reads.pipe(Framing.decode(lines), Stream.map(answer), Framing.encode(lines), Stream.run(socket.writes))
})

export const client = Effect.gen(function*() {
  const { address } = yield* Server.Server
  const socket = yield* Socket.connect(address, { timeout: "2 seconds" })
  yield* socket.write(new TextEncoder().encode("1+5=?\n"))
  yield* socket.end // one question, then we only listen
  const reply = yield* socket.reads.pipe(Framing.decode(lines), Stream.runHead)
  yield* Console.log(`1+5=? ${Option.getOrElse(reply, () => "(no answer)")}`)
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
