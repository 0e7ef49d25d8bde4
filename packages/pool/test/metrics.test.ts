import type { MetricsReport } from '@picket/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AgentMetricsCollector,
  escapeLabelValue,
  formatValue,
  LatencyHistogram,
  LatencyReservoir,
  PromWriter,
  sanitizeMetricName,
} from '../src/internal.js';

const report = (over: Partial<MetricsReport> = {}): MetricsReport => ({
  agent_id: 'self-declared',
  timestamp_ms: 1,
  interval_ms: 10_000,
  counters: [],
  gauges: [],
  histograms: [],
  ...over,
});

describe('Prometheus text helpers', () => {
  it('escapes label values and formats numbers', () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    expect(
      [1, 1.0, -3, 0.25, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN].map(
        formatValue,
      ),
    ).toEqual(['1', '1', '-3', '0.25', '+Inf', '-Inf', 'NaN']);
    expect(sanitizeMetricName('agent.requests-total')).toBe('agent_requests_total');
    expect(sanitizeMetricName('9lives')).toBe('_9lives');
  });

  it('histogram buckets are cumulative, le in seconds with 6 decimals', () => {
    const h = new LatencyHistogram();
    h.observe(0.000005);
    h.observe(0.003);
    h.observe(7);
    const w = new PromWriter();
    h.write(w, 'x', [['agent_id', 'a']]);
    const text = w.toString();
    expect(text).toContain('x_bucket{agent_id="a",le="0.000010"} 1\n');
    expect(text).toContain('x_bucket{agent_id="a",le="0.001000"} 1\n');
    expect(text).toContain('x_bucket{agent_id="a",le="0.005000"} 2\n');
    expect(text).toContain('x_bucket{agent_id="a",le="1.000000"} 2\n');
    expect(text).toContain('x_bucket{agent_id="a",le="+Inf"} 3\n');
    expect(text).toContain('x_sum{agent_id="a"} 7.003005\n');
    expect(text).toContain('x_count{agent_id="a"} 3\n');
  });

  it('reservoir percentiles over recent samples', () => {
    const r = new LatencyReservoir(100);
    expect(r.percentiles()).toBeNull();
    for (let i = 1; i <= 200; i++) r.add(i); // keeps 101..200
    expect(r.percentiles()).toEqual({ p50: 150, p95: 195, p99: 199 });
  });
});

describe('AgentMetricsCollector', () => {
  afterEach(() => vi.useRealTimers());

  it('prints series grouped by name, labels sorted, agent_id added, latest value wins', () => {
    const c = new AgentMetricsCollector();
    c.record(
      'waf',
      report({
        counters: [
          { name: 'agent_requests_total', help: 'Requests', labels: { route: 'b' }, value: 5 },
          { name: 'agent_requests_total', labels: { route: 'a', agent_id: 'forged' }, value: 2 },
        ],
        gauges: [{ name: 'agent_in_flight_requests', labels: {}, value: 1.5 }],
      }),
    );
    c.record(
      'waf',
      report({ counters: [{ name: 'agent_requests_total', labels: { route: 'b' }, value: 7 }] }),
    );
    c.record(
      'auth',
      report({ gauges: [{ name: 'agent_in_flight_requests', labels: { z: 'q"x' }, value: 3 }] }),
    );
    expect(c.render().toString()).toBe(
      [
        '# TYPE agent_in_flight_requests gauge',
        'agent_in_flight_requests{agent_id="auth",z="q\\"x"} 3',
        'agent_in_flight_requests{agent_id="waf"} 1.5',
        '# HELP agent_requests_total Requests',
        '# TYPE agent_requests_total counter',
        'agent_requests_total{agent_id="waf",route="a"} 2',
        'agent_requests_total{agent_id="waf",route="b"} 7',
        '',
      ].join('\n'),
    );
  });

  it('prints histograms with +Inf and drops reserved names', () => {
    const c = new AgentMetricsCollector({ reservedPrefix: 'picket_pool_' });
    c.record(
      'a',
      report({
        histograms: [
          {
            name: 'agent_requests_duration_seconds',
            labels: { le: 'bogus' },
            sum: 1.25,
            count: 4,
            buckets: [
              { le: 1, count: 3 },
              { le: 0.5, count: 1 },
            ],
          },
        ],
        counters: [{ name: 'picket_pool_requests_total', labels: {}, value: 1e6 }],
      }),
    );
    expect(c.render().toString()).toBe(
      [
        '# TYPE agent_requests_duration_seconds histogram',
        'agent_requests_duration_seconds_bucket{agent_id="a",le="0.5"} 1',
        'agent_requests_duration_seconds_bucket{agent_id="a",le="1"} 3',
        'agent_requests_duration_seconds_bucket{agent_id="a",le="+Inf"} 4',
        'agent_requests_duration_seconds_sum{agent_id="a"} 1.25',
        'agent_requests_duration_seconds_count{agent_id="a"} 4',
        '',
      ].join('\n'),
    );
  });

  it('bounds the series count and expires stale series', () => {
    vi.useFakeTimers();
    const c = new AgentMetricsCollector({ maxSeries: 2, expiryMs: 1_000 });
    c.record(
      'a',
      report({
        gauges: [1, 2, 3].map((i) => ({ name: `g${i}`, labels: {}, value: i })),
      }),
    );
    expect(c.size).toBe(2);
    expect(c.dropped).toBe(1);
    vi.advanceTimersByTime(600);
    c.record('a', report({ gauges: [{ name: 'g1', labels: {}, value: 9 }] }));
    vi.advanceTimersByTime(600);
    expect(c.expire()).toBe(1);
    expect(c.render().toString()).toContain('g1{agent_id="a"} 9');
    c.removeAgent('a');
    expect(c.size).toBe(0);
  });
});
