import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

/**
 * `npm run test:reliability`: the reliability and security suite at full
 * size (override with `EW_RELIABILITY=small`), one file at a time so that
 * memory, descriptor and timing readings are not disturbed by another file,
 * with `--expose-gc` for exact heap readings, and one summary table of every
 * case at the end (test/reliability/globalSetup.ts).
 */
export default defineConfig({
  resolve: {
    alias: [
      { find: /^effect-wire$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
      { find: /^effect-wire\/(.*)$/, replacement: fileURLToPath(new URL("./src/$1.ts", import.meta.url)) }
    ]
  },
  test: {
    include: ["test/reliability/**/*.test.ts"],
    env: { EW_RELIABILITY: process.env.EW_RELIABILITY ?? "full" },
    globalSetup: ["./test/globalSetup.ts", "./test/reliability/globalSetup.ts"],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: "forks",
    execArgv: ["--expose-gc"],
    reporters: ["default", "./test/summaryReporter.ts"]
  }
})
