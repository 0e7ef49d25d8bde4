/**
 * Fuzz target: `UdsAgentServerV2` (agent side of v2 over a Unix socket).
 *
 * A connection either sends junk where the handshake belongs, or completes a handshake
 * (JSON, msgpack or CBOR) and then sends a batch of frames: events with wrong field types,
 * events in the wrong encoding, byte-mutated payloads, junk cancels and pings, frames a
 * proxy should never send, and now and then a frame that breaks the framing. A batch that
 * stays well-framed ends with a probe ping; the server must echo it and answer every
 * event exactly once (a junk event gets a block 500), so one connection carries many
 * cases. A broken frame must make the server close that connection, with a reason logged.
 */
import { join } from 'node:path';
import {
  createMessageCodec,
  encodeCancel,
  encodeHandshakeRequest,
  getCodec,
  type MessageCodec,
} from '@picket/codec';
import {
  type AgentResponse,
  EVENT_TYPE_NUMBERS,
  type EventType,
  MessageType,
  PROTOCOL_VERSION,
  ZENTINEL_PROXY_ID,
} from '@picket/protocol';
import { AgentClientV2Uds, silentLogger, UdsAgentServerV2 } from '@picket/uds';
import type { CaptureLogger } from '../../lib/capture-logger.js';
import type { GoodTraffic } from '../../lib/good-traffic.js';
import type { Rng } from '../../lib/prng.js';
import { RawConn, writeSplit } from '../../lib/raw-conn.js';
import { connectionsReleased, startGoodPair, targetLogger } from '../bookkeeping.js';
import { FuzzAgent } from '../fuzz-agent.js';
import {
  type Encoding,
  encodeRaw,
  type JunkFrame,
  LIVE_TYPES,
  mutateBytes,
  mutateJson,
  mutateV2Frame,
  mutateValue,
  v2Frame,
  wrongEncoding,
} from '../mutate.js';
import {
  type ConnOutcome,
  type FuzzContext,
  FuzzFailure,
  type FuzzTarget,
  type TargetReport,
} from '../target.js';
import { EVENT_TYPES, golden, TRIGGER_URIS, validEvent, validResponse } from '../templates.js';

const EVENT_FRAME_TYPES = new Set<number>(Object.values(EVENT_TYPE_NUMBERS).map((n) => 0x0f + n));
const ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];
/** Golden payloads in each encoding family, to send "in the wrong encoding". */
const FOREIGN_EVENT_VECTORS = ['V3', 'V4', 'V4b', 'V11a', 'V11b', 'V11c', 'V11d'];
const GUARD_MS = 15_000;

/** Messages of UdsAgentServerV2 / AgentConnection that say why a connection ended. */
export function isUdsCloseReason(message: string): boolean {
  return (
    message.startsWith('closing connection') ||
    message === 'connection closed' ||
    message === 'connection ended before the handshake' ||
    message === 'handshake refused by the handler' ||
    message.startsWith('handler.capabilities() threw') ||
    message.startsWith('could not send the handshake response') ||
    message === 'handshake failed unexpectedly'
  );
}

interface Expectation {
  kind: 'allow' | 'error' | 'block403' | 'any';
}

export class UdsServerTarget implements FuzzTarget {
  readonly name = 'uds-server';
  private server!: UdsAgentServerV2;
  private path!: string;
  private logger!: CaptureLogger;
  private good!: GoodTraffic;
  private goodClient!: AgentClientV2Uds;
  private readonly agent = new FuzzAgent();
  private readonly closeIds = new Set<string>();
  private readonly warnCloseIds = new Set<string>();
  private readonly counts = {
    connections: 0,
    handshakes: 0,
    events: 0,
    replies: 0,
    errorReplies: 0,
    serverClosed: 0,
    fatalFrames: 0,
    partialFrames: 0,
  };

  async start(ctx: FuzzContext): Promise<void> {
    this.path = join(ctx.dir, 'uds-server.sock');
    this.logger = targetLogger(ctx, {
      onEntry: (e) => {
        const id = e.fields?.connection;
        if (typeof id !== 'string' || !isUdsCloseReason(e.message)) return;
        this.closeIds.add(id);
        if (e.level === 'warn' || e.level === 'error') this.warnCloseIds.add(id);
      },
    });
    this.server = new UdsAgentServerV2(this.path, this.agent, {
      logger: this.logger,
      handshakeTimeoutMs: 5000,
    });
    await this.server.listen();
    this.goodClient = await AgentClientV2Uds.connect('good', this.path, {
      timeoutMs: 10_000,
      logger: silentLogger,
      encodings: ['msgpack', 'json'],
    });
    this.good = startGoodPair('uds-server good pair', (e) => this.goodClient.sendRequestHeaders(e));
  }

  async connection(rng: Rng, index: number): Promise<ConnOutcome> {
    this.counts.connections++;
    const conn = await RawConn.connect(this.path);
    try {
      return await this.run(rng, index, conn);
    } finally {
      conn.destroy();
    }
  }

  private async run(rng: Rng, index: number, conn: RawConn): Promise<ConnOutcome> {
    let frames = 0;
    let encoding: Encoding | undefined;

    if (rng.chance(0.15)) {
      // Junk where the handshake belongs.
      const junk = this.junkHandshake(rng);
      frames++;
      await writeSplit(conn, junk.bytes, rng.int(1, 3), (m) => rng.int(0, m));
      encoding = await this.settleFirstFrame(conn, junk, index);
      if (encoding === undefined) return { frames };
    } else {
      const offered = rng.shuffle(ENCODINGS).slice(0, rng.int(1, 3));
      conn.write(
        v2Frame(
          MessageType.HandshakeRequest,
          encodeHandshakeRequest({
            supported_versions: [PROTOCOL_VERSION],
            proxy_id: ZENTINEL_PROXY_ID,
            proxy_version: '0.6.20',
            config: null,
            supported_encodings: offered,
          }),
        ),
      );
      frames++;
      await conn.until(() => conn.frames.length > 0, GUARD_MS, `handshake response #${index}`);
      encoding = this.handshakeEncoding(conn, index);
    }
    this.counts.handshakes++;
    return { frames: frames + (await this.batch(rng, index, conn, encoding)) };
  }

  /** Sends a batch of frames after a completed handshake; returns how many. */
  private async batch(rng: Rng, index: number, conn: RawConn, encoding: Encoding): Promise<number> {
    const codec = createMessageCodec(encoding, { binaryBodies: true });
    const count = rng.int(1, 150);
    const parts: Buffer[] = [];
    const expectations = new Map<string, Expectation>();
    let events = 0;
    let last: JunkFrame | undefined;
    for (let i = 0; i < count; i++) {
      const frame = this.batchFrame(rng, codec, encoding, `ev-${index}-${i}`, expectations);
      parts.push(frame.bytes);
      last = frame;
      if (frame.kind !== 'complete') break;
      if (EVENT_FRAME_TYPES.has(frame.type)) events++;
    }
    const sent = parts.length;
    this.counts.events += events;
    const bytes = Buffer.concat(parts);
    await writeSplit(conn, bytes, rng.chance(0.2) ? rng.int(2, 6) : 1, (m) => rng.int(0, m));

    if (last?.kind === 'fatal') {
      this.counts.fatalFrames++;
      await conn.whenClosed(GUARD_MS, `server closing #${index} after a broken frame`);
      if (!conn.peerClosed) throw new FuzzFailure(`#${index}: connection not closed by the server`);
      this.counts.serverClosed++;
      this.checkReplies(conn, codec, index, expectations, events, true);
      return sent;
    }
    if (last?.kind === 'partial') {
      this.counts.partialFrames++;
      // The decoder waits for bytes that never come (or is out of step): our EOF must end it.
      conn.end();
      await conn.whenClosed(GUARD_MS, `server closing #${index} after EOF mid-frame`);
      // A length a few bytes short still makes a whole (junk) event out of the partial frame.
      const maybeEvent = EVENT_FRAME_TYPES.has(last.type) ? 1 : 0;
      this.checkReplies(conn, codec, index, expectations, events + maybeEvent, true);
      return sent;
    }
    // Still well-framed: the server must echo the probe and answer every event.
    const probe = Buffer.from(`{"sequence":${4_000_000_000 + index},"timestamp_ms":${index}}`);
    conn.write(v2Frame(MessageType.Ping, probe));
    const answered = (): boolean =>
      conn.frames.some(
        (f) => f.type === MessageType.Pong && Buffer.from(f.payload).equals(probe),
      ) && conn.frames.filter((f) => f.type === MessageType.AgentResponse).length >= events;
    await conn.until(answered, GUARD_MS, `probe and ${events} replies on #${index}`);
    if (!answered()) {
      throw new FuzzFailure(
        `#${index}: well-framed connection closed by the server (${conn.frames.length} frames back)`,
      );
    }
    this.checkReplies(conn, codec, index, expectations, events, false);
    conn.end();
    await conn.whenClosed(GUARD_MS, `close of #${index}`);
    return sent + 1;
  }

  /** Every reply must decode, route to an event we sent, and never turn a failure into allow. */
  private checkReplies(
    conn: RawConn,
    codec: MessageCodec,
    index: number,
    expectations: Map<string, Expectation>,
    events: number,
    dying: boolean,
  ): void {
    let replies = 0;
    for (const f of conn.frames) {
      if (f.type !== MessageType.AgentResponse) continue;
      replies++;
      let r: AgentResponse;
      try {
        r = codec.decodeResponse(f.payload);
      } catch (err) {
        throw new FuzzFailure(
          `#${index}: server sent an undecodable reply: ${(err as Error).message}`,
        );
      }
      const cid = r.audit.custom.correlation_id;
      const isError =
        typeof r.decision === 'object' && 'block' in r.decision && r.decision.block.status === 500;
      if (isError) this.counts.errorReplies++;
      const want = typeof cid === 'string' ? expectations.get(cid) : undefined;
      if (want === undefined) continue;
      if (want.kind === 'error' && !isError) {
        throw new FuzzFailure(
          `#${index}: failing handler for ${cid} answered ${JSON.stringify(r.decision)}`,
        );
      }
      if (want.kind === 'allow' && r.decision !== 'allow') {
        throw new FuzzFailure(
          `#${index}: valid event ${cid} answered ${JSON.stringify(r.decision)}`,
        );
      }
    }
    this.counts.replies += replies;
    if (replies > events || (!dying && replies !== events)) {
      throw new FuzzFailure(`#${index}: ${events} events got ${replies} replies`);
    }
  }

  private batchFrame(
    rng: Rng,
    codec: MessageCodec,
    encoding: Encoding,
    cid: string,
    expectations: Map<string, Expectation>,
  ): JunkFrame {
    const raw = getCodec(encoding);
    const kind = rng.weighted<string>([
      [62, 'event'],
      [8, 'foreign'],
      [8, 'cancel'],
      [8, 'ping'],
      [8, 'unexpected'],
      [6, 'random'],
    ]);
    let type: number;
    let payload: Uint8Array;
    switch (kind) {
      case 'event': {
        const eventType: EventType = rng.pick(EVENT_TYPES);
        type = 0x0f + EVENT_TYPE_NUMBERS[eventType];
        const event = validEvent(rng, eventType, cid);
        const valid = codec.encodeEvent(eventType, event, cid);
        const mode = rng.weighted<string>([
          [15, 'valid'],
          [55, 'value'],
          [30, 'bytes'],
        ]);
        if (mode === 'valid') {
          payload = valid;
          const uri = eventType === 'request_headers' ? (event as { uri: string }).uri : '';
          expectations.set(cid, {
            kind:
              uri === TRIGGER_URIS[0] || uri === TRIGGER_URIS[1]
                ? 'error'
                : uri === TRIGGER_URIS[3]
                  ? 'block403'
                  : eventType === 'request_headers' || eventType === 'request_body_chunk'
                    ? 'allow'
                    : 'any',
          });
        } else if (mode === 'value') {
          payload =
            encodeRaw(encoding, mutateValue(rng, raw.decode(valid))) ?? mutateBytes(rng, valid);
        } else {
          payload = mutateBytes(rng, valid);
        }
        break;
      }
      case 'foreign': {
        // a golden event in whatever encoding it was captured in (often not ours), mutated or not
        const g = golden(rng.pick(FOREIGN_EVENT_VECTORS));
        type = g[4] as number;
        payload = rng.chance(0.5) ? g.subarray(5) : mutateBytes(rng, g.subarray(5));
        break;
      }
      case 'cancel': {
        type = MessageType.Cancel;
        const valid = encodeCancel({
          correlation_id: `cx-${rng.u32()}`,
          reason: rng.int(0, 5),
          timestamp_ms: 1767225600000,
        });
        if (rng.chance(0.3)) payload = valid;
        else if (rng.chance(0.5)) payload = mutateBytes(rng, valid);
        else {
          // Keep the cancel away from the events' ids: a cancel that hits a real event
          // rightly suppresses its reply, which would upset the reply count.
          const v = mutateValue(rng, JSON.parse(Buffer.from(valid).toString()));
          if (v !== null && typeof v === 'object' && 'correlation_id' in v) {
            const o = v as { correlation_id: unknown };
            if (typeof o.correlation_id === 'string') o.correlation_id = `cx-${o.correlation_id}`;
          }
          payload = encodeRaw('json', v) ?? valid;
        }
        break;
      }
      case 'ping':
        type = MessageType.Ping;
        payload = rng.chance(0.5)
          ? golden('V7').subarray(5)
          : mutateBytes(rng, golden('V7').subarray(5));
        break;
      case 'unexpected': {
        // live types a proxy never sends: answers, control frames, a second handshake
        type = rng.pick([0x01, 0x02, 0x20, 0x30, 0x31, 0x32, 0x33, 0x42]);
        const base = encodeRaw(encoding, validResponse(rng, `cx-${rng.u32()}`)) ?? Buffer.alloc(0);
        payload = rng.chance(0.5) ? base : mutateBytes(rng, base);
        break;
      }
      default:
        type = rng.pick(LIVE_TYPES);
        payload = rng.bytes(rng.size(2048));
    }
    return mutateV2Frame(rng, type, payload, 0.02);
  }

  private junkHandshake(rng: Rng): JunkFrame {
    const base = golden(rng.pick(['V1', 'V1b'])).subarray(5);
    const mode = rng.int(0, 4);
    let payload: Uint8Array;
    let type: number = MessageType.HandshakeRequest;
    if (mode === 0) payload = mutateBytes(rng, base);
    else if (mode <= 2) payload = mutateJson(rng, base);
    else if (mode === 3) {
      type = rng.pick(LIVE_TYPES.filter((t) => t !== MessageType.HandshakeRequest));
      payload = rng.chance(0.5) ? golden('V3').subarray(5) : rng.bytes(rng.size(256));
    } else {
      payload = wrongEncoding(rng, base);
    }
    return mutateV2Frame(rng, type, payload, 0.3);
  }

  /**
   * After junk in the handshake slot: a broken frame must be closed by the server; a whole
   * frame must be answered with a handshake response or closed; a partial one is ended
   * by our EOF. Returns the encoding when the junk happened to be an acceptable handshake.
   */
  private async settleFirstFrame(
    conn: RawConn,
    junk: JunkFrame,
    index: number,
  ): Promise<Encoding | undefined> {
    if (junk.kind === 'partial') {
      this.counts.partialFrames++;
      conn.end();
      // whatever the server made of it, our EOF must end the connection
      await conn.whenClosed(GUARD_MS, `server closing #${index} after a partial handshake`);
      return undefined;
    }
    if (junk.kind === 'fatal') this.counts.fatalFrames++;
    await conn.until(
      () => conn.frames.length > 0,
      GUARD_MS,
      `server reaction to junk handshake #${index}`,
    );
    if (conn.frames.length === 0) {
      if (!conn.peerClosed)
        throw new FuzzFailure(`#${index}: junk handshake neither answered nor closed`);
      this.counts.serverClosed++;
      return undefined;
    }
    if (junk.kind === 'fatal' || junk.type !== MessageType.HandshakeRequest) {
      throw new FuzzFailure(`#${index}: server answered a junk first frame (type ${junk.type})`);
    }
    return this.handshakeEncoding(conn, index);
  }

  private handshakeEncoding(conn: RawConn, index: number): Encoding {
    const f = conn.frames.shift();
    if (f === undefined)
      throw new FuzzFailure(`#${index}: no handshake response (connection closed)`);
    if (f.type !== MessageType.HandshakeResponse) {
      throw new FuzzFailure(`#${index}: expected a handshake response, got type ${f.type}`);
    }
    const r = JSON.parse(Buffer.from(f.payload).toString()) as {
      success: boolean;
      encoding: Encoding;
    };
    if (r.success !== true)
      throw new FuzzFailure(`#${index}: handshake refused: ${JSON.stringify(r)}`);
    return r.encoding;
  }

  async finish(): Promise<TargetReport> {
    const good = await this.good.stop();
    const failures = await connectionsReleased(
      {
        unit: 'connections',
        opened: this.counts.connections,
        ended: this.closeIds,
        endedLabel: 'logged close reasons',
        held: () => this.server.connections.size,
        good: 1,
      },
      GUARD_MS,
    );
    if (this.warnCloseIds.size < this.counts.serverClosed) {
      failures.push(
        `${this.counts.serverClosed} connections closed by the server but only ${this.warnCloseIds.size} warn-level reasons`,
      );
    }
    await this.goodClient.close();
    await this.server.close({ drainTimeoutMs: 1000 });
    return {
      failures,
      good,
      stats: {
        ...this.counts,
        closeReasonsLogged: this.closeIds.size,
        warnCloseReasons: this.warnCloseIds.size,
        handlerThrew: this.agent.stats.thrown,
        handlerGarbage: this.agent.stats.garbage,
      },
    };
  }
}
