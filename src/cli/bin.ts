#!/usr/bin/env node
/**
 * The `effect-wire` executable (package.json's `bin`, what `npm start`
 * runs): for `serve --tls-cert`, first tunes V8's heap for a TLS server
 * (`tlsHeap.ts`: the young generation held at its start-up size, which must
 * happen before the command line loads, and the old generation's growth);
 * then turns on Node's compile cache, and loads the command
 * line (`main.ts`). Static imports are loaded before a module's first line runs,
 * so the cache must be on in a module of its own: with it, a start after
 * the first reuses V8's compiled code instead of compiling every chunk
 * again (most of the time `effect-wire serve echo` spends before it
 * listens). The cache lives in `NODE_COMPILE_CACHE` or the system's
 * temporary directory, and `NODE_DISABLE_COMPILE_CACHE=1` turns it off, as
 * Node documents for `module.enableCompileCache`.
 *
 * ```sh
 * npx effect-wire serve echo --port 0
 * ```
 *
 * @since 0.2.0
 */
import * as Module from "node:module"
import { tuneHeapForTls } from "./tlsHeap.js"

// Before anything loads: a TLS server's young generation must not grow (tlsHeap.ts).
tuneHeapForTls(process.argv)

// Node >= 22.1 has it; a cache that cannot be written is reported in the result, never thrown.
Module.enableCompileCache?.()
await import("./main.js")
