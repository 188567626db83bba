import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: {
    // Examples import the package by name, as users do; tests run them from source.
    alias: [
      { find: /^effect-wire$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
      { find: /^effect-wire\/(.*)$/, replacement: fileURLToPath(new URL("./src/$1.ts", import.meta.url)) }
    ]
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Build dist/ once for the tests that run the CLI as a process; collect the
    // reliability cases' summary rows and print their table at the end.
    globalSetup: ["./test/globalSetup.ts", "./test/reliability/globalSetup.ts"],
    env: { EW_RELIABILITY: process.env.EW_RELIABILITY ?? "small" },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Socket tests open real loopback sockets; two workers fit the 2-core machines.
    maxWorkers: 2,
    reporters: ["default", "./test/summaryReporter.ts"]
  }
})
