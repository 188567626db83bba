/**
 * `effect-wire serve echo|upper --proxy-protocol [--proxy-trusted CIDR,...]`:
 * the built CLI behind a PROXY header, its limits line, and the one-line
 * errors of flags that do not fit.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Address from "../src/Address.js"
import * as ProxyProtocol from "../src/ProxyProtocol.js"
import * as Socket from "../src/Socket.js"
import { dist, runCli, startCli } from "./helpers/cliBuild.js"

const start = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(Effect.sync(() => startCli(dist, args)), (cli) => Effect.sync(() => cli.signal("SIGKILL")))

const listening = (cli: ReturnType<typeof startCli>) =>
  Effect.map(
    Effect.promise(() => cli.waitFor(/^listening tcp /)),
    (line) => Address.unsafeParse(line.replace(/^listening tcp /, ""))
  )

const header = ProxyProtocol.v2(Address.tcp("203.0.113.7", 51000), Address.tcp("10.0.0.2", 9001))

const ask = (address: Address.Address, proxyHeader: ProxyProtocol.Header | undefined, text: string) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* Socket.connect(address, proxyHeader === undefined ? {} : { proxyHeader })
    // A refused connection may be closed before we write (BrokenPipe, ConnectionReset): it then reads nothing.
    yield* Effect.ignore(Effect.andThen(socket.write(new TextEncoder().encode(text)), socket.end))
    const reads = yield* Stream.runCollect(socket.reads).pipe(Effect.orElseSucceed(() => []))
    return new TextDecoder().decode(Buffer.concat(reads))
  }))

describe("serve --proxy-protocol", () => {
  it.live("upper reads the header first; a connection without one is closed; the limits line names the trust", () =>
    Effect.gen(function*() {
      const cli = yield* start(["serve", "upper", "--port", "0", "--proxy-protocol"])
      const address = yield* listening(cli)
      const limits = yield* Effect.promise(() => cli.waitFor(/^limits /, "stderr"))
      assert.match(limits, / proxy-protocol=v1,v2 proxy-trusted=127\.0\.0\.1,::1$/)
      assert.strictEqual(yield* ask(address, header, "hello"), "HELLO")
      assert.strictEqual(yield* ask(address, ProxyProtocol.v1(Address.tcp("192.0.2.1", 1), Address.tcp("192.0.2.2", 2)), "v1"), "V1")
      // A client that connects directly: its bytes are no header.
      assert.strictEqual(yield* ask(address, undefined, "PROXY? no"), "")
    }).pipe(Effect.scoped))

  it.live("--proxy-trusted without this machine: a header from loopback is refused", () =>
    Effect.gen(function*() {
      const cli = yield* start(["serve", "echo", "--port", "0", "--proxy-protocol", "--proxy-trusted", "10.0.0.0/8, fd00::/8"])
      const address = yield* listening(cli)
      const limits = yield* Effect.promise(() => cli.waitFor(/^limits /, "stderr"))
      assert.match(limits, / proxy-trusted=10\.0\.0\.0\/8,fd00::\/8$/)
      assert.strictEqual(yield* ask(address, header, "x"), "")
      const warning = yield* Effect.promise(() => cli.waitFor(/UntrustedProxySource|trustedSources/, "stderr"))
      assert.match(warning, /127\.0\.0\.1:\d+ refused: it is not in proxyProtocol\.trustedSources/)
      // Without the flag, the same server is a plain echo server: the header bytes come back.
      const plain = yield* start(["serve", "echo", "--port", "0"])
      const plainAddress = yield* listening(plain)
      assert.strictEqual((yield* ask(plainAddress, header, "x")).length, ProxyProtocol.encode(header).length + 1)
    }).pipe(Effect.scoped))

  it.live("flags that do not fit are one line and a non-zero exit", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["--proxy-trusted", "10.0.0.0/8"], /^--proxy-trusted applies to --proxy-protocol/],
        [["--proxy-protocol", "--proxy-trusted", "lb.example"], /^--proxy-trusted: must hold IP addresses or CIDR networks, got "lb\.example"/],
        [["--proxy-protocol", "--proxy-trusted", "10.0.0.0/40"], /^--proxy-trusted: .*"10\.0\.0\.0\/40"/],
        [["--proxy-protocol", "--udp"], /^--udp cannot be combined with --proxy-protocol/]
      ]
      for (const [flags, message] of cases) {
        const run = yield* Effect.promise(() => runCli(dist, ["serve", "echo", "--port", "0", ...flags]))
        assert.notStrictEqual(run.code, 0)
        const lines = run.stderr.trim().split("\n")
        assert.strictEqual(lines.length, 1, run.stderr)
        assert.match(lines[0]!.replace(/^error: /, ""), message)
      }
    }))
})
