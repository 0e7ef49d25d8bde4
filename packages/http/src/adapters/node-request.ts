/**
 * The request body of a node:http request, taken over so the agents see it first and the
 * application (or its body parser) then reads, from the same `req`, only what they cleared.
 *
 * Node's HTTP parser hands body bytes to the request with `req.push()`; replacing that
 * method on the instance diverts them to the agents, and the cleared bytes are pushed into
 * `req` with the Readable's own `push`. The `req` object stays the one the framework holds,
 * so Express's and Fastify's body parsers need no cooperation.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';

type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

interface ReadableInternals {
  _readableState: { ended: boolean; endEmitted: boolean };
  _read(n: number): void;
}

/** A request body taken over: the client's bytes, and where the cleared bytes go. */
export interface DivertedBody {
  /** the body as the client sent it */
  readonly source: AsyncIterable<Buffer>;
  /** feeds `body` to the application as the request's body (then its end) */
  refill(body: Buffer | AsyncIterable<Buffer> | undefined): Promise<void>;
}

/**
 * Takes over `req`'s body. Throws when something already read the body: picket has to run
 * before any body parser.
 */
export function divertBody(req: IncomingMessage): DivertedBody {
  const internals = req as unknown as ReadableInternals;
  const state = internals._readableState;
  if (state.endEmitted || req.readableFlowing) {
    throw new Error('the request body was already read: install picket before any body parser');
  }
  const ownPush = Readable.prototype.push as Push;
  const ownRead = Object.getPrototypeOf(req)._read as (n: number) => void;
  const raw = new PassThrough();
  // The whole body may have arrived before we got here. Reading it out of an ended stream
  // would emit 'end' and make `req` unreadable for good: it is taken as not ended yet.
  const arrived = state.ended;
  state.ended = false;
  // bytes the parser pushed before we got here
  for (let c = req.read() as Buffer | null; c !== null; c = req.read() as Buffer | null) {
    raw.write(c);
  }
  if (arrived) raw.end();
  else {
    (req as unknown as { push: Push }).push = (chunk, encoding) => {
      if (chunk === null) {
        raw.end();
        return false;
      }
      // false pauses the socket (the parser's flow control); a drain resumes it
      return raw.write(chunk as Buffer, encoding as BufferEncoding);
    };
    raw.on('drain', () => ownRead.call(req, 0));
  }
  let wake: (() => void) | undefined;
  internals._read = (n) => {
    wake?.();
    ownRead.call(req, n);
  };
  const wanted = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
    });
  return {
    source: raw,
    async refill(body) {
      if (Buffer.isBuffer(body)) {
        if (body.length > 0) ownPush.call(req, body);
      } else if (body) {
        for await (const chunk of body) {
          if (!ownPush.call(req, chunk)) await wanted();
        }
      }
      ownPush.call(req, null);
    },
  };
}

/** A request carries a body when it says so (RFC 9112 §6.3). */
export function hasBody(headers: IncomingMessage['headers']): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const cl = headers['content-length'];
  return cl !== undefined && cl !== '0';
}
