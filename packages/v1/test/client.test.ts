import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../src/index.js';
import {
  cleanupDirs,
  headersEvent,
  type RawPeer,
  rawAgent,
  rejection,
  responseJson,
  socketPath,
  until,
  utf8,
} from './helpers.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  cleanupDirs();
});

/** A fake agent whose reply to each request is decided by `reply`. */
async function fakeAgent(reply: (peer: RawPeer, request: Record<string, unknown>) => void) {
  const path = socketPath();
  const agent = await rawAgent(path, (peer) => {
    void (async () => {
      for (;;) {
        const f = await peer.next(60_000).catch(() => undefined);
        if (f === undefined) return;
        reply(peer, JSON.parse(Buffer.from(f).toString()) as Record<string, unknown>);
      }
    })();
  });
  closers.push(() => agent.close());
  return { path, agent };
}

async function connect(path: string, o: ConstructorParameters<typeof AgentClient>[2] = {}) {
  const c = await AgentClient.unixSocket('fake', path, { timeoutMs: 5000, ...o });
  closers.push(() => c.close());
  return c;
}

const cidOf = (req: Record<string, unknown>): string =>
  ((req.payload as { metadata: { correlation_id: string } }).metadata.correlation_id as string) ??
  '';

describe('AgentClient', () => {
  it('accepts response version 2 (what the Python/Go SDKs send)', async () => {
    const { path } = await fakeAgent((p) => p.writeJson(responseJson(2, 'v2')));
    const c = await connect(path);
    const r = await c.sendEvent('request_headers', headersEvent('a'));
    expect(r.version).toBe(2);
    expect(r.audit.tags).toEqual(['v2']);
  });

  it('reports version 3 as VERSION_MISMATCH, closes the connection and reconnects next time', async () => {
    let version = 3;
    const { path, agent } = await fakeAgent((p) => p.writeJson(responseJson(version)));
    const c = await connect(path);
    const err = await rejection(c.sendEvent('request_headers', headersEvent('a')));
    expect(err.code).toBe('VERSION_MISMATCH');
    expect(err.message).toContain('3');
    await agent.peers[0]?.waitClosed();
    version = 1;
    const r = await c.sendEvent('request_headers', headersEvent('b'));
    expect(r.version).toBe(1);
    expect(agent.peers).toHaveLength(2);
  });

  it('serialises concurrent calls: one request on the wire at a time, answers in order', async () => {
    let outstanding = 0;
    let maxOutstanding = 0;
    const { path } = await fakeAgent((p, req) => {
      outstanding++;
      maxOutstanding = Math.max(maxOutstanding, outstanding);
      setTimeout(() => {
        outstanding--;
        p.writeJson(responseJson(1, cidOf(req)));
      }, 5);
    });
    const c = await connect(path);
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    const replies = await Promise.all(
      ids.map((id) => c.sendEvent('request_headers', headersEvent(id))),
    );
    expect(replies.map((r) => r.audit.tags[0])).toEqual(ids);
    expect(maxOutstanding).toBe(1);
    expect(c.pending).toBe(0);
  });

  it('times out a silent agent, closes the connection, and the next call reconnects', async () => {
    let answer = false;
    const { path, agent } = await fakeAgent((p) => {
      if (answer) p.writeJson(responseJson(1));
    });
    const c = await connect(path);
    const err = await rejection(
      c.sendEvent('request_headers', headersEvent('a'), { timeoutMs: 100 }),
    );
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('connection closed');
    await agent.peers[0]?.waitClosed();
    answer = true;
    const r = await c.sendEvent('request_headers', headersEvent('b'));
    expect(r.decision).toBe('allow');
    expect(agent.peers).toHaveLength(2);
  });

  it('a call queued behind a hung one times out without waiting forever', async () => {
    const { path } = await fakeAgent(() => {});
    const c = await connect(path);
    const first = rejection(c.sendEvent('request_headers', headersEvent('a'), { timeoutMs: 200 }));
    const second = rejection(c.sendEvent('request_headers', headersEvent('b'), { timeoutMs: 50 }));
    expect((await second).code).toBe('TIMEOUT');
    expect((await first).code).toBe('TIMEOUT');
  });

  it('with reconnect: false, calls after a dropped connection fail with CONNECTION_CLOSED', async () => {
    const { path } = await fakeAgent(() => {});
    const c = await connect(path, { reconnect: false });
    const err = await rejection(
      c.sendEvent('request_headers', headersEvent('a'), { timeoutMs: 50 }),
    );
    expect(err.code).toBe('TIMEOUT');
    const later = await rejection(c.sendEvent('request_headers', headersEvent('b')));
    expect(later.code).toBe('CONNECTION_CLOSED');
    expect(later.message).toContain('reconnect is disabled');
  });

  it('rejects with CANCELLED when the signal aborts and closes the connection', async () => {
    const { path, agent } = await fakeAgent(() => {});
    const c = await connect(path);
    const ac = new AbortController();
    const call = rejection(
      c.sendEvent('request_headers', headersEvent('a'), { signal: ac.signal }),
    );
    await until(() => (agent.peers[0]?.received.length ?? 0) > 0, 'the request to arrive');
    ac.abort();
    expect((await call).code).toBe('CANCELLED');
    await agent.peers[0]?.waitClosed();
  });

  it('timeoutMs Infinity sets no limit of its own: the call outlives the default timeout', async () => {
    const { path } = await fakeAgent((p) => {
      setTimeout(() => p.writeJson(responseJson(1)), 150);
    });
    const c = await connect(path, { timeoutMs: 30 });
    const r = await c.sendEvent('request_headers', headersEvent('a'), {
      timeoutMs: Number.POSITIVE_INFINITY,
    });
    expect(r.decision).toBe('allow');
    // a finite timeout still applies
    const err = await rejection(c.sendEvent('request_headers', headersEvent('b')));
    expect(err.code).toBe('TIMEOUT');
  });

  it('rejects bad JSON in a response with INVALID_MESSAGE', async () => {
    const { path } = await fakeAgent((p) => {
      const body = utf8('{not json');
      const frame = Buffer.alloc(4 + body.length);
      frame.writeUInt32BE(body.length, 0);
      frame.set(body, 4);
      p.write(frame);
    });
    const c = await connect(path);
    const err = await rejection(c.sendEvent('request_headers', headersEvent('a')));
    expect(err.code).toBe('INVALID_MESSAGE');
    expect(err.message).toContain('fake');
  });

  it('rejects a response without a decision with INVALID_MESSAGE', async () => {
    const { path } = await fakeAgent((p) => p.writeJson({ version: 1 }));
    const c = await connect(path);
    const err = await rejection(c.sendEvent('request_headers', headersEvent('a')));
    expect(err.code).toBe('INVALID_MESSAGE');
    expect(err.message).toContain('decision');
  });

  it('rejects an oversize length prefix with MESSAGE_TOO_LARGE', async () => {
    const { path } = await fakeAgent((p) => p.write(Buffer.from([0xff, 0xff, 0xff, 0xff])));
    const c = await connect(path);
    const err = await rejection(c.sendEvent('request_headers', headersEvent('a')));
    expect(err.code).toBe('MESSAGE_TOO_LARGE');
  });

  it('treats a second, unsolicited frame as a protocol error that closes the connection', async () => {
    const { path, agent } = await fakeAgent((p) => {
      p.writeJson(responseJson(1));
      p.writeJson(responseJson(1));
    });
    const c = await connect(path);
    await c.sendEvent('request_headers', headersEvent('a'));
    await agent.peers[0]?.waitClosed();
    expect(c.connected).toBe(false);
  });

  it('reports an agent that hangs up mid-call as CONNECTION_CLOSED', async () => {
    const { path } = await fakeAgent((p) => p.destroy());
    const c = await connect(path);
    const err = await rejection(c.sendEvent('request_headers', headersEvent('a')));
    expect(err.code).toBe('CONNECTION_CLOSED');
  });

  it('refuses a request larger than maxMessageSize without touching the connection', async () => {
    const { path } = await fakeAgent((p) => p.writeJson(responseJson(1)));
    const c = await connect(path, { maxMessageSize: 200 });
    const big = headersEvent('a', `/${'x'.repeat(500)}`);
    const err = await rejection(c.sendEvent('request_headers', big));
    expect(err.code).toBe('MESSAGE_TOO_LARGE');
    expect(c.connected).toBe(true);
  });

  it('fails to connect to a missing socket with CONNECTION_FAILED', async () => {
    const err = await rejection(AgentClient.unixSocket('ghost', socketPath('missing.sock')));
    expect(err.code).toBe('CONNECTION_FAILED');
    expect(err.message).toContain('ghost');
  });

  it('close() rejects queued and in-flight calls with CONNECTION_CLOSED', async () => {
    const { path } = await fakeAgent(() => {});
    const c = await connect(path);
    const calls = ['a', 'b'].map((id) =>
      rejection(c.sendEvent('request_headers', headersEvent(id))),
    );
    await c.close();
    for (const err of await Promise.all(calls)) expect(err.code).toBe('CONNECTION_CLOSED');
    expect((await rejection(c.sendEvent('request_headers', headersEvent('c')))).code).toBe(
      'CONNECTION_CLOSED',
    );
  });
});
