/**
 * A bounded map with a time-to-live, for correlation affinity and sticky
 * sessions: a full map rejects new keys (an existing key may always be
 * re-set), and `sweep()` evicts entries older than the TTL.
 *
 * Entries live in a null-prototype object, not a Map: one entry is added and
 * removed per request, and a Map under that churn keeps rebuilding its table,
 * each retired table holding its entries and a link to the next one until a full
 * GC, which makes young garbage survive (see PendingTable in
 * @picket/protocol/internal). The price is a sweep that looks at every entry
 * instead of stopping at the first live one: it runs every few seconds.
 */
export class BoundedTtlMap<V> {
  private entries: Record<string, { value: V; at: number }> = Object.create(null);
  private count = 0;
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
    return this.count;
  }

  /** Stores `value`; false when the map is full and `key` is new. */
  set(key: string, value: V): boolean {
    const e = this.entries[key];
    if (e !== undefined) {
      e.value = value;
      e.at = this.now();
      return true;
    }
    if (this.count >= this.capacity) {
      this.rejections++;
      return false;
    }
    this.entries[key] = { value, at: this.now() };
    this.count++;
    return true;
  }

  /** The live value of `key`, or undefined (an expired entry is evicted). */
  get(key: string): V | undefined {
    const e = this.entries[key];
    if (e === undefined) return undefined;
    const now = this.now();
    if (this.ttlMs !== null && now - e.at >= this.ttlMs) {
      this.remove(key);
      this.evictions++;
      return undefined;
    }
    if (this.refreshOnGet) e.at = now;
    return e.value;
  }

  delete(key: string): boolean {
    if (this.entries[key] === undefined) return false;
    this.remove(key);
    return true;
  }

  /** Removes every entry whose value matches. */
  deleteWhere(pred: (value: V, key: string) => boolean): number {
    let n = 0;
    for (const k in this.entries) {
      if (pred((this.entries[k] as { value: V }).value, k)) {
        this.remove(k);
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
    for (const k in this.entries) {
      if (now - (this.entries[k] as { at: number }).at >= this.ttlMs) {
        this.remove(k);
        n++;
      }
    }
    this.evictions += n;
    return n;
  }

  clear(): void {
    this.entries = Object.create(null);
    this.count = 0;
  }

  private remove(key: string): void {
    delete this.entries[key];
    this.count--;
  }
}
