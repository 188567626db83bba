/**
 * The command line over TLS, run as the built artifact: `serve echo
 * --tls-cert/--tls-key` (and client certificates), the reload on SIGHUP,
 * `connect --tls`, and `serve exec`/`exec` over TLS (a token beyond
 * loopback only inside TLS), with certificates made at test time.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import * as Echo from "../src/servers/Echo.js"
import * as Socket from "../src/Socket.js"
import * as Tls from "../src/Tls.js"
import { certs } from "./helpers/certs.js"
import { dist, runCli, type RunOptions, startCli } from "./helpers/cliBuild.js"
import { tempDir } from "./helpers/sockets.js"

const c = certs()
const trusting: Tls.ClientOptions = { ca: c.ca, servername: "localhost" }

const start = (args: ReadonlyArray<string>, options?: RunOptions) =>
  Effect.acquireRelease(Effect.sync(() => startCli(dist, args, options)), (cli) => Effect.sync(() => cli.signal("SIGKILL")))

/** An IPv4 address of this machine beyond loopback, if it has one. */
const outside = Object.values(Os.networkInterfaces()).flat().find((a) => a !== undefined && !a.internal && a.family === "IPv4")
  ?.address

const listening = (cli: ReturnType<typeof startCli>) =>
  Effect.map(
    Effect.promise(() => cli.waitFor(/^listening tcp /)),
    (line) => Address.unsafeParse(line.replace(/^listening tcp /, ""))
  )

const subjectOf = (address: Address.Address) =>
  Effect.scoped(Effect.map(
    Socket.connect(address, { tls: trusting }),
    (socket) => Option.getOrThrow(Option.getOrThrow(Tls.info(socket)).peerCertificate).subject
  ))

describe("effect-wire serve/connect with TLS", () => {
  it.live("serve echo --tls-cert/--tls-key serves TLS, and SIGHUP reloads the certificate files", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cert = Path.join(dir, "cert.pem")
      const key = Path.join(dir, "key.pem")
      Fs.copyFileSync(c.server.certFile, cert)
      Fs.copyFileSync(c.server.keyFile, key)
      const cli = yield* start(["serve", "echo", "--port", "0", "--tls-cert", cert, "--tls-key", key])
      const address = yield* listening(cli)
      const client = yield* Echo.client(address, { tls: trusting })
      assert.strictEqual(Buffer.from(yield* client.request("over tls")).toString(), "over tls")
      assert.strictEqual(yield* subjectOf(address), "CN=localhost")
      // Renewed files, then SIGHUP.
      Fs.copyFileSync(c.server2.certFile, cert)
      Fs.copyFileSync(c.server2.keyFile, key)
      cli.signal("SIGHUP")
      yield* Effect.promise(() => cli.waitFor(/^tls: certificates reloaded from .* \(reload 1\)/, "stderr"))
      assert.strictEqual(yield* subjectOf(address), "CN=api.example.test")
      // The connection made before the reload still works.
      assert.strictEqual(Buffer.from(yield* client.request("still")).toString(), "still")
      // A broken key file: the old certificate stays.
      Fs.writeFileSync(key, "not a key")
      cli.signal("SIGHUP")
      yield* Effect.promise(() => cli.waitFor(/^tls: certificates NOT reloaded, the old ones stay in use: /, "stderr"))
      assert.strictEqual(yield* subjectOf(address), "CN=api.example.test")
      cli.signal("SIGTERM")
      const exit = yield* Effect.promise(() => cli.exit)
      assert.strictEqual(exit.code, 0)
      assert.notInclude(exit.stderr, "PRIVATE KEY")
    }))

  it.live("connect --tls talks to it; without the CA it fails with one line naming the problem", () =>
    Effect.gen(function*() {
      const cli = yield* start([
        "serve", "upper", "--port", "0", "--tls-cert", c.server.certFile, "--tls-key", c.server.keyFile,
        "--tls-ca", c.caFile, "--tls-client-cert", "required"
      ])
      const address = Address.format(yield* listening(cli))
      const ok = yield* Effect.promise(() =>
        runCli(dist, [
          "connect", address, "--tls", "--tls-ca", c.caFile, "--tls-servername", "localhost",
          "--tls-cert", c.client.certFile, "--tls-key", c.client.keyFile
        ], { input: "hello\n" })
      )
      assert.strictEqual(ok.code, 0, ok.stderr)
      assert.strictEqual(ok.stdout, "HELLO\n")
      const untrusted = yield* Effect.promise(() => runCli(dist, ["connect", address, "--tls", "--tls-servername", "localhost"], { input: "x\n" }))
      assert.strictEqual(untrusted.code, 1)
      assert.match(untrusted.stderr, /^error: the certificate of 127\.0\.0\.1:\d+ \(CN=localhost\) is not trusted: add the CA that issued it to tls\.ca/)
      const insecure = yield* Effect.promise(() =>
        runCli(dist, ["connect", address, "--tls", "--tls-insecure", "--tls-cert", c.client.certFile, "--tls-key", c.client.keyFile], { input: "y\n" })
      )
      assert.strictEqual(insecure.stdout, "Y\n", insecure.stderr)
      assert.match(insecure.stderr, /rejectUnauthorized is false/)
    }))

  it.live("TLS flags that do not go together are one error line", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [["serve", "echo", "--port", "0", "--tls-cert", c.server.certFile], /^error: --tls-cert needs --tls-key/],
        [["serve", "echo", "--port", "0", "--tls-key", c.server.keyFile], /^error: --tls-key applies to TLS: add --tls-cert and --tls-key/],
        [["serve", "echo", "--port", "0", "--tls-cert", c.server.certFile, "--tls-key", c.client.keyFile], /^error: --tls-cert\/--tls-key: unusable TLS credentials: .*key values mismatch/],
        [["serve", "echo", "--port", "0", "--tls-cert", "/nonexistent.pem", "--tls-key", c.server.keyFile], /^error: --tls-cert \/nonexistent\.pem: cannot read it: /],
        [["serve", "echo", "--port", "0", "--udp", "--tls-cert", c.server.certFile, "--tls-key", c.server.keyFile], /^error: --udp cannot be combined with --tls-cert/],
        [["connect", "127.0.0.1:9", "--tls-ca", c.caFile], /^error: --tls-ca applies to TLS: add --tls/]
      ]
      for (const [args, pattern] of cases) {
        const run = yield* Effect.promise(() => runCli(dist, args, { input: "" }))
        assert.strictEqual(run.code, 1, `${args.join(" ")}: ${run.stderr}`)
        assert.match(run.stderr, pattern)
        assert.strictEqual(run.stderr.trim().split("\n").length, 1, run.stderr)
      }
    }))

  it.live("the key never shows in an error", () =>
    Effect.gen(function*() {
      const run = yield* Effect.promise(() =>
        runCli(dist, ["serve", "echo", "--port", "0", "--tls-cert", c.server.certFile, "--tls-key", c.client.keyFile], { input: "" })
      )
      assert.strictEqual(run.code, 1)
      assert.notInclude(run.stderr, "PRIVATE KEY")
      assert.notInclude(run.stderr, Fs.readFileSync(c.client.keyFile, "utf8").split("\n")[1]!)
    }))
})

describe("effect-wire serve exec / exec with TLS", () => {
  const tokenFile = Effect.map(tempDir, (dir) => {
    const file = Path.join(dir, "token")
    Fs.writeFileSync(file, "t0ken-inside-tls\n", { mode: 0o600 })
    return file
  })
  const env = { EW_TOKEN: "t0ken-inside-tls" }
  const tlsClient = ["--tls", "--tls-ca", c.caFile, "--tls-servername", "localhost"]
  // The servers live for the whole case: startCli's default 15 s kill is too short on a loaded machine.
  const long = { timeoutMs: 85_000 }

  it.live("exec --tls runs a command with its token on serve exec --tls-cert/--tls-key; mutual TLS refuses a client without a certificate", () =>
    Effect.gen(function*() {
      const token = yield* tokenFile
      const cli = yield* start([
        "serve", "exec", "--port", "0", "--allow", "echo", "--token-file", token,
        "--tls-cert", c.server.certFile, "--tls-key", c.server.keyFile
      ], long)
      const address = Address.format(yield* listening(cli))
      const ok = yield* Effect.promise(() =>
        runCli(dist, ["exec", address, ...tlsClient, "--token-env", "EW_TOKEN", "--", "echo", "over", "tls"], { env })
      )
      assert.strictEqual(ok.code, 0, ok.stderr)
      assert.strictEqual(ok.stdout, "over tls\n")
      // Without --tls the client speaks plaintext to a TLS port: no command runs.
      const plain = yield* Effect.promise(() =>
        runCli(dist, ["exec", address, "--timeout", "5s", "--token-env", "EW_TOKEN", "--", "echo", "x"], { env })
      )
      assert.notStrictEqual(plain.code, 0)
      assert.strictEqual(plain.stdout, "")

      const mutual = yield* start([
        "serve", "exec", "--port", "0", "--allow", "echo", "--tls-cert", c.server.certFile, "--tls-key",
        c.server.keyFile, "--tls-ca", c.caFile, "--tls-client-cert", "required"
      ], long)
      const mutualAddress = Address.format(yield* listening(mutual))
      const withCert = yield* Effect.promise(() =>
        runCli(dist, ["exec", mutualAddress, ...tlsClient, "--tls-cert", c.client.certFile, "--tls-key", c.client.keyFile, "--", "echo", "mutual"])
      )
      assert.strictEqual(withCert.code, 0, withCert.stderr)
      assert.strictEqual(withCert.stdout, "mutual\n")
      const without = yield* Effect.promise(() =>
        runCli(dist, ["exec", mutualAddress, ...tlsClient, "--", "echo", "no"], { timeoutMs: 45_000 })
      )
      assert.strictEqual(without.code, 125, without.stderr)
      assert.strictEqual(without.stdout, "")
      assert.strictEqual(without.stderr.trim().split("\n").length, 1, without.stderr)
      // The server that refused it logs why (a warning: a client of ours that cannot connect).
      yield* Effect.promise(() => mutual.waitFor(/TLS handshake with 127\.0\.0\.1:\d+ failed: PeerCertificateMissing/, "stderr"))
      // An untrusted server certificate: one line naming the problem, nothing sent.
      const untrusted = yield* Effect.promise(() =>
        runCli(dist, ["exec", address, "--tls", "--tls-servername", "localhost", "--token-env", "EW_TOKEN", "--", "echo", "x"], { env })
      )
      assert.strictEqual(untrusted.code, 125)
      assert.match(untrusted.stderr, /^error: the certificate of 127\.0\.0\.1:\d+ \(CN=localhost\) is not trusted/)
    }), 90_000)

  it.live(
    `serve exec refuses a token in plaintext beyond loopback (${outside ?? "0.0.0.0"}) unless --insecure-plaintext; with TLS it serves there`,
    () =>
      Effect.gen(function*() {
        const token = yield* tokenFile
        const host = outside ?? "0.0.0.0"
        const refused = yield* Effect.promise(() =>
          runCli(dist, ["serve", "exec", "--host", host, "--port", "0", "--allow", "echo", "--token-file", token])
        )
        assert.strictEqual(refused.code, 1)
        assert.strictEqual(refused.stdout, "", "nothing listened")
        assert.match(
          refused.stderr,
          new RegExp(`^error: refusing to serve exec in plaintext on ${host.replace(/\./g, "\\.")}:0: the token, the commands and their output would cross the network in clear text; add --tls-cert FILE --tls-key FILE`)
        )
        assert.strictEqual(refused.stderr.trim().split("\n").length, 1, refused.stderr)
        // The flags that contradict each other.
        const both = yield* Effect.promise(() =>
          runCli(dist, [
            "serve", "exec", "--port", "0", "--allow", "echo", "--insecure-plaintext",
            "--tls-cert", c.server.certFile, "--tls-key", c.server.keyFile
          ])
        )
        assert.strictEqual(both.code, 1)
        assert.match(both.stderr, /^error: --insecure-plaintext contradicts --tls-cert/)
        // The client refuses to send a token in clear text beyond loopback before it connects.
        const client = yield* Effect.promise(() =>
          runCli(dist, ["exec", "192.0.2.1:9", "--token-env", "EW_TOKEN", "--", "echo", "x"], { env })
        )
        assert.strictEqual(client.code, 125)
        assert.match(client.stderr, /^error: refusing to send the token to 192\.0\.2\.1:9 in plaintext: .* add --tls/)
        if (outside === undefined) return
        // An operator who accepts the risk gets a warning.
        const insecure = yield* start([
          "serve", "exec", "--host", outside, "--port", "0", "--allow", "echo", "--token-file", token, "--insecure-plaintext"
        ], long)
        yield* listening(insecure)
        yield* Effect.promise(() => insecure.waitFor(/^warning: serving exec in plaintext on .* \(--insecure-plaintext\)/, "stderr"))
        // With TLS the same address serves, and the token crosses only inside TLS.
        const secure = yield* start([
          "serve", "exec", "--host", outside, "--port", "0", "--allow", "echo", "--token-file", token,
          "--tls-cert", c.server.certFile, "--tls-key", c.server.keyFile
        ], long)
        const at = Address.format(yield* listening(secure))
        const ok = yield* Effect.promise(() =>
          runCli(dist, ["exec", at, ...tlsClient, "--token-env", "EW_TOKEN", "--", "echo", "from", "outside"], { env })
        )
        assert.strictEqual(ok.code, 0, ok.stderr)
        assert.strictEqual(ok.stdout, "from outside\n")
      }),
    90_000
  )
})

describe("effect-wire serve --tls-cert: V8's heap", () => {
  /**
   * In a fresh Node process: `tuneHeapForTls(argv)` (from the built CLI, as bin.js calls it first), then 3 million
   * short-lived objects; prints the flags it set and the young generation's size before and after them (MB).
   */
  const youngAfter = (argv: ReadonlyArray<string>, nodeOptions: ReadonlyArray<string> = []) =>
    Effect.promise(() =>
      new Promise<{ flags: ReadonlyArray<string>; before: number; after: number }>((resolve, reject) => {
        const script = `
          const V8 = await import("node:v8")
          const { tuneHeapForTls } = await import(${JSON.stringify(Path.join(dist, "src", "cli", "tlsHeap.js"))})
          const young = () => V8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 2 ** 20
          const flags = tuneHeapForTls(${JSON.stringify(argv)})
          const before = young()
          let keep = []
          for (let i = 0; i < 3e6; i++) { keep.push({ i, s: "x" + i }); if (keep.length > 200000) keep = [] }
          console.log(JSON.stringify({ flags, before, after: young() }))`
        execFile(process.execPath, [...nodeOptions, "--input-type=module", "-e", script], { timeout: 30_000 }, (error, stdout) =>
          error !== null ? reject(error) : resolve(JSON.parse(stdout)))
      })
    )

  it.live("serve --tls-cert holds the young generation at its start-up size and lets the old one grow to 3x; other commands, and a process given its own flag, are left alone", () =>
    Effect.gen(function*() {
      const tlsArgv = ["node", "main.js", "serve", "echo", "--tls-cert", "c.pem", "--tls-key", "k.pem"]
      const [tls, plaintext, client, ownYoung, ownOld] = yield* Effect.all([
        youngAfter(tlsArgv),
        youngAfter(["node", "main.js", "serve", "echo"]),
        youngAfter(["node", "main.js", "connect", "localhost:1", "--tls-cert", "c.pem"]),
        youngAfter(["node", "main.js", "serve", "echo", "--tls-cert=c.pem"], ["--max-semi-space-size=16"]),
        youngAfter(tlsArgv, ["--heap-growing-percent=50"])
      ], { concurrency: "unbounded" })
      // Held: it does not grow. Its size is 2 MB at most reads, but V8 counts the pages it is promoting
      // too, so a read may find 4-12 MB (the same with --max-semi-space-size=1 given at start; 2 of 12
      // runs found more than the 2 MB this test used to allow) ...
      assert.deepStrictEqual(tls.flags, ["--semi-space-growth-factor=1", "--heap-growing-percent=200"])
      assert.isAtMost(tls.after, 16, JSON.stringify(tls))
      // ... where V8 otherwise grows it past 8 MB, to 128 MB on Node 24, under the same allocations.
      assert.deepStrictEqual(plaintext.flags, [])
      assert.isAbove(plaintext.after, 8, JSON.stringify(plaintext))
      assert.isAtLeast(plaintext.after, 64, JSON.stringify(plaintext))
      assert.deepStrictEqual(client.flags, [])
      // A flag of the process's own wins, for its generation only.
      assert.deepStrictEqual(ownYoung.flags, ["--heap-growing-percent=200"])
      assert.deepStrictEqual(ownOld.flags, ["--semi-space-growth-factor=1"])
      assert.isAtMost(ownOld.after, 16, JSON.stringify(ownOld))
    }), 60_000)
})
