/**
 * A bounded map with a time-to-live, for correlation affinity and sticky
 * sessions: a full map rejects new keys (an existing key may always be
 * re-set), and `sweep()` evicts entries older than the TTL.
 *
 * One entry is added and removed per request, so the keys live in an `IdTable`
 * (no Map: see why in @picket/protocol/internal) that maps a key to a slot number,
 * and the values and ages live in slot arrays. The sweep looks at every entry (it
 * runs every few seconds).
 */
import { IdTable } from '@picket/protocol/internal';

/** A bound on entries that several maps can share (every agent's affinity, one limit). */
export interface EntryBudget {
  readonly limit: number;
  used: number;
}

export class BoundedTtlMap<V> {
  private readonly budget: EntryBudget;
  private readonly slots = new IdTable<number>();
  private readonly values: (V | undefined)[] = [];
  private readonly ages: number[] = [];
  private readonly free: number[] = [];
  /** new keys refused because the map was full */
  rejections = 0;
  /** entries removed by expiry */
  evictions = 0;

  constructor(
    /** most entries kept, or a bound shared with other maps */
    capacity: number | EntryBudget,
    /** entry lifetime; `null` = forever */
    readonly ttlMs: number | null,
    /** `get` refreshes the entry's age (sliding expiry) */
    private readonly refreshOnGet = false,
    private readonly now: () => number = Date.now,
  ) {
    this.budget = typeof capacity === 'number' ? { limit: capacity, used: 0 } : capacity;
  }

  /** most entries kept (by this map and any sharing its bound) */
  get capacity(): number {
    return this.budget.limit;
  }

  get size(): number {
    return this.slots.size;
  }

  /** Stores `value` (aged from `now`, on this map's clock); false when the map is full and `key` is new. */
  set(key: string, value: V, now = this.now()): boolean {
    let slot: number | undefined;
    if (this.budget.used < this.budget.limit) {
      // the usual case, a new key: one probe adds it (add refuses a key already there)
      const free = this.free;
      slot = free.length > 0 ? (free[free.length - 1] as number) : this.values.length;
      if (this.slots.add(key, slot)) {
        if (free.length > 0) free.pop();
        this.budget.used++;
        this.values[slot] = value;
        this.ages[slot] = now;
        return true;
      }
    }
    slot = this.slots.get(key);
    if (slot === undefined) {
      this.rejections++;
      return false;
    }
    this.values[slot] = value;
    this.ages[slot] = now;
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
    const slot = this.slots.take(key);
    if (slot === undefined) return false;
    this.release(slot);
    return true;
  }

  /** Removes every entry whose value matches. */
  deleteWhere(pred: (value: V, key: string) => boolean): number {
    let n = 0;
    for (const key of this.slots.ids()) {
      const slot = this.slots.get(key) as number;
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
    for (const key of this.slots.ids()) {
      const slot = this.slots.get(key) as number;
      if (now - (this.ages[slot] as number) >= this.ttlMs) {
        this.remove(key, slot);
        n++;
      }
    }
    this.evictions += n;
    return n;
  }

  clear(): void {
    this.budget.used -= this.slots.size;
    this.slots.clear();
    this.values.length = 0;
    this.ages.length = 0;
    this.free.length = 0;
  }

  private remove(key: string, slot: number): void {
    this.slots.delete(key);
    this.release(slot);
  }

  private release(slot: number): void {
    this.budget.used--;
    this.values[slot] = undefined;
    this.free.push(slot);
  }
}

/**
 * Correlation affinity of every agent: (agent, correlation id) → connection id, under
 * one bound. One map per agent keyed by the correlation id itself: a key built per call
 * (agent + id) had to be flattened and hashed twice per request, where the id's hash is
 * already cached by the call engine.
 */
export class AffinityTable {
  private readonly byAgent = new Map<string, BoundedTtlMap<string>>();
  /** the same maps as a list, for every walk over all agents (one per request: deleteEverywhere) */
  private maps: BoundedTtlMap<string>[] = [];
  private readonly budget: EntryBudget;
  /** the map `set` used last and its agent: a pool with one agent skips the lookup by id */
  private lastAgentId: string | undefined;
  private lastMap: BoundedTtlMap<string> | undefined;
  /** counts of agents' maps that are gone */
  private retired = { rejections: 0, evictions: 0 };

  constructor(
    capacity: number,
    private readonly ttlMs: number | null,
    private readonly now: () => number = Date.now,
  ) {
    this.budget = { limit: capacity, used: 0 };
  }

  get size(): number {
    return this.budget.used;
  }

  /** new entries refused because the table was full */
  get rejections(): number {
    let n = this.retired.rejections;
    for (const m of this.maps) n += m.rejections;
    return n;
  }

  /** entries removed by expiry */
  get evictions(): number {
    let n = this.retired.evictions;
    for (const m of this.maps) n += m.evictions;
    return n;
  }

  get(agentId: string, cid: string): string | undefined {
    return this.byAgent.get(agentId)?.get(cid);
  }

  /** false when the table is full and the entry is new; `now` on the table's clock */
  set(agentId: string, cid: string, connId: string, now?: number): boolean {
    if (agentId === this.lastAgentId) {
      return (this.lastMap as BoundedTtlMap<string>).set(cid, connId, now);
    }
    let m = this.byAgent.get(agentId);
    if (m === undefined) {
      m = new BoundedTtlMap<string>(this.budget, this.ttlMs, false, this.now);
      this.byAgent.set(agentId, m);
      this.maps = [...this.byAgent.values()];
    }
    this.lastAgentId = agentId;
    this.lastMap = m;
    return m.set(cid, connId, now);
  }

  delete(agentId: string, cid: string): void {
    this.byAgent.get(agentId)?.delete(cid);
  }

  /** Forgets `cid` on every agent. */
  deleteEverywhere(cid: string): void {
    const maps = this.maps;
    for (let i = 0; i < maps.length; i++) (maps[i] as BoundedTtlMap<string>).delete(cid);
  }

  /** Drops an agent's entries (the agent left the pool). */
  dropAgent(agentId: string): void {
    const m = this.byAgent.get(agentId);
    if (m === undefined) return;
    this.retired.rejections += m.rejections;
    this.retired.evictions += m.evictions;
    m.clear();
    this.byAgent.delete(agentId);
    if (agentId === this.lastAgentId) this.lastAgentId = this.lastMap = undefined;
    this.maps = [...this.byAgent.values()];
  }

  /** Evicts expired entries; returns how many. */
  sweep(): number {
    let n = 0;
    for (const m of this.maps) n += m.sweep();
    return n;
  }

  clear(): void {
    for (const id of [...this.byAgent.keys()]) this.dropAgent(id);
  }
}
