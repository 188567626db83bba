import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as Datagram from "../src/Datagram.js"
import * as NetError from "../src/NetError.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (s: string) => encoder.encode(s)
const text = (d: Datagram.Datagram) => decoder.decode(d.payload)

const v4 = Address.tcp("127.0.0.1", 0)
const v6 = Address.tcp("::1", 0)

/** Every wait on the network is bounded: a lost datagram fails the test instead of hanging it. */
const within = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>, duration: Duration.Input = "3 seconds") =>
  Effect.timeoutOrElse(effect, { duration, orElse: () => Effect.fail(new Error(`timed out waiting for ${what}`)) })

const take = (reads: Stream.Stream<Datagram.Datagram, NetError.ReadError>, n: number) =>
  within(`${n} datagram(s)`, Stream.runCollect(Stream.take(reads, n)))

/** Poll a counter until it satisfies `ok`: nothing signals that the kernel handed a datagram to a full queue. */
const eventually = <A>(what: string, effect: Effect.Effect<A>, ok: (a: A) => boolean) =>
  within(what, Effect.repeat(effect, { until: ok, schedule: Schedule.spaced("5 millis") }))

const freePort = (host: string) =>
  Effect.scoped(Effect.map(Datagram.bind(Address.tcp(host, 0)), (s) => s.address.port))

const isRoot = typeof process.getuid === "function" && process.getuid() === 0

describe("Datagram", () => {
  for (const [family, local] of [["IPv4", v4], ["IPv6", v6]] as const) {
    it.live(`round trip over ${family} loopback, the sender's address on each datagram`, () =>
      Effect.gen(function*() {
        const a = yield* Datagram.bind(local)
        const b = yield* Datagram.bind(local)
        assert.notStrictEqual(a.address.port, 0)
        assert.strictEqual(a.address.host, local.host)
        yield* a.send(bytes("hello"), b.address)
        const [got] = yield* take(b.reads, 1)
        assert.strictEqual(text(got!), "hello")
        assert.strictEqual(Address.format(got!.from), Address.format(a.address))
        yield* b.send(bytes("hello back"), got!.from)
        const [reply] = yield* take(a.reads, 1)
        assert.strictEqual(text(reply!), "hello back")
        assert.strictEqual(Address.format(reply!.from), Address.format(b.address))
      }))
  }

  it.live("an empty datagram is sent and received as a datagram", () =>
    Effect.gen(function*() {
      const a = yield* Datagram.bind(v4)
      const b = yield* Datagram.bind(v4)
      yield* a.send(new Uint8Array(0), b.address)
      yield* a.send(bytes("after"), b.address)
      const got = yield* take(b.reads, 2)
      assert.strictEqual(got[0]!.payload.length, 0)
      assert.strictEqual(text(got[1]!), "after")
    }))

  it.live("sendAll sends each payload as its own datagram, in order", () =>
    Effect.gen(function*() {
      const a = yield* Datagram.bind(v4)
      const b = yield* Datagram.bind(v4)
      const words = ["one", "", "three", "four"]
      yield* a.sendAll(words.map((w) => ({ payload: bytes(w), to: b.address })))
      yield* a.sendAll([])
      const got = yield* take(b.reads, 4)
      assert.deepStrictEqual(got.map(text), words)
    }))

  for (const [family, local, limit] of [["IPv4", v4, 65_507], ["IPv6", v6, 65_527]] as const) {
    it.live(`${family}: ${limit} bytes fit in one datagram; ${limit + 1} fail with MessageTooLarge`, () =>
      Effect.gen(function*() {
        const a = yield* Datagram.bind(local)
        const b = yield* Datagram.bind(local)
        const big = new Uint8Array(limit).map((_, i) => i * 7)
        yield* a.send(big, b.address)
        const [got] = yield* take(b.reads, 1)
        assert.strictEqual(got!.payload.length, limit)
        assert.isTrue(Buffer.from(got!.payload).equals(Buffer.from(big)))
        const error = yield* Effect.flip(a.send(new Uint8Array(limit + 1), b.address))
        assert.strictEqual(error._tag, "MessageTooLarge")
        assert.strictEqual(error.code, "EMSGSIZE")
        assert.include(error.message, `${limit + 1} bytes`)
        assert.include(error.message, `at most ${limit} bytes`)
        // The failure is the datagram's alone: the socket still works.
        yield* a.send(bytes("still fine"), b.address)
        assert.strictEqual(text((yield* take(b.reads, 1))[0]!), "still fine")
      }))
  }

  it.live("binding a used port is AddressInUse; with reuseAddress on both it binds", () =>
    Effect.gen(function*() {
      const first = yield* Datagram.bind(v4)
      const error = yield* Effect.flip(Effect.scoped(Datagram.bind(first.address)))
      assert.strictEqual(error._tag, "AddressInUse")
      assert.include(error.message, `address ${Address.format(first.address)} is already in use`)

      const shared = yield* Datagram.bind(v4, { reuseAddress: true })
      const second = yield* Datagram.bind(shared.address, { reuseAddress: true })
      assert.strictEqual(second.address.port, shared.address.port)
    }))

  it.live("binding an address this machine does not have is AddressNotAvailable", () =>
    Effect.gen(function*() {
      // TEST-NET-3: never assigned to a host, and binding sends nothing.
      const error = yield* Effect.flip(Effect.scoped(Datagram.bind(Address.tcp("203.0.113.1", 0))))
      assert.strictEqual(error._tag, "AddressNotAvailable")
    }))

  it.live.skipIf(isRoot)("binding a privileged port without privileges is PermissionDenied", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Datagram.bind(Address.tcp("127.0.0.1", 1))))
      assert.strictEqual(error._tag, "PermissionDenied")
    }))

  it.live("host names: resolved by the lookup; a name that does not resolve is HostNotFound", () =>
    Effect.gen(function*() {
      // A lookup of our own keeps DNS queries off the network; "localhost"
      // below goes through the OS resolver, answered from /etc/hosts.
      const lookup: Datagram.Lookup = (host) =>
        host === "udp-peer.test"
          ? Effect.succeed("127.0.0.1")
          : Effect.fail(new NetError.HostNotFound({ code: "ENOTFOUND", syscall: "getaddrinfo" }))
      const bindError = yield* Effect.flip(Effect.scoped(Datagram.bind(Address.tcp("nowhere.test", 0), { lookup })))
      assert.strictEqual(bindError._tag, "HostNotFound")
      assert.strictEqual(Address.format(bindError.address!), "nowhere.test:0")

      const a = yield* Datagram.bind(v4, { lookup })
      const b = yield* Datagram.bind(Address.tcp("udp-peer.test", 0), { lookup })
      assert.strictEqual(b.address.host, "127.0.0.1")
      yield* a.send(bytes("by name"), Address.tcp("udp-peer.test", b.address.port))
      assert.strictEqual(text((yield* take(b.reads, 1))[0]!), "by name")
      const sendError = yield* Effect.flip(a.send(bytes("x"), Address.tcp("nowhere.test", 9)))
      assert.strictEqual(sendError._tag, "HostNotFound")
      assert.include(sendError.message, "nowhere.test:9")
      const connectError = yield* Effect.flip(Effect.scoped(Datagram.connect(Address.tcp("nowhere.test", 9), { lookup })))
      assert.strictEqual(connectError._tag, "HostNotFound")

      const localhost = yield* Datagram.bind(Address.tcp("localhost", 0))
      assert.isTrue(Address.isLoopback(localhost.address), Address.format(localhost.address))
      const byName = yield* Datagram.connect(Address.tcp("localhost", localhost.address.port))
      assert.strictEqual(Address.format(byName.remoteAddress), Address.format(localhost.address))
      yield* byName.send(bytes("to localhost"))
      assert.strictEqual(text((yield* take(localhost.reads, 1))[0]!), "to localhost")
    }))

  it.live("families: an IPv6 socket reaches IPv4 peers unless ipv6Only; an IPv4 one cannot reach IPv6", () =>
    Effect.gen(function*() {
      const v4socket = yield* Datagram.bind(v4)
      const toV6 = yield* Effect.flip(v4socket.send(bytes("x"), Address.tcp("::1", 9)))
      assert.strictEqual(toV6._tag, "Unknown")
      assert.include(toV6.message, "an IPv4 socket cannot reach the IPv6 address ::1; bind an IPv6 socket")

      // Bound to 127.0.0.1 seen through IPv6: a dual-stack socket that stays on loopback.
      const mapped = yield* Datagram.bind(Address.tcp("::ffff:127.0.0.1", 0))
      yield* mapped.send(bytes("mapped"), v4socket.address)
      const [got] = yield* take(v4socket.reads, 1)
      assert.strictEqual(text(got!), "mapped")
      assert.strictEqual(Address.format(got!.from), `127.0.0.1:${mapped.address.port}`)
      yield* v4socket.send(bytes("back"), got!.from)
      const [back] = yield* take(mapped.reads, 1)
      assert.strictEqual(Address.format(back!.from), `[::ffff:127.0.0.1]:${v4socket.address.port}`)

      const v6only = yield* Datagram.bind(v6, { ipv6Only: true })
      const toV4 = yield* Effect.flip(v6only.send(bytes("x"), v4socket.address))
      assert.include(toV4.message, "an IPv6 socket cannot reach the IPv4 address 127.0.0.1")
    }))

  it.live("socket options apply at bind; an invalid one fails naming the option", () =>
    Effect.gen(function*() {
      const a = yield* Datagram.bind(v4, {
        kernelReceiveBufferBytes: 1 << 18,
        kernelSendBufferBytes: 1 << 18,
        broadcast: true,
        ttl: 32,
        multicastTtl: 0,
        multicastLoopback: true,
        multicastInterface: "127.0.0.1"
      })
      yield* a.send(bytes("configured"), a.address)
      assert.strictEqual(text((yield* take(a.reads, 1))[0]!), "configured")
      const error = yield* Effect.flip(Effect.scoped(Datagram.bind(v4, { ttl: 300 })))
      assert.strictEqual(error._tag, "Unknown")
      assert.include(error.message, "cannot set ttl to 300")
      const exit = yield* Effect.exit(Effect.scoped(Datagram.bind(v4, { receiveBufferSize: 0 })))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
    }))

  it.live("after close: sends fail with BrokenPipe and reads end after what was queued", () =>
    Effect.gen(function*() {
      const a = yield* Datagram.bind(v4)
      const b = yield* Datagram.bind(v4)
      const pull = yield* Stream.toPull(b.reads)
      yield* a.send(bytes("queued"), b.address)
      assert.deepStrictEqual((yield* within("the datagram", pull)).map(text), ["queued"])
      yield* b.close
      yield* b.close
      const rest = yield* within("reads to end", Stream.runCollect(b.reads))
      assert.strictEqual(rest.length, 0)
      const error = yield* Effect.flip(b.send(bytes("x"), a.address))
      assert.strictEqual(error._tag, "BrokenPipe")
      assert.include(error.message, "the socket is closed")
    }))

  describe("receive queue", () => {
    for (const [strategy, survivors] of [["dropping", "0123"], ["sliding", "6789"]] as const) {
      it.live(`${strategy}: a slow reader costs counted drops, not memory; one pull takes the queue`, () =>
        Effect.gen(function*() {
          const sender = yield* Datagram.bind(v4)
          const receiver = yield* Datagram.bind(v4, { receiveBufferSize: 4, overflowStrategy: strategy })
          yield* sender.sendAll(Array.from("0123456789", (c) => ({ payload: bytes(c), to: receiver.address })))
          yield* eventually("6 drops", receiver.dropped, (n) => n >= 6)
          const pull = yield* Stream.toPull(receiver.reads)
          const chunk = yield* within("the queued chunk", pull)
          assert.deepStrictEqual(chunk.map(text).join(""), survivors)
          assert.strictEqual(yield* receiver.dropped, 6)
          // Drained, the queue takes datagrams again.
          yield* sender.send(bytes("x"), receiver.address)
          assert.deepStrictEqual((yield* within("a fresh datagram", pull)).map(text), ["x"])
          assert.strictEqual(yield* receiver.dropped, 6)
        }))
    }

    it.live("a flood into a small queue holds its capacity and counts every other datagram", () =>
      Effect.gen(function*() {
        const sender = yield* Datagram.bind(v4)
        const receiver = yield* Datagram.bind(v4, { receiveBufferSize: 16, overflowStrategy: "sliding" })
        const batches = 20
        for (let batch = 0; batch < batches; batch++) {
          yield* sender.sendAll(
            Array.from({ length: 100 }, (_, i) => ({ payload: bytes(String(batch * 100 + i)), to: receiver.address }))
          )
          // One batch at a time fits the kernel's own buffer, so every drop is ours and counted.
          yield* eventually(`batch ${batch}`, receiver.dropped, (n) => n >= (batch + 1) * 100 - 16)
        }
        const pull = yield* Stream.toPull(receiver.reads)
        const chunk = (yield* within("the queue", pull)).map(text)
        assert.deepStrictEqual(chunk, Array.from({ length: 16 }, (_, i) => String(batches * 100 - 16 + i)))
        assert.strictEqual(yield* receiver.dropped, batches * 100 - 16)
      }))
  })

  describe("connected mode", () => {
    it.live("Datagram.connect: sends need no address and only the peer's datagrams are read", () =>
      Effect.gen(function*() {
        const server = yield* Datagram.bind(v4)
        const intruder = yield* Datagram.bind(v4)
        const client = yield* Datagram.connect(server.address)
        assert.strictEqual(Address.format(client.remoteAddress), Address.format(server.address))
        // Connecting picked the source address: the client reports it, not 0.0.0.0.
        assert.strictEqual(client.address.host, "127.0.0.1")
        yield* client.send(bytes("hi"))
        const [hi] = yield* take(server.reads, 1)
        assert.strictEqual(text(hi!), "hi")
        assert.strictEqual(Address.format(hi!.from), Address.format(client.address))
        yield* intruder.send(bytes("intruder"), client.address)
        yield* server.send(bytes("reply"), hi!.from)
        const [reply] = yield* take(client.reads, 1)
        assert.strictEqual(text(reply!), "reply")
        yield* client.sendAll([bytes("a"), bytes("b")])
        assert.deepStrictEqual((yield* take(server.reads, 2)).map(text), ["a", "b"])
      }))

    it.live("socket.connect: only the peer's datagrams are read, earlier arrivals included", () =>
      Effect.gen(function*() {
        const socket = yield* Datagram.bind(v4)
        const peer = yield* Datagram.bind(v4)
        const other = yield* Datagram.bind(v4)
        yield* other.send(bytes("early"), socket.address)
        const connected = yield* socket.connect(peer.address)
        yield* other.send(bytes("after connect"), socket.address)
        yield* peer.send(bytes("p1"), socket.address)
        // Loopback delivers in order: had either of other's datagrams got through, it would come first.
        const [first] = yield* take(connected.reads, 1)
        assert.strictEqual(text(first!), "p1")
        yield* connected.send(bytes("to peer"))
        yield* socket.send(bytes("same peer, with address"), peer.address)
        const atPeer = yield* take(peer.reads, 2)
        assert.deepStrictEqual(atPeer.map(text), ["to peer", "same peer, with address"])
        assert.strictEqual(Address.format(atPeer[0]!.from), Address.format(socket.address))

        const misuse = yield* Effect.exit(socket.send(bytes("x"), other.address))
        assert.isTrue(Exit.isFailure(misuse) && Cause.hasDies(misuse.cause))
        assert.include(Cause.pretty((misuse as Exit.Failure<never, never>).cause), "is connected to")
        const twice = yield* Effect.exit(socket.connect(other.address))
        assert.isTrue(Exit.isFailure(twice) && Cause.hasDies(twice.cause))
      }))

    it.live("ICMP port unreachable from the peer fails reads with ConnectionRefused", () =>
      Effect.gen(function*() {
        const port = yield* freePort("127.0.0.1")
        const client = yield* Datagram.connect(Address.tcp("127.0.0.1", port))
        yield* client.send(bytes("anyone?"))
        const error = yield* within("the refusal", Effect.flip(Stream.runDrain(client.reads)))
        assert.strictEqual(error._tag, "ConnectionRefused")
        assert.strictEqual(error.code, "ECONNREFUSED")
        assert.strictEqual(Address.format(error.address!), `127.0.0.1:${port}`)
      }))
  })

  describe("multicast on the loopback interface", () => {
    const randomOctet = () => 1 + Math.floor(Math.random() * 250)

    it.live("receives a joined group's datagrams until the membership's scope closes", () =>
      Effect.gen(function*() {
        const group = `239.255.${randomOctet()}.${randomOctet()}`
        // Bound to the group itself: it receives that group's traffic and no unicast.
        const receiver = yield* Datagram.bind(Address.tcp(group, 0), { reuseAddress: true })
        const sender = yield* Datagram.bind(v4, { multicastInterface: "127.0.0.1", multicastTtl: 0 })
        const to = Address.tcp(group, receiver.address.port)

        const first = yield* Scope.make()
        yield* Scope.provide(receiver.joinMulticast({ group, interface: "127.0.0.1" }), first)
        const twice = yield* Effect.flip(Effect.scoped(receiver.joinMulticast({ group, interface: "127.0.0.1" })))
        assert.include(twice.message, "already a member")
        yield* sender.send(bytes("m1"), to)
        const [m1] = yield* take(receiver.reads, 1)
        assert.strictEqual(text(m1!), "m1")
        assert.strictEqual(Address.format(m1!.from), Address.format(sender.address))

        yield* Scope.close(first, Exit.void)
        yield* sender.send(bytes("m2: sent while not a member"), to)
        yield* Scope.provide(receiver.joinMulticast({ group, interface: "127.0.0.1" }), yield* Effect.scope)
        yield* sender.send(bytes("m3"), to)
        // Datagrams arrive in order on loopback: had m2 been delivered, it would come first.
        assert.strictEqual(text((yield* take(receiver.reads, 1))[0]!), "m3")
      }))

    it.live("source-specific membership receives the source's datagrams", () =>
      Effect.gen(function*() {
        const group = `232.${randomOctet()}.${randomOctet()}.${randomOctet()}`
        const receiver = yield* Datagram.bind(Address.tcp(group, 0), { reuseAddress: true })
        const sender = yield* Datagram.bind(v4, { multicastInterface: "127.0.0.1", multicastTtl: 0 })
        yield* receiver.joinMulticast({ group, source: "127.0.0.1", interface: "127.0.0.1" })
        yield* sender.send(bytes("ssm"), Address.tcp(group, receiver.address.port))
        assert.strictEqual(text((yield* take(receiver.reads, 1))[0]!), "ssm")
      }))

    it.live("IPv6 multicast: a send where lo has no IPv6 multicast route is NetworkUnreachable, else delivered", () =>
      Effect.gen(function*() {
        const group = `ff15::${randomOctet().toString(16)}:${randomOctet().toString(16)}`
        const receiver = yield* Datagram.bind(Address.tcp(group, 0), { reuseAddress: true })
        const sender = yield* Datagram.bind(v6, { multicastInterface: "::%lo", multicastTtl: 0 })
        yield* receiver.joinMulticast({ group, interface: "::%lo" })
        const sent = yield* Effect.result(sender.send(bytes("m6"), Address.tcp(group, receiver.address.port)))
        if (Result.isFailure(sent)) {
          // Linux's lo has no MULTICAST flag, so no IPv6 multicast route: the
          // kernel refuses the send with ENETUNREACH, and we say so, typed.
          assert.strictEqual(sent.failure._tag, "NetworkUnreachable")
          return
        }
        assert.strictEqual(text((yield* take(receiver.reads, 1))[0]!), "m6")
      }))
  })

  it.live("isDatagramSocket recognises both views", () =>
    Effect.gen(function*() {
      const a = yield* Datagram.bind(v4)
      const c = yield* Datagram.connect(a.address)
      assert.isTrue(Datagram.isDatagramSocket(a))
      assert.isTrue(Datagram.isDatagramSocket(c))
      assert.isFalse(Datagram.isDatagramSocket({ address: a.address }))
    }))
})
