/**
 * Worker factories of the `prox` scenario: picket's prox host calling a real plugin process,
 * and the raw baseline — the same `[u32 BE length][msgpack]` bytes echoed over a Unix socket,
 * one request per connection at a time, as prox's socket pool does.
 */
import { rmSync } from 'node:fs';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { encodeV1Frame, V1FrameDecoder } from '@picket/framing';
import { decisionKind, silentLogger } from '@picket/protocol';
import {
  canonicalHeaderKey,
  encodeEnvelope,
  encodeRequestInfo,
  HookType,
  ProxPluginTransport,
} from '@picket/prox';
import { requestHeadersEvent, withCorrelationId } from './fixtures.js';
import type { Hosted } from './worker.js';

const PLUGIN = fileURLToPath(new URL('./prox-plugin.ts', import.meta.url));
const BENCH_DIR = fileURLToPath(new URL('../', import.meta.url));

/**
 * The msgpack envelope prox's host writes for the bench's RequestHeaders event (`on_request`
 * with the RequestInfo its mapping builds: path and query split, Go-canonical header names,
 * first values, no Host). bench.test.ts checks it byte for byte against what the host sends.
 */
export function onRequestPayload(): Uint8Array {
  const e = requestHeadersEvent();
  const [path, query = ''] = e.uri.split('?', 2) as [string, string?];
  const headers: Record<string, string> = {};
  for (const [name, values] of Object.entries(e.headers)) {
    if (name !== 'host' && values[0] !== undefined) headers[canonicalHeaderKey(name)] = values[0];
  }
  const info = encodeRequestInfo({
    routeId: e.metadata.route_id ?? '',
    method: e.method,
    path,
    query,
    domain: e.metadata.server_name ?? '',
    host: e.headers.host?.[0] ?? '',
    proto: e.metadata.protocol,
    remoteAddr: `${e.metadata.client_ip}:${e.metadata.client_port}`,
    contentLength: 0,
    headers,
  });
  return encodeEnvelope(HookType.Request, info);
}

/** Raw baseline server: every `[u32 BE length][payload]` frame is written back as it came. */
export async function rawU32EchoServer(args: { path: string }): Promise<Hosted> {
  rmSync(args.path, { force: true });
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new V1FrameDecoder();
    socket.on('data', (chunk) => {
      for (const payload of decoder.push(chunk)) socket.write(encodeV1Frame(payload));
    });
  });
  await new Promise<void>((resolve) => server.listen(args.path, resolve));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One connection of the raw client: sends a frame, resolves at the reply's frame. */
class RawConnection {
  private readonly decoder = new V1FrameDecoder();
  private waiting: (() => void) | undefined;
  constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      if (this.decoder.push(chunk).length > 0) {
        const w = this.waiting;
        this.waiting = undefined;
        w?.();
      }
    });
  }
  call(frame: Uint8Array): Promise<void> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.socket.write(frame);
    });
  }
}

/**
 * Raw baseline client: `connections` sockets, each carrying one request at a time (a call
 * takes an idle one, so at 1 in flight one socket does all the work).
 */
export async function rawU32Client(args: {
  path: string;
  connections: number;
  payload: Uint8Array;
}): Promise<Hosted> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < args.connections; i++) {
    const s = net.createConnection({ path: args.path });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    sockets.push(s);
  }
  const idle = sockets.map((s) => new RawConnection(s));
  const frame = encodeV1Frame(args.payload);
  return {
    call: async () => {
      const c = idle.pop();
      if (c === undefined) throw new Error(`more than ${args.connections} calls in flight`);
      await c.call(frame);
      idle.push(c);
    },
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * picket's prox host: `ProxPluginTransport` starts the EchoAgent plugin (its own process) and
 * each call is `sendRequestHeaders` → `on_request` on a pooled hook connection.
 */
export async function proxPluginClient(args: { connections: number }): Promise<Hosted> {
  const transport = await ProxPluginTransport.connect(
    'echo',
    [process.execPath, '--import', 'tsx', PLUGIN],
    {
      cwd: BENCH_DIR,
      maxConnections: args.connections,
      maxIdleConnections: args.connections,
      timeoutMs: 10_000,
      callTimeoutMs: 10_000,
      readyTimeoutMs: 30_000,
      logger: silentLogger,
    },
  );
  const pid = transport.host.readyInfo?.pid;
  if (pid === undefined) throw new Error('the prox plugin is ready but reported no pid');
  const base = requestHeadersEvent();
  // the EchoAgent allows: anything else would measure an error path
  const first = await transport.sendRequestHeaders(withCorrelationId(base, 'prox-check'));
  if (decisionKind(first.decision) !== 'allow') {
    await transport.close();
    throw new Error(`the EchoAgent plugin answered ${JSON.stringify(first.decision)}`);
  }
  return {
    info: { pid },
    call: (seq: number) => transport.sendRequestHeaders(withCorrelationId(base, `prox-${seq}`)),
    close: () => transport.close(),
  };
}
