/**
 * The socket file of a Unix address. A listener's: a stale one (nobody
 * accepts there) is removed before listening, a live one or any other file
 * is never touched, the file appears at its path with its final mode (never
 * the umask's), and the file a listener created is removed when it stops. A
 * client's: whose file it is, checked before connecting (`unixOwner`).
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

/** The longest Unix socket path the kernel takes: sun_path is 108 bytes on Linux, 104 on macOS and the BSDs. */
const SUN_PATH_MAX = process.platform === "linux" ? 108 : 104

/**
 * Where a Unix listener binds before its socket file is given its mode: a
 * fresh directory beside the path that only this user can enter.
 */
export interface PrivateBind {
  readonly directory: string
  /** The socket file inside it, which `listen` creates. */
  readonly path: string
}

/**
 * Make the private directory to bind in. Binding creates the socket file
 * with the mode the umask leaves (0777 under umask 000), and a chmod after
 * bind would leave a moment in which anyone may connect: so the file is
 * created in a directory of mode 0700 (nobody else can reach it there),
 * given its mode, and only then hard-linked to its path ({@link publishSocketFile}).
 * `process.umask` is not touched: it is process-wide (files created by other
 * threads meanwhile would get it) and worker threads cannot change it.
 * The directory's name is as short as the kernel's path limit needs. Cost:
 * one mkdir and one rmdir more than a plain bind, tens of microseconds on
 * tmpfs (/run, $XDG_RUNTIME_DIR, where socket files belong); measured 3 to
 * 4 ms on an ext4 mounted with `discard`, where freeing the directory's
 * block is slow (paid when the listener closes).
 */
export const makePrivateBind = (address: Address.UnixAddress): PrivateBind => {
  const parent = Path.dirname(address.path)
  const tooLong = (detail: string) =>
    Object.assign(new Error(`${address.path} is too long for a Unix socket`), { code: "ENAMETOOLONG", detail })
  const bytes = Buffer.byteLength(address.path)
  if (bytes > SUN_PATH_MAX) {
    throw tooLong(`a Unix socket path holds at most ${SUN_PATH_MAX} bytes, this one has ${bytes}: choose a shorter path`)
  }
  // "/" + name + "/s" must fit in sun_path; 12 random characters when they do.
  const length = Math.min(12, SUN_PATH_MAX - Buffer.byteLength(parent) - 3)
  if (length < 2) {
    throw tooLong(
      `the directory ${parent} is too long a path to create a socket file in safely: ` +
        `keep it under ${SUN_PATH_MAX - 5} bytes`
    )
  }
  for (let attempt = 0;; attempt++) {
    const name = `.${process.getBuiltinModule("node:crypto").randomBytes(8).toString("hex").slice(0, length - 1)}`
    const directory = Path.join(parent, name)
    try {
      Fs.mkdirSync(directory, { mode: 0o700 })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST" && attempt < 16) continue
      throw e
    }
    const bind = { directory, path: Path.join(directory, "s") }
    try {
      // The umask may have taken bits this user needs to bind inside.
      Fs.chmodSync(directory, 0o700)
    } catch (e) {
      discardPrivateBind(bind)
      throw e
    }
    return bind
  }
}

/** Remove the private directory and whatever is left in it. */
export const discardPrivateBind = (bind: PrivateBind): void => {
  try {
    Fs.unlinkSync(bind.path)
  } catch {
    // Not created (the bind failed) or already moved.
  }
  try {
    Fs.rmdirSync(bind.directory)
  } catch {
    // Already gone.
  }
}

/**
 * Give the socket file bound in `bind` its `mode`, link it to its path (which
 * fails if anything appeared there meanwhile: nothing is replaced) and remove
 * the private directory. The inode of the file at its path, or why not.
 */
export const publishSocketFile = (
  bind: PrivateBind,
  address: Address.UnixAddress,
  mode: number
): { readonly inode: number } | { readonly error: NetError.ListenError } => {
  try {
    Fs.chmodSync(bind.path, mode)
    // The inode is taken where nobody else can reach the file: the one to remove at the end.
    const inode = Fs.lstatSync(bind.path).ino
    Fs.linkSync(bind.path, address.path)
    return { inode }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      return {
        error: new NetError.AddressInUse({
          address,
          code: "EADDRINUSE",
          detail: `${address.path} was created by someone else while this listener started; it was left untouched`
        })
      }
    }
    return { error: listenError(e, address) }
  } finally {
    // libuv unlinks the name it bound when the listener closes: that one is gone by then.
    discardPrivateBind(bind)
  }
}

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
  if (missing !== undefined) {
    return new NetError.PathNotFound({ address, code: missing.code, syscall: "listen", cause: err, detail: missing.detail })
  }
  const detail = (err as { readonly detail?: unknown } | undefined)?.detail
  return NetError.fromSystemError(err, { phase: "listen", address, detail: typeof detail === "string" ? detail : undefined })
}

/** Why a `unixOwner` option (see `Socket.ConnectOptions`) is unusable, or undefined. */
export const unixOwnerReason = (value: unknown): string | undefined =>
  value === "any" || value === "self" ||
    (Array.isArray(value) && value.every((uid) => Number.isSafeInteger(uid) && uid >= 0))
    ? undefined
    : `must be "any", "self" or an array of uids (integers from 0), got ${
      Array.isArray(value) ? JSON.stringify(value) : typeof value === "string" ? JSON.stringify(value) : String(value)
    }`

const S_ISVTX = 0o1000

/**
 * Check, before connecting, that the socket file at `address` is what its
 * trusted owners put there: the file (and a symlink at the path) belongs to
 * one of them, and so does every directory above the file and the one that
 * holds the path, none of which anybody else may write to (unless sticky,
 * like /tmp: there only a file's owner may replace it). Otherwise another
 * user could have put their own server there, or swap it in between this
 * check and the connect. Root is always trusted: it can replace any file.
 * A path that cannot be examined (missing, no permission) passes: the
 * connect reports it. Platforms without uids (Windows) are not checked.
 */
export const checkSocketOwner = (
  address: Address.UnixAddress,
  owner: "self" | ReadonlyArray<number>
): NetError.UntrustedSocketOwner | undefined => {
  const self = process.geteuid?.()
  if (self === undefined) return undefined
  const trusted = new Set(owner === "self" ? [self, 0] : [...owner, 0])
  const who = owner === "self" ? `this user (uid ${self}) or root` : `uid ${[...trusted].join(", ")}`
  const untrusted = (detail: string) => new NetError.UntrustedSocketOwner({ address, detail })
  const path = address.path
  let real: string
  try {
    const link = Fs.lstatSync(path)
    if (!trusted.has(link.uid)) {
      return untrusted(`${path} is owned by uid ${link.uid}, not by ${who}`)
    }
    real = Fs.realpathSync(path)
    if (link.isSymbolicLink()) {
      const target = Fs.statSync(real)
      if (!trusted.has(target.uid)) {
        return untrusted(`${path} leads to ${real}, owned by uid ${target.uid}, not by ${who}`)
      }
    }
  } catch {
    return undefined
  }
  const directories = new Set<string>([Path.dirname(Path.resolve(path))])
  for (let at = Path.dirname(real);; at = Path.dirname(at)) {
    directories.add(at)
    if (Path.dirname(at) === at) break
  }
  for (const directory of directories) {
    let stat: Fs.Stats
    try {
      stat = Fs.statSync(directory)
    } catch {
      return undefined
    }
    if (!trusted.has(stat.uid)) {
      return untrusted(
        `the directory ${directory} is owned by uid ${stat.uid}, not by ${who}, so its owner can replace ${path}`
      )
    }
    if ((stat.mode & 0o022) !== 0 && (stat.mode & S_ISVTX) === 0) {
      return untrusted(
        `the directory ${directory} (mode 0${(stat.mode & 0o777).toString(8)}) may be written by others, ` +
          `who can replace ${path}: remove their write permission (chmod go-w) or make it sticky`
      )
    }
  }
  return undefined
}
