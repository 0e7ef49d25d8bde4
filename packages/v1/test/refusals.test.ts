/**
 * Connections refused over `maxConnections` are logged as one line plus a
 * summary per interval, not one line each (a flood must not flood the log).
 */
import { allow, createCapabilities } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AgentServer,
  type AgentServerOptions,
  DEFAULT_V1_REFUSAL_LOG_INTERVAL_MS,
} from '../src/index.js';
import { closeAll, connectPeer, type LogLine, socketPath, startServer, until } from './helpers.js';

afterEach(closeAll);

const handler = {
  capabilities: () => createCapabilities({ agentId: 'srv' }),
  onRequestHeaders: () => allow(),
};

const start = (options: AgentServerOptions) => startServer(handler, options);

const peer = connectPeer;

/** Fills the cap of 2, then opens `n` more at once and waits until all of them were closed. */
async function burst(path: string, server: AgentServer, n: number): Promise<void> {
  await peer(path);
  await peer(path);
  await until(() => server.connectionCount === 2, 'two connections');
  const extra = await Promise.all(Array.from({ length: n }, () => peer(path)));
  await Promise.all(extra.map((p) => p.waitClosed(10_000)));
  expect(server.connectionCount).toBe(2);
}

const refusalLines = (lines: LogLine[]) =>
  lines.filter((l) => l.level === 'warn' && /refused/.test(l.message));

/** Refusals a set of lines accounts for: 1 for the first line, `refused` for each summary. */
const counted = (lines: LogLine[]) =>
  lines.reduce((sum, l) => sum + (typeof l.fields?.refused === 'number' ? l.fields.refused : 1), 0);

describe('AgentServer: refusals over maxConnections', () => {
  it('a burst of 50 is one line at once and one summary with the count', async () => {
    expect(DEFAULT_V1_REFUSAL_LOG_INTERVAL_MS).toBe(10_000);
    // an interval longer than the test: the summary comes from close()
    const { path, server, log } = await start({ maxConnections: 2, refusalLogIntervalMs: 60_000 });
    await burst(path, server, 50);
    const during = refusalLines(log.lines);
    expect(during).toHaveLength(1);
    expect(during[0]?.message).toMatch(/connection limit reached \(2 open, maxConnections 2\)/);
    await server.close();
    const lines = refusalLines(log.lines);
    expect(lines).toHaveLength(2);
    expect(lines[1]?.message).toMatch(
      /^v1 connections refused: 49 more over the cap of 2 in the last [\d.]+ s$/,
    );
    expect(lines[1]?.fields).toMatchObject({ agentId: 'srv', maxConnections: 2, refused: 49 });
  });

  it('summarises once per interval without close, and logs at once again after a quiet interval', async () => {
    const { path, server, log } = await start({ maxConnections: 2, refusalLogIntervalMs: 300 });
    await burst(path, server, 50);
    // the summary arrives on its own once the interval has passed
    await until(() => counted(refusalLines(log.lines)) === 50, 'every refusal counted', 10_000);
    const lines = refusalLines(log.lines);
    // one per interval at most: a burst that straddles an interval may need a second summary
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.length).toBeLessThanOrEqual(4);
    for (const l of lines.slice(1)) expect(l.message).toMatch(/^v1 connections refused: \d+ more/);
    // quiet for longer than an interval: the next refusal is logged at once, in full
    await new Promise((r) => setTimeout(r, 1_000));
    const before = log.lines.length;
    const late = await peer(path);
    await late.waitClosed();
    await until(() => log.lines.length > before, 'the late refusal logged');
    expect(log.lines.at(-1)?.message).toMatch(/connection limit reached/);
  });

  it('rejects a nonsense interval naming the option', () => {
    expect(
      () => new AgentServer('srv', socketPath(), handler, { refusalLogIntervalMs: 0 }),
    ).toThrow(/refusalLogIntervalMs/);
  });
});
