/**
 * Agents in front of a Fetch-API handler (`(Request) => Promise<Response>`: Hono's
 * `app.fetch`, and other fetch-style apps). The client going away is the Request's
 * `signal` aborting.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { ClientRequest, ClientResponse, NextHop, NextHopResponse } from '../engine.js';
import { clientForwarded } from './forwarded.js';
import { type PicketConfig, toEngine } from './options.js';

/** A fetch-style handler; extra arguments (Hono's `env`, a context) are passed through. */
export type FetchHandler<A extends unknown[] = []> = (
  request: Request,
  ...rest: A
) => Response | Promise<Response>;

export interface FetchAdapterOptions<A extends unknown[] = []> {
  /**
   * the client's address for the agents (`client_ip`), when the server knows it; with
   * `@hono/node-server` (Hono's `env`): `(_request, env) => env.incoming.socket.remoteAddress`
   */
  clientAddress?: (request: Request, ...rest: A) => string | undefined;
}

const NO_BODY_STATUS = new Set([101, 204, 205, 304]);

/** Fetch headers → the engine's view of the client's headers. */
function clientHeaders(request: Request, url: URL) {
  const headers: IncomingHttpHeaders = {};
  const distinct: NodeJS.Dict<string[]> = {};
  const put = (k: string, v: string) => {
    Object.defineProperty(headers, k, { value: v, enumerable: true, writable: true });
    Object.defineProperty(distinct, k, { value: [v], enumerable: true, writable: true });
  };
  for (const [k, v] of request.headers) put(k, v);
  if (headers.host === undefined) put('host', url.host);
  // a body without framing headers (a Request built in code) still is one
  if (request.body !== null && headers['content-length'] === undefined) {
    headers['transfer-encoding'] ??= 'chunked';
  }
  return { headers, distinct };
}

/** The handler's Response as the engine's next-hop response. */
function nextHopResponse(response: Response): NextHopResponse {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of response.headers) if (k !== 'set-cookie') headers[k] = v;
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  const body = response.body
    ? Readable.fromWeb(response.body as WebReadableStream<Uint8Array>)
    : Readable.from([]);
  return { statusCode: response.status, headers, body };
}

/**
 * Wraps `handler`: agents see each request first (a block, redirect or challenge is
 * answered without calling it), the handler gets a new Request as they left it, and its
 * Response goes through their response phase.
 */
export function withAgents<A extends unknown[] = []>(
  handler: FetchHandler<A>,
  config: PicketConfig,
  options: FetchAdapterOptions<A> = {},
): (request: Request, ...rest: A) => Promise<Response> {
  if (typeof handler !== 'function') throw new TypeError('withAgents: handler must be a function');
  const engine = toEngine(config, 'withAgents');
  return async (request, ...rest) => {
    const url = new URL(request.url);
    const { headers, distinct } = clientHeaders(request, url);
    const body = request.body;
    let bodyRead = false;
    const clientRequest: ClientRequest = {
      method: request.method,
      url: url.pathname + url.search,
      httpVersion: '1.1',
      headers,
      headersDistinct: distinct,
      socket: { remoteAddress: options.clientAddress?.(request, ...rest) },
      resume: () => {
        if (body && !bodyRead) body.cancel().catch(() => {});
      },
      async *[Symbol.asyncIterator]() {
        if (!body) return;
        bodyRead = true;
        for await (const c of body) yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      },
    };

    // the client's side: a stream that becomes the returned Response's body
    const out = new PassThrough();
    let head: { status: number; headers: Record<string, string | string[]> } | undefined;
    let sent!: () => void;
    const headSent = new Promise<void>((resolve) => {
      sent = resolve;
    });
    const client = Object.defineProperties(out, {
      headersSent: { get: () => head !== undefined },
      writeHead: {
        value(status: number, h: Record<string, string | string[]>) {
          head = { status, headers: h };
          sent();
          return out;
        },
      },
    }) as unknown as ClientResponse;
    const gone = () => out.destroy();
    request.signal.addEventListener('abort', gone, { once: true });
    out.once('close', () => request.signal.removeEventListener('abort', gone));

    const nextHop: NextHop = async (r) => {
      const h = new Headers();
      const forwarded = clientForwarded(r.headers, (name) => distinct[name]);
      for (const [k, vs] of Object.entries(forwarded)) for (const v of vs) h.append(k, v);
      const init: RequestInit & { duplex?: 'half' } = {
        method: r.method,
        headers: h,
        signal: r.signal,
      };
      if (r.body !== undefined) {
        init.body = Buffer.isBuffer(r.body)
          ? r.body
          : (Readable.toWeb(r.body) as unknown as ReadableStream<Uint8Array>);
        init.duplex = 'half';
      }
      // the engine stops waiting when the exchange ends (a decision, the client gone) or the
      // body it streams to the handler fails, whatever the handler does with either
      const stopped = new Promise<never>((_, reject) => {
        r.signal.addEventListener('abort', () => reject(new Error('the exchange ended')), {
          once: true,
        });
        if (r.body instanceof Readable) r.body.once('error', reject);
      });
      const answered = Promise.resolve(
        handler(new Request(new URL(r.uri, url.origin), init), ...rest),
      );
      return nextHopResponse(await Promise.race([answered, stopped]));
    };

    const done = engine.handle(clientRequest, client, nextHop);
    await Promise.race([headSent, done]);
    if (!head) {
      // the engine ended without a response: the client went away first
      return new Response(null, { status: 499 });
    }
    const responseHeaders = new Headers();
    for (const [k, v] of Object.entries(head.headers)) {
      for (const value of [v].flat()) responseHeaders.append(k, value);
    }
    if (request.method === 'HEAD' || NO_BODY_STATUS.has(head.status)) {
      out.resume(); // nothing to read: let the exchange finish
      return new Response(null, { status: head.status, headers: responseHeaders });
    }
    const stream = Readable.toWeb(out) as unknown as ReadableStream<Uint8Array>;
    return new Response(stream, { status: head.status, headers: responseHeaders });
  };
}
