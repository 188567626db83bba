import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Address from "../src/Address.js"
import * as Echo from "../src/servers/Echo.js"
import * as Exec from "../src/servers/Exec.js"
import * as Upper from "../src/servers/Upper.js"
import { byteServerSuite } from "./helpers/byteServerSuite.js"

/** Python's bytes.upper(): a-z to A-Z, every other byte as it is. */
const pythonUpper = (bytes: Uint8Array): Uint8Array => bytes.map((b) => (b >= 0x61 && b <= 0x7a ? b - 0x20 : b))

byteServerSuite("Upper", Upper, pythonUpper)

describe("Upper", () => {
  it("exports what Echo exports, with services of its own and the same ConnectionClosed", () => {
    const values = [
      "ConnectionClosed",
      "client",
      "handler",
      "layer",
      "layerTest",
      "layerUdp",
      "layerUdpTest",
      "make",
      "makeUdp",
      "udpClient"
    ]
    assert.deepStrictEqual(Object.keys(Echo).sort(), [...values, "Echo", "EchoUdp"].sort())
    assert.deepStrictEqual(Object.keys(Upper).sort(), [...values, "Upper", "UpperUdp"].sort())
    assert.strictEqual(Echo.Echo.key, "effect-wire/servers/Echo")
    assert.strictEqual(Echo.EchoUdp.key, "effect-wire/servers/EchoUdp")
    assert.strictEqual(Upper.Upper.key, "effect-wire/servers/Upper")
    assert.strictEqual(Upper.UpperUdp.key, "effect-wire/servers/UpperUdp")
    assert.strictEqual(Upper.ConnectionClosed, Echo.ConnectionClosed)
    // The types are the same too: an Echo value is an Upper one.
    const options: Upper.Options = { address: Address.tcp("127.0.0.1", 0), framing: "lines" } satisfies Echo.Options
    assert.strictEqual(options.framing, "lines")
  })

  it.live("all 256 byte values and UTF-8 pass through; only a-z change", () =>
    Effect.gen(function*() {
      const client = yield* Upper.client((yield* Upper.Upper).address)
      const all = new Uint8Array(256).map((_, i) => i)
      const reply = yield* client.request(all)
      for (let i = 0; i < 256; i++) {
        assert.strictEqual(reply[i], i >= 0x61 && i <= 0x7a ? i - 0x20 : i, `byte ${i}`)
      }
      assert.strictEqual(new TextDecoder().decode(yield* client.request("héllo wörld ß")), "HéLLO WöRLD ß")
    }).pipe(Effect.provide(Upper.layerTest())))

  it.live("framed over lines, through layerTest", () =>
    Effect.gen(function*() {
      const client = yield* Upper.client((yield* Upper.Upper).address, { framing: "lines" })
      assert.strictEqual(new TextDecoder().decode(yield* client.request("one line")), "ONE LINE")
      const error = yield* Effect.flip(client.request("two\nlines"))
      assert.strictEqual(error._tag, "MalformedFrame")
    }).pipe(Effect.provide(Upper.layerTest({ framing: "lines" }))))

  it.live("Echo, Upper and Exec compose in one program, each on its own port", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        Layer.mergeAll(Echo.layerTest(), Upper.layerTest(), Exec.layerTest({ allow: ["echo"] }), Upper.layerUdpTest())
      )
      const echo = Context.get(context, Echo.Echo)
      const upper = Context.get(context, Upper.Upper)
      const exec = Context.get(context, Exec.Exec)
      const udp = Context.get(context, Upper.UpperUdp)
      const ports = new Set([echo.address, upper.address, exec.address].map((a) => a._tag === "TcpAddress" ? a.port : 0))
      assert.strictEqual(ports.size, 3)
      const echoClient = yield* Echo.client(echo.address)
      const upperClient = yield* Upper.client(upper.address)
      const udpClient = yield* Upper.udpClient(udp.address)
      assert.strictEqual(new TextDecoder().decode(yield* echoClient.request("same")), "same")
      assert.strictEqual(new TextDecoder().decode(yield* upperClient.request("loud")), "LOUD")
      assert.strictEqual(new TextDecoder().decode(yield* udpClient.request("udp")), "UDP")
    }))
})
