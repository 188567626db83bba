/**
 * Socket's internal twin: the values src/Socket.ts re-exports typed, so that
 * the public module reaches the node:net adapter through this one entry.
 *
 * @internal
 */
export { connect } from "./nodeConnect.js"
export { listen } from "./nodeListener.js"
export { pump } from "./pump.js"
export { TypeId } from "./socketContract.js"
