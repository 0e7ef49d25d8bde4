/**
 * SpoeAgentServer over real TCP sockets with a scripted HAProxy side: the
 * handshake and health check, pipelined NOTIFYs answered out of order, the
 * answer's variables, and hostile input (garbage, oversize, truncated, unknown
 * frame types, NOTIFY before HELLO, bad HELLOs, fragmentation) closing only the
 * offending connection with the right AGENT-DISCONNECT status code.
 */
import {
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  type RequestContext,
  type RequestHeadersEvent,
  setHeader,
  silentLogger,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import {
  encodeBinaryHeaderBlock,
  encodeFrame,
  encodeKvList,
  SpoeAgentServer,
  type SpoeAgentServerOptions,
  SpopFrameFlag,
  SpopFrameType,
  type SpopKv,
  SpopStatus,
} from '../src/index.js';
import { helloFrame, helloItems, notifyFrame, Peer, requestArgs, str, u32 } from './peer.js';

const servers: SpoeAgentServer[] = [];
const peers: Peer[] = [];

afterEach(async () => {
  for (const p of peers.splice(0)) p.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const caps = () => ({
  agent_id: 't',
  name: 't',
  version: '1',
  supported_events: [1, 2],
  features: {
    streaming_body: false,
    websocket: false,
    guardrails: false,
    config_push: false,
    metrics_export: false,
    concurrent_requests: 10,
    cancellation: false,
    flow_control: false,
    health_reporting: false,
  },
  limits: { max_body_size: 1024, max_concurrency: 10, preferred_chunk_size: 1024 },
});

async function start(
  h: Partial<AgentHandler> = {},
  o: SpoeAgentServerOptions = {},
): Promise<{ server: SpoeAgentServer; port: number }> {
  const server = new SpoeAgentServer(
    { capabilities: caps, ...h },
    { port: 0, logger: silentLogger, ...o },
  );
  servers.push(server);
  const [ep] = await server.listen();
  return { server, port: Number(new URL(ep as string).port) };
}

async function peer(port: number): Promise<Peer> {
  const p = await Peer.connect(port);
  peers.push(p);
  return p;
}

const strVal = (v: unknown) => (v as { value: unknown } | undefined)?.value;

describe('handshake', () => {
  it('answers HAPROXY-HELLO with version 2.0, the smaller max-frame-size and pipelining', async () => {
    const { port, server } = await start({}, { maxFrameSize: 65532 });
    expect(server.endpoints).toEqual([`spoe://127.0.0.1:${port}`]);
    const p = await peer(port);
    const hello = await p.hello();
    expect(strVal(hello.get('version'))).toBe('2.0');
    expect(hello.get('max-frame-size')).toEqual({ type: 'uint32', value: 16380 });
    expect(strVal(hello.get('capabilities'))).toBe('pipelining');
    const q = await peer(port);
    const small = await q.hello(helloItems({ maxFrameSize: 100_000 }));
    expect(small.get('max-frame-size')).toEqual({ type: 'uint32', value: 65532 });
  });

  it('health check (healthcheck=true): AGENT-HELLO, then the agent closes', async () => {
    const { port, server } = await start();
    const p = await peer(port);
    await p.hello(helloItems({ healthcheck: true }));
    await p.closedPromise;
    expect(server.stats.healthchecks).toBe(1);
    expect(server.stats.hellos).toBe(0);
  });

  it.each([
    ['supported-versions missing', 'supported-versions', undefined, SpopStatus.NoVersion],
    ['max-frame-size missing', 'max-frame-size', undefined, SpopStatus.NoMaxFrameSize],
    ['capabilities missing', 'capabilities', undefined, SpopStatus.NoCapabilities],
    ['version 1.0 only', 'supported-versions', str('1.0'), SpopStatus.BadVersion],
    ['max-frame-size 100', 'max-frame-size', u32(100), SpopStatus.BadFrameSize],
    ['versions not a string', 'supported-versions', u32(2), SpopStatus.Invalid],
  ] as const)(
    'refuses a HELLO with %s (AGENT-DISCONNECT status)',
    async (_n, item, value, status) => {
      const { port } = await start();
      const p = await peer(port);
      const items = helloItems().filter(([k]) => k !== item);
      if (value !== undefined) items.push([item, value]);
      p.send(helloFrame(items));
      const d = await p.disconnect();
      expect(d.status).toBe(status);
      expect(d.message).toContain(item);
      await p.closedPromise;
    },
  );

  it('a connection that sends no HELLO is disconnected with status 2 (timeout)', async () => {
    const { port } = await start({}, { helloTimeoutMs: 100 });
    const p = await peer(port);
    const d = await p.disconnect();
    expect(d.status).toBe(SpopStatus.Timeout);
    await p.closedPromise;
  });

  it('answers HAPROXY-DISCONNECT with AGENT-DISCONNECT status 0 and closes', async () => {
    const { port } = await start();
    const p = await peer(port);
    await p.hello();
    p.send(
      encodeFrame({
        type: SpopFrameType.HaproxyDisconnect,
        payload: encodeKvList([
          ['status-code', u32(0)],
          ['message', str('normal')],
        ]),
      }),
    );
    expect(await p.disconnect()).toEqual({ status: 0, message: 'normal' });
    await p.closedPromise;
  });
});

describe('NOTIFY / ACK', () => {
  it('maps the message to a RequestHeadersEvent and the answer to variables', async () => {
    const seen: RequestHeadersEvent[] = [];
    let transport = '';
    const { port } = await start({
      onRequestHeaders(e: RequestHeadersEvent, ctx: RequestContext): AgentResponse {
        seen.push(e);
        transport = ctx.transport;
        return allow({ requestHeaders: [setHeader('X-User', 'alice')] });
      },
    });
    const p = await peer(port);
    await p.hello();
    p.send(
      notifyFrame(
        7,
        1,
        requestArgs('/a/b', [
          ['query', str('x=1')],
          ['port', { type: 'int32', value: 5555 }],
          ['headers', { type: 'binary', value: encodeBinaryHeaderBlock([['host', 'h.test']]) }],
          ['ver', str('1.1')],
        ]),
      ),
    );
    const ack = await p.ack();
    expect(ack.streamId).toBe(7);
    expect(ack.frameId).toBe(1);
    expect(strVal(ack.vars.get('decision'))).toBe('allow');
    expect(strVal(ack.vars.get('req.set.x_user'))).toBe('alice');
    expect(transport).toBe('spoe');
    expect(seen[0]).toMatchObject({
      method: 'GET',
      uri: '/a/b?x=1',
      headers: { host: ['h.test'] },
      metadata: { client_ip: '10.1.2.3', client_port: 5555, protocol: 'HTTP/1.1' },
    });
  });

  it('block and redirect set status, body and location', async () => {
    const { port } = await start({
      onRequestHeaders: (e) =>
        e.uri === '/r'
          ? { ...allow(), decision: { redirect: { url: 'https://x.test/', status: 307 } } }
          : block(451, { body: 'gone' }),
    });
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/b')));
    const b = await p.ack();
    expect(strVal(b.vars.get('decision'))).toBe('block');
    expect(b.vars.get('status')).toEqual({ type: 'int32', value: 451 });
    expect(strVal(b.vars.get('body'))).toBe('gone');
    p.send(notifyFrame(2, 1, requestArgs('/r')));
    const r = await p.ack();
    expect(strVal(r.vars.get('decision'))).toBe('redirect');
    expect(r.vars.get('status')).toEqual({ type: 'int32', value: 307 });
    expect(strVal(r.vars.get('location'))).toBe('https://x.test/');
  });

  it('pipelining: NOTIFYs in flight together are ACKed out of order with their own ids', async () => {
    const { port, server } = await start({
      async onRequestHeaders(e) {
        const n = Number(e.uri.slice(1));
        await new Promise((r) => setTimeout(r, (4 - n) * 60));
        return allow({ requestHeaders: [setHeader('x-n', String(n))] });
      },
    });
    const p = await peer(port);
    await p.hello();
    for (const n of [1, 2, 3]) p.send(notifyFrame(100 + n, n, requestArgs(`/${n}`)));
    const acks = [await p.ack(), await p.ack(), await p.ack()];
    expect(acks.map((a) => a.streamId)).toEqual([103, 102, 101]);
    for (const a of acks) {
      expect(a.frameId).toBe(a.streamId - 100);
      expect(strVal(a.vars.get('req.set.x_n'))).toBe(String(a.frameId));
    }
    expect(server.stats.peakInFlight).toBe(3);
  });

  it('a handler exception is answered with the handler-error block, never allow', async () => {
    const { port } = await start({
      onRequestHeaders: () => {
        throw new Error('boom');
      },
    });
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/')));
    const a = await p.ack();
    expect(strVal(a.vars.get('decision'))).toBe('block');
    expect(a.vars.get('status')).toEqual({ type: 'int32', value: 500 });
    expect(strVal(a.vars.get('reason'))).toBe('AGENT_HANDLER_ERROR');
  });

  it('a message without method/path is answered with the invalid-event block', async () => {
    const { port } = await start({ onRequestHeaders: () => allow() });
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, [['path', str('/')]]));
    const a = await p.ack();
    expect(strVal(a.vars.get('decision'))).toBe('block');
    expect(strVal(a.vars.get('reason'))).toBe('AGENT_INVALID_EVENT');
  });

  it('a header value with CRLF or an answer larger than the frame becomes the error block', async () => {
    const { port } = await start({
      onRequestHeaders: (e) =>
        e.uri === '/crlf'
          ? allow({ requestHeaders: [setHeader('x-a', 'v\r\nInjected: 1')] })
          : block(403, { body: 'x'.repeat(20_000) }),
    });
    const p = await peer(port);
    await p.hello(); // max-frame-size 16380
    p.send(notifyFrame(1, 1, requestArgs('/crlf')));
    const crlf = await p.ack();
    expect(strVal(crlf.vars.get('decision'))).toBe('block');
    expect(crlf.vars.get('status')).toEqual({ type: 'int32', value: 500 });
    expect(crlf.vars.has('req.set.x_a')).toBe(false);
    p.send(notifyFrame(2, 1, requestArgs('/big')));
    const big = await p.ack();
    expect(big.vars.get('status')).toEqual({ type: 'int32', value: 500 });
    expect(strVal(big.vars.get('reason'))).toBe('AGENT_HANDLER_ERROR');
  });

  it('a body argument becomes a request_body_chunk after an allowing header answer', async () => {
    const { port } = await start({
      onRequestHeaders: () => allow({ requestHeaders: [setHeader('x-h', '1')] }),
      onRequestBodyChunk: (e) => (Buffer.from(e.data).toString() === 'bad' ? block(403) : allow()),
    });
    const p = await peer(port);
    await p.hello();
    p.send(
      notifyFrame(1, 1, requestArgs('/', [['body', { type: 'binary', value: Buffer.from('ok') }]])),
    );
    const ok = await p.ack();
    expect(strVal(ok.vars.get('decision'))).toBe('allow');
    expect(strVal(ok.vars.get('req.set.x_h'))).toBe('1');
    p.send(
      notifyFrame(
        2,
        1,
        requestArgs('/', [['body', { type: 'binary', value: Buffer.from('bad') }]]),
      ),
    );
    expect(strVal((await p.ack()).vars.get('decision'))).toBe('block');
  });

  it('a NOTIFY without the configured message is acknowledged without actions', async () => {
    const { port } = await start();
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/'), { message: 'other' }));
    expect((await p.ack()).vars.size).toBe(0);
  });

  it('a NOTIFY with FIN|ABORT cancels the one in flight: signal, onCancel, no ACK', async () => {
    let signal: AbortSignal | undefined;
    let finish: (() => void) | undefined;
    const cancels: string[] = [];
    const { port } = await start({
      onRequestHeaders: (e, ctx) => {
        if (e.uri !== '/hold') return allow();
        signal = ctx.signal;
        return new Promise<AgentResponse>((resolve) => {
          finish = () => resolve(allow());
        });
      },
      onCancel: (id, reason) => cancels.push(`${id} ${reason}`),
    });
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(4, 2, requestArgs('/hold')));
    await expect.poll(() => finish).toBeDefined();
    const abort = SpopFrameFlag.Fin | SpopFrameFlag.Abort;
    p.send(notifyFrame(4, 2, [], { flags: abort }));
    p.send(notifyFrame(8, 8, [], { flags: abort })); // nothing in flight there: ignored
    await expect.poll(() => signal?.aborted).toBe(true);
    expect(cancels).toEqual([expect.stringMatching(/-4-2 manual$/)]);
    finish?.();
    p.send(notifyFrame(5, 1, requestArgs('/next')));
    // the first frame back is the ACK of the next NOTIFY: the aborted one got none
    expect((await p.ack()).streamId).toBe(5);
  });

  it('ABORT without FIN → status 4', async () => {
    const { port } = await start();
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/'), { flags: SpopFrameFlag.Abort }));
    expect((await p.disconnect()).status).toBe(SpopStatus.Invalid);
  });

  it('ctx.signal aborts when the connection goes away', async () => {
    let signal: AbortSignal | undefined;
    const { port } = await start({
      onRequestHeaders: (_e, ctx) => {
        signal = ctx.signal;
        return new Promise<AgentResponse>(() => undefined);
      },
    });
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/')));
    await expect.poll(() => signal).toBeDefined();
    p.close();
    await expect.poll(() => signal?.aborted).toBe(true);
  });
});

describe('hostile input closes only the offending connection', () => {
  async function expectOthersUnaffected(port: number, good: Peer): Promise<void> {
    good.send(notifyFrame(9, 9, requestArgs('/')));
    const a = await good.ack();
    expect(a.streamId).toBe(9);
    // and a new connection is served too
    const fresh = await peer(port);
    await fresh.hello();
    fresh.send(notifyFrame(3, 4, requestArgs('/')));
    expect(await fresh.ack()).toMatchObject({ streamId: 3, frameId: 4 });
  }

  it.each([
    [
      'garbage (an HTTP request)',
      () => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      SpopStatus.TooBig,
    ],
    ['NOTIFY before HELLO', () => notifyFrame(1, 1, requestArgs('/')), SpopStatus.Invalid],
    ['an unknown frame type before HELLO', () => encodeFrame({ type: 42 }), SpopStatus.Invalid],
    ['a frame too short for its header', () => Uint8Array.of(0, 0, 0, 2, 1, 0), SpopStatus.Invalid],
    [
      'a HELLO larger than max-frame-size',
      () => {
        const f = helloFrame();
        const big = new Uint8Array(70_000);
        big.set(f);
        new DataView(big.buffer).setUint32(0, 70_000 - 4);
        return big;
      },
      SpopStatus.TooBig,
    ],
  ] as const)('%s → AGENT-DISCONNECT', async (_name, bytes, status) => {
    const { port } = await start();
    const good = await peer(port);
    await good.hello();
    const bad = await peer(port);
    bad.send(bytes());
    const d = await bad.disconnect();
    expect(d.status).toBe(status);
    expect(d.message.length).toBeGreaterThan(0);
    await bad.closedPromise;
    await expectOthersUnaffected(port, good);
  });

  it('after HELLO: an oversize frame (over the negotiated size) → status 3', async () => {
    const { port } = await start();
    const good = await peer(port);
    await good.hello();
    const bad = await peer(port);
    await bad.hello(helloItems({ maxFrameSize: 1024 }));
    bad.send(
      notifyFrame(
        1,
        1,
        requestArgs('/', [['body', { type: 'binary', value: new Uint8Array(2000) }]]),
      ),
    );
    const d = await bad.disconnect();
    expect(d.status).toBe(SpopStatus.TooBig);
    expect(d.message).toMatch(/exceeds max-frame-size 1024/);
    await expectOthersUnaffected(port, good);
  });

  it('after HELLO: fragmented NOTIFY (no FIN) or an UNSET frame → status 10', async () => {
    const { port } = await start();
    const good = await peer(port);
    await good.hello();
    for (const frame of [
      notifyFrame(1, 1, requestArgs('/'), { flags: 0 }),
      encodeFrame({ type: SpopFrameType.Unset, streamId: 1, frameId: 1, flags: SpopFrameFlag.Fin }),
    ]) {
      const bad = await peer(port);
      await bad.hello();
      bad.send(frame);
      expect((await bad.disconnect()).status).toBe(SpopStatus.FragmentationNotSupported);
    }
    await expectOthersUnaffected(port, good);
  });

  it('after HELLO: a truncated NOTIFY payload, an agent frame, a second HELLO → status 4', async () => {
    const { port } = await start();
    const good = await peer(port);
    await good.hello();
    const truncated = encodeFrame({
      type: SpopFrameType.Notify,
      streamId: 1,
      frameId: 1,
      payload: Uint8Array.of(6, ...Buffer.from('picket'), 3, 1, 0x61),
    });
    for (const frame of [truncated, encodeFrame({ type: SpopFrameType.Ack }), helloFrame()]) {
      const bad = await peer(port);
      await bad.hello();
      bad.send(frame);
      expect((await bad.disconnect()).status).toBe(SpopStatus.Invalid);
    }
    await expectOthersUnaffected(port, good);
  });

  it('after HELLO: an unknown frame type is skipped (SPOE.txt 3.2.2) and the connection goes on', async () => {
    const { port } = await start();
    const p = await peer(port);
    await p.hello();
    p.send(encodeFrame({ type: 42, payload: Uint8Array.of(1, 2, 3) }));
    p.send(notifyFrame(5, 1, requestArgs('/')));
    expect((await p.ack()).streamId).toBe(5);
  });

  it('a NOTIFY reusing the ids of one in flight → status 4', async () => {
    const { port } = await start({ onRequestHeaders: () => new Promise(() => undefined) });
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/')));
    p.send(notifyFrame(1, 1, requestArgs('/')));
    const d = await p.disconnect();
    expect(d.status).toBe(SpopStatus.Invalid);
    expect(d.message).toMatch(/already being handled/);
  });

  it('a frame cut off by the peer closing: the connection is cleaned up, others go on', async () => {
    const { port, server } = await start();
    const good = await peer(port);
    await good.hello();
    const bad = await peer(port);
    await bad.hello();
    const frame = notifyFrame(1, 1, requestArgs('/'));
    bad.send(frame.subarray(0, 10));
    bad.socket.end();
    await bad.closedPromise;
    await expect.poll(() => server.stats.connections).toBe(1);
    await expectOthersUnaffected(port, good);
  });
});

describe('flow control', () => {
  it('maxInFlight is a hard bound: frames past it wait unread until an answer goes out', async () => {
    const release: (() => void)[] = [];
    const { port, server } = await start(
      {
        onRequestHeaders: () =>
          new Promise<AgentResponse>((resolve) => release.push(() => resolve(allow()))),
      },
      { maxInFlight: 2 },
    );
    const p = await peer(port);
    await p.hello();
    // five NOTIFYs in one write: they arrive in one chunk
    p.send(Buffer.concat([1, 2, 3, 4, 5].map((n) => notifyFrame(n, 1, requestArgs('/')))));
    await expect.poll(() => server.stats.notifies).toBe(2);
    await new Promise((r) => setTimeout(r, 100));
    expect(server.stats.notifies).toBe(2);
    const ids: number[] = [];
    while (ids.length < 5) {
      await expect.poll(() => release.length).toBeGreaterThan(0);
      release.shift()?.();
      ids.push((await p.ack()).streamId);
    }
    expect(ids.sort()).toEqual([1, 2, 3, 4, 5]);
    expect(server.stats.peakInFlight).toBe(2);
  });

  it('a peer that does not read its ACKs stops being read (no unbounded write buffer)', async () => {
    const n = 2000;
    const { port, server } = await start({
      onRequestHeaders: () => block(403, { body: 'x'.repeat(12_000) }),
    });
    const p = await peer(port);
    await p.hello();
    p.socket.pause(); // reads nothing from now on
    const pad: SpopKv = ['pad', str('p'.repeat(1000))];
    p.send(
      Buffer.concat(
        Array.from({ length: n }, (_, i) => notifyFrame(i + 1, 1, requestArgs('/', [pad]))),
      ),
    );
    // wait until the server stops taking NOTIFYs
    let last = -1;
    await expect
      .poll(
        async () => {
          const now = server.stats.notifies;
          const stable = now === last && now > 0;
          last = now;
          await new Promise((r) => setTimeout(r, 300));
          return stable;
        },
        { timeout: 20_000 },
      )
      .toBe(true);
    expect(server.stats.notifies).toBeLessThan(n);
    // reading again lets every NOTIFY through
    p.socket.resume();
    let acks = 0;
    while (acks < n) {
      await p.ack();
      acks++;
    }
    expect(server.stats.notifies).toBe(n);
  });
});

describe('AgentServer role', () => {
  it('close() sends AGENT-DISCONNECT to connected peers and empties endpoints', async () => {
    const { port, server } = await start();
    const p = await peer(port);
    await p.hello();
    await server.close();
    expect(await p.disconnect()).toMatchObject({ status: 0 });
    expect(server.endpoints).toEqual([]);
    await server.close(); // idempotent
  });

  it('drain() lets an in-flight NOTIFY answer, then disconnects', async () => {
    let release: (() => void) | undefined;
    const { port, server } = await start({
      onRequestHeaders: () =>
        new Promise<AgentResponse>((resolve) => {
          release = () => resolve(allow());
        }),
    });
    const p = await peer(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/')));
    await expect.poll(() => release).toBeDefined();
    const drained = server.drain(10_000);
    release?.();
    expect(strVal((await p.ack()).vars.get('decision'))).toBe('allow');
    expect((await p.disconnect()).status).toBe(0);
    await drained;
  });

  it('maxConnections: a connection over the cap is closed at accept, logged once', async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (m: string) => warnings.push(m) };
    const { port } = await start({}, { maxConnections: 1, logger });
    const first = await peer(port);
    await first.hello();
    for (let i = 0; i < 3; i++) {
      const extra = await peer(port);
      await extra.closedPromise;
    }
    expect(warnings.filter((w) => w.includes('connection limit'))).toHaveLength(1);
    first.send(notifyFrame(1, 1, requestArgs('/')));
    expect((await first.ack()).streamId).toBe(1);
  });

  it('refuses bad options naming them', () => {
    const h = { capabilities: caps };
    expect(() => new SpoeAgentServer(h, { maxFrameSize: 100 })).toThrow(/maxFrameSize/);
    expect(() => new SpoeAgentServer(h, { varScope: 'proc' as 'txn' })).toThrow(/varScope/);
    expect(() => new SpoeAgentServer(h, { errorPolicy: 'allow' as 'block' })).toThrow(
      /never becomes allow/,
    );
  });
});
