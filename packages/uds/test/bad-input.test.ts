import {
  AGENT_HANDLER_ERROR,
  AGENT_INVALID_EVENT,
  allow,
  HANDLER_ERROR_BODY,
  MessageType,
  PICKET_ERROR_TAG,
} from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, type ErrorPolicy, UdsAgentServerV2 } from '../src/index.js';
import {
  captureLogger,
  golden,
  handler,
  RawPeer,
  rawFrame,
  requestHeaders,
  tempSocket,
  until,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(
  o: {
    errorPolicy?: ErrorPolicy;
    handshakeTimeoutMs?: number;
    hooks?: Parameters<typeof handler>[0];
  } = {},
) {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const logger = captureLogger();
  const server = new UdsAgentServerV2(tmp.path, handler(o.hooks ?? {}), {
    logger,
    errorPolicy: o.errorPolicy,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
  });
  await server.listen();
  cleanups.push(() => server.close({ drainTimeoutMs: 100 }));
  return { server, logger, path: tmp.path };
}

/** A raw proxy that has completed the golden handshake. */
async function handshaken(path: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(path);
  cleanups.push(() => peer.destroy());
  peer.write(golden('V1'));
  expect((await peer.frame(0)).type).toBe(MessageType.HandshakeResponse);
  return peer;
}

function json(f: { payload: Uint8Array }) {
  return JSON.parse(Buffer.from(f.payload).toString('utf8'));
}

const oversize = Buffer.from([0x01, 0x00, 0x00, 0x01, 0x10]); // length 16 MiB + 1
const zeroLength = Buffer.from([0x00, 0x00, 0x00, 0x00]);
const unknownType = rawFrame(0xf0, '{}'); // the docs' "Ping", not a live type

describe('bad frames close only the offending connection', () => {
  it.each([
    ['an oversize length', oversize, 'FRAME_TOO_LARGE'],
    ['a zero length', zeroLength, 'ZERO_LENGTH'],
    ['an unknown type byte', unknownType, 'UNKNOWN_TYPE'],
  ])('%s', async (_name, bytes, reason) => {
    const { server, logger, path } = await startServer();
    const bad = await handshaken(path);
    const good = await handshaken(path);
    await until(() => server.connections.size === 2);

    bad.write(bytes);
    await bad.closed();
    await until(() => server.connections.size === 1);
    const entry = logger.entries.find(
      (e) => e.level === 'warn' && String(e.fields?.reason).includes(reason),
    );
    expect(entry, logger.text()).toBeDefined();
    expect(String(entry?.fields?.reason)).toContain(String(entry?.fields?.connection));

    good.write(golden('V3'));
    const reply = json(await good.frame(1));
    expect(reply.audit.custom.correlation_id).toBe('req-1');
  });

  it('invalid JSON in the handshake closes that connection without a reply', async () => {
    const { logger, path } = await startServer();
    const bad = await RawPeer.connect(path);
    cleanups.push(() => bad.destroy());
    const good = await handshaken(path);
    bad.write(rawFrame(MessageType.HandshakeRequest, 'not-json!!'));
    await bad.closed();
    expect(bad.frames).toHaveLength(0);
    expect(logger.text()).toMatch(/undecodable handshake request/);
    good.write(golden('V7'));
    expect((await good.frame(1)).type).toBe(MessageType.Pong);
  });

  it('a first frame other than 0x01 is closed without a reply', async () => {
    const { logger, path } = await startServer();
    const peer = await RawPeer.connect(path);
    cleanups.push(() => peer.destroy());
    peer.write(golden('V3'));
    await peer.closed();
    expect(peer.frames).toHaveLength(0);
    expect(logger.text()).toMatch(/expected HandshakeRequest \(0x01\).*RequestHeaders \(0x10\)/);
  });

  it('a client that never handshakes is closed after handshakeTimeoutMs', async () => {
    const { logger, path } = await startServer({ handshakeTimeoutMs: 100 });
    const peer = await RawPeer.connect(path);
    cleanups.push(() => peer.destroy());
    await peer.closed();
    expect(logger.text()).toMatch(/no handshake request in time/);
  });

  it('a hung onHandshake hook is bounded by handshakeTimeoutMs too', async () => {
    const { logger, path } = await startServer({
      handshakeTimeoutMs: 100,
      hooks: { onHandshake: () => new Promise(() => {}) },
    });
    const peer = await RawPeer.connect(path);
    cleanups.push(() => peer.destroy());
    peer.write(golden('V1'));
    await peer.closed();
    expect(peer.frames).toHaveLength(0);
    expect(logger.text()).toMatch(/onHandshake did not decide in time/);
  });

  it('a handshake offering unknown encodings is accepted (names ignored)', async () => {
    const { path } = await startServer();
    const peer = await RawPeer.connect(path);
    cleanups.push(() => peer.destroy());
    peer.write(
      rawFrame(
        MessageType.HandshakeRequest,
        JSON.stringify({
          supported_versions: [2],
          proxy_id: 'p',
          proxy_version: '1',
          config: null,
          supported_encodings: ['zstd-json', 'msgpack', 'json'],
        }),
      ),
    );
    const reply = json(await peer.frame(0));
    expect(reply.success).toBe(true);
    expect(reply.encoding).toBe('msgpack');
  });
});

describe('malformed events and handler errors', () => {
  it('answers a malformed event with block 500 AGENT_INVALID_EVENT (never allow)', async () => {
    const { path, logger } = await startServer();
    const peer = await handshaken(path);
    peer.write(
      rawFrame(
        MessageType.RequestHeaders,
        JSON.stringify({ correlation_id: 'bad-1', metadata: {} }),
      ),
    );
    const r1 = json(await peer.frame(1));
    expect(r1.decision).toEqual({ block: { status: 500, body: null, headers: null } });
    expect(r1.audit.reason_codes).toEqual([AGENT_INVALID_EVENT]);
    expect(r1.audit.tags).toEqual([PICKET_ERROR_TAG]);
    expect(r1.audit.custom.correlation_id).toBe('bad-1');

    peer.write(rawFrame(MessageType.RequestBodyChunk, '{{{ not json'));
    const r2 = json(await peer.frame(2));
    expect(r2.decision.block.status).toBe(500);
    expect(r2.audit.custom.correlation_id).toBe('');
    expect(logger.text()).toMatch(/invalid request_body_chunk event/);
  });

  it('a throwing handler is answered block 500 AGENT_HANDLER_ERROR by default', async () => {
    const { path, logger } = await startServer({
      hooks: {
        onRequestHeaders: () => {
          throw new Error('boom');
        },
        onResponseHeaders: async () => ({ not: 'a response' }) as never,
      },
    });
    const client = await AgentClientV2Uds.connect('t', path, { logger: captureLogger() });
    cleanups.push(() => client.close());
    const r = await client.sendRequestHeaders(requestHeaders('h-1'));
    expect(r.decision).toEqual({
      block: { status: 500, body: HANDLER_ERROR_BODY, headers: null },
    });
    expect(r.audit.reason_codes).toEqual([AGENT_HANDLER_ERROR]);
    expect(r.audit.tags).toContain(PICKET_ERROR_TAG);
    expect(logger.text()).toMatch(/boom/);

    const r2 = await client.sendResponseHeaders({
      correlation_id: 'h-2',
      status: 200,
      headers: {},
    });
    expect(r2.audit.reason_codes).toEqual([AGENT_HANDLER_ERROR]);
    expect(r2.decision).toMatchObject({ block: { status: 500 } });
  });

  it('a result with a mistyped field is a handler error naming the field; results are never modified', async () => {
    const shared = allow({ custom: { correlation_id: 'not-this-one', note: 'kept' } });
    const { path, logger } = await startServer({
      hooks: {
        onRequestHeaders: (e) =>
          e.uri === '/bad'
            ? ({ ...allow(), request_headers: [{ set: { name: 'x', value: 7 } }] } as never)
            : shared,
      },
    });
    const client = await AgentClientV2Uds.connect('t', path, { logger: captureLogger() });
    cleanups.push(() => client.close());
    const bad = await client.sendRequestHeaders(requestHeaders('m-1', '/bad'));
    expect(bad.decision).toEqual({
      block: { status: 500, body: HANDLER_ERROR_BODY, headers: null },
    });
    expect(bad.audit.reason_codes).toEqual([AGENT_HANDLER_ERROR]);
    expect(logger.text()).toMatch(/request_headers\[0\]\.set\.value/);

    // the same result object answers two requests: each reply carries its own id
    const [a, b] = await Promise.all([
      client.sendRequestHeaders(requestHeaders('m-2')),
      client.sendRequestHeaders(requestHeaders('m-3')),
    ]);
    expect(a.audit.custom).toEqual({ correlation_id: 'm-2', note: 'kept' });
    expect(b.audit.custom).toEqual({ correlation_id: 'm-3', note: 'kept' });
    expect(shared.audit.custom).toEqual({ correlation_id: 'not-this-one', note: 'kept' });
  });

  it("errorPolicy 'allow' is refused at construction: a handler error never becomes allow", () => {
    expect(
      () =>
        new UdsAgentServerV2('/tmp/never.sock', handler({}), {
          errorPolicy: 'allow' as unknown as ErrorPolicy,
        }),
    ).toThrow(
      /errorPolicy must be 'block', 'close'.*got "allow" \(a handler error never becomes allow\)/,
    );
  });

  it('errorPolicy { status, body } answers that block; a function that allows is overruled', async () => {
    const { path } = await startServer({
      errorPolicy: { status: 503, body: 'try later' },
      hooks: { onRequestHeaders: () => Promise.reject(new Error('nope')) },
    });
    const client = await AgentClientV2Uds.connect('t', path, { logger: captureLogger() });
    cleanups.push(() => client.close());
    const r = await client.sendRequestHeaders(requestHeaders('o-1'));
    expect(r.decision).toEqual({ block: { status: 503, body: 'try later', headers: null } });
    expect(r.audit.reason_codes).toEqual([AGENT_HANDLER_ERROR]);

    const fn = await startServer({
      errorPolicy: () => allow({ tags: ['fail_open'] }),
      hooks: { onRequestHeaders: () => Promise.reject(new Error('nope')) },
    });
    const c2 = await AgentClientV2Uds.connect('t', fn.path, { logger: captureLogger() });
    cleanups.push(() => c2.close());
    const r2 = await c2.sendRequestHeaders(requestHeaders('o-2'));
    expect(r2.decision).toEqual({
      block: { status: 500, body: HANDLER_ERROR_BODY, headers: null },
    });
    expect(r2.audit.tags).toEqual([PICKET_ERROR_TAG]);
    expect(fn.logger.text()).toMatch(/errorPolicy answered allow/);
  });

  it("errorPolicy 'close' drops the connection; the proxy call fails CONNECTION_CLOSED", async () => {
    const { path } = await startServer({
      errorPolicy: 'close',
      hooks: {
        onRequestHeaders: (e) => {
          if (e.uri === '/fail') throw new Error('nope');
          return allow();
        },
      },
    });
    const client = await AgentClientV2Uds.connect('t', path, {
      logger: captureLogger(),
      timeoutMs: 60_000,
    });
    cleanups.push(() => client.close());
    await expect(client.sendRequestHeaders(requestHeaders('c-1', '/fail'))).rejects.toMatchObject({
      code: 'CONNECTION_CLOSED',
    });
    expect(client.isHealthy()).toBe(false);
  });
});
