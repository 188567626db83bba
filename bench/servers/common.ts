/**
 * What the Effect-handler bench servers share: the `listening` line the
 * runner waits for, and the shape of a program per kind.
 */
import * as Effect from "effect/Effect"

/** Where a server listens: from `--host` and `--port`. */
export interface Listen {
  readonly host: string
  readonly port: number
}

/** The servers of one module, by kind; each runs until the process is stopped. */
export type Programs = Record<string, (listen: Listen) => Effect.Effect<unknown, unknown>>

/** The line bench/processes.ts waits for. */
export const listening = (where: string): Effect.Effect<void> =>
  Effect.sync(() => void process.stdout.write(`listening tcp ${where}\n`))

/** `listening tcp HOST:PORT` for an `effect/socket` SocketServer's address. */
export const listeningAt = (
  address: { readonly _tag: string; readonly port?: number; readonly path?: string },
  host: string
): Effect.Effect<void> => listening(address._tag === "UnixPathAddress" ? String(address.path) : `${host}:${address.port}`)
