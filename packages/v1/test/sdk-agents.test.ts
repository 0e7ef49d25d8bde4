/**
 * How picket copes with the agents people run: the Zentinel Python and Go SDK v1
 * agents answer request-complete and configure with `{"success": true}` and keep
 * request state per connection (issue 21). Emulated over real Unix sockets.
 */
import { startSdkLikeV1Agent } from '@picket/compliance';
import { ErrorCode, type RequestCompleteEvent } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient, connectV1 } from '../src/index.js';
import {
  captureLogger,
  closeAll,
  headersEvent,
  onClose,
  rawAgent,
  rejection,
  responseJson,
  socketPath,
} from './helpers.js';

afterEach(closeAll);

function complete(cid: string): RequestCompleteEvent {
  return {
    correlation_id: cid,
    status: 200,
    duration_ms: 3,
    request_body_size: 0,
    response_body_size: 0,
    upstream_attempts: 1,
  };
}

/** A raw agent answering each request from `reply(event_type)`, one connection per peer. */
async function ackAgent(reply: (type: string) => unknown) {
  const path = socketPath();
  const agent = await rawAgent(path, (peer) => {
    void (async () => {
      for (;;) {
        const f = await peer.next(60_000).catch(() => undefined);
        if (f === undefined) return;
        const req = JSON.parse(Buffer.from(f).toString('utf8')) as { event_type: string };
        peer.writeJson(reply(req.event_type));
      }
    })();
  });
  onClose(() => agent.close());
  return { path, agent };
}

describe('acknowledgements instead of agent responses', () => {
  it('request-complete and configure answered {"success": true} count as allow; the connection stays open', async () => {
    const { path, agent } = await ackAgent((type) =>
      type === 'request_complete' || type === 'configure' ? { success: true } : responseJson(2),
    );
    const log = captureLogger();
    const client = new AgentClient('sdk', path, { logger: log.logger });
    onClose(() => client.close());

    expect((await client.sendEvent('request_headers', headersEvent('r1'))).decision).toBe('allow');
    const done = await client.sendEvent('request_complete', complete('r1'));
    expect(done.decision).toBe('allow');
    const configured = await client.sendEvent('configure', {
      correlation_id: '',
      config: { x: 1 },
    });
    expect(configured.decision).toBe('allow');
    // the same connection goes on serving
    expect((await client.sendEvent('request_headers', headersEvent('r2'))).decision).toBe('allow');
    expect(agent.peers).toHaveLength(1);
    expect(client.connected).toBe(true);
    const acks = log.lines.filter((l) => l.message.includes('acknowledged'));
    expect(acks.map((l) => [l.level, l.fields?.eventType])).toEqual([
      ['debug', 'request_complete'],
      ['debug', 'configure'],
    ]);
  });

  it('an acknowledgement is never accepted where a decision is required', async () => {
    const { path, agent } = await ackAgent(() => ({ success: true }));
    const client = new AgentClient('sdk', path);
    onClose(() => client.close());
    for (const [type, event] of [
      ['request_headers', headersEvent('r1')],
      [
        'request_body_chunk',
        {
          correlation_id: 'r1',
          data: new Uint8Array([104]),
          is_last: true,
          chunk_index: 0,
          bytes_received: 1,
        },
      ],
      ['response_headers', { correlation_id: 'r1', status: 200, headers: {} }],
    ] as const) {
      const e = await rejection(client.sendEvent(type, event as never));
      expect(e.code).toBe(ErrorCode.InvalidMessage);
      expect(e.message).toContain(`bad response to ${type}`);
    }
    // each invalid answer closed its connection
    expect(agent.peers).toHaveLength(3);
  });

  it('a failed acknowledgement ({"success": false, "error"}) reports the agent error, escaped, and keeps the connection', async () => {
    const { path, agent } = await ackAgent((type) =>
      type === 'configure' ? { success: false, error: 'bad key\n[fake] line' } : responseJson(2),
    );
    const client = new AgentClient('sdk', path);
    onClose(() => client.close());
    const e = await rejection(client.sendEvent('configure', { correlation_id: '', config: {} }));
    expect(e.code).toBe(ErrorCode.HandlerError);
    expect(e.message).toContain('the agent failed configure: bad key\\n[fake] line');
    expect(e.message).not.toContain('\n');
    expect((await client.sendEvent('request_headers', headersEvent('r1'))).decision).toBe('allow');
    expect(agent.peers).toHaveLength(1);
  });
});

describe('per-request connection affinity', () => {
  it('every event of a request reaches the connection that carried its headers', async () => {
    const path = socketPath();
    const agent = await startSdkLikeV1Agent(path);
    onClose(() => agent.close());
    const t = await connectV1('sdk', path, { connections: 4, timeoutMs: 30_000 });
    onClose(() => t.close());

    const one = async (i: number) => {
      const cid = `req-${i}`;
      const answers = [
        await t.send('request_headers', headersEvent(cid, `/r/${i}`)),
        await t.send('request_body_chunk', {
          correlation_id: cid,
          data: new Uint8Array([1, 2, 3]),
          is_last: true,
          chunk_index: 0,
          bytes_received: 3,
        }),
        await t.send('response_headers', { correlation_id: cid, status: 200, headers: {} }),
        await t.send('response_body_chunk', {
          correlation_id: cid,
          data: new Uint8Array([4]),
          is_last: true,
          chunk_index: 0,
          bytes_sent: 1,
        }),
        await t.send('request_complete', complete(cid)),
      ];
      return answers.map((a) => a.decision);
    };
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => one(i)));
    expect(agent.failures).toEqual([]);
    for (const r of results) expect(r).toEqual(['allow', 'allow', 'allow', 'allow', 'allow']);
    expect(agent.connections).toBe(4);
    expect(agent.acks).toBe(120);
    // request-complete released every pin
    expect(t.affinities).toBe(0);
  });

  it('a request that never completes does not pin forever: the oldest pin goes past maxAffinities, and after affinityTtlMs', async () => {
    const path = socketPath();
    const agent = await startSdkLikeV1Agent(path, { jitterMs: 0 });
    onClose(() => agent.close());
    const t = await connectV1('sdk', path, { connections: 2, maxAffinities: 3, affinityTtlMs: 50 });
    onClose(() => t.close());
    for (let i = 0; i < 5; i++) await t.send('request_headers', headersEvent(`open-${i}`));
    expect(t.affinities).toBe(3);
    await new Promise((r) => setTimeout(r, 80));
    await t.send('request_headers', headersEvent('fresh'));
    expect(t.affinities).toBe(1);
  });

  it('cancel and request-complete release pins; an unknown request is never pinned', async () => {
    const path = socketPath();
    const agent = await startSdkLikeV1Agent(path, { jitterMs: 0 });
    onClose(() => agent.close());
    const t = await connectV1('sdk', path, { connections: 2 });
    onClose(() => t.close());
    await t.send('request_headers', headersEvent('a'));
    await t.send('request_headers', headersEvent('b'));
    expect(t.affinities).toBe(2);
    await t.cancel('a');
    expect(t.affinities).toBe(1);
    // an unknown request's response-side event is not pinned, and a refused call unpins nothing else
    await t.send('response_headers', { correlation_id: 'zzz', status: 200, headers: {} });
    expect(t.affinities).toBe(1);
    await t.send('request_complete', complete('b'));
    expect(t.affinities).toBe(0);
  });
});
