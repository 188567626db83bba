/**
 * The TCP echo server and its client, with the built-in Echo server: one
 * connection, one line per request, each answered with the same line.
 * Run: node dist/examples/echo.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import * as Address from "effect-wire/Address"
import * as Echo from "effect-wire/servers/Echo"

// Lines framing on both sides: a request is a line, and so is its reply.
export const server = Echo.layer({ address: Address.tcp("127.0.0.1", 0), framing: "lines" })

export const client = Effect.gen(function*() {
  const { address } = yield* Echo.Echo
  const echo = yield* Echo.client(address, { framing: "lines", timeout: "2 seconds" })
  for (const line of ["hello", "is anybody there?", "bye"]) {
    const reply = new TextDecoder().decode(yield* echo.request(line))
    yield* Console.log(`${Address.format(address)} echoed ${JSON.stringify(reply)}`)
  }
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
