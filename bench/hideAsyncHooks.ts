/**
 * Preloaded into the opt-in `wire-stream-noasync` bench server
 * (`node --import dist/bench/hideAsyncHooks.js …`): hides `node:async_hooks`
 * from `process.getBuiltinModule` before Effect loads. Effect 4.1's fiber
 * looks up `AsyncResource` that way once, and when it finds it, makes one per
 * suspension and resumes the fiber inside it (`runInAsyncScope`, then
 * `emitDestroy`), so that AsyncLocalStorage follows a fiber across its waits.
 * Hidden, a fiber suspends and resumes without that: the server then measures
 * what this capture costs a `Stream` handler (one suspension per read) and
 * what Effect would gain by making it optional. A measurement tool only: a
 * program that uses AsyncLocalStorage (OpenTelemetry's Node context, for one)
 * needs the capture.
 */
const getBuiltinModule = process.getBuiltinModule.bind(process)
process.getBuiltinModule = ((id: string) =>
  id === "node:async_hooks" || id === "async_hooks" ? undefined : getBuiltinModule(id)) as typeof process.getBuiltinModule
