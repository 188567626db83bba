/**
 * The client side of the PROXY protocol: the header `Socket.connect` writes
 * first (`proxyHeader`), encoded once and checked before anything connects.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as ProxyProtocol from "../ProxyProtocol.js"
import type * as Socket from "../Socket.js"
import * as Check from "./options.js"

/** The bytes of `options.proxyHeader`; an impossible header is a defect naming the option. */
export const proxyHeaderBytes = (options: Socket.ConnectOptions, tls: boolean): Buffer | undefined => {
  const header = options.proxyHeader
  if (header === undefined) return undefined
  if (tls) {
    throw Check.defect(
      "Socket",
      "proxyHeader",
      "cannot be combined with tls on the client yet: connect without tls, or put a load balancer in front"
    )
  }
  try {
    return Buffer.from(ProxyProtocol.encode(header))
  } catch (e) {
    throw e instanceof Cause.IllegalArgumentError
      ? Check.defect("Socket", "proxyHeader", `is impossible: ${e.message.replace(/^ProxyProtocol\.encode: /, "")}`)
      : e
  }
}
