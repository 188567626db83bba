/**
 * The one rule for zero and "never" (issue 17, item 10) and the one way options
 * are checked (issue 13): the checks of `internal/options`, and what they make
 * of `Socket` and `Datagram` options given in code (defects,
 * `Cause.IllegalArgumentError`, whose message names the option and says what
 * to write instead). Server, codec and exec options are pinned in their own
 * test files.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Address from "../src/Address.js"
import * as Datagram from "../src/Datagram.js"
import * as Options from "../src/internal/options.js"
import * as Socket from "../src/Socket.js"
import { assertOptionDefect, defectOf } from "./helpers/defects.js"

const loopback = Address.tcp("127.0.0.1", 0)

describe("internal/options: each check returns a reason or undefined", () => {
  it("positiveInt: a whole number from 1 (to max); 0 is no 'no limit'", () => {
    assert.isUndefined(Options.positiveInt(1))
    assert.isUndefined(Options.positiveInt(1024, 1024))
    assert.strictEqual(Options.positiveInt(-1), "must be a positive integer, got -1")
    assert.strictEqual(Options.positiveInt(1.5), "must be a positive integer, got 1.5")
    assert.strictEqual(Options.positiveInt(NaN), "must be a positive integer, got NaN")
    assert.strictEqual(Options.positiveInt("8" as never), "must be a positive integer, got \"8\"")
    assert.strictEqual(Options.positiveInt(1025, 1024), "must be a positive integer up to 1024, got 1025")
    assert.match(Options.positiveInt(0)!, /^must be a positive integer, got 0 \(0 does not mean "no limit"/)
  })

  it("integer: a whole number in a range (offsets, adjustments: 0 is a value there)", () => {
    assert.isUndefined(Options.integer(0, 0, 4))
    assert.isUndefined(Options.integer(-3, -4, 4))
    assert.strictEqual(Options.integer(5, 0, 4), "must be an integer from 0 to 4, got 5")
    assert.strictEqual(Options.integer(1.5, 0, 4), "must be an integer from 0 to 4, got 1.5")
  })

  it("duration: above 0; Duration.infinity only where a limit may be lifted", () => {
    const liftable = { never: true }
    const bounded = { never: false }
    for (const ok of ["1 millis", 1, Duration.seconds(30), "1 nanos"] as const) {
      assert.isUndefined(Options.duration(ok, liftable), String(ok))
      assert.isUndefined(Options.duration(ok, bounded), String(ok))
    }
    assert.isUndefined(Options.duration(Duration.infinity, liftable))
    assert.isUndefined(Options.duration("Infinity", liftable))
    assert.strictEqual(Options.duration(Duration.infinity, bounded), "must be finite, got Infinity")
    assert.strictEqual(
      Options.duration(Duration.infinity, { never: false, finite: "a drain must end" }),
      "must be finite: a drain must end"
    )
    assert.strictEqual(Options.duration(0, bounded), "must be above 0, got 0")
    assert.strictEqual(Options.duration("0 seconds", bounded), "must be above 0, got \"0 seconds\"")
    assert.strictEqual(
      Options.duration(Duration.zero, liftable),
      "must be above 0, got 0 (0 does not mean \"no limit\": use Duration.infinity for none)"
    )
    assert.strictEqual(Options.duration(-5, liftable), "must be above 0, got -5")
    assert.strictEqual(Options.duration(NaN, liftable), "must be a duration such as \"30 seconds\", got NaN")
    assert.strictEqual(
      Options.duration("forever" as never, liftable),
      "must be a duration such as \"30 seconds\", got \"forever\""
    )
  })

  it("oneOf: one of a few strings", () => {
    assert.isUndefined(Options.oneOf("queue", ["queue", "refuse"]))
    assert.strictEqual(Options.oneOf("drop", ["queue", "refuse"]), "must be \"queue\" or \"refuse\", got \"drop\"")
  })

  it("defect: the option's name and the reason, as Effect's IllegalArgumentError", () => {
    const defect = Options.defect("Server", "maxConnections", "must be a positive integer, got -1")
    assertOptionDefect(defect, "Server: maxConnections must be a positive integer, got -1")
  })
})

describe("Socket and Datagram options: the rule for zero and never (defects)", () => {
  it.live("0 is refused for every duration and count, with what to write instead", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback)
      const connect = (options: Socket.ConnectOptions) => Effect.scoped(Socket.connect(listener.address, options))
      assertOptionDefect(yield* defectOf(connect({ idleTimeout: 0 })), "idleTimeout must be above 0", "Duration.infinity")
      assertOptionDefect(yield* defectOf(connect({ timeout: "0 millis" })), "timeout must be above 0", "Duration.infinity")
      assertOptionDefect(yield* defectOf(connect({ keepAlive: 0 })), "keepAlive must be above 0")
      assertOptionDefect(yield* defectOf(connect({ closeTimeout: 0 })), "closeTimeout must be above 0, got 0")
      assertOptionDefect(
        yield* defectOf(connect({ readBufferSize: 0 })),
        "readBufferSize must be a positive integer, got 0",
        "0 does not mean \"no limit\""
      )
      const listen = (options: Socket.ListenOptions) => Effect.scoped(Socket.listen(loopback, options))
      assertOptionDefect(yield* defectOf(listen({ backlog: 0 })), "backlog must be a positive integer, got 0")
      assertOptionDefect(yield* defectOf(listen({ acceptQueueSize: 0 })), "acceptQueueSize must be a positive integer")
      assertOptionDefect(yield* defectOf(listen({ idleTimeout: "0 seconds" })), "idleTimeout must be above 0")
      assertOptionDefect(
        yield* defectOf(Effect.scoped(Datagram.bind(loopback, { receiveBufferSize: 0 }))),
        "receiveBufferSize must be a positive integer, got 0",
        "0 does not mean \"no limit\""
      )
    }))

  it.live("Duration.infinity lifts the limits that may be lifted, and is refused where a close must end", () =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(loopback, { idleTimeout: Duration.infinity })
      yield* Effect.scoped(Socket.connect(listener.address, {
        idleTimeout: Duration.infinity,
        timeout: Duration.infinity,
        keepAlive: Duration.infinity
      }))
      assertOptionDefect(
        yield* defectOf(Effect.scoped(Socket.connect(listener.address, { closeTimeout: Duration.infinity }))),
        "closeTimeout must be finite"
      )
    }))
})
