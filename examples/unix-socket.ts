/**
 * A service on a Unix socket: the address picks the transport, so the
 * built-in upper-case server and its client run unchanged on a socket file,
 * which only local processes allowed by the file's permissions can reach.
 * Run: node dist/examples/unix-socket.js
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect } from "effect"
import * as Address from "effect-wire/Address"
import * as Upper from "effect-wire/servers/Upper"
import { tmpdir } from "node:os"
import { join } from "node:path"

// The server replaces a stale file at startup, and closing it removes the file.
const path = join(tmpdir(), `effect-wire-upper-${process.pid}.sock`)

export const server = Upper.layer({ address: Address.unix(path) })

export const client = Effect.gen(function*() {
  const { address } = yield* Upper.Upper
  const upper = yield* Upper.client(address, { timeout: "2 seconds" })
  const reply = yield* upper.request("hello over a unix socket")
  yield* Console.log(`${Address.format(address)} answered: ${new TextDecoder().decode(reply)}`)
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
