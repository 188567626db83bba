/**
 * Channels and sinks made as Effect's `Channel.fromTransform` and
 * `Sink.fromTransform` make them, for what every connection makes (its
 * `reads` and `writes`, a codec piped over them), but by a constructor.
 *
 * Effect makes them with `Object.create(proto)` and assigns `transform`
 * after; V8 gives such an object a property array allocated in the old
 * generation, so the transform it holds, and all of a connection's state the
 * transform reaches (the socket wrapper, its streams), survives every
 * young-generation GC until the next full one, long after the connection
 * closed. An object made by a constructor keeps the property in the object,
 * which dies young. Measured on a bare fiber per connection (scratch
 * servers, 10,000 connections, `--trace-gc-nvp`): the socket's `reads` under
 * `Stream.run` had 1.12 KB per connection survive a scavenge, 0.56 KB made
 * this way, as much as `Socket.pump` (0.58). See docs/performance.md.
 *
 * Those made here have the prototype and the one own property Effect's have;
 * when an Effect release makes them differently, Effect's own are used.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"

/** What `Channel.fromTransform` takes (`EX`: how making the pull fails). */
type ChannelTransform<OutElem, OutErr, OutDone, InElem, InErr, InDone, EX, Env> = (
  upstream: Pull.Pull<InElem, InErr, InDone>,
  scope: Scope.Scope
) => Effect.Effect<Pull.Pull<OutElem, OutErr, OutDone, Env>, EX, Env>

type SinkTransform<A, In, L, E, R> = (
  upstream: Pull.Pull<readonly [In, ...Array<In>], never, void>,
  scope: Scope.Scope
) => Effect.Effect<Sink.End<A, L>, E, R>

const probeTransform = () => Effect.succeed(Cause.done())
const effectChannel = Channel.fromTransform(probeTransform)
const effectSink = Sink.fromTransform(() => Effect.succeed([undefined] as const))
const ChannelProto: object | null = Object.getPrototypeOf(effectChannel)
const SinkProto: object | null = Object.getPrototypeOf(effectSink)

/** Effect's channel wraps the transform so that its failure becomes the pull's (as `Channel.fromTransform`). */
const wrap = <OutElem, OutErr, OutDone, InElem, InErr, InDone, EX, Env>(
  transform: ChannelTransform<OutElem, OutErr, OutDone, InElem, InErr, InDone, EX, Env>
): ChannelTransform<OutElem, OutErr | EX, OutDone, InElem, InErr, InDone, never, Env> =>
(upstream, scope) =>
  Effect.catchCause(
    transform(upstream, scope),
    (cause) => Effect.succeed(Effect.failCause(cause))
  ) as never

/*
 * Constructors whose `prototype` is Effect's own: `new` makes the object with
 * the property inside it, as fast as `Object.create` (an object literal with
 * `__proto__` costs ~140 ns). Named, for heap snapshots.
 */
function YoungChannel(this: { transform: unknown }, transform: unknown) {
  this.transform = transform
}
YoungChannel.prototype = ChannelProto
function YoungSink(this: { transform: unknown }, transform: unknown) {
  this.transform = transform
}
YoungSink.prototype = SinkProto
const youngChannel = (transform: unknown): unknown =>
  new (YoungChannel as unknown as new(transform: unknown) => object)(transform)
const youngSink = (transform: unknown): unknown => new (YoungSink as unknown as new(transform: unknown) => object)(transform)

/** Whether an object made here is what Effect would have made: same prototype, same own keys, read back. */
const sameShape = (ours: unknown, theirs: object, read: (x: never) => unknown, transform: unknown): boolean =>
  typeof ours === "object" && ours !== null &&
  Object.getPrototypeOf(ours) === Object.getPrototypeOf(theirs) &&
  Object.keys(ours).join() === Object.keys(theirs).join() &&
  read(ours as never) === transform

const youngChannels = (() => {
  const transform = wrap(probeTransform)
  const channel = youngChannel(transform)
  return sameShape(channel, effectChannel, Channel.toTransform as never, transform) && Channel.isChannel(channel)
})()
const youngSinks = (() => {
  const transform = () => Effect.void
  const sink = youngSink(transform)
  return sameShape(sink, effectSink, (s: { transform: unknown }) => s.transform, transform) && Sink.isSink(sink)
})()

/** `Channel.fromTransform`, made to die young (see above). */
export const channelFromTransform = <OutElem, OutErr, OutDone, InElem, InErr, InDone, EX, Env>(
  transform: ChannelTransform<OutElem, OutErr, OutDone, InElem, InErr, InDone, EX, Env>
): Channel.Channel<OutElem, Pull.ExcludeDone<OutErr> | EX, OutDone, InElem, InErr, InDone, Env> =>
  youngChannels ? youngChannel(wrap(transform)) as never : Channel.fromTransform(transform)

/**
 * `Stream.fromPull`, made to die young (see above), for a pull made by an
 * Effect that cannot fail: without the wrapper that turns a failure to make
 * the pull into a failing pull (there is none to turn), one Effect step less
 * per run of the stream.
 */
export const streamFromPull = <A, E>(
  effect: Effect.Effect<Pull.Pull<readonly [A, ...Array<A>], E, void>>
): Stream.Stream<A, Pull.ExcludeDone<E>> => {
  const transform = () => effect
  return Stream.fromChannel(youngChannels ? youngChannel(transform) as never : Channel.fromTransform(transform))
}

/** `Stream.pipeThroughChannel`, made to die young (see above): what a codec over a connection's reads makes. */
export const pipeThroughChannel = <A, E, R, A2, E2, R2>(
  self: Stream.Stream<A, E, R>,
  channel: Channel.Channel<
    readonly [A2, ...Array<A2>],
    E2,
    unknown,
    readonly [A, ...Array<A>],
    E,
    unknown,
    R2
  >
): Stream.Stream<A2, E2, R | R2> =>
  Stream.fromChannel(
    channelFromTransform((upstream: Pull.Pull<unknown, unknown, unknown>, scope) =>
      Effect.flatMap(
        Channel.toTransform(self.channel)(upstream, scope),
        (pull) => Channel.toTransform(channel)(pull, scope)
      )
    )
  ) as never

/** `Sink.fromTransform`, made to die young (see above). */
export const sinkFromTransform = <A, In, L = never, E = never, R = never>(
  transform: SinkTransform<A, In, L, E, R>
): Sink.Sink<A, In, L, E, R> => youngSinks ? youngSink(transform) as never : Sink.fromTransform(transform)

/** Whether the constructors here are in use (for the test that pins them to Effect's shapes). */
export const makesYoung = (): boolean => youngChannels && youngSinks
