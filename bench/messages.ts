/**
 * The Schemas of the bench's typed services (bench/effectServers.ts), kept
 * apart from bench/common.ts so the load generator, plain node:net, never
 * loads `effect`. The load generator writes these messages by hand
 * (`jsonBody` in bench/common.ts); both must agree.
 */
import * as Schema from "effect/Schema"

/** A request of the JSON services and of the RPC `Echo`: sequence number, connection, padding to the frame size. */
export const JsonMessage = Schema.Struct({ seq: Schema.Number, conn: Schema.Number, pad: Schema.String })
