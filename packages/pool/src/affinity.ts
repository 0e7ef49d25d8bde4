/**
 * A bounded map with a time-to-live, for correlation affinity and sticky
 * sessions: a full map rejects new keys (an existing key may always be
 * re-set), and `sweep()` evicts entries older than the TTL. Entries are kept
 * in insertion (or refresh) order, so a sweep stops at the first live entry.
 */
export class BoundedTtlMap<V> {
  private readonly entries = new Map<string, { value: V; at: number }>();
  /** new keys refused because the map was full */
  rejections = 0;
  /** entries removed by expiry */
  evictions = 0;

  constructor(
    /** most entries kept */
    readonly capacity: number,
    /** entry lifetime; `null` = forever */
    readonly ttlMs: number | null,
    /** `get` refreshes the entry's age (sliding expiry) */
    private readonly refreshOnGet = false,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Stores `value`; false when the map is full and `key` is new. */
  set(key: string, value: V): boolean {
    const existing = this.entries.has(key);
    if (!existing && this.entries.size >= this.capacity) {
      this.rejections++;
      return false;
    }
    if (existing) this.entries.delete(key); // re-insert at the end: the order stays by age
    this.entries.set(key, { value, at: this.now() });
    return true;
  }

  /** The live value of `key`, or undefined (an expired entry is evicted). */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    const now = this.now();
    if (this.ttlMs !== null && now - e.at >= this.ttlMs) {
      this.entries.delete(key);
      this.evictions++;
      return undefined;
    }
    if (this.refreshOnGet) {
      this.entries.delete(key);
      e.at = now;
      this.entries.set(key, e);
    }
    return e.value;
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  /** Removes every entry whose value matches. */
  deleteWhere(pred: (value: V, key: string) => boolean): number {
    let n = 0;
    for (const [k, e] of this.entries) {
      if (pred(e.value, k)) {
        this.entries.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Evicts expired entries; returns how many. */
  sweep(): number {
    if (this.ttlMs === null) return 0;
    const now = this.now();
    let n = 0;
    for (const [k, e] of this.entries) {
      if (now - e.at < this.ttlMs) break; // ordered by age: the rest is younger
      this.entries.delete(k);
      n++;
    }
    this.evictions += n;
    return n;
  }

  clear(): void {
    this.entries.clear();
  }
}
