/**
 * Fuzz target: `AgentClientV2Uds` (proxy side of v2 over a Unix socket), facing a fake
 * agent socket that answers the handshake with junk, or answers it properly and then
 * sends junk replies (wrong field types, wrong encodings, replies to nobody), junk control
 * frames (health, metrics, config update, flow control), junk pongs, frames an agent never
 * sends, and now and then a frame that breaks the framing — while the client has calls in
 * flight. Every call must settle (never hang), a call may only resolve with a reply
 * carrying its own correlation id, a failed connect must reject with a reason naming the
 * connection, and a connection lost to junk must log why.
 */
import * as net from 'node:net';
import { join } from 'node:path';
import { encodeHandshakeResponse } from '@picket/codec';
import {
  AgentProtocolError,
  type HandshakeResponse,
  MessageType,
  PROTOCOL_VERSION,
} from '@picket/protocol';
import { AgentClientV2Uds, silentLogger, UdsAgentServerV2 } from '@picket/uds';
import type { CaptureLogger } from '../../lib/capture-logger.js';
import type { GoodTraffic } from '../../lib/good-traffic.js';
import type { Rng } from '../../lib/prng.js';
import { RawConn, within, writeSplit } from '../../lib/raw-conn.js';
import { startGoodPair, targetLogger } from '../bookkeeping.js';
import { FuzzAgent } from '../fuzz-agent.js';
import {
  type Encoding,
  encodeRaw,
  LIVE_TYPES,
  mutateBytes,
  mutateJson,
  mutateV2Frame,
  v2Frame,
  wrongEncoding,
} from '../mutate.js';
import { junkTheProxy, proxyJunkCounts } from '../proxy-junk.js';
import {
  type ConnOutcome,
  type FuzzContext,
  FuzzFailure,
  type FuzzTarget,
  type TargetReport,
} from '../target.js';
import { capabilities, golden } from '../templates.js';

const ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];
const GUARD_MS = 15_000;
const CALL_TIMEOUT_MS = 3000;

/** One fake agent socket; fuzz connections borrow it one at a time. */
interface FakeAgent {
  path: string;
  server: net.Server;
  accept: ((socket: net.Socket) => void) | undefined;
}

export class UdsClientTarget implements FuzzTarget {
  readonly name = 'uds-client';
  private dir!: string;
  private logger!: CaptureLogger;
  private readonly free: FakeAgent[] = [];
  private readonly all: FakeAgent[] = [];
  private readonly lostIds = new Set<string>();
  private goodServer!: UdsAgentServerV2;
  private goodClient!: AgentClientV2Uds;
  private good!: GoodTraffic;
  private readonly counts = {
    connections: 0,
    connectRejected: 0,
    connectResolved: 0,
    ...proxyJunkCounts(),
  };

  async start(ctx: FuzzContext): Promise<void> {
    this.dir = ctx.dir;
    this.logger = targetLogger(ctx, {
      onEntry: (e) => {
        if (e.message === 'connection to agent lost' && typeof e.fields?.connection === 'string') {
          this.lostIds.add(e.fields.connection);
        }
      },
    });
    const goodPath = join(ctx.dir, 'uds-client-good.sock');
    this.goodServer = new UdsAgentServerV2(goodPath, new FuzzAgent('good'), {
      logger: silentLogger,
    });
    await this.goodServer.listen();
    this.goodClient = await AgentClientV2Uds.connect('good', goodPath, {
      timeoutMs: 10_000,
      logger: silentLogger,
    });
    this.good = startGoodPair('uds-client good pair', (e) => this.goodClient.sendRequestHeaders(e));
  }

  private async acquire(): Promise<FakeAgent> {
    const ready = this.free.pop();
    if (ready !== undefined) return ready;
    const fake: FakeAgent = {
      path: join(this.dir, `fake-agent-${this.all.length}.sock`),
      server: net.createServer((socket) => {
        const take = fake.accept;
        fake.accept = undefined;
        if (take === undefined) socket.destroy();
        else take(socket);
      }),
      accept: undefined,
    };
    // claimed before the first await, so concurrent acquires never pick the same path
    this.all.push(fake);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(fake.path, () => resolve());
    });
    return fake;
  }

  async connection(rng: Rng, index: number): Promise<ConnOutcome> {
    this.counts.connections++;
    const fake = await this.acquire();
    let agent: RawConn | undefined;
    try {
      const accepted = new Promise<net.Socket>((resolve) => {
        fake.accept = resolve;
      });
      const offered = rng.shuffle(ENCODINGS).slice(0, rng.int(1, 3));
      const short = rng.chance(0.01);
      const connecting = AgentClientV2Uds.connect(`fz${index}`, fake.path, {
        logger: this.logger,
        encodings: offered,
        handshakeTimeoutMs: short ? 200 : 5000,
        timeoutMs: CALL_TIMEOUT_MS,
      });
      // Never leave a rejection unobserved while we are busy elsewhere.
      const connected = connecting.then(
        (client) => ({ client }),
        (error: unknown) => ({ error }),
      );
      const peer = new RawConn(await within(accepted, GUARD_MS, `client #${index} connecting`));
      agent = peer;
      await peer.until(() => peer.frames.length > 0, GUARD_MS, `client #${index} handshake`);
      const hello = peer.frames.shift();
      if (hello?.type !== MessageType.HandshakeRequest) {
        throw new FuzzFailure(`#${index}: client's first frame is not a handshake request`);
      }
      if (short || rng.chance(0.25))
        return await this.badHandshake(rng, index, peer, connected, offered, short);
      return await this.junkStream(rng, index, peer, connected, offered);
    } finally {
      agent?.destroy();
      fake.accept = undefined;
      this.free.push(fake);
    }
  }

  private handshakeResponse(rng: Rng, encoding: string, success = true): HandshakeResponse {
    return {
      protocol_version: PROTOCOL_VERSION,
      capabilities: capabilities('fake-agent'),
      success,
      error: success ? null : 'refused by fuzz',
      encoding: encoding as Encoding,
      ...(rng.chance(0.5) ? { picket: { version: 1, binary_bodies: rng.chance(0.5) } } : {}),
    };
  }

  private async badHandshake(
    rng: Rng,
    index: number,
    agent: RawConn,
    connected: Promise<{ client: AgentClientV2Uds } | { error: unknown }>,
    offered: Encoding[],
    silent: boolean,
  ): Promise<ConnOutcome> {
    let frames = 0;
    if (!silent) {
      const valid = Buffer.from(
        encodeHandshakeResponse(this.handshakeResponse(rng, rng.pick(offered))),
      );
      let type: number = MessageType.HandshakeResponse;
      let payload: Uint8Array;
      switch (rng.int(0, 6)) {
        case 0:
          payload = mutateBytes(rng, valid);
          break;
        case 1:
        case 2:
          payload = mutateJson(rng, valid);
          break;
        case 3:
          payload = encodeHandshakeResponse(this.handshakeResponse(rng, 'json', false));
          break;
        case 4: {
          // an encoding that was not offered, or that does not exist
          const r = this.handshakeResponse(rng, rng.pick(['xml', 'cbor', 'msgpack', '', 'JSON']));
          payload = encodeRaw('json', r) ?? valid;
          break;
        }
        case 5:
          type = rng.pick(LIVE_TYPES.filter((t) => t !== MessageType.HandshakeResponse));
          payload = rng.chance(0.5) ? golden('V5').subarray(5) : rng.bytes(rng.size(300));
          break;
        default:
          payload = wrongEncoding(rng, valid);
      }
      const frame = mutateV2Frame(rng, type, payload, 0.3);
      frames = 1;
      await writeSplit(agent, frame.bytes, rng.int(1, 3), (m) => rng.int(0, m));
      if (frame.kind === 'partial') agent.end();
    }
    const result = await within(connected, GUARD_MS, `connect() of #${index} settling`);
    if ('error' in result) {
      this.counts.connectRejected++;
      const e = result.error;
      if (!(e instanceof AgentProtocolError) || !e.message.includes(`uds:fz${index}#`)) {
        throw new FuzzFailure(
          `#${index}: connect() rejected without a reason naming the connection: ${String(e)}`,
        );
      }
    } else {
      this.counts.connectResolved++;
      await within(result.client.close(), GUARD_MS, `close of #${index}`);
    }
    return { frames };
  }

  private async junkStream(
    rng: Rng,
    index: number,
    agent: RawConn,
    connected: Promise<{ client: AgentClientV2Uds } | { error: unknown }>,
    offered: Encoding[],
  ): Promise<ConnOutcome> {
    const encoding = rng.chance(0.9) ? rng.pick(offered) : 'json';
    agent.write(
      v2Frame(
        MessageType.HandshakeResponse,
        encodeHandshakeResponse(this.handshakeResponse(rng, encoding)),
      ),
    );
    const result = await within(connected, GUARD_MS, `connect() of #${index}`);
    if ('error' in result)
      throw new FuzzFailure(`#${index}: valid handshake refused: ${String(result.error)}`);
    this.counts.connectResolved++;
    return {
      frames:
        1 +
        (await junkTheProxy(rng, index, agent, result.client, encoding, this.counts, this.lostIds)),
    };
  }

  async finish(): Promise<TargetReport> {
    const good = await this.good.stop();
    await this.goodClient.close();
    await this.goodServer.close({ drainTimeoutMs: 1000 });
    await Promise.all(
      this.all.map((f) => new Promise<void>((resolve) => f.server.close(() => resolve()))),
    );
    return {
      failures: [],
      good,
      stats: { ...this.counts, lossReasonsLogged: this.lostIds.size },
    };
  }
}
