/**
 * A chat server: a client's first line is its name, and each line after it
 * reaches every connected client through a PubSub. Two clients talk.
 * Run: node dist/examples/chat.js
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Option, PubSub, Queue, Sink, Stream } from "effect"
import * as Address from "effect-wire/Address"
import * as Framing from "effect-wire/Framing"
import * as Server from "effect-wire/Server"
import * as Socket from "effect-wire/Socket"

const lines = Framing.lines({ as: "string", maxLength: 1000 })

export const server = Layer.unwrap(Effect.gen(function*() {
  // Sliding: a client that stops reading loses old lines instead of growing memory.
  const room = yield* PubSub.sliding<string>(1024)
  return Server.layer({
    address: Address.tcp("127.0.0.1", 0),
    handler: (socket) =>
      Effect.gen(function*() {
        const [first, rest] = yield* socket.reads.pipe(Framing.decode(lines), Stream.peel(Sink.head()))
        const name = Option.getOrElse(first, () => "anonymous")
        const inbox = yield* PubSub.subscribe(room)
        yield* Stream.fromSubscription(inbox).pipe(Framing.encode(lines), Stream.run(socket.writes), Effect.forkScoped)
        yield* PubSub.publish(room, `* ${name} joined`)
        yield* Stream.runForEach(rest, (line) => PubSub.publish(room, `${name}: ${line}`))
        yield* PubSub.publish(room, `* ${name} left`)
      })
  })
}))

const join = (address: Address.Address, name: string) =>
  Effect.gen(function*() {
    const socket = yield* Socket.connect(address, { timeout: "2 seconds" })
    const heard = yield* Queue.unbounded<string>()
    yield* socket.reads.pipe(Framing.decode(lines), Stream.runForEach((l) => Queue.offer(heard, l)), Effect.forkScoped)
    const say = (text: string) => socket.write(new TextEncoder().encode(`${text}\n`))
    const hear = Effect.flatMap(Queue.take(heard), (line) => Console.log(`${name} hears  ${line}`))
    yield* say(name)
    yield* hear // our own "joined": from here on we receive everything
    return { say, hear, leave: socket.end }
  })

export const client = Effect.gen(function*() {
  const { address } = yield* Server.Server
  const alice = yield* join(address, "alice")
  const bob = yield* join(address, "bob")
  yield* alice.hear // bob joined
  yield* Effect.andThen(alice.say("hi bob"), Effect.andThen(alice.hear, bob.hear))
  yield* Effect.andThen(bob.say("hi alice, bye"), Effect.andThen(alice.hear, bob.hear))
  yield* Effect.andThen(bob.leave, alice.hear) // bob left
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
