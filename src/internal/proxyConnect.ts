/**
 * The client side of the PROXY protocol: the header `Socket.connect` writes
 * first (`proxyHeader`), encoded once and checked before anything connects;
 * with TLS, on the TCP connection before the handshake.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Net from "node:net"
import type * as NodeTls from "node:tls"
import type * as Address from "../Address.js"
import * as ProxyProtocol from "../ProxyProtocol.js"
import type * as Socket from "../Socket.js"
import type { Raw } from "./nodeSocket.js"
import * as Check from "./options.js"

/** The bytes of `options.proxyHeader`; an impossible header is a defect naming the option. */
export const proxyHeaderBytes = (options: Socket.ConnectOptions): Buffer | undefined => {
  const header = options.proxyHeader
  if (header === undefined) return undefined
  try {
    return Buffer.from(ProxyProtocol.encode(header))
  } catch (e) {
    throw e instanceof Cause.IllegalArgumentError
      ? Check.defect("Socket", "proxyHeader", `is impossible: ${e.message.replace(/^ProxyProtocol\.encode: /, "")}`)
      : e
  }
}

/**
 * A TLS client connection whose PROXY header goes first, in clear, as a load
 * balancer sends it: the TCP connection is made, the header queued on it,
 * and node:tls handshakes over it once it connects.
 */
export const tlsAfterHeader = (address: Address.Address, node: NodeTls.ConnectionOptions, header: Buffer): Raw => {
  const tcp = address._tag === "TcpAddress"
    ? Net.createConnection({ host: address.host, port: address.port, allowHalfOpen: true })
    : Net.createConnection({ path: address.path, allowHalfOpen: true })
  tcp.write(header)
  const tls = process.getBuiltinModule("node:tls").connect({ ...node, socket: tcp, allowHalfOpen: true } as NodeTls.ConnectionOptions)
  // A refused or reset TCP connection fails the TLS socket with its error.
  tcp.on("error", (error) => tls.destroy(error))
  return tls
}
