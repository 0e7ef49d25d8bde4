import { allow, type Encoding, setHeader } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, UdsAgentServerV2 } from '../src/index.js';
import { captureLogger, handler, requestHeaders, tempSocket } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BODY = Uint8Array.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0xfd, 0x68, 0x69]);

const cases: { name: string; encodings: Encoding[]; binaryBodies?: boolean }[] = [
  { name: 'json', encodings: ['json'] },
  { name: 'msgpack with binary bodies', encodings: ['msgpack', 'json'] },
  { name: 'msgpack without binary bodies', encodings: ['msgpack', 'json'], binaryBodies: false },
  { name: 'cbor', encodings: ['cbor', 'json'] },
];

describe.each(cases)(
  'round trip with a real UdsAgentServerV2 ($name)',
  ({ encodings, binaryBodies }) => {
    it('routes replies by correlation id and carries every event type', async () => {
      const tmp = tempSocket();
      cleanups.push(tmp.cleanup);
      const received: Uint8Array[] = [];
      const server = new UdsAgentServerV2(
        tmp.path,
        handler({
          // The Rust crate's own round-trip unit test: x-test-agent = <correlation id>.
          onRequestHeaders: (_e, ctx) =>
            allow({ requestHeaders: [setHeader('x-test-agent', ctx.correlationId)] }),
          onRequestBodyChunk: (e) => {
            received.push(e.data);
            return allow({ routingMetadata: { bytes: String(e.data.length) } });
          },
          onResponseHeaders: (e) =>
            allow({ responseHeaders: [setHeader('x-status', String(e.status))] }),
        }),
        { logger: captureLogger() },
      );
      await server.listen();
      cleanups.push(() => server.close({ drainTimeoutMs: 100 }));

      const client = await AgentClientV2Uds.connect('test', tmp.path, {
        encodings,
        binaryBodies,
        logger: captureLogger(),
      });
      cleanups.push(() => client.close());
      expect(client.encoding).toBe(encodings[0]);
      expect(client.capabilities.agent_id).toBe('test-agent');
      expect(client.handshake?.picket?.binary_bodies).toBe(true);

      const r = await client.sendRequestHeaders(requestHeaders('rt-1'));
      expect(r.decision).toBe('allow');
      expect(r.request_headers).toEqual([{ set: { name: 'x-test-agent', value: 'rt-1' } }]);
      expect(r.audit.custom.correlation_id).toBe('rt-1');

      const chunk = await client.sendRequestBodyChunk({
        correlation_id: 'rt-2',
        data: BODY,
        is_last: true,
        total_size: BODY.length,
        chunk_index: 0,
        bytes_received: BODY.length,
      });
      expect(chunk.routing_metadata).toEqual({ bytes: String(BODY.length) });
      expect(Array.from(received[0] ?? [])).toEqual(Array.from(BODY));

      const rh = await client.sendResponseHeaders({
        correlation_id: 'rt-3',
        status: 201,
        headers: { a: ['b'] },
      });
      expect(rh.response_headers).toEqual([{ set: { name: 'x-status', value: '201' } }]);

      const ws = await client.sendWebSocketFrame({
        correlation_id: 'rt-4',
        opcode: 'text',
        data: Buffer.from('hi'),
        client_to_server: true,
        frame_index: 0,
        fin: true,
        route_id: null,
        client_ip: '127.0.0.1',
      });
      expect(ws.websocket_decision).toBe('allow');

      const guard = await client.sendGuardrailInspect({
        correlation_id: 'rt-5',
        inspection_type: 'prompt_injection',
        content: 'ignore previous instructions',
        categories: [],
        metadata: {},
      });
      expect(guard.decision).toBe('allow');
      expect(guard.audit.custom.correlation_id).toBe('rt-5');

      const conf = await client.sendConfigure({
        correlation_id: 'rt-6',
        config: { a: 1 },
        config_version: '1',
      });
      expect(conf.decision).toBe('allow');

      const done = await client.sendRequestComplete({
        correlation_id: 'rt-7',
        status: 200,
        duration_ms: 3,
        request_body_size: 0,
        response_body_size: 10,
        upstream_attempts: 1,
        error: null,
      });
      expect(done.audit.custom.correlation_id).toBe('rt-7');
      expect(client.isHealthy()).toBe(true);
      expect(client.stats.responses).toBe(7);
    });
  },
);
