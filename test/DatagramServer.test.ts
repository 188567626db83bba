import { assert, describe, it } from "@effect/vitest"
import * as Console from "effect/Console"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as References from "effect/References"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as Datagram from "../src/Datagram.js"
import * as DatagramServer from "../src/DatagramServer.js"
import { upperBytes } from "../src/internal/bytes.js"
import { assertOptionDefect, defectOf } from "./helpers/defects.js"
import { eventually } from "./helpers/sockets.js"
import { captureLogs } from "./reliability/harness.js"
import { capturingConsole } from "./helpers/console.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (s: string) => encoder.encode(s)
const v4 = Address.tcp("127.0.0.1", 0)
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

const within = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, duration: Duration.Input = "5 seconds") =>
  Effect.timeoutOrElse(effect, { duration, orElse: () => Effect.fail(new Error(`timed out waiting for ${what}`)) })

const upper = DatagramServer.layerTest({ handler: (d) => Effect.succeed(upperBytes(d.payload)) })

const serverAddress = Effect.map(DatagramServer.DatagramServer, (s) => s.address)

/**
 * Generous, so that a slow machine does not cause a retry: a retry's second
 * reply could be taken for the next request's (UDP replies carry no id).
 */
const patient = {
  timeout: "1 second",
  schedule: Schedule.max([Schedule.spaced("10 millis"), Schedule.recurs(4)])
} as const

describe("bytes", () => {
  it("upperBytes upper-cases exactly a-z, like Python's bytes.upper(), on every byte value", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    const out = upperBytes(all)
    for (let b = 0; b < 256; b++) {
      assert.strictEqual(out[b], b >= 0x61 && b <= 0x7a ? b - 0x20 : b, `byte ${b}`)
    }
    assert.notStrictEqual(out, all)
    assert.strictEqual(all[0x61], 0x61, "the input is left alone")
    assert.strictEqual(decoder.decode(upperBytes(bytes("héllo wörld\u0000!"))), "HéLLO WöRLD\u0000!")
    assert.strictEqual(upperBytes(new Uint8Array(0)).length, 0)
  })
})

describe("DatagramServer", () => {
  it.live("the upper server answers 1,000 datagrams from 10 concurrent clients, every reply correct", () =>
    Effect.gen(function*() {
      const address = yield* serverAddress
      const started = performance.now()
      const mismatches = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, c) => c),
        (c) =>
          Effect.scoped(Effect.gen(function*() {
            const client = yield* DatagramServer.client(address, patient)
            const wrong: Array<string> = []
            for (let i = 0; i < 100; i++) {
              // Mixed case, UTF-8 and a NUL: only a-z may change.
              const request = `client ${c} request ${i}: mixed Case ü \u0000 end`
              const reply = decoder.decode(yield* client.request(bytes(request)))
              if (reply !== request.replace(/[a-z]/g, (ch) => ch.toUpperCase())) wrong.push(`${request} -> ${reply}`)
            }
            return wrong
          })),
        { concurrency: "unbounded" }
      )
      const elapsed = performance.now() - started
      assert.deepStrictEqual(mismatches.flat(), [])
      const stats = yield* Effect.flatMap(DatagramServer.DatagramServer, (s) => s.stats)
      // Retries after a lost datagram would only add to these.
      assert.isAtLeast(stats.received, 1000)
      assert.isAtLeast(stats.replied, 1000)
      assert.strictEqual(stats.failed, 0)
      assert.isBelow(elapsed, 10_000)
    }).pipe(Effect.provide(upper)))

  it.live("a handler's reply: bytes, Option.some, an empty datagram, or none at all", () =>
    Effect.gen(function*() {
      const address = yield* serverAddress
      const ask = (s: string) => DatagramServer.request(bytes(s), address, patient)
      assert.strictEqual(decoder.decode(yield* within("bytes", ask("bytes"))), "plain")
      assert.strictEqual(decoder.decode(yield* within("some", ask("some"))), "optional")
      assert.strictEqual((yield* within("empty", ask("empty"))).length, 0)
      const quiet = yield* Effect.flip(
        DatagramServer.request(bytes("quiet"), address, { timeout: "50 millis", schedule: Schedule.recurs(0) })
      )
      assert.strictEqual(quiet._tag, "RequestTimeout")
    }).pipe(Effect.provide(DatagramServer.layerTest({
      handler: (d): Effect.Effect<DatagramServer.Reply> => {
        switch (decoder.decode(d.payload)) {
          case "bytes":
            return Effect.succeed(bytes("plain"))
          case "some":
            return Effect.succeed(Option.some(bytes("optional")))
          case "empty":
            return Effect.succeed(new Uint8Array(0))
          default:
            return Effect.succeed(Option.none())
        }
      }
    }))))

  it.live("handler failures and defects are logged with the peer and never stop the server", () => {
    const logs: Array<{ message: string; peer: unknown }> = []
    const capture = Logger.layer([
      Logger.make(({ fiber, message }) => {
        logs.push({
          // A log call's arguments arrive as an array.
          message: Array.isArray(message) ? message.join(" ") : String(message),
          peer: fiber.getRef(References.CurrentLogAnnotations)["peer"]
        })
      })
    ])
    return Effect.gen(function*() {
      const address = yield* serverAddress
      const client = yield* DatagramServer.client(address, { timeout: "50 millis", schedule: Schedule.recurs(0) })
      assert.strictEqual((yield* Effect.flip(client.request(bytes("fail"))))._tag, "RequestTimeout")
      assert.strictEqual((yield* Effect.flip(client.request(bytes("die"))))._tag, "RequestTimeout")
      assert.strictEqual(decoder.decode(yield* within("a reply", client.request(bytes("ok"), patient))), "OK")
      const stats = yield* Effect.flatMap(DatagramServer.DatagramServer, (s) => s.stats)
      assert.strictEqual(stats.failed, 2)
      assert.strictEqual(logs.length, 2, JSON.stringify(logs))
      for (const { peer } of logs) assert.match(String(peer), /^127\.0\.0\.1:\d+$/)
      assert.include(logs[0]!.message, "handler for a datagram from 127.0.0.1:")
      assert.include(logs[0]!.message, "refusing on purpose")
      assert.include(logs[1]!.message, "boom")
    }).pipe(
      Effect.scoped,
      Effect.provide(DatagramServer.layerTest({
        handler: (d) => {
          const word = decoder.decode(d.payload)
          if (word === "fail") return Effect.fail(new Error("refusing on purpose"))
          if (word === "die") return Effect.die(new Error("boom"))
          return Effect.succeed(upperBytes(d.payload))
        }
      })),
      Effect.provide(capture)
    )
  })

  it.live("handlers run at most `concurrency` at a time", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      let active = 0
      let most = 0
      const layer = DatagramServer.layerTest({
        concurrency: 2,
        handler: (d) =>
          Effect.acquireUseRelease(
            Effect.sync(() => {
              active++
              most = Math.max(most, active)
            }),
            () => Effect.as(Deferred.await(gate), d.payload),
            () => Effect.sync(() => void active--)
          )
      })
      yield* Effect.gen(function*() {
        const address = yield* serverAddress
        const replies = yield* Effect.forkChild(Effect.forEach(
          Array.from({ length: 6 }, (_, i) => i),
          (i) => DatagramServer.request(bytes(String(i)), address, patient),
          { concurrency: "unbounded" }
        ))
        yield* within("two busy handlers", Effect.repeat(Effect.sync(() => active), {
          until: (n) => n === 2,
          schedule: Schedule.spaced("5 millis")
        }))
        yield* Deferred.succeed(gate, void 0)
        const got = yield* within("all replies", Fiber.join(replies))
        assert.deepStrictEqual(got.map((b) => decoder.decode(b)).sort(), ["0", "1", "2", "3", "4", "5"])
        assert.strictEqual(most, 2)
      }).pipe(Effect.provide(layer))
    }))

  it.live("a full receive queue logs ONE warning naming receiveBufferSize and concurrency; nothing is logged below it", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const server = yield* DatagramServer.make({
        address: v4,
        name: "udp-limited",
        concurrency: 1,
        socket: { receiveBufferSize: 2 },
        handler: (d) => Effect.as(Deferred.await(gate), d.payload)
      })
      const sender = yield* Datagram.bind(v4)
      // Below the limit: one datagram in the handler.
      yield* sender.send(bytes("first"), server.address)
      yield* eventually("the first datagram handled", server.stats, (s) => s.received === 1)
      assert.deepStrictEqual(logs.warnings(), [])
      // The handler holds the only permit; a burst overflows the queue of 2.
      yield* Effect.forEach(range(20), (i) => sender.send(bytes(`burst ${i}`), server.address), { discard: true })
      yield* eventually("datagrams dropped", server.stats, (s) => s.dropped >= 10)
      yield* eventually("the warning", Effect.sync(() => logs.warnings().length), (n) => n >= 1)
      yield* Deferred.succeed(gate, void 0)
      // Every datagram of the burst is either handled or dropped (loopback loses none).
      yield* eventually("the burst settled", server.stats, (s) => s.received + s.dropped === 21)
      const warnings = logs.warnings()
      assert.strictEqual(warnings.length, 1, JSON.stringify(logs.lines))
      const line = warnings[0]!.message
      assert.include(line, "udp-limited: the receive queue is full (socket.receiveBufferSize: 2 datagrams)")
      assert.include(line, "concurrency")
      assert.include(line, "dropped")
      assert.include(line, "at most once every 10 seconds")
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  })

  it.live("with Effect's default logger, the server's warnings go to stderr (console.error), the program's lines stay on stdout", () => {
    const { console, err, out } = capturingConsole()
    return Effect.gen(function*() {
      const server = yield* DatagramServer.make({
        address: v4,
        name: "udp-stderr",
        handler: () => Effect.andThen(Effect.log("program output"), Effect.fail("boom"))
      })
      const sender = yield* Datagram.bind(v4)
      yield* sender.send(bytes("x"), server.address)
      yield* eventually("the warning", Effect.sync(() => err.length), (n) => n === 1)
      assert.strictEqual(out.length, 1)
      assert.include(out[0], "program output")
      assert.include(err[0], "WARN")
      assert.include(err[0], "udp-stderr: handler for a datagram from 127.0.0.1:")
    }).pipe(Effect.scoped, Effect.provideService(Console.Console, console))
  })

  it.live("binding a used port fails the layer with AddressInUse", () =>
    Effect.gen(function*() {
      const taken = yield* Datagram.bind(v4)
      const error = yield* Effect.flip(Effect.scoped(Effect.provide(
        serverAddress,
        DatagramServer.layer({ address: taken.address, handler: (d) => Effect.succeed(d.payload) })
      )))
      assert.strictEqual(error._tag, "AddressInUse")
    }))
})

describe("request", () => {
  it.live("recovers when the first datagram is lost: the retry gets the reply", () =>
    Effect.gen(function*() {
      const address = yield* serverAddress
      const reply = yield* within(
        "the reply",
        DatagramServer.request(bytes("second time lucky"), address, { timeout: "100 millis" })
      )
      assert.strictEqual(decoder.decode(reply), "SECOND TIME LUCKY")
      const stats = yield* Effect.flatMap(DatagramServer.DatagramServer, (s) => s.stats)
      assert.strictEqual(stats.received, 2)
      assert.strictEqual(stats.replied, 1)
    }).pipe(Effect.provide(DatagramServer.layerTest({
      handler: (() => {
        let seen = 0
        // Lose the first datagram, as the network might.
        return (d: Datagram.Datagram) => Effect.sync(() => (++seen === 1 ? undefined : upperBytes(d.payload)))
      })()
    }))))

  it.live("fails with RequestTimeout after the schedule's last try when nobody answers", () =>
    Effect.gen(function*() {
      const silent = yield* Datagram.bind(v4)
      const error = yield* Effect.flip(DatagramServer.request(bytes("hello?"), silent.address, {
        timeout: "50 millis",
        schedule: Schedule.max([Schedule.spaced("10 millis"), Schedule.recurs(2)])
      }))
      assert.strictEqual(error._tag, "RequestTimeout")
      if (error._tag !== "RequestTimeout") return
      assert.strictEqual(error.attempts, 3)
      assert.strictEqual(Address.format(error.address), Address.format(silent.address))
      assert.include(error.message, `no reply from ${Address.format(silent.address)} after 3 attempt(s) of 50ms each`)
      const heard = yield* within("the attempts", Stream.runCollect(Stream.take(silent.reads, 3)))
      assert.deepStrictEqual(Array.from(heard, (d) => decoder.decode(d.payload)), ["hello?", "hello?", "hello?"])
    }))

  it.live("the default schedule makes 4 attempts, 100, 200 and 400 ms apart", () =>
    Effect.gen(function*() {
      const silent = yield* Datagram.bind(v4)
      const started = performance.now()
      const error = yield* Effect.flip(DatagramServer.request(bytes("x"), silent.address, { timeout: "20 millis" }))
      const elapsed = performance.now() - started
      assert.strictEqual(error._tag === "RequestTimeout" && error.attempts, 4)
      // 4 waits of 20 ms and pauses of 100 + 200 + 400 ms.
      assert.isAtLeast(elapsed, 780)
      assert.isBelow(elapsed, 3_000)
    }))

  it.live("a stale reply to an earlier request is not taken for the next one's", () =>
    Effect.gen(function*() {
      const server = yield* Datagram.bind(v4)
      const client = yield* DatagramServer.client(server.address, patient)
      const first = yield* Effect.forkChild(client.request(bytes("one")))
      const [one] = yield* within("request one", Stream.runCollect(Stream.take(server.reads, 1)))
      // Answer twice: the second copy is stale by the time "two" is asked.
      // Sent in one batch, both copies are read in the same event-loop turn,
      // so the copy is queued by the time request one completes.
      yield* server.sendAll([{ payload: bytes("reply one"), to: one!.from }, { payload: bytes("reply one"), to: one!.from }])
      assert.strictEqual(decoder.decode(yield* within("reply one", Fiber.join(first))), "reply one")
      const second = yield* Effect.forkChild(client.request(bytes("two")))
      const [two] = yield* within("request two", Stream.runCollect(Stream.take(server.reads, 1)))
      assert.strictEqual(decoder.decode(two!.payload), "two")
      yield* server.send(bytes("reply two"), two!.from)
      assert.strictEqual(decoder.decode(yield* within("reply two", Fiber.join(second))), "reply two")
    }))

  describe("a late reply to a retried request never answers the next one", () => {
    // The handler takes 300 ms, the client waits 200 ms and retries once: the
    // first request is answered by its first attempt's reply, and its second
    // attempt's reply arrives while the next request waits. Each reply lands
    // 100 ms inside the attempt that takes it (50 ms at 150/100 failed once on
    // a machine running four test suites at once).
    const ports: Array<number> = []
    const slowEcho = DatagramServer.layerTest({
      handler: (d) => Effect.sync(() => ports.push(d.from.port)).pipe(Effect.andThen(Effect.sleep("300 millis")), Effect.as(d.payload))
    })
    const impatient = { timeout: "200 millis", schedule: Schedule.recurs(1) } as const
    const askTwice = (options: DatagramServer.ClientOptions) =>
      Effect.gen(function*() {
        const address = yield* serverAddress
        for (let run = 0; run < 3; run++) {
          ports.length = 0
          yield* Effect.scoped(Effect.gen(function*() {
            const client = yield* DatagramServer.client(address, options)
            assert.strictEqual(decoder.decode(yield* client.request(bytes("first"))), "first", `run ${run}`)
            assert.strictEqual(decoder.decode(yield* client.request(bytes("second"))), "second", `run ${run}`)
          }))
        }
      })

    it.live("by default: the next request goes out from a fresh socket, where no late reply can reach it (3 runs)", () =>
      askTwice(impatient).pipe(
        Effect.andThen(Effect.sync(() => {
          // "first" twice from one port, then "second" (twice) from another.
          assert.strictEqual(ports.length, 4)
          assert.strictEqual(ports[0], ports[1])
          assert.notStrictEqual(ports[2], ports[0])
          assert.strictEqual(ports[2], ports[3])
        })),
        Effect.provide(slowEcho)
      ))

    it.live("with match: replies that do not match the request are discarded, on one socket (3 runs)", () =>
      askTwice({ ...impatient, match: (request, reply) => Buffer.from(request).equals(reply) }).pipe(
        Effect.andThen(Effect.sync(() => assert.strictEqual(new Set(ports).size, 1))),
        Effect.provide(slowEcho)
      ))
  })

  it.live("a client keeps its socket (one source port) while every request is answered at the first try", () =>
    Effect.gen(function*() {
      const server = yield* Datagram.bind(v4)
      const client = yield* DatagramServer.client(server.address, patient)
      const ports = new Set<number>()
      for (const word of ["a", "b", "c"]) {
        const asked = yield* Effect.forkChild(client.request(bytes(word)))
        const [d] = yield* within(`request ${word}`, Stream.runCollect(Stream.take(server.reads, 1)))
        ports.add(d!.from.port)
        yield* server.send(upperBytes(d!.payload), d!.from)
        assert.strictEqual(decoder.decode(yield* Fiber.join(asked)), word.toUpperCase())
      }
      assert.strictEqual(ports.size, 1)
    }))

  it.live("a UDP address parsed in one step (Address.parseUdp) is what request, client and bind take", () =>
    Effect.gen(function*() {
      const { port } = yield* serverAddress
      const to = yield* Effect.fromResult(Address.parseUdp(`127.0.0.1:${port}`))
      assert.strictEqual(decoder.decode(yield* DatagramServer.request(bytes("one step"), to, patient)), "ONE STEP")
      const client = yield* DatagramServer.client(Address.unsafeParseUdp(`127.0.0.1:${port}`), patient)
      assert.strictEqual(decoder.decode(yield* client.request(bytes("and again"))), "AND AGAIN")
      const socket = yield* Datagram.bind(Address.unsafeParseUdp("[::1]:0"))
      assert.strictEqual(socket.address.host, "::1")
      // A Unix path is no UDP address: a typed InvalidAddress, before anything is sent.
      const error = yield* Effect.flip(Effect.fromResult(Address.parseUdp("unix:/tmp/x.sock")))
      assert.strictEqual(error._tag, "InvalidAddress")
      assert.strictEqual(
        error.message,
        "invalid address \"unix:/tmp/x.sock\": a unix: path is not a UDP address; expected host:port or [ipv6]:port"
      )
    }).pipe(Effect.provide(upper)))

  it.live("a port nobody listens on fails at once with ConnectionRefused, not after the retries", () =>
    Effect.gen(function*() {
      const port = yield* Effect.scoped(Effect.map(Datagram.bind(v4), (s) => s.address.port))
      const error = yield* Effect.flip(DatagramServer.request(bytes("x"), Address.tcp("127.0.0.1", port)))
      assert.strictEqual(error._tag, "ConnectionRefused")
    }))
})

describe("options", () => {
  it.live("concurrency 0 or a fraction is a defect naming the option; nothing is bound", () =>
    Effect.gen(function*() {
      for (const concurrency of [0, 1.5, -1]) {
        const defect = yield* defectOf(
          Effect.scoped(DatagramServer.make({ address: v4, concurrency, handler: () => Effect.void }))
        )
        assertOptionDefect(defect, "DatagramServer: concurrency must be a positive integer")
      }
    }))

  it.live("a request timeout of 0, below 0 or infinite is a defect: a lost datagram must not hang a request", () =>
    Effect.gen(function*() {
      const server = yield* DatagramServer.make({ address: v4, handler: ({ payload }) => Effect.succeed(payload) })
      for (const timeout of [0, -5, Duration.infinity]) {
        const atClient = yield* defectOf(Effect.scoped(DatagramServer.client(server.address, { timeout })))
        assertOptionDefect(atClient, "DatagramServer.client: timeout must be")
        const perRequest = yield* defectOf(Effect.scoped(Effect.flatMap(
          DatagramServer.client(server.address),
          (client) => client.request(bytes("x"), { timeout })
        )))
        assertOptionDefect(perRequest, "DatagramServer.client: timeout must be")
      }
      // A finite timeout above 0 is fine.
      const client = yield* DatagramServer.client(server.address, { timeout: "1 second" })
      assert.strictEqual(new TextDecoder().decode(yield* client.request(bytes("ok"))), "ok")
    }))
})
