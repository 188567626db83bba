/**
 * A server's pump connections on a node:net listener: each is taken in the
 * listener's 'connection' callback and served by a pump in Node's callbacks,
 * with no fiber, scope or finalizer of its own; admission, counters and
 * failures go through the server's `ConnectionSlots`, as on the fiber path.
 * A handler served in callbacks (`callbackServe.ts`) may park: its pump
 * stops, a supervised fiber finishes the read, and a new pump goes on.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Socket from "../Socket.js"
import { type ConnectionRuntime, Park } from "./callbackServe.js"
import type { ConnectionSlots } from "./connectionSlots.js"
import type { PumpConnections } from "./listenerCapability.js"
import { heldBy, joinBudget } from "./memoryBudget.js"
import type { Acceptor, NodeListener } from "./nodeListener.js"
import { type Pumping, startPump } from "./nodePump.js"
import type { NodeSocket } from "./nodeSocket.js"
import { type Indexed, SwapSet } from "./swapSet.js"

/** One connection served by a pump. */
interface PumpConnection extends Indexed {
  readonly socket: NodeSocket
  pump: Pumping<unknown> | undefined
  /** Its pump reported how it ended. */
  ended: boolean
  /** Cut by the drain's timeout. */
  cut: boolean
  /** Its socket is closed and its slot released. */
  gone: boolean
  /** The connection's runtime, for a handler served in callbacks. */
  runtime: ConnectionRuntime | undefined
}

/** The park a pump ended with, if it ended with one. */
const parkOf = (exit: Exit.Exit<void, unknown>): Park | undefined => {
  if (exit._tag === "Success") return undefined
  const reasons = exit.cause.reasons
  if (reasons.length !== 1) return undefined
  const reason = reasons[0]!
  return reason._tag === "Fail" && reason.error instanceof Park ? reason.error : undefined
}

const ignore = () => {}

/** See `ServerCapability.servePumps`. */
export const servePumps = (
  listener: NodeListener,
  make: (socket: Socket.Socket, runtime: ConnectionRuntime | undefined) => Socket.PumpHandler<unknown>,
  slots: ConnectionSlots,
  newRuntime?: (() => ConnectionRuntime) | undefined
): PumpConnections => {
  // Not a Map: see internal/swapSet.ts.
  const open = new SwapSet<PumpConnection>()
  // The drain asked every connection to end: a park that finishes half-closes instead of pumping on.
  let ending = false

  const gone = (state: PumpConnection) => {
    if (state.gone) return
    state.gone = true
    open.delete(state)
    slots.gone()
  }

  // The pump stopped; a fiber finishes the read, then a new pump goes on (or the connection ends).
  // One function for every connection: a pump handler's connection (Echo) never parks.
  const parked = (
    socket: NodeSocket,
    state: PumpConnection,
    handler: Socket.PumpHandler<unknown>,
    ended: (exit: Exit.Exit<void, unknown>) => void,
    park: Park
  ) => {
    state.pump = undefined
    const fiber = state.runtime!.park(park.rest)
    // While it waits, what the handler holds counts in the budget; a connection closed meanwhile
    // (cut by a limit, reset by the peer) interrupts it, so what it holds goes at once.
    let closed = false
    socket.parked = {
      held: () => heldBy(handler),
      closed: () => {
        closed = true
        fiber.interruptUnsafe()
      }
    }
    socket.budget?.update(socket)
    fiber.addObserver((exit) => {
      socket.parked = undefined
      if (state.ended || state.cut) return
      // Ended as a pump ends when its socket closes: with the socket's failure, if any.
      if (closed) return ended(socket.failure === undefined ? Exit.void : Exit.fail(socket.readError()))
      if (exit._tag === "Failure") return ended(exit)
      if (!exit.value) return ended(Exit.void)
      state.pump = startPump(socket, handler, undefined, ended)
      if (ending) state.pump?.onAbort()
    })
  }

  const serve = (socket: NodeSocket) => {
    slots.admit()
    const runtime = newRuntime?.()
    const state: PumpConnection = { socket, pump: undefined, ended: false, cut: false, gone: false, runtime, setIndex: -1 }
    open.add(state)
    let handler: Socket.PumpHandler<unknown>
    const ended = (exit: Exit.Exit<void, unknown>) => {
      if (state.ended) return
      const park = runtime === undefined ? undefined : parkOf(exit)
      if (park !== undefined) return parked(socket, state, handler, ended, park)
      state.ended = true
      state.pump = undefined
      // A cut connection was counted by the drain, like an interrupted fiber.
      if (!state.cut) {
        const failure = slots.ended(exit, socket)
        if (failure !== undefined) slots.fork(slots.logEnding(socket, failure))
      }
      runtime?.release(exit)
      socket.closeWith(() => gone(state))
    }
    try {
      handler = make(socket, runtime)
    } catch (defect) {
      return ended(Exit.die(defect))
    }
    state.pump = startPump(socket, handler, undefined, ended)
    if (!state.ended) joinBudget(socket, slots.budget)
  }

  const accepting = acceptInCallbacks(listener, slots, serve)

  return {
    stop: accepting.stop,
    // Connections end the way the built-in byte servers do on drain: half-close.
    endAll: () => {
      ending = true
      for (const state of open) state.pump?.onAbort()
    },
    // Each is closed (flushing within its closeTimeout), as an interrupted fiber's socket is.
    cut: Effect.callback<void>((resume) => {
      if (open.size === 0) return resume(Effect.void)
      let remaining = open.size
      for (const state of open) {
        const socket = state.socket
        if (!state.ended && !state.cut) {
          state.cut = true
          slots.cut(socket)
        }
        state.pump?.detach()
        state.runtime?.release(Exit.interrupt())
        socket.closeWith(() => {
          gone(state)
          if (--remaining === 0) resume(Effect.void)
        })
      }
    })
  }
}

/**
 * Takes a listener's connections in its 'connection' callback (and those
 * already waiting in its queue) and gives each to `serve` while
 * `maxConnections` allows: with `"queue"` the others wait in the listener's
 * bounded queue until a slot frees, with `"refuse"` they are closed. No
 * accept stream and no fiber step per connection. `stop` takes no more.
 */
export const acceptInCallbacks = (
  listener: NodeListener,
  slots: ConnectionSlots,
  serve: (socket: NodeSocket) => void
): { readonly stop: () => void } => {
  let accepting = true
  /** A new connection: served, refused, or (false) left in the listener's queue until a slot frees. */
  const take = (socket: NodeSocket): boolean => {
    if (slots.hasRoom()) {
      serve(socket)
      return true
    }
    slots.full()
    if (slots.overflow === "queue") return false
    socket.closeWith(ignore)
    return true
  }

  /**
   * What waits in the listener's queue, as far as `maxConnections` allows; a
   * connection served here may stop this taker, which then leaves the rest.
   */
  const takeQueued = () => {
    while (accepting) {
      if (slots.overflow === "queue" && !slots.hasRoom()) {
        if (listener.waiting > 0) slots.full(listener.waiting)
        return
      }
      const next = listener.take()
      if (next === undefined) return
      take(next)
    }
  }

  // Connections that arrived before the server wait in the listener's queue.
  takeQueued()
  // A later taker (`PlatformSocket.fromListener`'s `run` called again) takes over until it stops;
  // then the latest of those before it that still runs takes them again, as Effect's own socket
  // servers do, whatever order the others stopped in.
  const acceptor: Acceptor = { take, takeQueued }
  const acceptors = listener.acceptors
  acceptors.push(acceptor)
  slots.onFree = () => {
    if (!accepting || !slots.hasRoom() || acceptors[acceptors.length - 1] !== acceptor) return
    const next = listener.take()
    if (next !== undefined) serve(next)
  }
  return {
    stop: () => {
      accepting = false
      slots.onFree = undefined
      const at = acceptors.indexOf(acceptor)
      if (at < 0) return
      acceptors.splice(at, 1)
      if (at === acceptors.length) acceptors[at - 1]?.takeQueued()
    }
  }
}
