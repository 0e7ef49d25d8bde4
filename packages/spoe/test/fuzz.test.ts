/**
 * Random and mutated input: the decoders only ever refuse with a SpopError (never a
 * RangeError or a hang), and a server fed junk answers only with well-formed frames
 * (AGENT-HELLO, ACK, AGENT-DISCONNECT with a known status) while a good connection
 * next to it keeps being served.
 */
import { allow, silentLogger } from '@picket/protocol';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeActions,
  decodeFrame,
  decodeKvList,
  decodeMessages,
  parseBinaryHeaderBlock,
  SPOP_STATUS_TEXT,
  SpoeAgentServer,
  SpopError,
  SpopFrameType,
} from '../src/index.js';
import { helloFrame, notifyFrame, Peer, requestArgs } from './peer.js';

const decoders = {
  decodeFrame,
  decodeKvList,
  decodeMessages,
  decodeActions,
  parseBinaryHeaderBlock,
};

describe('decoders on random bytes', () => {
  it.each(Object.entries(decoders))('%s refuses only with SpopError', (_name, decode) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decode(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(SpopError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('mutated valid NOTIFY payloads decode or refuse with SpopError', () => {
    const valid = notifyFrame(3, 1, requestArgs('/x?y=1')).subarray(4);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(valid.length),
        (flips, cut) => {
          const bytes = Uint8Array.from(valid.subarray(0, Math.max(cut, 7)));
          for (const [at, value] of flips) if (at < bytes.length) bytes[at] = value;
          try {
            decodeMessages(decodeFrame(bytes).payload);
          } catch (err) {
            expect(err).toBeInstanceOf(SpopError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('a server fed junk', () => {
  let server: SpoeAgentServer;
  let port: number;
  beforeAll(async () => {
    server = new SpoeAgentServer(
      { capabilities: () => ({}) as never, onRequestHeaders: () => allow() },
      { port: 0, logger: silentLogger, helloTimeoutMs: 2_000 },
    );
    const [ep] = await server.listen();
    port = Number(new URL(ep as string).port);
  });
  afterAll(() => server.close());

  it('answers only with well-formed frames and keeps serving a good connection', async () => {
    const good = await Peer.connect(port);
    await good.hello();
    const hello = helloFrame();
    const notify = notifyFrame(1, 1, requestArgs('/'));
    const junk = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      // a valid HELLO, then junk or a mutated NOTIFY
      fc
        .tuple(fc.uint8Array({ maxLength: 100 }), fc.nat(notify.length - 1), fc.nat(255))
        .map(([tail, at, value]) => {
          const n = Uint8Array.from(notify);
          n[at] = value;
          return Buffer.concat([hello, n, tail]);
        }),
    );
    const samples = fc.sample(junk, { numRuns: 60, seed: 42 });
    for (const bytes of samples) {
      const p = await Peer.connect(port);
      p.send(bytes);
      // whatever comes back before the peer gives up waiting
      await Promise.race([p.closedPromise, new Promise((r) => setTimeout(r, 30))]);
      p.close();
      await p.closedPromise;
      for (;;) {
        const f = await p.next().catch(() => undefined);
        if (f === undefined) break;
        expect([
          SpopFrameType.AgentHello,
          SpopFrameType.Ack,
          SpopFrameType.AgentDisconnect,
        ]).toContain(f.type);
        if (f.type === SpopFrameType.AgentDisconnect) {
          const status = new Map(decodeKvList(f.payload)).get('status-code');
          expect(status?.type).toBe('uint32');
          expect(SPOP_STATUS_TEXT[(status as { value: number }).value]).toBeDefined();
        }
      }
    }
    good.send(notifyFrame(77, 1, requestArgs('/')));
    expect((await good.ack()).streamId).toBe(77);
    good.close();
    await expect.poll(() => server.stats.connections).toBe(0);
  });
});
