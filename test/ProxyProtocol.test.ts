import { assert, describe, it } from "@effect/vitest"
import * as Option from "effect/Option"
import * as Address from "effect-wire/Address"
import * as ProxyProtocol from "effect-wire/ProxyProtocol"
import * as fc from "fast-check"
import { SocketAddress } from "node:net"

const RUNS = { numRuns: 300 }
const text = (s: string) => new TextEncoder().encode(s)
const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)))
const SIG = "0d0a0d0a000d0a515549540a"

/** Feeds the reads one by one; the step that ended it, with how many reads were fed. */
const feed = (decoder: ProxyProtocol.Decoder, reads: ReadonlyArray<Uint8Array>) => {
  for (let i = 0; i < reads.length; i++) {
    const step = decoder.push(reads[i]!)
    if (step._tag !== "NeedMore") return { step, used: i + 1 }
  }
  return { step: { _tag: "NeedMore" } as ProxyProtocol.Step, used: reads.length }
}

/** Split `bytes` at the given cut points (sorted, deduplicated, empty reads kept). */
const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let at = 0
  for (const p of points) {
    out.push(bytes.subarray(at, p))
    at = p
  }
  out.push(bytes.subarray(at))
  return out
}

const concat = (parts: ReadonlyArray<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

// -- arbitraries ----------------------------------------------------------------

const port = fc.integer({ min: 0, max: 65535 })
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join("."))
/** IPv6 as Node itself writes a peer's address (the form the decoder must produce). */
const ipv6 = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  // Zero runs, mapped and compatible IPv4 are where text forms differ.
  fc.tuple(fc.nat(3), fc.uint8Array({ minLength: 16, maxLength: 16 })).map(([kind, b]) => {
    b.fill(0, 0, kind === 0 ? 10 : kind === 1 ? 12 : kind === 2 ? 14 : 6)
    if (kind === 0) b.set([0xff, 0xff], 10)
    return b
  })
).map((b) => {
  const full = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(":")
  return new SocketAddress({ address: full, family: "ipv6" }).address
})
const tcp = (host: fc.Arbitrary<string>) => fc.tuple(host, port).map(([h, p]) => Address.tcp(h, p))
const unixPath = fc.string({ minLength: 1, maxLength: 100 }).filter((s) => !s.includes("\0"))
  .map((s) => new Address.UnixAddress({ path: s }, { disableChecks: true }))
const bytes = (max: number) => fc.uint8Array({ maxLength: max })

const knownTypes = new Set([0x01, 0x02, 0x03, 0x05, 0x20])
const raw = (exclude: ReadonlySet<number>) =>
  fc.record({
    _tag: fc.constant("Raw" as const),
    type: fc.nat(255).filter((t) => !exclude.has(t)),
    value: bytes(40)
  })
const sslField = fc.oneof(
  fc.record({
    _tag: fc.constant("SslField" as const),
    name: fc.constantFrom("version", "cn", "cipher", "sigAlg", "keyAlg") as fc.Arbitrary<ProxyProtocol.SslField>,
    value: fc.string({ maxLength: 30 })
  }),
  raw(new Set([0x21, 0x22, 0x23, 0x24, 0x25]))
)
const tlv: fc.Arbitrary<ProxyProtocol.Tlv> = fc.oneof(
  fc.record({ _tag: fc.constant("Alpn" as const), protocol: fc.string({ maxLength: 20 }) }),
  fc.record({ _tag: fc.constant("Authority" as const), hostname: fc.domain() }),
  fc.constant({ _tag: "Crc32c" as const }),
  fc.record({ _tag: fc.constant("UniqueId" as const), id: bytes(128) }),
  fc.record({
    _tag: fc.constant("Ssl" as const),
    client: fc.nat(255),
    verify: fc.nat(0xffffffff),
    fields: fc.array(sslField, { maxLength: 4 })
  }),
  raw(knownTypes)
)

const v1Header = fc.oneof(
  fc.tuple(tcp(ipv4), tcp(ipv4)).map(([s, d]) => ProxyProtocol.v1(s, d)),
  fc.tuple(tcp(ipv6), tcp(ipv6)).map(([s, d]) => ProxyProtocol.v1(s, d)),
  fc.constant(ProxyProtocol.v1())
)
/** At most one checksum: a header has one. */
const tlvs = (maxLength: number) =>
  fc.array(tlv, { maxLength }).map((ts) => ts.filter((t, i) => t._tag !== "Crc32c" || ts.findIndex((u) => u._tag === "Crc32c") === i))
const v2Options = fc.record({ tlvs: tlvs(5), datagram: fc.boolean() })
const v2Header = fc.oneof(
  fc.tuple(tcp(ipv4), tcp(ipv4), v2Options).map(([s, d, o]) => ProxyProtocol.v2(s, d, o)),
  fc.tuple(tcp(ipv6), tcp(ipv6), v2Options).map(([s, d, o]) => ProxyProtocol.v2(s, d, o)),
  fc.tuple(unixPath, unixPath, v2Options).map(([s, d, o]) => ProxyProtocol.v2(s, d, o)),
  tlvs(3).map((tlvs): ProxyProtocol.Header => ({
    version: "v2",
    command: "PROXY",
    protocol: "UNKNOWN",
    source: undefined,
    destination: undefined,
    tlvs
  })),
  fc.constant(ProxyProtocol.local)
)
const header = fc.oneof(v1Header, v2Header)
const cuts = fc.array(fc.nat(2000), { maxLength: 12 })

const LARGE = { maxHeaderSize: ProxyProtocol.MAX_MAX_HEADER_SIZE }

describe("ProxyProtocol", () => {
  describe("encode", () => {
    it("v1 TCP4, TCP6 and UNKNOWN are the specification's lines", () => {
      const v4 = ProxyProtocol.v1(Address.tcp("192.168.0.1", 56324), Address.tcp("192.168.0.11", 443))
      assert.strictEqual(new TextDecoder().decode(ProxyProtocol.encode(v4)), "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
      const v6 = ProxyProtocol.v1(Address.tcp("2001:db8::1", 1), Address.tcp("::1", 2))
      assert.strictEqual(new TextDecoder().decode(ProxyProtocol.encode(v6)), "PROXY TCP6 2001:db8::1 ::1 1 2\r\n")
      assert.strictEqual(new TextDecoder().decode(ProxyProtocol.encode(ProxyProtocol.v1())), "PROXY UNKNOWN\r\n")
    })

    it("v2 TCP4 is the signature, 0x21 0x11, the length and the address block", () => {
      const header = ProxyProtocol.v2(Address.tcp("127.0.0.1", 1), Address.tcp("10.0.0.2", 443))
      assert.deepStrictEqual(
        ProxyProtocol.encode(header),
        hex(`${SIG} 21 11 000c 7f000001 0a000002 0001 01bb`)
      )
      assert.deepStrictEqual(ProxyProtocol.encode(ProxyProtocol.local), hex(`${SIG} 20 00 0000`))
    })

    it("a CRC32C TLV carries the header's checksum (RFC 3720's check value for the CRC)", () => {
      assert.strictEqual(ProxyProtocol.crc32c(text("123456789")), 0xe3069283)
      const bytes = ProxyProtocol.encode(
        ProxyProtocol.v2(Address.tcp("127.0.0.1", 1), Address.tcp("127.0.0.1", 2), { tlvs: [{ _tag: "Crc32c" }] })
      )
      const zeroed = bytes.slice()
      zeroed.fill(0, bytes.length - 4)
      assert.strictEqual(new DataView(bytes.buffer).getUint32(bytes.length - 4), ProxyProtocol.crc32c(zeroed))
    })

    it("an impossible header is a defect naming what is wrong", () => {
      const bad: ReadonlyArray<[() => unknown, RegExp]> = [
        [() => ProxyProtocol.v1(Address.tcp("127.0.0.1", 1), Address.tcp("::1", 2)), /both be IPv4 or both be IPv6/],
        [() => ProxyProtocol.encode({ ...ProxyProtocol.local, version: "v1" }), /v1 has no LOCAL/],
        [() => ProxyProtocol.encode(ProxyProtocol.v1(Address.tcp("example.com", 1), Address.tcp("example.org", 2))), /not an IPv4/],
        [() => ProxyProtocol.encode(ProxyProtocol.v1(new Address.TcpAddress({ host: "1.2.3.4", port: 70000 }, { disableChecks: true }), Address.tcp("1.2.3.4", 2))), /port 70000/],
        [
          () =>
            ProxyProtocol.encode(
              ProxyProtocol.v2(Address.tcp("1.2.3.4", 1), Address.tcp("1.2.3.4", 2), {
                tlvs: [{ _tag: "Raw", type: 1, value: new Uint8Array(1) }]
              })
            ),
          /has its own tag/
        ],
        [
          () =>
            ProxyProtocol.encode(
              ProxyProtocol.v2(Address.tcp("1.2.3.4", 1), Address.tcp("1.2.3.4", 2), {
                tlvs: [{ _tag: "Crc32c" }, { _tag: "Crc32c" }]
              })
            ),
          /at most one Crc32c/
        ],
        [
          () => ProxyProtocol.encode(ProxyProtocol.v2(Address.tcp("1.2.3.4", 1), Address.unix("/a"))),
          /both be TCP or both be Unix/
        ]
      ]
      for (const [f, message] of bad) {
        assert.throws(f, message)
        try {
          f()
        } catch (e) {
          assert.strictEqual((e as { _tag?: string })._tag, "IllegalArgumentError")
        }
      }
    })
  })

  describe("decode", () => {
    it("every header we encode decodes to the same value over any split, and the bytes after it are kept", () =>
      fc.assert(
        fc.property(header, bytes(64), cuts, (h, after, at) => {
          const wire = concat([ProxyProtocol.encode(h), after])
          const { step, used } = feed(ProxyProtocol.decoder(LARGE), split(wire, at))
          assert.strictEqual(step._tag, "Done")
          if (step._tag !== "Done") return
          assert.deepStrictEqual(step.header, h)
          // The rest of the read that ended the header, then the reads not fed: the stream after it, whole.
          const unread = split(wire, at).slice(used)
          assert.deepStrictEqual(concat([step.rest, ...unread]), after)
        }),
        RUNS
      ))

    it("decodes the specification's v1 examples, and UNKNOWN with anything after it", () => {
      const step = ProxyProtocol.decoder().push(text("PROXY TCP6 ffff:f...f:ffff ::1 1 2\r\n"))
      assert.strictEqual(step._tag, "Failed")
      const ok = ProxyProtocol.decoder().push(text("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nGET /"))
      assert.strictEqual(ok._tag, "Done")
      if (ok._tag === "Done") {
        assert.deepStrictEqual(ok.header.source, Address.tcp("255.255.255.255", 65535))
        assert.strictEqual(new TextDecoder().decode(ok.rest), "GET /")
      }
      const unknown = ProxyProtocol.decoder().push(text("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"))
      assert.isTrue(unknown._tag === "Done" && unknown.header.protocol === "UNKNOWN" && unknown.header.source === undefined)
    })

    it("reads a header HAProxy sends (v2, TCP4, with an ALPN and a unique ID TLV)", () => {
      const step = ProxyProtocol.decoder().push(
        hex(`${SIG} 21 11 0017 c0a80001 c0a8000b dc04 01bb 01 0002 6832 05 0003 616263`)
      )
      assert.strictEqual(step._tag, "Done")
      if (step._tag !== "Done") return
      assert.deepStrictEqual(step.header.source, Address.tcp("192.168.0.1", 56324))
      assert.deepStrictEqual(Option.getOrThrow(ProxyProtocol.tlv(step.header, "Alpn")), { _tag: "Alpn", protocol: "h2" })
      assert.deepStrictEqual(Option.getOrThrow(ProxyProtocol.tlv(step.header, "UniqueId")).id, text("abc"))
      assert.isTrue(Option.isNone(ProxyProtocol.tlv(step.header, "Authority")))
    })

    it("a LOCAL header keeps no addresses: the block is skipped, as the specification says", () => {
      const step = ProxyProtocol.decoder().push(hex(`${SIG} 20 11 000c 7f000001 7f000001 0001 0002 ff`))
      assert.isTrue(step._tag === "Done" && step.header.command === "LOCAL" && step.header.source === undefined)
      if (step._tag === "Done") assert.deepStrictEqual(step.rest, hex("ff"))
    })
  })

  describe("hostile input", () => {
    const tags = new Set([
      "MalformedProxyHeader",
      "ProxyHeaderTooLarge",
      "ProxyVersionRefused",
      "ProxyHeaderTruncated"
    ])

    it("random bytes never throw: NeedMore, a typed error, or (rarely) a header", () =>
      fc.assert(
        fc.property(fc.oneof(bytes(300), bytes(40).map((b) => concat([hex(SIG), b]))), cuts, (input, at) => {
          const decoder = ProxyProtocol.decoder()
          const { step } = feed(decoder, split(input, at))
          if (step._tag === "Failed") {
            assert.isTrue(tags.has(step.error._tag), step.error._tag)
            assert.strictEqual(step.error.retryable, false)
            assert.isTrue(step.error.message.length > 20)
          } else if (step._tag === "NeedMore") {
            // Never more than the header's limit held.
            assert.isAtMost(decoder.buffered, ProxyProtocol.DEFAULT_MAX_HEADER_SIZE)
            assert.strictEqual(decoder.end()._tag, "ProxyHeaderTruncated")
          }
        }),
        RUNS
      ))

    it("every prefix of a valid header is NeedMore, and the end there is ProxyHeaderTruncated", () =>
      fc.assert(
        fc.property(header, fc.nat(), (h, n) => {
          const wire = ProxyProtocol.encode(h)
          const cut = n % wire.length
          const decoder = ProxyProtocol.decoder(LARGE)
          assert.strictEqual(decoder.push(wire.subarray(0, cut))._tag, "NeedMore")
          const error = decoder.end()
          assert.strictEqual(error._tag, "ProxyHeaderTruncated")
          assert.match(error.message, cut === 0 ? /sent nothing/ : new RegExp(`after ${cut} byte`))
        }),
        RUNS
      ))

    it("a flipped byte in a checksummed header is refused, never taken for another header", () =>
      fc.assert(
        fc.property(tcp(ipv4), tcp(ipv4), fc.nat(), fc.integer({ min: 1, max: 255 }), (s, d, at, flip) => {
          const wire = ProxyProtocol.encode(ProxyProtocol.v2(s, d, { tlvs: [{ _tag: "Crc32c" }] }))
          // In the addresses or the checksum (a flip of the TLV's type makes it another TLV, of its length another length).
          const spots = [...Array.from({ length: 12 }, (_, k) => 16 + k), ...Array.from({ length: 4 }, (_, k) => wire.length - 4 + k)]
          const i = spots[at % spots.length]!
          wire[i] ^= flip
          const step = ProxyProtocol.decoder().push(wire)
          assert.strictEqual(step._tag === "Failed" ? step.error._tag : step._tag, "MalformedProxyHeader")
        }),
        RUNS
      ))

    it("wrong signature, lying lengths, bad fields and oversized headers each give their tag", () => {
      const cases: ReadonlyArray<[Uint8Array, string, RegExp]> = [
        [text("GET / HTTP/1.1\r\n"), "MalformedProxyHeader", /starts with 47 45 54/],
        [text("PROXY TCP5 1 2 3 4\r\n"), "MalformedProxyHeader", /TCP5/],
        [text("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "MalformedProxyHeader", /3 field/],
        [text("PROXY TCP4 1.2.3.4 ::1 1 2\r\n"), "MalformedProxyHeader", /not an IPv4/],
        [text("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), "MalformedProxyHeader", /port "01"/],
        [text("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), "MalformedProxyHeader", /port "65536"/],
        [text("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n"), "MalformedProxyHeader", /CR not followed by LF/],
        [text(`PROXY UNKNOWN ${"x".repeat(100)}`), "ProxyHeaderTooLarge", /107 bytes/],
        [hex(`${SIG} 31 11 000c 7f000001 7f000001 0001 0002`), "MalformedProxyHeader", /version nibble is 3/],
        [hex(`${SIG} 22 11 000c 7f000001 7f000001 0001 0002`), "MalformedProxyHeader", /command 2/],
        [hex(`${SIG} 21 13 000c 7f000001 7f000001 0001 0002`), "MalformedProxyHeader", /0x13/],
        [hex(`${SIG} 21 11 0008 7f000001 7f000001`), "MalformedProxyHeader", /shorter than the 12 address bytes/],
        [hex(`${SIG} 21 11 0010 7f000001 7f000001 0001 0002 01 0009 6832`), "MalformedProxyHeader", /announces 9 bytes/],
        [hex(`${SIG} 21 11 000e 7f000001 7f000001 0001 0002 0100`), "MalformedProxyHeader", /cut short/],
        [hex(`${SIG} 21 11 0011 7f000001 7f000001 0001 0002 03 0002 0000`), "MalformedProxyHeader", /CRC32C TLV is 2 bytes/],
        [hex(`${SIG} 21 11 ffff`), "ProxyHeaderTooLarge", /announces 65551 bytes; maxHeaderSize is 4096/]
      ]
      for (const [input, tag, message] of cases) {
        const step = ProxyProtocol.decoder().push(input)
        assert.strictEqual(step._tag, "Failed", new TextDecoder().decode(input))
        if (step._tag === "Failed") {
          assert.strictEqual(step.error._tag, tag)
          assert.match(step.error.message, message)
        }
      }
    })

    it("a version not accepted is ProxyVersionRefused, as soon as its signature is whole", () => {
      const v2Only = ProxyProtocol.decoder({ versions: ["v2"] })
      assert.strictEqual(v2Only.push(text("PROXY"))._tag, "NeedMore")
      const step = v2Only.push(text(" "))
      assert.isTrue(step._tag === "Failed" && step.error._tag === "ProxyVersionRefused")
      const v1Only = ProxyProtocol.decoder({ versions: ["v1"] })
      const v2 = v1Only.push(ProxyProtocol.encode(ProxyProtocol.local))
      assert.isTrue(v2._tag === "Failed" && v2.error._tag === "ProxyVersionRefused" && /accepted: v1/.test(v2.error.message))
    })

    it("an invalid decoder option is a defect", () => {
      assert.throws(() => ProxyProtocol.decoder({ maxHeaderSize: 100 }), /maxHeaderSize must be an integer from 232/)
      assert.throws(() => ProxyProtocol.decoder({ versions: [] }), /versions must list/)
    })
  })
})
