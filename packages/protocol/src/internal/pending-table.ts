/**
 * Pending calls by correlation id, for the call engine: a `Map` from id to a slot
 * number, and the calls themselves in an array of slots.
 *
 * Why not `Map<string, Call>`: a Map whose entries come and go all the time (every
 * call adds one and removes one) rebuilds its table again and again, and each
 * retired table keeps its entries and a link to its successor until a full GC. Once
 * one of those tables has been promoted, every later table, and every call, promise
 * and reply they hold, survives the young-generation GC too: with 128 calls in
 * flight about a third of all allocation got promoted and GC took a quarter of the
 * proxy's CPU. Here a retired table holds only ids and small integers, and a slot is
 * cleared the moment its call settles. (A null-prototype object as the table avoids
 * the chain too, but every fresh id then goes through the engine's string table.)
 */
export class PendingTable<V> {
  readonly #slots = new Map<string, number>();
  readonly #values: (V | undefined)[] = [];
  readonly #free: number[] = [];

  get size(): number {
    return this.#slots.size;
  }

  get(id: string): V | undefined {
    const slot = this.#slots.get(id);
    return slot === undefined ? undefined : this.#values[slot];
  }

  has(id: string): boolean {
    return this.#slots.has(id);
  }

  /** Adds the entry for `id` (the caller checked it is absent) or replaces it. */
  set(id: string, value: V): void {
    const slot = this.#slots.get(id);
    if (slot !== undefined) {
      this.#values[slot] = value;
      return;
    }
    const free = this.#free.pop();
    if (free === undefined) {
      this.#slots.set(id, this.#values.length);
      this.#values.push(value);
    } else {
      this.#slots.set(id, free);
      this.#values[free] = value;
    }
  }

  delete(id: string): void {
    const slot = this.#slots.get(id);
    if (slot === undefined) return;
    this.#slots.delete(id);
    this.#values[slot] = undefined;
    this.#free.push(slot);
  }

  /** A snapshot of the entries in the order they were added. */
  values(): V[] {
    const out: V[] = [];
    for (const slot of this.#slots.values()) out.push(this.#values[slot] as V);
    return out;
  }
}
