/**
 * Golden vectors G1–G6 (discrepancies-and-vectors.md Part B): our encoder produces those
 * exact message bytes for the same content, and decodes them back to that content. G1/G2
 * are also checked on the wire: the bytes AgentClientV2 really sends, and the bytes
 * GrpcAgentServerV2 really answers.
 */
import {
  Client,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
} from '@grpc/grpc-js';
import { goldenRequestHeaders } from '@picket/compliance';
import { allow, block, createCapabilities, setHeader } from '@picket/protocol';
import { afterEach, describe, expect, test } from 'vitest';
import { AgentClientV2 } from '../src/client.js';
import {
  agentResponseFromProto,
  agentResponseToProto,
  capabilitiesFromProto,
  capabilitiesToProto,
  eventToProto,
  handshakeRequestFromProto,
  handshakeRequestToProto,
  pingToProto,
  requestHeadersFromProto,
} from '../src/convert.js';
import { encodeAgentToProxy, encodeProxyToAgent, METHOD_PATHS, pb } from '../src/proto.js';
import { GrpcAgentServerV2 } from '../src/server.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const G1 = hex(
  '0a 20 0a 02 02 01 12 0e 7a 65 6e 74 69 6e 65 6c 2d 70 72 6f 78 79 1a 06 30 2e 36 2e 32 30 22 02 7b 7d',
);
const G2 = hex(
  '0a 43 08 02 12 3d 08 02 12 0a 65 63 68 6f 2d 61 67 65 6e 74 1a 0a 45 63 68 6f 20 41 67 65 6e 74 22 05 31 2e 30 2e 30 2a 01 01 32 00 3a 0e 08 80 80 80 05 10 64 18 80 80 04 28 88 27 42 05 08 90 4e 10 01 18 01',
);
const G3 = hex(
  '12 46 0a 05 72 65 71 2d 31 1a 13 08 93 03 12 0e 46 6f 72 62 69 64 64 65 6e 20 70 61 74 68 62 26 0a 08 64 65 6e 79 6c 69 73 74 0a 0c 62 6c 6f 63 6b 65 64 5f 70 61 74 68 22 0c 50 41 54 48 5f 42 4c 4f 43 4b 45 44 68 00',
);
const G4 = hex(
  '12 2c 0a 05 72 65 71 2d 31 12 00 52 17 0a 15 0a 0c 58 2d 45 63 68 6f 2d 41 67 65 6e 74 12 05 72 65 71 2d 31 62 06 0a 04 65 63 68 6f 68 00',
);
const G5 = hex('5a 07 10 80 d0 ea b6 b7 33');
const G6 = hex(
  '12 79 0a 44 0a 05 72 65 71 2d 31 12 05 72 65 71 2d 31 1a 09 31 32 37 2e 30 2e 30 2e 31 20 b1 a8 03 2a 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 32 08 48 54 54 50 2f 31 2e 31 42 07 64 65 66 61 75 6c 74 50 80 d0 ea b6 b7 33 12 03 47 45 54 1a 0d 2f 61 64 6d 69 6e 2f 73 65 63 72 65 74 22 08 48 54 54 50 2f 31 2e 31 2a 13 0a 04 68 6f 73 74 12 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d',
);
const TS = 1767225600000;

const echoCaps = () =>
  createCapabilities({
    agentId: 'echo-agent',
    name: 'Echo Agent',
    version: '1.0.0',
    events: ['request_headers'],
  });

/** The request G6 encodes: the one of V3 / V10a. */
const g6Event = goldenRequestHeaders();

const g3Response = () =>
  block(403, {
    body: 'Forbidden path',
    tags: ['denylist', 'blocked_path'],
    reasonCodes: ['PATH_BLOCKED'],
  });
const g4Response = () =>
  allow({ requestHeaders: [setHeader('X-Echo-Agent', 'req-1')], tags: ['echo'] });

describe('encoding matches the golden vectors', () => {
  test('G1 handshake request', () => {
    const bytes = encodeProxyToAgent({
      handshake: handshakeRequestToProto({
        supported_versions: [2, 1],
        proxy_id: 'zentinel-proxy',
        proxy_version: '0.6.20',
        config: {},
        supported_encodings: [],
      }),
    });
    expect(bytes.toString('hex')).toBe(G1.toString('hex'));
  });

  test('G2 handshake response for echo capabilities', () => {
    const bytes = encodeAgentToProxy({
      handshake: {
        protocol_version: 2,
        capabilities: capabilitiesToProto(echoCaps()),
        success: true,
      },
    });
    expect(bytes.toString('hex')).toBe(G2.toString('hex'));
  });

  test('G3 block response', () => {
    const bytes = encodeAgentToProxy({ response: agentResponseToProto(g3Response(), 'req-1', 0) });
    expect(bytes.toString('hex')).toBe(G3.toString('hex'));
  });

  test('G4 allow + set header', () => {
    const bytes = encodeAgentToProxy({ response: agentResponseToProto(g4Response(), 'req-1', 0) });
    expect(bytes.toString('hex')).toBe(G4.toString('hex'));
  });

  test('G5 ping', () => {
    expect(encodeProxyToAgent(pingToProto(0, TS)).toString('hex')).toBe(G5.toString('hex'));
  });

  test('G6 request headers (event timestamp parsed from RFC 3339)', () => {
    const bytes = encodeProxyToAgent(eventToProto('request_headers', g6Event, 0));
    expect(bytes.toString('hex')).toBe(G6.toString('hex'));
  });
});

describe('decoding the golden vectors', () => {
  test('G1', () => {
    const m = pb.ProxyToAgent.decode(G1);
    expect(m.message).toBe('handshake');
    expect(handshakeRequestFromProto(m.handshake ?? {})).toEqual({
      supported_versions: [2, 1],
      proxy_id: 'zentinel-proxy',
      proxy_version: '0.6.20',
      config: {},
      supported_encodings: [],
    });
  });

  test('G2', () => {
    const m = pb.AgentToProxy.decode(G2);
    expect(m.handshake?.success).toBe(true);
    expect(m.handshake?.protocol_version).toBe(2);
    const caps = capabilitiesFromProto(m.handshake?.capabilities);
    expect(caps).toEqual({
      ...echoCaps(),
      protocol_version: 2,
      limits: { ...echoCaps().limits, max_processing_time_ms: 5000 },
      health_config: {
        report_interval_ms: 10000,
        include_load_metrics: true,
        include_resource_metrics: false,
      },
    });
  });

  test('G3', () => {
    const m = pb.AgentToProxy.decode(G3);
    expect(m.response?.correlation_id).toBe('req-1');
    expect(agentResponseFromProto(m.response ?? {})).toEqual(g3Response());
  });

  test('G4', () => {
    const m = pb.AgentToProxy.decode(G4);
    expect(agentResponseFromProto(m.response ?? {})).toEqual(g4Response());
  });

  test('G5', () => {
    const m = pb.ProxyToAgent.decode(G5);
    expect(m.message).toBe('ping');
    expect(Number(m.ping?.sequence)).toBe(0);
    expect(Number(m.ping?.timestamp_ms)).toBe(TS);
  });

  test('G6: timestamp becomes a decimal ms string', () => {
    const m = pb.ProxyToAgent.decode(G6);
    expect(requestHeadersFromProto(m.request_headers ?? {})).toEqual({
      ...g6Event,
      metadata: { ...g6Event.metadata, timestamp: String(TS) },
    });
  });

  test('custom values sent as JSON text by Rust agents are parsed; other text stays raw', () => {
    const r = agentResponseFromProto({
      correlation_id: 'req-1',
      allow: {},
      audit: { custom: { correlation_id: '"req-1"', n: '42', obj: '{"a":[1]}', raw: 'not json' } },
    });
    expect(r.audit.custom).toEqual({
      correlation_id: 'req-1',
      n: 42,
      obj: { a: [1] },
      raw: 'not json',
    });
    expect(r.decision).toBe('allow');
    // and ours are written as JSON text like Rust's
    const back = agentResponseToProto(r, 'req-1', 0);
    expect(back.audit?.custom).toEqual({
      correlation_id: '"req-1"',
      n: '42',
      obj: '{"a":[1]}',
      raw: '"not json"',
    });
  });

  test('no decision at all reads as allow', () => {
    expect(agentResponseFromProto({ correlation_id: 'x' }).decision).toBe('allow');
  });
});

describe('on the wire', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  test('AgentClientV2 sends G1 first, without waiting for response headers, and reads G2', async () => {
    const server = new Server();
    cleanups.push(() => server.forceShutdown());
    const received: Buffer[] = [];
    server.register(
      METHOD_PATHS.ProcessStream,
      (call: ServerDuplexStream<Buffer, Buffer>) => {
        // deliberately no sendMetadata: the client must not wait for headers
        call.on('data', (b: Buffer) => {
          received.push(b);
          if (received.length === 1) call.write(G2);
        });
        call.on('error', () => undefined);
      },
      (b: Buffer) => b,
      (b: Buffer) => b,
      'bidi',
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const client = await AgentClientV2.connect('echo-agent', `127.0.0.1:${port}`, {
      timeoutMs: 5000,
      controlStream: false,
    });
    cleanups.push(() => void client.close());
    expect(received[0]?.toString('hex')).toBe(G1.toString('hex'));
    expect(client.capabilities.name).toBe('Echo Agent');
    expect(client.capabilities.limits.max_processing_time_ms).toBe(5000);
  });

  test('GrpcAgentServerV2 answers G1 with exactly G2', async () => {
    const server = new GrpcAgentServerV2({ capabilities: echoCaps });
    cleanups.push(() => server.forceShutdown());
    const { address } = await server.listen('127.0.0.1:0');
    const client = new Client(address, credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = client.makeBidiStreamRequest(
      METHOD_PATHS.ProcessStream,
      (b: Buffer) => b,
      (b: Buffer) => b,
      new Metadata(),
    );
    cleanups.push(() => call.cancel());
    const first = new Promise<Buffer>((resolve) => call.once('data', resolve));
    call.on('error', () => undefined);
    call.write(G1);
    expect((await first).toString('hex')).toBe(G2.toString('hex'));
  });
});
