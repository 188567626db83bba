/**
 * `effect-wire connect ADDRESS`: a netcat for effect-wire servers. Standard
 * input goes to the socket and the socket to standard output; at the end of
 * standard input the socket is half-closed, and the command exits 0 once the
 * peer closes its side. With `--framing lines|length`, every line of standard
 * input is sent as one frame and every frame received is printed on a line of
 * its own. With `--udp`, every line is one datagram and every reply is printed
 * on a line of its own; the command exits once each datagram was answered.
 *
 * ```sh
 * printf 'hello\n' | effect-wire connect 127.0.0.1:9000
 * printf 'a\nb\n' | effect-wire connect 127.0.0.1:9000 --framing length
 * printf 'ping\n' | effect-wire connect 127.0.0.1:9001 --udp
 * effect-wire connect unix:/tmp/upper.sock
 * ```
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Address from "../Address.js"
import type * as Framing from "../Framing.js"
import { choiceOption, CliError, durationOption } from "./common.js"

/**
 * The `ADDRESS` argument: `host:port`, `[ipv6]:port` or `unix:/path`; a bad
 * one is a validation error naming the problem.
 *
 * ```ts
 * const show = Command.make("show", { address: addressArg }, ({ address }) => Console.log(Address.format(address)))
 * ```
 *
 * @since 0.1.0
 * @category arguments
 */
export const addressArg: Args.Args<Address.Address> = Args.text({ name: "ADDRESS" }).pipe(
  Args.withDescription("Where the server is: host:port, [ipv6]:port or unix:/path/to.sock."),
  Args.mapEffect((text) =>
    Either.match(Address.parse(text), {
      onLeft: (e) => Effect.fail(HelpDoc.p(e.message)),
      onRight: Effect.succeed
    })
  )
)

const options = {
  address: addressArg,
  udp: Options.boolean("udp").pipe(
    Options.withDescription("Speak UDP: each line of stdin is one datagram; each reply is printed on a line.")
  ),
  framing: choiceOption("framing", ["raw", "lines", "length"] as const).pipe(
    Options.withDescription(
      "raw bytes (default); lines: stdin lines are sent as lines; length: each stdin line is sent as a " +
        "length-prefixed frame (4-byte big-endian). Received frames are printed one per line."
    ),
    Options.withDefault("raw" as const)
  ),
  timeout: durationOption("timeout").pipe(
    Options.withDescription("Give up connecting after this long, e.g. 5s (default 10s)."),
    Options.withDefault(Duration.seconds(10))
  ),
  wait: durationOption("wait").pipe(
    Options.withDescription("With --udp: after stdin ends, how long to wait for missing replies (default 1s)."),
    Options.withDefault(Duration.seconds(1))
  )
} as const

type ConnectOptions = Command.Command.ParseConfig<typeof options>

const NEWLINE = new Uint8Array([10])

/** What the session needs of the library and of Node, loaded when the command runs. */
const load = Effect.promise(async () => {
  const [Socket, Datagram, FramingModule, NodeStream, NodeSink] = await Promise.all([
    import("../Socket.js"),
    import("../Datagram.js"),
    import("../Framing.js"),
    import("@effect/platform-node/NodeStream"),
    import("@effect/platform-node/NodeSink")
  ])
  const describe = (cause: unknown) => cause instanceof Error ? cause.message : String(cause)
  // Closed at the end (the default), so that a terminal still open on stdin
  // does not keep the process alive once the peer has gone.
  const stdin: Stream.Stream<Uint8Array, CliError> = NodeStream.fromReadable(
    () => process.stdin,
    (cause) => new CliError({ message: `cannot read standard input: ${describe(cause)}` })
  )
  const stdout: Sink.Sink<void, Uint8Array, never, CliError> = NodeSink.fromWritable(
    () => process.stdout,
    (cause) => new CliError({ message: `cannot write standard output: ${describe(cause)}` }),
    { endOnDone: false }
  )
  return { Socket, Datagram, Framing: FramingModule, stdin, stdout }
})

type Loaded = Effect.Effect.Success<typeof load>

/**
 * The lines of standard input as frames. A last line without its newline
 * still counts: `lines()` would call those bytes an incomplete frame.
 */
const stdinLines = ({ Framing, stdin }: Loaded): Stream.Stream<Uint8Array, CliError | Framing.FrameError> =>
  Stream.suspend(() => {
    let last = 10
    const input = stdin.pipe(
      Stream.mapChunks((chunk) => {
        const bytes = Chunk.last(chunk)
        if (bytes._tag === "Some" && bytes.value.length > 0) last = bytes.value[bytes.value.length - 1]!
        return chunk
      })
    )
    const terminated = Stream.concat(input, Stream.suspend(() => last === 10 ? Stream.empty : Stream.make(NEWLINE)))
    return Framing.decode(terminated, Framing.lines())
  })

/** Every frame followed by a newline, without an Effect per frame. */
const oneFramePerLine = Stream.mapChunks((frames: Chunk.Chunk<Uint8Array>) =>
  Chunk.flatMap(frames, (frame) => Chunk.make(frame, NEWLINE))
)

const streamSession = (loaded: Loaded, address: Address.Address, options: ConnectOptions) =>
  Effect.gen(function*() {
    const { Framing, Socket, stdin, stdout } = loaded
    const codec = options.framing === "raw"
      ? undefined
      : options.framing === "lines"
      ? Framing.lines()
      : Framing.lengthPrefixed()
    const socket = yield* Socket.connect(address, { timeout: options.timeout })
    const toSocket = codec === undefined ? stdin : Framing.encode(stdinLines(loaded), codec)
    const fromSocket = codec === undefined ? socket.reads : oneFramePerLine(Framing.decode(socket.reads, codec))
    // The upload only ever ends the race by failing: after stdin's end it
    // half-closes and waits, so that the command ends when the peer does.
    const upload = Stream.run(toSocket, socket.writes).pipe(
      Effect.zipRight(socket.end),
      Effect.zipRight(Effect.never)
    )
    yield* Effect.raceFirst(Stream.run(fromSocket, stdout), upload)
  })

const datagramSession = (loaded: Loaded, address: Address.TcpAddress, options: ConnectOptions) =>
  Effect.gen(function*() {
    const { Datagram, stdout } = loaded
    const socket = yield* Datagram.connect(address)
    let sent = 0
    let answered = 0
    const allAnswered = yield* Effect.makeLatch(false)
    const replies = socket.reads.pipe(
      Stream.mapChunks((datagrams) => {
        answered += datagrams.length
        if (answered >= sent) allAnswered.unsafeOpen()
        return Chunk.flatMap(datagrams, (datagram) => Chunk.make(datagram.payload, NEWLINE))
      }),
      Stream.run(stdout),
      // The socket's reads end only when it closes: the wait below decides.
      Effect.zipRight(Effect.never)
    )
    const requests = Effect.gen(function*() {
      yield* Stream.runForEach(stdinLines(loaded), (line) =>
        Effect.zipRight(
          Effect.sync(() => {
            sent++
            allAnswered.unsafeClose()
          }),
          socket.send(line)
        ))
      if (answered >= sent) return
      const done = yield* allAnswered.await.pipe(Effect.timeoutOption(options.wait))
      if (done._tag === "None") {
        return yield* new CliError({
          message: `no reply to ${sent - answered} of ${sent} datagram(s) within ${Duration.format(options.wait)} ` +
            `of the end of input: is a UDP server running at ${Address.format(address)}? (UDP may also drop datagrams)`
        })
      }
    })
    yield* Effect.raceFirst(requests, replies)
  })

const connect = (options: ConnectOptions) =>
  Effect.gen(function*() {
    const { address } = options
    const loaded = yield* load
    if (!options.udp) return yield* streamSession(loaded, address, options)
    if (address._tag === "UnixAddress") {
      return yield* new CliError({ message: "--udp needs host:port: UDP does not run over a Unix socket path" })
    }
    if (options.framing !== "raw") {
      return yield* new CliError({ message: "--udp sends one datagram per line already: drop --framing" })
    }
    return yield* datagramSession(loaded, address, options)
  }).pipe(Effect.scoped)

/**
 * The `connect` command (see the module doc).
 *
 * ```ts
 * const cli = Command.make("effect-wire").pipe(Command.withSubcommands([connect.command]))
 * ```
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("connect", options, connect).pipe(
  Command.withDescription(
    "Connect to a server like netcat: stdin to the socket, the socket to stdout. At the end of stdin the " +
      "socket is half-closed; the command exits 0 when the peer closes. Failures print one error line and exit 1."
  )
)
