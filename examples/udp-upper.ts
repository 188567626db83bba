/**
 * The upper-case server over UDP: each datagram is answered to its sender.
 * The client sends one datagram per request and sends it again when no reply
 * comes in time, since UDP may drop datagrams.
 * Run: node dist/examples/udp-upper.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import * as Address from "effect-wire/Address"
import * as DatagramServer from "effect-wire/DatagramServer"

const upperCase = (bytes: Uint8Array) => bytes.map((b) => (b >= 97 && b <= 122 ? b - 32 : b))

export const server = DatagramServer.layer({
  address: Address.tcp("127.0.0.1", 0),
  handler: (datagram) => Effect.succeed(upperCase(datagram.payload))
})

export const client = Effect.gen(function*() {
  const { address } = yield* DatagramServer.DatagramServer
  const udp = yield* DatagramServer.client(address, { timeout: "500 millis" })
  for (const text of ["ping", "one datagram, one reply"]) {
    const reply = yield* udp.request(new TextEncoder().encode(text))
    yield* Console.log(`udp ${Address.format(address)}: ${text} -> ${new TextDecoder().decode(reply)}`)
  }
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
