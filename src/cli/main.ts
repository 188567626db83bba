#!/usr/bin/env node
/**
 * The command line's entry point (`node dist/src/cli/main.js`, and what the
 * `effect-wire` executable, bin.ts, loads): turns on Node's compile cache,
 * then loads the command line (`commandLine.ts`). Static imports are loaded
 * before a module's first line runs, so the cache must be turned on in a
 * module of its own: with it, a start after the first reuses V8's compiled
 * code instead of parsing every chunk of the bundle again (a fifth of the
 * instructions `effect-wire serve echo` runs before it listens). The cache
 * lives in `NODE_COMPILE_CACHE` or the system's temporary directory, and
 * `NODE_DISABLE_COMPILE_CACHE=1` turns it off, as Node documents for
 * `module.enableCompileCache`. Node writes it when the process exits; a
 * second after the start it is written too, so that a server that is killed
 * (SIGKILL) or runs for months still leaves it for the next start, without
 * the writing of a first start delaying its listening.
 *
 * ```sh
 * node dist/src/cli/main.js serve echo --port 0
 * ```
 *
 * @since 0.1.0
 */
import * as Module from "node:module"

// Node >= 22.1 has it; a cache that cannot be written is reported in the result, never thrown.
Module.enableCompileCache?.()
await import("./commandLine.js")
setTimeout(() => Module.flushCompileCache?.(), 1000).unref()
