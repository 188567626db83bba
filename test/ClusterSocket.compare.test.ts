/**
 * ClusterSocket beside Effect's own NodeClusterSocket: the wire is the same
 * (effect/rpc over TCP, the same serialization), so a runner of each joins
 * one cluster; and an entity message's round trip between two runners,
 * measured over each transport in the same run (in full with
 * EW_BENCH_CLUSTER=1: docs/cluster.md quotes it).
 * Storage and waits as in ClusterSocket.test.ts; NodeClusterSocket's server
 * advertises the port it is given, so its runners get a free port first
 * (helpers/sockets.ts freePort) instead of port 0.
 */
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import { assert, describe, it } from "@effect/vitest"
import * as MessageStorage from "effect/cluster/MessageStorage"
import * as RunnerAddress from "effect/cluster/RunnerAddress"
import type * as Runners from "effect/cluster/Runners"
import * as RunnerStorage from "effect/cluster/RunnerStorage"
import type * as Sharding from "effect/cluster/Sharding"
import type * as ShardingConfig from "effect/cluster/ShardingConfig"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Os from "node:os"
import * as ClusterSocket from "../src/ClusterSocket.js"
import { askUntil, sharedRunnerStorage, Where, whereLive } from "./helpers/cluster.js"
import { freePort } from "./helpers/sockets.js"


const config = (port: number): Partial<ShardingConfig.ShardingConfig["Service"]> => ({
  runnerAddress: Option.some(RunnerAddress.make("127.0.0.1", port)),
  shardsPerGroup: 12,
  refreshAssignmentsInterval: "100 millis",
  shardLockRefreshInterval: "500 millis",
  entityTerminationTimeout: "1 second"
})

type Storage = RunnerStorage.RunnerStorage["Service"]
type Transport = "effect-wire" | "node"

const runnerLayer = (transport: Transport, name: string, storage: Storage, port: number) => {
  const cluster: Layer.Layer<
    Sharding.Sharding | Runners.Runners,
    unknown,
    MessageStorage.MessageStorage | RunnerStorage.RunnerStorage
  > = transport === "effect-wire"
    ? ClusterSocket.layer({ storage: "byo", shardingConfig: config(port) })
    : NodeClusterSocket.layer({ storage: "byo", shardingConfig: config(port) })
  return whereLive(name).pipe(
    Layer.provideMerge(cluster),
    Layer.provide(MessageStorage.layerNoop),
    Layer.provide(Layer.succeed(RunnerStorage.RunnerStorage, storage))
  )
}

const startRunner = (transport: Transport, name: string, storage: Storage) =>
  Effect.gen(function*() {
    const port = transport === "effect-wire" ? 0 : yield* freePort
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context: Context.Context<Sharding.Sharding> = yield* Layer.buildWithScope(
      runnerLayer(transport, name, storage, port),
      scope
    )
    return context
  })

/** Which runner answers each entity, asked through `from`, once both runners hold shards (bounded). */
const placement = (from: Context.Context<Sharding.Sharding>) =>
  askUntil(from, (runners) => runners.includes("A") && runners.includes("B"))

/** Per ask, in microseconds, over `n` sequential asks from A to an entity B holds: wall time and the process's CPU (both runners). */
const roundTrip = (from: Context.Context<Sharding.Sharding>, runners: ReadonlyArray<string>, n: number) =>
  Effect.gen(function*() {
    const client = yield* Effect.provideContext(Where.client, from)
    const onB = client(`e${runners.indexOf("B")}`)
    for (let i = 0; i < 100; i++) assert.strictEqual((yield* onB.Ask({ n: i })).runner, "B")
    const start = process.hrtime.bigint()
    const cpu = process.cpuUsage()
    for (let i = 0; i < n; i++) yield* onB.Ask({ n: i })
    const used = process.cpuUsage(cpu)
    return { wall: Number(process.hrtime.bigint() - start) / 1000 / n, cpu: (used.user + used.system) / n }
  })

describe("ClusterSocket beside NodeClusterSocket", () => {
  it.live("a runner on each transport: one cluster, messages both ways", () =>
    Effect.gen(function*() {
      const storage = sharedRunnerStorage()
      const a = yield* startRunner("effect-wire", "A", storage)
      const b = yield* startRunner("node", "B", storage)
      const fromA = yield* placement(a)
      const fromB = yield* placement(b)
      assert.deepStrictEqual(fromA, fromB)
    }), { timeout: 30_000 })

  it.live("an entity message's round trip between two runners, over each transport", () =>
    Effect.gen(function*() {
      // EW_BENCH_CLUSTER=1: the measurement docs/cluster.md quotes. A warm-up round of
      // each (dropped: the first runners of a process pay for the JIT), then three
      // rounds each in ABBA order, so both see the same load. Otherwise (npm test)
      // one short round each: both transports work, and the numbers are only a hint.
      const full = process.env.EW_BENCH_CLUSTER === "1"
      const n = full ? 300 : 50
      const results: Record<Transport, Array<{ readonly wall: number; readonly cpu: number }>> = {
        "effect-wire": [],
        node: []
      }
      const order: ReadonlyArray<Transport> = full
        ? ["node", "effect-wire", "effect-wire", "node", "node", "effect-wire", "effect-wire", "node"]
        : ["node", "effect-wire"]
      const dropped = full ? 2 : 0
      for (const [i, transport] of order.entries()) {
        yield* Effect.scoped(Effect.gen(function*() {
          const storage = sharedRunnerStorage()
          const a = yield* startRunner(transport, "A", storage)
          yield* startRunner(transport, "B", storage)
          const measured = yield* roundTrip(a, yield* placement(a), n)
          if (i >= dropped) results[transport].push(measured)
        }))
      }
      const median = (xs: ReadonlyArray<number>) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
      const line = (transport: Transport, key: "wall" | "cpu") => {
        const xs = results[transport].map((r) => r[key])
        return `${median(xs).toFixed(0)} µs (${xs.map((x) => x.toFixed(0)).join("/")})`
      }
      const ratio = (key: "wall" | "cpu") =>
        (median(results["effect-wire"].map((r) => r[key])) / median(results.node.map((r) => r[key]))).toFixed(2)
      const load = Os.loadavg().map((x) => x.toFixed(2)).join(" ")
      console.log(
        `cluster round trip (A -> entity on B, ${n} sequential, median of ${results.node.length} round(s); load ${load}):\n` +
          `  wall: effect-wire ${line("effect-wire", "wall")}, NodeClusterSocket ${line("node", "wall")}, ratio ${
            ratio("wall")
          }\n` +
          `  CPU:  effect-wire ${line("effect-wire", "cpu")}, NodeClusterSocket ${line("node", "cpu")}, ratio ${
            ratio("cpu")
          }`
      )
      assert.strictEqual(results["effect-wire"].length, full ? 3 : 1)
      assert.strictEqual(results.node.length, full ? 3 : 1)
    }), { timeout: 90_000 })
})
