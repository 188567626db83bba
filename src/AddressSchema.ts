/**
 * Schemas of `Address` values, for configuration, CLI arguments, logs
 * shipped as JSON and messages that carry an address. An address encodes as
 * a plain object (`{ _tag: "TcpAddress", host, port }`,
 * `{ _tag: "UnixAddress", path }`) or, with {@link FromString}, as its text.
 *
 * A module of its own so that a program which only opens sockets never
 * loads `effect/Schema` (measured: about 15 MB of memory and 170 ms of
 * start-up).
 *
 * ```ts
 * import * as AddressSchema from "effect-wire/AddressSchema"
 * import * as Schema from "effect/Schema"
 *
 * const Config = Schema.Struct({ listen: AddressSchema.FromString, upstream: AddressSchema.Address })
 * Schema.decodeUnknownSync(Config)({ listen: "127.0.0.1:0", upstream: { _tag: "UnixAddress", path: "/run/up.sock" } })
 * ```
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaGetter from "effect/SchemaGetter"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"
import * as Address_ from "./Address.js"

const trusted = { disableChecks: true } as const

const TcpFields = Schema.Struct({
  _tag: Schema.Literal("TcpAddress"),
  host: Schema.NonEmptyString,
  port: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))
})

const UnixFields = Schema.Struct({
  _tag: Schema.Literal("UnixAddress"),
  path: Schema.NonEmptyString
})

/**
 * The Schema of an address class from its fields: decoding makes the class
 * (the fields already checked), encoding gives the fields back; the same
 * link gives its arbitraries and its JSON codec.
 */
const classOf = <A extends Address_.Address, F extends Schema.Codec<unknown, unknown>>(
  name: A["_tag"],
  type: new(fields: F["Type"], options: Address_.MakeOptions) => A,
  fields: F,
  toFields: (a: A) => F["Type"]
): Schema.Codec<A, F["Encoded"]> => {
  const fromFields = {
    decode: SchemaGetter.transform((f: F["Type"]) => new type(f, trusted)),
    encode: SchemaGetter.transform(toFields)
  }
  const link = Schema.link<A>()(fields, fromFields)
  return fields.pipe(
    Schema.decodeTo(
      Schema.instanceOf(type, {
        identifier: name,
        expected: name,
        toCodecArbitrary: () => link,
        toCodecJson: () => link
      }),
      SchemaTransformation.makeTransformation(fromFields)
    )
  )
}

/**
 * Schema of an `Address.TcpAddress`: decodes `{ _tag: "TcpAddress",
 * host, port }` (a non-empty host, an integer port in 0-65535) to the class,
 * and encodes it back. `Schema.is` tells an instance; arbitraries and the
 * JSON codec come from the fields.
 *
 * ```ts
 * Schema.decodeUnknownSync(AddressSchema.TcpAddress)({ _tag: "TcpAddress", host: "::1", port: 9000 })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const TcpAddress: Schema.Codec<Address_.TcpAddress, typeof TcpFields.Encoded> = classOf(
  "TcpAddress",
  Address_.TcpAddress,
  TcpFields,
  (a) => ({ _tag: "TcpAddress" as const, host: a.host, port: a.port })
)

/**
 * Schema of an `Address.UnixAddress`: `{ _tag: "UnixAddress", path }`
 * with a non-empty path.
 *
 * ```ts
 * Schema.encodeSync(AddressSchema.UnixAddress)(Address.unix("/tmp/s.sock")) // { _tag: "UnixAddress", path: "/tmp/s.sock" }
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const UnixAddress: Schema.Codec<Address_.UnixAddress, typeof UnixFields.Encoded> = classOf(
  "UnixAddress",
  Address_.UnixAddress,
  UnixFields,
  (a) => ({ _tag: "UnixAddress" as const, path: a.path })
)

/**
 * Schema of an address as a tagged union (its encoded form is a plain object).
 *
 * ```ts
 * Schema.decodeUnknownSync(AddressSchema.Address)({ _tag: "UnixAddress", path: "/tmp/s.sock" })
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const Address: Schema.Union<readonly [typeof TcpAddress, typeof UnixAddress]> = Schema.Union([
  TcpAddress,
  UnixAddress
])

/**
 * Schema from the textual form (`"[::1]:9000"`, `"unix:/tmp/s.sock"`) to an
 * address: decoding is `Address.parse` (its `InvalidAddress` message
 * becomes the Schema issue's), encoding is `Address.format`.
 *
 * ```ts
 * Schema.decodeUnknownSync(AddressSchema.FromString)("unix:/tmp/s.sock")
 * ```
 *
 * @since 0.2.0
 * @category schemas
 */
export const FromString: Schema.Codec<Address_.Address, string> = Schema.String.pipe(
  Schema.decodeTo(
    Schema.toType(Address),
    SchemaTransformation.transformEffect({
      decode: (s: string, options) =>
        Result.match(Address_.parse(s), {
          onFailure: (e) => Effect.fail(new SchemaIssue.InvalidValue({ message: e.message }, s, options)),
          onSuccess: Effect.succeed
        }),
      encode: (a: Address_.Address) => Effect.succeed(Address_.format(a))
    })
  )
)
