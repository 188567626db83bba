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
import type * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
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
