/**
 * A typed request/response protocol: a key-value store whose messages are
 * Schemas, sent as JSON in length-prefixed frames; Protocol joins the two,
 * and Protocol.serve answers each request with the Effect of its response.
 * Run: node dist/examples/typed-protocol.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Ref, Schema } from "effect"
import * as Address from "effect-wire/Address"
import * as Framing from "effect-wire/Framing"
import * as Protocol from "effect-wire/Protocol"
import * as Server from "effect-wire/Server"
import * as Socket from "effect-wire/Socket"

const Put = Schema.TaggedStruct("Put", { key: Schema.String, value: Schema.String })
const Get = Schema.TaggedStruct("Get", { key: Schema.String })
const Stored = Schema.TaggedStruct("Stored", { key: Schema.String })
const Found = Schema.TaggedStruct("Found", { key: Schema.String, value: Schema.String })
const Missing = Schema.TaggedStruct("Missing", { key: Schema.String })
const Request = Schema.Union([Put, Get])
const Response = Schema.Union([Stored, Found, Missing])

// The same protocol seen from each end.
const ServerSide = Protocol.make({ framing: Framing.lengthPrefixed(), incoming: Request, outgoing: Response })
const ClientSide = Protocol.make({ framing: Framing.lengthPrefixed(), incoming: Response, outgoing: Request })

const handle = (store: Ref.Ref<ReadonlyMap<string, string>>, request: typeof Request.Type) =>
  request._tag === "Put"
    ? Ref.update(store, (map) => new Map(map).set(request.key, request.value)).pipe(
      Effect.as(Stored.make({ key: request.key }))
    )
    : Effect.map(Ref.get(store), (map) => {
      const value = map.get(request.key)
      return value === undefined ? Missing.make({ key: request.key }) : Found.make({ key: request.key, value })
    })

export const server = Layer.unwrap(Effect.gen(function*() {
  const store = yield* Ref.make<ReadonlyMap<string, string>>(new Map())
  return Server.layer({
    address: Address.tcp("127.0.0.1", 0),
    // One response per request, in order; the requests of one read are answered with one write.
    handler: Protocol.serve(ServerSide, (request) => handle(store, request))
  })
}))

export const client = Effect.gen(function*() {
  const socket = yield* Socket.connect((yield* Server.Server).address, { timeout: "2 seconds" })
  const kv = yield* Protocol.client(socket, ClientSide)
  const requests = [Put.make({ key: "lang", value: "effect" }), Get.make({ key: "lang" }), Get.make({ key: "os" })]
  for (const request of requests) {
    yield* Console.log(`${JSON.stringify(request)} -> ${JSON.stringify(yield* kv.request(request))}`)
  }
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
