import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import * as Address from "../src/Address.js"
import type { ConnectError, WriteError } from "../src/NetError.js"
import * as Server from "../src/Server.js"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import {
  countBytes,
  eventually,
  freePort,
  noAcceptListener,
  openFds,
  pattern,
  readAll,
  serve,
  tempDir
} from "./helpers/sockets.js"

const MiB = 1024 * 1024

const loopback4 = Address.tcp("127.0.0.1", 0)

const echo = (socket: Socket.Socket) => Stream.run(socket.reads, socket.writes)

/** Listen at `address` and echo every connection. */
const echoServer = (address: Address.Address, options?: Socket.ListenOptions) =>
  Effect.gen(function*() {
    const listener = yield* Socket.listen(address, options)
    yield* serve(listener, echo)
    return listener
  })

/** The first accepted socket, handed over through a Deferred. */
const acceptOne = (listener: Socket.Listener) =>
  Effect.gen(function*() {
    const accepted = yield* Deferred.make<Socket.Socket>()
    yield* listener.accept.pipe(
      Stream.take(1),
      Stream.runForEach((socket) => Deferred.succeed(accepted, socket)),
      Effect.forkScoped
    )
    return accepted
  })

/** A connected pair over 127.0.0.1: [client, server side]. */
const pair = (options?: { connect?: Socket.ConnectOptions; listen?: Socket.ListenOptions }) =>
  Effect.gen(function*() {
    const listener = yield* Socket.listen(loopback4, options?.listen)
    const accepted = yield* acceptOne(listener)
    const client = yield* Socket.connect(listener.address, options?.connect)
    const server = yield* Deferred.await(accepted)
    return [client, server, listener] as const
  })

const transports: ReadonlyArray<readonly [string, Effect.Effect<Address.Address, never, Scope.Scope>]> = [
  ["TCP IPv4", Effect.succeed(loopback4)],
  ["TCP IPv6", Effect.succeed(Address.tcp("::1", 0))],
  ["Unix", Effect.map(tempDir, (dir) => Address.unix(Path.join(dir, "echo.sock")))]
]

describe("Socket", () => {
  for (const [name, makeAddress] of transports) {
    describe(name, () => {
      it.live("echoes a round trip", () =>
        Effect.gen(function*() {
          const listener = yield* echoServer(yield* makeAddress)
          const client = yield* Socket.connect(listener.address)
          yield* client.writeAll([Buffer.from("hello, "), Buffer.from("wire")])
          yield* client.end
          const reply = yield* readAll(client)
          assert.strictEqual(reply.toString(), "hello, wire")
        }))

      it.live("a 32 MiB write arrives complete and in order", () =>
        Effect.gen(function*() {
          const listener = yield* Socket.listen(yield* makeAddress)
          const accepted = yield* acceptOne(listener)
          const client = yield* Socket.connect(listener.address)
          const server = yield* Deferred.await(accepted)
          const payload = pattern(32 * MiB)
          const sending = yield* Effect.forkChild(Effect.andThen(client.write(payload), client.end))
          const received = yield* readAll(server)
          yield* Fiber.join(sending)
          assert.strictEqual(received.length, payload.length)
          assert.isTrue(received.equals(payload))
        }))
    })
  }

  describe("addresses", () => {
    it.live("TCP: each end's local address is the other's remote address", () =>
      Effect.gen(function*() {
        const [client, server, listener] = yield* pair()
        assert.deepStrictEqual(client.remoteAddress, listener.address)
        assert.deepStrictEqual(server.localAddress, listener.address)
        assert.deepStrictEqual(server.remoteAddress, client.localAddress)
        assert.strictEqual((client.localAddress as Address.TcpAddress).host, "127.0.0.1")
        assert.isAbove((client.localAddress as Address.TcpAddress).port, 0)
      }))

    it.live("Unix: both ends report the listener's path", () =>
      Effect.gen(function*() {
        const address = Address.unix(Path.join(yield* tempDir, "a.sock"))
        const listener = yield* Socket.listen(address)
        const accepted = yield* acceptOne(listener)
        const client = yield* Socket.connect(address)
        const server = yield* Deferred.await(accepted)
        for (const a of [client.localAddress, client.remoteAddress, server.localAddress, server.remoteAddress]) {
          assert.deepStrictEqual(a, address)
        }
      }))
  })

  describe("Unix socket files", () => {
    it.live("are removed when the listener's scope closes", () =>
      Effect.gen(function*() {
        const path = Path.join(yield* tempDir, "s.sock")
        yield* Effect.scoped(Effect.gen(function*() {
          const listener = yield* Socket.listen(Address.unix(path))
          assert.deepStrictEqual(listener.address, Address.unix(path))
          assert.isTrue(Fs.lstatSync(path).isSocket())
        }))
        assert.isFalse(Fs.existsSync(path))
      }))

    it.live("a stale one (nobody listening) is replaced", () =>
      Effect.gen(function*() {
        const path = Path.join(yield* tempDir, "stale.sock")
        // A socket bound but never listening: connect gets ECONNREFUSED, like a crashed server's file.
        execFileSync("python3", ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path])
        assert.isTrue(Fs.lstatSync(path).isSocket())
        const listener = yield* echoServer(Address.unix(path))
        const client = yield* Socket.connect(listener.address)
        yield* client.write(Buffer.from("alive"))
        yield* client.end
        assert.strictEqual((yield* readAll(client)).toString(), "alive")
      }))

    it.live("a live one is AddressInUse and stays in place", () =>
      Effect.gen(function*() {
        const path = Path.join(yield* tempDir, "live.sock")
        const other = Net.createServer((s) => s.destroy())
        yield* Effect.acquireRelease(
          Effect.callback<void>((resume) => {
            other.listen(path, () => resume(Effect.void))
          }),
          () => Effect.callback<void>((resume) => void other.close(() => resume(Effect.void)))
        )
        const error = yield* Effect.flip(Effect.scoped(Socket.listen(Address.unix(path))))
        assert.strictEqual(error._tag, "AddressInUse")
        assert.include(error.message, `address unix:${path} is already in use (EADDRINUSE)`)
        assert.isTrue(Fs.lstatSync(path).isSocket())
        // The other server still works.
        const probe = yield* Socket.connect(Address.unix(path))
        assert.strictEqual((yield* readAll(probe)).length, 0)
      }))

    it.live("listening in a missing directory is PathNotFound, saying only that", () =>
      Effect.gen(function*() {
        const path = Path.join(yield* tempDir, "no", "such", "dir.sock")
        const error = yield* Effect.flip(Effect.scoped(Socket.listen(Address.unix(path))))
        // libuv reports a missing directory as EACCES: not a question of privileges.
        assert.strictEqual(error._tag, "PathNotFound")
        assert.strictEqual(error.code, "ENOENT")
        assert.strictEqual(
          error.message,
          `cannot listen on unix:${path}: the directory ${Path.dirname(path)} does not exist (ENOENT)`
        )
        assert.notInclude(error.message.toLowerCase(), "permission")
        assert.notInclude(error.message, "EACCES")
      }).pipe(Effect.scoped))

    it.live("listening under a path whose directory is a file is PathNotFound naming that file", () =>
      Effect.gen(function*() {
        const file = Path.join(yield* tempDir, "a-file")
        Fs.writeFileSync(file, "")
        const path = Path.join(file, "x.sock")
        const error = yield* Effect.flip(Effect.scoped(Socket.listen(Address.unix(path))))
        assert.strictEqual(error._tag, "PathNotFound")
        assert.strictEqual(error.code, "ENOTDIR")
        assert.strictEqual(error.message, `cannot listen on unix:${path}: ${file} is not a directory (ENOTDIR)`)
      }).pipe(Effect.scoped))

    it.live("a file that is not a socket is an error and is never deleted", () =>
      Effect.gen(function*() {
        const path = Path.join(yield* tempDir, "not-a-socket")
        Fs.writeFileSync(path, "precious")
        const error = yield* Effect.flip(Effect.scoped(Socket.listen(Address.unix(path))))
        assert.strictEqual(error._tag, "AddressInUse")
        assert.include(error.message, "exists and is not a socket")
        assert.strictEqual(Fs.readFileSync(path, "utf8"), "precious")
      }))
  })

  describe("connect", () => {
    it.live("to a closed port fails with ConnectionRefused", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const error = yield* Effect.flip(Effect.scoped(Socket.connect(Address.tcp("127.0.0.1", port))))
        assert.strictEqual(error._tag, "ConnectionRefused")
        assert.strictEqual(error.code, "ECONNREFUSED")
        assert.isTrue(error.retryable)
        assert.include(error.message, `connection to 127.0.0.1:${port} refused`)
      }))

    it.live("to a Unix path without a socket file fails with ConnectionRefused", () =>
      Effect.gen(function*() {
        const path = Path.join(yield* tempDir, "nobody.sock")
        const error = yield* Effect.flip(Effect.scoped(Socket.connect(Address.unix(path))))
        assert.strictEqual(error._tag, "ConnectionRefused")
        assert.strictEqual(error.code, "ENOENT")
        assert.include(error.message, "no socket file exists at this path")
      }).pipe(Effect.scoped))

    it.live("fails with ConnectTimeout when the peer's backlog is full", () =>
      Effect.gen(function*() {
        const address = yield* noAcceptListener
        // The first connects fill the backlog of a listener that never accepts;
        // then the kernel drops SYNs and a connect hangs until our timeout.
        let outcome: Exit.Exit<Socket.Socket, ConnectError> | undefined
        const started = Date.now()
        let elapsed = 0
        for (let i = 0; i < 5; i++) {
          const t0 = Date.now()
          outcome = yield* Effect.exit(Socket.connect(address, { timeout: "300 millis" }))
          elapsed = Date.now() - t0
          if (Exit.isFailure(outcome)) break
        }
        assert.isDefined(outcome)
        assert.isTrue(Exit.isFailure(outcome!), "some connect should have timed out")
        const error = yield* Effect.flip(outcome!)
        assert.strictEqual(error._tag, "ConnectTimeout")
        assert.include(error.message, `connecting to ${Address.format(address)} timed out`)
        assert.isAtLeast(elapsed, 250)
        assert.isBelow(Date.now() - started, 5_000)
      }))
  })

  describe("listen", () => {
    it.live("on a port in use fails with AddressInUse", () =>
      Effect.gen(function*() {
        const first = yield* Socket.listen(loopback4)
        const port = (first.address as Address.TcpAddress).port
        const error = yield* Effect.flip(Effect.scoped(Socket.listen(first.address)))
        assert.strictEqual(error._tag, "AddressInUse")
        assert.strictEqual(error.message, `address 127.0.0.1:${port} is already in use (EADDRINUSE)`)
      }))

    it.live("resolves port 0 to the bound port", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback4)
        assert.strictEqual(listener.address._tag, "TcpAddress")
        assert.isAbove((listener.address as Address.TcpAddress).port, 0)
      }))

    it.live("bounds the accept queue and counts the connections it refuses", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback4, { acceptQueueSize: 2 })
        // Nobody pulls `accept`: two connections wait, the next three are closed at once.
        const clients: Array<Socket.Socket> = []
        for (let i = 0; i < 5; i++) clients.push(yield* Socket.connect(listener.address))
        const endings = yield* Effect.forEach(
          clients.slice(2),
          (client) => readAll(client).pipe(Effect.timeout("5 seconds"))
        )
        assert.deepStrictEqual(endings.map((b) => b.length), [0, 0, 0])
        assert.strictEqual(yield* listener.refused, 3)
        assert.strictEqual(yield* listener.connections, 2)
        // The two queued ones are real, live connections.
        const waiting = yield* listener.accept.pipe(Stream.take(2), Stream.runCollect)
        for (const [i, server] of waiting.entries()) {
          yield* server.write(Buffer.from(`you are ${i}`))
          yield* server.end
          assert.strictEqual((yield* readAll(clients[i]!)).toString(), `you are ${i}`)
        }
      }))

    it.live("closing the listener's scope closes every accepted socket", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const listener = yield* Scope.provide(Socket.listen(loopback4), scope)
        const accepted = yield* Scope.provide(acceptOne(listener), scope)
        const client = yield* Socket.connect(listener.address)
        const server = yield* Deferred.await(accepted)
        assert.strictEqual(yield* listener.connections, 1)
        const pending = yield* Effect.forkChild(readAll(client))
        yield* Scope.close(scope, Exit.void)
        const exit = yield* Fiber.await(pending).pipe(Effect.timeout("5 seconds"))
        // Destroyed without a goodbye: the client sees EOF.
        assert.isTrue(Exit.isSuccess(exit))
        assert.strictEqual(yield* listener.connections, 0)
        const error = yield* Effect.flip(server.write(Buffer.from("x")))
        assert.strictEqual(error._tag, "BrokenPipe")
        // And nothing listens any more.
        const refused = yield* Effect.flip(Effect.scoped(Socket.connect(listener.address)))
        assert.strictEqual(refused._tag, "ConnectionRefused")
      }))

    it.live("stopAccepting ends accept but leaves open connections alone", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback4)
        const accepted = yield* acceptOne(listener)
        const client = yield* Socket.connect(listener.address)
        const server = yield* Deferred.await(accepted)
        yield* listener.stopAccepting
        yield* listener.stopAccepting
        assert.strictEqual((yield* Stream.runCollect(listener.accept)).length, 0)
        const refused = yield* Effect.flip(Effect.scoped(Socket.connect(listener.address)))
        assert.strictEqual(refused._tag, "ConnectionRefused")
        yield* client.write(Buffer.from("still here"))
        yield* client.end
        assert.strictEqual((yield* readAll(server)).toString(), "still here")
        assert.strictEqual(yield* listener.connections, 1)
      }))
  })

  describe("reads", () => {
    it.live("re-running continues where the last run stopped; after EOF it is empty", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        yield* client.write(Buffer.from("abc"))
        const first = yield* server.reads.pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(Buffer.concat(first).toString(), "abc")
        yield* client.write(Buffer.from("def"))
        yield* client.end
        assert.strictEqual((yield* readAll(server)).toString(), "def")
        assert.strictEqual((yield* readAll(server)).length, 0)
      }))

    it.live("an interrupted read loses no data", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        const waiting = yield* Effect.forkChild(Stream.runCollect(server.reads))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(waiting)
        yield* client.write(Buffer.from("kept"))
        yield* client.end
        assert.strictEqual((yield* readAll(server)).toString(), "kept")
      }))

    it.live("two fibers pulling at once is a defect, not a hang", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        const first = yield* Effect.forkChild(readAll(server))
        yield* Effect.yieldNow
        const second = yield* Effect.exit(readAll(server))
        assert.isTrue(Exit.isFailure(second) && Cause.hasDies(second.cause))
        yield* client.write(Buffer.from("for the first"))
        yield* client.end
        assert.strictEqual((yield* Fiber.join(first)).toString(), "for the first")
      }))

    it.live("the peer's RST fails reads with ConnectionReset", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        yield* client.write(Buffer.from("hi"))
        const first = yield* server.reads.pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(Buffer.concat(first).toString(), "hi")
        // A read is pending when the RST arrives. (Linux reports an RST that
        // arrives behind unread bytes as those bytes and then EOF.)
        const reading = yield* Effect.forkChild(readAll(server))
        yield* client.reset
        yield* client.reset
        const error = yield* Effect.flip(Fiber.join(reading))
        assert.strictEqual(error._tag, "ConnectionReset")
        assert.strictEqual(error.code, "ECONNRESET")
        assert.include(error.message, "was reset by the peer")
      }))

    it.live("a half-closed side still reads the whole reply", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback4)
        // The server reads to EOF first, then answers: it writes after the peer's FIN.
        yield* serve(listener, (socket) =>
          Effect.gen(function*() {
            const request = yield* countBytes(socket)
            yield* socket.write(pattern(4 * MiB))
            yield* socket.write(Buffer.from(`|${request}`))
            yield* socket.end
          }))
        const client = yield* Socket.connect(listener.address)
        yield* client.write(pattern(1000))
        yield* client.end
        const reply = yield* readAll(client)
        assert.strictEqual(reply.length, 4 * MiB + 5)
        assert.isTrue(reply.subarray(0, 4 * MiB).equals(pattern(4 * MiB)))
        assert.strictEqual(reply.subarray(4 * MiB).toString(), "|1000")
      }))

    it.live("a reader that does not pull holds the writer back with bounded memory", () =>
      Effect.gen(function*() {
        const total = 256 * MiB
        const block = pattern(64 * 1024)
        const [writer, reader] = yield* pair()
        // One pull, so the reader is flowing; then it stops pulling.
        yield* writer.write(Buffer.from("hello"))
        const first = yield* reader.reads.pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(Buffer.concat(first).toString(), "hello")
        const before = process.memoryUsage()
        let sent = 0
        const writing = yield* Effect.forkChild(Effect.gen(function*() {
          while (sent < total) {
            yield* writer.write(block)
            sent += block.length
          }
          yield* writer.end
        }))
        // No event says "the writer is blocked": watch its progress stop, bounded in time.
        let last = -1
        let still = 0
        for (let i = 0; i < 200 && still < 5; i++) {
          yield* Effect.sleep("20 millis")
          still = sent === last ? still + 1 : 0
          last = sent
        }
        assert.strictEqual(still, 5, "the writer should have stalled")
        const after = process.memoryUsage()
        // The kernel's socket buffers hold what was sent (about 4 MiB here); the
        // reader buffers at most readBufferSize plus one read; RSS is noisier.
        assert.isBelow(sent, 32 * MiB)
        assert.isBelow(after.arrayBuffers - before.arrayBuffers, 2 * MiB)
        assert.isBelow(after.rss - before.rss, 16 * MiB)
        const rest = yield* countBytes(reader)
        yield* Fiber.join(writing)
        assert.strictEqual(rest, total)
      }), { timeout: 20_000 })
  })

  describe("writes", () => {
    it.live("after end fail with BrokenPipe; end is idempotent", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        yield* client.write(Buffer.from("one"))
        yield* client.end
        yield* client.end
        const error = yield* Effect.flip(client.write(Buffer.from("two")))
        assert.strictEqual(error._tag, "BrokenPipe")
        assert.include(error.message, "cannot write to 127.0.0.1:")
        const batch = yield* Effect.flip(client.writeAll([Buffer.from("a"), Buffer.from("b")]))
        assert.strictEqual(batch._tag, "BrokenPipe")
        // Nothing after the FIN reached the peer, and the peer can still answer.
        assert.strictEqual((yield* readAll(server)).toString(), "one")
        yield* server.write(Buffer.from("answer"))
        yield* server.end
        assert.strictEqual((yield* readAll(client)).toString(), "answer")
      }))

    it.live("to a peer that closed fail with a typed error, and so do later reads", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        yield* server.close
        // The first write may still succeed (the kernel takes it; the peer answers RST).
        let failure: WriteError | undefined
        for (let i = 0; i < 100 && failure === undefined; i++) {
          const exit = yield* Effect.exit(client.write(Buffer.from("anyone there?")))
          if (Exit.isFailure(exit)) failure = yield* Effect.flip(exit)
          else yield* Effect.sleep("10 millis")
        }
        assert.isDefined(failure, "writing to a closed peer should fail")
        assert.oneOf(failure!._tag, ["BrokenPipe", "ConnectionReset"])
        const readFailure = yield* Effect.flip(readAll(client))
        assert.strictEqual(readFailure._tag, "ConnectionReset")
      }))

    it.live("after close fail with BrokenPipe; close and reset are idempotent", () =>
      Effect.gen(function*() {
        const [client] = yield* pair()
        yield* client.close
        yield* client.close
        yield* client.reset
        const error = yield* Effect.flip(client.write(Buffer.from("late")))
        assert.strictEqual(error._tag, "BrokenPipe")
        assert.strictEqual((yield* readAll(client)).length, 0)
      }))

    it.live("close flushes what Node already accepted before releasing the handle", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        // The server does not read yet: the kernel's buffers fill, and the last
        // write's bytes wait in Node's own buffer.
        const block = pattern(256 * 1024)
        let handed = 0
        let blocked = false
        for (let i = 0; i < 512 && !blocked; i++) {
          handed += block.length
          blocked = (yield* client.write(block).pipe(Effect.timeoutOption("100 millis")))._tag === "None"
        }
        assert.isTrue(blocked, "the client's writes should block")
        const closing = yield* Effect.forkChild(client.close)
        // Only now does the server read: close must still be waiting to flush.
        const received = yield* readAll(server)
        yield* Fiber.join(closing)
        assert.strictEqual(received.length, handed)
        assert.isTrue(received.equals(Buffer.concat(Array.from({ length: handed / block.length }, () => block))))
      }))

    it.live("close is bounded when the peer does not read", () =>
      Effect.gen(function*() {
        const [client] = yield* pair({ connect: { closeTimeout: "200 millis" } })
        // Fill the kernel's buffers and Node's until a write waits for a drain that never comes.
        const block = Buffer.alloc(1 * MiB)
        let blocked = false
        for (let i = 0; i < 256 && !blocked; i++) {
          blocked = (yield* client.write(block).pipe(Effect.timeoutOption("100 millis")))._tag === "None"
        }
        assert.isTrue(blocked, "the client's writes should block")
        const t0 = Date.now()
        yield* client.close
        const took = Date.now() - t0
        assert.isAtLeast(took, 150)
        assert.isBelow(took, 2_000)
        const error = yield* Effect.flip(client.write(block))
        assert.strictEqual(error._tag, "BrokenPipe")
      }))

    it.live("writes is a sink that half-closes when the stream ends", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair()
        const parts = Array.from({ length: 100 }, (_, i) => Buffer.from(`${i},`))
        yield* Stream.fromIterable(parts).pipe(Stream.rechunk(7), Stream.run(client.writes))
        assert.strictEqual((yield* readAll(server)).toString(), parts.join(""))
      }))
  })

  describe("idleTimeout", () => {
    it.live("fails pending reads and later writes with IdleTimeout", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair({ connect: { idleTimeout: "150 millis" } })
        const t0 = Date.now()
        const error = yield* Effect.flip(readAll(client)).pipe(Effect.timeout("5 seconds"))
        assert.strictEqual(error._tag, "IdleTimeout")
        assert.include(error.message, "was idle too long and was closed")
        assert.isAtLeast(Date.now() - t0, 100)
        const writeError = yield* Effect.flip(client.write(Buffer.from("late")))
        assert.strictEqual(writeError._tag, "IdleTimeout")
        // The socket was destroyed: the peer sees EOF.
        assert.strictEqual((yield* readAll(server)).length, 0)
      }))

    it.live("traffic keeps the connection alive", () =>
      Effect.gen(function*() {
        const [client, server] = yield* pair({ listen: { idleTimeout: "300 millis" } })
        for (let i = 0; i < 6; i++) {
          yield* Effect.sleep("100 millis")
          yield* client.write(Buffer.from("."))
          yield* server.reads.pipe(Stream.take(1), Stream.runDrain)
        }
        yield* client.end
        assert.strictEqual((yield* readAll(server)).length, 0)
      }))
  })

  describe("options", () => {
    it.live("keepAlive, noDelay and readBufferSize are applied without changing the bytes", () =>
      Effect.gen(function*() {
        const listener = yield* echoServer(loopback4, { keepAlive: "10 seconds", noDelay: false, readBufferSize: 1024 })
        const client = yield* Socket.connect(listener.address, { keepAlive: true, noDelay: false, readBufferSize: 512 })
        const payload = pattern(1 * MiB)
        const sending = yield* Effect.forkChild(Effect.andThen(client.write(payload), client.end))
        const reply = yield* readAll(client)
        yield* Fiber.join(sending)
        assert.isTrue(reply.equals(payload))
      }))

    // node:net sets them on each accepted handle (the listener's acceptOptions), not a call per socket.
    it.live("an accepted socket has the listener's keep-alive (seen by the kernel) and TCP_NODELAY", () =>
      Effect.gen(function*() {
        /** node:net's own record of what it set on the socket (a symbol, as it names it). */
        const noDelayOf = (socket: Socket.Socket): unknown => {
          const raw = (socket as unknown as { readonly raw: Net.Socket }).raw as unknown as Record<symbol, unknown>
          const key = Object.getOwnPropertySymbols(raw).find((k) => k.description === "kSetNoDelay")
          return key === undefined ? undefined : raw[key]
        }
        /** ss's line for the established TCP socket bound to `port` on this side, with its timers. */
        const ssLine = (port: number): string =>
          execFileSync("ss", ["-tnoH", "state", "established", `( sport = :${port} )`], { encoding: "utf8" }).trim()
        const [client, server] = yield* pair({ listen: { keepAlive: "10 seconds" }, connect: { keepAlive: false } })
        assert.strictEqual(noDelayOf(server), true)
        const serverPort = (server.localAddress as Address.TcpAddress).port
        const clientPort = (client.localAddress as Address.TcpAddress).port
        assert.match(ssLine(serverPort), /timer:\(keepalive,/)
        assert.notMatch(ssLine(clientPort), /keepalive/)
        const [, quiet] = yield* pair({ listen: { noDelay: false } })
        assert.notStrictEqual(noDelayOf(quiet), true)
        assert.notMatch(ssLine((quiet.localAddress as Address.TcpAddress).port), /keepalive/)
      }))

    it.live("invalid values are defects that name the option", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback4)
        const exit = yield* Effect.exit(Socket.connect(listener.address, { readBufferSize: 0 }))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
        if (Exit.isFailure(exit)) assert.include(Cause.pretty(exit.cause), "readBufferSize must be a positive integer, got 0")
        const listenExit = yield* Effect.exit(Effect.scoped(Socket.listen(loopback4, { acceptQueueSize: -1 })))
        assert.isTrue(Exit.isFailure(listenExit) && Cause.hasDies(listenExit.cause))
        const forever = yield* Effect.exit(Socket.connect(listener.address, { closeTimeout: Duration.infinity }))
        assert.isTrue(Exit.isFailure(forever) && Cause.hasDies(forever.cause))
        if (Exit.isFailure(forever)) assert.include(Cause.pretty(forever.cause), "closeTimeout must be finite")
      }))
  })

  describe("resources", () => {
    it.live("closing the scope closes the file descriptor (200 cycles)", () =>
      Effect.gen(function*() {
        const listener = yield* Socket.listen(loopback4)
        const done = yield* Deferred.make<void>()
        let served = 0
        yield* serve(listener, (socket) =>
          Effect.ensuring(
            countBytes(socket),
            Effect.andThen(socket.close, Effect.suspend(() => ++served === 200 ? Deferred.succeed(done, void 0) : Effect.void))
          ))
        const before = openFds()
        for (let i = 0; i < 200; i++) {
          yield* Effect.scoped(Effect.flatMap(Socket.connect(listener.address), (s) => s.write(Buffer.from("x"))))
        }
        yield* Deferred.await(done).pipe(Effect.timeout("10 seconds"))
        yield* eventually("accepted sockets still open", listener.connections, (n) => n === 0)
        assert.strictEqual(openFds(), before)
      }))

    // Node's closed socket stays reachable from its handle until a full GC,
    // and a young-generation GC keeps all it reaches: were our wrapper among
    // that, every connection's streams and fiber would be promoted.
    it.live("a closed Node socket lets go of our wrapper, and an event after 'close' is ignored", () =>
      Effect.gen(function*() {
        const owner = Symbol.for("effect-wire/internal/NodeSocket")
        const rawOf = (socket: Socket.Socket) =>
          (socket as unknown as { readonly raw: Net.Socket & Record<symbol, unknown> }).raw
        const [client, server] = yield* pair()
        const raws = [rawOf(client), rawOf(server)] as const
        assert.strictEqual(raws[0][owner], client)
        assert.strictEqual(raws[1][owner], server)
        // Listening before closing: our own 'close' listener, added first, has run when these are told.
        const closed = raws.map((raw) => new Promise<void>((resolve) => raw.once("close", () => resolve())))
        yield* client.close
        yield* server.close
        yield* Effect.promise(() => Promise.all(closed))
        for (const raw of raws) {
          assert.strictEqual(raw[owner], undefined)
          // Our listeners are still there (so no 'error' is ever unhandled), and find no wrapper.
          assert.isTrue(raw.emit("error", new Error("late")))
          raw.emit("data", Buffer.from("late"))
          raw.emit("close")
        }
      }))
  })

})

describe("a peer that resets at once is never reported as our own address", () => {
  const N = 100

  /**
   * `N` clients that connect and reset at once (SO_LINGER 0, then close: what
   * Node's `resetAndDestroy` does); by the time the server accepts, most are
   * gone and Node can no longer name the peer. Resolves with the clients' ports.
   */
  const quickResets = (address: Address.Address) =>
    Effect.promise(() =>
      Promise.all(Array.from({ length: N }, () =>
        new Promise<number | undefined>((resolve) => {
          const { host, port } = address as Address.TcpAddress
          const client = Net.createConnection({ host, port })
          let local: number | undefined
          client.once("connect", () => {
            local = client.localPort
            client.resetAndDestroy()
          })
          client.on("error", () => {})
          client.once("close", () => resolve(local))
        })))
    ).pipe(Effect.map((ports) => new Set(ports.filter((p): p is number => p !== undefined))))

  /** Every log line at every level, with its annotations and cause. */
  const captureAll = () => {
    const lines: Array<string> = []
    const logger = Logger.make(({ cause, fiber, message }) => {
      const annotations = fiber.getRef(References.CurrentLogAnnotations)
      lines.push(`${Array.isArray(message) ? message.join(" ") : String(message)} ${JSON.stringify(annotations)} ${Cause.pretty(cause)}`)
    })
    return {
      lines,
      provide: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        effect.pipe(Effect.provide(Logger.layer([logger])), Effect.provideService(References.MinimumLogLevel, "All"))
    }
  }

  /** Each peer is one of the clients, or says it is unknown. */
  const assertPeers = (listening: Address.Address, clients: ReadonlySet<number>, peers: ReadonlyArray<Address.Address>) => {
    const own = (listening as Address.TcpAddress).port
    for (const peer of peers) {
      const text = Address.format(peer)
      if (text === "unknown peer") continue
      assert.notStrictEqual((peer as Address.TcpAddress).port, own, `the peer ${text} is the listener itself`)
      assert.isTrue(clients.has((peer as Address.TcpAddress).port), `the peer ${text} is none of the clients`)
    }
  }

  /** The servers are named, so their own address has no business in a log line. */
  const assertLogs = (listening: Address.Address, lines: ReadonlyArray<string>) => {
    const own = Address.format(listening)
    for (const line of lines) assert.notInclude(line, own, "a log line names the listener as the peer")
  }

  it.live("Socket.listen: accepted sockets and their errors name the peer or say it is unknown", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback4)
      const peers: Array<Address.Address> = []
      const errors: Array<string> = []
      yield* serve(listener, (socket) =>
        Effect.suspend(() => {
          peers.push(socket.remoteAddress)
          return Stream.runDrain(socket.reads).pipe(Effect.tapError((e) => Effect.sync(() => errors.push(e.message))))
        }))
      const clients = yield* quickResets(listener.address)
      yield* eventually("every connection accepted", Effect.sync(() => peers.length), (n) => n === N)
      yield* eventually("every connection closed", listener.connections, (n) => n === 0)
      assertPeers(listener.address, clients, peers)
      for (const error of errors) assert.notInclude(error, Address.format(listener.address))
    }))

  it.live("Server with a Stream handler (a fiber per connection): remoteAddress, errors and logs", () => {
    const logs = captureAll()
    const peers: Array<Address.Address> = []
    return Effect.gen(function*() {
      const server = yield* Server.Server
      const clients = yield* quickResets(server.address)
      yield* eventually("every connection served", server.stats, (s) => s.accepted === N && s.active === 0)
      assert.strictEqual(peers.length, 2 * N)
      assertPeers(server.address, clients, peers)
      assertLogs(server.address, logs.lines)
    }).pipe(
      Effect.provide(Server.layer({
        address: loopback4,
        name: "quick",
        handler: (socket, connection) =>
          Effect.suspend(() => {
            peers.push(socket.remoteAddress, connection.remoteAddress)
            return Stream.runDrain(socket.reads)
          })
      })),
      logs.provide
    )
  })

  it.live("Echo (a pump in Node's callbacks): logs", () => {
    const logs = captureAll()
    return Effect.gen(function*() {
      const server = yield* Echo.make({ address: loopback4, name: "quick" })
      yield* quickResets(server.address)
      yield* eventually("every connection served", server.stats, (s) => s.accepted === N && s.active === 0)
      assertLogs(server.address, logs.lines)
    }).pipe(Effect.scoped, logs.provide)
  })
})

describe("reads and consumers that stop early", () => {
  it.live("Stream.runHead pulled again and again loses no byte, even when several reads queued up", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(Address.tcp("127.0.0.1", 0))
      const client = yield* Socket.connect(listener.address)
      const server = yield* Stream.runHead(listener.accept).pipe(Effect.map((o) => o._tag === "Some" ? o.value : undefined))
      assert.isDefined(server)
      const pieces = 200
      const expected = pattern(pieces * 100)
      // The writer sends 200 separate writes, a macrotask apart, so the reader's
      // socket sees many separate reads queue up while the reader dawdles.
      yield* Effect.forkScoped(Effect.gen(function*() {
        for (let i = 0; i < pieces; i++) {
          yield* client.write(expected.subarray(i * 100, (i + 1) * 100))
          yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        }
        yield* client.end
      }))
      const received: Array<Uint8Array> = []
      let pulls = 0
      for (; pulls < 10_000; pulls++) {
        const head = yield* Stream.runHead(server!.reads)
        if (head._tag === "None") break
        received.push(head.value)
        // Let more reads queue before the next pull.
        yield* Effect.sleep("2 millis")
      }
      assert.isBelow(pulls, 10_000)
      assert.deepStrictEqual(Buffer.concat(received), expected)
      // Several reads were joined into one element at least once, or the test proved nothing.
      assert.isBelow(received.length, pieces)
    }))
})
