import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Hash from "effect/Hash"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as FastCheck from "fast-check"
import * as Address from "../src/Address.js"
import * as AddressSchema from "../src/AddressSchema.js"
import { thrownBy } from "./helpers/defects.js"

const port = FastCheck.integer({ min: 0, max: 65535 })

/** Host names the parser accepts: RFC 1123 labels, not all digits, at most 253 characters. */
const hostName = FastCheck.domain().filter((d) => d.length <= 253)

/** IPv6 literals as `isIP` reads them (fast-check also emits IPv4-embedded forms). */
const ipv6 = FastCheck.ipV6()

/** Unix paths: non-empty, no NUL, at most 107 bytes (sun_path). */
const unixPath = FastCheck.string({ minLength: 1, maxLength: 107, unit: "binary" }).filter((p) =>
  !p.includes("\0") && Buffer.byteLength(p) <= 107
)

const address: FastCheck.Arbitrary<Address.Address> = FastCheck.oneof(
  FastCheck.tuple(FastCheck.ipV4(), port).map(([h, p]) => Address.tcp(h, p)),
  FastCheck.tuple(ipv6, port).map(([h, p]) => Address.tcp(h, p)),
  FastCheck.tuple(hostName, port).map(([h, p]) => Address.tcp(h, p)),
  unixPath.map(Address.unix)
)

/** Valid address strings mixed with arbitrary text, so both sides of the parser are exercised. */
const text = FastCheck.oneof(
  address.map(Address.format),
  FastCheck.string(),
  FastCheck.tuple(FastCheck.string(), FastCheck.string()).map(([a, b]) => `${a}:${b}`),
  FastCheck.tuple(FastCheck.string(), port).map(([a, p]) => `[${a}]:${p}`)
)

const parseOk = (input: string): Address.Address => {
  const result = Address.parse(input)
  if (Result.isFailure(result)) assert.fail(`expected ${JSON.stringify(input)} to parse: ${result.failure.message}`)
  return result.success
}

const parseError = (input: string): Address.InvalidAddress => {
  const result = Address.parse(input)
  if (Result.isSuccess(result)) assert.fail(`expected ${JSON.stringify(input)} not to parse`)
  assert.strictEqual(result.failure._tag, "InvalidAddress")
  assert.strictEqual(result.failure.input, input)
  return result.failure
}

describe("Address", () => {
  describe("parse", () => {
    it("reads host:port, [ipv6]:port and unix:/path", () => {
      assert.deepStrictEqual(parseOk("127.0.0.1:9000"), Address.tcp("127.0.0.1", 9000))
      assert.deepStrictEqual(parseOk("localhost:80"), Address.tcp("localhost", 80))
      assert.deepStrictEqual(parseOk("example.com:0"), Address.tcp("example.com", 0))
      assert.deepStrictEqual(parseOk("[::1]:9000"), Address.tcp("::1", 9000))
      assert.deepStrictEqual(parseOk("[::ffff:127.0.0.1]:65535"), Address.tcp("::ffff:127.0.0.1", 65535))
      assert.deepStrictEqual(parseOk("unix:/tmp/s.sock"), Address.unix("/tmp/s.sock"))
      assert.deepStrictEqual(parseOk("unix:relative.sock"), Address.unix("relative.sock"))
    })

    it("says what is wrong with bad input", () => {
      assert.strictEqual(
        parseError("9000").message,
        "invalid address \"9000\": expected host:port, [ipv6]:port or unix:/path"
      )
      assert.strictEqual(parseError("::1:9000").reason, "an IPv6 address needs brackets: [::1]:9000")
      assert.strictEqual(parseError("[::1]9000").reason, "expected [ipv6]:port")
      assert.strictEqual(parseError("[::1:9000").reason, "expected [ipv6]:port")
      assert.strictEqual(parseError("[localhost]:1").reason, "\"localhost\" is not an IPv6 address")
      assert.include(parseError(":80").reason, "the host is empty")
      assert.strictEqual(parseError("host:http").reason, "port \"http\" is not a decimal number")
      assert.strictEqual(parseError("host:").reason, "port \"\" is not a decimal number")
      assert.strictEqual(parseError("host:080").reason, "port \"080\" is not a decimal number")
      assert.strictEqual(parseError("host:-1").reason, "port \"-1\" is not a decimal number")
      assert.strictEqual(parseError("host:65536").reason, "port 65536 is out of range 0-65535")
      assert.strictEqual(parseError("1.2.3:80").reason, "\"1.2.3\" is neither an IP address nor a host name")
      assert.strictEqual(parseError("-bad-:80").reason, "\"-bad-\" is neither an IP address nor a host name")
      assert.strictEqual(parseError("a b:80").reason, "\"a b\" is neither an IP address nor a host name")
      assert.strictEqual(parseError("unix:").reason, "the unix socket path is empty")
      assert.strictEqual(parseError("unix:/a\0b").reason, "the unix socket path contains NUL")
      assert.strictEqual(
        parseError(`unix:/${"x".repeat(107)}`).reason,
        "the unix socket path is 108 bytes; the limit is 107"
      )
      // The limit counts bytes, not characters.
      assert.include(parseError(`unix:/${"é".repeat(60)}`).reason, "121 bytes")
    })

    it("accepts the longest Unix path that fits sun_path", () => {
      const path = `/${"x".repeat(106)}`
      assert.deepStrictEqual(parseOk(`unix:${path}`), Address.unix(path))
    })

    it.effect("is a Result, so Effect.fromResult yields it in Effect.gen", () =>
      Effect.gen(function*() {
        const a = yield* Effect.fromResult(Address.parse("[::1]:9000"))
        assert.strictEqual(a._tag, "TcpAddress")
        const error = yield* Effect.flip(Effect.fromResult(Address.parse("nope")))
        assert.strictEqual(error._tag, "InvalidAddress")
      }))

    it("parse(format(a)) equals a", () =>
      FastCheck.assert(
        FastCheck.property(address, (a) => {
          assert.deepStrictEqual(parseOk(Address.format(a)), a)
        }),
        { numRuns: 500 }
      ))

    it("format(parse(s)) === s for every string that parses", () =>
      FastCheck.assert(
        FastCheck.property(text, (s) => {
          const result = Address.parse(s)
          if (Result.isSuccess(result)) assert.strictEqual(Address.format(result.success), s)
          else assert.strictEqual(result.failure.input, s)
        }),
        { numRuns: 1000 }
      ))
  })

  describe("parseUdp", () => {
    it("reads what parse reads for host:port and [ipv6]:port, as a TcpAddress (Datagram.UdpAddress)", () =>
      FastCheck.assert(FastCheck.property(text, (input) => {
        const any = Address.parse(input)
        const udp = Address.parseUdp(input)
        if (Result.isSuccess(any) && any.success._tag === "TcpAddress") {
          assert.isTrue(Result.isSuccess(udp))
          assert.deepStrictEqual(Result.getOrThrow(udp), any.success)
        } else {
          assert.isTrue(Result.isFailure(udp))
        }
      })))

    it("rejects a unix: path with an InvalidAddress that says why; unsafeParseUdp throws it", () => {
      const result = Address.parseUdp("unix:/tmp/s.sock")
      assert.isTrue(Result.isFailure(result))
      if (Result.isSuccess(result)) return
      assert.strictEqual(result.failure._tag, "InvalidAddress")
      assert.strictEqual(result.failure.reason, "a unix: path is not a UDP address; expected host:port or [ipv6]:port")
      assert.throws(() => Address.unsafeParseUdp("unix:/tmp/s.sock"), /not a UDP address/)
      const udp: Address.TcpAddress = Address.unsafeParseUdp("[::1]:5300")
      assert.deepStrictEqual(udp, Address.tcp("::1", 5300))
    })
  })

  describe("unsafeParse", () => {
    it("returns the address, or throws on bad input", () => {
      assert.deepStrictEqual(Address.unsafeParse("127.0.0.1:0"), Address.tcp("127.0.0.1", 0))
      assert.throws(() => Address.unsafeParse("nope"))
    })

    // The documented contract: the InvalidAddress itself is thrown, not a generic Error.
    it("throws the InvalidAddress itself, as documented", () => {
      assert.throws(() => Address.unsafeParse("nope"), /invalid address "nope"/)
    })
  })

  describe("format", () => {
    it("brackets IPv6 hosts and prefixes Unix paths", () => {
      assert.strictEqual(Address.format(Address.tcp("127.0.0.1", 80)), "127.0.0.1:80")
      assert.strictEqual(Address.format(Address.tcp("::1", 80)), "[::1]:80")
      assert.strictEqual(Address.format(Address.tcp("example.com", 443)), "example.com:443")
      assert.strictEqual(Address.format(Address.unix("/run/app.sock")), "unix:/run/app.sock")
    })
  })

  describe("constructors", () => {
    it("validate their fields", () => {
      assert.throws(() => Address.tcp("", 80))
      assert.throws(() => Address.tcp("host", 65536))
      assert.throws(() => Address.tcp("host", 1.5))
      assert.throws(() => Address.unix(""))
    })

    it("throw an InvalidAddress that says what is wrong", () => {
      const thrown = (f: () => unknown) => thrownBy(Address.InvalidAddress, f, "expected a throw")
      assert.strictEqual(thrown(() => Address.tcp("", 80)).message, "invalid address \":80\": the host is empty")
      assert.strictEqual(
        thrown(() => Address.tcp("::1", 65536)).message,
        "invalid address \"[::1]:65536\": port 65536 is not an integer in 0-65535"
      )
      assert.strictEqual(thrown(() => Address.tcp("h", -1)).reason, "port -1 is not an integer in 0-65535")
      assert.strictEqual(thrown(() => Address.tcp("h", Number.NaN)).reason, "port NaN is not an integer in 0-65535")
      assert.strictEqual(thrown(() => Address.unix("")).reason, "the unix socket path is empty")
      // Values already known good skip the checks.
      assert.strictEqual(new Address.TcpAddress({ host: "", port: -1 }, { disableChecks: true }).port, -1)
    })

    it("make plain data: equal and hashed by value, the tag first", () => {
      assert.isTrue(Equal.equals(Address.tcp("::1", 80), Address.tcp("::1", 80)))
      assert.isFalse(Equal.equals(Address.tcp("::1", 80), Address.tcp("::1", 81)))
      assert.strictEqual(Hash.hash(Address.unix("/s")), Hash.hash(Address.unix("/s")))
      assert.deepStrictEqual(Object.keys(Address.tcp("h", 1)), ["_tag", "host", "port"])
      assert.strictEqual(JSON.stringify(Address.unix("/s")), "{\"_tag\":\"UnixAddress\",\"path\":\"/s\"}")
      // In a template string, an address reads as `format` writes it.
      assert.strictEqual(`${Address.tcp("::1", 80)} ${Address.unix("/s")} ${Address.unknownPeer}`, "[::1]:80 unix:/s unknown peer")
    })
  })

  describe("schemas", () => {
    it("Address decodes and encodes the tagged union", () => {
      const decoded = Schema.decodeUnknownSync(AddressSchema.Address)({ _tag: "UnixAddress", path: "/tmp/s.sock" })
      assert.deepStrictEqual(decoded, Address.unix("/tmp/s.sock"))
      assert.deepStrictEqual(Schema.encodeSync(AddressSchema.Address)(Address.tcp("::1", 1)), {
        _tag: "TcpAddress",
        host: "::1",
        port: 1
      })
      assert.throws(() => Schema.decodeUnknownSync(AddressSchema.Address)({ _tag: "TcpAddress", host: "h", port: -1 }))
    })

    it("TcpAddress and UnixAddress decode to the classes, check the fields, and tell instances", () => {
      const tcp = Schema.decodeUnknownSync(AddressSchema.TcpAddress)({ _tag: "TcpAddress", host: "::1", port: 9000 })
      assert.instanceOf(tcp, Address.TcpAddress)
      assert.isTrue(Equal.equals(tcp, Address.tcp("::1", 9000)))
      const unix = Schema.decodeUnknownSync(AddressSchema.UnixAddress)({ _tag: "UnixAddress", path: "/s" })
      assert.instanceOf(unix, Address.UnixAddress)
      assert.throws(() => Schema.decodeUnknownSync(AddressSchema.TcpAddress)({ _tag: "TcpAddress", host: "", port: 1 }))
      assert.throws(() => Schema.decodeUnknownSync(AddressSchema.TcpAddress)({ _tag: "TcpAddress", host: "h", port: 1.5 }))
      assert.throws(() => Schema.decodeUnknownSync(AddressSchema.UnixAddress)({ _tag: "UnixAddress", path: "" }))
      assert.throws(() => Schema.decodeUnknownSync(AddressSchema.TcpAddress)({ _tag: "UnixAddress", path: "/s" }))
      assert.isTrue(Schema.is(AddressSchema.TcpAddress)(Address.tcp("h", 1)))
      assert.isFalse(Schema.is(AddressSchema.TcpAddress)({ _tag: "TcpAddress", host: "h", port: 1 }))
      assert.isFalse(Schema.is(AddressSchema.TcpAddress)(Address.unix("/s")))
      assert.isTrue(Schema.is(AddressSchema.Address)(Address.unix("/s")))
      // A message or a config that carries addresses.
      const Config = Schema.Struct({ listen: AddressSchema.FromString, upstream: AddressSchema.Address })
      assert.deepStrictEqual(
        Schema.decodeUnknownSync(Config)({ listen: "127.0.0.1:0", upstream: { _tag: "UnixAddress", path: "/run/up.sock" } }),
        { listen: Address.tcp("127.0.0.1", 0), upstream: Address.unix("/run/up.sock") }
      )
    })

    it.prop("the Schema's arbitraries round-trip through the encoded form and the JSON codec", [AddressSchema.Address], ([a]) => {
      assert.isTrue(Address.isAddress(a))
      assert.isTrue(Equal.equals(Schema.decodeUnknownSync(AddressSchema.Address)(Schema.encodeSync(AddressSchema.Address)(a)), a))
      const json = Schema.toCodecJson(Schema.toType(AddressSchema.Address))
      const encoded = Schema.encodeSync(json)(a)
      assert.deepStrictEqual(JSON.parse(JSON.stringify(encoded)), encoded)
      assert.isTrue(Equal.equals(Schema.decodeUnknownSync(json)(encoded), a))
    })

    it("FromString reads and writes the textual form", () => {
      assert.deepStrictEqual(Schema.decodeUnknownSync(AddressSchema.FromString)("[::1]:9000"), Address.tcp("::1", 9000))
      assert.strictEqual(Schema.encodeSync(AddressSchema.FromString)(Address.unix("/tmp/s")), "unix:/tmp/s")
      const failure = Schema.decodeUnknownResult(AddressSchema.FromString)("9000")
      assert.isTrue(Result.isFailure(failure))
      if (Result.isFailure(failure)) assert.include(failure.failure.message, "expected host:port, [ipv6]:port or unix:/path")
    })
  })

  describe("isLoopback", () => {
    it("is true only for addresses this machine alone can reach", () => {
      for (const a of ["127.0.0.1:1", "127.1.2.3:1", "localhost:1", "LOCALHOST:1", "[::1]:1", "[::ffff:127.0.0.1]:1", "unix:/s"]) {
        assert.isTrue(Address.isLoopback(Address.unsafeParse(a)), a)
      }
      for (const a of ["0.0.0.0:1", "10.0.0.1:1", "[::]:1", "example.com:1", "128.0.0.1:1", "[::ffff:10.0.0.1]:1"]) {
        assert.isFalse(Address.isLoopback(Address.unsafeParse(a)), a)
      }
    })
  })

  describe("unknownPeer", () => {
    it("formats as `unknown peer`, parses from nothing, is not loopback, and is told from every real address", () => {
      assert.strictEqual(Address.format(Address.unknownPeer), "unknown peer")
      assert.isTrue(Address.isUnknownPeer(Address.unknownPeer))
      assert.isTrue(Result.isFailure(Address.parse("unknown peer")))
      assert.isTrue(Result.isFailure(Address.parse(Address.format(Address.unknownPeer))))
      assert.isFalse(Address.isLoopback(Address.unknownPeer))
      // It survives a trip through the Schema (a log shipped as JSON still says so).
      const decoded = Schema.decodeUnknownSync(AddressSchema.Address)(Schema.encodeSync(AddressSchema.Address)(Address.unknownPeer))
      assert.isTrue(Address.isUnknownPeer(decoded))
      FastCheck.assert(FastCheck.property(address, (a) => !Address.isUnknownPeer(a)))
    })
  })

  describe("isAddress", () => {
    it("recognises both kinds and nothing else", () => {
      assert.isTrue(Address.isAddress(Address.unix("/tmp/s")))
      assert.isTrue(Address.isAddress(Address.tcp("h", 1)))
      assert.isFalse(Address.isAddress({ _tag: "TcpAddress", host: "h", port: 1 }))
      assert.isFalse(Address.isAddress("127.0.0.1:1"))
      assert.isFalse(Address.isAddress(null))
    })
  })
})
