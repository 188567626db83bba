/**
 * The demo's own server, the tutorials' one-shot question: a client sends a
 * line such as `1+5=?` and gets the answer, `6`, on a line. Written with
 * `Server` and the `lines` codec, as a user would write a small service.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const { address } = yield* Server.Server
 *   // connect, send "1+5=?\n", read "6\n"
 * }).pipe(Effect.provide(Question.layer(Address.tcp("127.0.0.1", 0))))
 * ```
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type * as Address from "../../Address.js"
import * as Framing from "../../Framing.js"
import type * as NetError from "../../NetError.js"
import * as Server from "../../Server.js"

const QUESTION = /^\s*(-?\d{1,15})\s*([-+*/])\s*(-?\d{1,15})\s*=\s*\?\s*$/

/**
 * The answer to one question: the result of `a+b=?`, `a-b=?`, `a*b=?` or
 * `a/b=?` on integers, or a sentence saying what is understood.
 *
 * ```ts
 * answer("1+5=?") // "6"
 * ```
 *
 * @since 0.1.0
 * @category answers
 */
export const answer = (question: string): string => {
  const match = QUESTION.exec(question)
  if (match === null) return `I answer questions like 1+5=?, not ${JSON.stringify(question)}`
  const a = BigInt(match[1]!)
  const b = BigInt(match[3]!)
  switch (match[2]) {
    case "+":
      return String(a + b)
    case "-":
      return String(a - b)
    case "*":
      return String(a * b)
    default:
      return b === 0n ? "cannot divide by zero" : String(a / b)
  }
}

/** Questions are short; a longer line is answered with an error and skipped. */
const codec = Framing.lines({ as: "string", maxLength: 200, resync: true })

/**
 * The question server as a Layer providing `Server.Server`: one answer line
 * per question line, until the client half-closes.
 *
 * ```ts
 * const QuestionLive = Question.layer(Address.tcp("127.0.0.1", 0))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (address: Address.Address): Layer.Layer<Server.Server, NetError.ListenError> =>
  Server.layer({
    address,
    handler: (socket) =>
      socket.reads.pipe(
        Framing.decodeResult(codec),
        Stream.map((line) => line._tag === "Success" ? answer(line.success) : `error: ${line.failure.message}`),
        Framing.encode(codec),
        Stream.run(socket.writes),
        Effect.andThen(socket.end)
      )
  })
