/**
 * Agents in front of a node:http request listener, and the one path Express and Fastify
 * share: the engine reads the client's request and writes the client's response, and its
 * next hop is the application itself, running on the same `req` / `res` with the
 * agents' headers, path and body.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { escapeForLog, type Headers } from '@picket/protocol';
import type { ClientRequest, HttpEngine, NextHop, NextHopRequest } from '../engine.js';
import { clientForwarded } from './forwarded.js';
import { divertBody, hasBody } from './node-request.js';
import { captureResponse } from './node-response.js';
import { type PicketConfig, toEngine } from './options.js';

/** A node:http request listener (`http.createServer(listener)`); Express and Koa's `callback()` are ones. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/** Protocol header lists in the form node:http gives the application. */
function toIncoming(h: Headers): { headers: IncomingHttpHeaders; raw: string[] } {
  const headers: IncomingHttpHeaders = {};
  const raw: string[] = [];
  for (const [k, v] of Object.entries(h)) {
    if (v.length === 0) continue;
    Object.defineProperty(headers, k, {
      value: k === 'set-cookie' ? [...v] : v.join(k === 'cookie' ? '; ' : ', '),
      enumerable: true,
      writable: true,
      configurable: true,
    });
    for (const value of v) raw.push(k, value);
  }
  return { headers, raw };
}

/** Hands the agents' request to the application: headers, path, then the body. */
function applyRequest(
  req: IncomingMessage & { baseUrl?: string },
  r: NextHopRequest,
  sent: NodeJS.Dict<string[]>,
): void {
  const forwarded = clientForwarded(r.headers, (name) => sent[name]);
  // a body of unknown length still has to look like one to body parsers
  if (r.body !== undefined && forwarded['content-length'] === undefined) {
    forwarded['transfer-encoding'] = ['chunked'];
  }
  const { headers, raw } = toIncoming(forwarded);
  req.headers = headers;
  req.rawHeaders = raw;
  const distinct: NodeJS.Dict<string[]> = {};
  for (const [k, v] of Object.entries(forwarded)) {
    Object.defineProperty(distinct, k, { value: [...v], enumerable: true });
  }
  Object.defineProperty(req, 'headersDistinct', { value: distinct, configurable: true });
  // the application routes the path the agents saw (below an Express mount point: its rest)
  const base = req.baseUrl ?? '';
  const rest = r.uri.slice(base.length);
  if (r.uri.startsWith(base) && (rest === '' || rest[0] === '/' || rest[0] === '?')) {
    req.url = rest[0] === '/' ? rest : `/${rest}`;
  }
}

/**
 * Fails the body the application is reading, keeping the connection: the engine still
 * has to answer on it (node:http's own destroy of a request closes the socket).
 */
function abortBody(req: IncomingMessage, e: Error): void {
  const target = req as unknown as {
    _destroy(err: Error | null, cb: (e?: Error | null) => void): void;
  };
  target._destroy = (err, cb) => {
    // as node:http does: an error is emitted only to a listener
    process.nextTick(() => cb(req.listenerCount('error') > 0 ? err : null));
  };
  req.destroy(e);
}

/**
 * Runs one request through the engine with `app` as the next hop. Resolves once the
 * engine is done: true when the application ran, false when the agents answered.
 */
export async function runExchange(
  engine: HttpEngine,
  req: IncomingMessage & { originalUrl?: string },
  res: ServerResponse,
  app: () => unknown,
): Promise<boolean> {
  const body = hasBody(req.headers) ? divertBody(req) : undefined;
  const source: AsyncIterable<Buffer> = body?.source ?? (async function* () {})();
  const { head, client } = captureResponse(res);
  const sent = req.headersDistinct;
  const clientRequest: ClientRequest = {
    method: req.method,
    // an Express app mounted below a path: the agents see the whole path
    url: req.originalUrl ?? req.url,
    httpVersion: req.httpVersion,
    headers: req.headers,
    headersDistinct: req.headersDistinct,
    socket: req.socket,
    resume: () => body && (body.source as NodeJS.ReadableStream).resume(),
    [Symbol.asyncIterator]: () => source[Symbol.asyncIterator](),
  };
  let ran = false;
  const nextHop: NextHop = (r) => {
    ran = true;
    applyRequest(req, r, sent);
    // a decision while the body streams to the application: it sees the body fail (never a
    // shorter but complete one), and the engine answers with the decision
    const bodyFailed = body
      ? body.refill(r.body).then(
          () => new Promise<never>(() => {}),
          (e: unknown) => {
            abortBody(req, e as Error);
            throw e;
          },
        )
      : new Promise<never>(() => {});
    const ended = new Promise<never>((_, reject) => {
      r.signal.addEventListener('abort', () => reject(new Error('the exchange ended')), {
        once: true,
      });
    });
    // an application that throws (or rejects) before its response head is a 500, never an allow
    const failed = new Promise<never>((_, reject) => {
      // the engine logs the failure: its message comes from the application, escaped here
      const fail = (e: unknown) =>
        reject(
          new Error(`application failed: ${escapeForLog(String((e as Error)?.message ?? e))}`),
        );
      try {
        Promise.resolve(app()).then(undefined, fail);
      } catch (e) {
        fail(e);
      }
    });
    return Promise.race([head, failed, ended, bodyFailed]);
  };
  await engine.handle(clientRequest, client, nextHop);
  if (!ran && body) {
    // Answered without the application: discard the rest of the body (or a paused socket
    // would hold the connection) and end `req` for anyone still listening.
    (body.source as NodeJS.ReadableStream).resume();
    void body.refill(undefined).catch(() => {});
  }
  return ran;
}

/**
 * Wraps a node:http request listener: agents see each request first (a block, redirect or
 * challenge is answered without calling `listener`), the listener gets the request as
 * they left it, and its response goes through their response phase.
 */
export function wrapListener(listener: RequestListener, config: PicketConfig): RequestListener {
  if (typeof listener !== 'function')
    throw new TypeError('wrapListener: listener must be a function');
  const engine = toEngine(config, 'wrapListener');
  return (req, res) => {
    runExchange(engine, req, res, () => listener(req, res)).catch((e: unknown) => {
      // only a fault before the engine ran gets here (the body was read already): never an allow
      engine.log.error(
        `picket: request not handled: ${escapeForLog(String((e as Error)?.message ?? e))}`,
      );
      if (res.headersSent) res.destroy();
      else {
        res.statusCode = 500;
        res.end();
      }
    });
  };
}
