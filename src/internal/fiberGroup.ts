/**
 * The fibers a server runs its connections (or datagrams) in: each started
 * with the services the group was made with, all interrupted when the scope
 * it was made in closes. What Effect's `FiberSet.make` and `FiberSet.runtime`
 * give, kept in a `SwapSet` instead of a `Set`: a server's set lives long and
 * turns over with every connection, and a `Set`'s old tables would keep
 * finished fibers alive until the next full GC (see internal/swapSet.ts).
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import { type Indexed, SwapSet } from "./swapSet.js"

interface Entry extends Indexed {
  readonly fiber: Fiber.Fiber<unknown, unknown>
}

/** See the module comment. */
export class FiberGroup<R> implements Iterable<Fiber.Fiber<unknown, unknown>> {
  private readonly entries = new SwapSet<Entry>()
  private closed = false
  private readonly runFork: <A, E>(effect: Effect.Effect<A, E, R>) => Fiber.Fiber<A, E>

  constructor(services: Context.Context<R>) {
    this.runFork = Effect.runForkWith(services)
  }

  /** Starts `effect` in a fiber of the group (interrupted at once if the group is closed). */
  run<A, E>(effect: Effect.Effect<A, E, R>): Fiber.Fiber<A, E> {
    const fiber = this.runFork(effect)
    this.add(fiber)
    return fiber
  }

  /** Puts a fiber started elsewhere in the group (interrupted at once if the group is closed). */
  add(fiber: Fiber.Fiber<unknown, unknown>): void {
    if (this.closed) return fiber.interruptUnsafe()
    if (fiber.pollUnsafe() !== undefined) return
    const entry: Entry = { fiber, setIndex: -1 }
    this.entries.add(entry)
    fiber.addObserver(() => this.entries.delete(entry))
  }

  get size(): number {
    return this.entries.size
  }

  /** A snapshot of the fibers still running. */
  [Symbol.iterator](): Iterator<Fiber.Fiber<unknown, unknown>> {
    return this.entries.live.map((entry) => entry.fiber)[Symbol.iterator]()
  }

  /** Interrupts every fiber still running and waits for them; fibers added later are interrupted at once. */
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    this.closed = true
    return Fiber.interruptAll(this)
  })
}

/**
 * A group with the current services, closed when the current scope closes.
 *
 * ```ts
 * const connections = yield* FiberGroup.make<R>()
 * connections.run(handle(socket))
 * ```
 */
export const make = <R = never>(): Effect.Effect<FiberGroup<R>, never, R | Scope.Scope> =>
  Effect.flatMap(Effect.context<R>(), (services) => {
    const group = new FiberGroup(services)
    return Effect.as(Effect.addFinalizer(() => group.close), group)
  })
