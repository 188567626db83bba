/**
 * Pieces of the effect/cluster tests: an entity that says which runner
 * answered, and one RunnerStorage for the runners of one process.
 */
import * as Entity from "effect/cluster/Entity"
import * as MachineId from "effect/cluster/MachineId"
import type { Runner } from "effect/cluster/Runner"
import type { RunnerAddress } from "effect/cluster/RunnerAddress"
import * as RunnerStorage from "effect/cluster/RunnerStorage"
import type * as ShardId from "effect/cluster/ShardId"
import type * as Sharding from "effect/cluster/Sharding"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Rpc from "effect/rpc/Rpc"
import * as Schema from "effect/Schema"

/** An entity that says which runner answered. */
export const Where = Entity.make("Where", [
  Rpc.make("Ask", {
    payload: { n: Schema.Number },
    success: Schema.Struct({ runner: Schema.String, n: Schema.Number })
  })
])

export const whereLive = (runner: string) => Where.toLayer({ Ask: ({ payload }) => Effect.succeed({ runner, n: payload.n }) })

/** One RunnerStorage for the runners of this process: registrations and per-shard locks. */
export const sharedRunnerStorage = (): RunnerStorage.RunnerStorage["Service"] => {
  const key = (address: RunnerAddress) => `${address.host}:${address.port}`
  const runners = new Map<string, readonly [Runner, boolean]>()
  const locks = new Map<string, string>()
  let machineIds = 0
  const held = (address: RunnerAddress, shardIds: Iterable<ShardId.ShardId>) =>
    Array.from(shardIds).filter((shard) => locks.get(shard.toString()) === key(address))
  return RunnerStorage.RunnerStorage.of({
    register: (runner, healthy) =>
      Effect.sync(() => {
        runners.set(key(runner.address), [runner, healthy])
        return MachineId.make(machineIds++)
      }),
    unregister: (address) => Effect.sync(() => void runners.delete(key(address))),
    getRunners: Effect.sync(() => Array.from(runners.values())),
    setRunnerHealth: (address, healthy) =>
      Effect.sync(() => {
        const entry = runners.get(key(address))
        if (entry !== undefined) runners.set(key(address), [entry[0], healthy])
      }),
    acquire: (address, shardIds) =>
      Effect.sync(() => {
        for (const shard of shardIds) {
          if (!locks.has(shard.toString())) locks.set(shard.toString(), key(address))
        }
        return held(address, shardIds)
      }),
    refresh: (address, shardIds) => Effect.sync(() => held(address, shardIds)),
    release: (address, shardId) =>
      Effect.sync(() => {
        if (locks.get(shardId.toString()) === key(address)) locks.delete(shardId.toString())
      }),
    releaseAll: (address) =>
      Effect.sync(() => {
        for (const [shard, holder] of locks) if (holder === key(address)) locks.delete(shard)
      })
  })
}

/** How many entities the tests ask: enough that both of two runners hold some. */
export const ENTITIES = 24

/** Ask every entity once through `from`'s Sharding: which runner answered each. */
export const askAll = (from: Context.Context<Sharding.Sharding>) =>
  Effect.gen(function*() {
    const client = yield* Effect.provideContext(Where.client, from)
    return yield* Effect.forEach(
      Array.from({ length: ENTITIES }, (_, n) => n),
      (n) => Effect.map(client(`e${n}`).Ask({ n }), (reply) => reply.runner),
      { concurrency: "unbounded" }
    )
  }).pipe(Effect.timeout("5 seconds"))

/** Ask until `done` holds for the answers (cluster polls its assignments), at most `times` rounds. */
export const askUntil = (
  from: Context.Context<Sharding.Sharding>,
  done: (runners: ReadonlyArray<string>) => boolean,
  times = 100
) =>
  askAll(from).pipe(
    Effect.flatMap((runners) => done(runners) ? Effect.succeed(runners) : Effect.fail(runners)),
    Effect.retry({ times, schedule: Schedule.spaced("100 millis") })
  )
