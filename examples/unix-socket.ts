/**
 * A service on a Unix socket: the address picks the transport, so the
 * built-in upper-case server and its client run unchanged on a socket file,
 * which only local processes allowed by the file's permissions can reach.
 * Run: node dist/examples/unix-socket.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import * as Address from "effect-wire/Address"
import * as Upper from "effect-wire/servers/Upper"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

// A socket file belongs in a directory only its users can enter (mkdtemp makes
// it 0700), not at a name in /tmp that another user could take first. The
// server creates the file 0600 (only this user and root can connect) and
// removes it when it stops.
const directory = mkdtempSync(join(tmpdir(), "effect-wire-"))
process.once("exit", () => rmSync(directory, { recursive: true, force: true }))
const path = join(directory, "upper.sock")

export const server = Upper.layer({ address: Address.unix(path) })

export const client = Effect.gen(function*() {
  const { address } = yield* Upper.Upper
  const upper = yield* Upper.client(address, { timeout: "2 seconds" })
  const reply = yield* upper.request("hello over a unix socket")
  yield* Console.log(`${Address.format(address)} answered: ${new TextDecoder().decode(reply)}`)
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
