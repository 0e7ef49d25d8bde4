/**
 * `--demo`: sends scripted requests through a running gateway, prints what
 * each agent decided, and says whether every outcome was the expected one.
 */

import type { ExchangeSummary } from '@picket/http';
import { request } from 'undici';
import type { Gateway } from './gateway.js';

/** One scripted request and what must come of it. */
export interface DemoScenario {
  title: string;
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  expectStatus: number;
  /** a check on the response body text (the upstream's echo JSON for proxied requests) */
  expectBody?: (text: string) => boolean;
  expectBodyText?: string;
}

/** The scripted requests of the embedded demo. */
export const DEMO_SCENARIOS: readonly DemoScenario[] = [
  {
    title: 'allowed',
    method: 'GET',
    path: '/api/items?page=2',
    expectStatus: 200,
    expectBodyText: 'upstream saw x-echo-agent and x-inspected-by',
    expectBody: (t) => {
      const h = JSON.parse(t).headers ?? {};
      return h['x-echo-agent'] !== undefined && h['x-inspected-by'] === 'inspector';
    },
  },
  {
    title: 'blocked path',
    method: 'GET',
    path: '/admin/secret',
    expectStatus: 403,
    expectBodyText: '"Forbidden path"',
    expectBody: (t) => t === 'Forbidden path',
  },
  {
    title: 'blocked IP',
    method: 'GET',
    path: '/api/items',
    headers: { 'x-forwarded-for': '203.0.113.7' },
    expectStatus: 403,
    expectBodyText: '"Forbidden IP"',
    expectBody: (t) => t === 'Forbidden IP',
  },
  {
    title: 'body redacted',
    method: 'POST',
    path: '/api/notes',
    headers: { 'content-type': 'text/plain' },
    body: 'my secret note',
    expectStatus: 200,
    expectBodyText: 'upstream got "my [redacted] note"',
    expectBody: (t) => JSON.parse(t).body === 'my [redacted] note',
  },
  {
    title: 'body blocked',
    method: 'POST',
    path: '/api/query',
    headers: { 'content-type': 'text/plain' },
    body: 'x; DROP TABLE users',
    expectStatus: 403,
  },
  { title: 'default route', method: 'GET', path: '/', expectStatus: 200 },
];

const SHORT: Record<string, string> = {
  request_headers: 'req',
  request_body: 'body',
  response_headers: 'resp',
  response_body: 'rbody',
  request_complete: 'done',
};

/** A table cell per agent: `req allow · body block 403`, or `-` when not consulted. */
function cell(s: ExchangeSummary | undefined, agent: string): string {
  const v = s?.verdicts.filter((x) => x.agent === agent) ?? [];
  if (v.length === 0) return '-';
  return v.map((x) => `${SHORT[x.event] ?? x.event} ${x.decision}`).join(' · ');
}

/** Runs the scenarios against `base`; prints a table; resolves to the number of wrong outcomes. */
export async function runDemo(
  gateway: Gateway,
  base: string,
  agentNames: readonly string[],
  print: (line: string) => void = console.log,
): Promise<number> {
  const summaries = new Map<string, ExchangeSummary>();
  const waiters = new Map<string, (s: ExchangeSummary) => void>();
  gateway.on('exchange', (s) => {
    summaries.set(s.requestId, s);
    waiters.get(s.requestId)?.(s);
  });
  const summaryOf = (id: string) =>
    summaries.get(id) ??
    new Promise<ExchangeSummary | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), 5_000);
      waiters.set(id, (s) => {
        clearTimeout(t);
        resolve(s);
      });
    });

  const rows: string[][] = [['request', 'route', ...agentNames, 'status', 'result']];
  let wrong = 0;
  for (const [i, sc] of DEMO_SCENARIOS.entries()) {
    const id = `demo-${i + 1}`;
    const res = await request(base + sc.path, {
      method: sc.method,
      headers: { 'x-request-id': id, ...sc.headers },
      body: sc.body ?? null,
    });
    const text = await res.body.text();
    const s = await summaryOf(id);
    let ok = res.statusCode === sc.expectStatus;
    let why = ok ? '' : `expected ${sc.expectStatus}`;
    if (ok && sc.expectBody) {
      try {
        ok = sc.expectBody(text.trim());
      } catch {
        ok = false;
      }
      if (!ok) why = `expected ${sc.expectBodyText ?? 'another body'}`;
    }
    if (!ok) wrong++;
    rows.push([
      `${sc.method} ${sc.path}${sc.headers?.['x-forwarded-for'] ? ` (from ${sc.headers['x-forwarded-for']})` : ''}`,
      s?.route ?? '-',
      ...agentNames.map((a) => cell(s, a)),
      String(res.statusCode),
      ok ? 'ok' : `WRONG: ${why}`,
    ]);
  }
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  for (const [n, r] of rows.entries()) {
    print(`  ${r.map((v, c) => v.padEnd(widths[c] ?? 0)).join('  ')}`.trimEnd());
    if (n === 0) print(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  }
  return wrong;
}
