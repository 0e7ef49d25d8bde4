import { cid, requestHeaders } from '@picket/compliance';
import { encodeFrame } from '@picket/framing';
import { MessageType } from '@picket/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  connectReverse,
  type ReverseAgent,
  type ReverseConnectionConfig,
  ReverseConnectionListener,
} from '../src/index.js';
import {
  captureLogger,
  exchange,
  registration,
  registrationFrame,
  stampHandler,
  tempSocket,
  until,
} from './helpers.js';

const TOKEN = 'tok-SUPER-secret-5f1c9e';
const WRONG = 'zz-WRONG-token-7a9e41';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  vi.restoreAllMocks();
});

/** Every string reachable from plain objects, arrays and errors (incl. causes); no sockets. */
function strings(
  value: unknown,
  out: string[] = [],
  seen = new Set<unknown>(),
  depth = 0,
): string[] {
  if (depth > 8 || value === null || value === undefined) return out;
  if (typeof value === 'string') {
    out.push(value);
    return out;
  }
  if (typeof value !== 'object' || seen.has(value)) return out;
  seen.add(value);
  if (value instanceof Error) {
    out.push(value.message, String(value.stack ?? ''));
    strings(value.cause, out, seen, depth + 1);
    for (const v of Object.values(value)) strings(v, out, seen, depth + 1);
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  if (Array.isArray(value) || proto === Object.prototype || proto === null) {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      strings(v, out, seen, depth + 1);
    }
  }
  return out;
}

describe('tokens never appear in logs, errors or events', () => {
  it('across successful and failed registrations, on both sides', { timeout: 20_000 }, async () => {
    const consoleText: string[] = [];
    for (const m of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
        consoleText.push(args.map(String).join(' '));
      });
    }
    const proxyLog = captureLogger();
    const agentLog = captureLogger();
    const events: unknown[] = [];

    const bind = async (config: ReverseConnectionConfig) => {
      const sock = tempSocket();
      const listener = await ReverseConnectionListener.bindUds(sock.path, {
        logger: proxyLog,
        handshakeTimeout: 300,
        ...config,
      });
      listener.on('connection', (c, info) =>
        events.push({ info, registration: c.registration, metadata: c.metadata }),
      );
      listener.on('rejected', (r) => events.push(r));
      listener.on('disconnect', (c, error) => events.push({ id: c.connectionId, error }));
      cleanups.push(async () => {
        await listener.close();
        sock.cleanup();
      });
      return listener;
    };
    const start = (listener: ReverseConnectionListener, authToken: string): ReverseAgent => {
      const agent = connectReverse({
        endpoint: listener.endpoint,
        agentId: 'waf-1',
        authToken,
        handler: stampHandler('waf-1'),
        reconnect: { initialDelayMs: 10, maxDelayMs: 40 },
        logger: agentLog,
      });
      agent.on('registered', (i) =>
        events.push({ slot: i.slot, id: i.connectionId, proxy: i.proxyId, v: i.proxyVersion }),
      );
      agent.on('registrationFailed', (e, i) => events.push({ e, i }));
      agent.on('disconnected', (i) => events.push(i));
      agent.on('reconnecting', (i) => events.push(i));
      cleanups.push(() => agent.stop());
      return agent;
    };
    const failures = (agent: ReverseAgent, n: number) =>
      until(() => (agent.status().slots[0]?.failures ?? 0) >= n, 5000, `${n} failed registrations`);

    // 1. Token set: the right token registers and serves; wrong tokens are refused.
    const withTokens = await bind({ tokens: [TOKEN] });
    const good = start(withTokens, TOKEN);
    await good.ready({ timeoutMs: 5000 });
    const conn = withTokens.list('waf-1')[0];
    await conn?.sendRequestHeaders(requestHeaders(cid(), '/'), { timeoutMs: 5000 });
    const wrong = start(withTokens, WRONG);
    const prefixed = start(withTokens, `${TOKEN}x`);
    await failures(wrong, 2);
    await failures(prefixed, 2);
    events.push(wrong.status(), wrong.lastError, prefixed.status(), prefixed.lastError);
    await Promise.all([good.stop(), wrong.stop(), prefixed.stop()]);

    // 2. A verifier that puts the token into its own error, and one that says no.
    let verifierMode: 'throw' | 'no' = 'throw';
    const withVerifier = await bind({
      verifyToken: (_id, token) => {
        if (verifierMode === 'throw') throw new Error(`token store rejected ${token}`);
        return false;
      },
    });
    const verified = start(withVerifier, TOKEN);
    await failures(verified, 2);
    verifierMode = 'no';
    const before = verified.status().slots[0]?.failures ?? 0;
    await failures(verified, before + 2);
    events.push(verified.status(), verified.lastError);
    await verified.stop();

    // 3. Raw peers with the token inside broken registrations (dropped before validation).
    const raw = await bind({ tokens: [TOKEN] });
    const target = { path: raw.socketPath as string };
    const valid = registrationFrame(registration({ auth_token: TOKEN }));
    const broken = [
      valid.subarray(0, valid.length - 3),
      Buffer.from(
        encodeFrame(MessageType.HandshakeRequest, Buffer.from(`{"auth_token":"${TOKEN}",`)),
      ),
      Buffer.from(
        encodeFrame(
          MessageType.HandshakeRequest,
          Buffer.from(JSON.stringify({ ...registration(), auth_token: { t: TOKEN } })),
        ),
      ),
      Buffer.from(
        encodeFrame(
          MessageType.HandshakeRequest,
          Buffer.from(JSON.stringify({ ...registration(), auth_token: [TOKEN] })),
        ),
      ),
      Buffer.from(
        encodeFrame(
          MessageType.HandshakeRequest,
          Buffer.from(JSON.stringify({ ...registration(), capabilities: null, auth_token: TOKEN })),
        ),
      ),
      Buffer.from(
        encodeFrame(
          MessageType.HandshakeRequest,
          Buffer.from(JSON.stringify({ ...registration(), protocol_version: TOKEN })),
        ),
      ),
    ];
    for (const bytes of broken) {
      const ex = await exchange(target, bytes, { waitMs: 3000 });
      expect(ex.closed).toBe(true);
    }
    // The truncated one is dropped by the registration timeout.
    await until(() => raw.pendingCount === 0, 3000);

    // Sanity: the capture saw real traffic, including the refusals and drops.
    const logText = `${proxyLog.text()}\n${agentLog.text()}`;
    expect(logText).toContain("Authentication failed: invalid token for agent 'waf-1'");
    expect(logText).toContain('token verification');
    expect(logText).toContain('invalid RegistrationRequest');
    expect(logText).toContain('not valid UTF-8 JSON');
    expect(logText).toContain('agent registered');

    const everything = [logText, ...consoleText, ...strings(events)].join('\n');
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain(WRONG);
    // Not even a recognisable piece of it.
    expect(everything).not.toContain('SUPER-secret');
  });
});
