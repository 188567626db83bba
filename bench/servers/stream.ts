/**
 * effect-wire's `Stream` handler server (see bench/effectServers.ts): a
 * user's echo, `Stream.run(socket.reads, socket.writes)` on `Server.layer`.
 * A module of its own, like a user's program, without the typed services'
 * Schema (bench/servers/wire.ts).
 */
import * as Stream from "effect/Stream"
import type { Programs } from "./common.js"
import { serve } from "./serve.js"

export const programs: Programs = {
  "wire-stream": serve((socket) => Stream.run(socket.reads, socket.writes))
}
