/**
 * What effect/cli's environment asks of Node: a file system, paths, stdio, a
 * terminal and a child-process spawner (`NodeServices.layer`'s services).
 * No effect-wire command reads files, prompts or spawns through them (effect/cli
 * does for `--wizard` and file flags), so the file system (with node:crypto
 * and node:os), the terminal (node:readline) and the spawner load on their
 * first use instead of at every start: every service is the Node one, built
 * in the layer's scope, behind a thin front that loads it.
 *
 * ```ts
 * Command.runWith(cli, { version })(args).pipe(Effect.provide(NodeServices))
 * ```
 *
 * @since 0.2.0
 */
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeStdio from "@effect/platform-node/NodeStdio"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import type * as Path from "effect/Path"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import type * as Scope from "effect/Scope"
import type * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import * as Terminal from "effect/Terminal"

/**
 * The service of a Layer loaded by `load` on the first run of the returned
 * Effect (once: later runs reuse it), built in the scope of the layer being
 * built, so that its finalizers run when the command line's environment closes.
 */
const onFirstUse = <I, S, R>(
  key: Context.Key<I, S>,
  load: () => Promise<Layer.Layer<I, never, R>>
): Effect.Effect<Effect.Effect<S>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const context = yield* Effect.context<R>()
    return yield* Effect.cached(
      Effect.promise(load).pipe(
        Effect.flatMap((layer) => Layer.buildWithScope(layer, scope)),
        Effect.map((built) => Context.get(built, key)),
        Effect.provideContext(context)
      )
    )
  })

/** FileSystem's methods that return an Effect (FileSystem.make derives the others from them). */
const effectMethods = [
  "access",
  "chmod",
  "chown",
  "copy",
  "copyFile",
  "link",
  "lstat",
  "makeDirectory",
  "makeTempDirectory",
  "makeTempDirectoryScoped",
  "makeTempFile",
  "makeTempFileScoped",
  "open",
  "readDirectory",
  "readDirectoryEntries",
  "readFile",
  "readLink",
  "realPath",
  "remove",
  "rename",
  "stat",
  "symlink",
  "truncate",
  "utimes",
  "writeFile"
] as const

type Implementation = Parameters<typeof FileSystem.make>[0]

const LazyFileSystem = Layer.effect(
  FileSystem.FileSystem,
  Effect.map(
    onFirstUse(FileSystem.FileSystem, () => import("@effect/platform-node/NodeFileSystem").then((m) => m.layer)),
    (node) => {
      const methods: Record<string, unknown> = {}
      for (const name of effectMethods) {
        methods[name] = (...args: Array<unknown>) =>
          Effect.flatMap(node, (fs) => (fs[name] as (...args: Array<unknown>) => Effect.Effect<unknown>)(...args))
      }
      // Typed as the listed methods: one FileSystem gains in a later `effect` fails to compile here.
      return FileSystem.make({
        ...(methods as Pick<Implementation, (typeof effectMethods)[number]>),
        watch: (path, options) => Stream.unwrap(Effect.map(node, (fs) => fs.watch(path, options)))
      })
    }
  )
)

const LazyTerminal = Layer.effect(
  Terminal.Terminal,
  Effect.map(
    onFirstUse(Terminal.Terminal, () => import("@effect/platform-node/NodeTerminal").then((m) => m.layer)),
    (node) =>
      Terminal.make({
        columns: Effect.flatMap(node, (terminal) => terminal.columns),
        rows: Effect.flatMap(node, (terminal) => terminal.rows),
        size: Effect.flatMap(node, (terminal) => terminal.size),
        readInput: Effect.flatMap(node, (terminal) => terminal.readInput),
        readLine: Effect.flatMap(node, (terminal) => terminal.readLine),
        display: (text) => Effect.flatMap(node, (terminal) => terminal.display(text))
      })
  )
)

const LazySpawner = Layer.effect(
  ChildProcessSpawner.ChildProcessSpawner,
  Effect.map(
    onFirstUse(
      ChildProcessSpawner.ChildProcessSpawner,
      () => import("@effect/platform-node/NodeChildProcessSpawner").then((m) => m.layer)
    ),
    (node) => ChildProcessSpawner.make((command) => Effect.flatMap(node, (spawner) => spawner.spawn(command)))
  )
)

/**
 * What `@effect/platform-node`'s `NodeServices.layer` gives (the environment
 * effect/cli's `Command.runWith` needs), with the file system, the terminal
 * and the child-process spawner loaded on first use.
 *
 * @example
 * ```ts
 * import * as Effect from "effect/Effect"
 * import { NodeServices } from "./nodeServices.js"
 *
 * run(process.argv.slice(2)).pipe(Effect.provide(NodeServices))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const NodeServices: Layer.Layer<
  FileSystem.FileSystem | Path.Path | Stdio.Stdio | Terminal.Terminal | ChildProcessSpawner.ChildProcessSpawner
> = LazySpawner.pipe(
  Layer.provideMerge(Layer.mergeAll(LazyFileSystem, NodePath.layer, NodeStdio.layer, LazyTerminal))
)
