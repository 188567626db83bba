/**
 * Servers whose handlers are Effects, for the bench: effect-wire's own (a
 * user's `Stream` handler, typed `Protocol` services, `effect/rpc` over
 * effect-wire's listener) and, as the peers they are measured against, the
 * same services on Effect 4's own `NodeSocketServer`, written the idiomatic
 * way. Each prints `listening tcp HOST:PORT` like the CLI.
 *
 *   node dist/bench/effectServers.js <kind> [--host 127.0.0.1] [--port 0]
 *
 * kinds (the load each one speaks in brackets; see `Speaks` in bench/common.ts):
 * - bench/servers/stream.ts, effect-wire:
 *   - `wire-stream`:          `Server.layer` + `Stream.run(socket.reads, socket.writes)` (raw echo) [bytes]
 * - bench/servers/wire.ts, effect-wire:
 *   - `wire-protocol`:        `Protocol.serve` over u32 BE frames, binary messages (a bytes
 *                             Schema), one Effect handler call per request [bytes]
 *   - `wire-protocol-json`:   the same with JSON messages (`Message.json` of a Struct) [json]
 *   - `wire-protocol-async`:  `wire-protocol` whose handler waits a turn of the event loop
 *                             (`Effect.callback` resumed by `setImmediate`, as a slow
 *                             dependency would), so every request parks its fiber [bytes]
 * - bench/servers/peer.ts, Effect 4's `NodeSocketServer`, a fiber per connection pulling the
 *   `Reader`, one `writeAll` per read:
 *   - `effect-raw`:           raw echo [bytes]
 *   - `effect-framed`:        u32 BE frames cut by hand, echoed [bytes]
 *   - `effect-protocol`:      the typed service of `wire-protocol` as an Effect user writes it:
 *                             cut each read's frames, Schema-decode each, call the handler,
 *                             Schema-encode [bytes]
 *   - `effect-protocol-json`: the same with the JSON messages of `wire-protocol-json` [json]
 * - bench/servers/rpc.ts, `effect/rpc`'s `RpcServer` (ndjson, an `Echo` call):
 *   - `rpc-wire`:             on effect-wire's listener (`PlatformSocket.layerServer`) [rpc]
 *   - `rpc-effect`:           on `NodeSocketServer` [rpc]
 *
 * Each kind loads only its own module: a server that imported every other
 * one's would start slower and hold a bigger heap, which alone changes when
 * V8 collects, and so its idle and peak memory.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type { Programs } from "./servers/common.js"

const MODULES: Record<string, string> = {
  "wire-stream": "stream",
  "wire-protocol": "wire",
  "wire-protocol-json": "wire",
  "wire-protocol-async": "wire",
  "wire-protocol-nometrics": "wire",
  "wire-protocol-traced": "wire",
  "effect-raw": "peer",
  "effect-framed": "peer",
  "effect-protocol": "peer",
  "effect-protocol-json": "peer",
  "rpc-wire": "rpc",
  "rpc-effect": "rpc"
}

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback
}

const kind = process.argv[2] ?? ""
const module = MODULES[kind]
if (module === undefined) {
  process.stderr.write(`usage: node dist/bench/effectServers.js <${Object.keys(MODULES).join("|")}> [--host H] [--port P]\n`)
  process.exit(2)
}
const { programs } = (await import(`./servers/${module}.js`)) as { readonly programs: Programs }
NodeRuntime.runMain(programs[kind]!({ host: arg("--host", "127.0.0.1"), port: Number(arg("--port", "0")) }))
