import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import * as Address from "../src/Address.js"
import * as NetError from "../src/NetError.js"
import { freePort } from "./helpers/sockets.js"

const at = Address.tcp("127.0.0.1", 9000)

/** A Node-style system error. */
const sysError = (code: string, syscall = "connect"): NodeJS.ErrnoException =>
  Object.assign(new Error(`${syscall} ${code}`), { code, syscall, errno: -1 })

const kinds = [
  [NetError.ConnectionRefused, "ConnectionRefused", true],
  [NetError.ConnectionReset, "ConnectionReset", true],
  [NetError.ConnectTimeout, "ConnectTimeout", true],
  [NetError.IdleTimeout, "IdleTimeout", false],
  [NetError.AddressInUse, "AddressInUse", false],
  [NetError.AddressNotAvailable, "AddressNotAvailable", false],
  [NetError.PermissionDenied, "PermissionDenied", false],
  [NetError.PathNotFound, "PathNotFound", false],
  [NetError.HostNotFound, "HostNotFound", false],
  [NetError.HostUnreachable, "HostUnreachable", true],
  [NetError.NetworkUnreachable, "NetworkUnreachable", true],
  [NetError.BrokenPipe, "BrokenPipe", false],
  [NetError.WriteTimeout, "WriteTimeout", false],
  [NetError.MemoryBudgetExceeded, "MemoryBudgetExceeded", false],
  [NetError.MessageTooLarge, "MessageTooLarge", false],
  [NetError.Unknown, "Unknown", false]
] as const

describe("NetError", () => {
  describe("kinds", () => {
    it("each has its own tag and default retryability", () => {
      const tags = new Set<string>()
      for (const [Kind, tag, retryable] of kinds) {
        const error = new Kind({ address: at })
        assert.strictEqual(error._tag, tag)
        assert.strictEqual(error.retryable, retryable, tag)
        assert.isTrue(NetError.isNetError(error), tag)
        tags.add(error._tag)
      }
      assert.strictEqual(tags.size, kinds.length)
    })

    it("messages name the address, the code and the detail", () => {
      assert.strictEqual(
        new NetError.AddressInUse({ address: at, code: "EADDRINUSE" }).message,
        "address 127.0.0.1:9000 is already in use (EADDRINUSE)"
      )
      assert.strictEqual(
        new NetError.ConnectTimeout({ address: Address.tcp("::1", 1), detail: "no connection within 2s" }).message,
        "connecting to [::1]:1 timed out: the host may be down or a firewall may drop packets: no connection within 2s"
      )
      assert.strictEqual(
        new NetError.ConnectionReset().message,
        "connection with the peer was reset by the peer"
      )
      assert.strictEqual(
        new NetError.BrokenPipe({ address: Address.unix("/tmp/s") }).message,
        "cannot write to unix:/tmp/s: the connection is closed"
      )
      assert.strictEqual(
        new NetError.PathNotFound({ address: Address.unix("/no/s"), code: "ENOENT", detail: "the directory /no does not exist" })
          .message,
        "cannot listen on unix:/no/s: the directory /no does not exist (ENOENT)"
      )
      assert.strictEqual(
        new NetError.PathNotFound({ address: Address.unix("/no/s") }).message,
        "cannot listen on unix:/no/s: a directory on its path does not exist"
      )
    })

    it("retryable can be overridden", () => {
      assert.isTrue(new NetError.HostNotFound({ retryable: true }).retryable)
      assert.isFalse(new NetError.ConnectionRefused({ retryable: false }).retryable)
    })

    it.effect("are yieldable and caught by tag", () =>
      Effect.gen(function*() {
        const caught = yield* Effect.fail(new NetError.ConnectionRefused({ address: at })).pipe(
          Effect.catchTag("ConnectionRefused", (e) => Effect.succeed(`retry ${Address.format(e.address!)}`))
        )
        assert.strictEqual(caught, "retry 127.0.0.1:9000")
        const exit = yield* Effect.exit(Effect.gen(function*() {
          return yield* new NetError.IdleTimeout({ address: at })
        }))
        assert.strictEqual(exit._tag, "Failure")
      }))
  })

  describe("fromSystemError", () => {
    it("maps each errno to its kind and keeps code, syscall, address and cause", () => {
      const table: ReadonlyArray<readonly [string, string]> = [
        ["ECONNREFUSED", "ConnectionRefused"],
        ["ECONNRESET", "ConnectionReset"],
        ["ECONNABORTED", "ConnectionReset"],
        ["ETIMEDOUT", "ConnectTimeout"],
        ["EADDRINUSE", "AddressInUse"],
        ["EADDRNOTAVAIL", "AddressNotAvailable"],
        ["EACCES", "PermissionDenied"],
        ["EPERM", "PermissionDenied"],
        ["ENOENT", "PathNotFound"],
        ["ENOTDIR", "PathNotFound"],
        ["ENOTFOUND", "HostNotFound"],
        ["EAI_AGAIN", "HostNotFound"],
        ["EHOSTUNREACH", "HostUnreachable"],
        ["ENETUNREACH", "NetworkUnreachable"],
        ["EPIPE", "BrokenPipe"],
        ["ERR_STREAM_WRITE_AFTER_END", "BrokenPipe"],
        ["ERR_STREAM_DESTROYED", "BrokenPipe"],
        ["EMSGSIZE", "MessageTooLarge"],
        ["EWHATEVER", "Unknown"]
      ]
      for (const [code, tag] of table) {
        const cause = sysError(code, "write")
        const error = NetError.fromSystemError(cause, { address: at })
        assert.strictEqual(error._tag, tag, code)
        assert.strictEqual(error.code, code)
        assert.strictEqual(error.syscall, "write")
        assert.deepStrictEqual(error.address, at)
        assert.strictEqual((error as unknown as { cause: unknown }).cause, cause)
      }
    })

    it("narrows to the phase: a code that cannot happen there becomes Unknown with the code kept", () => {
      const inConnect = NetError.fromSystemError(sysError("EADDRINUSE"), { phase: "connect", address: at })
      assert.strictEqual(inConnect._tag, "Unknown")
      assert.strictEqual(inConnect.code, "EADDRINUSE")
      assert.strictEqual(inConnect.message, "network operation with 127.0.0.1:9000 failed (EADDRINUSE)")
      assert.strictEqual(NetError.fromSystemError(sysError("EPIPE"), { phase: "read" })._tag, "Unknown")
      assert.strictEqual(NetError.fromSystemError(sysError("EPIPE"), { phase: "write" })._tag, "BrokenPipe")
      assert.strictEqual(NetError.fromSystemError(sysError("ECONNREFUSED"), { phase: "listen" })._tag, "Unknown")
      assert.strictEqual(NetError.fromSystemError(sysError("EADDRINUSE"), { phase: "listen" })._tag, "AddressInUse")
      assert.strictEqual(NetError.fromSystemError(sysError("ENOENT"), { phase: "listen" })._tag, "PathNotFound")
      assert.strictEqual(NetError.fromSystemError(sysError("ENOENT"), { phase: "read" })._tag, "Unknown")
      assert.strictEqual(NetError.fromSystemError(sysError("EMSGSIZE"), { phase: "send" })._tag, "MessageTooLarge")
      assert.strictEqual(NetError.fromSystemError(sysError("EMSGSIZE"), { phase: "write" })._tag, "Unknown")
    })

    it("a temporary DNS failure is retryable, a missing name is not", () => {
      assert.isTrue(NetError.fromSystemError(sysError("EAI_AGAIN", "getaddrinfo")).retryable)
      assert.isFalse(NetError.fromSystemError(sysError("ENOTFOUND", "getaddrinfo")).retryable)
    })

    it("uses the message as detail when there is no code, and an explicit detail first", () => {
      const plain = NetError.fromSystemError(new Error("something odd"), { address: at })
      assert.strictEqual(plain._tag, "Unknown")
      assert.strictEqual(plain.message, "network operation with 127.0.0.1:9000 failed: something odd")
      const detailed = NetError.fromSystemError(sysError("EACCES", "listen"), { phase: "listen", address: at, detail: "need root" })
      assert.strictEqual(detailed.message, "permission denied for 127.0.0.1:9000: ports below 1024 and some paths need privileges (EACCES): need root")
      assert.strictEqual(NetError.fromSystemError(undefined)._tag, "Unknown")
      assert.strictEqual(NetError.fromSystemError("a string")._tag, "Unknown")
    })

    it("unpacks a happy-eyeballs AggregateError, preferring the telling inner error", () => {
      const refused = new AggregateError([sysError("ECONNREFUSED"), sysError("ECONNREFUSED")], "all failed")
      assert.strictEqual(NetError.fromSystemError(refused, { phase: "connect" })._tag, "ConnectionRefused")
      const mixed = new AggregateError([sysError("ECONNREFUSED"), sysError("EHOSTUNREACH")])
      const error = NetError.fromSystemError(mixed, { phase: "connect" })
      assert.strictEqual(error._tag, "HostUnreachable")
      assert.strictEqual((error as unknown as { cause: unknown }).cause, mixed)
      assert.strictEqual(NetError.fromSystemError(new AggregateError([]))._tag, "Unknown")
    })

    it.live("maps Node's real error for a refused connection to localhost", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const cause = yield* Effect.callback<unknown>((resume) => {
          const socket = Net.connect({ host: "localhost", port })
          socket.once("error", (e) => resume(Effect.succeed(e)))
          socket.once("connect", () => {
            socket.destroy()
            resume(Effect.succeed(undefined))
          })
        })
        const error = NetError.fromSystemError(cause, { phase: "connect", address: Address.tcp("localhost", port) })
        assert.strictEqual(error._tag, "ConnectionRefused")
        assert.strictEqual(error.code, "ECONNREFUSED")
        assert.strictEqual(error.message, `connection to localhost:${port} refused: is the server running and listening there? (ECONNREFUSED)`)
      }))
  })

  describe("isNetError", () => {
    it("rejects look-alikes", () => {
      assert.isFalse(NetError.isNetError({ _tag: "ConnectionRefused" }))
      assert.isFalse(NetError.isNetError({ _tag: "Other", retryable: true }))
      assert.isFalse(NetError.isNetError(new Error("x")))
      assert.isFalse(NetError.isNetError(null))
      assert.isTrue(NetError.isNetError(NetError.fromSystemError(sysError("EPIPE"))))
    })
  })
})
