/**
 * The host side over real child processes and real sockets: every hook driven through the
 * AgentTransport, the mapping both ways, pushes as events, the plugin opting out of hooks.
 */
import { type AgentResponse, setHeader } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { PROX_METADATA, type ProxTargetsPush } from '../src/index.js';
import {
  closeAll,
  collectingLogger,
  FIXTURE,
  nextEvent,
  requestHeaders,
  startFixture,
  until,
} from './host-helpers.js';

afterEach(closeAll);

function requestHeaderMap(r: AgentResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const op of r.request_headers) if ('set' in op) out[op.set.name] = op.set.value;
  return out;
}

describe('ProxPluginTransport: on_request', () => {
  it('maps the request-headers event to RequestInfo and an allow to header ops', async () => {
    const t = await startFixture();
    expect(t.kind).toBe('prox');
    expect(t.isHealthy()).toBe(true);
    expect([...t.host.hooks].sort()).toEqual([
      'on_connect',
      'on_disconnect',
      'on_request',
      'on_response',
    ]);
    const r = await t.sendRequestHeaders(
      requestHeaders(
        '/a/b?x=1&y=2',
        { authorization: ['Bearer t'], 'content-length': ['12'] },
        { method: 'POST' },
      ),
    );
    expect(r.decision).toBe('allow');
    const h = requestHeaderMap(r);
    expect(h).toMatchObject({
      'X-Route': 'gw:0',
      'X-Method': 'POST',
      'X-Path': '/a/b',
      'X-Query': 'x=1&y=2',
      'X-Domain': 'api.example.com',
      'X-Host': 'api.example.com:8443',
      'X-Proto': 'HTTP/1.1',
      'X-Addr': '192.0.2.7:40001',
      'X-Cl': '12',
      // Go's canonical header keys: a Go plugin reads h["Authorization"]
      'X-Auth': 'Bearer t',
      'X-Body': '',
    });
    expect(r.request_headers[0]).toEqual(setHeader('X-Seq', h['X-Seq'] as string));
  });

  it('cl is -1 for a request with Transfer-Encoding and no Content-Length', async () => {
    const t = await startFixture();
    const r = await t.sendRequestHeaders(
      requestHeaders('/x', { 'transfer-encoding': ['chunked'] }),
    );
    expect(requestHeaderMap(r)['X-Cl']).toBe('-1');
  });

  it('a deny becomes a block with status, body and headers; no status means 403', async () => {
    const t = await startFixture();
    const r = await t.sendRequestHeaders(requestHeaders('/deny'));
    expect(r.decision).toEqual({
      block: { status: 401, body: 'Unauthorized', headers: { 'WWW-Authenticate': 'Basic' } },
    });
    const d = await t.sendRequestHeaders(requestHeaders('/deny-default'));
    expect(d.decision).toEqual({ block: { status: 403, body: null, headers: null } });
  });

  it('drop and fallback are blocks carrying their marker (never an allow, even with ok: true)', async () => {
    const t = await startFixture();
    const drop = await t.sendRequestHeaders(requestHeaders('/drop'));
    expect(drop.decision).toEqual({ block: { status: 403, body: null, headers: null } });
    expect(drop.routing_metadata[PROX_METADATA.drop]).toBe('true');
    expect(drop.audit.tags).toContain('prox:drop');
    const fb = await t.sendRequestHeaders(requestHeaders('/fallback'));
    expect(fb.decision).toHaveProperty('block');
    expect(fb.routing_metadata[PROX_METADATA.fallback]).toBe('true');
  });

  it('rp, cq and sp are surfaced in routing_metadata and tags', async () => {
    const t = await startFixture();
    const r = await t.sendRequestHeaders(requestHeaders('/shape'));
    expect(r.decision).toBe('allow');
    expect(r.routing_metadata).toEqual({
      [PROX_METADATA.rewritePath]: '/v2/x',
      [PROX_METADATA.cleanQuery]: 'true',
      [PROX_METADATA.speedDownload]: '2.5',
      [PROX_METADATA.speedGroup]: 'user-1',
    });
    expect(r.audit.tags).toEqual(['prox:rewrite_path', 'prox:clean_query', 'prox:speed_limit']);
  });

  it('capture mode: on_request waits for the body and gets it as bd (at most 64 KiB)', async () => {
    const t = await startFixture([], { requestBody: 'capture' });
    const e = requestHeaders('/upload', { 'content-length': ['11'] }, { method: 'POST' });
    const cid = e.metadata.correlation_id;
    const first = await t.sendRequestHeaders(e);
    expect(first.needs_more).toBe(true);
    const mid = await t.sendRequestBodyChunk({
      correlation_id: cid,
      data: Buffer.from('hello '),
      is_last: false,
      chunk_index: 0,
      bytes_received: 6,
    });
    expect(mid.needs_more).toBe(true);
    const last = await t.sendRequestBodyChunk({
      correlation_id: cid,
      data: Buffer.from('world'),
      is_last: true,
      chunk_index: 1,
      bytes_received: 11,
    });
    expect(last.needs_more).toBe(false);
    expect(requestHeaderMap(last)['X-Body']).toBe('hello world');

    const big = requestHeaders('/upload', { 'content-length': ['100000'] }, { method: 'POST' });
    await t.sendRequestHeaders(big);
    const r = await t.sendRequestBodyChunk({
      correlation_id: big.metadata.correlation_id,
      data: Buffer.alloc(100_000, 0x61),
      is_last: true,
      chunk_index: 0,
      bytes_received: 100_000,
    });
    expect(requestHeaderMap(r)['X-Body']).toBe('a'.repeat(64 * 1024));
  });

  it('headers mode (default): on_request is called at once and body chunks are allowed', async () => {
    const t = await startFixture();
    const e = requestHeaders('/upload', { 'content-length': ['5'] }, { method: 'POST' });
    const r = await t.sendRequestHeaders(e);
    expect(r.needs_more).toBe(false);
    expect(requestHeaderMap(r)['X-Path']).toBe('/upload');
    const c = await t.sendRequestBodyChunk({
      correlation_id: e.metadata.correlation_id,
      data: Buffer.from('abcde'),
      is_last: true,
      chunk_index: 0,
      bytes_received: 5,
    });
    expect(c.decision).toBe('allow');
  });
});

describe('ProxPluginTransport: on_response, on_connect, on_disconnect', () => {
  it('on_response gets the request and the response; its result becomes response header ops', async () => {
    const t = await startFixture();
    const e = requestHeaders('/page');
    await t.sendRequestHeaders(e);
    const r = await t.sendResponseHeaders({
      correlation_id: e.metadata.correlation_id,
      status: 200,
      headers: { server: ['nginx'], 'content-type': ['text/html'] },
    });
    expect(r.decision).toBe('allow');
    expect(r.response_headers).toEqual(
      expect.arrayContaining([
        { set: { name: 'X-Resp', value: 'mod' } },
        { set: { name: 'X-Req-Path', value: '/page' } },
        { set: { name: 'X-Up-Server', value: 'nginx' } },
        { remove: { name: 'Server' } },
      ]),
    );
    // removals come after the sets
    expect(r.response_headers.at(-1)).toEqual({ remove: { name: 'Server' } });
    expect(r.routing_metadata[PROX_METADATA.responseStatus]).toBe('299');
  });

  it('on_connect is called directly on the host', async () => {
    const t = await startFixture();
    await expect(
      t.host.onConnect({ routeId: 'l4:0', domain: 'a.example.com', remoteAddr: '1.2.3.4:5' }),
    ).resolves.toEqual({
      allow: true,
    });
    await expect(
      t.host.onConnect({ routeId: 'l4:0', domain: 'bad.example', remoteAddr: '1.2.3.4:5' }),
    ).resolves.toEqual({
      allow: false,
    });
  });

  it('request-complete fires on_disconnect (no reply read) and the connection is reused', async () => {
    const t = await startFixture();
    const e = requestHeaders('/page');
    await t.sendRequestHeaders(e);
    const logged = nextEvent<[{ message: string; args: unknown[] }]>(t as never, 'pluginLog');
    const r = await t.sendRequestComplete({
      correlation_id: e.metadata.correlation_id,
      status: 200,
      duration_ms: 12,
      request_body_size: 3,
      response_body_size: 40,
      upstream_attempts: 1,
    });
    expect(r.decision).toBe('allow');
    let push = (await logged)[0];
    while (push.message !== 'disconnect')
      push = (await nextEvent<[typeof push]>(t as never, 'pluginLog'))[0];
    expect(push.args[1]).toEqual({ r: 'gw:0', a: '192.0.2.7:40001', rx: 3, tx: 40, ms: 12 });
    // after its quiet period the connection goes back to the pool and serves the next call
    await until(() => t.host.stats().connections?.idle === 1);
    const next = await t.sendRequestHeaders(requestHeaders('/again'));
    expect(requestHeaderMap(next)['X-Conns']).toBe('1');
    expect(t.host.stats().connections?.discarded).toBe(0);
  });
});

describe('ProxPluginTransport: declared hooks', () => {
  it('an event whose hook the plugin did not declare is allowed without a call', async () => {
    const t = await startFixture(['--hooks', 'on_response']);
    expect([...t.host.hooks]).toEqual(['on_response']);
    // /slow would never be answered: allowed at once because on_request was not declared
    const r = await t.sendRequestHeaders(requestHeaders('/slow'));
    expect(r.decision).toBe('allow');
    expect(r.request_headers).toEqual([]);
    expect(t.host.stats().connections?.open).toBe(0);
  });

  it('unknown hook names in ready are ignored with a warning', async () => {
    const logger = collectingLogger();
    const t = await startFixture(['--hooks', 'on_request,on_magic'], { logger });
    expect([...t.host.hooks]).toEqual(['on_request']);
    expect(logger.text()).toContain('unknown hook "on_magic"');
  });
});

describe('ProxPluginTransport: configure and pushes', () => {
  it('sends one configure per route binding (default: route "" without match)', async () => {
    const logger = collectingLogger();
    const t = await startFixture([], { logger });
    await until(() => logger.text().includes('] configure'));
    expect(logger.text()).toContain('{"args":"[\\"params\\",{\\"route_id\\":\\"\\"}]"}');
    const logger2 = collectingLogger();
    const t2 = await startFixture([], {
      logger: logger2,
      routes: [
        { routeId: 'api:0', match: { domain: 'api.example.com', path: '/v1' } },
        { routeId: 'api:1' },
      ],
    });
    await until(() => t2.host.stats().readies >= 2);
    const configures = logger2.lines.filter((l) => l.includes('] configure'));
    expect(configures).toHaveLength(2);
    expect(configures[0]).toContain(
      '\\"route_id\\":\\"api:0\\",\\"match\\":{\\"domain\\":\\"api.example.com\\",\\"path\\":\\"/v1\\"}',
    );
    expect(configures[1]).toContain('\\"route_id\\":\\"api:1\\"}');
    void t;
  });

  it('set_targets, set_speed and log pushes arrive as typed events; log lines are escaped', async () => {
    const logger = collectingLogger();
    const targets: ProxTargetsPush[] = [];
    const t = await startFixture(['--targets'], { logger });
    t.on('targets', (p) => targets.push(p));
    const speeds: unknown[] = [];
    t.on('speed', (s) => speeds.push(s));
    // the first pushes came with the first configure, before the transport existed: the host keeps them
    expect(t.host.lastTargets.get('route:*')).toEqual({
      routeId: '*',
      action: '',
      targets: ['10.0.0.1:80', '10.0.0.2:80'],
      groups: {},
    });
    expect(t.host.lastTargets.get('action:api')?.groups).toEqual({ eu: ['10.1.0.1:80'] });
    // a reconfigure makes the plugin push again
    t.host.configure([{ routeId: 'gw:0' }]);
    await until(() => targets.length >= 2 && speeds.length >= 1);
    expect(targets[0]).toEqual({
      routeId: '*',
      action: '',
      targets: ['10.0.0.1:80', '10.0.0.2:80'],
      groups: {},
    });
    expect(speeds[0]).toEqual({
      routeId: 'gw:0',
      action: '',
      downloadMbps: 10,
      uploadMbps: 1.5,
      groupKey: 'g',
    });
    const warn = logger.lines.find((l) => l.startsWith('warn [fx] line1'));
    expect(warn).toBeDefined();
    expect(warn).toContain('line1\\nFAKE ENTRY \\x1b[31m');
    expect(warn).not.toContain('\n');
    expect(warn).not.toContain(String.fromCharCode(27));
  });

  it('a targets-only plugin (no ready) runs, pushes, and every event is allowed', async () => {
    const t = await startFixture(['--targets-only'], { targetsOnly: true });
    await until(() => t.host.lastTargets.has('route:*'));
    expect(t.host.hooks.size).toBe(0);
    const r = await t.sendRequestHeaders(requestHeaders('/deny'));
    expect(r.decision).toBe('allow');
  });
});

describe('the README host example', () => {
  it('asks a plugin about a request and stops it', async () => {
    const { askPlugin } = await import('../examples/host.js');
    const endpoint = `prox+exec:'${FIXTURE}'`;
    expect(await askPlugin(endpoint, '/v1/orders?id=7')).toBe('allow');
    expect(await askPlugin(endpoint, '/deny')).toBe('block');
  });
});
