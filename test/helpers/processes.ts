/**
 * Checking on processes the tests did not spawn themselves (a command's
 * children and grandchildren): no event tells us when such a process dies, so
 * these poll /proc, bounded in count and time.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
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
