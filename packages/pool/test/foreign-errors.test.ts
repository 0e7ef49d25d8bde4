/**
 * Two installed copies of @picket/protocol (a transport built against one, the pool against
 * the other): the pool's failure and retry decisions must still see the transport's error
 * code and its `sent` fact, not an INTERNAL wrapper.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AgentProtocolError, decisionKind, ErrorCode } from '@picket/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentPool } from '../src/index.js';
import { FakeTransport, headers } from './fake-transport.js';

type ErrorsModule = { AgentProtocolError: typeof AgentProtocolError };
let other: ErrorsModule;
let dir: string;

beforeAll(async () => {
  // the built errors module of @picket/protocol, copied: a second, independent class
  const main = createRequire(import.meta.url).resolve('@picket/protocol');
  dir = mkdtempSync(join(tmpdir(), 'picket-second-protocol-'));
  const code = readFileSync(join(dirname(main), 'errors.js'), 'utf8');
  writeFileSync(join(dir, 'errors.js'), code.replace(/^\/\/# sourceMappingURL=.*$/m, ''));
  other = (await import(
    /* @vite-ignore */ pathToFileURL(join(dir, 'errors.js')).href
  )) as ErrorsModule;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pools: AgentPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ drainTimeoutMs: 0 })));
});

async function twoConnections(): Promise<{ p: AgentPool; made: FakeTransport[] }> {
  const made: FakeTransport[] = [];
  const p = new AgentPool({ healthCheckIntervalMs: 0, circuitBreaker: false });
  pools.push(p);
  await p.addAgent(
    'a',
    async () => {
      const t = new FakeTransport('a');
      made.push(t);
      return t;
    },
    { connectionsPerAgent: 2 },
  );
  return { p, made };
}

describe('errors from another copy of @picket/protocol', () => {
  it('the copy really is another class', () => {
    expect(other.AgentProtocolError).not.toBe(AgentProtocolError);
  });

  it('a never-sent failure of the other copy is retried on the other connection', async () => {
    const { p, made } = await twoConnections();
    // only the first connection fails, before writing anything
    const first = made[0] as FakeTransport;
    first.send = () =>
      Promise.reject(
        new other.AgentProtocolError(ErrorCode.ConnectionClosed, `${first.name}: gone`, {
          sent: false,
        }),
      );
    for (let i = 0; i < 4; i++) {
      expect(decisionKind((await p.sendRequestHeaders('a', headers(`r${i}`))).decision)).toBe(
        'allow',
      );
    }
    expect(made[1]?.seen.length).toBe(4);
  });

  it('its code reaches the failure response instead of INTERNAL', async () => {
    const { p, made } = await twoConnections();
    for (const t of made) {
      t.send = () =>
        Promise.reject(new other.AgentProtocolError(ErrorCode.Timeout, `${t.name}: slow`));
    }
    const r = await p.sendRequestHeaders('a', headers('t'));
    expect(decisionKind(r.decision)).toBe('block');
    expect(r.audit.reason_codes).toEqual(['AGENT_TIMEOUT']);
    expect((r.audit.custom as Record<string, unknown>).error_code).toBe('TIMEOUT');
  });
});
