/**
 * A chat server on Protocol.serveStream: a client's first line is its name,
 * and each line after it reaches every connected client through a PubSub.
 * Two clients talk. Run: node dist/examples/chat.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, PubSub, Queue, Schema, Stream } from "effect"
import * as Address from "effect-wire/Address"
import * as Framing from "effect-wire/Framing"
import * as Protocol from "effect-wire/Protocol"
import * as Server from "effect-wire/Server"
import * as Socket from "effect-wire/Socket"

// Lines of JSON strings, both ways.
const Chat = Protocol.make({ framing: Framing.lines({ maxLength: 1000 }), incoming: Schema.String, outgoing: Schema.String })

export const server = Layer.unwrap(Effect.gen(function*() {
  // Sliding: a client that stops reading loses old lines instead of growing memory.
  const room = yield* PubSub.sliding<string>(1024)
  const names = new WeakMap<Protocol.ServeConnection<string>, string>()
  // In the connection's scope: when it closes, the subscription ends and "left" is said.
  const join = (connection: Protocol.ServeConnection<string>, name: string) =>
    Effect.gen(function*() {
      names.set(connection, name)
      const inbox = yield* PubSub.subscribe(room)
      yield* Stream.fromSubscription(inbox).pipe(Stream.runForEach(connection.send), Effect.ignore, Effect.forkScoped)
      yield* PubSub.publish(room, `* ${name} joined`)
      yield* Effect.addFinalizer(() => PubSub.publish(room, `* ${name} left`))
    })
  // A line has no reply of its own (an empty stream): the room pushes every line to everyone.
  return Server.layer({
    address: Address.tcp("127.0.0.1", 0),
    handler: Protocol.serveStream(Chat, (line, connection) => {
      const name = names.get(connection)
      return Stream.fromEffectDrain(name === undefined ? join(connection, line) : PubSub.publish(room, `${name}: ${line}`))
    })
  })
}))

const join = (address: Address.Address, name: string) =>
  Effect.gen(function*() {
    const connection = Protocol.attach(yield* Socket.connect(address, { timeout: "2 seconds" }), Chat)
    const heard = yield* Queue.unbounded<string>()
    yield* connection.messages.pipe(Stream.runForEach((line) => Queue.offer(heard, line)), Effect.forkScoped)
    const hear = Effect.flatMap(Queue.take(heard), (line) => Console.log(`${name} hears  ${line}`))
    yield* connection.send(name)
    yield* hear // our own "joined": from here on we receive everything
    return { say: connection.send, hear, leave: connection.socket.end }
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
