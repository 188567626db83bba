/**
 * `effect-wire connect ADDRESS`: a netcat for effect-wire servers. Standard
 * input goes to the socket and the socket to standard output; at the end of
 * standard input the socket is half-closed, and the command exits 0 once the
 * peer closes its side. With `--framing lines|length`, every line of standard
 * input is sent as one frame and every frame received is printed on a line of
 * its own. With `--udp`, every line is one datagram and every reply is printed
 * on a line of its own, at most `--window` datagrams awaiting a reply at once;
 * the command exits once each datagram was answered or counted lost.
 *
 * Exit codes, as `nc` and the shell have them: 0 for a session that ended
 * (also when the reader of our stdout went away, `… | head -c 10`), 130 or
 * 143 when SIGINT or SIGTERM stopped it, 1 with one `error: …` line for a
 * failure (refused, reset, datagrams without a reply, a bad flag).
 *
 * ```sh
 * printf 'hello\n' | effect-wire connect 127.0.0.1:9000
 * printf 'a\nb\n' | effect-wire connect 127.0.0.1:9000 --framing length
 * seq 1 2000 | effect-wire connect 127.0.0.1:9001 --udp --window 64
 * effect-wire connect unix:$XDG_RUNTIME_DIR/effect-wire/upper.sock
 * ```
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Argument from "effect/cli/Argument"
import * as EffectCliError from "effect/cli/CliError"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"
import * as Result from "effect/Result"
import type * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Address from "../Address.js"
import * as Datagram from "../Datagram.js"
import * as FramingModule from "../Framing.js"
import type * as Framing from "../Framing.js"
import * as Socket from "../Socket.js"
import { choiceOption, CliError, durationOption, isBrokenPipe, limitRule, positiveIntegerOption } from "./common.js"
import { connectTls, connectTlsFlags } from "./tls.js"
import { formatDuration } from "./units.js"

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
export const addressArg: Argument.Argument<Address.Address> = Argument.String("ADDRESS").pipe(
  Argument.withDescription("Where the server is: host:port, [ipv6]:port or unix:/path/to.sock."),
  Argument.mapEffect((text) =>
    Result.match(Address.parse(text), {
      onFailure: (e) => Effect.fail(new EffectCliError.ValidationError({ message: e.message })),
      onSuccess: Effect.succeed
    })
  )
)

const DEFAULT_WINDOW = 64

const options = {
  address: addressArg,
  ...connectTlsFlags,
  udp: Flag.Boolean("udp").pipe(
    Flag.withDescription(
      "Speak UDP: each line of stdin is one datagram; each reply is printed on a line. Sending is paced by --window."
    ),
    Flag.withDefault(false)
  ),
  framing: choiceOption("framing", ["raw", "lines", "length"] as const).pipe(
    Flag.withDescription(
      "raw bytes (default); lines: stdin lines are sent as lines; length: each stdin line is sent as a " +
        "length-prefixed frame (4-byte big-endian). Received frames are printed one per line."
    ),
    Flag.withDefault("raw" as const)
  ),
  timeout: durationOption("timeout", { example: "10s", never: true }).pipe(
    Flag.withDescription(
      `Give up connecting after this long, e.g. 5s; never leaves it to the system (default 10s; ${limitRule(true)}).`
    ),
    Flag.withDefault(Duration.seconds(10))
  ),
  wait: durationOption("wait", { example: "1s" }).pipe(
    Flag.withDescription(
      `With --udp: how long a datagram may wait for its reply before it counts as lost (default 1s; ${limitRule(false)}).`
    ),
    Flag.withDefault(Duration.seconds(1))
  ),
  window: positiveIntegerOption("window", String(DEFAULT_WINDOW)).pipe(
    Flag.withDescription(
      "With --udp: at most N datagrams awaiting a reply at once; the next line is sent when a reply arrives or " +
        "--wait runs out. UDP has no flow control: sending faster than the replies come overflows a receive " +
        `buffer and loses them; ${DEFAULT_WINDOW} is safe on loopback (default ${DEFAULT_WINDOW}; ${limitRule(false)}).`
    ),
    Flag.withDefault(DEFAULT_WINDOW)
  )
} as const

type ConnectOptions = Command.Command.Config.Infer<typeof options>

const NEWLINE = new Uint8Array([10])

/**
 * Nobody reads our standard output any more (`… | head -c 10`): the session
 * ends quietly with exit 0, as `nc` does.
 */
class ReaderGone extends Data.TaggedError("ReaderGone")<{}> {}

/** What the session needs of the library and of Node, loaded when the command runs. */
const load = Effect.promise(async () => {
  const [NodeStream, NodeSink] = await Promise.all([
    import("@effect/platform-node/NodeStream"),
    import("@effect/platform-node/NodeSink")
  ])
  const describe = (cause: unknown) => cause instanceof Error ? cause.message : String(cause)
  // Closed at the end (the default), so that a terminal still open on stdin
  // does not keep the process alive once the peer has gone.
  const stdin: Stream.Stream<Uint8Array, CliError> = NodeStream.fromReadable({
    evaluate: () => process.stdin,
    onError: (cause) => new CliError({ message: `cannot read standard input: ${describe(cause)}` })
  })
  const stdout: Sink.Sink<void, Uint8Array, never, CliError | ReaderGone> = NodeSink.fromWritable({
    evaluate: () => process.stdout,
    onError: (cause) =>
      isBrokenPipe(cause) ? new ReaderGone() : new CliError({ message: `cannot write standard output: ${describe(cause)}` }),
    endOnDone: false
  })
  return { Socket, Datagram, Framing: FramingModule, stdin, stdout }
})

type Loaded = Effect.Success<typeof load>

/**
 * The lines of standard input as frames. A last line without its newline
 * still counts: `lines()` would call those bytes an incomplete frame.
 */
const stdinLines = ({ Framing, stdin }: Loaded): Stream.Stream<Uint8Array, CliError | Framing.FrameError> =>
  Stream.suspend(() => {
    let last = 10
    const input = stdin.pipe(
      Stream.mapArray((chunk) => {
        const bytes = chunk[chunk.length - 1]!
        if (bytes.length > 0) last = bytes[bytes.length - 1]!
        return chunk
      })
    )
    const terminated = Stream.concat(input, Stream.suspend(() => last === 10 ? Stream.empty : Stream.make(NEWLINE)))
    return Framing.decode(terminated, Framing.lines())
  })

/** Every frame followed by a newline, without an Effect per frame. */
const withNewlines = (frames: Arr.NonEmptyReadonlyArray<Uint8Array>): Arr.NonEmptyReadonlyArray<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (const frame of frames) out.push(frame, NEWLINE)
  return out as unknown as Arr.NonEmptyReadonlyArray<Uint8Array>
}

const oneFramePerLine = Stream.mapArray(withNewlines)

const streamSession = (loaded: Loaded, address: Address.Address, options: ConnectOptions) =>
  Effect.gen(function*() {
    const { Framing, Socket, stdin, stdout } = loaded
    const codec = options.framing === "raw"
      ? undefined
      : options.framing === "lines"
      ? Framing.lines()
      : Framing.lengthPrefixed()
    // never: no timeout of ours, the system's own applies.
    const socket = yield* Socket.connect(address, {
      timeout: Duration.isFinite(options.timeout) ? options.timeout : undefined,
      tls: yield* connectTls(options)
    })
    const toSocket = codec === undefined ? stdin : Framing.encode(stdinLines(loaded), codec)
    const fromSocket = codec === undefined ? socket.reads : oneFramePerLine(Framing.decode(socket.reads, codec))
    // The upload only ever ends the race by failing: after stdin's end it
    // half-closes and waits, so that the command ends when the peer does.
    const upload = Stream.run(toSocket, socket.writes).pipe(
      Effect.andThen(socket.end),
      Effect.andThen(Effect.never)
    )
    yield* Effect.raceFirst(Stream.run(fromSocket, stdout), upload)
  })

/**
 * UDP, paced: at most `--window` datagrams await a reply at once. UDP has no
 * flow control, so a client that sends as fast as it reads overflows a
 * receive buffer (the server's or its own) and loses replies. Replies carry
 * no request id, so they are counted, not matched: each frees the oldest
 * slot, and a datagram still unanswered after `--wait` counts as lost (a
 * reply that comes later still is printed and un-counts it).
 */
const datagramSession = (loaded: Loaded, address: Address.TcpAddress, options: ConnectOptions) =>
  Effect.gen(function*() {
    const { Datagram, stdout } = loaded
    const socket = yield* Datagram.connect(address)
    const waitMillis = Duration.toMillis(options.wait)
    // When each datagram awaiting a reply counts as lost, oldest first.
    const deadlines: Array<number> = []
    let sent = 0
    let lost = 0
    const replied = yield* Latch.make(false)
    const expire = () => {
      const now = Date.now()
      while (deadlines.length > 0 && deadlines[0]! <= now) {
        deadlines.shift()
        lost++
      }
    }
    /** Wait until fewer than `limit` datagrams await a reply. */
    const fewerAwaiting = (limit: number): Effect.Effect<void> =>
      Effect.suspend(() => {
        expire()
        if (deadlines.length < limit) return Effect.void
        replied.closeUnsafe()
        return replied.await.pipe(
          Effect.timeoutOption(Duration.millis(deadlines[0]! - Date.now())),
          Effect.andThen(fewerAwaiting(limit))
        )
      })
    const replies = Stream.runForEachArray(socket.reads, (datagrams) => {
      const lines = withNewlines(Arr.map(datagrams, (datagram) => datagram.payload))
      // Counted once printed: the last answer ends the race below.
      return Stream.run(Stream.fromArray(lines), stdout).pipe(Effect.andThen(Effect.sync(() => {
        for (let i = 0; i < datagrams.length; i++) {
          if (deadlines.length > 0) deadlines.shift()
          else if (lost > 0) lost--
        }
        replied.openUnsafe()
      })))
    }).pipe(
      // The socket's reads end only when it closes: the requests decide.
      Effect.andThen(Effect.never)
    )
    const requests = Effect.gen(function*() {
      yield* Stream.runForEach(stdinLines(loaded), (line) =>
        Effect.andThen(
          fewerAwaiting(options.window),
          Effect.suspend(() => {
            sent++
            deadlines.push(Date.now() + waitMillis)
            return socket.send(line)
          })
        ))
      yield* fewerAwaiting(1)
      if (lost > 0) {
        return yield* new CliError({
          message: `no reply to ${lost} of ${sent} datagram(s) within ${formatDuration(options.wait)} (--wait): ` +
            `is a UDP server running at ${Address.format(address)}? (UDP may also drop datagrams: a smaller ` +
            "--window sends more gently)"
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
    if (options.tls) return yield* new CliError({ message: "--udp cannot be combined with --tls: UDP has no TLS here" })
    return yield* datagramSession(loaded, address, options)
  }).pipe(
    Effect.scoped,
    Effect.catchTag("ReaderGone", () => Effect.void)
  )

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
      "socket is half-closed; the command exits 0 when the peer closes (or the reader of stdout goes away), " +
      "130 or 143 when SIGINT or SIGTERM stops it. Failures print one error line and exit 1."
  )
)
