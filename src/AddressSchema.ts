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

// Each class from its fields and back: how the Schemas below decode and encode, and the link their
// arbitraries and JSON codec take.
const tcpFromFields = {
  decode: SchemaGetter.transform((f: typeof TcpFields.Type) => new Address_.TcpAddress(f, trusted)),
  encode: SchemaGetter.transform((a: Address_.TcpAddress): typeof TcpFields.Type => ({
    _tag: "TcpAddress",
    host: a.host,
    port: a.port
  }))
}

const unixFromFields = {
  decode: SchemaGetter.transform((f: typeof UnixFields.Type) => new Address_.UnixAddress(f, trusted)),
  encode: SchemaGetter.transform((a: Address_.UnixAddress): typeof UnixFields.Type => ({
    _tag: "UnixAddress",
    path: a.path
  }))
}

const tcpLink = Schema.link<Address_.TcpAddress>()(TcpFields, tcpFromFields)
const unixLink = Schema.link<Address_.UnixAddress>()(UnixFields, unixFromFields)

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
export const TcpAddress: Schema.Codec<Address_.TcpAddress, typeof TcpFields.Encoded> = TcpFields.pipe(
  Schema.decodeTo(
    Schema.instanceOf(Address_.TcpAddress, {
      identifier: "TcpAddress",
      expected: "TcpAddress",
      toCodecArbitrary: () => tcpLink,
      toCodecJson: () => tcpLink
    }),
    SchemaTransformation.makeTransformation(tcpFromFields)
  )
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
export const UnixAddress: Schema.Codec<Address_.UnixAddress, typeof UnixFields.Encoded> = UnixFields.pipe(
  Schema.decodeTo(
    Schema.instanceOf(Address_.UnixAddress, {
      identifier: "UnixAddress",
      expected: "UnixAddress",
      toCodecArbitrary: () => unixLink,
      toCodecJson: () => unixLink
    }),
    SchemaTransformation.makeTransformation(unixFromFields)
  )
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
