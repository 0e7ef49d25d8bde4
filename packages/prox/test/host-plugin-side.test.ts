/**
 * The host side driving plugins built with this package's plugin side (test/fixtures/plugin.ts):
 * prox-native hooks and a picket AgentHandler served as a prox plugin, both as a picket
 * AgentTransport, end to end over a real child and socket.
 */
import { fileURLToPath } from 'node:url';
import type { AgentResponse } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { PROX_METADATA, type ProxLogPush, ProxPluginTransport } from '../src/index.js';
import { collectingLogger, requestHeaders, until } from './host-helpers.js';

const PLUGIN = fileURLToPath(new URL('./fixtures/plugin.ts', import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

const open: ProxPluginTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

async function start(mode: string, logger = collectingLogger()): Promise<ProxPluginTransport> {
  const t = await ProxPluginTransport.connect(
    `plugin-${mode}`,
    [process.execPath, '--import', 'tsx', PLUGIN, mode],
    { cwd: PACKAGE_DIR, readyTimeoutMs: 20_000, stopGraceMs: 2_000, logger },
  );
  open.push(t);
  return t;
}

const sets = (ops: AgentResponse['request_headers']): Record<string, string> =>
  Object.fromEntries(ops.flatMap((op) => ('set' in op ? [[op.set.name, op.set.value]] : [])));

describe('host side × plugin side: prox-native hooks', () => {
  it('drives on_request, on_response, on_connect and on_disconnect; pushes arrive', async () => {
    const logger = collectingLogger();
    const t = await start('native', logger);
    expect([...t.host.hooks].sort()).toEqual([
      'on_connect',
      'on_disconnect',
      'on_request',
      'on_response',
    ]);
    await until(() => t.host.lastTargets.has('action:api'));
    expect(t.host.lastTargets.get('route:*')?.targets).toEqual(['10.0.0.1:80']);
    expect(t.host.lastTargets.get('action:api')?.groups).toEqual({
      eu: ['10.0.1.1:80'],
      us: ['10.0.2.1:80'],
    });

    const e = requestHeaders('/x?q=1', { 'user-agent': ['curl/8'], 'content-length': ['0'] });
    const r = await t.sendRequestHeaders(e);
    expect(sets(r.request_headers)).toEqual({
      'X-Path': '/x',
      'X-Route': 'gw:0',
      'X-Cl': '0',
      'X-Body': '-',
      'X-Ua': 'curl/8',
    });
    const deny = await t.sendRequestHeaders(requestHeaders('/deny'));
    expect(deny.decision).toEqual({ block: { status: 401, body: 'Unauthorized', headers: null } });
    const limited = await t.sendRequestHeaders(requestHeaders('/limited'));
    expect(limited.routing_metadata).toMatchObject({
      [PROX_METADATA.speedDownload]: '50',
      [PROX_METADATA.speedUpload]: '1.5',
    });

    const resp = await t.sendResponseHeaders({
      correlation_id: e.metadata.correlation_id,
      status: 500,
      headers: { server: ['x'] },
    });
    expect(resp.response_headers).toEqual([
      { set: { name: 'X-Up', value: '500' } },
      { remove: { name: 'Server' } },
    ]);
    expect(resp.routing_metadata[PROX_METADATA.responseStatus]).toBe('503');

    await expect(
      t.host.onConnect({ routeId: 'l4', domain: 'blocked.example', remoteAddr: '1.2.3.4:5' }),
    ).resolves.toEqual({ allow: false });
    await expect(
      t.host.onConnect({ routeId: 'l4', domain: 'ok.example', remoteAddr: '1.2.3.4:5' }),
    ).resolves.toEqual({
      allow: true,
    });

    const logs: ProxLogPush[] = [];
    t.on('pluginLog', (p) => logs.push(p));
    await t.sendRequestComplete({
      correlation_id: e.metadata.correlation_id,
      status: 200,
      duration_ms: 7,
      request_body_size: 11,
      response_body_size: 22,
      upstream_attempts: 1,
    });
    await until(() => logs.some((l) => l.message === 'disconnect'));
    expect(logs.find((l) => l.message === 'disconnect')?.args).toEqual([
      'route',
      'gw:0',
      'rx',
      11,
      'tx',
      22,
      'ms',
      7,
    ]);
  });

  it('a handler that throws is a deny 500 from the plugin (never an allow)', async () => {
    const t = await start('native');
    const r = await t.sendRequestHeaders(requestHeaders('/throw'));
    expect(r.decision).toHaveProperty('block');
    expect((r.decision as { block: { status: number } }).block.status).toBe(500);
  });
});

describe('host side × plugin side: a picket AgentHandler as a prox plugin', () => {
  it('allow with header ops, block, redirect round-trip through prox payloads', async () => {
    const t = await start('agent');
    const ok = await t.sendRequestHeaders(requestHeaders('/page?x=1'));
    expect(ok.decision).toBe('allow');
    expect(sets(ok.request_headers)).toMatchObject({
      'X-Uri': '/page?x=1',
      'X-Client': '192.0.2.7:40001',
    });
    const blocked = await t.sendRequestHeaders(requestHeaders('/block'));
    expect(blocked.decision).toEqual({
      block: { status: 451, body: 'nope', headers: { 'X-Why': 'test' } },
    });
    const redirected = await t.sendRequestHeaders(requestHeaders('/redirect'));
    expect(redirected.decision).toEqual({
      block: { status: 307, body: null, headers: { Location: 'https://example.com/login' } },
    });
  });
});
