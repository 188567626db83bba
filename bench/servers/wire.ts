/**
 * effect-wire's typed `Protocol` services (see bench/effectServers.ts); the
 * `Stream` handler has its own module (bench/servers/stream.ts).
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import * as Framing from "../../src/Framing.js"
import * as Message from "../../src/Message.js"
import * as Metrics from "../../src/Metrics.js"
import * as Protocol from "../../src/Protocol.js"
import { JsonMessage } from "../messages.js"
import type { Programs } from "./common.js"
import { serve } from "./serve.js"

// A typed service whose messages are bytes: the frame is the message.
const Bytes = Protocol.make({
  framing: Framing.lengthPrefixed(),
  incoming: Schema.Uint8Array,
  outgoing: Schema.Uint8Array,
  // The encoded side of a bytes Schema is bytes; FormatFactory is generic over it.
  format: <A, I>(schema: Schema.Codec<A, I>) => Message.make("bytes", schema as unknown as Schema.Codec<A, Uint8Array>)
})

// The same service with JSON messages: `{ seq, conn, pad }` in, the same out.
const Json = Protocol.make({
  framing: Framing.lengthPrefixed(),
  incoming: JsonMessage,
  outgoing: JsonMessage,
  format: "json"
})

/** A dependency that answers on the next turn of the event loop: the handler's fiber parks until then. */
const slowly = <A>(value: A): Effect.Effect<A> =>
  Effect.callback<A>((resume) => {
    setImmediate(() => resume(Effect.succeed(value)))
  })

export const programs: Programs = {
  "wire-protocol": serve(Protocol.serve(Bytes, (request) => Effect.succeed(request))),
  "wire-protocol-json": serve(Protocol.serve(Json, (request) => Effect.succeed(request))),
  "wire-protocol-async": serve(Protocol.serve(Bytes, slowly)),
  // The metrics' cost: `wire-protocol` with effect-wire's metrics off.
  "wire-protocol-nometrics": (listen) =>
    Effect.provideService(serve(Protocol.serve(Bytes, (request) => Effect.succeed(request)))(listen), Metrics.Enabled, false),
  // Tracing's cost: a span per connection and per request (traceRequests), made by a tracer that
  // keeps nothing (Effect's own spans behind a tracer of our own, so effect-wire makes them; no export).
  "wire-protocol-traced": (listen) =>
    Effect.provideService(
      serve(Protocol.serve(Bytes, (request) => Effect.succeed(request), { traceRequests: true }))(listen),
      Tracer.Tracer,
      Tracer.make({ span: (options) => Tracer.nativeTracer.span(options) })
    )
}
