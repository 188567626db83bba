// A program that runs Echo in a group of worker processes with the library
// (Workers.make), for test/Workers.test.ts. Built code only (dist/): node runs
// it as it is, and node:cluster starts it again for every worker.
//   node workersFixture.mjs WORKERS [SHARING] [crash|unix:PATH|prometheus]
// With crash, every worker exits (code 3) 200 ms after it listens; with
// unix:PATH the server listens on that Unix socket instead of TCP; with
// prometheus the parent serves the group's metrics (Observability.servePrometheus
// with snapshot: group.metrics) and prints {"prometheus":"http://…/metrics"}.
// The command "opened" prints {"opened":N}: the connections the group's
// merged metrics count (group.metrics).
// stdout: one JSON line {"listening":"127.0.0.1:PORT","pids":[...]}, then one
// JSON line per command read on stdin ("stats", "pids"), and at the end
// {"report":{...}} once every worker has drained (SIGTERM).
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Readline from "node:readline"
import * as Address from "../../dist/src/Address.js"
import * as Framing from "../../dist/src/Framing.js"
import * as Metrics from "../../dist/src/Metrics.js"
import * as Observability from "../../dist/src/Observability.js"
import * as Echo from "../../dist/src/servers/Echo.js"
import * as Workers from "../../dist/src/Workers.js"

const workers = process.argv[2] === "auto" ? "auto" : Number(process.argv[2] ?? "2")
const sharing = process.argv[3] ?? "auto"
const crash = process.argv[4] === "crash"
const address = process.argv[4]?.startsWith("unix:") ? Address.unix(process.argv[4].slice(5)) : Address.tcp("127.0.0.1", 0)
const say = (value) => Effect.sync(() => void process.stdout.write(`${JSON.stringify(value)}\n`))

const program = Effect.scoped(Effect.gen(function*() {
  let group
  // Added before the group's own finalizer, so it runs after it: the report is complete.
  yield* Effect.addFinalizer(() => group === undefined ? Effect.void : Effect.flatMap(group.shutdown, (report) => say({ report })))
  group = yield* Workers.make(
    Echo.make({ address, framing: Framing.lines({ maxLength: 1024 }) }).pipe(
      Effect.tap(() => crash ? Effect.sync(() => setTimeout(() => process.exit(3), 200)) : Effect.void)
    ),
    { workers, sharing, restart: { initialDelay: "50 millis", maxRestarts: 3 } }
  )
  yield* say({ listening: Address.format(group.address), pids: yield* group.pids, sharing: group.sharing })
  if (process.argv[4] === "prometheus") {
    const bound = yield* Observability.servePrometheus({ port: 0, snapshot: group.metrics })
    yield* say({ prometheus: `http://${Address.format(bound)}/metrics` })
  }
  const opened = Effect.map(group.metrics, (snapshot) =>
    snapshot.filter((m) => m.id === Metrics.names.opened).reduce((n, m) => n + m.state.count, 0))
  const runFork = Effect.runForkWith(yield* Effect.context())
  const lines = Readline.createInterface({ input: process.stdin })
  lines.on("line", (line) => {
    if (line === "stats") runFork(Effect.flatMap(group.stats, (stats) => say({ stats })))
    else if (line === "pids") runFork(Effect.flatMap(group.pids, (pids) => say({ pids })))
    else if (line === "opened") runFork(Effect.flatMap(opened, (opened) => say({ opened })))
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => lines.close()))
  return yield* group.failure
}))

NodeRuntime.runMain(program)
