/**
 * One end-to-end suite for the built-in byte servers (Echo, Upper), run per
 * server with the answer it must give: through the typed client and through
 * raw bytes on real sockets (TCP IPv4, IPv6, Unix), raw and framed, under
 * concurrency, resets, half-close, shutdown and over UDP.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Path from "node:path"
import * as Address from "../../src/Address.js"
import type * as Datagram from "../../src/Datagram.js"
import type * as DatagramServer from "../../src/DatagramServer.js"
import type * as NetError from "../../src/NetError.js"
import type * as Server from "../../src/Server.js"
import type * as Echo from "../../src/servers/Echo.js"
import * as Socket from "../../src/Socket.js"
import { eventually, pattern, readAll, tempDir } from "./sockets.js"

/** What Echo and Upper have in common. */
export interface ByteServerModule {
  readonly make: (options: Echo.Options) => Effect.Effect<Server.RunningServer, NetError.ListenError, Scope.Scope>
  readonly makeUdp: (
    address: Datagram.UdpAddress,
    options?: Echo.UdpOptions
  ) => Effect.Effect<DatagramServer.RunningDatagramServer, NetError.ListenError, Scope.Scope>
  readonly client: (
    address: Address.Address,
    options?: Echo.ClientOptions
  ) => Effect.Effect<Echo.Client, NetError.ConnectError, Scope.Scope>
  readonly udpClient: typeof Echo.udpClient
}

const MiB = 1024 * 1024
const loopback = Address.tcp("127.0.0.1", 0)

const transports: ReadonlyArray<readonly [string, Effect.Effect<Address.Address, never, Scope.Scope>]> = [
  ["TCP IPv4", Effect.succeed(loopback)],
  ["TCP IPv6", Effect.succeed(Address.tcp("::1", 0))],
  ["Unix", Effect.map(tempDir, (dir) => Address.unix(Path.join(dir, "server.sock")))]
]

/** `| u32 BE length | body |` */
const lengthFrame = (body: Uint8Array): Buffer => {
  const header = Buffer.alloc(4)
  header.writeUInt32BE(body.length)
  return Buffer.concat([header, body])
}

/** Connect, write `chunks` one by one, half-close, and read everything back. */
const exchangeRaw = (address: Address.Address, chunks: ReadonlyArray<Uint8Array>) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* Socket.connect(address)
    const reading = yield* Effect.forkChild(readAll(socket))
    for (const chunk of chunks) yield* socket.write(chunk)
    yield* socket.end
    return yield* Fiber.join(reading)
  }))

export const byteServerSuite = (name: string, module: ByteServerModule, answer: (bytes: Uint8Array) => Uint8Array) => {
  const expect = (bytes: Uint8Array | string): Buffer =>
    Buffer.from(answer(typeof bytes === "string" ? Buffer.from(bytes) : bytes))

  describe(name, () => {
    for (const [transport, makeAddress] of transports) {
      describe(transport, () => {
        it.live("answers raw bytes, then half-closes after the client does", () =>
          Effect.gen(function*() {
            const server = yield* module.make({ address: yield* makeAddress })
            const chunks = [Buffer.from("Hello, "), Buffer.from("wire! "), pattern(70_000)]
            const reply = yield* exchangeRaw(server.address, chunks)
            assert.isTrue(reply.equals(expect(Buffer.concat(chunks))))
          }))

        it.live("answers through the typed client, raw and per frame", () =>
          Effect.gen(function*() {
            const address = yield* makeAddress
            for (const framing of ["raw", "length", "lines"] as const) {
              const server = yield* module.make({ address: addressFor(address, framing), framing })
              const client = yield* module.client(server.address, { framing })
              for (const text of ["hello", "Mixed Case 123", "x"]) {
                const reply = yield* client.request(text)
                assert.isTrue(Buffer.from(reply).equals(expect(text)), `${framing}: ${text}`)
              }
            }
          }))
      })
    }

    it.live("raw: the answer does not depend on how the bytes were chunked", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback })
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
        const input = Buffer.concat([all, Buffer.from("the quick brown fox"), all])
        const whole = yield* exchangeRaw(server.address, [input])
        const oneByOne = yield* exchangeRaw(server.address, Array.from(input, (b) => Buffer.from([b])))
        assert.isTrue(whole.equals(expect(input)))
        assert.isTrue(oneByOne.equals(expect(input)))
      }))

    it.live("length framing: frames in one write, and split across writes, come back as frames", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback, framing: "length" })
        const bodies = [Buffer.from("first"), Buffer.alloc(0), pattern(40_000), Buffer.from("last one")]
        const wire = Buffer.concat(bodies.map(lengthFrame))
        const together = yield* exchangeRaw(server.address, [wire])
        const split = yield* exchangeRaw(server.address, [wire.subarray(0, 3), wire.subarray(3, 7), wire.subarray(7)])
        const expected = Buffer.concat(bodies.map((body) => lengthFrame(expect(body))))
        assert.isTrue(together.equals(expected))
        assert.isTrue(split.equals(expected))
      }))

    it.live("lines framing: each line answered and ended with \\n", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback, framing: "lines" })
        const reply = yield* exchangeRaw(server.address, [Buffer.from("one\r\ntw"), Buffer.from("o\n\nthree\n")])
        assert.isTrue(reply.equals(Buffer.concat(["one\n", "two\n", "\n", "three\n"].map((l) => expect(l)))))
      }))

    it.live("a bad frame ends its connection after the frames before it, and is counted", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback, framing: "length" })
        const tooLarge = Buffer.from([0x7f, 0xff, 0xff, 0xff])
        const reply = yield* exchangeRaw(server.address, [Buffer.concat([lengthFrame(Buffer.from("ok")), tooLarge])])
        assert.isTrue(reply.equals(lengthFrame(expect("ok"))))
        yield* eventually("failed connections", Effect.map(server.stats, (s) => s.failed), (n) => n === 1)
        const client = yield* module.client(server.address, { framing: "length" })
        assert.isTrue(Buffer.from(yield* client.request("still serving")).equals(expect("still serving")))
      }))

    it.live("frameTimeout: a client dribbling a frame is cut at the deadline, which the idle timeout never would", () =>
      Effect.gen(function*() {
        const server = yield* module.make({
          address: loopback,
          framing: "length",
          frameTimeout: "300 millis",
          idleTimeout: "1 second"
        })
        const slow = yield* Socket.connect(server.address)
        const started = Date.now()
        // One byte every 50 ms: the 32 bytes of this frame would take 1.6 s, and bytes keep moving.
        const frame = lengthFrame(pattern(28))
        yield* Effect.forkChild(Effect.ignore(Effect.gen(function*() {
          for (let i = 0; i < frame.length; i++) {
            if (i > 0) yield* Effect.sleep("50 millis")
            yield* slow.write(frame.subarray(i, i + 1))
          }
        })))
        // The server's close: EOF, or a reset when a byte of ours arrived after it.
        const end = yield* Effect.result(readAll(slow))
        const took = Date.now() - started
        if (end._tag === "Success") assert.strictEqual(end.success.length, 0, "no answer to a frame never completed")
        else assert.strictEqual(end.failure._tag, "ConnectionReset")
        assert.isAtLeast(took, 290)
        assert.isBelow(took, 1500)
        yield* eventually("failed connections", Effect.map(server.stats, (s) => s.failed), (n) => n === 1)
        // A client that sends whole frames is served as ever.
        const client = yield* module.client(server.address, { framing: "length" })
        assert.isTrue(Buffer.from(yield* client.request("on time")).equals(expect("on time")))
      }))

    it.live("the client waits for large replies while it is still writing", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback })
        const client = yield* module.client(server.address)
        // Larger than both kernel buffers together: writing first and reading after would stall.
        const payload = pattern(8 * MiB)
        const reply = yield* client.request(payload)
        assert.isTrue(Buffer.from(reply).equals(expect(payload)))
        const framed = yield* module.make({ address: loopback, framing: "length" })
        const framedClient = yield* module.client(framed.address, { framing: "length" })
        assert.isTrue(Buffer.from(yield* framedClient.request(payload)).equals(expect(payload)))
      }))

    it.live("50 concurrent clients each get their own answers", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback, framing: "length" })
        const raw = yield* module.make({ address: loopback })
        const results = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          (i) =>
            Effect.scoped(Effect.gen(function*() {
              const client = yield* module.client(i % 2 === 0 ? server.address : raw.address, {
                framing: i % 2 === 0 ? "length" : "raw"
              })
              for (let round = 0; round < 5; round++) {
                const payload = pattern(100 + i * 37 + round, i * 1000 + round)
                const reply = yield* client.request(payload)
                if (!Buffer.from(reply).equals(expect(payload))) return false
              }
              return true
            })),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(results, Array.from({ length: 50 }, () => true))
        assert.strictEqual((yield* server.stats).accepted + (yield* raw.stats).accepted, 50)
      }))

    it.live("a client that resets mid-stream does not disturb the others", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback })
        const payload = pattern(4 * MiB)
        // A steady client, streaming while the other one connects and aborts.
        const steady = yield* Effect.forkChild(exchangeRaw(server.address, [
          payload.subarray(0, MiB),
          payload.subarray(MiB, 2 * MiB),
          payload.subarray(2 * MiB)
        ]))
        for (let i = 0; i < 3; i++) {
          yield* Effect.scoped(Effect.gen(function*() {
            const rude = yield* Socket.connect(server.address)
            yield* rude.write(pattern(256 * 1024))
            const first = yield* Stream.runHead(rude.reads)
            assert.isTrue(first._tag === "Some" && first.value.length > 0)
            yield* rude.reset
          }))
        }
        const reply = yield* Fiber.join(steady)
        assert.isTrue(reply.equals(expect(payload)))
        const client = yield* module.client(server.address)
        assert.isTrue(Buffer.from(yield* client.request("after")).equals(expect("after")))
      }))

    it.live("a request cut short drops its connection; the next one reconnects", () =>
      Effect.gen(function*() {
        const server = yield* module.make({ address: loopback })
        const client = yield* module.client(server.address)
        // 8 MiB cannot come back within a millisecond: the request is interrupted mid-way.
        const cut = yield* Effect.exit(Effect.timeout(client.request(pattern(8 * MiB)), Duration.millis(1)))
        assert.isTrue(Exit.isFailure(cut))
        assert.isTrue(Buffer.from(yield* client.request("again")).equals(expect("again")))
        yield* eventually("connections accepted", Effect.map(server.stats, (s) => s.accepted), (n) => n === 2)
      }))

    it.live("the client reports a server that closes before replying", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback)
        // Accept, read a little, close.
        yield* listener.accept.pipe(
          Stream.runForEach((socket) => Effect.andThen(Stream.runHead(socket.reads), socket.close)),
          Effect.forkScoped
        )
        const client = yield* module.client(listener.address)
        const error = yield* Effect.flip(client.request("hello"))
        assert.strictEqual(error._tag, "ConnectionClosed")
        assert.include(error.message, "closed the connection")
      }))

    it.live("shutdown ends idle connections at once instead of waiting for the timeout", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Scope.provide(module.make({ address: loopback, shutdownTimeout: "20 seconds" }), scope)
        const outer = yield* Scope.make()
        const client = yield* Scope.provide(Socket.connect(server.address), outer)
        yield* client.write(Buffer.from("hi"))
        const first = yield* Stream.runHead(client.reads)
        assert.isTrue(first._tag === "Some")
        yield* eventually("active connections", Effect.map(server.stats, (s) => s.active), (n) => n === 1)
        const started = Date.now()
        yield* Scope.close(scope, Exit.void)
        const report = yield* server.shutdown
        assert.deepStrictEqual(report, { finished: 1, cut: 0 })
        assert.isBelow(Date.now() - started, 5_000)
        // The client sees the server's half-close.
        const rest = yield* Stream.runCollect(client.reads)
        assert.strictEqual(rest.length, 0)
        yield* Scope.close(outer, Exit.void)
      }))

    it.live("UDP: each datagram is answered to its sender, also binary and empty ones", () =>
      Effect.gen(function*() {
        const server = yield* module.makeUdp(loopback)
        const client = yield* module.udpClient(server.address, { timeout: "500 millis" })
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
        for (const payload of [Buffer.from("hello udp"), all, Buffer.alloc(0)]) {
          const reply = yield* client.request(payload)
          assert.isTrue(Buffer.from(reply).equals(expect(payload)))
        }
        assert.isTrue(Buffer.from(yield* client.request("text")).equals(expect("text")))
        const v6 = yield* module.makeUdp(Address.tcp("::1", 0))
        const v6Client = yield* module.udpClient(v6.address, { timeout: "500 millis" })
        assert.isTrue(Buffer.from(yield* v6Client.request("over v6")).equals(expect("over v6")))
      }))
  })
}

/** A Unix path is taken by the first server; later ones get their own file next to it. */
const addressFor = (address: Address.Address, framing: string): Address.Address =>
  address._tag === "UnixAddress" ? Address.unix(`${address.path}.${framing}`) : address
