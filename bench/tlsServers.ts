/**
 * The TLS reference server of the bench, a process of its own that prints
 * `listening tcp HOST:PORT` like the effect-wire CLI:
 *
 *   node dist/bench/tlsServers.js node-tls --cert FILE --key FILE [--host 127.0.0.1] [--port 0]
 *
 * The fastest TLS echo Node can do: a `node:tls` server whose sockets are
 * `socket.pipe(socket)`, with TCP_NODELAY and `allowHalfOpen` as effect-wire's
 * `serve echo --tls-cert` has them, the same certificate and key, and Node's
 * default TLS settings on both (TLS 1.3, its default ciphers). effect-wire's
 * side of the comparison is the CLI itself (`serve echo --tls-cert/--tls-key`).
 */
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as NodeTls from "node:tls"
import { serveUntilSignal } from "./common.js"

const main = (): void => {
  const [mode, ...rest] = process.argv.slice(2)
  const option = (name: string, fallback?: string): string => {
    const at = rest.indexOf(name)
    const value = at >= 0 ? rest[at + 1] : fallback
    if (value === undefined) usage(`${name} is required`)
    return value
  }
  if (mode !== "node-tls") usage(`unknown server ${JSON.stringify(mode)}`)
  const server = NodeTls.createServer({
    cert: Fs.readFileSync(option("--cert")),
    key: Fs.readFileSync(option("--key")),
    allowHalfOpen: true,
    noDelay: true
  } as NodeTls.TlsOptions & Net.ServerOpts, (socket) => {
    socket.on("error", () => socket.destroy())
    socket.pipe(socket)
  })
  // A failed handshake is the client's problem (the handshake bench's clients hang up at once).
  server.on("tlsClientError", () => {})
  serveUntilSignal(server, option("--host", "127.0.0.1"), Number(option("--port", "0")))
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: tlsServers.js node-tls --cert FILE --key FILE [--host 127.0.0.1] [--port 0]\n`)
  process.exit(2)
}

main()
