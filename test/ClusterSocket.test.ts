/**
 * effect/cluster runners over effect-wire (ClusterSocket), in one process over
 * loopback. Storage: runners in one process share one RunnerStorage (helpers/cluster.ts:
 * in memory, with a real per-shard lock, since effect's own
 * RunnerStorage.layerMemory hands every runner every shard) and keep no
 * messages (MessageStorage.layerNoop: the entities' messages are volatile and
 * go straight to the runner that owns them over its socket). Two processes
 * would need SQL storage both can reach, and no SQL driver is installed.
 *
 * Waits are real time with bounded retries where effect/cluster itself
 * polls: shard assignments are refreshed every `refreshAssignmentsInterval`
 * (100 ms here), so "B has shards" and "A took B's shards" are seen by
 * asking until the replies say so, up to a deadline.
 */
import { assert, describe, it } from "@effect/vitest"
import * as MessageStorage from "effect/cluster/MessageStorage"
import * as RunnerHealth from "effect/cluster/RunnerHealth"
import * as RunnerAddressM from "effect/cluster/RunnerAddress"
import * as RunnerStorage from "effect/cluster/RunnerStorage"
import type * as Sharding from "effect/cluster/Sharding"
import * as ShardingConfig from "effect/cluster/ShardingConfig"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as ClusterSocket from "../src/ClusterSocket.js"
import * as Socket from "../src/Socket.js"
import { certs } from "./helpers/certs.js"
import { askAll, askUntil, ENTITIES, sharedRunnerStorage, Where, whereLive } from "./helpers/cluster.js"

const SHARDS = 12

/** A runner named `name` on 127.0.0.1, port 0 (it advertises the port it bound). */
const runnerLayer = (
  name: string,
  storage: RunnerStorage.RunnerStorage["Service"],
  options?: Pick<ClusterSocket.Options, "tls" | "serialization"> | undefined
) =>
  whereLive(name).pipe(
    Layer.provideMerge(ClusterSocket.layer({
      ...options,
      storage: "byo",
      shardingConfig: {
        runnerAddress: Option.some(RunnerAddressM.make("127.0.0.1", 0)),
        shardsPerGroup: SHARDS,
        refreshAssignmentsInterval: "100 millis",
        shardLockRefreshInterval: "500 millis",
        entityTerminationTimeout: "1 second"
      }
    })),
    Layer.provide(MessageStorage.layerNoop),
    Layer.provide(Layer.succeed(RunnerStorage.RunnerStorage, storage))
  )

type RunnerContext = Context.Context<
  Sharding.Sharding | ClusterSocket.RunnerServer | ShardingConfig.ShardingConfig
>

/** Build a runner in a scope of its own, so a test can stop it. */
const startRunner = (layer: ReturnType<typeof runnerLayer>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context: RunnerContext = yield* Layer.buildWithScope(layer, scope)
    return { context, stop: Scope.close(scope, Exit.void) }
  })

const statsOf = (runner: RunnerContext) => Context.get(runner, ClusterSocket.RunnerServer).stats
const addressOf = (runner: RunnerContext) => {
  const address = Context.get(runner, ShardingConfig.ShardingConfig).runnerAddress
  assert.isTrue(Option.isSome(address))
  return Option.getOrThrow(address)
}

const both = (runners: ReadonlyArray<string>) => runners.includes("A") && runners.includes("B")

describe("ClusterSocket", () => {
  it.live("a runner's listener fails with a typed ListenError; invalid options are defects", () =>
    Effect.gen(function*() {
      const storage = sharedRunnerStorage()
      const a = yield* startRunner(runnerLayer("A", storage))
      const taken = addressOf(a.context)
      const clash = whereLive("C").pipe(
        Layer.provideMerge(ClusterSocket.layer({
          storage: "byo",
          shardingConfig: { runnerAddress: Option.some(taken) }
        })),
        Layer.provide(MessageStorage.layerNoop),
        Layer.provide(Layer.succeed(RunnerStorage.RunnerStorage, storage))
      )
      const error = yield* Effect.flip(Effect.scoped(Layer.build(clash)))
      assert.strictEqual(error._tag, "AddressInUse")
      const invalid = yield* Effect.exit(Effect.scoped(Layer.build(
        ClusterSocket.layer({ storage: "local", serialization: "msgpack" as "ndjson" })
      )))
      assert.isTrue(Exit.isFailure(invalid))
      const defect = Exit.isFailure(invalid) ? Cause.squash(invalid.cause) : undefined
      assert.instanceOf(defect, Cause.IllegalArgumentError)
      assert.strictEqual(
        (defect as Error).message,
        "ClusterSocket.layer: serialization must be \"binary\" or \"ndjson\", got \"msgpack\""
      )
    }), { timeout: 30_000 })


  it.live("two runners exchange entity messages over effect-wire sockets", () =>
    Effect.gen(function*() {
      const storage = sharedRunnerStorage()
      const a = yield* startRunner(runnerLayer("A", storage))
      const b = yield* startRunner(runnerLayer("B", storage))
      // Port 0 was asked for; each advertises the port its effect-wire listener bound.
      assert.notStrictEqual(addressOf(a.context).port, 0)
      assert.notStrictEqual(addressOf(b.context).port, 0)
      assert.notStrictEqual(addressOf(a.context).port, addressOf(b.context).port)

      // Through A, once B holds shards: some entities answer from B, over B's listener.
      const runners = yield* askUntil(a.context, both)
      assert.strictEqual(runners.length, ENTITIES)
      const statsB = yield* statsOf(b.context)
      assert.isAtLeast(statsB.accepted, 1, "A reached B through B's effect-wire server")
      assert.isAtLeast(statsB.active, 1)
      // And the other way: B's messages to A's entities go over A's server.
      assert.isTrue(both(yield* askAll(b.context)))
      assert.isAtLeast((yield* statsOf(a.context)).accepted, 1, "B reached A through A's effect-wire server")
      // The same entity answers from the same runner whoever asks.
      assert.deepStrictEqual(yield* askAll(b.context), yield* askAll(a.context))
    }), { timeout: 30_000 })

  it.live("over mutual TLS: runners present and check certificates; a client without one is refused", () =>
    Effect.gen(function*() {
      const c = certs()
      const tls: ClusterSocket.MutualTls = {
        ca: c.ca,
        identity: { cert: c.server.cert, key: Redacted.make(c.server.key) }
      }
      const storage = sharedRunnerStorage()
      const a = yield* startRunner(runnerLayer("A", storage, { tls, serialization: "ndjson" }))
      const b = yield* startRunner(runnerLayer("B", storage, { tls, serialization: "ndjson" }))
      assert.isTrue(both(yield* askUntil(a.context, both)))
      assert.isAtLeast((yield* statsOf(b.context)).accepted, 1)
      // B's listener speaks TLS and wants a client certificate: plaintext and certificate-less clients fail.
      const bAddress = addressOf(b.context)
      const target = Address.tcp(bAddress.host, bAddress.port)
      const noCert = yield* Effect.scoped(Effect.gen(function*() {
        const socket = yield* Socket.connect(target, { tls: { ca: c.ca }, timeout: "2 seconds" })
        return yield* Stream.runCollect(socket.reads)
      })).pipe(Effect.exit)
      // Refused: at connect, or (TLS 1.3, where the client's side of the handshake ends first) closed unread.
      assert.isTrue(Exit.isFailure(noCert) || noCert.value.length === 0, String(noCert))
      const plaintext = yield* Effect.scoped(Effect.gen(function*() {
        const socket = yield* Socket.connect(target, { timeout: "2 seconds" })
        yield* socket.write(new TextEncoder().encode("{\"_tag\":\"Ping\"}\n"))
        return yield* Stream.runCollect(socket.reads)
      })).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(plaintext) || plaintext.value.length === 0, String(plaintext))
    }), { timeout: 30_000 })

  it.live("a runner that stops: the other takes its shards and serves its entities", () =>
    Effect.gen(function*() {
      const storage = sharedRunnerStorage()
      const a = yield* startRunner(runnerLayer("A", storage))
      const b = yield* startRunner(runnerLayer("B", storage))
      const before = yield* askUntil(a.context, both)
      const movedIds = before.flatMap((runner, n) => runner === "B" ? [n] : [])
      assert.isAbove(movedIds.length, 0)
      const serverB = Context.get(b.context, ClusterSocket.RunnerServer)
      yield* b.stop
      // B drained: the connections still open then (A may have dropped its own
      // already, having seen B leave) ended at once, none was cut at the timeout.
      const report = yield* serverB.shutdown
      assert.strictEqual(report.cut, 0)
      // Every entity now answers from A, B's included.
      const after = yield* askUntil(a.context, (runners) => runners.every((runner) => runner === "A"))
      assert.deepStrictEqual(after, Array.from({ length: ENTITIES }, () => "A"))
    }), { timeout: 30_000 })
  it.live("a client-only member (no server, no shards) reaches the runners' entities over their servers", () =>
    Effect.gen(function*() {
      const storage = sharedRunnerStorage()
      const a = yield* startRunner(runnerLayer("A", storage))
      const b = yield* startRunner(runnerLayer("B", storage))
      yield* askUntil(a.context, both)
      const acceptedBefore = [(yield* statsOf(a.context)).accepted, (yield* statsOf(b.context)).accepted]
      const member: Context.Context<Sharding.Sharding> = yield* Layer.build(
        ClusterSocket.layer({
          clientOnly: true,
          storage: "byo",
          shardingConfig: { runnerAddress: Option.none(), shardsPerGroup: SHARDS, refreshAssignmentsInterval: "100 millis" }
        }).pipe(
          Layer.provide(MessageStorage.layerNoop),
          Layer.provide(Layer.succeed(RunnerStorage.RunnerStorage, storage))
        )
      )
      // The same placement as the runners see, every answer over a runner's server.
      assert.deepStrictEqual(yield* askUntil(member, both), yield* askAll(a.context))
      // Each runner's server accepted the member (at least once: a connection made while
      // the member's view of the shards was still settling may have been replaced).
      assert.isAbove((yield* statsOf(a.context)).accepted, acceptedBefore[0]!, "the member connected to A")
      assert.isAbove((yield* statsOf(b.context)).accepted, acceptedBefore[1]!, "the member connected to B")
    }), { timeout: 30_000 })

  it.live("one runner with storage \"local\" and runnerHealth \"byo\": its entities answer", () =>
    Effect.gen(function*() {
      const single: Context.Context<Sharding.Sharding | ClusterSocket.RunnerServer> = yield* Layer.build(
        whereLive("solo").pipe(
          Layer.provideMerge(ClusterSocket.layer({
            storage: "local",
            runnerHealth: "byo",
            shardingConfig: { runnerAddress: Option.some(RunnerAddressM.make("127.0.0.1", 0)), shardsPerGroup: SHARDS }
          })),
          // "byo": the layer needs RunnerHealth from us (a compile error otherwise).
          Layer.provide(RunnerHealth.layerNoop)
        )
      )
      const client = yield* Effect.provideContext(Where.client, single)
      assert.deepStrictEqual(yield* client("e1").Ask({ n: 1 }), { runner: "solo", n: 1 })
      // Alone, it sends to itself without a socket.
      assert.strictEqual((yield* Context.get(single, ClusterSocket.RunnerServer).stats).accepted, 0)
    }), { timeout: 30_000 })
})
