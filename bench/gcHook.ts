/**
 * Preloaded into a bench server (`node --expose-gc --import dist/bench/gcHook.js …`)
 * with `EFFECT_WIRE_BENCH_GC_FILE` set: on SIGUSR2 it runs two full garbage
 * collections, then writes `{ n, rss, heapUsed, external, arrayBuffers }`
 * (bytes; n counts the requests) to that file, so the load generator reads
 * memory per idle connection without the noise of garbage not yet collected.
 * It loads nothing but node:fs; without the variable or `--expose-gc` it does
 * nothing.
 */
import * as Fs from "node:fs"

const file = process.env["EFFECT_WIRE_BENCH_GC_FILE"]
const gc = (globalThis as { gc?: () => void }).gc
if (file !== undefined && file !== "" && gc !== undefined) {
  let n = 0
  process.on("SIGUSR2", () => {
    gc()
    gc()
    const memory = process.memoryUsage()
    n++
    const text = JSON.stringify({
      n,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers
    })
    // Written whole, then renamed: the reader never sees half a file.
    Fs.writeFileSync(`${file}.tmp`, text)
    Fs.renameSync(`${file}.tmp`, file)
  })
}
