/**
 * The response of a node:http request, taken over so it goes through the agents'
 * response phase: what the application writes (`writeHead`, `setHeader`, `write`, `end`,
 * a pipe) is captured as a next-hop response, and the engine writes the client's
 * response through a separate Writable that uses the real methods.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { PassThrough, Writable } from 'node:stream';
import type { ClientResponse, NextHopResponse } from '../engine.js';

type Callback = (error?: Error | null) => void;
type Write = (chunk: unknown, encoding?: BufferEncoding, cb?: Callback) => boolean;
type End = (chunk?: unknown, encoding?: BufferEncoding, cb?: () => void) => ServerResponse;

/** A response taken over: what the application answers, and where the engine writes. */
export interface CapturedResponse {
  /** resolves once the application wrote its response head (explicitly or by writing) */
  readonly head: Promise<NextHopResponse>;
  /** the client's side for the engine */
  readonly client: ClientResponse;
}

const header = (v: number | string | string[] | undefined): string | string[] | undefined =>
  typeof v === 'number' ? String(v) : v;

/** Puts `writeHead`'s header argument (object, flat or nested array) into the response's store. */
function storeHeaders(res: ServerResponse, h: unknown): void {
  if (h === undefined || h === null) return;
  if (Array.isArray(h)) {
    const pairs: [string, string][] = Array.isArray(h[0])
      ? (h as [string, string][])
      : Array.from({ length: h.length / 2 }, (_, i) => [String(h[2 * i]), String(h[2 * i + 1])]);
    for (const [k, v] of pairs) {
      const prev = res.getHeader(k);
      res.setHeader(k, prev === undefined ? v : [...[prev].flat().map(String), v]);
    }
    return;
  }
  for (const [k, v] of Object.entries(h as OutgoingHttpHeaders)) {
    if (v !== undefined) res.setHeader(k, v);
  }
}

/** Takes over `res`: call before the application gets it. */
export function captureResponse(res: ServerResponse): CapturedResponse {
  const own = {
    writeHead: res.writeHead,
    write: res.write as Write,
    end: res.end as End,
  };
  const body = new PassThrough();
  let resolveHead!: (r: NextHopResponse) => void;
  const head = new Promise<NextHopResponse>((resolve) => {
    resolveHead = resolve;
  });
  let captured = false;
  // the application's writes wait for the engine to take the body: pass its drain on
  body.on('drain', () => res.emit('drain'));
  body.on('error', () => {});

  const appWriteHead = (status: number, reason?: unknown, headers?: unknown): ServerResponse => {
    if (captured) return res;
    captured = true;
    storeHeaders(res, typeof reason === 'string' ? headers : reason);
    const headers2: Record<string, string | string[] | undefined> = {};
    for (const [k, v] of Object.entries(res.getHeaders())) headers2[k] = header(v);
    res.statusCode = status;
    resolveHead({ statusCode: status, headers: headers2, body });
    return res;
  };
  const implicitHead = () => {
    if (!captured) appWriteHead(res.statusCode);
  };
  Object.assign(res, {
    writeHead: appWriteHead,
    flushHeaders: implicitHead,
    write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
      implicitHead();
      const done = (typeof encoding === 'function' ? encoding : cb) as Callback | undefined;
      // an agent ended the exchange: the rest of the application's response goes nowhere
      if (body.destroyed || body.writableEnded) {
        done?.();
        return true;
      }
      const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : undefined;
      return body.write(chunk, enc as BufferEncoding, done);
    },
    end(chunk?: unknown, encoding?: unknown, cb?: unknown): ServerResponse {
      const done = [chunk, encoding, cb].find((a) => typeof a === 'function') as
        | (() => void)
        | undefined;
      if (done) res.once('finish', done);
      if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') {
        res.write(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
      }
      implicitHead();
      if (!body.destroyed && !body.writableEnded) body.end();
      return res;
    },
  });

  const client = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (own.write.call(res, chunk)) return cb();
      // 'drain' on res also passes the application's on: wait for the socket's own
      const wait = () => (res.writableNeedDrain ? res.once('drain', wait) : cb());
      res.once('drain', wait);
    },
    final(cb) {
      own.end.call(res, undefined, undefined, () => cb());
    },
    destroy(error, cb) {
      // after a normal finish this is only the autoDestroy; otherwise the exchange was cut
      if (!client.writableFinished) res.destroy();
      cb(error);
    },
  }) as ClientResponse;
  Object.defineProperties(client, {
    headersSent: { get: () => res.headersSent },
    writeHead: {
      value(status: number, headers: Record<string, string | string[]>) {
        // the agents' view of the headers replaces whatever the application stored
        for (const name of res.getHeaderNames()) res.removeHeader(name);
        own.writeHead.call(res, status, headers);
        return client;
      },
    },
  });
  res.once('close', () => {
    if (!client.writableFinished) client.destroy();
  });
  return { head, client };
}
