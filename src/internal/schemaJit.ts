/**
 * Schema's own just-in-time compiler (`effect/schema/SchemaJITCompiler`),
 * switched on for the Schemas a codec runs per message: a Struct of plain
 * fields then decodes in generated code (`typeof` checks and one object
 * literal, like a hand-written check) instead of the interpreter's walk of
 * the AST, about 7 times faster for a three-field Struct. It is Schema's
 * compiler and registry, so every result and every error is Schema's own: a
 * value that does not decode falls back to the interpreter's detailed pass,
 * and where `new Function` is forbidden, or a node has no generated form, the
 * interpreter runs as before.
 *
 * Compiling registers the AST in Schema's shared registry, so other users of
 * the same Schema get the compiled form too (with the same results).
 *
 * @since 0.2.0
 * @internal
 */
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { ParseOptions } from "effect/SchemaAST"
import * as SchemaAST from "effect/SchemaAST"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaParser from "effect/SchemaParser"
import { enable } from "effect/schema/SchemaJITCompiler"

const compiled = new WeakSet<SchemaAST.AST>()

const once = (ast: SchemaAST.AST): void => {
  if (compiled.has(ast)) return
  compiled.add(ast)
  enable(ast)
}

/**
 * Compiles both directions of a Schema: decoding runs its AST, encoding the
 * flipped one (a separate registry key). Call it before the first decode or
 * encode; later calls for the same Schema do nothing.
 *
 * ```ts
 * compileSchema(Request)
 * const decode = Schema.decodeUnknownResult(Request) // generated code from its first call
 * ```
 *
 * @internal
 */
export const compileSchema = (schema: Schema.Top): void => {
  const ast = schema.ast
  once(ast)
  once(SchemaAST.flip(ast))
}

/**
 * What Schema's synchronous adapters throw (see {@link compiledDecoderSync}):
 * a validation failure (an `Error` whose cause is the issue) becomes the
 * `SchemaError` that `Schema.decodeUnknownResult` would return; anything else
 * (a defect in a transformation, asynchronous work) is thrown on, as that
 * adapter does.
 *
 * ```ts
 * try {
 *   return decode(input)
 * } catch (thrown) {
 *   const error = schemaErrorOf(thrown) // a SchemaError, or a defect rethrown
 * }
 * ```
 *
 * @internal
 */
export const schemaErrorOf = (thrown: unknown): Schema.SchemaError => {
  if (thrown instanceof Error && SchemaIssue.isIssue(thrown.cause)) return new Schema.SchemaError(thrown.cause)
  throw thrown
}

/** A synchronous adapter's function as a Result: its output, or the `SchemaError` it threw. */
const asResult = <I, O>(run: (input: I) => O) => (input: I): Result.Result<O, Schema.SchemaError> => {
  try {
    return Result.succeed(run(input))
  } catch (error) {
    return Result.fail(schemaErrorOf(error))
  }
}

/**
 * `SchemaParser.decodeUnknownSync(schema, options)`, compiled: the decoded
 * value, or a throw that {@link schemaErrorOf} turns into the `SchemaError`
 * {@link compiledDecoder} would return. For a loop that decodes one value per
 * message and allocates nothing else per message (the `header` codec's
 * decoder); everyone else takes {@link compiledDecoder}.
 *
 * ```ts
 * const decode = compiledDecoderSync(Header)
 * decode(JSON.parse(text)) // the Header, or throws
 * ```
 *
 * @internal
 */
export const compiledDecoderSync = <A, I, RD, RE>(
  schema: Schema.Codec<A, I, RD, RE>,
  options?: ParseOptions | undefined
): (input: unknown) => A => {
  compileSchema(schema)
  return SchemaParser.decodeUnknownSync(schema as Schema.Codec<A, I>, options)
}

/**
 * `Schema.decodeUnknownResult(schema, options)`, compiled, with the same
 * values and errors: a valid input goes straight through the generated
 * decoder (`SchemaParser.decodeUnknownSync` returns its output as is, where
 * the Result adapter wraps it in an Exit run by the runtime first: 60 to 90
 * ns less per message in a decode loop).
 *
 * ```ts
 * const decode = compiledDecoder(Request, { reportInput: true })
 * decode(JSON.parse(text)) // Result<Request, SchemaError>
 * ```
 *
 * @internal
 */
export const compiledDecoder = <A, I, RD, RE>(
  schema: Schema.Codec<A, I, RD, RE>,
  options?: ParseOptions | undefined
): (input: unknown) => Result.Result<A, Schema.SchemaError> => {
  return asResult(compiledDecoderSync(schema, options))
}

/**
 * `Schema.encodeUnknownResult(schema, options)`, compiled, with the same
 * values and errors (see {@link compiledDecoder}).
 *
 * ```ts
 * const encode = compiledEncoder(Reply)
 * encode(reply) // Result<encoded, SchemaError>
 * ```
 *
 * @internal
 */
export const compiledEncoder = <A, I, RD, RE>(
  schema: Schema.Codec<A, I, RD, RE>,
  options?: ParseOptions | undefined
): (value: unknown) => Result.Result<I, Schema.SchemaError> => {
  compileSchema(schema)
  return asResult(SchemaParser.encodeUnknownSync(schema as Schema.Codec<A, I>, options))
}
