import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/testing/TestClock"
import * as Address from "../src/Address.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { defectOf } from "./helpers/defects.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (s: string) => encoder.encode(s)
const text = (chunks: Iterable<Uint8Array>) => Array.from(chunks, (c) => decoder.decode(c)).join("")
const pieces = (chunks: Iterable<Uint8Array>) => Array.from(chunks, (c) => decoder.decode(c))

/** The Stream chunks (pulls) of `reads`, each as the texts of its pieces. */
const pulls = (socket: Socket.Socket) =>
  socket.reads.pipe(Stream.chunks, Stream.map((chunk) => pieces(chunk)), Stream.runCollect)

/** Let forked fibers run until they block; bounded. */
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

const failTag = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (e) => e._tag)

describe("MemorySocket", () => {
  describe("makePair", () => {
    it.effect("carries bytes both ways and is a Socket", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        assert.isTrue(Socket.isSocket(a))
        assert.deepStrictEqual(a.localAddress, Address.unix("memory:a"))
        assert.deepStrictEqual(a.remoteAddress, Address.unix("memory:b"))
        yield* a.write(bytes("ping"))
        yield* a.end
        assert.strictEqual(text(yield* Stream.runCollect(b.reads)), "ping")
        yield* b.write(bytes("pong"))
        yield* b.end
        assert.strictEqual(text(yield* Stream.runCollect(a.reads)), "pong")
      }))

    it.effect("one pull yields one piece as written, so stopping early loses nothing", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* a.write(bytes("one"))
        yield* a.writeAll([bytes("two"), bytes("three")])
        yield* a.end
        const head = yield* Stream.runHead(b.reads)
        assert.strictEqual(head._tag === "Some" ? text([head.value]) : "", "one")
        assert.deepStrictEqual(yield* pulls(b), [["two"], ["three"]])
      }))

    it.effect("coalesce merges a pull into one Uint8Array (sticky packets)", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { coalesce: true } })
        yield* a.write(bytes("one"))
        yield* a.write(bytes("two"))
        yield* a.end
        assert.deepStrictEqual(yield* pulls(b), [["onetwo"]])
      }))

    it.effect("a second run of reads continues where the first stopped", () =>
      Effect.gen(function*() {
        // One pull is one Stream chunk: a partial run keeps the pulls it did not make.
        const [a, b] = yield* MemorySocket.makePair({ aToB: { maxReadSize: 2 } })
        yield* a.write(bytes("abcdef"))
        yield* a.end
        const first = yield* Stream.runCollect(Stream.take(b.reads, 1))
        assert.strictEqual(text(first), "ab")
        assert.strictEqual(text(yield* Stream.runCollect(b.reads)), "cdef")
        // After EOF every run ends at once.
        assert.strictEqual((yield* Stream.runCollect(b.reads)).length, 0)
      }))

    it.effect("half-close: the peer sees EOF and can still answer", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* a.write(bytes("request"))
        yield* a.end
        yield* a.end // idempotent
        assert.strictEqual(text(yield* Stream.runCollect(b.reads)), "request")
        yield* b.write(bytes("response"))
        yield* b.close
        assert.strictEqual(text(yield* Stream.runCollect(a.reads)), "response")
      }))

    it.effect("writes after our end or close are BrokenPipe; after the peer closed, too", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* a.end
        assert.strictEqual(yield* failTag(a.write(bytes("x"))), "BrokenPipe")
        yield* b.write(bytes("still fine"))
        yield* b.close
        yield* b.close // idempotent
        assert.strictEqual(yield* failTag(b.write(bytes("x"))), "BrokenPipe")
        const [c, d] = yield* MemorySocket.makePair()
        yield* d.close
        const error = yield* Effect.flip(c.write(bytes("x")))
        assert.strictEqual(error._tag, "BrokenPipe")
        assert.include(error.message, "memory:b")
      }))

    it.effect("reset: the peer reads what was sent, then ConnectionReset; its writes fail too", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* a.write(bytes("partial"))
        yield* a.reset
        yield* a.reset // idempotent
        const received = yield* Ref.make("")
        const error = yield* b.reads.pipe(
          Stream.runForEach((chunk) => Ref.update(received, (s) => s + decoder.decode(chunk))),
          Effect.flip
        )
        assert.strictEqual(error._tag, "ConnectionReset")
        assert.strictEqual(yield* Ref.get(received), "partial")
        assert.strictEqual(yield* failTag(b.write(bytes("x"))), "ConnectionReset")
        assert.strictEqual(yield* failTag(b.end), "ConnectionReset")
        // Our own end: reads are over, writes are BrokenPipe.
        assert.strictEqual((yield* Stream.runCollect(a.reads)).length, 0)
        assert.strictEqual(yield* failTag(a.write(bytes("x"))), "BrokenPipe")
      }))

    it.effect("closing the scope closes both ends and wakes a blocked reader", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const [a, b] = yield* Scope.provide(MemorySocket.makePair(), scope)
        const reader = yield* Effect.forkChild(Stream.runCollect(b.reads))
        yield* settle
        assert.isUndefined(reader.pollUnsafe())
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual((yield* Fiber.join(reader)).length, 0)
        assert.strictEqual(yield* failTag(a.write(bytes("x"))), "BrokenPipe")
      }))

    it.effect("writes wait while the peer's unread bytes exceed bufferSize", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ bufferSize: 10, aToB: { maxReadSize: 4 } })
        yield* a.write(new Uint8Array(8)) // 8 unread: under the limit
        const blocked = yield* Effect.forkChild(a.write(new Uint8Array(8))) // 16 unread: waits
        yield* settle
        assert.isUndefined(blocked.pollUnsafe())
        const pull = yield* Stream.toPull(b.reads)
        assert.strictEqual((yield* pull).length, 1) // 4 bytes read: 12 unread, still over
        yield* settle
        assert.isUndefined(blocked.pollUnsafe())
        yield* pull // 8 bytes read: 8 unread
        yield* Fiber.join(blocked)
        // A waiting writer whose peer closes fails instead of hanging.
        const stuck = yield* Effect.forkChild(a.write(new Uint8Array(20)))
        yield* settle
        assert.isUndefined(stuck.pollUnsafe())
        yield* b.close
        assert.strictEqual(yield* failTag(Fiber.join(stuck)), "BrokenPipe")
      }))

    it.effect("split writes: maxChunkSize 1 delivers byte by byte; a custom splitter, as told", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({
          aToB: { maxChunkSize: 1 },
          bToA: { split: (bs) => [bs.subarray(0, 1), bs.subarray(1)] }
        })
        yield* a.writeAll([bytes("ab"), bytes("c")])
        yield* a.end
        assert.deepStrictEqual(yield* pulls(b), [["a"], ["b"], ["c"]])
        yield* b.write(bytes("hello"))
        yield* b.end
        assert.deepStrictEqual(yield* pulls(a), [["h"], ["ello"]])
      }))

    it.effect("a splitter that loses bytes is a defect", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.scoped(Effect.gen(function*() {
          const [a] = yield* MemorySocket.makePair({ aToB: { split: (bs) => [bs.subarray(1)] } })
          yield* a.write(bytes("abc"))
        })).pipe(Effect.exit)
        assert.isTrue(Exit.isFailure(exit) && !Exit.hasInterrupts(exit))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "split returned 2 bytes for a write of 3")
      }))

    it.effect("per-piece delays follow the TestClock", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { maxChunkSize: 1, delay: "10 millis" } })
        const received = yield* Ref.make("")
        const reader = yield* b.reads.pipe(
          Stream.runForEach((chunk) => Ref.update(received, (s) => s + decoder.decode(chunk))),
          Effect.forkChild
        )
        yield* a.write(bytes("abc"))
        yield* a.end
        yield* settle
        assert.strictEqual(yield* Ref.get(received), "")
        yield* TestClock.adjust("10 millis")
        assert.strictEqual(yield* Ref.get(received), "a")
        yield* TestClock.adjust("9 millis")
        assert.strictEqual(yield* Ref.get(received), "a")
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Ref.get(received), "ab")
        yield* TestClock.adjust("10 millis")
        yield* Fiber.join(reader)
        assert.strictEqual(yield* Ref.get(received), "abc")
      }).pipe(Effect.scoped))

    it.effect("resetAfter breaks the connection mid-write", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { resetAfter: 5 } })
        yield* a.write(bytes("abc"))
        assert.strictEqual(yield* failTag(a.write(bytes("defgh"))), "ConnectionReset")
        const received = yield* Ref.make("")
        const error = yield* b.reads.pipe(
          Stream.runForEach((chunk) => Ref.update(received, (s) => s + decoder.decode(chunk))),
          Effect.flip
        )
        assert.strictEqual(error._tag, "ConnectionReset")
        assert.strictEqual(yield* Ref.get(received), "abcde")
        assert.strictEqual(yield* failTag(b.write(bytes("x"))), "ConnectionReset")
        assert.strictEqual(yield* failTag(a.write(bytes("x"))), "ConnectionReset")
        assert.strictEqual(yield* failTag(Stream.runDrain(a.reads)), "ConnectionReset")
      }))

    it.effect("endAfter half-closes after that many bytes", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { endAfter: 4 } })
        assert.strictEqual(yield* failTag(a.write(bytes("abcdef"))), "BrokenPipe")
        assert.strictEqual(text(yield* Stream.runCollect(b.reads)), "abcd")
        yield* b.write(bytes("ok")) // the other direction is open
        yield* b.end
        assert.strictEqual(text(yield* Stream.runCollect(a.reads)), "ok")
      }))

    it.effect("a slow reader takes maxReadSize bytes per pull, readDelay apart", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ aToB: { maxReadSize: 3, readDelay: "1 second" } })
        yield* a.write(bytes("abcdefgh"))
        yield* a.end
        const seen = yield* Ref.make<Array<string>>([])
        const reader = yield* b.reads.pipe(
          Stream.chunks,
          Stream.runForEach((chunk) => Ref.update(seen, (xs) => [...xs, text(chunk)])),
          Effect.forkChild
        )
        yield* settle
        assert.deepStrictEqual(yield* Ref.get(seen), [])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Ref.get(seen), ["abc"])
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual(yield* Ref.get(seen), ["abc", "def", "gh"])
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(reader)
      }).pipe(Effect.scoped))

    it.effect("writes sink writes each Stream chunk as a batch and half-closes at the end", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* Stream.make(bytes("x"), bytes("y"), bytes("z")).pipe(Stream.run(a.writes))
        assert.deepStrictEqual(yield* pulls(b), [["x"], ["y"], ["z"]])
        assert.strictEqual(yield* failTag(a.write(bytes("late"))), "BrokenPipe")
      }))

    it.effect("invalid options are a defect with a message", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.scoped(MemorySocket.makePair({ aToB: { maxChunkSize: 0 } })))
        assert.isTrue(Exit.isFailure(exit))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "maxChunkSize must be a positive integer")
      }))

    it.effect("many megabytes through a small buffer arrive intact and in order", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair({ bufferSize: 4096, aToB: { maxReadSize: 1000 } })
        const total = 2 * 1024 * 1024
        const block = new Uint8Array(10_000).map((_, i) => i % 251)
        const writer = yield* Effect.forkChild(
          Effect.andThen(Effect.repeat(a.write(block), { times: Math.ceil(total / block.length) - 1 }), a.end)
        )
        const sum = yield* b.reads.pipe(
          Stream.runFold(() => ({ n: 0, ok: true }), (acc, chunk) => {
            let ok = acc.ok
            for (let i = 0; i < chunk.length; i++) {
              if (chunk[i] !== ((acc.n + i) % block.length) % 251) ok = false
            }
            return { n: acc.n + chunk.length, ok }
          })
        )
        yield* Fiber.join(writer)
        assert.strictEqual(sum.n, Math.ceil(total / block.length) * block.length)
        assert.isTrue(sum.ok)
      }))
  })

  describe("listen", () => {
    it.effect("serves in-memory clients; counts connections; refuses after stopAccepting", () =>
      Effect.gen(function*() {
        const listener = yield* MemorySocket.listen({ address: Address.tcp("127.0.0.1", 0) })
        assert.strictEqual(listener.address._tag, "TcpAddress")
        assert.notStrictEqual((listener.address as Address.TcpAddress).port, 0)
        yield* listener.accept.pipe(
          Stream.runForEach((socket) => Effect.forkChild(Stream.run(socket.reads, socket.writes))),
          Effect.forkScoped
        )
        const client = yield* listener.connect({ send: { maxChunkSize: 1 } })
        assert.deepStrictEqual(client.remoteAddress, listener.address)
        yield* client.write(bytes("echo me"))
        yield* client.end
        assert.strictEqual(text(yield* Stream.runCollect(client.reads)), "echo me")
        assert.strictEqual(yield* listener.connections, 1)
        yield* listener.stopAccepting
        assert.strictEqual(yield* failTag(Effect.scoped(listener.connect())), "ConnectionRefused")
      }))

    it.effect("stopping closes connections never accepted; the scope closes accepted ones", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const listener = yield* Scope.provide(MemorySocket.listen(), scope)
        const accepted = yield* listener.connect()
        const [server] = yield* Effect.flatMap(Stream.toPull(listener.accept), (pull) => pull)
        assert.strictEqual(yield* listener.connections, 1)
        yield* server!.write(bytes("hi"))
        const waiting = yield* listener.connect()
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(text(yield* Stream.runCollect(accepted.reads)), "hi")
        assert.strictEqual((yield* Stream.runCollect(waiting.reads)).length, 0)
        assert.strictEqual(yield* failTag(waiting.write(bytes("x"))), "BrokenPipe")
        assert.strictEqual(yield* listener.connections, 0)
        assert.strictEqual(yield* listener.refused, 1)
        assert.strictEqual((yield* Stream.runCollect(listener.accept)).length, 0)
      }).pipe(Effect.scoped))

    it.effect("accept yields one connection per pull, so stopping early loses nothing", () =>
      Effect.gen(function*() {
        const listener = yield* MemorySocket.listen()
        const clients = [yield* listener.connect(), yield* listener.connect(), yield* listener.connect()]
        const first = yield* Stream.runCollect(Stream.take(listener.accept, 1))
        assert.strictEqual(first.length, 1)
        assert.strictEqual(yield* listener.connections, 1) // the other two still wait in the queue
        // A second run continues where the first stopped, one connection per Stream chunk.
        const rest = yield* listener.accept.pipe(Stream.take(2), Stream.chunks, Stream.runCollect)
        assert.deepStrictEqual(rest.map((chunk) => chunk.length), [1, 1])
        assert.strictEqual(yield* listener.refused, 0)
        // In order of arrival: each server end hears its own client.
        const servers = [first[0]!, ...rest.map((chunk) => chunk[0]!)]
        for (const [i, client] of clients.entries()) {
          yield* client.write(bytes(`client ${i}`))
          yield* client.end
          assert.strictEqual(text(yield* Stream.runCollect(servers[i]!.reads)), `client ${i}`)
        }
      }).pipe(Effect.scoped))

    it.effect("connections beyond acceptQueueSize are closed at once and counted", () =>
      Effect.gen(function*() {
        const listener = yield* MemorySocket.listen({ acceptQueueSize: 1 })
        const first = yield* listener.connect()
        const second = yield* listener.connect()
        assert.strictEqual(yield* listener.refused, 1)
        assert.strictEqual((yield* Stream.runCollect(second.reads)).length, 0)
        const [server] = yield* Effect.flatMap(Stream.toPull(listener.accept), (pull) => pull)
        yield* first.write(bytes("x"))
        yield* first.end
        assert.strictEqual(text(yield* Stream.runCollect(server!.reads)), "x")
        assert.strictEqual(yield* listener.connections, 1)
      }).pipe(Effect.scoped))
  })

  describe("invalid options", () => {
    /** Asserts an option defect: Effect's `IllegalArgumentError` with exactly this message. */
    const assertOptionDefect = (defect: unknown, message: string) => {
      assert.isTrue(Cause.isIllegalArgumentError(defect), `not an IllegalArgumentError: ${String(defect)}`)
      assert.strictEqual((defect as Error).message.slice(0, message.length), message)
    }

    it.effect("makePair: each bad option is an IllegalArgumentError naming it", () =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [MemorySocket.PairOptions, string]> = [
          [{ aToB: { maxChunkSize: 0 } }, "MemorySocket: maxChunkSize must be a positive integer, got 0"],
          [{ bufferSize: 1.5 }, "MemorySocket: bufferSize must be a positive integer, got 1.5"],
          [{ bToA: { maxReadSize: -1 } }, "MemorySocket: maxReadSize must be a positive integer, got -1"],
          [{ aToB: { resetAfter: -1 } }, "MemorySocket: resetAfter must be a non-negative integer, got -1"],
          [{ bToA: { endAfter: 0.5 } }, "MemorySocket: endAfter must be a non-negative integer, got 0.5"],
          [
            { aToB: { maxChunkSize: 1, split: (bs) => [bs] } },
            "MemorySocket: give either maxChunkSize or split, not both"
          ]
        ]
        for (const [options, message] of cases) {
          assertOptionDefect(yield* defectOf(Effect.scoped(MemorySocket.makePair(options))), message)
        }
      }))

    it.effect("a splitter that loses bytes is an IllegalArgumentError when it is used", () =>
      Effect.gen(function*() {
        const defect = yield* defectOf(Effect.scoped(Effect.gen(function*() {
          const [a] = yield* MemorySocket.makePair({ aToB: { split: (bs) => [bs.subarray(1)] } })
          yield* a.write(bytes("abc"))
        })))
        assertOptionDefect(defect, "MemorySocket: split returned 2 bytes for a write of 3")
      }))

    it.effect("listen and connect: each bad option is an IllegalArgumentError naming it", () =>
      Effect.gen(function*() {
        assertOptionDefect(
          yield* defectOf(Effect.scoped(MemorySocket.listen({ acceptQueueSize: 0 }))),
          "MemorySocket: acceptQueueSize must be a positive integer, got 0"
        )
        assertOptionDefect(
          yield* defectOf(Effect.scoped(MemorySocket.listen({ bufferSize: -4 }))),
          "MemorySocket: bufferSize must be a positive integer, got -4"
        )
        const listener = yield* MemorySocket.listen()
        assertOptionDefect(
          yield* defectOf(Effect.scoped(listener.connect({ bufferSize: 0 }))),
          "MemorySocket: bufferSize must be a positive integer, got 0"
        )
        assertOptionDefect(
          yield* defectOf(Effect.scoped(listener.connect({ send: { maxChunkSize: 0 } }))),
          "MemorySocket: maxChunkSize must be a positive integer, got 0"
        )
        // Nothing was queued for a connection that was never made.
        assert.strictEqual(yield* listener.refused, 0)
      }).pipe(Effect.scoped))
  })
})
