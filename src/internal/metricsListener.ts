/**
 * A node:net listener's metrics and connection spans (internal/tracing.ts): connection duration (accept to close),
 * bytes received and sent (Node's own per-socket counts, read when a socket
 * closes and, for the ones still open, when a snapshot is taken), the accept
 * queue's length and the time spent in it. (TLS handshakes are reported
 * by nodeTls.ts's `handshakeDone`.) Nothing here runs per read.
 *
 * @internal
 */
import type { ServerMeter } from "./metrics.js"
import type { ConnectionTracer } from "./tracing.js"
import type { NodeListener } from "./nodeListener.js"
import type { NodeSocket } from "./nodeSocket.js"

export class ListenerMeter {
  private readonly probes: ReadonlyArray<readonly [set: Set<() => number>, probe: () => number]>

  constructor(
    readonly listener: NodeListener,
    readonly server: ServerMeter | undefined,
    readonly tracer: ConnectionTracer | undefined
  ) {
    const received = () => {
      let n = 0
      for (const socket of listener.open.live) n += socket.raw.bytesRead
      return n
    }
    const sent = () => {
      let n = 0
      for (const socket of listener.open.live) n += socket.raw.bytesWritten
      return n
    }
    const queued = () => listener.waiting
    const add = (tally: { probes: Set<() => number> | undefined }, probe: () => number) => {
      const set = tally.probes ??= new Set()
      set.add(probe)
      return [set, probe] as const
    }
    this.probes = server === undefined
      ? []
      : [add(server.received, received), add(server.sent, sent), add(server.queued, queued)]
  }

  /** A connection was accepted (a TLS one: its handshake succeeded). */
  accepted(socket: NodeSocket): void {
    socket.openedAt = performance.now()
    this.tracer?.start(socket)
  }

  /** A TLS handshake ended (nodeTls.ts's `handshakeDone`). */
  handshake(durationMs: number, errorTag: string | undefined): void {
    this.server?.handshakeDone(durationMs, errorTag)
    this.tracer?.handshake(durationMs, errorTag)
  }

  /** A connection that waited in the accept queue was taken. */
  dequeued(socket: NodeSocket): void {
    this.server?.queueDuration.observe((performance.now() - socket.queuedAt) / 1000)
    socket.queuedAt = 0
  }

  /** A connection closed: its bytes move from the live probe to the counters. */
  released(socket: NodeSocket): void {
    // Once per socket: `openedAt` is cleared here.
    if (socket.openedAt === 0) return
    const server = this.server
    if (server !== undefined) {
      const raw = socket.raw
      server.received.n += raw.bytesRead
      server.sent.n += raw.bytesWritten
      server.duration.observe((performance.now() - socket.openedAt) / 1000)
    }
    socket.openedAt = 0
  }

  /** The listener stopped: its sockets still open are counted as they close. */
  stop(): void {
    for (const [set, probe] of this.probes) set.delete(probe)
    // The sockets destroyed at shutdown count their bytes in `released`, which no probe covers any more.
  }
}
