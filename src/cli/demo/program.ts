/**
 * The demo that `npm start` runs: one Effect program that starts the echo,
 * upper, exec, UDP upper and question servers as one Layer on loopback
 * (port 0), runs a scripted client session against each, prints what was
 * sent and received, releases the Layer (every server drains), prints a
 * summary of effect-wire's metrics, and ends.
 *
 * ```ts
 * NodeRuntime.runMain(Demo.program)
 * ```
 *
 * @since 0.1.0
 */
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Address from "../../Address.js"
import * as Framing from "../../Framing.js"
import * as Server from "../../Server.js"
import * as Echo from "../../servers/Echo.js"
import * as Exec from "../../servers/Exec.js"
import * as Upper from "../../servers/Upper.js"
import * as Socket from "../../Socket.js"
import { metricsSummary } from "./metrics.js"
import * as Question from "./question.js"

/** Nothing listens beyond this machine. */
const LOOPBACK = Address.tcp("127.0.0.1", 0)
const ALLOWED = ["echo", "uname"]
const TIMEOUT = Duration.seconds(5)

/**
 * Every server of the demo as one Layer: building it listens on free
 * loopback ports, releasing it drains and closes them all.
 *
 * ```ts
 * const program = Effect.map(Echo.Echo, (echo) => echo.address).pipe(Effect.provide(Demo.Servers))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const Servers = Layer.mergeAll(
  Echo.layer({ address: LOOPBACK }),
  Upper.layer({ address: LOOPBACK }),
  Exec.layer({ address: LOOPBACK, allow: ALLOWED }),
  Upper.layerUdp(LOOPBACK),
  Question.layer(LOOPBACK)
)

const utf8 = new TextEncoder()
const text = new TextDecoder()
const show = (data: Uint8Array | string): string => JSON.stringify(typeof data === "string" ? data : text.decode(data))
const say = (line: string) => Console.log(line)
const section = (title: string) => say(`\n${title}`)
const sent = (what: string) => say(`  → ${what}`)
const received = (what: string) => say(`  ← ${what}`)

const oneShotQuestion = Effect.gen(function*() {
  const { address } = yield* Server.Server
  yield* section(`1. one-shot question (the demo's own server: Server + lines framing, tcp ${Address.format(address)})`)
  const socket = yield* Socket.connect(address, { timeout: TIMEOUT })
  yield* socket.write(utf8.encode("1+5=?\n"))
  yield* sent(show("1+5=?"))
  yield* socket.end // one question: the server answers, sees our end, and closes
  const answers = yield* socket.reads.pipe(Framing.decode(Framing.lines({ as: "string" })), Stream.runCollect)
  for (const answer of answers) yield* received(show(answer))
})

const echoAndUpper = Effect.gen(function*() {
  const echo = yield* Echo.Echo
  yield* section(`2. echo (tcp ${Address.format(echo.address)})`)
  const echoClient = yield* Echo.client(echo.address, { timeout: TIMEOUT })
  yield* sent(show("hello, wire"))
  yield* received(show(yield* echoClient.request("hello, wire")))

  const upper = yield* Upper.Upper
  yield* section(`3. upper (tcp ${Address.format(upper.address)})`)
  const upperClient = yield* Upper.client(upper.address, { timeout: TIMEOUT })
  yield* sent(show("effect-wire speaks tcp"))
  yield* received(show(yield* upperClient.request("effect-wire speaks tcp")))
})

const exec = Effect.gen(function*() {
  const server = yield* Exec.Exec
  yield* section(`4. exec (tcp ${Address.format(server.address)}, allowed: ${ALLOWED.join(", ")})`)
  const client = yield* Exec.client(server.address, { timeout: TIMEOUT })
  const commands: ReadonlyArray<readonly [string, ...Array<string>]> = [
    ["uname", "-s"],
    ["echo", "hello from", "a remote command"]
  ]
  for (const argv of commands) {
    yield* sent(`run ${JSON.stringify(argv)}`)
    const result = yield* client.run(argv)
    yield* received(`exit ${result.header.exitCode}, stdout ${show(result.stdout)}`)
  }
  yield* sent(`run ${JSON.stringify(["rm", "-rf", "/"])}`)
  yield* client.run(["rm", "-rf", "/"]).pipe(
    Effect.flatMap(() => Effect.die(new Error("the exec server ran a command outside its allowlist"))),
    Effect.catchTag("CommandNotAllowed", (e) => received(`refused, ${e._tag}: ${e.message}`))
  )
})

const udp = Effect.gen(function*() {
  const server = yield* Upper.UpperUdp
  yield* section(`5. UDP upper (udp ${Address.format(server.address)})`)
  const client = yield* Upper.udpClient(server.address, { timeout: "500 millis" })
  yield* sent(`datagram ${show("ping over udp")}`)
  yield* received(`datagram ${show(yield* client.request("ping over udp"))}`)
})

const stickyPackets = Effect.gen(function*() {
  const echo = yield* Echo.Echo
  const messages = ["alpha", "beta", "gamma"]
  yield* section(`6. sticky packets: three messages in one write, through the echo server`)
  // Raw: TCP is a byte stream, so nothing on the wire says where a message ends.
  const raw = yield* Socket.connect(echo.address, { timeout: TIMEOUT })
  const joined = utf8.encode(messages.join(""))
  yield* raw.write(joined)
  yield* raw.end
  yield* sent(`one write of ${joined.length} bytes: ${messages.map(show).join(" ")}`)
  const reads = yield* Stream.runCollect(raw.reads)
  yield* received(
    `raw, read by read: ${reads.length} read(s): ${Array.from(reads, show).join(", ")}; the boundaries are gone`
  )
  // Framed: a length before each message lets the reader cut them apart again.
  const codec = Framing.lengthPrefixed()
  const framed = yield* Socket.connect(echo.address, { timeout: TIMEOUT })
  const bytes = yield* Effect.fromResult(Framing.encodeAll(codec, messages.map((m) => utf8.encode(m))))
  yield* framed.write(bytes)
  yield* framed.end
  yield* sent(`one write of ${bytes.length} bytes: each message after its 4-byte big-endian length`)
  const frames = yield* framed.reads.pipe(Framing.decode(codec), Stream.runCollect)
  yield* received(`framed (lengthPrefixed): ${frames.length} frames: ${Array.from(frames, show).join(", ")}`)
})

const servers = Effect.gen(function*() {
  const rows: ReadonlyArray<readonly [string, string, Address.Address]> = [
    ["echo", "tcp", (yield* Echo.Echo).address],
    ["upper", "tcp", (yield* Upper.Upper).address],
    ["exec", "tcp", (yield* Exec.Exec).address],
    ["upper", "udp", (yield* Upper.UpperUdp).address],
    ["question", "tcp", (yield* Server.Server).address]
  ]
  yield* say("servers (one Layer: Layer.mergeAll of their layers, loopback, port 0):")
  for (const [name, transport, address] of rows) yield* say(`  ${name.padEnd(9)}${transport} ${Address.format(address)}`)
})

/**
 * The demo: prints the servers, then each scripted session, then how long
 * it all took once every server has shut down.
 *
 * ```ts
 * NodeRuntime.runMain(Demo.program)
 * ```
 *
 * @since 0.1.0
 * @category programs
 */
export const program = Effect.gen(function*() {
  const started = Date.now()
  yield* say("effect-wire demo: built-in servers and scripted clients, all on loopback")
  // One after the other, each in its own scope, so every client closes before the next section.
  yield* Effect.gen(function*() {
    yield* servers
    yield* Effect.scoped(oneShotQuestion)
    yield* Effect.scoped(echoAndUpper)
    yield* Effect.scoped(exec)
    yield* Effect.scoped(udp)
    yield* Effect.scoped(stickyPackets)
  }).pipe(Effect.provide(Servers))
  yield* say(`\nall servers drained and closed; done in ${Date.now() - started} ms`)
  yield* say("")
  for (const line of yield* metricsSummary) yield* say(line)
}).pipe(
  Effect.timeoutOrElse({
    duration: Duration.seconds(30),
    orElse: () => Effect.fail(new Error("the demo did not finish within 30 seconds"))
  })
)
