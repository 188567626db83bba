/**
 * The exec server and its client: the server runs only allowlisted commands
 * (no shell), and the client gets each one's exit code, stdout and stderr,
 * or the server's refusal as a typed error.
 * Run: node dist/examples/exec.js
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect } from "effect"
import * as Address from "effect-wire/Address"
import * as Exec from "effect-wire/servers/Exec"

// Loopback needs no token; on any other address the server insists on one.
export const server = Exec.layer({
  address: Address.tcp("127.0.0.1", 0),
  allow: ["uname", "echo"], // looked up in PATH once, at startup; nothing else runs
  timeout: "5 seconds"
})

export const client = Effect.gen(function*() {
  const { address } = yield* Exec.Exec
  const exec = yield* Exec.client(address, { timeout: "10 seconds" })
  const result = yield* exec.run(["uname", "-s"])
  const stdout = new TextDecoder().decode(result.stdout).trim()
  yield* Console.log(`uname -s: exit ${result.header.exitCode}, stdout ${JSON.stringify(stdout)}`)
  yield* exec.run(["rm", "-rf", "/"]).pipe(
    Effect.andThen(Console.log("rm -rf /: it ran?!")),
    Effect.catchTag("CommandNotAllowed", (e) => Console.log(`rm -rf /: refused, ${e._tag}: ${e.message}`))
  )
}).pipe(Effect.scoped)

client.pipe(Effect.provide(server), NodeRuntime.runMain)
