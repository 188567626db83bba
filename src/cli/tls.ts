/**
 * The TLS flags of `serve` (`--tls-cert`, `--tls-key`, `--tls-ca`,
 * `--tls-client-cert`) and of `connect` and `exec` (`--tls`, `--tls-ca`,
 * `--tls-servername`, `--tls-cert`, `--tls-key`, `--tls-insecure`), the
 * certificates read from their files, and the reload on SIGHUP: `serve`
 * reads the files again and swaps the certificates for new handshakes (open
 * connections keep theirs); a file that cannot be used leaves the old ones
 * in place, with one line on stderr either way. The Tls module is loaded
 * only when a TLS flag is given. Exec's rule for plaintext (`serve exec` and
 * `exec` with a token beyond loopback need TLS or `--insecure-plaintext`)
 * lives here too.
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
import { isIP } from "node:net"
import * as Address from "../Address.js"
import * as Tls from "../Tls.js"
import { choiceOption, CliError, messageOf } from "./common.js"

const file = (name: string, what: string) =>
  Flag.String(name).pipe(Flag.withMetavar("FILE"), Flag.withDescription(what), Flag.optional)

/**
 * The flags `serve echo|upper|exec` take for TLS.
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
 * The flags `connect` and `exec` take for TLS.
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

/**
 * `--insecure-plaintext` of `serve exec` and `exec`: let the token cross a
 * network in clear text (see {@link execPlaintext}).
 *
 * ```ts
 * const options = { ...connectTlsFlags, insecurePlaintext: insecurePlaintextFlag("client") }
 * ```
 *
 * @since 0.2.0
 * @category flags
 */
export const insecurePlaintextFlag = (who: "server" | "client") =>
  Flag.Boolean("insecure-plaintext").pipe(
    Flag.withDescription(
      who === "server"
        ? "Serve exec without TLS on an address beyond loopback anyway: the token, the commands and their output " +
          "cross the network in clear text, readable and changeable by anyone on the path (default: refused)."
        : "Send the token to an address beyond loopback without --tls anyway: anyone on the path can read it " +
          "(default: refused)."
    ),
    Flag.withDefault(false)
  )

/**
 * The addresses beyond loopback `address` stands for: an IP that is not
 * 127.0.0.0/8 or ::1, or what a host name resolves to when any of that is
 * not loopback; undefined for loopback, a Unix socket, or a name that does
 * not resolve (the listener or the connect reports that).
 */
const beyondLoopback = (address: Address.Address): Effect.Effect<ReadonlyArray<string> | undefined> => {
  if (address._tag === "UnixAddress") return Effect.succeed(undefined)
  const host = address.host.replace(/^\[(.*)\]$/, "$1")
  if (isIP(host) !== 0) return Effect.succeed(Address.isLoopback(address) ? undefined : [host])
  return Effect.promise(() => process.getBuiltinModule("node:dns/promises").lookup(host, { all: true }).then((all) => all.map((a) => a.address), () => [])).pipe(
    Effect.map((all) => all.length === 0 || all.every((ip) => Address.isLoopback(Address.tcp(ip, 0))) ? undefined : all)
  )
}

/**
 * Exec's rule for plaintext, for the server (`serve exec`) and the client
 * (`exec`): a token must not cross a network in clear text, so with a token
 * and without TLS an address beyond loopback is refused (one error line,
 * before anything is bound or sent) unless `--insecure-plaintext` is given,
 * which prints a warning instead. Loopback and Unix sockets never leave the
 * machine; without a token the server's own rule applies (`InsecureBind`).
 * Returns the warning to print, if any.
 *
 * ```ts
 * const warning = yield* execPlaintext("server", address, { tls: false, token: true, insecurePlaintext: false })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const execPlaintext = (
  who: "server" | "client",
  address: Address.Address,
  options: { readonly tls: boolean; readonly token: boolean; readonly insecurePlaintext: boolean }
): Effect.Effect<string | undefined, CliError> =>
  Effect.gen(function*() {
    if (options.tls && options.insecurePlaintext) {
      return yield* fail(
        `--insecure-plaintext contradicts ${who === "server" ? "--tls-cert" : "--tls"}: drop one of them`
      )
    }
    if (options.tls || !options.token) return undefined
    const beyond = yield* beyondLoopback(address)
    if (beyond === undefined) return undefined
    const at = `${Address.format(address)}${
      address._tag === "TcpAddress" && isIP(address.host.replace(/^\[(.*)\]$/, "$1")) === 0
        ? ` (it resolves to ${beyond.join(", ")})`
        : ""
    }`
    if (options.insecurePlaintext) {
      return who === "server"
        ? `warning: serving exec in plaintext on ${at} (--insecure-plaintext): the token, the commands and their ` +
          "output cross the network in clear text, readable and changeable by anyone on the path"
        : `warning: sending the token to ${at} in plaintext (--insecure-plaintext): anyone on the path can read it`
    }
    return yield* fail(
      who === "server"
        ? `refusing to serve exec in plaintext on ${at}: the token, the commands and their output would cross ` +
          "the network in clear text; add --tls-cert FILE --tls-key FILE (clients then run effect-wire exec --tls), " +
          "listen on 127.0.0.1, ::1 or --unix, or accept the risk with --insecure-plaintext"
        : `refusing to send the token to ${at} in plaintext: anyone on the path could read it; add --tls (the ` +
          "server runs serve exec --tls-cert/--tls-key), or accept the risk with --insecure-plaintext"
    )
  })
