/** How the pool picks one of an agent's usable connections. */
export type LoadBalanceStrategy =
  | 'round_robin'
  | 'least_connections'
  | 'health_based'
  | 'random'
  | 'power_of_two_choices';

/** All strategies, e.g. for validating configuration. */
export const LOAD_BALANCE_STRATEGIES: readonly LoadBalanceStrategy[] = [
  'round_robin',
  'least_connections',
  'health_based',
  'random',
  'power_of_two_choices',
];

/** What a strategy may look at. */
export interface BalanceCandidate {
  /** calls this pool has running on the connection */
  readonly active: number;
  /** recent error rate 0…1 (decaying average over calls and probes) */
  readonly errorRate: number;
}

/** Per-agent selection state (the round-robin cursor). */
export interface BalancerState {
  cursor: number;
}

/** Two error rates closer than this count as equal, so ties spread the load. */
const RATE_EPSILON = 1e-3;

/**
 * Returns the index of the chosen candidate, or -1 when `candidates` is empty.
 * Ties in least_connections and health_based are broken by a rotating start
 * index rather than "first wins", so equal connections share the load.
 */
export function pickIndex(
  strategy: LoadBalanceStrategy,
  candidates: readonly BalanceCandidate[],
  state: BalancerState,
  random: () => number = Math.random,
  /** how many of `candidates` count (a reused array may hold more) */
  n = candidates.length,
): number {
  if (n === 0) return -1;
  if (n === 1) return 0;
  const start = state.cursor++ % n;
  if (state.cursor >= Number.MAX_SAFE_INTEGER) state.cursor = 0;
  switch (strategy) {
    case 'round_robin':
      return start;
    case 'random':
      return Math.min(n - 1, Math.floor(random() * n));
    case 'power_of_two_choices': {
      const a = Math.min(n - 1, Math.floor(random() * n));
      let b = Math.min(n - 2, Math.floor(random() * (n - 1)));
      if (b >= a) b++;
      return at(candidates, b).active < at(candidates, a).active ? b : a;
    }
    case 'least_connections':
      return bestFrom(candidates, n, start, (c, best) => c.active < best.active);
    case 'health_based':
      return bestFrom(
        candidates,
        n,
        start,
        (c, best) =>
          c.errorRate < best.errorRate - RATE_EPSILON ||
          (Math.abs(c.errorRate - best.errorRate) <= RATE_EPSILON && c.active < best.active),
      );
  }
}

function at<T>(list: readonly T[], i: number): T {
  return list[i] as T;
}

function bestFrom(
  candidates: readonly BalanceCandidate[],
  n: number,
  start: number,
  better: (c: BalanceCandidate, best: BalanceCandidate) => boolean,
): number {
  let best = start;
  for (let k = 1; k < n; k++) {
    const i = (start + k) % n;
    if (better(at(candidates, i), at(candidates, best))) best = i;
  }
  return best;
}
