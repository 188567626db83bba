/**
 * A `Console` that keeps what is written to stdout (`log`) and stderr
 * (`error`) apart, one line per call, to check where a program's and a
 * server's lines go: `Effect.provideService(Console.Console, capture.console)`.
 */
import type * as Console from "effect/Console"

export interface CapturedConsole {
  readonly console: Console.Console
  /** What went to `console.log` (stdout). */
  readonly out: Array<string>
  /** What went to `console.error` (stderr). */
  readonly err: Array<string>
}

export const capturingConsole = (): CapturedConsole => {
  const out: Array<string> = []
  const err: Array<string> = []
  const console = {
    ...globalThis.console,
    log: (...args: ReadonlyArray<unknown>) => void out.push(args.map(String).join(" ")),
    error: (...args: ReadonlyArray<unknown>) => void err.push(args.map(String).join(" "))
  } as unknown as Console.Console
  return { console, out, err }
}
