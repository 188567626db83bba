/**
 * `Socket.pump` on both of its paths: Node sockets (TCP over 127.0.0.1, Unix),
 * where the handler runs in Node's own callbacks, and in-memory sockets
 * (MemorySocket listener and pair), where it runs over `reads`/`writeAll`.
 * The same cases run on every transport; backpressure, idle timeout and peer
 * reset are checked where the transport has them.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import * as Framing from "../src/Framing.js"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { eventually, pattern, readAll, stalled, tempDir, upper } from "./helpers/sockets.js"

const MiB = 1024 * 1024
const loopback = Address.tcp("127.0.0.1", 0)

const bytes = (text: string): Buffer => Buffer.from(text, "latin1")

/** a-z → A-Z, in a copy: an answer that differs from the question. */

class Stop extends Data.TaggedError("Stop")<{ readonly seen: number }> {}
class Truncated extends Data.TaggedError("Truncated")<{ readonly pending: string }> {}

/** An echo handler that counts what it saw, and the reads it got. */
const counting = () => {
  const state = { seen: 0, reads: 0 }
  const handler: Socket.PumpHandler<never> = {
    onRead: (input, out) => {
      state.seen += input.length
      state.reads++
      out.push(input)
      return undefined
    },
    onEnd: () => undefined
  }
  return { state, handler }
}

/** Bounds every wait on the network: a hang fails the test instead of timing it out. */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>, seconds = 10) =>
  Effect.timeoutOrElse(effect, {
    duration: `${seconds} seconds`,
    orElse: () => Effect.fail(new Error(`no result within ${seconds} s`))
  })

/** Read until at least `n` bytes came (or EOF): one element per pull, so nothing past them is taken. */
const readAtLeast = (socket: Socket.Socket, n: number) =>
  within(Effect.suspend(() => {
    let got = Buffer.alloc(0)
    return Stream.runForEachWhile(socket.reads, (chunk) =>
      Effect.sync(() => {
        got = Buffer.concat([got, chunk])
        return got.length < n
      })).pipe(Effect.map(() => got))
  }))

const failureOf = <E>(exit: Exit.Exit<unknown, E>): Option.Option<E> =>
  Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()

/** `| u32 BE length | body |` */
const lengthFrame = (body: Uint8Array): Buffer => {
  const header = Buffer.alloc(4)
  header.writeUInt32BE(body.length)
  return Buffer.concat([header, body])
}

/**
 * A slow peer: one byte of `bytes` every `everyMillis` ms (the pace is the
 * case under test, not a wait for something), until all are sent or the
 * connection no longer takes them.
 */
const dribble = (socket: Socket.Socket, bytes: Uint8Array, everyMillis: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < bytes.length; i++) {
      if (i > 0) yield* Effect.sleep(everyMillis)
      yield* socket.write(bytes.subarray(i, i + 1))
    }
  }).pipe(Effect.ignore)


// ---------------------------------------------------------------------------
// transports
// ---------------------------------------------------------------------------

type Pair = readonly [client: Socket.Socket, server: Socket.Socket]

interface Transport {
  readonly name: string
  /** A connected [client, server] pair, closed with the scope. */
  readonly pair: Effect.Effect<Pair, never, Scope.Scope>
  /** Node path: the handler runs in Node's callbacks. */
  readonly node: boolean
  /** `reset` reaches the peer as ConnectionReset (a Unix socket is only destroyed: the peer sees EOF). */
  readonly resets: boolean
  /** Bytes for the bulk cases: enough for many reads, few enough for 5-byte reads to stay fast. */
  readonly bulk: number
}

const nodePair = (address: Address.Address, options?: Socket.ListenOptions) =>
  Effect.gen(function*() {
    const listener = yield* Socket.listen(address, options)
    const client = yield* Socket.connect(listener.address)
    const server = yield* within(Stream.runHead(listener.accept))
    return [client, Option.getOrThrow(server)] as const
  }).pipe(Effect.orDie)

const memoryListenerPair = Effect.gen(function*() {
  const listener = yield* MemorySocket.listen()
  const client = yield* listener.connect()
  const server = yield* Stream.runHead(listener.accept)
  return [client, Option.getOrThrow(server)] as const
}).pipe(Effect.orDie)

const transports: ReadonlyArray<Transport> = [
  { name: "TCP 127.0.0.1", pair: nodePair(loopback), node: true, resets: true, bulk: 2 * MiB },
  {
    name: "Unix",
    pair: Effect.flatMap(tempDir, (dir) => nodePair(Address.unix(Path.join(dir, "pump.sock")))),
    node: true,
    resets: false,
    bulk: 2 * MiB
  },
  { name: "MemorySocket listener", pair: memoryListenerPair, node: false, resets: true, bulk: 2 * MiB },
  {
    // Every write from the client arrives as reads of at most 5 bytes: many reads per write.
    name: "MemorySocket pair (5-byte reads)",
    pair: MemorySocket.makePair({ aToB: { maxChunkSize: 5 } }),
    node: false,
    resets: true,
    bulk: 50_000
  }
]

/**
 * Bytes the Node socket holds for the next reader. A test-only look inside:
 * there is no event for "Node has queued what the peer sent".
 */
const queuedInNode = (socket: Socket.Socket): number => (socket as unknown as { readonly queued: number }).queued

const ONE_READER = "already being pulled (or pumped) by another fiber"

describe("Socket.pump", () => {
  for (const transport of transports) {
    describe(transport.name, () => {
      it.live("answers every read; at EOF sends onEnd's output, half-closes and succeeds", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const reads: Array<Uint8Array> = []
          let seen = 0
          let ends = 0
          const handler: Socket.PumpHandler<never> = {
            onRead: (input, out) => {
              // Kept as given: the bytes are the handler's to keep.
              reads.push(input)
              seen += input.length
              out.push(bytes("["), upper(input), bytes("]"))
              return undefined
            },
            onEnd: (out) => {
              ends++
              out.push(bytes(`<end ${seen}>`))
              return undefined
            }
          }
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
          const replying = yield* Effect.forkChild(within(readAll(client)))
          const input = [bytes("hello, "), bytes("wire! "), pattern(transport.bulk / 10)]
          for (const chunk of input) yield* client.write(chunk)
          yield* client.end
          // readAll returns only at EOF: the server half-closed after all of this.
          const reply = yield* Fiber.join(replying)
          const exit = yield* within(Fiber.await(pumping))
          assert.isTrue(Exit.isSuccess(exit), `pump: ${String(exit)}`)
          const all = Buffer.concat(input)
          assert.isTrue(Buffer.concat(reads).equals(all), "the handler saw every byte once, in order")
          assert.strictEqual(ends, 1)
          const expected = Buffer.concat([
            ...reads.flatMap((read) => [bytes("["), upper(read), bytes("]")]),
            bytes(`<end ${all.length}>`)
          ])
          assert.strictEqual(reply.length, expected.length)
          assert.isTrue(reply.equals(expected))
          // The write side stays half-closed: a write now is refused.
          assert.strictEqual((yield* Effect.flip(server.write(bytes("late"))))._tag, "BrokenPipe")
        }))

      it.live("an error from onRead fails the pump with it, after that read's output went out", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          let calls = 0
          let raised: Stop | undefined
          let seen = 0
          const handler: Socket.PumpHandler<Stop> = {
            onRead: (input, out) => {
              calls++
              seen += input.length
              out.push(upper(input))
              if (!Buffer.from(input).includes("!")) return undefined
              raised = new Stop({ seen })
              return raised
            },
            onEnd: () => undefined
          }
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
          yield* client.write(bytes("hello!"))
          const answered = yield* readAtLeast(client, 6)
          assert.strictEqual(answered.toString(), "HELLO!")
          const exit = yield* within(Fiber.await(pumping))
          assert.isDefined(raised)
          assert.isTrue(Exit.isFailure(exit) && !Cause.hasDies(exit.cause), `pump: ${String(exit)}`)
          const error = failureOf(exit)
          assert.isTrue(Option.isSome(error) && error.value === raised, "fails with the very error returned")
          assert.strictEqual(Option.getOrThrow(error)._tag, "Stop")
          // The pump let go of the socket: later bytes are not the handler's.
          const callsAtError = calls
          yield* client.write(bytes("later"))
          yield* client.end
          assert.strictEqual((yield* within(readAll(server))).toString(), "later")
          assert.strictEqual(calls, callsAtError)
          yield* server.close
          assert.strictEqual((yield* within(readAll(client))).length, 0)
        }))

      it.live("an error from onEnd fails the pump with it, after onEnd's output, with no half-close", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          let raised: Truncated | undefined
          const handler: Socket.PumpHandler<Truncated> = {
            onRead: (input, out) => void out.push(upper(input)),
            onEnd: (out) => {
              out.push(bytes("<bye>"))
              raised = new Truncated({ pending: "abc" })
              return raised
            }
          }
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
          const replying = yield* Effect.forkChild(within(readAll(client)))
          yield* client.write(bytes("abc"))
          yield* client.end
          const exit = yield* within(Fiber.await(pumping))
          const error = failureOf(exit)
          assert.isTrue(Option.isSome(error) && error.value === raised, `pump: ${String(exit)}`)
          assert.strictEqual(Option.getOrThrow(error)._tag, "Truncated")
          // A failed pump does not half-close: the server can still write.
          yield* server.write(bytes("+after"))
          yield* server.close
          assert.strictEqual((yield* Fiber.join(replying)).toString(), "ABC<bye>+after")
        }))

      it.live("a handler that throws is a defect, not a typed failure (onRead and onEnd)", () =>
        Effect.gen(function*() {
          const boom = new Error("handler bug")
          const [client, server] = yield* transport.pair
          const throwing: Socket.PumpHandler<Stop> = {
            onRead: () => {
              throw boom
            },
            onEnd: () => undefined
          }
          const pumping = yield* Effect.forkChild(Socket.pump(server, throwing))
          yield* client.write(bytes("x"))
          const exit = yield* within(Fiber.await(pumping))
          assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), `pump: ${String(exit)}`)
          assert.isTrue(Option.isNone(failureOf(exit)))
          if (Exit.isFailure(exit)) assert.strictEqual(Result.getOrThrow(Cause.findDefect(exit.cause)), boom)

          const [client2, server2] = yield* transport.pair
          const throwingAtEnd: Socket.PumpHandler<Stop> = {
            onRead: (input, out) => void out.push(input),
            onEnd: () => {
              throw boom
            }
          }
          const pumping2 = yield* Effect.forkChild(Socket.pump(server2, throwingAtEnd))
          yield* client2.end
          const exit2 = yield* within(Fiber.await(pumping2))
          assert.isTrue(Exit.isFailure(exit2) && Cause.hasDies(exit2.cause), `pump: ${String(exit2)}`)
          if (Exit.isFailure(exit2)) assert.strictEqual(Result.getOrThrow(Cause.findDefect(exit2.cause)), boom)
        }))

      it.live("abort: stops reading, half-closes after what it answered, and succeeds", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const firstRead = yield* Deferred.make<void>()
          let seen = 0
          const handler: Socket.PumpHandler<never> = {
            onRead: (input, out) => {
              seen += input.length
              out.push(input)
              Deferred.doneUnsafe(firstRead, Exit.void)
              return undefined
            },
            onEnd: () => undefined
          }
          const controller = new AbortController()
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler, { signal: controller.signal }))
          const payload = pattern(transport.bulk)
          // The client sends everything, then half-closes; the server reads what the pump left.
          const sending = yield* Effect.forkChild(within(Effect.andThen(client.write(payload), client.end)))
          const replying = yield* Effect.forkChild(within(readAll(client)))
          yield* within(Deferred.await(firstRead))
          controller.abort()
          const exit = yield* within(Fiber.await(pumping))
          assert.isTrue(Exit.isSuccess(exit), `pump: ${String(exit)}`)
          const answered = seen
          const rest = yield* within(readAll(server))
          yield* Fiber.join(sending)
          // EOF came right after the bytes the pump answered, intact.
          const reply = yield* Fiber.join(replying)
          assert.strictEqual(reply.length, answered)
          assert.isTrue(reply.equals(payload.subarray(0, answered)))
          // The pump let go: the handler saw nothing more, and the rest was still there for reads.
          assert.strictEqual(seen, answered)
          assert.isTrue(rest.equals(payload.subarray(answered)))
        }))

      it.live("abort raised by the handler itself: that read's answer still goes out before the EOF", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const controller = new AbortController()
          let reads = 0
          const handler: Socket.PumpHandler<never> = {
            onRead: (input, out) => {
              reads++
              out.push(upper(input))
              if (Buffer.from(input).includes("!")) controller.abort()
              return undefined
            },
            onEnd: () => undefined
          }
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler, { signal: controller.signal }))
          const replying = yield* Effect.forkChild(within(readAll(client)))
          yield* client.write(bytes("hello!"))
          assert.isTrue(Exit.isSuccess(yield* within(Fiber.await(pumping))))
          assert.strictEqual((yield* Fiber.join(replying)).toString(), "HELLO!")
          const readsAtAbort = reads
          yield* client.write(bytes("ignored"))
          yield* client.end
          assert.strictEqual((yield* within(readAll(server))).toString(), "ignored")
          assert.strictEqual(reads, readsAtAbort)
        }))

      it.live("abort while the peer is idle: the pump half-closes at once and succeeds", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const { handler, state } = counting()
          const controller = new AbortController()
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler, { signal: controller.signal }))
          yield* client.write(bytes("one"))
          assert.strictEqual((yield* readAtLeast(client, 3)).toString(), "one")
          controller.abort()
          assert.isTrue(Exit.isSuccess(yield* within(Fiber.await(pumping))))
          // EOF follows the answer already sent.
          assert.strictEqual((yield* within(readAll(client))).length, 0)
          assert.strictEqual(state.seen, 3)
        }))

      it.live("an already-aborted signal: no read is answered, the pump half-closes and succeeds", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const { handler, state } = counting()
          yield* client.write(bytes("early"))
          const pumped = yield* within(Effect.exit(Socket.pump(server, handler, { signal: AbortSignal.abort() })))
          assert.isTrue(Exit.isSuccess(pumped), `pump: ${String(pumped)}`)
          assert.strictEqual(state.reads, 0)
          assert.strictEqual((yield* within(readAll(client))).length, 0)
          yield* client.end
          assert.strictEqual((yield* within(readAll(server))).toString(), "early")
        }))

      it.live("bytes queued before the pump started are pumped, none lost", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const payload = pattern(transport.bulk / 8)
          const sending = yield* Effect.forkChild(within(Effect.andThen(client.write(payload), client.end)))
          const head = Option.getOrThrow(yield* within(Stream.runHead(server.reads)))
          assert.isAbove(head.length, 0)
          if (transport.node) {
            // Make sure Node did queue bytes for the next reader before the pump takes over.
            yield* eventually("bytes queued", Effect.sync(() => queuedInNode(server)), (n) => n > 0)
          }
          const { handler, state } = counting()
          const replying = yield* Effect.forkChild(within(readAll(client)))
          yield* within(Socket.pump(server, handler))
          yield* Fiber.join(sending)
          const reply = yield* Fiber.join(replying)
          assert.strictEqual(head.length + state.seen, payload.length)
          assert.isTrue(Buffer.from(head).equals(payload.subarray(0, head.length)))
          assert.isTrue(reply.equals(payload.subarray(head.length)))
        }))

      it.live("interrupting the pump detaches it: reads, and a new pump, take over with nothing lost", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const { handler, state } = counting()
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
          yield* client.write(bytes("one"))
          assert.strictEqual((yield* readAtLeast(client, 3)).toString(), "one")
          yield* Fiber.interrupt(pumping)
          const readsAtInterrupt = state.reads
          yield* client.write(bytes("two"))
          assert.strictEqual((yield* readAtLeast(server, 3)).toString(), "two")
          assert.strictEqual(state.reads, readsAtInterrupt, "the interrupted pump answers nothing more")
          const again = counting()
          const replying = yield* Effect.forkChild(within(readAll(client)))
          yield* client.write(bytes("three"))
          yield* client.end
          yield* within(Socket.pump(server, again.handler))
          assert.strictEqual((yield* Fiber.join(replying)).toString(), "three")
        }))

      it.live("frame timeout (Echo's framed handler): a frame dribbled a byte per 50 ms fails the pump with FrameTimeout at 300 ms", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const handler = Echo.handler("length", { frameTimeout: "300 millis" })
          const started = Date.now()
          const pumping = yield* Effect.forkChild(handler(server))
          // A frame of 28 bytes behind its 4-byte header: 1.6 s at this pace.
          const dribbling = yield* Effect.forkChild(dribble(client, lengthFrame(pattern(28)), 50))
          const exit = yield* within(Fiber.await(pumping))
          const took = Date.now() - started
          yield* Fiber.interrupt(dribbling)
          const error = failureOf(exit)
          assert.isTrue(Option.isSome(error) && error.value instanceof Framing.FrameTimeout, `pump: ${String(exit)}`)
          const timeout = Option.getOrThrow(error) as Framing.FrameTimeout
          assert.strictEqual(timeout._tag, "FrameTimeout")
          assert.strictEqual(Duration.toMillis(timeout.limit), 300)
          assert.isAtLeast(timeout.received, 1)
          assert.isBelow(timeout.received, 32, "cut before the frame was complete")
          assert.isAtLeast(took, 290)
          assert.isBelow(took, 1500)
        }))

      it.live("frame timeout: frames that each complete in time are never cut, however long the connection runs", () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const handler = Echo.handler("length", { frameTimeout: "300 millis" })
          const pumping = yield* Effect.forkChild(handler(server))
          const replying = yield* Effect.forkChild(within(readAll(client)))
          const started = Date.now()
          // 8 frames, each sent in two halves 100 ms apart: 800 ms in all, well past the 300 ms limit.
          const frames = Array.from({ length: 8 }, (_, i) => lengthFrame(pattern(40, i)))
          for (const frame of frames) {
            yield* client.write(frame.subarray(0, 10))
            yield* Effect.sleep("100 millis")
            yield* client.write(frame.subarray(10))
          }
          assert.isAtLeast(Date.now() - started, 800)
          yield* client.end
          const exit = yield* within(Fiber.await(pumping))
          assert.isTrue(Exit.isSuccess(exit), `pump: ${String(exit)}`)
          assert.isTrue((yield* Fiber.join(replying)).equals(Buffer.concat(frames)))
        }))

      if (transport.resets) {
        it.live("a peer reset mid-pump fails the pump with ConnectionReset", () =>
          Effect.gen(function*() {
            const [client, server] = yield* transport.pair
            const { handler } = counting()
            const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
            yield* client.write(bytes("abc"))
            assert.strictEqual((yield* readAtLeast(client, 3)).toString(), "abc")
            yield* client.reset
            const exit = yield* within(Fiber.await(pumping))
            const error = failureOf(exit)
            assert.isTrue(Option.isSome(error), `pump: ${String(exit)}`)
            assert.strictEqual(Option.getOrThrow(error)._tag, "ConnectionReset")
          }))
      }
    })
  }

  describe("one reader at a time", () => {
    for (const transport of transports.filter((t) => t.node)) {
      it.live(`${transport.name}: pulling reads or pumping again during a pump is a defect`, () =>
        Effect.gen(function*() {
          const [client, server] = yield* transport.pair
          const { handler, state } = counting()
          const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
          yield* client.write(bytes("x"))
          assert.strictEqual((yield* readAtLeast(client, 1)).toString(), "x")
          const pulled = yield* within(Effect.exit(Stream.runHead(server.reads)))
          assert.isTrue(Exit.isFailure(pulled) && Cause.hasDies(pulled.cause), `reads: ${String(pulled)}`)
          if (Exit.isFailure(pulled)) assert.include(Cause.pretty(pulled.cause), ONE_READER)
          const second = counting()
          const pumpedTwice = yield* within(Effect.exit(Socket.pump(server, second.handler)))
          assert.isTrue(Exit.isFailure(pumpedTwice) && Cause.hasDies(pumpedTwice.cause), `pump: ${String(pumpedTwice)}`)
          if (Exit.isFailure(pumpedTwice)) assert.include(Cause.pretty(pumpedTwice.cause), ONE_READER)
          // Neither attempt disturbed the running pump.
          yield* client.write(bytes("yz"))
          yield* client.end
          assert.strictEqual((yield* within(readAll(client))).toString(), "yz")
          assert.isTrue(Exit.isSuccess(yield* within(Fiber.await(pumping))))
          assert.strictEqual(state.seen, 3)
          assert.strictEqual(second.state.reads, 0)
        }))
    }

    it.live("TCP: a pump started while reads is pulled is a defect", () =>
      Effect.gen(function*() {
        const [client, server] = yield* nodePair(loopback)
        const reading = yield* Effect.forkChild(Stream.runHead(server.reads))
        // The pull registers itself as the reader once its fiber ran; no event says when.
        yield* eventually(
          "reads pulled",
          Effect.sync(() => (server as unknown as { readonly reader: unknown }).reader !== undefined),
          (pulling) => pulling
        )
        const { handler } = counting()
        const pumped = yield* within(Effect.exit(Socket.pump(server, handler)))
        assert.isTrue(Exit.isFailure(pumped) && Cause.hasDies(pumped.cause), `pump: ${String(pumped)}`)
        if (Exit.isFailure(pumped)) assert.include(Cause.pretty(pumped.cause), ONE_READER)
        yield* client.write(bytes("still mine"))
        const head = yield* within(Fiber.join(reading))
        assert.strictEqual(Buffer.from(Option.getOrThrow(head)).toString(), "still mine")
      }))

    it.live("MemorySocket: pumping twice is a defect", () =>
      Effect.gen(function*() {
        const [client, server] = yield* memoryListenerPair
        const { handler, state } = counting()
        const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
        yield* client.write(bytes("x"))
        assert.strictEqual((yield* readAtLeast(client, 1)).toString(), "x")
        const second = counting()
        // Without a check the second pump would wait for reads and share them with the first.
        const pumpedTwice = yield* within(Effect.exit(Socket.pump(server, second.handler)), 2)
        assert.isTrue(Exit.isFailure(pumpedTwice) && Cause.hasDies(pumpedTwice.cause), `pump: ${String(pumpedTwice)}`)
        if (Exit.isFailure(pumpedTwice)) assert.include(Cause.pretty(pumpedTwice.cause), ONE_READER)
        yield* client.write(bytes("yz"))
        yield* client.end
        assert.strictEqual((yield* within(readAll(client))).toString(), "yz")
        assert.isTrue(Exit.isSuccess(yield* within(Fiber.await(pumping))))
        assert.strictEqual(state.seen, 3)
        assert.strictEqual(second.state.reads, 0)
      }))
  })

  describe("backpressure", () => {
    it.live("TCP: a peer that never reads stalls the pump; all 64 MiB arrive once it reads", () =>
      Effect.gen(function*() {
        const [client, server] = yield* nodePair(loopback)
        const { handler, state } = counting()
        const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
        const total = 64 * MiB
        const payload = pattern(total)
        let written = 0
        const writing = yield* Effect.forkChild(Effect.gen(function*() {
          for (let at = 0; at < total; at += MiB) {
            yield* client.write(payload.subarray(at, at + MiB))
            written = at + MiB
          }
          yield* client.end
        }))
        const seen = yield* stalled("bytes the handler saw", () => state.seen)
        // Bounded by the kernel buffers of both directions plus Node's write buffer, not by the 64 MiB sent.
        assert.isBelow(seen, 16 * MiB, `seen ${seen} while the client wrote ${written}`)
        assert.isBelow(written, total, "the client's writes are held back too")
        assert.isTrue(writing.pollUnsafe() === undefined)
        const reply = yield* within(readAll(client), 60)
        yield* within(Fiber.join(writing))
        assert.isTrue(Exit.isSuccess(yield* within(Fiber.await(pumping))))
        assert.strictEqual(reply.length, total)
        assert.isTrue(reply.equals(payload))
      }))

    it.live("MemorySocket: a peer that never reads stalls the pump within the pair's buffers", () =>
      Effect.gen(function*() {
        const bufferSize = 64 * 1024
        const [client, server] = yield* MemorySocket.makePair({ bufferSize })
        const { handler, state } = counting()
        const pumping = yield* Effect.forkChild(Socket.pump(server, handler))
        const total = 4 * MiB
        const payload = pattern(total)
        const writing = yield* Effect.forkChild(Effect.gen(function*() {
          for (let at = 0; at < total; at += bufferSize) yield* client.write(payload.subarray(at, at + bufferSize))
          yield* client.end
        }))
        const seen = yield* stalled("bytes the handler saw", () => state.seen)
        assert.isAtMost(seen, 4 * bufferSize)
        assert.isTrue(writing.pollUnsafe() === undefined)
        const reply = yield* within(readAll(client))
        yield* within(Fiber.join(writing))
        assert.isTrue(Exit.isSuccess(yield* within(Fiber.await(pumping))))
        assert.isTrue(reply.equals(payload))
      }))
  })

  it.live("idle timeout: a silent client fails the pump with IdleTimeout", () =>
    Effect.gen(function*() {
      const [client, server] = yield* nodePair(loopback, { idleTimeout: "200 millis" })
      const { handler } = counting()
      const t0 = Date.now()
      const error = yield* within(Effect.flip(Socket.pump(server, handler)))
      assert.strictEqual(error._tag, "IdleTimeout")
      assert.isAtLeast(Date.now() - t0, 150)
      // The server destroyed the socket: the client sees EOF.
      assert.strictEqual((yield* within(readAll(client))).length, 0)
    }))
})
