/**
 * `picket serve … --listen grpc://…` serves grpc.health.v1 and server reflection next to the
 * agent service (GrpcAgentServerV2's defaults), seen from a bare HTTP/2 client as a
 * Kubernetes probe sees it: SERVING while up, NOT_SERVING on a Watch once SIGTERM starts the
 * drain, then the Watch ends and the process exits 0.
 */
import { type ClientHttp2Session, connect, constants } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, start, waitForLine } from './helpers.js';

afterEach(killAll);

/** A gRPC message: compressed flag, big-endian length, bytes. */
const frame = (msg: Buffer): Buffer => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
};

/** One gRPC call; `onMessage` sees each response message as it arrives. */
function call(
  session: ClientHttp2Session,
  path: string,
  request: Buffer,
  onMessage: (m: Buffer) => void = () => {},
): Promise<{ grpcStatus: string | undefined; messages: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const messages: Buffer[] = [];
    let buf = Buffer.alloc(0);
    let grpcStatus: string | undefined;
    stream.on('response', (h) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']); // trailers-only
    });
    stream.on('trailers', (t) => (grpcStatus = String(t['grpc-status'])));
    stream.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const m = buf.subarray(5, 5 + buf.readUInt32BE(1));
        buf = buf.subarray(5 + m.length);
        messages.push(m);
        onMessage(m);
      }
    });
    stream.on('end', () => resolve({ grpcStatus, messages }));
    stream.on('error', reject);
    stream.end(frame(request));
  });
}

// HealthCheckResponse { status (field 1, varint) }: 1 SERVING, 2 NOT_SERVING
const SERVING = Buffer.from([0x08, 0x01]);
const NOT_SERVING = Buffer.from([0x08, 0x02]);

describe('picket serve --listen grpc://', () => {
  it('answers health checks and reflection; SIGTERM turns a Watch NOT_SERVING, then ends it', async () => {
    const cli = start(['serve', 'echo', '--listen', 'grpc://127.0.0.1:0']);
    const [, port] = await waitForLine(cli, /listening on grpc:\/\/127\.0\.0\.1:(\d+)/);
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    try {
      // HealthCheckRequest {} asks about the server as a whole
      const check = await call(session, '/grpc.health.v1.Health/Check', Buffer.alloc(0));
      expect(check.grpcStatus).toBe('0');
      expect(check.messages).toEqual([SERVING]);

      // ServerReflectionRequest { list_services (7): "" }
      const list = await call(
        session,
        '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
        Buffer.from([0x3a, 0x00]),
      );
      expect(list.grpcStatus).toBe('0');
      const text = list.messages.map((m) => m.toString('latin1')).join('');
      for (const name of [
        'zentinel.agent.v2.AgentServiceV2',
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
      ]) {
        expect(text).toContain(name);
      }

      let first!: () => void;
      const gotFirst = new Promise<void>((r) => (first = r));
      const watch = call(session, '/grpc.health.v1.Health/Watch', Buffer.alloc(0), first);
      await gotFirst;
      cli.proc.kill('SIGTERM');
      const ended = await watch;
      expect(ended.messages).toEqual([SERVING, NOT_SERVING]);
      expect(ended.grpcStatus).toBe('0');
      expect(await cli.exited).toBe(0);
    } finally {
      session.destroy();
    }
  });
});
