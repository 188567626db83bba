/**
 * How many functions `run` made from strings (`new Function`, `Function(…)`):
 * Schema's JIT makes its generated decoders and encoders that way, so a
 * count above 0 shows the code under test went through it. `counts` picks
 * the functions to count by their arguments (parameter names, then the body).
 */
export const functionsMadeBy = (
  run: () => void,
  counts: (args: ReadonlyArray<unknown>) => boolean = () => true
): number => {
  const original = globalThis.Function
  let made = 0
  globalThis.Function = new Proxy(original, {
    apply: (target, self, args) => {
      if (counts(args)) made++
      return Reflect.apply(target, self, args)
    },
    construct: (target, args, newTarget) => {
      if (counts(args)) made++
      return Reflect.construct(target, args, newTarget)
    }
  })
  try {
    run()
  } finally {
    globalThis.Function = original
  }
  return made
}
