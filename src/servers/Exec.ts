/**
 * The remote command server, made safe: a client sends `argv`, the server runs
 * it, without a shell, only if `argv[0]` is on an allowlist, with a deadline,
 * an output cap and a concurrency limit, and answers with the exit status and
 * the raw stdout and stderr. The wire format is in docs/exec-protocol.md.
 *
 * This namespace gathers the exec modules, one concept each:
 * `ExecWire` (schemas, refusals, request and response codecs), `ExecPolicy`
 * (options, validation, bind check), `ExecRunner` (one request, one process),
 * `ExecServer` (the server as a Layer, {@link layer}) and `ExecClient` (the
 * typed, pipelining {@link client}).
 *
 * ```ts
 * import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
 * import { Console, Effect } from "effect"
 * import * as Exec from "effect-wire/servers/Exec"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* Exec.Exec
 *   const client = yield* Exec.client(server.address)
 *   const result = yield* client.run(["echo", "hello"])
 *   yield* Console.log(new TextDecoder().decode(result.stdout)) // "hello\n"
 * }).pipe(Effect.scoped, Effect.provide(Exec.layerTest({ allow: ["echo", "uname"] })))
 *
 * NodeRuntime.runMain(program)
 * ```
 *
 * @since 0.1.0
 */
export * from "./ExecClient.js"
export * from "./ExecPolicy.js"
export * from "./ExecRunner.js"
export * from "./ExecServer.js"
export * from "./ExecWire.js"
