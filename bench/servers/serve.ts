/**
 * An effect-wire `Server.layer` running one handler, for the bench's
 * effect-wire servers (bench/servers/stream.ts, bench/servers/wire.ts).
 * Imports no Schema: the Stream handler's process loads only what a user's
 * Stream server would.
 */
import * as Effect from "effect/Effect"
import * as Address from "../../src/Address.js"
import * as Server from "../../src/Server.js"
import { type Listen, listening } from "./common.js"

/** Listen where the runner says, print the `listening` line, serve until stopped. */
export const serve = (handler: Server.Options<unknown, never>["handler"]) => ({ host, port }: Listen) =>
  Effect.gen(function*() {
    const server = yield* Server.Server
    yield* listening(Address.format(server.address))
    return yield* Effect.never
  }).pipe(Effect.provide(Server.layer({ address: Address.tcp(host, port), handler })))
