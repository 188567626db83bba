/**
 * A set of objects that each keep their own index in it: add, delete and size
 * in O(1), no hash table.
 *
 * For sets with a long life and a high turnover (a listener's open sockets,
 * the connections a server runs in callbacks): a JS `Set` or `Map` that lived
 * long enough to reach V8's old generation makes each bigger or rehashed
 * table there too, and the table it replaces keeps, until the next full GC,
 * every entry it held then. The connections still open at that moment, and
 * all they reach, then survive every young-generation GC, long after they
 * closed. Here a deleted entry's slot is reused or cleared at once. Measured
 * with a Stream handler on `Server` (scratch servers, 10,000 connections,
 * `--trace-gc-nvp`): 1.49–1.71 KB per connection survived a scavenge with
 * the listener's `Set`, 0.78 KB with this and internal/youngTransforms.ts,
 * 0.63 KB with internal/fiberGroup.ts too; main-thread scavenge time per
 * connection 8.6–10.6 µs, 5.4 µs, 4.7–5.2 µs.
 *
 * @internal
 */
export interface Indexed {
  /** Where the object is in its set; -1 when in none. */
  setIndex: number
}

/**
 * See the module comment. An object is in one set per index field at most:
 * `setIndex` unless the set is made with another (an object in two kinds of
 * set keeps one field for each).
 */
export class SwapSet<A extends { [P in K]: number }, K extends PropertyKey = "setIndex"> implements Iterable<A> {
  private readonly items: Array<A> = []

  constructor(private readonly key: K = "setIndex" as K) {}

  get size(): number {
    return this.items.length
  }

  add(item: A): void {
    if (item[this.key] >= 0) return
    ;(item as Record<K, number>)[this.key] = this.items.length
    this.items.push(item)
  }

  /** Removes `item` (the last one takes its place); false if it was not in the set. */
  delete(item: A): boolean {
    const key = this.key
    const i = item[key]
    if (i < 0 || this.items[i] !== item) return false
    const last = this.items.pop()!
    if (last !== item) {
      this.items[i] = last
      ;(last as Record<K, number>)[key] = i
    }
    ;(item as Record<K, number>)[key] = -1
    return true
  }

  /** Whether `item` is in this set. */
  has(item: A): boolean {
    const i = item[this.key]
    return i >= 0 && this.items[i] === item
  }

  clear(): void {
    for (const item of this.items) (item as Record<K, number>)[this.key] = -1
    this.items.length = 0
  }

  /**
   * The entries themselves, not a copy: for loops that add and delete
   * nothing (a delete moves the last entry into the slot being visited).
   */
  get live(): ReadonlyArray<A> {
    return this.items
  }

  /** A snapshot: deleting while iterating skips nothing. */
  [Symbol.iterator](): Iterator<A> {
    return this.items.slice()[Symbol.iterator]()
  }
}
