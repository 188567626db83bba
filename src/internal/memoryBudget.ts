/**
 * A server's memory budget: the bytes its connections hold (input read but
 * not framed or pulled yet, output the peers have not taken) summed with
 * plain integer arithmetic at each read and write, no allocation. Over the
 * budget, every member stops reading (backpressure to the kernel and the
 * peers); if it is still over a moment later, the connections holding the
 * most are cut with `MemoryBudgetExceeded` until it is back under, and
 * reading resumes.
 *
 * @internal
 */
import type * as Address from "../Address.js"
import * as NetError from "../NetError.js"
import { SwapSet } from "./swapSet.js"

/** The key under which a socket can join a budget (node:net's sockets). */
export const BudgetKey: unique symbol = Symbol.for("effect-wire/internal/MemoryBudget")

/** The key under which a pump handler says how many input bytes it holds (a decoder's unfinished frame). */
export const HeldKey: unique symbol = Symbol.for("effect-wire/internal/MemoryBudget/held")

/** A connection the budget counts: a node:net socket. */
export interface Member {
  /** Bytes charged to the budget at the last update. */
  charged: number
  /** Its place in the budget's members (internal/swapSet.ts); -1 when in none. */
  budgetIndex: number
  /** Input held: the read queue, and what a pump's handler holds. */
  heldInput(): number
  /** Output Node holds that the peer has not taken yet. */
  pendingOutput(): number
  /** Stop reading until {@link budgetResume}, for the budget. */
  budgetPause(): void
  /** Resume reading if the budget paused it. */
  budgetResume(): void
  /** Close the connection, failing it with `error`. */
  cutFor(error: NetError.MemoryBudgetExceeded): void
  /** The peer, for the error. */
  readonly remoteAddress: Address.Address
}

/** What the server learns of the budget's actions, to count and log them. */
export interface BudgetEvents {
  /** The budget was hit: reading paused (once per episode). */
  readonly paused: (used: number) => void
  /** Connections were cut to get back under the budget. */
  readonly cut: (n: number, used: number) => void
  /** Back under the budget: reading resumed. */
  readonly resumed: () => void
}

/** How long reading stays paused before the connections holding the most are cut. */
export const GRACE_MS = 100

/** Reading resumes once the budget's use is below this share of it. */
const RESUME_SHARE = 0.9

const fmt = (n: number): string =>
  n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`

/** A byte count as people read it (`8.0 MiB`). */
export const formatBytes = fmt

export class MemoryBudget {
  /** Bytes charged right now (exact after {@link measure}; between measures some output may have left). */
  used = 0
  /** Reading is paused for the budget. */
  paused = false
  /** Connections cut for the budget, in all. */
  cuts = 0
  /** Not a `Set`: see internal/swapSet.ts. */
  readonly members = new SwapSet<Member, "budgetIndex">("budgetIndex")
  private timer: ReturnType<typeof setTimeout> | undefined = undefined

  constructor(readonly limit: number, private readonly events: BudgetEvents) {}

  join(member: Member): void {
    member.charged = 0
    this.members.add(member)
    this.update(member)
  }

  /** The member is closed: nothing of it is held any more. */
  leave(member: Member): void {
    if (!this.members.delete(member)) return
    this.used -= member.charged
    member.charged = 0
    if (this.paused && this.used < this.limit * RESUME_SHARE) this.resume()
  }

  /** After a read or a write of `member`: its charge follows what it holds now. */
  update(member: Member): void {
    const now = member.heldInput() + member.pendingOutput()
    const delta = now - member.charged
    if (delta === 0) return
    member.charged = now
    this.used += delta
    if (this.used > this.limit) {
      if (!this.paused) this.over()
    } else if (this.paused && delta < 0 && this.used < this.limit * RESUME_SHARE) {
      // Only a member's own charge is exact here; measure them all before resuming.
      this.measure()
      if (this.used < this.limit * RESUME_SHARE) this.resume()
    }
  }

  /** Every member's charge made exact (output leaves without an event of ours). */
  measure(): void {
    let used = 0
    for (const m of this.members.live) {
      m.charged = m.heldInput() + m.pendingOutput()
      used += m.charged
    }
    this.used = used
  }

  private over(): void {
    this.measure()
    if (this.used <= this.limit) return
    this.paused = true
    for (const m of this.members.live) m.budgetPause()
    this.events.paused(this.used)
    this.arm()
  }

  private arm(): void {
    if (this.timer !== undefined) return
    this.timer = setTimeout(onGrace, GRACE_MS, this)
    this.timer.unref()
  }

  /** The grace is over: measure; still over, cut the largest; back under, resume. */
  check(): void {
    this.timer = undefined
    if (!this.paused) return
    this.measure()
    const target = this.limit * RESUME_SHARE
    if (this.used >= target) {
      const largest = this.members.live.slice().sort((a, b) => b.charged - a.charged)
      const limit = this.limit
      let n = 0
      for (const m of largest) {
        if (this.used < target || m.charged === 0) break
        const held = m.charged
        const input = m.heldInput()
        const error = new NetError.MemoryBudgetExceeded({
          address: m.remoteAddress,
          detail: `it held ${fmt(held)} (${fmt(input)} of input not read or framed yet, ${
            fmt(Math.max(0, held - input))
          } of output the peer had not taken) when the server's connections held ${fmt(this.used)} of its ${
            fmt(limit)
          } memoryBudget`
        })
        this.members.delete(m)
        this.used -= held
        m.charged = 0
        m.cutFor(error)
        n++
      }
      this.cuts += n
      if (n > 0) this.events.cut(n, this.used)
    }
    if (this.used < target) this.resume()
    else this.arm()
  }

  private resume(): void {
    if (!this.paused) return
    this.paused = false
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    for (const m of this.members.live) m.budgetResume()
    this.events.resumed()
  }

  /** The server stopped: no timer outlives it, and nothing stays paused. */
  stop(): void {
    this.resume()
  }
}

const onGrace = (budget: MemoryBudget): void => budget.check()

/** A socket that can join a budget. */
export interface Budgeted {
  readonly [BudgetKey]: (budget: MemoryBudget) => void
}

/** Makes `socket` a member of `budget`, if it can be one (node:net's sockets can; others are not counted). */
export const joinBudget = (socket: unknown, budget: MemoryBudget | undefined): void => {
  if (budget === undefined || typeof socket !== "object" || socket === null || !(BudgetKey in socket)) return
  ;(socket as Budgeted)[BudgetKey](budget)
}

/** How many input bytes a pump handler holds, if it says. */
export const heldBy = (handler: object): number => {
  const held = (handler as { readonly [HeldKey]?: number })[HeldKey]
  return held === undefined ? 0 : held
}
