/**
 * Checking on processes the tests did not spawn themselves (a command's
 * children and grandchildren): no event tells us when such a process dies, so
 * these poll /proc, bounded in count and time.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { ChildProcess } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"

const hasProc = existsSync("/proc/self/stat")

/** State and process group of a pid from /proc/<pid>/stat (the name in parentheses may hold spaces). */
const procStat = (pid: string): { readonly state: string; readonly pgrp: number } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return { state: fields[0]!, pgrp: Number(fields[2]) }
  } catch {
    return undefined
  }
}

/** Whether a signal still reaches the pid or group (a zombie counts). */
export const signalReaches = (target: number): boolean => {
  try {
    process.kill(target, 0)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false
    throw err
  }
}

/**
 * Whether a process (pid > 0) or any member of a process group (-pgid) still
 * runs. A zombie does not run: orphans are reaped by init, which on some
 * machines takes a second or more, and `kill(…, 0)` succeeds until then.
 */
export const isAlive = (target: number): boolean => {
  if (!signalReaches(target)) return false
  if (!hasProc) return true
  if (target > 0) {
    // Gone between the signal and the read counts as gone.
    const stat = procStat(String(target))
    return stat !== undefined && stat.state !== "Z"
  }
  return readdirSync("/proc").some((entry) => {
    if (!/^[0-9]+$/.test(entry)) return false
    const stat = procStat(entry)
    return stat !== undefined && stat.pgrp === -target && stat.state !== "Z"
  })
}

/** Wait (bounded) until the process or group is gone; true if it is. */
export const waitGone = (target: number, within = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + within
    for (let i = 0; i < 1_000 && Date.now() < deadline; i++) {
      if (!isAlive(target)) return true
      yield* Effect.sleep("20 millis")
    }
    return !isAlive(target)
  })

/** Wait (bounded) until a command has written a whole line to `path`, and return the file. */
export const waitForLine = (path: string, within = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + within
    for (let i = 0; i < 1_000 && Date.now() < deadline; i++) {
      if (existsSync(path) && readFileSync(path, "utf8").endsWith("\n")) return readFileSync(path, "utf8")
      yield* Effect.sleep("10 millis")
    }
    return assert.fail(`${path} did not appear within ${within} ms`)
  })

/**
 * A child's stdout and stderr as they arrive (`out`), its exit code, and
 * `until`: the first value `find` returns for the output so far, looked for
 * again on each chunk; it fails when the child ends without one, or after
 * `within` ms (both with the output in the message).
 */
export const watchOutput = (child: ChildProcess, name: string) => {
  const out = { stdout: "", stderr: "" }
  const waiters = new Set<() => void>()
  const wake = () => waiters.forEach((w) => w())
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    out.stdout += d
    wake()
  })
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    out.stderr += d
    wake()
  })
  const exit = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      wake()
      resolve(code)
    })
  )
  const until = <A>(find: () => A | undefined, what: string, within: number) =>
    Effect.promise(() =>
      new Promise<A>((resolve, reject) => {
        const check = () => {
          const found = find()
          if (found !== undefined) {
            waiters.delete(check)
            resolve(found)
          } else if (child.exitCode !== null || child.signalCode !== null) {
            waiters.delete(check)
            reject(new Error(`${name} ended without ${what}:\n${out.stdout}\n${out.stderr}`))
          }
        }
        waiters.add(check)
        check()
      })
    ).pipe(
      Effect.timeout(within),
      Effect.catchTag(
        "TimeoutError",
        () => Effect.die(new Error(`no ${what} within ${within / 1000} s:\n${out.stdout}\n${out.stderr}`))
      )
    )
  return { out, exit, until }
}
