import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import {
  decodeRegistrationRequest,
  decodeRegistrationResponse,
  encodeRegistrationRequest,
  encodeRegistrationResponse,
} from '@picket/codec';
import { encodeFrame } from '@picket/framing';
import { MessageType, ZENTINEL_PROXY_ID, ZENTINEL_PROXY_VERSION } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_REVERSE_CONFIG,
  type RegistrationRejection,
  type ReverseConnection,
  type ReverseConnectionConfig,
  ReverseConnectionListener,
} from '../src/index.js';
import {
  captureLogger,
  exchange,
  golden,
  json,
  registration,
  registrationFrame,
  tempSocket,
  until,
  V9_EPOCH_MS,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function uds(config: ReverseConnectionConfig = {}) {
  const sock = tempSocket();
  const log = captureLogger();
  const listener = await ReverseConnectionListener.bindUds(sock.path, { logger: log, ...config });
  const rejected: RegistrationRejection[] = [];
  listener.on('rejected', (r) => rejected.push(r));
  cleanups.push(async () => {
    await listener.close();
    sock.cleanup();
  });
  return { listener, log, rejected, path: sock.path, dir: sock.dir, target: { path: sock.path } };
}

const zentinel = { proxyId: ZENTINEL_PROXY_ID, proxyVersion: ZENTINEL_PROXY_VERSION };

describe('golden vectors', () => {
  it('answers V9a with exactly V9b (pinned clock, zentinel identity)', async () => {
    const { listener, target } = await uds({ ...zentinel, clock: () => V9_EPOCH_MS });
    const accepted = new Promise<ReverseConnection>((r) => listener.once('connection', r));
    const ex = await exchange(target, golden('V9a'), { untilFrames: 1 });
    expect(ex.bytes.equals(golden('V9b'))).toBe(true);
    const conn = await accepted;
    expect(conn.connectionId).toBe('waf-1-19b76daa800');
    expect(conn.kind).toBe('reverse');
    expect(conn.encoding).toBe('json');
    expect(conn.agentId).toBe('waf-1');
    expect(conn.capabilities.name).toBe('Echo Agent');
    expect(conn.registration.hasToken).toBe(true);
    expect(JSON.stringify(conn.registration)).not.toContain('secret');
    ex.socket.destroy();
  });

  it('answers a disallowed agent with exactly V9c and closes', async () => {
    const { target, rejected } = await uds({ ...zentinel, allowedAgents: ['waf-1'] });
    const ex = await exchange(target, registrationFrame(registration({ agent_id: 'waf-9' })));
    expect(ex.bytes.equals(golden('V9c'))).toBe(true);
    expect(ex.closed).toBe(true);
    expect(rejected).toMatchObject([{ stage: 'validate', responded: true, agentId: 'waf-9' }]);
  });

  it('RegistrationRequest JSON round-trips incl. metadata', () => {
    const req = registration({ auth_token: 'x', metadata: { region: 'eu', tags: ['a', 1, null] } });
    expect(decodeRegistrationRequest(encodeRegistrationRequest(req))).toEqual(req);
  });

  it('RegistrationResponse JSON round-trips incl. the failure text', () => {
    const failure = {
      success: false,
      error: 'Invalid message format: Agent ID cannot be empty',
      proxy_id: 'p',
      proxy_version: '1',
      connection_id: '',
    };
    expect(decodeRegistrationResponse(encodeRegistrationResponse(failure))).toEqual(failure);
  });
});

describe('validation in the spec order, with the spec texts', () => {
  const cases: [string, ReverseConnectionConfig, Parameters<typeof registration>[0], string][] = [
    [
      'protocol version 99',
      {},
      { protocol_version: 99 },
      'Protocol version mismatch: expected 2, got 99',
    ],
    [
      'version beats an empty id',
      {},
      { protocol_version: 1, agent_id: '' },
      'Protocol version mismatch: expected 2, got 1',
    ],
    ['empty agent id', {}, { agent_id: '' }, 'Invalid message format: Agent ID cannot be empty'],
    [
      'empty id beats the allow-list',
      { allowedAgents: ['waf-1'] },
      { agent_id: '' },
      'Invalid message format: Agent ID cannot be empty',
    ],
    [
      'not in the allow-list',
      { allowedAgents: ['waf-1', 'auth-*'] },
      { agent_id: 'waf-2' },
      "Invalid message format: Agent 'waf-2' is not in the allowed list",
    ],
    [
      'allow-list beats auth',
      { allowedAgents: ['waf-1'], tokens: ['t'] },
      { agent_id: 'x' },
      "Invalid message format: Agent 'x' is not in the allowed list",
    ],
    [
      'no token',
      { tokens: ['valid-token-123'] },
      {},
      'Invalid message format: Authentication required but no token provided',
    ],
    [
      'wrong token (picket checks the value)',
      { tokens: ['valid-token-123'] },
      { auth_token: 'valid-token-124' },
      "Authentication failed: invalid token for agent 'waf-1'",
    ],
    [
      'empty token',
      { tokens: ['valid-token-123'] },
      { auth_token: '' },
      "Authentication failed: invalid token for agent 'waf-1'",
    ],
    [
      "another agent's token",
      { tokens: { 'waf-1': ['one'], 'waf-2': 'two' } },
      { auth_token: 'two' },
      "Authentication failed: invalid token for agent 'waf-1'",
    ],
    [
      'an agent without tokens',
      { tokens: { other: ['one'] } },
      { auth_token: 'one' },
      "Authentication failed: invalid token for agent 'waf-1'",
    ],
  ];
  for (const [name, config, req, text] of cases) {
    it(`refuses: ${name}`, async () => {
      const { target, rejected, log } = await uds(config);
      const ex = await exchange(target, registrationFrame(registration(req)));
      expect(ex.closed).toBe(true);
      expect(ex.frames).toHaveLength(1);
      expect(ex.frames[0]?.type).toBe(MessageType.HandshakeResponse);
      const response = json(ex.frames[0]);
      expect(response).toEqual({
        success: false,
        error: text,
        proxy_id: 'picket-proxy',
        proxy_version: expect.any(String),
        connection_id: '',
      });
      expect(rejected).toHaveLength(1);
      expect(rejected[0]).toMatchObject({ responded: true, reason: text });
      expect(rejected[0]?.code).toBe(
        text.startsWith('Protocol')
          ? 'VERSION_MISMATCH'
          : text.includes('Authentication')
            ? 'UNAUTHENTICATED'
            : 'INVALID_MESSAGE',
      );
      expect(log.text()).toContain(text);
    });
  }

  const accepted: [string, ReverseConnectionConfig, Parameters<typeof registration>[0]][] = [
    ['an exact allow-list entry', { allowedAgents: ['waf-1'] }, {}],
    ['a * glob', { allowedAgents: ['waf-*'] }, { agent_id: 'waf-anything' }],
    ['a bare *', { allowedAgents: ['*'] }, { agent_id: 'whatever.agent' }],
    ['a ? glob', { allowedAgents: ['waf-?'] }, { agent_id: 'waf-7' }],
    ['the right shared token', { tokens: ['valid-token-123'] }, { auth_token: 'valid-token-123' }],
    ['a rotated per-agent token', { tokens: { 'waf-1': ['old', 'new'] } }, { auth_token: 'new' }],
  ];
  for (const [name, config, req] of accepted) {
    it(`accepts: ${name}`, async () => {
      const { target, listener } = await uds(config);
      const ex = await exchange(target, registrationFrame(registration(req)), { untilFrames: 1 });
      expect(json(ex.frames[0])).toMatchObject({ success: true, error: null });
      await until(() => listener.connectionCount === 1);
      ex.socket.destroy();
    });
  }

  it('globs are anchored and ? is exactly one character', async () => {
    const { target } = await uds({ allowedAgents: ['waf-*', 'a?c'] });
    for (const id of ['xwaf-1', 'waf', 'ac', 'abbc']) {
      const ex = await exchange(target, registrationFrame(registration({ agent_id: id })));
      expect(json(ex.frames[0]).error).toBe(
        `Invalid message format: Agent '${id}' is not in the allowed list`,
      );
    }
  });

  it('an async verifier sees id, token and connection info; only true accepts', async () => {
    const seen: unknown[] = [];
    const { target, listener } = await uds({
      verifyToken: async (agentId, token, info) => {
        seen.push({ agentId, token, transport: info.transport, metadata: info.metadata });
        await new Promise((r) => setTimeout(r, 5));
        return token === `ok-${agentId}`;
      },
    });
    const good = await exchange(
      target,
      registrationFrame(registration({ auth_token: 'ok-waf-1', metadata: { zone: 'a' } })),
      { untilFrames: 1 },
    );
    expect(json(good.frames[0])).toMatchObject({ success: true });
    const bad = await exchange(target, registrationFrame(registration({ auth_token: 'nope' })));
    expect(json(bad.frames[0]).error).toBe(
      "Authentication failed: invalid token for agent 'waf-1'",
    );
    expect(seen[0]).toEqual({
      agentId: 'waf-1',
      token: 'ok-waf-1',
      transport: 'uds',
      metadata: { zone: 'a' },
    });
    expect(listener.list('waf-1')[0]?.metadata).toEqual({ zone: 'a' });
    good.socket.destroy();
  });

  it('a verifier that throws or hangs refuses the registration', async () => {
    let mode: 'throw' | 'hang' = 'throw';
    const { target } = await uds({
      handshakeTimeout: 200,
      verifyToken: () => {
        if (mode === 'throw') throw new Error('backend down');
        return new Promise<boolean>(() => {});
      },
    });
    const thrown = await exchange(target, registrationFrame(registration({ auth_token: 't' })));
    expect(json(thrown.frames[0]).error).toBe(
      "Authentication failed: token verification for agent 'waf-1' failed",
    );
    mode = 'hang';
    const hung = await exchange(target, registrationFrame(registration({ auth_token: 't' })));
    expect(json(hung.frames[0]).error).toBe(
      "Authentication failed: token verification for agent 'waf-1' timed out",
    );
  });

  it('refuses unsafe or contradictory auth settings at bind time', async () => {
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    await expect(
      ReverseConnectionListener.bindUds(sock.path, { requireAuth: true }),
    ).rejects.toThrow(/requireAuth is set but neither tokens nor verifyToken/);
    await expect(
      ReverseConnectionListener.bindUds(sock.path, { requireAuth: false, tokens: ['x'] }),
    ).rejects.toThrow(/contradict|requireAuth is false/);
    await expect(
      ReverseConnectionListener.bindUds(sock.path, { tokens: ['x'], verifyToken: () => true }),
    ).rejects.toThrow(/not both/);
    await expect(ReverseConnectionListener.bindUds(sock.path, { tokens: [] })).rejects.toThrow(
      /empty list/,
    );
  });
});

describe('errors before validation: no response, socket dropped, reason logged', () => {
  const junk: [string, Buffer | undefined, boolean, RegExp][] = [
    [
      'an idle peer (registration timeout)',
      undefined,
      false,
      /no RegistrationRequest .* within 150 ms/,
    ],
    [
      'first frame AgentResponse (0x20)',
      Buffer.from(encodeFrame(MessageType.AgentResponse, Buffer.from('{}'))),
      false,
      /expected RegistrationRequest \(0x01\) as the first frame, got AgentResponse \(0x20\)/,
    ],
    [
      'body not-json!!',
      Buffer.from(encodeFrame(MessageType.HandshakeRequest, Buffer.from('not-json!!'))),
      false,
      /not valid UTF-8 JSON/,
    ],
    [
      'valid JSON, missing fields',
      Buffer.from(encodeFrame(MessageType.HandshakeRequest, Buffer.from('{"agent_id":"a"}'))),
      false,
      /invalid RegistrationRequest: .*missing required field/,
    ],
    ['immediate close (EOF)', undefined, true, /peer closed the connection before/],
    [
      'a truncated frame then EOF',
      registrationFrame(registration()).subarray(0, 40),
      true,
      /truncated/,
    ],
    ['a zero length', Buffer.from([0, 0, 0, 0, 1]), false, /zero-length/],
    ['an oversize length', Buffer.from([0x01, 0, 0, 0, 1]), false, /exceeds the limit/],
    ['an unknown type byte', Buffer.from([0, 0, 0, 1, 0xff]), false, /unknown \(0xff\)/],
  ];
  for (const [name, bytes, end, reason] of junk) {
    it(name, async () => {
      const { target, rejected, log, listener } = await uds({ handshakeTimeout: 150 });
      const ex = await exchange(target, bytes, { end });
      expect(ex.closed).toBe(true);
      expect(ex.bytes.length).toBe(0);
      await until(() => rejected.length === 1, 3000, 'the rejection');
      expect(rejected[0]).toMatchObject({ responded: false });
      expect(rejected[0]?.reason).toMatch(reason);
      if (name.startsWith('an idle')) expect(rejected[0]?.code).toBe('TIMEOUT');
      else if (name.includes('EOF')) expect(rejected[0]?.code).toBe('CONNECTION_CLOSED');
      else if (name.includes('oversize')) expect(rejected[0]?.code).toBe('MESSAGE_TOO_LARGE');
      else expect(rejected[0]?.code).toBe('INVALID_MESSAGE');
      expect(log.text()).toMatch(reason);
      await until(() => listener.pendingCount === 0 && listener.socketCount === 0);
    });
  }
});

describe('connection caps are checked before answering success', () => {
  it('per agent: the extra registration gets success:false with the reason', async () => {
    const { target, listener, rejected } = await uds({ maxConnectionsPerAgent: 2 });
    const a = await exchange(target, registrationFrame(registration()), { untilFrames: 1 });
    const b = await exchange(target, registrationFrame(registration()), { untilFrames: 1 });
    const c = await exchange(target, registrationFrame(registration()));
    expect(json(a.frames[0]).success).toBe(true);
    expect(json(b.frames[0]).success).toBe(true);
    expect(json(c.frames[0])).toMatchObject({
      success: false,
      error:
        "Connection limit reached: agent 'waf-1' already has 2 connections (maxConnectionsPerAgent 2)",
    });
    expect(c.closed).toBe(true);
    expect(rejected).toMatchObject([{ stage: 'limit', responded: true }]);
    // Another agent is not affected by waf-1's cap.
    const d = await exchange(target, registrationFrame(registration({ agent_id: 'auth' })), {
      untilFrames: 1,
    });
    expect(json(d.frames[0]).success).toBe(true);
    expect(listener.connectionCount).toBe(3);
    // A freed slot can be taken again.
    a.socket.destroy();
    await until(() => listener.list('waf-1').length === 1);
    const e = await exchange(target, registrationFrame(registration()), { untilFrames: 1 });
    expect(json(e.frames[0]).success).toBe(true);
    for (const x of [b, d, e]) x.socket.destroy();
  });

  it('listener-wide: maxConnections', async () => {
    const { target } = await uds({ maxConnections: 1 });
    const a = await exchange(target, registrationFrame(registration({ agent_id: 'a' })), {
      untilFrames: 1,
    });
    const b = await exchange(target, registrationFrame(registration({ agent_id: 'b' })));
    expect(json(a.frames[0]).success).toBe(true);
    expect(json(b.frames[0]).error).toBe(
      'Connection limit reached: the listener already has 1 connections (maxConnections 1)',
    );
    a.socket.destroy();
  });

  it('a pool that refuses is answered with success:false too', async () => {
    const { target } = await uds({
      pool: {
        addConnection: () => {
          throw new Error('agent "waf-1" already has 4 connections');
        },
      },
    });
    const ex = await exchange(target, registrationFrame(registration()));
    expect(json(ex.frames[0]).error).toBe(
      'Connection refused by the agent pool: agent "waf-1" already has 4 connections',
    );
    expect(ex.closed).toBe(true);
  });
});

describe('connection ids', () => {
  it('<agent_id>-<hex ms>, made unique within the same millisecond', async () => {
    const { target, listener } = await uds({ clock: () => V9_EPOCH_MS });
    const ids: string[] = [];
    listener.on('connection', (c) => ids.push(c.connectionId));
    const peers = [];
    for (let i = 0; i < 3; i++) {
      peers.push(await exchange(target, registrationFrame(registration()), { untilFrames: 1 }));
    }
    expect(ids).toEqual(['waf-1-19b76daa800', 'waf-1-19b76daa800-1', 'waf-1-19b76daa800-2']);
    expect(peers.map((p) => json(p.frames[0]).connection_id)).toEqual(ids);
    for (const p of peers) p.socket.destroy();
  });
});

describe('bindUds', () => {
  it('replaces a stale socket file, sets mode 0660, removes the file on close', async () => {
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    // A stale socket: what a process killed while listening leaves behind.
    spawnSync(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(sock.path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect((await fsp.lstat(sock.path)).isSocket()).toBe(true);

    const listener = await ReverseConnectionListener.bindUds(`unix:${sock.path}`, {
      logger: captureLogger(),
    });
    expect(listener.endpoint).toBe(`unix:${sock.path}`);
    expect((await fsp.lstat(sock.path)).mode & 0o777).toBe(0o660);
    await listener.close();
    await expect(fsp.lstat(sock.path)).rejects.toThrow(/ENOENT/);
  });

  it('refuses to delete a regular file or a live socket', async () => {
    const sock = tempSocket();
    cleanups.push(() => sock.cleanup());
    await fsp.writeFile(sock.path, 'not a socket');
    await expect(ReverseConnectionListener.bindUds(sock.path)).rejects.toThrow(/not a socket/);
    await fsp.unlink(sock.path);
    const first = await ReverseConnectionListener.bindUds(sock.path, { logger: captureLogger() });
    await expect(ReverseConnectionListener.bindUds(sock.path)).rejects.toThrow(/another process/);
    await first.close();
  });

  it('has the seeds defaults', () => {
    expect(DEFAULT_REVERSE_CONFIG).toMatchObject({
      backlog: 128,
      handshakeTimeout: 10_000,
      maxConnectionsPerAgent: 4,
      allowedAgents: [],
      requireAuth: false,
      requestTimeout: 30_000,
    });
  });
});

describe('delivery', () => {
  it('registers 3 agents in sequence: event, iterator and list agree', async () => {
    const { target, listener } = await uds();
    const events: { agentId: string; connectionId: string; metadata: unknown }[] = [];
    listener.on('connection', (_c, info) =>
      events.push({
        agentId: info.agentId,
        connectionId: info.connectionId,
        metadata: info.metadata,
      }),
    );
    const iterated: string[] = [];
    const consumer = (async () => {
      for await (const c of listener) {
        iterated.push(c.agentId);
        if (iterated.length === 3) break;
      }
    })();
    const peers = [];
    for (const id of ['a1', 'a2', 'a3']) {
      peers.push(
        await exchange(
          target,
          registrationFrame(registration({ agent_id: id, metadata: { id } })),
          {
            untilFrames: 1,
          },
        ),
      );
    }
    await consumer;
    expect(iterated).toEqual(['a1', 'a2', 'a3']);
    expect(events.map((e) => e.agentId)).toEqual(['a1', 'a2', 'a3']);
    expect(events[1]?.metadata).toEqual({ id: 'a2' });
    expect(events.every((e) => e.connectionId.startsWith(`${e.agentId}-`))).toBe(true);
    expect(listener.list().map((c) => c.agentId)).toEqual(['a1', 'a2', 'a3']);
    for (const p of peers) p.socket.destroy();
    await until(() => listener.connectionCount === 0);
  });

  it('iterators end when the listener closes', async () => {
    const { listener } = await uds();
    const it = listener.connections();
    const next = it.next();
    await listener.close();
    await expect(next).resolves.toEqual({ value: undefined, done: true });
  });

  it('keeps frames that arrive in the same write as the registration', async () => {
    const { target, listener } = await uds();
    const accepted = new Promise<ReverseConnection>((r) => listener.once('connection', r));
    // Registration + HealthStatus (0x30, state 4 = unhealthy) in one write.
    const health = Buffer.from(encodeFrame(MessageType.HealthStatus, Buffer.from('{"state":4}')));
    const ex = await exchange(target, Buffer.concat([registrationFrame(registration()), health]), {
      untilFrames: 1,
    });
    const conn = await accepted;
    await until(() => conn.health !== undefined, 3000, 'the health frame');
    expect(conn.health?.state).toBe('unhealthy');
    expect(conn.isHealthy()).toBe(false);
    ex.socket.destroy();
  });

  it('emits disconnect and forgets a connection that drops', async () => {
    const { target, listener } = await uds();
    const gone = new Promise<ReverseConnection>((r) => listener.once('disconnect', (c) => r(c)));
    const ex = await exchange(target, registrationFrame(registration()), { untilFrames: 1 });
    ex.socket.destroy();
    const c = await gone;
    expect(c.closed).toBe(true);
    expect(listener.connectionCount).toBe(0);
  });
});
