/**
 * The socket file of a Unix listener: a stale one (nobody accepts there) is
 * removed before listening, a live one or any other file is never touched,
 * and the file a listener created is removed when it stops.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import type * as Address from "../Address.js"
import * as NetError from "../NetError.js"

const UNIX_PROBE_TIMEOUT_MS = 1_000

/** Remove the socket file at `path` if it is still the one we created (`inode`). */
export const removeOwnSocketFile = (path: string, inode: number): void => {
  try {
    const stat = Fs.lstatSync(path)
    // Only the file we created: another server may have bound the path since.
    if (stat.isSocket() && stat.ino === inode) Fs.unlinkSync(path)
  } catch {
    // Already gone (libuv unlinks it when the server handle closes).
  }
}

/**
 * A Unix path may hold a socket file left by a server that died: nobody
 * accepts there (ECONNREFUSED), so it is removed. A live one is AddressInUse;
 * any other kind of file is never touched.
 */
export const prepareUnixPath = (address: Address.UnixAddress): Effect.Effect<void, NetError.ListenError> =>
  Effect.callback((resume) => {
    const path = address.path
    let stat: Fs.Stats
    try {
      stat = Fs.lstatSync(path)
    } catch (e) {
      // Nothing there: listening creates the file (or says which directory is missing).
      const code = (e as NodeJS.ErrnoException).code
      if (code === "ENOENT" || code === "ENOTDIR") return resume(Effect.void)
      return resume(Effect.fail(NetError.fromSystemError(e, { phase: "listen", address })))
    }
    if (!stat.isSocket()) {
      return resume(Effect.fail(
        new NetError.AddressInUse({
          address,
          code: "EADDRINUSE",
          detail: `${path} exists and is not a socket; it was left untouched: remove it or choose another path`
        })
      ))
    }
    const probe = Net.createConnection({ path })
    let settled = false
    const settle = (effect: Effect.Effect<void, NetError.ListenError>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      probe.destroy()
      resume(effect)
    }
    const live = (detail: string) =>
      Effect.fail(new NetError.AddressInUse({ address, code: "EADDRINUSE", detail }))
    // A live server with a full backlog may not answer; that still means "in use".
    const timer = setTimeout(
      () => settle(live("a server holds this socket file but did not answer")),
      UNIX_PROBE_TIMEOUT_MS
    )
    probe.once("connect", () => settle(live("a server is accepting connections on this socket file")))
    probe.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") {
        try {
          Fs.unlinkSync(path)
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
            return settle(Effect.fail(NetError.fromSystemError(e, {
              phase: "listen",
              address,
              detail: "cannot remove the stale socket file"
            })))
          }
        }
        return settle(Effect.void)
      }
      if (err.code === "EAGAIN") return settle(live("a server holds this socket file and its backlog is full"))
      settle(Effect.fail(NetError.fromSystemError(err, { phase: "listen", address })))
    })
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      probe.destroy()
    })
  })

/**
 * Why a Unix path cannot be bound, when the cause is its directory: libuv
 * reports a missing directory as EACCES, whose message speaks of privileges.
 * The nearest ancestor that exists decides: a directory means the one below
 * it is missing (ENOENT), a file means it is in the way (ENOTDIR). Undefined
 * when the directory exists or cannot be examined (a real EACCES).
 */
export const missingDirectory = (path: string): { readonly code: "ENOENT" | "ENOTDIR"; readonly detail: string } | undefined => {
  const directory = Path.dirname(path)
  for (let at = directory;; at = Path.dirname(at)) {
    let stat: Fs.Stats
    try {
      stat = Fs.statSync(at)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if ((code === "ENOENT" || code === "ENOTDIR") && Path.dirname(at) !== at) continue
      return undefined
    }
    if (stat.isDirectory()) {
      return at === directory ? undefined : { code: "ENOENT", detail: `the directory ${directory} does not exist` }
    }
    return { code: "ENOTDIR", detail: `${at} is not a directory` }
  }
}

/** A failed listen on a Unix path: its missing directory if that is the cause, else what Node said. */
export const listenError = (err: unknown, address: Address.UnixAddress): NetError.ListenError => {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  const missing = code === "EACCES" || code === "ENOENT" || code === "ENOTDIR" ? missingDirectory(address.path) : undefined
  return missing === undefined
    ? NetError.fromSystemError(err, { phase: "listen", address })
    : new NetError.PathNotFound({ address, code: missing.code, syscall: "listen", cause: err, detail: missing.detail })
}
