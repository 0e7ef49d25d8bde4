/**
 * `prox+exec:` endpoints through the facade: parsed by detectTransport, started and called by
 * V2Transport.connect and by a pool's addAgent (one plugin process per agent), over a real
 * child (picket's denylist agent served as a prox plugin) and its socket.
 */
import { fileURLToPath } from 'node:url';
import { goldenRequestHeaders } from '@picket/compliance/testkit';
import {
  AgentProtocolError,
  type AgentTransport,
  createCapabilities,
  ErrorCode,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createPool,
  detectTransport,
  ENDPOINT_FORMS,
  formatEndpoint,
  serve,
  V2Transport,
} from '../src/index.js';

const PLUGIN = fileURLToPath(new URL('./fixtures/prox-denylist.ts', import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
/** node with tsx, quoted as the endpoint grammar wants (the paths may hold spaces) */
const ENDPOINT = `prox+exec:'${process.execPath}' --import tsx '${PLUGIN}'`;
const PROX = { cwd: PACKAGE_DIR, stopGraceMs: 2_000 };

let seq = 0;

async function until(check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
const goldenRequest = (uri: string) => goldenRequestHeaders(`prox-${++seq}`, uri);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c().catch(() => {})));
});

describe('detectTransport: prox+exec:', () => {
  it('parses the command line and formats it back', () => {
    const ep = detectTransport('prox+exec:/usr/local/bin/auth-plugin --mode "strict mode"');
    expect(ep).toEqual({
      kind: 'prox',
      endpoint: 'prox+exec:/usr/local/bin/auth-plugin --mode "strict mode"',
      commandLine: '/usr/local/bin/auth-plugin --mode "strict mode"',
    });
    expect(formatEndpoint(ep)).toBe('prox+exec:/usr/local/bin/auth-plugin --mode "strict mode"');
    expect(ENDPOINT_FORMS.some(([form]) => form.startsWith('prox+exec:'))).toBe(true);
  });

  it.each([
    ['prox+exec:', 'needs the plugin program'],
    ['prox+exec:   ', 'needs the plugin program'],
    ['prox+exec:/bin/p\n--x', 'line break'],
  ])('refuses %j', (endpoint, problem) => {
    let err: unknown;
    try {
      detectTransport(endpoint);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe(ErrorCode.InvalidArgument);
    expect((err as Error).message).toContain(problem);
  });
});

describe('V2Transport.connect with prox+exec:', () => {
  it('starts the plugin, calls it like any agent, and stops it on close', async () => {
    const t: AgentTransport = await V2Transport.connect('deny', ENDPOINT, {
      prox: PROX,
      connectTimeoutMs: 20_000,
    });
    cleanups.push(() => t.close());
    expect(t.kind).toBe('prox');
    expect((await t.sendRequestHeaders(goldenRequest('/ok'))).decision).toBe('allow');
    const blocked = await t.sendRequestHeaders(goldenRequest('/admin/users'));
    expect(blocked.decision).toHaveProperty('block');
    await t.close();
    const e = await t
      .sendRequestHeaders(goldenRequest('/ok'))
      .catch((err: AgentProtocolError) => err);
    expect((e as AgentProtocolError).code).toBe(ErrorCode.ConnectionClosed);
  });

  it('a plugin that never becomes ready fails the connect within connectTimeoutMs, naming the endpoint', async () => {
    const endpoint = `prox+exec:'${process.execPath}' -e "setInterval(() => {}, 1000)"`;
    const err = await V2Transport.connect('silent', endpoint, {
      connectTimeoutMs: 800,
      prox: { stopGraceMs: 500 },
    }).catch((e: AgentProtocolError) => e);
    expect(err).toBeInstanceOf(AgentProtocolError);
    expect((err as AgentProtocolError).code).toBe(ErrorCode.Timeout);
    expect((err as Error).message).toContain('agent "silent" at prox+exec:');
    expect((err as Error).message).toContain('did not send ready within 800 ms');
  });

  it('an unterminated quote is refused before anything runs', async () => {
    const err = await V2Transport.connect('q', "prox+exec:/bin/plugin 'oops").catch(
      (e: AgentProtocolError) => e,
    );
    expect((err as AgentProtocolError).code).toBe(ErrorCode.InvalidArgument);
    expect((err as Error).message).toContain("unterminated ' quote");
  });
});

describe('serve() and prox+exec:', () => {
  it('is refused: a proxy runs prox plugins, an agent does not listen on one', async () => {
    const err = await serve('prox+exec:/bin/plugin', {
      capabilities: () => createCapabilities({ agentId: 'a' }),
    }).catch((e: AgentProtocolError) => e);
    expect((err as AgentProtocolError).code).toBe(ErrorCode.InvalidArgument);
    expect((err as Error).message).toContain('serveAgentAsProxPlugin');
  });
});

describe('createPool().addAgent with prox+exec:', () => {
  it('runs one plugin process for the agent and routes calls through it', async () => {
    const pool = createPool({ connectTimeoutMs: 20_000, prox: PROX });
    cleanups.push(() => pool.close());
    const opened = await pool.addAgent('deny', ENDPOINT, { connectionsPerAgent: 4 });
    // one plugin, however many connections were asked for: its transport pools the sockets
    expect(opened).toBe(1);
    const results = await Promise.all(
      ['/a', '/admin', '/b', '/admin/x'].map((p) =>
        pool.sendRequestHeaders('deny', goldenRequest(p)),
      ),
    );
    expect(results.map((r) => (r.decision === 'allow' ? 'allow' : 'block'))).toEqual([
      'allow',
      'block',
      'allow',
      'block',
    ]);
  });
});

describe('a pool over a prox plugin that dies', () => {
  it("a call in flight gets the failure mode (block 503), never an allow; after the plugin's new ready calls work again", async () => {
    const pool = createPool({
      connectTimeoutMs: 20_000,
      failureMode: 'closed',
      prox: { ...PROX, backoff: { initialMs: 100, maxMs: 200 } },
    });
    cleanups.push(() => pool.close());
    await pool.addAgent('deny', ENDPOINT);
    const died = await pool.sendRequestHeaders('deny', goldenRequest('/die'));
    expect(died.decision).toEqual({ block: { status: 503, body: null, headers: null } });
    expect(died.audit.tags).toContain('fail_closed');
    // the supervisor restarts the plugin; once it sent ready the agent is healthy and answers again
    const healthy = () => pool.agentStats('deny')?.healthyConnections ?? 0;
    await until(() => healthy() === 0);
    await until(() => healthy() === 1);
    expect((await pool.sendRequestHeaders('deny', goldenRequest('/ok'))).decision).toBe('allow');
    expect(
      (await pool.sendRequestHeaders('deny', goldenRequest('/admin'))).decision,
    ).toHaveProperty('block');
  });
});

describe('a pool over a prox plugin that stops answering for a while', () => {
  it('unanswered calls in a row do not shut the plugin out for good (prox has no ping)', async () => {
    const pool = createPool({ connectTimeoutMs: 20_000, failureMode: 'closed', prox: PROX });
    cleanups.push(() => pool.close());
    await pool.addAgent('deny', ENDPOINT, {
      requestTimeoutMs: 300,
      healthCheckIntervalMs: 200,
      circuitBreaker: false,
    });
    // more unanswered calls in a row than the pool's error threshold (3): each gets the failure mode
    for (let i = 0; i < 4; i++) {
      const r = await pool.sendRequestHeaders('deny', goldenRequest(`/hang/${i}`));
      expect(r.decision).toHaveProperty('block');
    }
    // the plugin answers again, and the pool uses it again (before the fix: set aside for good)
    const allowed = async (): Promise<boolean> =>
      (await pool.sendRequestHeaders('deny', goldenRequest('/ok'))).decision === 'allow';
    const end = Date.now() + 20_000;
    while (!(await allowed())) {
      if (Date.now() > end) throw new Error('the pool never used the plugin again');
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 60_000);
});
