import { assert, describe, it } from "@effect/vitest"
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as NetAddress from "effect/net/NetAddress"
import * as Rpc from "effect/rpc/Rpc"
import * as RpcClient from "effect/rpc/RpcClient"
import * as RpcGroup from "effect/rpc/RpcGroup"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as RpcServer from "effect/rpc/RpcServer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as EffectSocket from "effect/socket/Socket"
import * as SocketServer from "effect/socket/SocketServer"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as PlatformSocket from "../src/PlatformSocket.js"
import * as Socket from "../src/Socket.js"
import * as MemorySocket from "../src/testing/MemorySocket.js"
import { freePort, serve, tempDir } from "./helpers/sockets.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (s: string) => encoder.encode(s)
const text = (chunks: ReadonlyArray<Uint8Array>) => chunks.map((c) => decoder.decode(c)).join("")

class Api extends RpcGroup.make(
  Rpc.make("Upper", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", { payload: { n: Schema.Number }, success: Schema.Number, stream: true })
) {}

class DivisionByZero extends Schema.TaggedError<DivisionByZero>()("DivisionByZero", {
  dividend: Schema.Number,
  message: Schema.String
}) {}

/** The end-to-end group: a unary RPC, a streamed one, and one that fails with a typed error. */
class E2eApi extends RpcGroup.make(
  Rpc.make("Upper", { payload: { text: Schema.String }, success: Schema.String }),
  Rpc.make("Count", { payload: { n: Schema.Number }, success: Schema.Number, stream: true }),
  Rpc.make("Divide", {
    payload: { a: Schema.Number, b: Schema.Number },
    success: Schema.Number,
    error: DivisionByZero
  })
) {}

const e2eHandlers = E2eApi.toLayer({
  Upper: ({ text }) => Effect.succeed(text.toUpperCase()),
  Count: ({ n }) => Stream.range(1, n),
  Divide: ({ a, b }) =>
    b === 0
      ? Effect.fail(new DivisionByZero({ dividend: a, message: `${a} / 0` }))
      : Effect.succeed(a / b)
})

const loopback4 = Address.tcp("127.0.0.1", 0)

/** A connected pair over 127.0.0.1: [client, server side]. */
const pair = Effect.gen(function*() {
  const listener = yield* Socket.listen(loopback4)
  const accepted = yield* Deferred.make<Socket.Socket>()
  yield* listener.accept.pipe(
    Stream.take(1),
    Stream.runForEach((socket) => Deferred.succeed(accepted, socket)),
    Effect.forkScoped
  )
  const client = yield* Socket.connect(listener.address)
  const server = yield* Deferred.await(accepted)
  return [client, server] as const
})

const isClose = (error: EffectSocket.SocketError, code: number) =>
  error.reason._tag === "SocketCloseError" && error.reason.code === code

/** An echo written against `effect/socket` only: pull, write back, until the peer closes. */
const effectEcho = (socket: EffectSocket.Socket) =>
  Effect.scoped(Effect.gen(function*() {
    const writer = yield* socket.writer
    const { pull } = yield* socket.reader
    while (true) yield* writer.writeAll(yield* pull)
  })).pipe(Effect.catchReason("SocketError", "SocketCloseError", () => Effect.void))

/** Everything `pull` yields until it fails: the bytes and the error. */
const pullAll = (pull: EffectSocket.Reader["pull"]) =>
  Effect.gen(function*() {
    const received: Array<Uint8Array> = []
    const error = yield* Effect.flip(Effect.forever(Effect.map(pull, (batch) => {
      for (const chunk of batch) received.push(typeof chunk === "string" ? bytes(chunk) : chunk)
    })))
    return { text: text(received), error }
  })

/**
 * Closes a reader's scope under a pull suspended in another fiber: that pull
 * fails with SocketCloseError 1006, and so does a later one, even with
 * `late` (bytes sent meanwhile) waiting.
 */
const closeUnderPull = (socket: EffectSocket.Socket, late: Effect.Effect<void, unknown>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const { pull } = yield* Scope.provide(socket.reader, scope)
    const reading = yield* Effect.forkChild(pull, { startImmediately: true })
    yield* Effect.yieldNow
    assert.isUndefined(reading.pollUnsafe())
    yield* Scope.close(scope, Exit.void)
    assert.isTrue(isClose(yield* Effect.flip(Fiber.join(reading)), 1006))
    yield* late
    assert.isTrue(isClose(yield* Effect.flip(pull), 1006))
  })

describe("PlatformSocket", () => {
  it.live("an effect/socket echo runs over a real connection", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback4)
      yield* serve(listener, (socket) => effectEcho(PlatformSocket.fromSocket(socket)))
      const client = PlatformSocket.fromSocket(yield* Socket.connect(listener.address))
      // The client side through effect/socket's Channel API, which fails at the peer's EOF.
      const reply = yield* Stream.make("ping ", bytes("pong"), "!").pipe(
        Stream.pipeThroughChannel(EffectSocket.toChannel(client)),
        Stream.catchTag("SocketError", (e) => isClose(e, 1000) ? Stream.empty : Stream.fail(e)),
        Stream.decodeText,
        Stream.mkString
      )
      assert.strictEqual(reply, "ping pong!")
    }))

  it.live("effect/rpc runs over it: a typed RPC server and client on loopback", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback4)
      const handlers = Api.toLayer({
        Upper: ({ text }) => Effect.succeed(text.toUpperCase()),
        Count: ({ n }) => Stream.range(1, n)
      })
      yield* Layer.launch(
        RpcServer.layer(Api).pipe(
          Layer.provide(handlers),
          Layer.provide(RpcServer.layerProtocolSocketServer),
          Layer.provide(RpcSerialization.layerNdjson),
          Layer.provide(Layer.succeed(SocketServer.SocketServer, PlatformSocket.fromListener(listener)))
        )
      ).pipe(Effect.forkScoped)
      // Built in the test's scope: the connection lives as long as the client.
      const protocol = yield* Layer.build(
        RpcClient.layerProtocolSocket().pipe(
          Layer.provide(RpcSerialization.layerNdjson),
          Layer.provide(PlatformSocket.layer(listener.address))
        )
      )
      const client = yield* RpcClient.make(Api).pipe(Effect.provide(protocol))
      assert.strictEqual(yield* client.Upper({ text: "over effect-wire" }), "OVER EFFECT-WIRE")
      const counted = yield* Stream.runCollect(client.Count({ n: 1000 }))
      assert.deepStrictEqual(counted, Array.from({ length: 1000 }, (_, i) => i + 1))
      const replies = yield* Effect.all(
        Array.from({ length: 50 }, (_, i) => client.Upper({ text: `r${i}` })),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(replies, Array.from({ length: 50 }, (_, i) => `R${i}`))
    }), { timeout: 20_000 })

  it.live("read errors surface as SocketError with the typed cause", () =>
    Effect.gen(function*() {
      const [client, server] = yield* pair
      const { pull } = yield* PlatformSocket.fromSocket(server).reader
      const reading = yield* Effect.forkChild(Effect.forever(pull))
      yield* client.reset
      const error = yield* Effect.flip(Fiber.join(reading))
      assert.isTrue(EffectSocket.isSocketError(error))
      assert.strictEqual(error.reason._tag, "SocketReadError")
      assert.strictEqual(
        ((error.reason as EffectSocket.SocketReadError).cause as { _tag: string })._tag,
        "ConnectionReset"
      )
    }))

  describe("the effect/socket contract", () => {
    it.effect("pull yields what was sent, then fails at EOF with SocketCloseError 1000", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const { pull } = yield* PlatformSocket.fromSocket(b).reader
        yield* a.write(bytes("hello "))
        yield* a.writeAll([bytes("world"), bytes("!")])
        yield* a.end
        const { error, text } = yield* pullAll(pull)
        assert.strictEqual(text, "hello world!")
        assert.isTrue(isClose(error, 1000))
        // The end is remembered: pulling again fails the same way.
        assert.isTrue(isClose(yield* Effect.flip(pull), 1000))
      }))

    it.effect("closing the reader's scope fails a suspended pull with SocketCloseError 1006", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        // And every later pull, even with bytes waiting.
        yield* closeUnderPull(PlatformSocket.fromSocket(b), a.write(bytes("late")))
      }))

    it.live(
      "on a Node socket the socket itself fails the suspended pull (no race per pull): 1006 then, later pulls too, and the socket reads on for its next reader",
      () =>
        Effect.gen(function*() {
          const [client, server] = yield* pair
          const socket = PlatformSocket.fromSocket(server)
          // A pull that waits starts no fiber (a race per pull would start two): fiber ids are one counter.
          const nextFiberId = Effect.map(Effect.forkChild(Effect.void), (fiber) => fiber.id)
          yield* Effect.scoped(Effect.gen(function*() {
            const { pull } = yield* socket.reader
            const before = yield* nextFiberId
            const [got] = yield* Effect.all([pull, client.write(bytes("x"))], { concurrency: "unbounded" })
            assert.strictEqual(text(got.map((chunk) => typeof chunk === "string" ? bytes(chunk) : chunk)), "x")
            const after = yield* nextFiberId
            // Effect.all's two fibers and nothing else.
            assert.strictEqual(after - before, 3)
          }))
          // A reader closed while nobody pulls leaves the socket alone: a direct read gets the bytes.
          yield* client.write(bytes("a"))
          assert.strictEqual(text(Array.from(yield* Stream.runCollect(Stream.take(server.reads, 1)))), "a")
          // Another reader of the same connection fails with how the first one ended (1000: none did).
          assert.isTrue(isClose(yield* Effect.flip(Effect.scoped(socket.reader)), 1000))
          // A pull suspended in another fiber fails with 1006 when its reader's scope closes, later
          // pulls too, and they take nothing that arrives meanwhile.
          yield* closeUnderPull(PlatformSocket.fromSocket(server), client.write(bytes("b")))
          // The cut was that reader's only: the socket's next reader gets those bytes.
          assert.strictEqual(text(Array.from(yield* Stream.runCollect(Stream.take(server.reads, 1)))), "b")
        }).pipe(Effect.scoped)
    )

    it.live(
      "on a Node socket, pulls made from several fibers at once take turns: each gets its own bytes, in order, none dies; closing the scope fails those still waiting with 1006",
      () =>
        Effect.gen(function*() {
          const [client, server] = yield* pair
          const scope = yield* Scope.make()
          const { pull } = yield* Scope.provide(PlatformSocket.fromSocket(server).reader, scope)
          const received = (batch: NonEmptyReadonlyArray<Uint8Array | string>) =>
            text(batch.map((chunk) => typeof chunk === "string" ? bytes(chunk) : chunk))
          const first = yield* Effect.forkChild(pull, { startImmediately: true })
          const second = yield* Effect.forkChild(pull, { startImmediately: true })
          const third = yield* Effect.forkChild(pull, { startImmediately: true })
          yield* Effect.yieldNow
          // A pull interrupted while it waits for its turn leaves the turns to the others.
          yield* Fiber.interrupt(third)
          yield* client.write(bytes("a"))
          assert.strictEqual(received(yield* Fiber.join(first)), "a")
          yield* client.write(bytes("b"))
          assert.strictEqual(received(yield* Fiber.join(second)), "b")
          const waiting = yield* Effect.forkChild(pull, { startImmediately: true })
          const queued = yield* Effect.forkChild(pull, { startImmediately: true })
          yield* Effect.yieldNow
          yield* Scope.close(scope, Exit.void)
          assert.isTrue(isClose(yield* Effect.flip(Fiber.join(waiting)), 1006))
          assert.isTrue(isClose(yield* Effect.flip(Fiber.join(queued)), 1006))
          // The socket itself is still readable by its next reader.
          yield* client.write(bytes("c"))
          assert.strictEqual(text(Array.from(yield* Stream.runCollect(Stream.take(server.reads, 1)))), "c")
        }).pipe(Effect.scoped)
    )

    it.effect("one connection: a second reader fails with how the first one ended", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const socket = PlatformSocket.fromSocket(b)
        yield* Effect.scoped(Effect.gen(function*() {
          const { pull } = yield* socket.reader
          yield* a.write(bytes("x"))
          yield* a.reset
          assert.strictEqual((yield* pullAll(pull)).error.reason._tag, "SocketReadError")
        }))
        const again = yield* Effect.flip(Effect.scoped(socket.reader))
        assert.strictEqual(again.reason._tag, "SocketReadError")
        // A connection that ended cleanly fails a second reader with the close.
        const [c, d] = yield* MemorySocket.makePair()
        const clean = PlatformSocket.fromSocket(d)
        yield* c.end
        yield* Effect.scoped(Effect.flatMap(clean.reader, (reader) => Effect.flip(reader.pull)))
        assert.isTrue(isClose(yield* Effect.flip(Effect.scoped(clean.reader)), 1000))
      }))

    it.effect("writer: strings as UTF-8, writeAll as one batch, releasing it half-closes", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const socket = PlatformSocket.fromSocket(a)
        yield* Effect.scoped(Effect.gen(function*() {
          const writer = yield* socket.writer
          yield* writer.write("héllo ")
          yield* writer.writeAll([bytes("wor"), "ld"])
        }))
        // Half-closed: b reads EOF, and can still answer.
        assert.strictEqual(text(yield* Stream.runCollect(b.reads)), "héllo world")
        yield* b.write(bytes("answer"))
        yield* b.end
        const { pull } = yield* socket.reader
        const { error, text: answer } = yield* pullAll(pull)
        assert.strictEqual(answer, "answer")
        assert.isTrue(isClose(error, 1000))
      }))

    it.effect("write errors are SocketWriteError with the typed cause", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        yield* b.close
        const writer = yield* PlatformSocket.fromSocket(a).writer
        const error = yield* Effect.flip(writer.write("x"))
        assert.strictEqual(error.reason._tag, "SocketWriteError")
        assert.strictEqual(((error.reason as EffectSocket.SocketWriteError).cause as { _tag: string })._tag, "BrokenPipe")
      }))

    it.effect("a CloseEvent 1000 closes the connection; any other code resets it", () =>
      Effect.gen(function*() {
        const [a, b] = yield* MemorySocket.makePair()
        const writer = yield* PlatformSocket.fromSocket(a).writer
        yield* writer.write("bye")
        yield* writer.write(new EffectSocket.CloseEvent(1000))
        assert.strictEqual(text(yield* Stream.runCollect(b.reads)), "bye")
        const [c, d] = yield* MemorySocket.makePair()
        const resetting = yield* PlatformSocket.fromSocket(c).writer
        yield* resetting.write(new EffectSocket.CloseEvent(1011, "internal error"))
        assert.strictEqual((yield* Effect.flip(Stream.runDrain(d.reads)))._tag, "ConnectionReset")
      }))

    it.effect("fromListener: the bound address as a NetAddress", () =>
      Effect.gen(function*() {
        const tcp = yield* MemorySocket.listen({ address: Address.tcp("127.0.0.1", 0) })
        const inet = PlatformSocket.fromListener(tcp).address
        assert.isTrue(NetAddress.isInetAddressV4(inet))
        assert.strictEqual(NetAddress.formatSocketAddress(inet), Address.format(tcp.address))
        const v6 = yield* MemorySocket.listen({ address: Address.tcp("::1", 4000) })
        assert.isTrue(NetAddress.isInetAddressV6(PlatformSocket.fromListener(v6).address))
        const unix = yield* MemorySocket.listen({ address: Address.unix("/tmp/ew.sock") })
        const path = PlatformSocket.fromListener(unix).address
        assert.isTrue(NetAddress.isUnixPathAddress(path) && path.path === "/tmp/ew.sock")
      }))

    type Listening = Effect.Effect<{
      readonly listener: Socket.Listener
      readonly connect: () => Effect.Effect<Socket.Socket, unknown, Scope.Scope>
    }, unknown, Scope.Scope>
    const onLoopback: Listening = Effect.map(
      Socket.listen(loopback4),
      (listener) => ({ listener, connect: () => Socket.connect(listener.address) })
    )
    // A Node listener hands connections over in its callbacks; any other is read through `accept`.
    const listeners: ReadonlyArray<readonly [string, Listening]> = [
      ["MemorySocket", Effect.map(MemorySocket.listen(), (listener) => ({ listener, connect: () => listener.connect() }))],
      ["127.0.0.1", onLoopback]
    ]

    for (const [name, listen] of listeners) {
      it.live(`fromListener.run over ${name}: a failing handler is logged, the others go on; sockets close after their handler`, () =>
        Effect.gen(function*() {
          const logged: Array<string> = []
          const logger = Logger.make(({ cause, logLevel, message }) => {
            logged.push(`${logLevel}: ${Array.isArray(message) ? message.join(" ") : String(message)} ${Cause.pretty(cause)}`)
          })
          const { listener, connect } = yield* listen
          yield* PlatformSocket.fromListener(listener).run((socket) =>
            Effect.gen(function*() {
              const { pull } = yield* socket.reader
              const [first] = yield* pull
              if (decoder.decode(first as Uint8Array) === "fail") return yield* Effect.fail("handler failed")
              const writer = yield* socket.writer
              yield* writer.write("served")
            })
          ).pipe(Effect.provide(Logger.layer([logger])), Effect.forkScoped)
          const failing = yield* connect()
          yield* failing.write(bytes("fail"))
          // Closed after the failing handler: EOF.
          assert.strictEqual((yield* Stream.runCollect(failing.reads)).length, 0)
          const served = yield* connect()
          yield* served.write(bytes("hello"))
          assert.strictEqual(text(yield* Stream.runCollect(served.reads)), "served")
          assert.isTrue(
            logged.some((line) =>
              line.startsWith("Warn: connection from 127.0.0.1:") && line.includes("failed") && line.includes("handler failed")
            ),
            logged.join("\n")
          )
        }))
    }

    // As on Effect's own servers; a listener read through `accept` shares its connections between runs instead.
    it.live(
      "fromListener.run over 127.0.0.1: a later run serves until it ends, then the latest earlier one still running serves again; ending a run interrupts its handlers",
      () =>
        Effect.gen(function*() {
          const { listener, connect } = yield* onLoopback
          const server = PlatformSocket.fromListener(listener)
          // Each run answers with its name, then holds the connection until the client ends it.
          const answering = (who: string) => (socket: EffectSocket.Socket) =>
            Effect.gen(function*() {
              const writer = yield* socket.writer
              yield* writer.write(who)
              const { pull } = yield* socket.reader
              while (true) yield* pull
            }).pipe(Effect.catchReason("SocketError", "SocketCloseError", () => Effect.void))
          const answer = Effect.gen(function*() {
            const client = yield* connect()
            const [first] = yield* Stream.runHead(client.reads).pipe(Effect.map((o) => o._tag === "Some" ? [o.value] : []))
            return { client, who: first === undefined ? "" : decoder.decode(first) }
          }).pipe(Effect.timeout("5 seconds"))
          // Started at once: each run takes over before the next connection is made.
          yield* Effect.forkScoped(server.run(answering("first")), { startImmediately: true })
          assert.strictEqual((yield* answer).who, "first")
          const second = yield* Effect.forkScoped(server.run(answering("second")), { startImmediately: true })
          const held = yield* answer
          assert.strictEqual(held.who, "second")
          yield* Fiber.interrupt(second)
          // The second run's handler was interrupted: its connection closed (EOF).
          assert.strictEqual((yield* Stream.runCollect(held.client.reads)).length, 0)
          assert.strictEqual((yield* answer).who, "first")
          // Runs that end out of order: the one in the middle ends first, and when the last ends
          // the first serves again (not the middle one, which takes nothing now).
          const middle = yield* Effect.forkScoped(server.run(answering("middle")), { startImmediately: true })
          const last = yield* Effect.forkScoped(server.run(answering("last")), { startImmediately: true })
          assert.strictEqual((yield* answer).who, "last")
          yield* Fiber.interrupt(middle)
          assert.strictEqual((yield* answer).who, "last")
          yield* Fiber.interrupt(last)
          assert.strictEqual((yield* answer).who, "first")
        })
    )
  })
})

type Transport = Effect.Effect<
  { readonly server: Context.Context<SocketServer.SocketServer>; readonly client: Layer.Layer<EffectSocket.Socket> },
  unknown,
  Scope.Scope
>

const tcpTransport: Transport = Effect.gen(function*() {
  const server = yield* Layer.build(PlatformSocket.layerServer(loopback4))
  const bound = Context.get(server, SocketServer.SocketServer).address
  assert.isTrue(NetAddress.isInetAddressV4(bound))
  const inet = bound as NetAddress.InetAddressV4
  const client = PlatformSocket.layer(Address.tcp(NetAddress.formatHost(inet), inet.port)).pipe(Layer.orDie)
  return { server, client }
})

const memoryTransport: Transport = Effect.gen(function*() {
  const listener = yield* MemorySocket.listen()
  return {
    server: Context.make(SocketServer.SocketServer, PlatformSocket.fromListener(listener)),
    client: Layer.effect(EffectSocket.Socket, Effect.map(listener.connect(), PlatformSocket.fromSocket)).pipe(
      Layer.orDie
    )
  }
})

/** Start the E2eApi server on the transport and return a client of it; both live as long as the scope. */
const e2eClient = (transport: Transport) =>
  Effect.gen(function*() {
    const { client, server } = yield* transport
    yield* Layer.build(
      RpcServer.layer(E2eApi).pipe(
        Layer.provide(e2eHandlers),
        Layer.provide(RpcServer.layerProtocolSocketServer),
        Layer.provide(RpcSerialization.layerNdjson),
        Layer.provide(Layer.succeedContext(server))
      )
    )
    const protocol = yield* Layer.build(
      RpcClient.layerProtocolSocket().pipe(Layer.provide(RpcSerialization.layerNdjson), Layer.provide(client))
    )
    return yield* RpcClient.make(E2eApi).pipe(Effect.provide(protocol))
  })

const e2eSuite = (name: string, transport: Transport) =>
  describe(`effect/rpc end to end over ${name}`, () => {
    it.live("a unary RPC", () =>
      Effect.gen(function*() {
        const client = yield* e2eClient(transport)
        assert.strictEqual(yield* client.Upper({ text: `over ${name}` }), `OVER ${name.toUpperCase()}`)
        const replies = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => client.Upper({ text: `r${i}` })),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(replies, Array.from({ length: 20 }, (_, i) => `R${i}`))
      }), { timeout: 20_000 })

    it.live("a streamed RPC", () =>
      Effect.gen(function*() {
        const client = yield* e2eClient(transport)
        const counted = yield* Stream.runCollect(client.Count({ n: 500 }))
        assert.deepStrictEqual(counted, Array.from({ length: 500 }, (_, i) => i + 1))
        // A consumer that stops early leaves the connection usable.
        assert.deepStrictEqual(yield* Stream.runCollect(Stream.take(client.Count({ n: 1_000_000 }), 3)), [1, 2, 3])
        assert.strictEqual(yield* client.Upper({ text: "still here" }), "STILL HERE")
      }), { timeout: 20_000 })

    it.live("an RPC that fails with a typed error", () =>
      Effect.gen(function*() {
        const client = yield* e2eClient(transport)
        assert.strictEqual(yield* client.Divide({ a: 9, b: 3 }), 3)
        const error = yield* Effect.flip(client.Divide({ a: 1, b: 0 }))
        assert.instanceOf(error, DivisionByZero)
        assert.strictEqual((error as DivisionByZero)._tag, "DivisionByZero")
        assert.strictEqual((error as DivisionByZero).dividend, 1)
        assert.strictEqual(yield* client.Divide({ a: 10, b: 4 }), 2.5)
      }), { timeout: 20_000 })
  })

e2eSuite("TCP loopback", tcpTransport)
e2eSuite("an in-memory MemorySocket listener", memoryTransport)

describe("PlatformSocket.reconnecting", () => {
  it.live("every reader is a new connection; writes made between connections wait for the next", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback4)
      let accepted = 0
      yield* serve(listener, (socket) => {
        accepted++
        return Stream.run(socket.reads, socket.writes)
      })
      const socket = PlatformSocket.reconnecting(listener.address)
      const writer = yield* socket.writer
      const roundTrip = (message: string) =>
        Effect.scoped(Effect.gen(function*() {
          const { pull } = yield* socket.reader
          yield* writer.write(message)
          return decoder.decode((yield* pull)[0] as Uint8Array)
        }))
      assert.strictEqual(yield* roundTrip("one"), "one")
      // No connection now: this write waits for the next reader's connection.
      const waiting = yield* Effect.forkChild(writer.write("two"), { startImmediately: true })
      yield* Effect.yieldNow
      assert.isUndefined(waiting.pollUnsafe())
      const second = yield* Effect.scoped(Effect.gen(function*() {
        const { pull } = yield* socket.reader
        yield* Fiber.join(waiting)
        return decoder.decode((yield* pull)[0] as Uint8Array)
      }))
      assert.strictEqual(second, "two")
      assert.strictEqual(accepted, 2)
    }))

  it.live("a failed connect is a SocketOpenError with our typed ConnectError as its cause", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const socket = PlatformSocket.reconnecting(Address.tcp("127.0.0.1", port))
      const error = yield* Effect.flip(Effect.scoped(socket.reader))
      assert.strictEqual(error.reason._tag, "SocketOpenError")
      const reason = error.reason as EffectSocket.SocketOpenError
      assert.strictEqual(reason.kind, "Unknown")
      assert.strictEqual((reason.cause as { _tag: string })._tag, "ConnectionRefused")
    }))

  it.live("an effect/rpc client over it comes back after its server restarts", () =>
    Effect.gen(function*() {
      const address = Address.unix(`${yield* tempDir}/rpc.sock`)
      const startServer = Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          RpcServer.layer(E2eApi).pipe(
            Layer.provide(e2eHandlers),
            Layer.provide(RpcServer.layerProtocolSocketServer),
            Layer.provide(RpcSerialization.layerNdjson),
            Layer.provide(PlatformSocket.layerServer(address))
          ),
          scope
        )
        return scope
      })
      const first = yield* startServer
      const protocol = yield* Layer.build(
        RpcClient.layerProtocolSocket({ retryPolicy: Schedule.spaced("50 millis") }).pipe(
          Layer.provide(RpcSerialization.layerNdjson),
          Layer.provide(Layer.sync(EffectSocket.Socket, () => PlatformSocket.reconnecting(address)))
        )
      )
      const client = yield* RpcClient.make(E2eApi).pipe(Effect.provide(protocol))
      assert.strictEqual(yield* client.Upper({ text: "before" }), "BEFORE")
      yield* Scope.close(first, Exit.void)
      const second = yield* startServer
      yield* Effect.addFinalizer(() => Scope.close(second, Exit.void))
      // The client reconnects on its retry schedule: ask until it answers, at most 100 times 50 ms.
      const after = yield* client.Upper({ text: "after" }).pipe(
        Effect.retry({ times: 100, schedule: Schedule.spaced("50 millis") })
      )
      assert.strictEqual(after, "AFTER")
    }), { timeout: 20_000 })
})
