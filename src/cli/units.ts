/**
 * Parsing of the command line's human units: durations (`30s`, `500ms`,
 * `2m`, `1h`) and byte sizes (`8MiB`, `64KiB`, `1MB`, `4096`).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Result from "effect/Result"

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }

/**
 * Parse a duration such as `30s`, `500ms`, `2m`, `1.5h` (a bare number is seconds).
 *
 * ```ts
 * parseDuration("500ms") // Result.succeed(Duration.millis(500))
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseDuration = (text: string): Result.Result<Duration.Duration, string> => {
  const match = DURATION.exec(text.trim())
  if (match === null) {
    return Result.fail(`invalid duration ${JSON.stringify(text)}: expected a number with ms, s, m or h, e.g. 30s`)
  }
  return Result.succeed(Duration.millis(Number(match[1]) * DURATION_UNITS[match[2] ?? "s"]!))
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?$/
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  k: 1024,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3
}

/**
 * Parse a byte size such as `8MiB`, `64KiB`, `1MB` or `4096`.
 *
 * ```ts
 * parseSize("8MiB") // Result.succeed(8388608)
 * ```
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseSize = (text: string): Result.Result<number, string> => {
  const match = SIZE.exec(text.trim())
  if (match === null) {
    return Result.fail(`invalid size ${JSON.stringify(text)}: expected a number with B, KiB, MiB, GiB, KB, MB or GB, e.g. 8MiB`)
  }
  const bytes = Math.floor(Number(match[1]) * SIZE_UNITS[match[2] ?? "B"]!)
  return Number.isSafeInteger(bytes) ? Result.succeed(bytes) : Result.fail(`size ${JSON.stringify(text)} is too large`)
}

/**
 * A duration in the syntax {@link parseDuration} reads, in its largest whole
 * unit: `30s`, `2m`, `1500ms`; an infinite one is `never`.
 *
 * ```ts
 * formatDuration(Duration.seconds(90)) // "90s"
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatDuration = (duration: Duration.Duration): string => {
  if (!Duration.isFinite(duration)) return "never"
  const millis = Duration.toMillis(duration)
  for (const unit of ["h", "m", "s"] as const) {
    const size = DURATION_UNITS[unit]!
    if (millis >= size && millis % size === 0) return `${millis / size}${unit}`
  }
  return `${millis}ms`
}

/**
 * A byte size in the syntax {@link parseSize} reads, in its largest whole
 * binary unit: `8MiB`, `64KiB`, `1000`.
 *
 * ```ts
 * formatSize(8 * 1024 * 1024) // "8MiB"
 * ```
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatSize = (bytes: number): string => {
  for (const unit of ["GiB", "MiB", "KiB"] as const) {
    const size = SIZE_UNITS[unit]!
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}
