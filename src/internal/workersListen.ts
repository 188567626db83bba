/**
 * How a worker process of `Workers` listens: the one thing `Socket.listen`
 * (internal/nodeListener.ts) asks before it binds. In a worker the Workers
 * runtime provides this reference around the server it runs; everywhere else
 * it is `undefined` and listening is unchanged.
 *
 * With `reusePort`, every worker binds the same TCP address itself with
 * SO_REUSEPORT and the kernel spreads connections over them. A TCP listen
 * that asked for port 0 binds, in order, the ports the group's first worker
 * got (`ports`), so that every worker shares them; the first worker has
 * none and reports what it bound (`bound`). Unix socket files are not shared
 * (our Unix listeners bind a private path and hard-link it into place), so a
 * worker of a group of several refuses them.
 *
 * It also reads a worker's role from its environment (`workerRole`), cheaply
 * enough for every start (the CLI asks it before anything listens).
 *
 * @internal
 */
import * as Context from "effect/Context"
import type * as LogLevel from "effect/LogLevel"
import type Cluster from "node:cluster"
import * as Address from "../Address.js"

/** @internal */
export class WorkerListen {
  /** What each TCP listen bound, in order: what the first worker reports to its parent. */
  readonly bound: Array<Address.TcpAddress> = []
  private next = 0
  constructor(
    /** Bind with SO_REUSEPORT (the kernel balances); false under node:cluster (its primary does). */
    readonly reusePort: boolean,
    /** The ports the group's first worker bound for its port-0 listens, in order. */
    readonly ports: ReadonlyArray<number>,
    /** Whether the group has several workers: then a Unix socket file cannot be shared. */
    readonly shared: boolean
  ) {}

  /** The port the next TCP listen binds: the group's for a port-0 listen, else the one asked for. */
  portFor(requested: number): number {
    const i = this.next++
    return requested === 0 && i < this.ports.length ? this.ports[i]! : requested
  }

  listening(address: Address.TcpAddress): void {
    this.bound.push(address)
  }
}

/** @internal */
export const WorkerListenRef: Context.Reference<WorkerListen | undefined> = Context.Reference<
  WorkerListen | undefined
>("effect-wire/internal/WorkerListen", { defaultValue: () => undefined })

/** The environment variable that makes a process a worker, holding its {@link Role} as JSON. */
export const ROLE_ENV = "EFFECT_WIRE_WORKER"

/** What a worker is told at start. */
export interface Role {
  /** Its slot, from 1. */
  readonly worker: number
  readonly reusePort: boolean
  /** The ports of the first worker's TCP listens, in order (reusePort only). */
  readonly ports: ReadonlyArray<number>
  /** Whether the group has several workers. */
  readonly shared: boolean
  /** The parent's minimum log level. */
  readonly logLevel: LogLevel.LogLevel
}

let role: Role | undefined | null = null

/**
 * This process's role, if it is a worker (read once from the environment,
 * and only then asking node:cluster whether this is one of its workers: in
 * a worker node has loaded it already, elsewhere it is not loaded at start).
 */
export const workerRole = (): Role | undefined => {
  if (role === null) {
    const text = process.env[ROLE_ENV]
    role = text === undefined || !(process.getBuiltinModule("node:cluster") as unknown as typeof Cluster).isWorker ? undefined : JSON.parse(text) as Role
  }
  return role
}
