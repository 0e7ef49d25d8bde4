/**
 * A table from string ids (correlation ids) to values for entries that come and go all the
 * time: one added and one removed per call. Open addressing with linear probing in arrays of
 * keys, values and hashes; a removal shifts the following run back, so there are no
 * tombstones and the arrays are only replaced when the table grows or shrinks.
 *
 * Why not a `Map`: under that churn a Map rebuilds its table every few hundred operations,
 * and a retired table keeps its entries and a link to its successor until a full GC. Once
 * one of them sits in old space, every later table with every key (and value) in it
 * survives the young-generation GC: with 128 calls in flight the proxy promoted some
 * hundred bytes per call and spent a fifth of its time in scavenges. A null-prototype
 * object avoids the chain but internalizes every fresh id in the engine's string table.
 *
 * Hash flooding: the hash is seeded per table from a random process seed, and a probe run
 * longer than {@link MAX_PROBE} (which random ids practically never reach) moves the
 * entries into a `Map`, whose hash the peer cannot steer; the table stays there.
 */
import { randomBytes } from 'node:crypto';

const INITIAL_CAPACITY = 16;
/** Capacity up to which a table keeps its arrays when it empties (16 KiB of slots). */
const SHRINK_ABOVE = 1024;
/** A probe run this long means the ids collide on purpose (or the hash is broken). */
const MAX_PROBE = 48;
const PROCESS_SEED = randomBytes(4).readInt32LE(0);
let tables = 0;

export class IdTable<V> {
  #keys: (string | undefined)[];
  #values: (V | undefined)[];
  /** each key's hash, kept so that moving entries (removal, growth) never hashes again */
  #hashes: number[];
  #mask: number;
  #size = 0;
  readonly #seed: number;
  /** set once ids collided on purpose: from then on every operation goes here */
  #fallback: Map<string, V> | undefined;

  /** `hashOf` replaces the seeded hash (tests use it to make ids collide) */
  constructor(private readonly hashOf?: (id: string) => number) {
    this.#keys = new Array<string | undefined>(INITIAL_CAPACITY).fill(undefined);
    this.#values = new Array<V | undefined>(INITIAL_CAPACITY).fill(undefined);
    this.#hashes = new Array<number>(INITIAL_CAPACITY).fill(0);
    this.#mask = INITIAL_CAPACITY - 1;
    this.#seed = PROCESS_SEED ^ Math.imul(++tables, 0x9e3779b9);
  }

  get size(): number {
    return this.#fallback === undefined ? this.#size : this.#fallback.size;
  }

  get(id: string): V | undefined {
    if (this.#fallback !== undefined) return this.#fallback.get(id);
    const i = this.#find(id);
    return i < 0 ? undefined : this.#values[i];
  }

  has(id: string): boolean {
    if (this.#fallback !== undefined) return this.#fallback.has(id);
    return this.#find(id) >= 0;
  }

  /** Adds an entry for `id` unless it has one; false (nothing changed) when it had. */
  add(id: string, value: V): boolean {
    return this.#put(id, value, false);
  }

  /** Adds or replaces the entry of `id`. */
  set(id: string, value: V): void {
    this.#put(id, value, true);
  }

  /** Removes the entry of `id` and returns its value (undefined when there was none). */
  take(id: string): V | undefined {
    if (this.#fallback !== undefined) {
      const v = this.#fallback.get(id);
      this.#fallback.delete(id);
      return v;
    }
    const i = this.#find(id);
    if (i < 0) return undefined;
    const v = this.#values[i];
    this.#removeAt(i);
    this.#shrinkIfSparse();
    return v;
  }

  #put(id: string, value: V, replace: boolean): boolean {
    if (this.#fallback === undefined && (this.#size + 1) * 2 > this.#mask + 1) {
      this.#resize((this.#mask + 1) * 2);
    }
    if (this.#fallback !== undefined) {
      if (!replace && this.#fallback.has(id)) return false;
      this.#fallback.set(id, value);
      return true;
    }
    const keys = this.#keys;
    const hashes = this.#hashes;
    const mask = this.#mask;
    const h = this.#hash(id);
    let i = h & mask;
    let probe = 0;
    for (let k = keys[i]; k !== undefined; k = keys[i]) {
      if (hashes[i] === h && k === id) {
        if (replace) this.#values[i] = value;
        return replace;
      }
      i = (i + 1) & mask;
      probe++;
    }
    if (probe > MAX_PROBE) {
      this.#degrade().set(id, value);
      return true;
    }
    keys[i] = id;
    hashes[i] = h;
    this.#values[i] = value;
    this.#size++;
    return true;
  }

  /** Removes the entry of `id`; false when there was none. */
  delete(id: string): boolean {
    if (this.#fallback !== undefined) return this.#fallback.delete(id);
    const i = this.#find(id);
    if (i < 0) return false;
    this.#removeAt(i);
    this.#shrinkIfSparse();
    return true;
  }

  /** The values, in no particular order (a snapshot: the table may change meanwhile). */
  values(): V[] {
    if (this.#fallback !== undefined) return [...this.#fallback.values()];
    const out: V[] = [];
    const keys = this.#keys;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] !== undefined) out.push(this.#values[i] as V);
    }
    return out;
  }

  /** The ids, in no particular order (a snapshot). */
  ids(): string[] {
    if (this.#fallback !== undefined) return [...this.#fallback.keys()];
    return this.#keys.filter((k): k is string => k !== undefined);
  }

  clear(): void {
    this.#fallback = undefined;
    this.#keys = new Array<string | undefined>(INITIAL_CAPACITY).fill(undefined);
    this.#values = new Array<V | undefined>(INITIAL_CAPACITY).fill(undefined);
    this.#hashes = new Array<number>(INITIAL_CAPACITY).fill(0);
    this.#mask = INITIAL_CAPACITY - 1;
    this.#size = 0;
  }

  /** FNV-1a over UTF-16 units from a seeded basis, then a final mix so low bits use every char. */
  #hash(id: string): number {
    if (this.hashOf !== undefined) return this.hashOf(id) & 0x3fffffff;
    let h = this.#seed;
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    return h & 0x3fffffff; // 30 bits: stored as small integers, never as heap numbers
  }

  /** The slot of `id`, or the one's complement of the free slot where it would go. */
  #find(id: string): number {
    const keys = this.#keys;
    const hashes = this.#hashes;
    const mask = this.#mask;
    const h = this.#hash(id);
    let i = h & mask;
    for (;;) {
      const k = keys[i];
      if (k === undefined) return ~i;
      // the stored hash first: another id of the run is rejected without comparing text
      if (hashes[i] === h && k === id) return i;
      i = (i + 1) & mask;
    }
  }

  /** Empties slot `i` and moves later entries of the run back so no lookup stops early. */
  #removeAt(i: number): void {
    const keys = this.#keys;
    const values = this.#values;
    const hashes = this.#hashes;
    const mask = this.#mask;
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const k = keys[j];
      if (k === undefined) break;
      const home = (hashes[j] as number) & mask;
      // k may fill the hole only if its home is not inside (hole, j]
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        keys[hole] = k;
        values[hole] = values[j];
        hashes[hole] = hashes[j] as number;
        hole = j;
      }
    }
    keys[hole] = undefined;
    values[hole] = undefined;
    this.#size--;
  }

  /**
   * A large burst is over: give the memory back. Small tables never shrink: replies come
   * in batches, and a table that emptied with each batch would be rebuilt with the next.
   */
  #shrinkIfSparse(): void {
    const capacity = this.#mask + 1;
    if (capacity > SHRINK_ABOVE && this.#size * 16 < capacity) this.#resize(capacity / 2);
  }

  #resize(capacity: number): void {
    const keys = this.#keys;
    const values = this.#values;
    const hashes = this.#hashes;
    const mask = capacity - 1;
    const newKeys = new Array<string | undefined>(capacity).fill(undefined);
    const newValues = new Array<V | undefined>(capacity).fill(undefined);
    const newHashes = new Array<number>(capacity).fill(0);
    // every key is distinct: each goes to the first free slot from its home, no compare needed
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k === undefined) continue;
      const h = hashes[i] as number;
      let j = h & mask;
      while (newKeys[j] !== undefined) j = (j + 1) & mask;
      newKeys[j] = k;
      newValues[j] = values[i];
      newHashes[j] = h;
    }
    this.#keys = newKeys;
    this.#values = newValues;
    this.#hashes = newHashes;
    this.#mask = mask;
  }

  #degrade(): Map<string, V> {
    const fallback = new Map<string, V>();
    const keys = this.#keys;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k !== undefined) fallback.set(k, this.#values[i] as V);
    }
    this.#fallback = fallback;
    this.#keys = [];
    this.#values = [];
    this.#hashes = [];
    this.#size = 0;
    return fallback;
  }
}
