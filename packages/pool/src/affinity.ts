/**
 * A bounded map with a time-to-live, for correlation affinity and sticky
 * sessions: a full map rejects new keys (an existing key may always be
 * re-set), and `sweep()` evicts entries older than the TTL.
 *
 * One entry is added and removed per request. The Map holds only key → slot
 * number and the values and ages live in slot arrays: a Map under that churn keeps
 * rebuilding its table, and each retired table keeps its entries alive through
 * young-generation GCs (see PendingTable in @picket/protocol/internal), so its
 * entries must be small. The sweep looks at every entry (it runs every few seconds).
 */
export class BoundedTtlMap<V> {
  private readonly slots = new Map<string, number>();
  private readonly values: (V | undefined)[] = [];
  private readonly ages: number[] = [];
  private readonly free: number[] = [];
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
    return this.slots.size;
  }

  /** Stores `value`; false when the map is full and `key` is new. */
  set(key: string, value: V): boolean {
    let slot = this.slots.get(key);
    if (slot === undefined) {
      if (this.slots.size >= this.capacity) {
        this.rejections++;
        return false;
      }
      slot = this.free.pop() ?? this.values.length;
      this.slots.set(key, slot);
    }
    this.values[slot] = value;
    this.ages[slot] = this.now();
    return true;
  }

  /** The live value of `key`, or undefined (an expired entry is evicted). */
  get(key: string): V | undefined {
    const slot = this.slots.get(key);
    if (slot === undefined) return undefined;
    const now = this.now();
    if (this.ttlMs !== null && now - (this.ages[slot] as number) >= this.ttlMs) {
      this.remove(key, slot);
      this.evictions++;
      return undefined;
    }
    if (this.refreshOnGet) this.ages[slot] = now;
    return this.values[slot];
  }

  delete(key: string): boolean {
    const slot = this.slots.get(key);
    if (slot === undefined) return false;
    this.remove(key, slot);
    return true;
  }

  /** Removes every entry whose value matches. */
  deleteWhere(pred: (value: V, key: string) => boolean): number {
    let n = 0;
    for (const [key, slot] of this.slots) {
      if (pred(this.values[slot] as V, key)) {
        this.remove(key, slot);
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
    for (const [key, slot] of this.slots) {
      if (now - (this.ages[slot] as number) >= this.ttlMs) {
        this.remove(key, slot);
        n++;
      }
    }
    this.evictions += n;
    return n;
  }

  clear(): void {
    this.slots.clear();
    this.values.length = 0;
    this.ages.length = 0;
    this.free.length = 0;
  }

  private remove(key: string, slot: number): void {
    this.slots.delete(key);
    this.values[slot] = undefined;
    this.free.push(slot);
  }
}
