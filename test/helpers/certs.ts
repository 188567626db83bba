/**
 * Certificates made at test time with the `openssl` command, into a temp
 * directory, once per test process: a CA, a server certificate for
 * localhost/127.0.0.1/::1/example.test, one for another host, an expired
 * one, one not valid yet, a client certificate, and a second CA (and its
 * client certificate) that nobody trusts. EC P-256 keys: fast to make.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** One PEM certificate and its PEM key, with their file paths. */
export interface Pair {
  readonly cert: string
  readonly key: string
  readonly certFile: string
  readonly keyFile: string
}

export interface Certs {
  readonly dir: string
  /** The CA everything below is signed by (except `otherClient`). */
  readonly ca: string
  readonly caFile: string
  /** A CA nobody trusts. */
  readonly otherCa: string
  readonly otherCaFile: string
  /** SAN: localhost, example.test, 127.0.0.1, ::1. */
  readonly server: Pair
  /** SAN: other.test, *.example.org. */
  readonly wrongHost: Pair
  /** Valid 2020-01-01 to 2020-01-02, for localhost/127.0.0.1. */
  readonly expired: Pair
  /** Valid from 2099, for localhost/127.0.0.1. */
  readonly notYetValid: Pair
  /** Self-signed, for localhost/127.0.0.1. */
  readonly selfSigned: Pair
  /** A client certificate (CN=client.test) signed by the CA. */
  readonly client: Pair
  /** A client certificate signed by `otherCa`. */
  readonly otherClient: Pair
  /** Another server certificate signed by the CA (SAN: localhost, 127.0.0.1, api.example.test), for reload and SNI. */
  readonly server2: Pair
}

let made: Certs | undefined

const openssl = (dir: string, args: ReadonlyArray<string>): void => {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 })
}

const CA_CONF = `
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
[ req ]
distinguished_name = dn
[ dn ]
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
`

/** Make (once per process) and return the test certificates. Needs `openssl` on PATH. */
export const certs = (): Certs => {
  if (made !== undefined) return made
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "ew-tls-"))
  Fs.writeFileSync(Path.join(dir, "ca.conf"), CA_CONF)
  const read = (name: string) => Fs.readFileSync(Path.join(dir, name), "utf8")
  const key = (name: string) => openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`])
  const selfSignedCa = (name: string, cn: string) => {
    key(name)
    openssl(dir, [
      "req", "-x509", "-new", "-key", `${name}.key`, "-sha256", "-days", "3650", "-subj", `/CN=${cn}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
      "-out", `${name}.crt`
    ])
  }
  const leaf = (
    name: string,
    cn: string,
    san: string | undefined,
    issuer: string,
    dates: { readonly start: string; readonly end: string } | undefined
  ): Pair => {
    key(name)
    Fs.writeFileSync(Path.join(dir, "index.txt"), "")
    Fs.writeFileSync(Path.join(dir, "serial"), `${Date.now().toString(16).padStart(16, "0")}\n`)
    openssl(dir, [
      "req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`,
      ...(san === undefined ? [] : ["-addext", `subjectAltName=${san}`]), "-out", `${name}.csr`
    ])
    openssl(dir, [
      "ca", "-batch", "-config", "ca.conf", "-extensions", "leaf", "-notext", "-cert", `${issuer}.crt`,
      "-keyfile", `${issuer}.key`, "-in", `${name}.csr`, "-out", `${name}.crt`,
      "-startdate", (dates ?? valid).start, "-enddate", (dates ?? valid).end
    ])
    return pair(name)
  }
  const pair = (name: string): Pair => ({
    cert: read(`${name}.crt`),
    key: read(`${name}.key`),
    certFile: Path.join(dir, `${name}.crt`),
    keyFile: Path.join(dir, `${name}.key`)
  })
  const localhost = "DNS:localhost,IP:127.0.0.1"
  // From yesterday, so that a clock a second behind never sees them as not valid yet.
  const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z"
  const valid = { start: stamp(Date.now() - 86_400_000), end: stamp(Date.now() + 365 * 86_400_000) }
  selfSignedCa("ca", "effect-wire test CA")
  selfSignedCa("other-ca", "effect-wire untrusted CA")
  const server = leaf("server", "localhost", `${localhost},DNS:example.test,IP:::1`, "ca", undefined)
  const wrongHost = leaf("wrong-host", "other.test", "DNS:other.test,DNS:*.example.org", "ca", undefined)
  const expired = leaf("expired", "localhost", localhost, "ca", { start: "20200101000000Z", end: "20200102000000Z" })
  const notYetValid = leaf("future", "localhost", localhost, "ca", { start: "20990101000000Z", end: "20990102000000Z" })
  const client = leaf("client", "client.test", "DNS:client.test", "ca", undefined)
  const otherClient = leaf("other-client", "intruder.test", "DNS:intruder.test", "other-ca", undefined)
  const server2 = leaf("server2", "api.example.test", `${localhost},DNS:api.example.test`, "ca", undefined)
  key("self-signed")
  openssl(dir, [
    "req", "-x509", "-new", "-key", "self-signed.key", "-sha256", "-days", "365", "-subj", "/CN=localhost",
    "-addext", `subjectAltName=${localhost}`, "-out", "self-signed.crt"
  ])
  made = {
    dir,
    ca: read("ca.crt"),
    caFile: Path.join(dir, "ca.crt"),
    otherCa: read("other-ca.crt"),
    otherCaFile: Path.join(dir, "other-ca.crt"),
    server,
    wrongHost,
    expired,
    notYetValid,
    selfSigned: pair("self-signed"),
    client,
    otherClient,
    server2
  }
  process.once("exit", () => Fs.rmSync(dir, { recursive: true, force: true }))
  return made
}
