/**
 * Prometheus text exposition helpers, the pool's latency histogram and the
 * collector of metrics that agents report (frame 0x31 / gRPC MetricsReport).
 */
import type { MetricsReport } from '@picket/protocol';

/** Latency bucket bounds in seconds (10 µs … 1 s), as the upstream ProtocolMetrics. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
];

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and newline. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Makes `name` a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`); empty stays empty. */
export function sanitizeMetricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** Makes `name` a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`); empty stays empty. */
export function sanitizeLabelName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/**
 * Formats a sample value: integral values without decimals, `+Inf`, `-Inf`,
 * `NaN`, everything else as JavaScript's shortest round-trip form.
 */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Number.isInteger(v) && Math.abs(v) < 1e21) return v.toFixed(0);
  return String(v);
}

/** `{a="x",b="y"}` with labels in the given order (empty string for no labels). */
export function formatLabels(labels: readonly (readonly [string, string])[]): string {
  if (labels.length === 0) return '';
  return `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** Builds exposition text; keeps HELP/TYPE once per family. */
export class PromWriter {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help?: string): this {
    if (help !== undefined) this.lines.push(`# HELP ${name} ${escapeHelp(help)}`);
    this.lines.push(`# TYPE ${name} ${type}`);
    return this;
  }

  sample(
    name: string,
    labels: readonly (readonly [string, string])[],
    value: number | string,
  ): this {
    this.lines.push(
      `${name}${formatLabels(labels)} ${typeof value === 'number' ? formatValue(value) : value}`,
    );
    return this;
  }

  toString(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }
}

/** A fixed-bucket histogram of durations in seconds. */
export class LatencyHistogram {
  /** per-bucket (non-cumulative) counts; the last slot is +Inf */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.bounds.length && seconds > (this.bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += seconds;
    this.count++;
  }

  /**
   * Writes `_bucket` (cumulative, `le` with 6 decimals like upstream),
   * `_sum` (6 decimals) and `_count` samples.
   */
  write(w: PromWriter, name: string, labels: readonly (readonly [string, string])[]): void {
    let cumulative = 0;
    for (let i = 0; i < this.counts.length; i++) {
      cumulative += this.counts[i] ?? 0;
      const bound = this.bounds[i];
      const le = bound === undefined ? '+Inf' : bound.toFixed(6);
      w.sample(`${name}_bucket`, [...labels, ['le', le]], cumulative);
    }
    w.sample(`${name}_sum`, labels, this.sum.toFixed(6));
    w.sample(`${name}_count`, labels, this.count);
  }
}

/** A fixed-size ring of recent samples for percentiles. */
export class LatencyReservoir {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(readonly size = 1024) {
    this.samples = new Float64Array(Math.max(1, size));
  }

  add(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.filled < this.samples.length) this.filled++;
  }

  /** Nearest-rank percentiles (ms) of the recent samples; null when empty. */
  percentiles(): { p50: number; p95: number; p99: number } | null {
    if (this.filled === 0) return null;
    const sorted = this.samples.slice(0, this.filled).sort();
    const rank = (p: number) =>
      sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
    return { p50: rank(0.5), p95: rank(0.95), p99: rank(0.99) };
  }
}

// ---------------------------------------------------------------- agent-reported metrics

type Kind = 'counter' | 'gauge' | 'histogram';

interface Series {
  agentId: string;
  name: string;
  kind: Kind;
  help?: string;
  /** sorted, sanitized, including agent_id */
  labels: [string, string][];
  value: number;
  sum: number;
  count: number;
  buckets: { le: number; count: number }[];
  updatedAt: number;
}

/** Settings of {@link AgentMetricsCollector}. */
export interface AgentMetricsCollectorOptions {
  /** most series kept; new series beyond are dropped (default 10 000) */
  maxSeries?: number;
  /** a series not updated for this long is forgotten (default 300 000 ms) */
  expiryMs?: number;
  /** series names starting with this are dropped so agents cannot forge the pool's own metrics */
  reservedPrefix?: string;
}

/**
 * Keeps the latest value of each series agents report, keyed by
 * (agent id, name, labels), and prints them as Prometheus text: grouped by
 * name (sorted), labels sorted with `agent_id` added, integral values without
 * decimals. Counters and gauges are replaced by the latest report, as upstream.
 */
export class AgentMetricsCollector {
  private readonly series = new Map<string, Series>();
  private readonly maxSeries: number;
  private readonly expiryMs: number;
  private readonly reservedPrefix: string | undefined;
  /** series refused because the collector was full */
  dropped = 0;

  constructor(
    options: AgentMetricsCollectorOptions = {},
    private readonly now: () => number = Date.now,
  ) {
    this.maxSeries = options.maxSeries ?? 10_000;
    this.expiryMs = options.expiryMs ?? 300_000;
    this.reservedPrefix = options.reservedPrefix;
  }

  get size(): number {
    return this.series.size;
  }

  /** Records a report under `agentId` (the pool's id, not the self-declared one). */
  record(agentId: string, report: MetricsReport): void {
    const at = this.now();
    for (const c of report.counters ?? []) {
      this.put(agentId, 'counter', c.name, c.help, c.labels, at, (s) => {
        s.value = c.value;
      });
    }
    for (const g of report.gauges ?? []) {
      this.put(agentId, 'gauge', g.name, g.help, g.labels, at, (s) => {
        s.value = g.value;
      });
    }
    for (const h of report.histograms ?? []) {
      this.put(agentId, 'histogram', h.name, h.help, h.labels, at, (s) => {
        s.sum = h.sum;
        s.count = h.count;
        s.buckets = [...(h.buckets ?? [])]
          .map((b) => ({ le: Number(b.le), count: b.count }))
          .filter((b) => !Number.isNaN(b.le))
          .sort((a, b) => a.le - b.le);
      });
    }
  }

  /** Forgets every series of `agentId`. */
  removeAgent(agentId: string): void {
    for (const [k, s] of this.series) if (s.agentId === agentId) this.series.delete(k);
  }

  /** Forgets series not updated within the expiry; returns how many. */
  expire(): number {
    const cutoff = this.now() - this.expiryMs;
    let n = 0;
    for (const [k, s] of this.series) {
      if (s.updatedAt <= cutoff) {
        this.series.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Prometheus text of every live series. */
  render(w: PromWriter = new PromWriter()): PromWriter {
    this.expire();
    const byName = new Map<string, Series[]>();
    for (const s of this.series.values()) {
      const list = byName.get(s.name);
      if (list) list.push(s);
      else byName.set(s.name, [s]);
    }
    for (const name of [...byName.keys()].sort()) {
      const all = byName.get(name) ?? [];
      // A family has one type: when agents disagree, the first kind seen wins.
      const kind = (all[0] as Series).kind;
      const list = all
        .filter((s) => s.kind === kind)
        .sort((a, b) => compareLabels(a.labels, b.labels));
      w.family(name, kind, list.find((s) => s.help !== undefined)?.help);
      for (const s of list) {
        if (kind !== 'histogram') {
          w.sample(name, s.labels, s.value);
          continue;
        }
        let sawInf = false;
        for (const b of s.buckets) {
          if (b.le === Number.POSITIVE_INFINITY) sawInf = true;
          w.sample(`${name}_bucket`, sortLabels([...s.labels, ['le', formatValue(b.le)]]), b.count);
        }
        if (!sawInf) {
          w.sample(`${name}_bucket`, sortLabels([...s.labels, ['le', '+Inf']]), s.count);
        }
        w.sample(`${name}_sum`, s.labels, s.sum);
        w.sample(`${name}_count`, s.labels, s.count);
      }
    }
    return w;
  }

  private put(
    agentId: string,
    kind: Kind,
    rawName: string,
    help: string | undefined,
    rawLabels: Record<string, string> | undefined,
    at: number,
    fill: (s: Series) => void,
  ): void {
    const name = sanitizeMetricName(rawName);
    if (name === '' || (this.reservedPrefix && name.startsWith(this.reservedPrefix))) return;
    const labels = new Map<string, string>();
    for (const [k, v] of Object.entries(rawLabels ?? {})) {
      const key = sanitizeLabelName(k);
      // agent_id is ours; le is the histogram's; __* is reserved by Prometheus
      if (key === '' || key === 'agent_id' || key === 'le' || key.startsWith('__')) continue;
      labels.set(key, String(v));
    }
    labels.set('agent_id', agentId);
    const sorted = sortLabels([...labels]);
    const key = `${kind}\u0000${name}\u0000${JSON.stringify(sorted)}`;
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxSeries) {
        this.dropped++;
        return;
      }
      s = {
        agentId,
        name,
        kind,
        labels: sorted,
        value: 0,
        sum: 0,
        count: 0,
        buckets: [],
        updatedAt: at,
      };
      this.series.set(key, s);
    }
    if (help !== undefined) s.help = help;
    s.updatedAt = at;
    fill(s);
  }
}

function sortLabels(labels: [string, string][]): [string, string][] {
  return labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function compareLabels(a: [string, string][], b: [string, string][]): number {
  const x = formatLabels(a);
  const y = formatLabels(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
