/**
 * The TLS flags of `serve` (`--tls-cert`, `--tls-key`, `--tls-ca`,
 * `--tls-client-cert`) and of `connect` (`--tls`, `--tls-ca`,
 * `--tls-servername`, `--tls-cert`, `--tls-key`, `--tls-insecure`), the
 * certificates read from their files, and the reload on SIGHUP: `serve`
 * reads the files again and swaps the certificates for new handshakes (open
 * connections keep theirs); a file that cannot be used leaves the old ones
 * in place, with one line on stderr either way. The Tls module is loaded
 * only when a TLS flag is given.
 *
 * ```sh
 * effect-wire serve echo --tls-cert server.pem --tls-key server-key.pem
 * kill -HUP $PID   # after renewing server.pem and server-key.pem
 * printf 'hi\n' | effect-wire connect localhost:9000 --tls --tls-ca ca.pem
 * ```
 *
 * @since 0.2.0
 */
import type * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import type * as Tls from "../Tls.js"
import { choiceOption, CliError, messageOf } from "./common.js"

const file = (name: string, what: string) =>
  Flag.String(name).pipe(Flag.withMetavar("FILE"), Flag.withDescription(what), Flag.optional)

/**
 * The flags `serve echo|upper` takes for TLS.
 *
 * @since 0.2.0
 * @category flags
 */
export const serveTlsFlags = {
  tlsCert: file(
    "tls-cert",
    "Speak TLS with this certificate chain (PEM, leaf first); needs --tls-key. SIGHUP reloads it and the key."
  ),
  tlsKey: file("tls-key", "The private key of --tls-cert (PEM)."),
  tlsCa: file("tls-ca", "With --tls-client-cert: the CAs client certificates must chain to (PEM)."),
  tlsClientCert: choiceOption("tls-client-cert", ["required", "optional"] as const).pipe(
    Flag.withDescription(
      "Ask clients for a certificate verified against --tls-ca: required refuses a client without one, optional " +
        "serves it (default: not asked)."
    ),
    Flag.optional
  )
} as const

/**
 * The flags `connect` takes for TLS.
 *
 * @since 0.2.0
 * @category flags
 */
export const connectTlsFlags = {
  tls: Flag.Boolean("tls").pipe(
    Flag.withDescription("Speak TLS: the server's certificate and host name are checked (see --tls-ca)."),
    Flag.withDefault(false)
  ),
  tlsCa: file("tls-ca", "With --tls: trust these CAs (PEM) instead of the bundled public ones."),
  tlsServername: Flag.String("tls-servername").pipe(
    Flag.withMetavar("NAME"),
    Flag.withDescription("With --tls: the name to ask for (SNI) and check the certificate against (default: the host)."),
    Flag.optional
  ),
  tlsCert: file("tls-cert", "With --tls: our certificate (PEM), for a server that asks for one; needs --tls-key."),
  tlsKey: file("tls-key", "The private key of --tls-cert (PEM)."),
  tlsInsecure: Flag.Boolean("tls-insecure").pipe(
    Flag.withDescription(
      "With --tls: do NOT check the server's certificate or host name (anyone on the path can read and change " +
        "the traffic); for tests only."
    ),
    Flag.withDefault(false)
  )
} as const

type ServeFlags = Command.Command.Config.Infer<typeof serveTlsFlags>
type ConnectFlags = Command.Command.Config.Infer<typeof connectTlsFlags>

const read = (flag: string, path: string): Effect.Effect<string, CliError> =>
  Effect.try({
    try: () => Fs.readFileSync(path, "utf8"),
    catch: (e) => new CliError({ message: `--${flag} ${path}: cannot read it: ${messageOf(e)}` })
  })

const fail = (message: string) => Effect.fail(new CliError({ message }))

/** The server material from the files the flags name. */
const readMaterial = (
  cert: string,
  key: string,
  ca: string | undefined
): Effect.Effect<Tls.ServerMaterial, CliError> =>
  Effect.gen(function*() {
    const identity: Tls.Identity = { cert: yield* read("tls-cert", cert), key: Redacted.make(yield* read("tls-key", key)) }
    return ca === undefined ? { identity } : { identity, clientCa: yield* read("tls-ca", ca) }
  })

/**
 * `serve`'s TLS options from its flags (`undefined` without `--tls-cert`),
 * with the reload on SIGHUP for as long as the scope lasts, and the words
 * for the limits line.
 *
 * @since 0.2.0
 * @category constructors
 */
export const serveTls = (
  flags: ServeFlags
): Effect.Effect<{ readonly tls: Tls.ServerOptions | undefined; readonly summary: string }, CliError, Scope.Scope> =>
  Effect.gen(function*() {
    const cert = Option.getOrUndefined(flags.tlsCert)
    const key = Option.getOrUndefined(flags.tlsKey)
    const ca = Option.getOrUndefined(flags.tlsCa)
    const clientCert = Option.getOrUndefined(flags.tlsClientCert)
    if (cert === undefined) {
      const stray = key !== undefined ? "--tls-key" : ca !== undefined ? "--tls-ca" : clientCert !== undefined ? "--tls-client-cert" : undefined
      if (stray !== undefined) return yield* fail(`${stray} applies to TLS: add --tls-cert and --tls-key`)
      return { tls: undefined, summary: "off" }
    }
    if (key === undefined) return yield* fail("--tls-cert needs --tls-key: the private key of the certificate")
    if (clientCert !== undefined && ca === undefined) {
      return yield* fail("--tls-client-cert needs --tls-ca: the CAs client certificates must chain to")
    }
    if (clientCert === undefined && ca !== undefined) {
      return yield* fail("--tls-ca applies to --tls-client-cert: the server checks client certificates against it")
    }
    const Tls = yield* Effect.promise(() => import("../Tls.js"))
    const credentials = yield* Effect.flatMap(readMaterial(cert, key, ca), Tls.serverCredentials).pipe(
      Effect.mapError((e) => e._tag === "CliError" ? e : new CliError({ message: `--tls-cert/--tls-key: ${e.message}` }))
    )
    const reload = Effect.flatMap(readMaterial(cert, key, ca), credentials.reload).pipe(
      Effect.andThen(credentials.generation),
      Effect.match({
        onFailure: (e) => `tls: certificates NOT reloaded, the old ones stay in use: ${e.message}\n`,
        onSuccess: (n) => `tls: certificates reloaded from ${cert} (reload ${n}); new connections use them\n`
      }),
      Effect.flatMap((line) => Effect.sync(() => void process.stderr.write(line)))
    )
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const onHup = () => void runFork(reload)
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on("SIGHUP", onHup)),
      () => Effect.sync(() => void process.off("SIGHUP", onHup))
    )
    return {
      tls: { credentials, ...(clientCert === undefined ? {} : { clientCertificate: clientCert }) },
      summary: clientCert === undefined ? "on" : `on,client-cert=${clientCert}`
    }
  })

/**
 * `connect`'s TLS options from its flags (`undefined` without `--tls`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const connectTls = (flags: ConnectFlags): Effect.Effect<Tls.ClientOptions | undefined, CliError> =>
  Effect.gen(function*() {
    const ca = Option.getOrUndefined(flags.tlsCa)
    const servername = Option.getOrUndefined(flags.tlsServername)
    const cert = Option.getOrUndefined(flags.tlsCert)
    const key = Option.getOrUndefined(flags.tlsKey)
    if (!flags.tls) {
      const stray = ca !== undefined
        ? "--tls-ca"
        : servername !== undefined
        ? "--tls-servername"
        : cert !== undefined
        ? "--tls-cert"
        : key !== undefined
        ? "--tls-key"
        : flags.tlsInsecure
        ? "--tls-insecure"
        : undefined
      if (stray !== undefined) return yield* fail(`${stray} applies to TLS: add --tls`)
      return undefined
    }
    if ((cert === undefined) !== (key === undefined)) {
      return yield* fail("--tls-cert and --tls-key go together: a certificate and its private key")
    }
    if (flags.tlsInsecure && ca !== undefined) {
      return yield* fail("--tls-insecure checks no certificate: drop --tls-ca, or drop --tls-insecure")
    }
    return {
      ...(ca === undefined ? {} : { ca: yield* read("tls-ca", ca) }),
      ...(servername === undefined ? {} : { servername }),
      ...(cert === undefined || key === undefined
        ? {}
        : { identity: { cert: yield* read("tls-cert", cert), key: Redacted.make(yield* read("tls-key", key)) } }),
      ...(flags.tlsInsecure ? { rejectUnauthorized: false } : {})
    }
  })
