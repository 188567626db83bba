/**
 * The worker side of `Workers`: run the server with the group's way of
 * listening (internal/workersListen.ts), tell the parent where it listens,
 * answer its stats requests, and drain when told to (or when the parent goes
 * away), sending the drain report before the process ends. It answers the
 * parent's metric requests with its `MetricRegistry`'s snapshot
 * (internal/workersMetrics.ts).
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as References from "effect/References"
import type * as Scope from "effect/Scope"
import Cluster from "node:cluster"
import * as Address from "../Address.js"
import type * as Server from "../Server.js"
import { type FromWorker, KEY, logLevelOf, type Role, toMillis, type ToWorker } from "./workers.js"
import { encodeSnapshot } from "./workersMetrics.js"
import { WorkerListen, WorkerListenRef } from "./workersListen.js"

const send = (message: FromWorker): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (process.send === undefined || !process.connected) return resume(Effect.void)
    try {
      process.send({ [KEY]: message }, undefined, {}, () => resume(Effect.void))
    } catch {
      resume(Effect.void)
    }
  })

/** Why the server did not start, as the parent's `WorkerStartFailed` carries it. */
const failureOf = (cause: Cause.Cause<unknown>): { reason: string; detail: string } => {
  const error = Cause.squash(cause)
  const reason = typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : Cause.hasFails(cause) ? "Error" : "Defect"
  const detail = error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
    ? String((error as { message: unknown }).message)
    : String(error)
  return { reason, detail }
}

/** @internal */
export const runWorker = <E>(
  server: Effect.Effect<Server.RunningServer, E, Scope.Scope>,
  role: Role
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const listen = new WorkerListen(role.reusePort, role.ports, role.shared)
    const stop = yield* Deferred.make<void>()
    const context = yield* Effect.context<never>()
    const runFork = Effect.runForkWith(context)
    const onDisconnect = () => void runFork(Deferred.succeed(stop, undefined))
    // node:cluster exits a worker at once when its channel closes unless `exitedAfterDisconnect` is true (as
    // its docs say): set, a worker whose parent is gone drains (onDisconnect) and ends when its work does.
    if (Cluster.worker !== undefined) Cluster.worker.exitedAfterDisconnect = true
    yield* Effect.scoped(Effect.gen(function*() {
      let running: Server.RunningServer | undefined
      // Added first, so it runs last: once the server has drained, its report goes to the parent.
      yield* Effect.addFinalizer(() =>
        running === undefined ? Effect.void : Effect.flatMap(running.shutdown, (report) => send({ type: "drained", report }))
      )
      const started = yield* server.pipe(
        Effect.provideService(WorkerListenRef, listen),
        Effect.map((s) => ({ ok: s } as const)),
        Effect.catchCause((cause) => Effect.succeed({ failed: failureOf(cause) } as const))
      )
      if ("failed" in started) return yield* send({ type: "failed", ...started.failed })
      running = started.ok
      const server_ = started.ok
      const onMessage = (raw: unknown) => {
        if (typeof raw !== "object" || raw === null || !(KEY in raw)) return
        const message = (raw as Record<string, ToWorker>)[KEY]!
        if (message.type === "drain") void runFork(Deferred.succeed(stop, undefined))
        else if (message.type === "stats") {
          void runFork(Effect.flatMap(server_.stats, (stats) => send({ type: "stats", id: message.id, stats })))
        } else if (message.type === "metrics") {
          // The series of this process's MetricRegistry: the server's, and any of the program's own.
          void runFork(send({ type: "metrics", id: message.id, snapshot: encodeSnapshot(Metric.snapshotUnsafe(context)) }))
        }
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          process.on("message", onMessage)
          process.on("disconnect", onDisconnect)
        }),
        () =>
          Effect.sync(() => {
            process.off("message", onMessage)
            process.off("disconnect", onDisconnect)
          })
      )
      const addresses = listen.bound.length > 0 ? listen.bound : [server_.address]
      yield* send({
        type: "ready",
        addresses: addresses.map(Address.format),
        limits: {
          maxConnections: server_.limits.maxConnections,
          overflow: server_.limits.overflow,
          idleTimeout: toMillis(server_.limits.idleTimeout),
          shutdownTimeout: toMillis(server_.limits.shutdownTimeout)
        }
      })
      // The parent went away before it could tell us to drain: drain anyway.
      if (!process.connected) return
      yield* Deferred.await(stop)
    }))
    // Nothing more to say: without the channel, nothing keeps the process alive. Through the cluster's
    // worker: a bare process.disconnect() makes node:cluster exit the process at once (an "unexpected"
    // disconnect), before the program's own finalizers (an OTLP exporter's last export) have run.
    if (process.connected) {
      if (Cluster.worker !== undefined) Cluster.worker.disconnect()
      else process.disconnect()
    }
  }).pipe(
    Effect.provideService(References.MinimumLogLevel, logLevelOf(role)),
    Effect.annotateLogs({ worker: role.worker })
  )
