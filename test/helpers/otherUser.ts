/**
 * Acting as another local user in tests (issue 18: who may connect to a Unix
 * socket file). Only root can switch users; `setpriv` runs a small node
 * script as `nobody` (uid and gid 65534, no supplementary groups). Elsewhere
 * (CI without root) `otherUser` is undefined and such tests check the mode
 * bits only.
 */
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"

/** The uid and gid the tests act as: nobody's. */
export const NOBODY = 65534

const hasSetpriv = spawnSync("setpriv", ["--version"], { stdio: "ignore" }).status === 0

/** Whether this process may act as another user (root with `setpriv`). */
export const otherUser: { readonly uid: number; readonly gid: number } | undefined =
  process.getuid?.() === 0 && hasSetpriv ? { uid: NOBODY, gid: NOBODY } : undefined

/** What a script run as another user printed, and its exit code. */
export interface AsOtherUser {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Run `node -e script …args` as nobody, killed (by its own handle) after
 * `timeoutMs`. The node binary must be reachable by nobody (it is: the
 * project's directories are world-readable).
 */
export const runAsOtherUser = (
  script: string,
  args: ReadonlyArray<string> = [],
  timeoutMs = 10_000
): Promise<AsOtherUser> =>
  new Promise((resolve, reject) => {
    const child = spawn(
      "setpriv",
      [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", process.execPath, "-e", script, ...args],
      { stdio: ["ignore", "pipe", "pipe"], cwd: "/" }
    )
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => stdout += d)
    child.stderr.setEncoding("utf8").on("data", (d: string) => stderr += d)
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/**
 * A node script for {@link runAsOtherUser}: connect to the Unix socket at
 * argv[1], print `connected` or the error code, exit 0 either way.
 */
export const CONNECT_SCRIPT = `
const net = require("node:net")
const socket = net.createConnection({ path: process.argv[1] })
socket.on("connect", () => { console.log("connected"); socket.destroy() })
socket.on("error", (e) => console.log(e.code))
`

/** Make `dir` (and its socket file's directory) enterable by other users, as a shared directory is. */
export const openDirectory = (dir: string): void => Fs.chmodSync(dir, 0o755)
