/**
 * An Envoy stand-in: a grpc-js client of envoy.service.ext_proc.v3.ExternalProcessor that
 * sends ProcessingRequests the way Envoy's ext_proc filter does, plus a test agent whose
 * answer depends on the request path, and a server started per test.
 */
import { type ChannelCredentials, type Client, credentials } from '@grpc/grpc-js';
import {
  type AgentHandler,
  type AgentResponse,
  addHeader,
  allow,
  block,
  challenge,
  createCapabilities,
  type RequestBodyChunkEvent,
  type RequestContext,
  type RequestHeadersEvent,
  type ResponseBodyChunkEvent,
  type ResponseHeadersEvent,
  redirect,
  removeHeader,
  replaceBody,
  setHeader,
  silentLogger,
} from '@picket/protocol';
import { afterEach } from 'vitest';
import { EnvoyStream, extProcClient, headerMap } from '../src/client.js';
import { ExtProcServer, type ExtProcServerOptions } from '../src/index.js';
import type { ProcessingRequest } from '../src/proto.js';

export { EnvoyStream, headerMap };

/** Envoy's request_headers message for `method path`. */
export function requestHeaders(
  path: string,
  o: {
    method?: string;
    endOfStream?: boolean;
    extra?: [string, string][];
    attributes?: ProcessingRequest['attributes'];
  } = {},
): ProcessingRequest {
  return {
    request_headers: {
      headers: headerMap([
        [':method', o.method ?? 'GET'],
        [':path', path],
        [':authority', 'app.example:8080'],
        [':scheme', 'https'],
        ['x-request-id', 'req-1'],
        ...(o.extra ?? []),
      ]),
      end_of_stream: o.endOfStream ?? true,
    },
    ...(o.attributes !== undefined && { attributes: o.attributes }),
  };
}

export function responseHeaders(
  statusCode = '200',
  extra: [string, string][] = [],
  endOfStream = true,
): ProcessingRequest {
  return {
    response_headers: {
      headers: headerMap([[':status', statusCode], ...extra]),
      end_of_stream: endOfStream,
    },
  };
}

export const requestBody = (text: string, endOfStream: boolean): ProcessingRequest => ({
  request_body: { body: Buffer.from(text, 'utf8'), end_of_stream: endOfStream },
});
export const responseBody = (text: string, endOfStream: boolean): ProcessingRequest => ({
  response_body: { body: Buffer.from(text, 'utf8'), end_of_stream: endOfStream },
});

/** Every event a {@link TestAgent} saw, with its context. */
export interface Seen {
  type: string;
  event: unknown;
  ctx: RequestContext;
}

/**
 * Answers by path: `/block` (403 with body and header), `/redirect` (301), `/challenge`,
 * `/ops` (every header op, both directions), `/throw` (handler error), `/garbage` (no
 * AgentResponse), `/bad-redirect` (a URL with a line break), `/huge` (a block body over the
 * message limit), `/hang` (never answers). Request bodies: `secret` is redacted, `drop`
 * clears the chunk, `evil` is blocked with 400. Response headers: status 500 from upstream
 * is replaced by a 502 block. Response bodies are upper-cased.
 */
export class TestAgent implements AgentHandler {
  readonly seen: Seen[] = [];
  readonly cancelled: string[] = [];

  capabilities() {
    return createCapabilities({ agentId: 'extproc-test' });
  }

  onRequestHeaders(
    e: RequestHeadersEvent,
    ctx: RequestContext,
  ): AgentResponse | Promise<AgentResponse> {
    this.seen.push({ type: 'request_headers', event: e, ctx });
    switch (e.uri) {
      case '/block':
        return block(403, { body: 'Forbidden by picket', headers: { 'x-why': 'denied' } });
      case '/redirect':
        return redirect('https://login.example/?next=%2F', 301);
      case '/challenge':
        return challenge('captcha', { site: 'k1' });
      case '/ops':
        return allow({
          requestHeaders: [
            setHeader('x-set', 'one'),
            addHeader('x-add', 'a'),
            addHeader('x-add', 'b'),
            removeHeader('cookie'),
            addHeader('x-gone', 'x'),
            removeHeader('X-Gone'),
          ],
          responseHeaders: [setHeader('x-from-request-phase', 'yes')],
        });
      case '/throw':
        throw new Error('handler exploded');
      case '/garbage':
        return { nonsense: true } as unknown as AgentResponse;
      case '/bad-redirect':
        return redirect('https://x.example/\r\nset-cookie: a=b', 302);
      case '/huge':
        return block(403, { body: 'x'.repeat(300_000) });
      case '/hang':
        return new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
        });
      default:
        return allow({ requestHeaders: [setHeader('x-cid', e.metadata.correlation_id)] });
    }
  }

  onRequestBodyChunk(e: RequestBodyChunkEvent, ctx: RequestContext): AgentResponse {
    this.seen.push({ type: 'request_body_chunk', event: e, ctx });
    const text = Buffer.from(e.data).toString('utf8');
    if (text.includes('evil')) return block(400, { body: 'bad body' });
    if (text.includes('secret')) {
      return allow({ requestBodyMutation: replaceBody(text.replaceAll('secret', '******')) });
    }
    if (text.includes('drop')) return allow({ requestBodyMutation: replaceBody('') });
    return allow({ requestHeaders: [setHeader('x-body-seen', String(e.chunk_index))] });
  }

  onResponseHeaders(e: ResponseHeadersEvent, ctx: RequestContext): AgentResponse {
    this.seen.push({ type: 'response_headers', event: e, ctx });
    if (e.status === 500) return block(502, { body: 'upstream failed' });
    return allow({ responseHeaders: [setHeader('x-status-seen', String(e.status))] });
  }

  onResponseBodyChunk(e: ResponseBodyChunkEvent, ctx: RequestContext): AgentResponse {
    this.seen.push({ type: 'response_body_chunk', event: e, ctx });
    const text = Buffer.from(e.data).toString('utf8');
    return allow({ responseBodyMutation: replaceBody(text.toUpperCase()) });
  }

  onCancel(correlationId: string): void {
    this.cancelled.push(correlationId);
  }
}

const open: { server: ExtProcServer; clients: Client[] }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    for (const c of o.clients) c.close();
    await o.server.drain(100);
  }
});

/** A started server on a free port and a client connected to it; both closed after the test. */
export async function start(
  handler: AgentHandler = new TestAgent(),
  options: ExtProcServerOptions = {},
  creds: ChannelCredentials = credentials.createInsecure(),
): Promise<{ server: ExtProcServer; endpoint: string; client: Client; stream(): EnvoyStream }> {
  const server = new ExtProcServer(handler, {
    address: '127.0.0.1:0',
    logger: silentLogger,
    ...options,
  });
  const entry = { server, clients: [] as Client[] };
  open.push(entry);
  const [endpoint] = await server.listen();
  if (endpoint === undefined) throw new Error('no endpoint');
  const target = endpoint.startsWith('extproc+unix:')
    ? endpoint.replace(/^extproc\+/, '')
    : endpoint.replace(/^extprocs?:\/\//, '');
  const client = extProcClient(target, creds, {
    // the test certificate names localhost; the client dials 127.0.0.1
    'grpc.ssl_target_name_override': 'localhost',
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
  });
  entry.clients.push(client);
  return { server, endpoint, client, stream: () => new EnvoyStream(client) };
}

/** A header mutation's set headers as [name, value, how] triples, how = overwrite | append. */
export function sets(
  m:
    | {
        set_headers?: {
          header?: { key?: string; raw_value?: Uint8Array; value?: string };
          append?: { value?: boolean };
          append_action?: number;
        }[];
      }
    | undefined,
): [string, string, string][] {
  return (m?.set_headers ?? []).map((o) => [
    o.header?.key ?? '',
    o.header?.raw_value
      ? Buffer.from(o.header.raw_value).toString('utf8')
      : (o.header?.value ?? ''),
    o.append_action === 2
      ? 'overwrite'
      : o.append?.value === true
        ? 'append'
        : `other(${o.append_action})`,
  ]);
}
