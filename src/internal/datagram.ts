/**
 * Datagram's internal twin: the values src/Datagram.ts re-exports typed, so
 * that the public module reaches the node:dgram adapter through this one entry.
 *
 * @internal
 */
export { bind, connect, TypeId } from "./nodeDatagram.js"
