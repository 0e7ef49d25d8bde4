import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { cid, requestHeaders } from '@picket/compliance';
import { encodeFrame } from '@picket/framing';
import { MessageType } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  connectReverse,
  type RegistrationRejection,
  type ReverseConnection,
  ReverseConnectionListener,
} from '../src/index.js';
import { captureLogger, registration, registrationFrame, stampHandler, until } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Junk = 'random' | 'idle' | 'truncated' | 'wrong-type' | 'bad-json';
const KINDS: Junk[] = ['random', 'idle', 'truncated', 'wrong-type', 'bad-json'];

function junkBytes(kind: Junk): Buffer | undefined {
  switch (kind) {
    case 'random':
      return randomBytes(1 + Math.floor(Math.random() * 64));
    case 'idle':
      return undefined;
    case 'truncated': {
      const full = registrationFrame(registration());
      return full.subarray(0, 1 + Math.floor(Math.random() * (full.length - 2)));
    }
    case 'wrong-type':
      return Buffer.from(encodeFrame(MessageType.AgentResponse, Buffer.from('{"version":2}')));
    case 'bad-json':
      return Buffer.from(encodeFrame(MessageType.HandshakeRequest, Buffer.from('{"agent_id":')));
  }
}

/** One junk peer: connects, sends its junk (or nothing), resolves when the proxy has closed it. */
function junkPeer(port: number, kind: Junk): Promise<void> {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    s.on('error', () => {});
    s.on('data', () => {});
    s.once('close', () => resolve());
    s.once('connect', () => {
      const bytes = junkBytes(kind);
      if (bytes !== undefined) s.write(bytes);
    });
  });
}

describe('a flood of junk and half-open registrations', () => {
  it('1 000 bad peers leave the listener serving good agents, with nothing leaked', {
    timeout: 30_000,
  }, async () => {
    const log = captureLogger();
    const listener = await ReverseConnectionListener.bindTcp('127.0.0.1:0', {
      handshakeTimeout: 250,
      logger: log,
    });
    cleanups.push(() => listener.close());
    const rejected: RegistrationRejection[] = [];
    listener.on('rejected', (r) => rejected.push(r));
    const { port } = listener.address();
    const agentOptions = {
      endpoint: listener.endpoint,
      handler: stampHandler('good'),
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      logger: captureLogger(),
    };

    const first = connectReverse({ ...agentOptions, agentId: 'good-1' });
    cleanups.push(() => first.stop());
    await first.ready({ timeoutMs: 5000 });

    // The flood: 1000 peers, up to 200 at a time, each kind in turn.
    const total = 1000;
    let started = 0;
    const calls: Promise<unknown>[] = [];
    let second: ReturnType<typeof connectReverse> | undefined;
    const worker = async (): Promise<void> => {
      while (started < total) {
        const n = started++;
        if (n === total / 2) {
          // Mid-flood: a second agent registers and the first keeps answering.
          second = connectReverse({ ...agentOptions, agentId: 'good-2' });
          cleanups.push(() => second?.stop());
          const conn = listener.list('good-1')[0] as ReverseConnection;
          calls.push(
            conn.sendRequestHeaders(requestHeaders(cid(), '/during'), { timeoutMs: 10_000 }),
          );
        }
        await junkPeer(port, KINDS[n % KINDS.length] as Junk);
      }
    };
    await Promise.all(Array.from({ length: 200 }, worker));
    for (const r of await Promise.all(calls)) expect(r).toMatchObject({ decision: 'allow' });

    await (second as ReturnType<typeof connectReverse>).ready({ timeoutMs: 10_000 });
    // After the flood: a third agent registers, and every good one answers.
    const third = connectReverse({ ...agentOptions, agentId: 'good-3' });
    cleanups.push(() => third.stop());
    await third.ready({ timeoutMs: 5000 });
    for (const id of ['good-1', 'good-2', 'good-3']) {
      const conn = listener.list(id)[0] as ReverseConnection;
      const r = await conn.sendRequestHeaders(requestHeaders(cid(), '/after'), { timeoutMs: 5000 });
      expect(r.request_headers).toContainEqual({ set: { name: 'x-agent', value: 'good' } });
    }

    // Every junk socket is gone: only the three good connections remain open.
    await until(
      async () =>
        listener.pendingCount === 0 &&
        listener.socketCount === 3 &&
        (await listener.getSocketCount()) === 3,
      10_000,
      'the junk sockets to be released',
    );
    expect(listener.connectionCount).toBe(3);
    expect(listener.stats.registered).toBeGreaterThanOrEqual(3);
    // Every junk peer was dropped without a response, with its reason logged.
    const dropped = rejected.filter((r) => !r.responded);
    expect(dropped.length).toBeGreaterThanOrEqual(total);
    expect(rejected.filter((r) => r.responded)).toHaveLength(0);
    expect(new Set(dropped.map((r) => r.stage))).toEqual(
      new Set(['read', 'decode', ...(dropped.some((r) => r.stage === 'accept') ? ['accept'] : [])]),
    );
    expect(log.entries.filter((e) => e.message.startsWith('dropping')).length).toBe(dropped.length);
    expect(first.status().registrations).toBe(1);
  });
});
