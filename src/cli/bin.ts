#!/usr/bin/env node
/**
 * The `effect-wire` executable (package.json's `bin`, what `npm start`
 * runs): for `serve --tls-cert`, first tunes V8's heap for a TLS server
 * (`tlsHeap.ts`: the young generation held at its start-up size, which must
 * happen before the command line loads, and the old generation's growth);
 * then loads the command line's entry point (`main.ts`, which turns on
 * Node's compile cache).
 *
 * ```sh
 * npx effect-wire serve echo --port 0
 * ```
 *
 * @since 0.2.0
 */
import { tuneHeapForTls } from "./tlsHeap.js"

// Before anything loads: a TLS server's young generation must not grow (tlsHeap.ts).
tuneHeapForTls(process.argv)
await import("./main.js")
