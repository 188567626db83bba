/**
 * What every connection makes, made so that it dies young (see
 * docs/performance.md): `SwapSet` against a `Set` on random sequences;
 * channels, streams and sinks made by `internal/youngTransforms` against
 * Effect's own (same prototype and own keys, same results and failures);
 * `FiberGroup` as a server uses it (fibers leave when done, all are interrupted
 * when its scope closes, and any added later at once); the peer's
 * `TcpAddress` against one made by Schema.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Deferred from "effect/Deferred"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Hash from "effect/Hash"
import * as Scope from "effect/Scope"
import * as Schema from "effect/Schema"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as FastCheck from "fast-check"
import * as Address from "../src/Address.js"
import * as AddressSchema from "../src/AddressSchema.js"
import * as FiberGroup from "../src/internal/fiberGroup.js"
import { trustedTcpAddress } from "../src/internal/nodeSocket.js"
import { SwapSet } from "../src/internal/swapSet.js"
import {
  channelFromTransform,
  pipeThroughChannel,
  sinkFromTransform,
  streamFromPull,
  makesYoung
} from "../src/internal/youngTransforms.js"

class Item {
  setIndex = -1
  constructor(readonly id: number) {}
}

describe("SwapSet", () => {
  it("holds what a Set holds, through any sequence of adds, deletes and clears", () => {
    const op = FastCheck.oneof(
      FastCheck.record({ kind: FastCheck.constant("add" as const), id: FastCheck.integer({ min: 0, max: 15 }) }),
      FastCheck.record({ kind: FastCheck.constant("delete" as const), id: FastCheck.integer({ min: 0, max: 15 }) }),
      FastCheck.record({ kind: FastCheck.constant("clear" as const), id: FastCheck.constant(0) })
    )
    FastCheck.assert(
      FastCheck.property(FastCheck.array(op, { maxLength: 200 }), (ops) => {
        const items = Array.from({ length: 16 }, (_, id) => new Item(id))
        const swap = new SwapSet<Item>()
        const reference = new Set<Item>()
        for (const { id, kind } of ops) {
          const item = items[id]!
          if (kind === "add") {
            swap.add(item)
            reference.add(item)
          } else if (kind === "delete") {
            assert.strictEqual(swap.delete(item), reference.delete(item))
          } else {
            swap.clear()
            reference.clear()
          }
          assert.strictEqual(swap.size, reference.size)
          assert.deepStrictEqual([...swap].map((i) => i.id).sort((a, b) => a - b), [...reference].map((i) => i.id).sort((a, b) => a - b))
          for (const i of items) assert.strictEqual(i.setIndex >= 0, reference.has(i), `item ${i.id}`)
          assert.deepStrictEqual(swap.live.map((i) => i.id), [...swap].map((i) => i.id))
        }
      })
    )
  })

  it("an object in two sets keeps one index field for each", () => {
    const both = Array.from({ length: 4 }, (_, id) => Object.assign(new Item(id), { budgetIndex: -1 }))
    const open = new SwapSet<typeof both[number]>()
    const budget = new SwapSet<typeof both[number], "budgetIndex">("budgetIndex")
    for (const item of both) open.add(item)
    budget.add(both[1]!)
    budget.add(both[3]!)
    open.delete(both[1]!)
    assert.isFalse(open.has(both[1]!))
    assert.isTrue(budget.has(both[1]!))
    assert.deepStrictEqual([...budget].map((i) => i.id), [1, 3])
    assert.deepStrictEqual([...open].map((i) => i.id).sort(), [0, 2, 3])
    budget.delete(both[1]!)
    assert.deepStrictEqual([...budget].map((i) => i.id), [3])
    assert.strictEqual(both[3]!.budgetIndex, 0)
  })

  it("iterates a snapshot: deleting while iterating skips nothing", () => {
    const items = Array.from({ length: 10 }, (_, id) => new Item(id))
    const swap = new SwapSet<Item>()
    for (const item of items) swap.add(item)
    const seen: Array<number> = []
    for (const item of swap) {
      seen.push(item.id)
      swap.delete(item)
    }
    assert.deepStrictEqual(seen.sort((a, b) => a - b), items.map((i) => i.id))
    assert.strictEqual(swap.size, 0)
  })
})

describe("youngTransforms", () => {
  it("makes Effect's shapes with the installed Effect (else it would fall back to Effect's own)", () => {
    assert.isTrue(makesYoung())
    const ours = channelFromTransform(() => Effect.succeed(Cause.done()))
    const theirs = Channel.fromTransform(() => Effect.succeed(Cause.done()))
    assert.strictEqual(Object.getPrototypeOf(ours), Object.getPrototypeOf(theirs))
    assert.deepStrictEqual(Object.keys(ours), Object.keys(theirs))
    assert.isTrue(Channel.isChannel(ours))
    const sink = sinkFromTransform(() => Effect.succeed([undefined] as const))
    const effectSink = Sink.fromTransform(() => Effect.succeed([undefined] as const))
    assert.strictEqual(Object.getPrototypeOf(sink), Object.getPrototypeOf(effectSink))
    assert.deepStrictEqual(Object.keys(sink), Object.keys(effectSink))
    assert.isTrue(Sink.isSink(sink))
  })

  /** A pull giving `batches`, then ending (or failing with `error`). */
  const pullOf = (
    batches: ReadonlyArray<readonly [number, ...Array<number>]>,
    error?: string
  ): Effect.Effect<readonly [number, ...Array<number>], string | Cause.Done<void>> => {
    let i = 0
    return Effect.suspend((): Effect.Effect<readonly [number, ...Array<number>], string | Cause.Done<void>> =>
      i < batches.length
        ? Effect.succeed(batches[i++]!)
        : error === undefined
        ? Cause.done()
        : Effect.fail(error)
    )
  }

  it.effect("a stream from a pull gives what Stream.fromPull gives, and fails as it fails", () =>
    Effect.gen(function*() {
      const batches = [[1, 2], [3], [4, 5, 6]] as const
      const ours = yield* Stream.runCollect(streamFromPull(Effect.sync(() => pullOf(batches))))
      const theirs = yield* Stream.runCollect(Stream.fromPull(Effect.sync(() => pullOf(batches))))
      assert.deepStrictEqual(ours, theirs)
      assert.deepStrictEqual(ours, [1, 2, 3, 4, 5, 6])
      const failedOurs = yield* Effect.exit(Stream.runCollect(streamFromPull(Effect.sync(() => pullOf(batches, "boom")))))
      const failedTheirs = yield* Effect.exit(Stream.runCollect(Stream.fromPull(Effect.sync(() => pullOf(batches, "boom")))))
      assert.deepStrictEqual(failedOurs, Exit.fail("boom") as typeof failedOurs)
      assert.deepStrictEqual(failedTheirs, failedOurs)
      // A transform that fails fails the stream, as in Effect's own.
      const broken = yield* Effect.exit(Stream.runCollect(streamFromPull<number, never>(Effect.die("no pull") as never)))
      assert.isTrue(Exit.isFailure(broken) && Cause.hasDies(broken.cause))
    }))

  it.effect("piping through a channel gives what Stream.pipeThroughChannel gives, failures included", () =>
    Effect.gen(function*() {
      type Batch = readonly [number, ...Array<number>]
      const doubled = Channel.map(
        Channel.identity<Batch, string, unknown>(),
        (batch: Batch) => batch.map((n) => n * 2) as unknown as Batch
      )
      const source = (error?: string) => Stream.fromPull(Effect.sync(() => pullOf([[1, 2], [3]], error)))
      for (const error of [undefined, "upstream"]) {
        const ours = yield* Effect.exit(Stream.runCollect(pipeThroughChannel(source(error), doubled)))
        const theirs = yield* Effect.exit(Stream.runCollect(Stream.pipeThroughChannel(source(error), doubled)))
        assert.deepStrictEqual(ours, theirs)
      }
      assert.deepStrictEqual(
        yield* Stream.runCollect(pipeThroughChannel(source(), doubled)),
        [2, 4, 6]
      )
      const failing = Channel.fail("channel") as unknown as typeof doubled
      const ours = yield* Effect.exit(Stream.runCollect(pipeThroughChannel(source(), failing)))
      const theirs = yield* Effect.exit(Stream.runCollect(Stream.pipeThroughChannel(source(), failing)))
      assert.deepStrictEqual(ours, theirs)
      assert.deepStrictEqual(ours, Exit.fail("channel") as typeof ours)
    }))

  it.effect("a sink from a transform runs as Sink.fromTransform does", () =>
    Effect.gen(function*() {
      const collect = <In>() => (upstream: Effect.Effect<readonly [In, ...Array<In>], Cause.Done<void>>) =>
        Effect.suspend(() => {
          const seen: Array<In> = []
          const loop: Effect.Effect<Sink.End<Array<In>>> = Effect.matchEffect(upstream, {
            onFailure: () => Effect.succeed([seen] as const),
            onSuccess: (batch) => Effect.suspend(() => {
              seen.push(...batch)
              return loop
            })
          })
          return loop
        })
      const ours = yield* Stream.run(Stream.make(1, 2, 3), sinkFromTransform(collect<number>()))
      const theirs = yield* Stream.run(Stream.make(1, 2, 3), Sink.fromTransform(collect<number>()))
      assert.deepStrictEqual(ours, [1, 2, 3])
      assert.deepStrictEqual(ours, theirs)
    }))
})

describe("FiberGroup", () => {
  it.effect("runs with its services, lets finished fibers go, interrupts the rest when its scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const group = yield* Scope.provide(FiberGroup.make<never>(), scope)
      const done = group.run(Effect.succeed(1))
      assert.deepStrictEqual(yield* Fiber.await(done), Exit.succeed(1))
      const gate = yield* Deferred.make<void>()
      const waiting = Array.from({ length: 5 }, () => group.run(Deferred.await(gate)))
      const finishing = group.run(Deferred.await(gate).pipe(Effect.andThen(Effect.succeed("late"))))
      assert.strictEqual(group.size, 6)
      // One started elsewhere joins; once done it leaves.
      const outside = Effect.runFork(Effect.never)
      group.add(outside)
      assert.strictEqual(group.size, 7)
      yield* Fiber.interrupt(outside)
      assert.strictEqual(group.size, 6)
      yield* Scope.close(scope, Exit.void)
      for (const fiber of [...waiting, finishing] as Array<Fiber.Fiber<unknown>>) {
        const exit = yield* Fiber.await(fiber)
        assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
      }
      assert.strictEqual(group.size, 0)
      // Closed: a fiber added now is interrupted at once.
      const late = Effect.runFork(Effect.never)
      group.add(late)
      const exit = yield* Fiber.await(late)
      assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
    }))
})

describe("trustedTcpAddress", () => {
  it("is a TcpAddress as Schema makes it: equal, same hash, same encoding", () => {
    for (const [host, port] of [["127.0.0.1", 80], ["::1", 65535], ["10.0.0.1", 0]] as const) {
      const trusted = trustedTcpAddress(host, port)
      const made = Address.tcp(host, port)
      assert.isTrue(Equal.equals(trusted, made))
      assert.strictEqual(Hash.hash(trusted), Hash.hash(made))
      assert.isTrue(Schema.is(AddressSchema.TcpAddress)(trusted))
      assert.strictEqual(Object.getPrototypeOf(trusted), Object.getPrototypeOf(made))
      assert.deepStrictEqual(Object.keys(trusted), Object.keys(made))
      assert.strictEqual(Address.format(trusted), Address.format(made))
    }
  })
})
