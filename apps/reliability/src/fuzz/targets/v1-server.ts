/**
 * Fuzz target: the legacy v1 `AgentServer` (`[u32 BE length][JSON]` over a Unix socket).
 *
 * A connection sends a few valid requests, then junk: requests with wrong field types or
 * unknown event types, byte-mutated JSON, the wrong encoding, broken lengths. v1 has no
 * correlation, so the server closes a connection at the first request it cannot serve;
 * until then every request is answered, in order, with a valid response (a failing
 * handler with a block 500). A well-framed connection ends with a valid probe request.
 */
import { join } from 'node:path';
import { decodeV1Response, encodeV1Request, type V1Request } from '@picket/codec';
import type { AgentResponse, EventType } from '@picket/protocol';
import { AgentServer, connectV1, silentLogger, type V1Transport } from '@picket/v1';
import type { CaptureLogger } from '../../lib/capture-logger.js';
import type { GoodTraffic } from '../../lib/good-traffic.js';
import type { Rng } from '../../lib/prng.js';
import { RawConn, writeSplit } from '../../lib/raw-conn.js';
import { connectionsReleased, startGoodPair, targetLogger } from '../bookkeeping.js';
import { FuzzAgent } from '../fuzz-agent.js';
import {
  type JunkFrame,
  mutateBytes,
  mutateJson,
  mutateV1Frame,
  v1Frame,
  wrongEncoding,
} from '../mutate.js';
import {
  type ConnOutcome,
  type FuzzContext,
  FuzzFailure,
  type FuzzTarget,
  type TargetReport,
} from '../target.js';
import { EVENT_TYPES, golden, TRIGGER_URIS, validEvent } from '../templates.js';

const GUARD_MS = 15_000;

type Expect = 'allow' | 'error' | 'block403' | 'any';

export class V1ServerTarget implements FuzzTarget {
  readonly name = 'v1-server';
  private server!: AgentServer;
  private path!: string;
  private logger!: CaptureLogger;
  private goodTransport!: V1Transport;
  private good!: GoodTraffic;
  private readonly agent = new FuzzAgent('fuzz-v1');
  private readonly endedIds = new Set<string>();
  private readonly droppedIds = new Set<string>();
  private readonly counts = {
    connections: 0,
    requests: 0,
    responses: 0,
    errorResponses: 0,
    serverClosed: 0,
    fatalFrames: 0,
    partialFrames: 0,
  };

  async start(ctx: FuzzContext): Promise<void> {
    this.path = join(ctx.dir, 'v1.sock');
    this.logger = targetLogger(ctx, {
      onEntry: (e) => {
        const id = e.fields?.connectionId;
        if (typeof id !== 'string') return;
        if (e.message === 'v1 connection ended') this.endedIds.add(id);
        if (e.message.startsWith('v1 connection closed:')) this.droppedIds.add(id);
      },
    });
    this.server = new AgentServer('fuzz-v1', this.path, this.agent, { logger: this.logger });
    await this.server.run();
    this.goodTransport = await connectV1('good', this.path, {
      connections: 2,
      timeoutMs: 10_000,
      logger: silentLogger,
    });
    this.good = startGoodPair('v1 good pair', (e) => this.goodTransport.sendRequestHeaders(e));
  }

  private validRequest(rng: Rng, cid: string): { bytes: Buffer; expect: Expect } {
    const type: EventType = rng.chance(0.6) ? 'request_headers' : rng.pick(EVENT_TYPES);
    const event = validEvent(rng, type, cid);
    const payload =
      type === 'configure' ? { agent_id: 'fuzz-v1', config: { level: 1 } } : (event as object);
    const req = { version: 1, event_type: type, payload } as V1Request;
    const uri = type === 'request_headers' ? (event as { uri: string }).uri : '';
    const expect: Expect =
      uri === TRIGGER_URIS[0] || uri === TRIGGER_URIS[1]
        ? 'error'
        : uri === TRIGGER_URIS[3]
          ? 'block403'
          : type === 'request_headers'
            ? 'allow'
            : 'any';
    return { bytes: Buffer.from(encodeV1Request(req)), expect };
  }

  private junk(rng: Rng, cid: string): JunkFrame {
    const valid = this.validRequest(rng, cid).bytes;
    let payload: Uint8Array;
    switch (rng.int(0, 5)) {
      case 0:
      case 1:
        payload = mutateJson(rng, valid);
        break;
      case 2:
        payload = mutateBytes(rng, valid);
        break;
      case 3:
        payload = mutateBytes(rng, golden('V10a').subarray(4));
        break;
      case 4:
        payload = wrongEncoding(rng, valid);
        break;
      default:
        payload = rng.bytes(rng.size(1024));
    }
    return mutateV1Frame(rng, payload);
  }

  async connection(rng: Rng, index: number): Promise<ConnOutcome> {
    this.counts.connections++;
    const conn = await RawConn.connect(this.path, 'v1');
    try {
      return await this.run(rng, index, conn);
    } finally {
      conn.destroy();
    }
  }

  private async run(rng: Rng, index: number, conn: RawConn): Promise<ConnOutcome> {
    const parts: Buffer[] = [];
    const expects: Expect[] = [];
    const nValid = rng.int(0, 3);
    for (let i = 0; i < nValid; i++) {
      const r = this.validRequest(rng, `v-${index}-${i}`);
      parts.push(v1Frame(r.bytes));
      expects.push(r.expect);
    }
    let last: JunkFrame | undefined;
    const nJunk = rng.int(1, 4);
    for (let i = 0; i < nJunk; i++) {
      last = this.junk(rng, `j-${index}-${i}`);
      parts.push(last.bytes);
      if (last.kind !== 'complete') break;
      expects.push('any');
    }
    const complete = last?.kind === 'complete';
    if (complete) {
      const probe = this.validRequest(rng, `probe-${index}`);
      parts.push(v1Frame(probe.bytes));
      expects.push(probe.expect);
    }
    this.counts.requests += parts.length;
    await writeSplit(conn, Buffer.concat(parts), rng.chance(0.2) ? rng.int(2, 5) : 1, (m) =>
      rng.int(0, m),
    );

    if (complete) {
      // Either every request is answered, or the server closed at a request it could not serve.
      await conn.until(
        () => conn.frames.length >= expects.length,
        GUARD_MS,
        `answers on #${index}`,
      );
      if (conn.frames.length < expects.length && conn.peerClosed) this.counts.serverClosed++;
    } else {
      if (last?.kind === 'fatal') this.counts.fatalFrames++;
      else {
        this.counts.partialFrames++;
        conn.end();
      }
      await conn.whenClosed(GUARD_MS, `server closing #${index} after a broken frame`);
      if (last?.kind === 'fatal') {
        if (!conn.peerClosed)
          throw new FuzzFailure(`#${index}: broken frame did not close the connection`);
        this.counts.serverClosed++;
      }
    }
    // A length a few bytes short can still make a whole (answerable) request of a partial frame.
    if (last?.kind === 'partial') expects.push('any');
    if (conn.frames.length > expects.length) {
      throw new FuzzFailure(
        `#${index}: ${expects.length} requests got ${conn.frames.length} answers`,
      );
    }
    conn.frames.forEach((f, k) => {
      let r: AgentResponse;
      try {
        r = decodeV1Response(f.payload);
      } catch (err) {
        throw new FuzzFailure(`#${index}: undecodable answer ${k}: ${(err as Error).message}`);
      }
      this.counts.responses++;
      const isError =
        typeof r.decision === 'object' && 'block' in r.decision && r.decision.block.status === 500;
      if (isError) this.counts.errorResponses++;
      const want = expects[k];
      if (want === 'error' && !isError)
        throw new FuzzFailure(`#${index}: failing handler answered ${JSON.stringify(r.decision)}`);
      if (want === 'allow' && r.decision !== 'allow')
        throw new FuzzFailure(
          `#${index}: valid request ${k} answered ${JSON.stringify(r.decision)}`,
        );
    });
    conn.end();
    await conn.whenClosed(GUARD_MS, `close of #${index}`);
    return { frames: parts.length };
  }

  async finish(): Promise<TargetReport> {
    const good = await this.good.stop();
    const failures = await connectionsReleased(
      {
        unit: 'connections',
        opened: this.counts.connections,
        ended: this.endedIds,
        endedLabel: 'logged ends',
        held: () => this.server.connectionCount,
        good: 2,
      },
      GUARD_MS,
    );
    if (this.droppedIds.size < this.counts.serverClosed) {
      failures.push(
        `${this.counts.serverClosed} connections closed by the server, ${this.droppedIds.size} reasons logged`,
      );
    }
    await this.goodTransport.close();
    await this.server.close();
    return {
      failures,
      good,
      stats: {
        ...this.counts,
        dropReasonsLogged: this.droppedIds.size,
        handlerThrew: this.agent.stats.thrown,
      },
    };
  }
}
