/**
 * Fuzz target: `GrpcAgentServerV2` (`zentinel.agent.v2.AgentServiceV2/ProcessStream`).
 *
 * A raw grpc-js client with a passthrough serializer opens ProcessStreams and writes junk
 * protobuf messages: random bytes, byte-mutated events, well-formed messages with junk
 * field values, random field soup, unknown oneof members, junk cancels and pings. HTTP/2
 * itself is not fuzzed. A stream that survives its batch ends with a probe ping that must
 * be answered; every stream must end (status received), every message the server sends
 * must decode, and the server must drop every session when its stream ends.
 */
import * as grpc from '@grpc/grpc-js';
import { AgentClientV2, GrpcAgentServerV2, METHOD_PATHS } from '@picket/grpc';
import {
  encodeProxyToAgent,
  eventToProto,
  handshakeRequestToProto,
  pb,
} from '@picket/grpc/internal';
import { type EventType, PROTOCOL_VERSION } from '@picket/protocol';
import type { CaptureLogger } from '../../lib/capture-logger.js';
import type { GoodTraffic } from '../../lib/good-traffic.js';
import type { Rng } from '../../lib/prng.js';
import { within } from '../../lib/raw-conn.js';
import { connectionsReleased, startGoodPair, targetLogger } from '../bookkeeping.js';
import { FuzzAgent } from '../fuzz-agent.js';
import { junkValue, mutateBytes, mutateValue } from '../mutate.js';
import {
  type ConnOutcome,
  type FuzzContext,
  FuzzFailure,
  type FuzzTarget,
  type TargetReport,
} from '../target.js';
import { EVENT_TYPES, validEvent } from '../templates.js';

const GUARD_MS = 15_000;
const RAW_CLIENTS = 4;
/** ProxyToAgent members that are events (each is answered once after a handshake). */
const EVENT_MEMBERS = new Set([
  'request_headers',
  'request_body_chunk',
  'response_headers',
  'response_body_chunk',
  'request_complete',
  'websocket_frame',
  'guardrail',
  'configure',
]);
const pass = (b: Buffer): Buffer => b;

/** Protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  let hi = Math.floor(n / 2 ** 32);
  for (;;) {
    if (hi === 0 && v < 0x80) {
      out.push(v);
      return out;
    }
    out.push((v & 0x7f) | 0x80);
    v = (v >>> 7) | ((hi & 0x7f) << 25);
    hi = Math.floor(hi / 128);
  }
}

/** Random protobuf fields (any wire type, any field number), nested now and then. */
function fieldSoup(rng: Rng, depth = 0): Buffer {
  const parts: number[] = [];
  const n = rng.int(1, 8);
  for (let i = 0; i < n; i++) {
    const field = rng.chance(0.7) ? rng.int(1, 16) : rng.int(1, 2 ** 29 - 1);
    const wire = rng.pick([0, 1, 2, 2, 2, 5, 3, 4, 6, 7]);
    parts.push(...varint(field * 8 + wire));
    switch (wire) {
      case 0:
        parts.push(...varint(rng.chance(0.5) ? rng.int(0, 300) : rng.u32() * 2 ** 20));
        break;
      case 1:
        parts.push(...rng.bytes(8));
        break;
      case 5:
        parts.push(...rng.bytes(4));
        break;
      case 2: {
        const body =
          depth < 3 && rng.chance(0.4) ? fieldSoup(rng, depth + 1) : rng.bytes(rng.size(200));
        // sometimes lie about the length
        parts.push(...varint(rng.chance(0.9) ? body.length : rng.int(0, 2 ** 31)));
        parts.push(...body);
        break;
      }
      default:
      // groups and invalid wire types: nothing follows
    }
  }
  return Buffer.from(parts);
}

/** One raw stream's view. */
interface RawStream {
  call: grpc.ClientDuplexStream<Buffer, Buffer>;
  messages: Buffer[];
  status: Promise<grpc.StatusObject>;
  done: boolean;
  wake: (() => void) | undefined;
}

export class GrpcServerTarget implements FuzzTarget {
  readonly name = 'grpc-server';
  private server!: GrpcAgentServerV2;
  private address!: string;
  private logger!: CaptureLogger;
  private raw: grpc.Client[] = [];
  private goodClient!: AgentClientV2;
  private good!: GoodTraffic;
  private readonly agent = new FuzzAgent('fuzz-grpc');
  private readonly closeIds = new Set<string>();
  /** warn-level reasons the server logged for streams it ended over undecodable bytes */
  private undecodableLogged = 0;
  private readonly statusCodes = new Map<number, number>();
  private readonly counts = {
    streams: 0,
    messages: 0,
    handshakes: 0,
    replies: 0,
    probesAnswered: 0,
    endedByServer: 0,
  };

  async start(ctx: FuzzContext): Promise<void> {
    this.logger = targetLogger(ctx, {
      onEntry: (e) => {
        const id = e.fields?.connectionId;
        if (e.message === 'ProcessStream closed' && typeof id === 'string') this.closeIds.add(id);
        if (e.level === 'warn' && /undecodable/.test(e.message)) this.undecodableLogged++;
      },
    });
    this.server = new GrpcAgentServerV2(this.agent, { logger: this.logger });
    this.address = (await this.server.listen('127.0.0.1:0')).address;
    for (let i = 0; i < RAW_CLIENTS; i++) {
      this.raw.push(new grpc.Client(this.address, grpc.credentials.createInsecure()));
    }
    this.goodClient = await AgentClientV2.connect('good', this.address, { timeoutMs: 10_000 });
    this.good = startGoodPair('grpc good pair', (e) => this.goodClient.sendRequestHeaders(e));
  }

  private open(index: number): RawStream {
    const client = this.raw[index % RAW_CLIENTS] as grpc.Client;
    const call = client.makeBidiStreamRequest(METHOD_PATHS.ProcessStream, pass, pass);
    const s: RawStream = {
      call,
      messages: [],
      done: false,
      wake: undefined,
      status: new Promise((resolve) => {
        call.on('status', (st: grpc.StatusObject) => {
          s.done = true;
          resolve(st);
          s.wake?.();
        });
      }),
    };
    call.on('data', (b: Buffer) => {
      s.messages.push(b);
      s.wake?.();
    });
    call.on('error', () => {
      // the status event carries the outcome
    });
    return s;
  }

  private until(s: RawStream, check: () => boolean, what: string): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const test = (): void => {
          if (check() || s.done) {
            s.wake = undefined;
            resolve();
          } else s.wake = test;
        };
        test();
      }),
      GUARD_MS,
      what,
    );
  }

  private write(s: RawStream, bytes: Buffer): void {
    if (!s.done && s.call.writable) s.call.write(bytes);
  }

  private handshake(rng: Rng): Buffer {
    const valid = encodeProxyToAgent({
      handshake: handshakeRequestToProto({
        supported_versions: [PROTOCOL_VERSION],
        proxy_id: 'fuzz-proxy',
        proxy_version: '0.0.0',
        config: null,
        supported_encodings: [],
      }),
    });
    return rng.chance(0.9) ? valid : mutateBytes(rng, valid);
  }

  private junkMessage(rng: Rng, index: number, i: number): Buffer {
    const kind = rng.weighted<string>([
      [40, 'event-values'],
      [15, 'event-valid'],
      [4, 'event-bytes'],
      [3, 'soup'],
      [6, 'unknown-member'],
      [8, 'cancel'],
      [7, 'ping'],
      [4, 'config-response'],
      [3, 'random'],
    ]);
    const type: EventType = rng.pick(EVENT_TYPES);
    const proto = eventToProto(type, validEvent(rng, type, `g-${index}-${i}`));
    switch (kind) {
      case 'event-valid':
        return encodeProxyToAgent(proto);
      case 'event-values':
        try {
          // protobufjs encodes what it can; values of a wrong type may throw here
          return Buffer.from(pb.ProxyToAgent.encode(mutateValue(rng, proto) as never).finish());
        } catch {
          return encodeProxyToAgent(proto);
        }
      case 'event-bytes':
        return mutateBytes(rng, encodeProxyToAgent(proto));
      case 'soup':
        return fieldSoup(rng);
      case 'unknown-member': {
        const body = fieldSoup(rng);
        return Buffer.from([...varint(rng.int(12, 999) * 8 + 2), ...varint(body.length), ...body]);
      }
      case 'cancel':
        return this.safeEncode(rng, {
          // never an event's id: a cancel that hits a real event rightly suppresses its reply
          cancel: {
            correlation_id: `x-${rng.u32()}`,
            reason: rng.chance(0.5) ? rng.int(-5, 20) : junkValue(rng),
          },
        });
      case 'ping':
        return this.safeEncode(rng, {
          ping: { sequence: rng.int(0, 1e6), timestamp_ms: junkValue(rng) },
        });
      case 'config-response':
        return this.safeEncode(rng, {
          config_response: { request_id: junkValue(rng), accepted: junkValue(rng) },
        });
      default:
        return rng.bytes(rng.size(64));
    }
  }

  private safeEncode(rng: Rng, m: unknown): Buffer {
    try {
      return Buffer.from(pb.ProxyToAgent.encode(m as never).finish());
    } catch {
      return fieldSoup(rng);
    }
  }

  async connection(rng: Rng, index: number): Promise<ConnOutcome> {
    this.counts.streams++;
    const s = this.open(index);
    let sent = 0;
    let undecodable = false;
    let handshaken = false;
    let expectedReplies = 0;
    // What the server will make of a message, decided by decoding it the same way.
    const send = (bytes: Buffer): void => {
      this.write(s, bytes);
      sent++;
      let msg: ReturnType<typeof pb.ProxyToAgent.decode>;
      try {
        msg = pb.ProxyToAgent.decode(bytes);
      } catch {
        undecodable = true;
        return;
      }
      if (msg.message === 'handshake') handshaken = true;
      else if (handshaken && msg.message !== undefined && EVENT_MEMBERS.has(msg.message))
        expectedReplies++;
    };
    try {
      if (rng.chance(0.15)) {
        const n = rng.int(1, 3);
        for (let i = 0; i < n && !undecodable; i++) {
          send(rng.chance(0.5) ? this.junkMessage(rng, index, i) : this.handshake(rng));
        }
      } else {
        send(this.handshake(rng));
        if (!undecodable) {
          // (a mutated handshake may decode as another message, which gets no answer)
          if (handshaken) {
            await this.until(s, () => s.messages.length > 0, `handshake response on #${index}`);
            this.counts.handshakes++;
          }
          const k = rng.int(1, 150);
          for (let i = 0; i < k && !undecodable; i++) send(this.junkMessage(rng, index, i));
        }
      }
      if (!undecodable) {
        // Everything so far decoded: the stream must be alive and answer a probe and every event.
        const seq = 900_000_000 + index;
        this.write(s, encodeProxyToAgent({ ping: { sequence: seq, timestamp_ms: 1 } }));
        sent++;
        const replies = (): number =>
          s.messages.filter((m) => pb.AgentToProxy.decode(m).message === 'response').length;
        await this.until(
          s,
          () => this.sawPong(s, seq) && replies() >= expectedReplies,
          `probe pong on #${index}`,
        );
        if (!this.sawPong(s, seq))
          throw new FuzzFailure(
            `#${index}: a stream of decodable messages was ended by the server`,
          );
        if (replies() !== expectedReplies) {
          throw new FuzzFailure(
            `#${index}: ${expectedReplies} events after the handshake got ${replies()} replies`,
          );
        }
        this.counts.probesAnswered++;
      }
      s.call.end();
      const status = await within(s.status, GUARD_MS, `status of stream #${index}`);
      this.statusCodes.set(status.code, (this.statusCodes.get(status.code) ?? 0) + 1);
      if (undecodable) {
        this.counts.endedByServer++;
        // INTERNAL when grpc-js refuses the bytes itself, INVALID_ARGUMENT when the server does
        if (status.code === grpc.status.OK) {
          throw new FuzzFailure(`#${index}: a stream with an undecodable message ended with OK`);
        }
      }
      for (const m of s.messages) {
        try {
          const msg = pb.AgentToProxy.decode(m);
          if (msg.message === 'response') this.counts.replies++;
        } catch (err) {
          throw new FuzzFailure(
            `#${index}: server sent an undecodable message: ${(err as Error).message}`,
          );
        }
      }
      this.counts.messages += sent;
      return { frames: sent };
    } finally {
      if (!s.done) s.call.cancel();
    }
  }

  private sawPong(s: RawStream, seq: number): boolean {
    return s.messages.some((m) => {
      try {
        const msg = pb.AgentToProxy.decode(m);
        return msg.message === 'pong' && Number(msg.pong?.sequence) === seq;
      } catch {
        return false;
      }
    });
  }

  async finish(): Promise<TargetReport> {
    const good = await this.good.stop();
    const failures = await connectionsReleased(
      {
        unit: 'streams',
        opened: this.counts.streams,
        ended: this.closeIds,
        endedLabel: 'logged stream ends',
        held: () => this.server.connections,
        good: 1,
      },
      GUARD_MS,
    );
    if (this.undecodableLogged !== this.counts.endedByServer) {
      failures.push(
        `${this.counts.endedByServer} streams ended over undecodable bytes, ${this.undecodableLogged} reasons logged at warn`,
      );
    }
    await this.goodClient.close();
    for (const c of this.raw) c.close();
    await this.server.close({ drainTimeoutMs: 1000 });
    const codes = [...this.statusCodes.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([code, n]) => `${grpc.status[code] ?? code}:${n}`)
      .join(',');
    return {
      failures,
      good,
      stats: {
        ...this.counts,
        closeReasonsLogged: this.closeIds.size,
        undecodableLogged: this.undecodableLogged,
        statuses: codes,
      },
    };
  }
}
