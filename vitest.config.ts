import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Socket tests open real loopback sockets; two workers fit the 2-core machines.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ["default", "./test/summaryReporter.ts"]
  }
})
