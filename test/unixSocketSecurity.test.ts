/**
 * Issue 18, findings 3 and 4: who can connect to a Unix socket file, and
 * whose socket file a client trusts. The socket file gets its mode (default
 * 0600) whatever the umask, without a moment at a wider one; another user
 * cannot connect unless `unixMode` lets them. Tests that act as another user
 * (nobody, through setpriv) run as root only; elsewhere the mode bits are
 * what is checked.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Address from "../src/Address.js"
import { makePrivateBind, publishSocketFile } from "../src/internal/unixSocketFile.js"
import * as Exec from "../src/servers/Exec.js"
import * as Socket from "../src/Socket.js"
import { assertOptionDefect, defectOf } from "./helpers/defects.js"
import { CONNECT_SCRIPT, NOBODY, openDirectory, otherUser, runAsOtherUser } from "./helpers/otherUser.js"
import { eventually, tempDir } from "./helpers/sockets.js"

/** The process's umask set to `mask` for the scope (restored after). */
const withUmask = (mask: number) =>
  Effect.acquireRelease(Effect.sync(() => process.umask(mask)), (previous) => Effect.sync(() => void process.umask(previous)))

const modeOf = (path: string): number => Fs.statSync(path).mode & 0o777

const octal = (mode: number) => `0o${mode.toString(8)}`

const connectAsOtherUser = (path: string) =>
  Effect.promise(() => runAsOtherUser(CONNECT_SCRIPT, [path])).pipe(Effect.map((run) => run.stdout.trim()))

describe("Unix socket files: who can connect (issue 18, finding 3)", () => {
  it.live("under umask 000 the socket file is 0600, not 0777", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* withUmask(0)
      const path = Path.join(dir, "s.sock")
      yield* Socket.listen(Address.unix(path))
      assert.strictEqual(octal(modeOf(path)), octal(0o600))
      // Nothing else is left beside it: the private directory it was bound in is gone.
      assert.deepStrictEqual(Fs.readdirSync(dir), ["s.sock"])
    }))

  it.live("unixMode widens it (0o660, 0o666) whatever the umask, and narrows it (0o200)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* withUmask(0o077)
      for (const mode of [0o660, 0o666, 0o200]) {
        const path = Path.join(dir, `m${mode.toString(8)}.sock`)
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Socket.listen(Address.unix(path), { unixMode: mode })
          assert.strictEqual(octal(modeOf(path)), octal(mode))
        }))
        assert.isFalse(Fs.existsSync(path), "the socket file is removed when the listener stops")
      }
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
    }))

  it.live("the socket file is connectable at its path, and a second listener there is AddressInUse", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "live.sock")
      const listener = yield* Socket.listen(Address.unix(path))
      assert.deepStrictEqual(listener.address, Address.unix(path))
      yield* Socket.connect(Address.unix(path))
      const error = yield* Effect.flip(Effect.scoped(Socket.listen(Address.unix(path))))
      assert.strictEqual(error._tag, "AddressInUse")
    }))

  it.live("a path longer than sun_path is refused with its length, and nothing is left behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "x".repeat(120))
      const error = yield* Effect.flip(Effect.scoped(Socket.listen(Address.unix(path))))
      assert.strictEqual(error._tag, "Unknown")
      assert.match(error.message, new RegExp(`at most 10[48] bytes, this one has ${path.length}: choose a shorter path`))
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
    }))

  it.live("a file that appears at the path while the listener starts is left alone: AddressInUse, nothing left behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const address = Address.unix(Path.join(dir, "s.sock"))
      // The steps of listen, with someone else's file created between the bind and the link.
      const bind = makePrivateBind(address)
      const server = Net.createServer()
      yield* Effect.callback<void>((resume) => void server.listen(bind.path, () => resume(Effect.void)))
      Fs.writeFileSync(address.path, "someone else's")
      const published = publishSocketFile(bind, address, 0o600)
      server.close()
      assert.isTrue("error" in published && published.error._tag === "AddressInUse")
      assert.strictEqual(Fs.readFileSync(address.path, "utf8"), "someone else's")
      assert.deepStrictEqual(Fs.readdirSync(dir), ["s.sock"])
    }))

  it.live("a directory too long to hold a private directory beside the socket is refused with a reason", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // 105 bytes of directory and a one-letter name: the path fits in sun_path, a directory beside it does not.
      const deep = Path.join(dir, "d".repeat(105 - dir.length - 1))
      Fs.mkdirSync(deep)
      const error = yield* Effect.flip(Effect.scoped(Socket.listen(Address.unix(Path.join(deep, "s")))))
      assert.strictEqual(error._tag, "Unknown")
      assert.include(error.message, "too long a path to create a socket file in safely")
      assert.deepStrictEqual(Fs.readdirSync(deep), [])
    }))

  it.effect("unixMode outside 0..0o777 is a defect naming the option", () =>
    Effect.gen(function*() {
      for (const [mode, shown] of [[0o1777, "0o1777"], [-1, "-1"], [1.5, "1.5"]] as const) {
        const defect = yield* defectOf(Effect.scoped(Socket.listen(Address.unix("/nonexistent/x.sock"), { unixMode: mode })))
        assertOptionDefect(defect, "Socket: unixMode must be permission bits from 0 to 0o777", `got ${shown}`)
      }
    }))

  it.live("the exec server takes unixMode (a bad one is its typed InvalidExecOptions)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "exec.sock")
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Exec.make({ allow: ["id"], address: Address.unix(path), unixMode: 0o660 })
        assert.strictEqual(octal(modeOf(path)), octal(0o660))
      }))
      const error = yield* Effect.flip(
        Effect.scoped(Exec.make({ allow: ["id"], address: Address.unix(path), unixMode: 0o4755 }))
      )
      assert.strictEqual(error._tag, "InvalidExecOptions")
      assert.include(error.message, "unixMode")
      assert.isFalse(Fs.existsSync(path))
    }))

  it.live.skipIf(otherUser === undefined)(
    "as root under umask 000: another user cannot connect to the default socket file, and can with unixMode 0o666",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        openDirectory(dir)
        yield* withUmask(0)
        const closed = Path.join(dir, "private.sock")
        const shared = Path.join(dir, "shared.sock")
        yield* Socket.listen(Address.unix(closed))
        yield* Socket.listen(Address.unix(shared), { unixMode: 0o666 })
        assert.strictEqual(yield* connectAsOtherUser(closed), "EACCES")
        assert.strictEqual(yield* connectAsOtherUser(shared), "connected")
      })
  )
})

describe("whose socket file a client trusts (issue 18, finding 4)", () => {
  const isRoot = process.getuid?.() === 0

  /** A listener at `path` that counts what reaches it: a server the client should not trust must see nothing. */
  const countingListener = (path: string) =>
    Effect.gen(function*() {
      const listener = yield* Socket.listen(Address.unix(path), { unixMode: 0o666 })
      let accepted = 0
      yield* Effect.forkScoped(Stream.runForEach(listener.accept, () => Effect.sync(() => void accepted++)))
      return { accepted: () => accepted }
    })

  it.live.skipIf(!isRoot)("root's exec client refuses a socket file owned by another user, before sending anything", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // /tmp-like: world-writable and sticky, where anyone can squat a path.
      Fs.chmodSync(dir, 0o1777)
      const path = Path.join(dir, "exec.sock")
      const squatter = yield* countingListener(path)
      Fs.chownSync(path, NOBODY, NOBODY)
      const error = yield* Effect.flip(Effect.scoped(Exec.client(Address.unix(path), { token: "s3cret" })))
      assert.strictEqual(error._tag, "UntrustedSocketOwner")
      assert.strictEqual(
        error.message,
        `refusing to connect to unix:${path}: ${path} is owned by uid ${NOBODY}, not by this user (uid 0) or root; ` +
          "whoever owns it would receive what is sent. To trust its owner, list the uid in unixOwner (or pass \"any\")"
      )
      assert.isFalse(error.retryable)
      // Plain sockets connect to anyone's file, as every socket library does.
      yield* Effect.scoped(Socket.connect(Address.unix(path)))
      yield* eventually("the plain connection is accepted", Effect.sync(squatter.accepted), (n) => n === 1)
      assert.strictEqual(squatter.accepted(), 1, "the exec client never connected")
    }))

  it.live.skipIf(!isRoot)("the override: unixOwner \"any\" or the owner's uid lets the exec client in", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "exec.sock")
      yield* Exec.make({ allow: ["id"], address: Address.unix(path) })
      Fs.chownSync(path, NOBODY, NOBODY)
      const refused = yield* Effect.flip(Effect.scoped(Exec.client(Address.unix(path))))
      assert.strictEqual(refused._tag, "UntrustedSocketOwner")
      for (const unixOwner of ["any", [NOBODY]] as const) {
        const result = yield* Effect.scoped(
          Effect.flatMap(Exec.client(Address.unix(path), { unixOwner }), (client) => client.run(["id", "-u"]))
        )
        assert.strictEqual(new TextDecoder().decode(result.stdout), "0\n", String(unixOwner))
      }
    }))

  it.live.skipIf(!isRoot)("a symlink of another user, or one leading to another user's file, is refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const own = Path.join(dir, "own.sock")
      const foreign = Path.join(dir, "foreign.sock")
      yield* countingListener(own)
      yield* countingListener(foreign)
      Fs.chownSync(foreign, NOBODY, NOBODY)
      const theirLink = Path.join(dir, "their-link.sock")
      Fs.symlinkSync(own, theirLink)
      Fs.lchownSync(theirLink, NOBODY, NOBODY)
      const ourLink = Path.join(dir, "our-link.sock")
      Fs.symlinkSync(foreign, ourLink)
      const viaTheirs = yield* Effect.flip(Effect.scoped(Socket.connect(Address.unix(theirLink), { unixOwner: "self" })))
      assert.strictEqual(viaTheirs._tag, "UntrustedSocketOwner")
      assert.include(viaTheirs.message, `${theirLink} is owned by uid ${NOBODY}`)
      const viaOurs = yield* Effect.flip(Effect.scoped(Socket.connect(Address.unix(ourLink), { unixOwner: "self" })))
      assert.strictEqual(viaOurs._tag, "UntrustedSocketOwner")
      assert.include(viaOurs.message, `${ourLink} leads to ${foreign}, owned by uid ${NOBODY}`)
      // Our own link to our own file is fine.
      const ownLink = Path.join(dir, "own-link.sock")
      Fs.symlinkSync(own, ownLink)
      yield* Effect.scoped(Socket.connect(Address.unix(ownLink), { unixOwner: "self" }))
    }))

  it.live.skipIf(!isRoot)("a directory of another user above the socket file is refused: its owner could swap the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const theirs = Path.join(dir, "theirs")
      Fs.mkdirSync(theirs, { mode: 0o755 })
      const path = Path.join(theirs, "s.sock")
      yield* countingListener(path)
      Fs.chownSync(theirs, NOBODY, NOBODY)
      const error = yield* Effect.flip(Effect.scoped(Socket.connect(Address.unix(path), { unixOwner: "self" })))
      assert.strictEqual(error._tag, "UntrustedSocketOwner")
      assert.include(error.message, `the directory ${theirs} is owned by uid ${NOBODY}`)
    }))

  it.live("a directory others may write to (not sticky) is refused; a sticky one (like /tmp) is fine", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "s.sock")
      yield* countingListener(path)
      Fs.chmodSync(dir, 0o777)
      const error = yield* Effect.flip(Effect.scoped(Socket.connect(Address.unix(path), { unixOwner: "self" })))
      assert.strictEqual(error._tag, "UntrustedSocketOwner")
      assert.include(error.message, `the directory ${dir} (mode 0777) may be written by others`)
      const byExec = yield* Effect.flip(Effect.scoped(Exec.client(Address.unix(path))))
      assert.strictEqual(byExec._tag, "UntrustedSocketOwner")
      Fs.chmodSync(dir, 0o1777)
      yield* Effect.scoped(Socket.connect(Address.unix(path), { unixOwner: "self" }))
      yield* Effect.scoped(Exec.client(Address.unix(path)))
    }))

  it.live("the exec client connects to its own user's socket file by default; a missing file is still ConnectionRefused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "exec.sock")
      yield* Exec.make({ allow: ["id"], address: Address.unix(path) })
      const result = yield* Effect.scoped(
        Effect.flatMap(Exec.client(Address.unix(path)), (client) => client.run(["id", "-u"]))
      )
      assert.strictEqual(new TextDecoder().decode(result.stdout), `${process.getuid?.()}\n`)
      const missing = yield* Effect.flip(Effect.scoped(Exec.client(Address.unix(Path.join(dir, "none.sock")))))
      assert.strictEqual(missing._tag, "ConnectionRefused")
    }))

  it.effect("unixOwner other than \"any\", \"self\" or uids is a defect naming the option", () =>
    Effect.gen(function*() {
      for (const unixOwner of ["me", [-1], [1.5]] as const) {
        const defect = yield* defectOf(
          Effect.scoped(Socket.connect(Address.unix("/nonexistent/x.sock"), { unixOwner: unixOwner as never }))
        )
        assertOptionDefect(defect, "Socket: unixOwner must be \"any\", \"self\" or an array of uids")
      }
    }))
})
