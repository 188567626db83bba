/**
 * Every example runs here, so that none can rot: its server Layer is
 * composed with its client program, on real loopback sockets, and what the
 * client prints through `Console` is compared with what the example promises.
 * Importing an example must not start it, so `NodeRuntime.runMain` is
 * replaced by a recorder; that also checks each example ends by running a
 * program, and gives the README's example, which exports nothing, to run.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { vi } from "vitest"
import * as Chat from "../examples/chat.js"
import * as Echo from "../examples/echo.js"
import * as Exec from "../examples/exec.js"
import * as Question from "../examples/question.js"
import * as StartTls from "../examples/starttls.js"
import * as Sticky from "../examples/sticky-packets.js"
import * as TypedProtocol from "../examples/typed-protocol.js"
import * as UdpUpper from "../examples/udp-upper.js"
import * as UnixSocket from "../examples/unix-socket.js"
import * as Upper from "../examples/upper.js"

const launched = vi.hoisted(() => [] as Array<Effect.Effect<unknown, unknown>>)

vi.mock("@effect/platform-node/NodeRuntime", async (importOriginal) => {
  const original = await importOriginal<typeof import("@effect/platform-node/NodeRuntime")>()
  const runMain = (effect: Effect.Effect<unknown, unknown>) => void launched.push(effect)
  return { ...original, runMain }
})

/** The lines `program` logs through `Console.log`, once it has finished. */
const output = <A, E>(program: Effect.Effect<A, E>): Effect.Effect<Array<string>, E> =>
  Effect.gen(function*() {
    const base = yield* Console.Console
    const lines: Array<string> = []
    // Effect 4's Console is synchronous and shaped like globalThis.console.
    const console: Console.Console = Object.assign(Object.create(base), {
      log: (...args: ReadonlyArray<unknown>) => void lines.push(args.map(String).join(" "))
    })
    // Effect 4's default logger writes through the Console service too: keep log lines out of `lines`.
    const logs = Logger.map(Logger.formatSimple, (line) => base.log(line))
    yield* program.pipe(Effect.provideService(Console.Console, console), Effect.provide(Logger.layer([logs])))
    return lines
  })

/** Run an example the way it is meant to be read: its client against its server. */
const run = <E1, E2, S>(example: {
  readonly server: Layer.Layer<S, E1>
  readonly client: Effect.Effect<unknown, E2, S>
}) => output(Effect.provide(example.client, example.server))

describe("examples", () => {
  it("each example ends by handing one program to NodeRuntime.runMain", () => {
    // Nine imported above; readme.ts is imported by its own test.
    assert.isAtLeast(launched.length, 9)
  })

  it.live("readme: the README's echo server answers its client", () =>
    Effect.gen(function*() {
      const before = launched.length
      yield* Effect.promise(() => import("../examples/readme.js"))
      assert.strictEqual(launched.length, before + 1)
      const lines = yield* output(launched[before]!)
      assert.strictEqual(lines.length, 1)
      assert.match(lines[0]!, /^127\.0\.0\.1:\d+ answered: hello, wire$/)
    }))

  it("readme: the README's 20-line example is examples/readme.ts, word for word", () => {
    const root = new URL("..", import.meta.url)
    const readme = Fs.readFileSync(new URL("README.md", root), "utf8")
    const example = Fs.readFileSync(new URL("examples/readme.ts", root), "utf8")
    assert.include(readme, "```ts\n" + example + "```\n\nThis program is `examples/readme.ts`")
  })

  it.live("echo: every line comes back", () =>
    Effect.gen(function*() {
      const lines = yield* run(Echo)
      assert.deepStrictEqual(
        lines.map((line) => line.replace(/^127\.0\.0\.1:\d+ /, "")),
        ["echoed \"hello\"", "echoed \"is anybody there?\"", "echoed \"bye\""]
      )
    }))

  it.live("upper: the hand-written server upper-cases until the client half-closes", () =>
    Effect.gen(function*() {
      const lines = yield* run(Upper)
      assert.strictEqual(lines.length, 1)
      assert.match(lines[0]!, /^127\.0\.0\.1:\d+ answered: EFFECT-WIRE, MAKE ME LOUD$/)
    }))

  it.live("udp-upper: each datagram is answered", () =>
    Effect.gen(function*() {
      const lines = yield* run(UdpUpper)
      assert.deepStrictEqual(lines.map((line) => line.replace(/^udp 127\.0\.0\.1:\d+: /, "")), [
        "ping -> PING",
        "one datagram, one reply -> ONE DATAGRAM, ONE REPLY"
      ])
    }))

  it.live("starttls: the line protocol says OK, then the same socket continues over TLS", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* run(StartTls), ["server: OK", "server: NOW OVER TLSV1.3"])
    }))

  it.live("question: 1+5=? is answered 6", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* run(Question), ["1+5=? 6"])
    }))

  it.live("exec: an allowlisted command runs, rm -rf / is refused", () =>
    Effect.gen(function*() {
      const lines = yield* run(Exec)
      assert.strictEqual(lines.length, 2)
      assert.strictEqual(lines[0], `uname -s: exit 0, stdout ${JSON.stringify(Os.type())}`)
      assert.match(lines[1]!, /^rm -rf \/: refused, CommandNotAllowed: command "rm" is not allowed/)
    }))

  it.live("sticky-packets: one read is one message for the broken server, the framed one gets three", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* run(Sticky), [
        "broken server got \"alphabetagamma\"",
        "fixed server got \"alpha\"",
        "fixed server got \"beta\"",
        "fixed server got \"gamma\""
      ])
    }))

  it.live("chat: every line reaches every client, in order", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* run(Chat), [
        "alice hears  * alice joined",
        "bob hears  * bob joined",
        "alice hears  * bob joined",
        "alice hears  alice: hi bob",
        "bob hears  alice: hi bob",
        "alice hears  bob: hi alice, bye",
        "bob hears  bob: hi alice, bye",
        "alice hears  * bob left"
      ])
    }))

  it.live("typed-protocol: typed requests get typed responses", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* run(TypedProtocol), [
        `{"_tag":"Put","key":"lang","value":"effect"} -> {"_tag":"Stored","key":"lang"}`,
        `{"_tag":"Get","key":"lang"} -> {"_tag":"Found","key":"lang","value":"effect"}`,
        `{"_tag":"Get","key":"os"} -> {"_tag":"Missing","key":"os"}`
      ])
    }))

  it.live("unix-socket: the upper-case server answers on a socket file", () =>
    Effect.gen(function*() {
      const lines = yield* run(UnixSocket)
      assert.strictEqual(lines.length, 1)
      assert.match(lines[0]!, /^unix:.+\/effect-wire-\w+\/upper\.sock answered: HELLO OVER A UNIX SOCKET$/)
    }))
})
