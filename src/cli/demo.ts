/**
 * `effect-wire demo` (what `npm start` runs): the echo, upper, exec, UDP
 * upper and a question server, composed as one Layer on loopback, each with
 * a scripted client session whose exchanges are printed; then every server
 * drains and the command exits 0. It needs no network beyond 127.0.0.1.
 *
 * ```sh
 * npm start            # node dist/src/cli/main.js demo
 * effect-wire demo
 * ```
 *
 * @since 0.1.0
 */
import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"

/**
 * The `demo` command (see the module doc).
 *
 * ```ts
 * const cli = Command.make("effect-wire").pipe(Command.withSubcommands([demo.command]))
 * ```
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "demo",
  {},
  () => Effect.flatMap(Effect.promise(() => import("./demo/program.js")), (demo) => demo.program)
).pipe(
  Command.withDescription(
    "Start the echo, upper, exec, UDP upper and question servers on loopback as one Layer, run a scripted " +
      "client session against each (sticky packets included), print the exchanges, and exit."
  )
)
