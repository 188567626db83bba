/**
 * The layout rules of docs/architecture.md, checked: every src/ file has its
 * one sentence on that page, and nothing outside src/internal/ imports a
 * value from a Node adapter (`internal/node*`): only the internal twins
 * (`internal/socket.ts`, `internal/datagram.ts`) reach them.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const sources = (Fs.readdirSync(Path.join(root, "src"), { recursive: true }) as Array<string>)
  .filter((file) => file.endsWith(".ts"))
  .map((file) => `src/${file.split(Path.sep).join("/")}`)
  .sort()

describe("architecture", () => {
  it("docs/architecture.md describes every file of src/, and names no file that is gone", () => {
    const page = Fs.readFileSync(Path.join(root, "docs/architecture.md"), "utf8")
    const missing = sources.filter((file) => !page.includes(`\`${file}\``))
    assert.deepStrictEqual(missing, [], "files without a sentence on docs/architecture.md")
    const named = [...page.matchAll(/`(src\/[^`*]+\.ts)`/g)].map((m) => m[1]!)
    assert.deepStrictEqual(named.filter((file) => !sources.includes(file)), [], "files named but gone")
  })

  it("no module outside src/internal/ imports a value from an internal/node* adapter", () => {
    const offenders: Array<string> = []
    for (const file of sources.filter((f) => !f.startsWith("src/internal/"))) {
      const text = Fs.readFileSync(Path.join(root, file), "utf8")
      for (const m of text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+"([^"]*internal\/node[^"]*)"/gm)) {
        if (m[1] === undefined) offenders.push(`${file} imports ${m[2]}`)
      }
    }
    assert.deepStrictEqual(offenders, [])
  })
})
