/**
 * The host side when things go wrong, over real child processes and sockets: the pool's caps
 * and queue, deadlines, hostile answers (never an allow), a plugin dying mid-call and coming
 * back, a plugin that never sends ready.
 */
import { AgentProtocolError, type AgentResponse, ErrorCode } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { ProxPluginTransport, type ProxReadyInfo } from '../src/index.js';
import {
  closeAll,
  collectingLogger,
  FIXTURE,
  fixtureCommand,
  nextEvent,
  requestHeaders,
  startFixture,
  until,
} from './host-helpers.js';

afterEach(closeAll);

const header = (r: AgentResponse, name: string): string | undefined => {
  for (const op of r.request_headers) if ('set' in op && op.set.name === name) return op.set.value;
  return undefined;
};

async function rejection(p: Promise<unknown>): Promise<AgentProtocolError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AgentProtocolError);
    return err as AgentProtocolError;
  }
  throw new Error('expected a rejection, got an answer');
}

describe('connection pool', () => {
  it('never opens more than maxConnections; the rest wait and are served', async () => {
    const t = await startFixture([], { maxConnections: 2 });
    let sawWaiting = 0;
    const calls = Array.from({ length: 6 }, () =>
      t.sendRequestHeaders(requestHeaders('/hold?ms=150')),
    );
    await until(() => {
      sawWaiting = Math.max(sawWaiting, t.host.stats().connections?.waiting ?? 0);
      return sawWaiting > 0;
    });
    const answers = await Promise.all(calls);
    for (const r of answers) expect(r.decision).toBe('allow');
    // the plugin counts the connections it accepted
    expect(Math.max(...answers.map((r) => Number(header(r, 'X-Conns'))))).toBeLessThanOrEqual(2);
    expect(Math.max(...answers.map((r) => Number(header(r, 'X-Concurrent'))))).toBeLessThanOrEqual(
      2,
    );
    expect(t.host.stats().connections?.open).toBeLessThanOrEqual(2);
  });

  it('waiting calls are served in FIFO order', async () => {
    const t = await startFixture([], { maxConnections: 1 });
    const paths = ['/hold?ms=100&n=a', '/hold?ms=10&n=b', '/hold?ms=10&n=c', '/hold?ms=10&n=d'];
    const answers = await Promise.all(paths.map((p) => t.sendRequestHeaders(requestHeaders(p))));
    const seqs = answers.map((r) => Number(header(r, 'X-Seq')));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(answers.map((r) => header(r, 'X-Query'))).toEqual(paths.map((p) => p.split('?')[1]));
  });

  it('keeps at most maxIdleConnections idle', async () => {
    const t = await startFixture([], { maxConnections: 4, maxIdleConnections: 1 });
    await Promise.all(
      Array.from({ length: 4 }, () => t.sendRequestHeaders(requestHeaders('/hold?ms=100'))),
    );
    expect(t.host.stats().connections).toMatchObject({ open: 1, idle: 1, waiting: 0 });
  });

  it('a call past its deadline fails TIMEOUT and its connection is discarded', async () => {
    const t = await startFixture([], { timeoutMs: 400 });
    const e = await rejection(t.sendRequestHeaders(requestHeaders('/slow')));
    expect(e.code).toBe(ErrorCode.Timeout);
    expect(e.message).toMatch(/did not answer on_request .*within 400 ms/);
    await until(() => t.host.stats().connections?.open === 0);
    expect(t.host.stats().connections?.discarded).toBe(1);
    // a late answer cannot reach the next call: it gets a fresh connection
    const r = await t.sendRequestHeaders(requestHeaders('/ok'));
    expect(header(r, 'X-Conns')).toBe('2');
  });

  it('the deadline covers the wait for a free connection', async () => {
    const t = await startFixture([], { maxConnections: 1 });
    const slow = t.host.onRequest({ path: '/slow' }, { timeoutMs: 10_000 });
    slow.catch(() => {});
    await until(() => t.host.stats().connections?.open === 1);
    const e = await rejection(t.host.onRequest({ path: '/ok' }, { timeoutMs: 300 }));
    expect(e.code).toBe(ErrorCode.Timeout);
    expect(e.message).toContain('still waiting for a free connection');
  });

  it('a new ready while a call waits for a connection: the call moves to the new pool', async () => {
    const t = await startFixture([], { maxConnections: 1 });
    const first = t.host.readyInfo as ProxReadyInfo;
    const running = t.sendRequestHeaders(requestHeaders('/hold?ms=400'));
    const waiting = t.sendRequestHeaders(requestHeaders('/queued'));
    await until(() => t.host.stats().connections?.waiting === 1);
    // a reconfigure makes the plugin send ready again: the pool is replaced
    const readies = t.host.stats().readies;
    t.host.configure([{ routeId: 'gw:0' }]);
    await until(() => t.host.stats().readies > readies);
    expect(t.host.readyInfo?.pid).toBe(first.pid);
    const [r1, r2] = await Promise.all([running, waiting]);
    expect(r1.decision).toBe('allow');
    expect(header(r2, 'X-Path')).toBe('/queued');
    // the running call finished on the old pool, whose connection then closed
    expect(t.host.stats().connections).toMatchObject({ open: 1, busy: 0 });
  });

  it('cancel(correlationId) fails the call CANCELLED and discards its connection (no signal given)', async () => {
    const t = await startFixture();
    const e = requestHeaders('/slow');
    const p = t.sendRequestHeaders(e);
    await until(() => t.host.stats().connections?.busy === 1);
    await t.cancel(e.metadata.correlation_id);
    expect((await rejection(p)).code).toBe(ErrorCode.Cancelled);
    await until(() => t.host.stats().connections?.discarded === 1);
    // the next call gets a fresh connection and an answer
    const r = await t.sendRequestHeaders(requestHeaders('/ok'));
    expect(r.decision).toBe('allow');
  });

  it('an aborted call fails CANCELLED and discards its connection', async () => {
    const t = await startFixture();
    const ac = new AbortController();
    const p = t.sendRequestHeaders(requestHeaders('/slow'), { signal: ac.signal });
    await until(() => t.host.stats().connections?.busy === 1);
    ac.abort();
    expect((await rejection(p)).code).toBe(ErrorCode.Cancelled);
    await until(() => t.host.stats().connections?.discarded === 1);
  });
});

describe('hostile answers: the connection is discarded, the error names the problem, never an allow', () => {
  it('a frame over 1 MiB', async () => {
    const t = await startFixture();
    const e = await rejection(t.sendRequestHeaders(requestHeaders('/oversize')));
    expect(e.code).toBe(ErrorCode.MessageTooLarge);
    expect(e.message).toMatch(/answered on_request with a bad frame: .*2097152.*exceeds/);
    expect(t.host.stats().connections).toMatchObject({ open: 0, discarded: 1 });
  });

  it('garbage msgpack', async () => {
    const t = await startFixture();
    const e = await rejection(t.sendRequestHeaders(requestHeaders('/garbage')));
    expect(e.code).toBe(ErrorCode.InvalidMessage);
    expect(e.message).toContain('answered on_request with an invalid payload');
    expect(t.host.stats().connections).toMatchObject({ open: 0, discarded: 1 });
  });

  it('two frames for one request (a stray frame would answer the next call)', async () => {
    const t = await startFixture();
    const e = await rejection(t.sendRequestHeaders(requestHeaders('/two-frames')));
    expect(e.code).toBe(ErrorCode.InvalidMessage);
    expect(e.message).toContain('more than one frame in answer to on_request');
  });

  it('a reply to on_disconnect', async () => {
    const logger = collectingLogger();
    const t = await startFixture(['--reply-disconnect'], { logger });
    const e = requestHeaders('/page');
    await t.sendRequestHeaders(e);
    await t.sendRequestComplete({
      correlation_id: e.metadata.correlation_id,
      status: 200,
      duration_ms: 1,
      request_body_size: 0,
      response_body_size: 0,
      upstream_attempts: 1,
    });
    await until(() => t.host.stats().connections?.discarded === 1);
    expect(logger.text()).toContain(
      'in answer to on_disconnect, which has no reply; connection discarded',
    );
    // the stray {ok:true} answered nothing: a deny is still a deny
    const r = await t.sendRequestHeaders(requestHeaders('/deny'));
    expect(r.decision).toHaveProperty('block');
  });

  it("requestErrors 'block' answers 500 as prox does; on_response errors pass the response (fail-open)", async () => {
    const t = await startFixture([], { requestErrors: 'block' });
    const r = await t.sendRequestHeaders(requestHeaders('/garbage'));
    expect(r.decision).toEqual({ block: { status: 500, body: null, headers: null } });
    expect(r.audit.tags).toEqual(['fail_closed', 'prox:error']);
    expect(r.audit.custom.error).toContain('answered on_request with an invalid payload');
    const e = requestHeaders('/resp-garbage');
    await t.sendRequestHeaders(e);
    const resp = await t.sendResponseHeaders({
      correlation_id: e.metadata.correlation_id,
      status: 200,
      headers: {},
    });
    expect(resp.decision).toBe('allow');
    expect(resp.response_headers).toEqual([]);
    expect(resp.audit.tags).toEqual(['fail_open', 'prox:error']);
    expect(resp.audit.reason_codes).toEqual([ErrorCode.InvalidMessage]);
  });
});

describe('plugin lifecycle', () => {
  it('a plugin that dies mid-call: the call fails, calls fail until the new ready, then work again', async () => {
    const t = await startFixture();
    const first = t.host.readyInfo as ProxReadyInfo;
    const unhealthy = nextEvent(t as never, 'health');
    const e = await rejection(t.sendRequestHeaders(requestHeaders('/die')));
    expect([ErrorCode.ConnectionClosed, ErrorCode.Unavailable]).toContain(e.code);
    expect((await unhealthy)[0]).toMatchObject({ state: 'unhealthy' });
    const ready = await nextEvent<[ProxReadyInfo]>(t as never, 'ready');
    expect(ready[0].pid).not.toBe(first.pid);
    expect(ready[0].socket).not.toBe(first.socket);
    expect(ready[0].generation).toBe(first.generation + 1);
    expect(t.isHealthy()).toBe(true);
    const r = await t.sendRequestHeaders(requestHeaders('/ok'));
    expect(r.decision).toBe('allow');
  });

  it("a stdout line over the supervisor's limit: the plugin is killed and restarted, loudly", async () => {
    const logger = collectingLogger();
    const t = await startFixture([], { stdoutLineLimit: 64 * 1024, logger });
    const first = t.host.readyInfo as ProxReadyInfo;
    const ready = nextEvent<[ProxReadyInfo]>(t as never, 'ready');
    await t.sendRequestHeaders(requestHeaders('/flood')).catch(() => {});
    expect((await ready)[0].pid).not.toBe(first.pid);
    expect(logger.text()).toContain('stdout line longer than stdoutLineLimit (65536 bytes');
    expect((await t.sendRequestHeaders(requestHeaders('/ok'))).decision).toBe('allow');
  });

  it('while the plugin is gone, calls fail UNAVAILABLE naming why (never allow)', async () => {
    const t = await startFixture([], { backoff: { initialMs: 3_000, maxMs: 3_000 } });
    await rejection(t.sendRequestHeaders(requestHeaders('/die')));
    await until(() => !t.host.ready);
    const e = await rejection(t.sendRequestHeaders(requestHeaders('/ok')));
    expect(e.code).toBe(ErrorCode.Unavailable);
    expect(e.message).toContain('is not ready (the plugin exited with code 3)');
    expect(t.isHealthy()).toBe(false);
  });

  it('ready never sent: connect rejects TIMEOUT with a clear message and the plugin is stopped', async () => {
    const t0 = Date.now();
    const e = await rejection(
      ProxPluginTransport.connect('nr', fixtureCommand('--no-ready'), {
        readyTimeoutMs: 800,
        stopGraceMs: 1_000,
      }),
    );
    expect(e.code).toBe(ErrorCode.Timeout);
    expect(e.message).toMatch(
      /prox plugin "nr" \(.*spec-plugin\.mjs --no-ready\) did not send ready within 800 ms after configure/,
    );
    expect(Date.now() - t0).toBeLessThan(800 + 2 * 1_000 + 5_000);
  });

  it('an unusable ready (relative socket path) is named in the timeout error', async () => {
    const logger = collectingLogger();
    const e = await rejection(
      ProxPluginTransport.connect('rel', fixtureCommand('--relative-socket'), {
        readyTimeoutMs: 1_500,
        stopGraceMs: 1_000,
        backoff: { initialMs: 50, maxMs: 100 },
        logger,
      }),
    );
    expect(e.code).toBe(ErrorCode.Timeout);
    expect(e.message).toContain('ready socket "p.sock" is not an absolute path');
  });

  it('a ready naming something that is not a socket is refused, named in the error', async () => {
    const e = await rejection(
      ProxPluginTransport.connect('file', fixtureCommand('--announce', FIXTURE), {
        readyTimeoutMs: 1_500,
        stopGraceMs: 1_000,
        backoff: { initialMs: 50, maxMs: 100 },
        logger: collectingLogger(),
      }),
    );
    expect(e.code).toBe(ErrorCode.Timeout);
    expect(e.message).toContain(`ready socket ${JSON.stringify(FIXTURE)} is not a Unix socket`);
    const gone = await rejection(
      ProxPluginTransport.connect('gone', fixtureCommand('--announce', '/nonexistent/p.sock'), {
        readyTimeoutMs: 1_500,
        stopGraceMs: 1_000,
        backoff: { initialMs: 50, maxMs: 100 },
        logger: collectingLogger(),
      }),
    );
    expect(gone.message).toContain('ready socket "/nonexistent/p.sock" cannot be used');
  });

  it('a plugin that exits at once: the timeout error says how it exited', async () => {
    const e = await rejection(
      ProxPluginTransport.connect('gone', [process.execPath, '-e', 'process.exit(7)'], {
        readyTimeoutMs: 1_000,
        backoff: { initialMs: 50, maxMs: 100 },
        logger: collectingLogger(),
      }),
    );
    expect(e.code).toBe(ErrorCode.Timeout);
    expect(e.message).toContain('the plugin exited with code 7');
  });

  it("the owner's signal stops the plugin: the transport emits close with the reason", async () => {
    const owner = new AbortController();
    const t = await startFixture([], { signal: owner.signal });
    const closed = nextEvent<[AgentProtocolError | undefined]>(t as never, 'close');
    owner.abort();
    const [err] = await closed;
    expect(err?.code).toBe(ErrorCode.ConnectionClosed);
    expect(err?.message).toContain('prox plugin "fx" was stopped');
    expect(t.isHealthy()).toBe(false);
    expect((await rejection(t.sendRequestHeaders(requestHeaders('/ok')))).code).toBe(
      ErrorCode.ConnectionClosed,
    );
  });

  it('close() stops the plugin; later calls fail CONNECTION_CLOSED', async () => {
    const t = await startFixture();
    const pid = t.host.readyInfo?.pid as number;
    await t.close();
    expect(t.host.supervisor.state).toBe('stopped');
    expect(() => process.kill(pid, 0)).toThrow();
    const e = await rejection(t.sendRequestHeaders(requestHeaders('/ok')));
    expect(e.code).toBe(ErrorCode.ConnectionClosed);
  });
});
