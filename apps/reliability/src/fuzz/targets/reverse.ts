/**
 * Fuzz target: `ReverseConnectionListener` (proxy side of reverse connections, on a Unix
 * socket, tokens required).
 *
 * A fuzz "agent" dials in and either sends junk where the registration belongs (mutated
 * V9a: wrong field types, wrong or mutated tokens, other type bytes, wrong encodings,
 * broken lengths), or registers properly and then junks the registered connection exactly
 * as against `AgentClientV2Uds` (the same proxy engine), with calls in flight. Every
 * socket must end up dropped, refused or registered — each with its reason logged — and
 * no token may ever appear in a log line.
 */
import { join } from 'node:path';
import { encodeRegistrationRequest } from '@picket/codec';
import { MessageType, PROTOCOL_VERSION, type RegistrationRequest } from '@picket/protocol';
import {
  connectReverse,
  type ReverseAgent,
  type ReverseConnection,
  ReverseConnectionListener,
} from '@picket/reverse';
import { silentLogger } from '@picket/uds';
import type { CaptureLogger } from '../../lib/capture-logger.js';
import type { GoodTraffic } from '../../lib/good-traffic.js';
import type { Rng } from '../../lib/prng.js';
import { RawConn, within, writeSplit } from '../../lib/raw-conn.js';
import { settle, startGoodPair, targetLogger } from '../bookkeeping.js';
import { FuzzAgent } from '../fuzz-agent.js';
import { LIVE_TYPES, mutateBytes, mutateJson, mutateV2Frame, wrongEncoding } from '../mutate.js';
import { junkTheProxy, proxyJunkCounts } from '../proxy-junk.js';
import {
  type ConnOutcome,
  type FuzzContext,
  FuzzFailure,
  type FuzzTarget,
  type TargetReport,
} from '../target.js';
import { capabilities, golden } from '../templates.js';

const GUARD_MS = 15_000;
/** Every token the fuzzer sends carries this marker, so a leaked token is easy to spot. */
const TOKEN_MARK = 'TOKEN-SECRET-';
const TOKEN = `${TOKEN_MARK}valid-0123456789`;

export class ReverseTarget implements FuzzTarget {
  readonly name = 'reverse';
  private listener!: ReverseConnectionListener;
  private path!: string;
  private logger!: CaptureLogger;
  private goodAgent!: ReverseAgent;
  private good!: GoodTraffic;
  private readonly byConnectionId = new Map<string, ReverseConnection>();
  private readonly lostIds = new Set<string>();
  private readonly closedIds = new Set<string>();
  private readonly dropLogs = { dropped: 0, refused: 0, registered: 0 };
  private readonly counts = {
    sockets: 0,
    junkRegistrations: 0,
    registered: 0,
    dropped: 0,
    refused: 0,
    acceptedJunk: 0,
    ...proxyJunkCounts(),
  };

  async start(ctx: FuzzContext): Promise<void> {
    this.path = join(ctx.dir, 'reverse.sock');
    this.logger = targetLogger(ctx, {
      forbidden: [TOKEN_MARK],
      onEntry: (e) => {
        const f = e.fields ?? {};
        if (e.message === 'connection to agent lost' && typeof f.connection === 'string') {
          this.lostIds.add(f.connection);
        } else if (e.message.startsWith('dropping reverse connection')) this.dropLogs.dropped++;
        else if (e.message.startsWith('reverse registration refused')) this.dropLogs.refused++;
        else if (e.message === 'agent registered over a reverse connection')
          this.dropLogs.registered++;
        else if (e.message === 'reverse connection closed' && typeof f.connectionId === 'string') {
          this.closedIds.add(f.connectionId);
        }
      },
    });
    this.listener = await ReverseConnectionListener.bindUds(this.path, {
      tokens: [TOKEN],
      logger: this.logger,
      handshakeTimeout: 5000,
      maxConnections: 4096,
    });
    this.listener.on('connection', (c, info) => this.byConnectionId.set(info.connectionId, c));
    this.goodAgent = connectReverse({
      endpoint: `unix:${this.path}`,
      agentId: 'good',
      authToken: TOKEN,
      handler: new FuzzAgent('good'),
      logger: silentLogger,
    });
    await this.goodAgent.ready({ timeoutMs: GUARD_MS });
    const goodConn = this.listener.list('good')[0];
    if (goodConn === undefined) throw new Error('good reverse agent not registered');
    this.good = startGoodPair('reverse good pair', (e) =>
      goodConn.sendRequestHeaders(e, { timeoutMs: 10_000 }),
    );
  }

  private registration(agentId: string, token: string | null): RegistrationRequest {
    return {
      protocol_version: PROTOCOL_VERSION,
      agent_id: agentId,
      capabilities: capabilities(agentId),
      auth_token: token,
      metadata: null,
    };
  }

  async connection(rng: Rng, index: number): Promise<ConnOutcome> {
    this.counts.sockets++;
    const agent = await RawConn.connect(this.path);
    try {
      if (rng.chance(0.35)) return await this.junkRegistration(rng, index, agent);
      agent.write(
        mutateV2Frame(
          rng,
          MessageType.HandshakeRequest,
          encodeRegistrationRequest(this.registration(`fz-${index}`, TOKEN)),
          0,
        ).bytes,
      );
      const id = await this.readResponse(agent, index, true);
      const conn = this.byConnectionId.get(id);
      this.byConnectionId.delete(id);
      if (conn === undefined)
        throw new FuzzFailure(`#${index}: registered ${id} but no connection event`);
      this.counts.registered++;
      return {
        frames:
          1 + (await junkTheProxy(rng, index, agent, conn, 'json', this.counts, this.lostIds)),
      };
    } finally {
      agent.destroy();
    }
  }

  /** Reads the 0x02 answer; returns the connection id on success (or throws when `mustSucceed`). */
  private async readResponse(agent: RawConn, index: number, mustSucceed: boolean): Promise<string> {
    await agent.until(() => agent.frames.length > 0, GUARD_MS, `registration answer on #${index}`);
    const f = agent.frames.shift();
    if (f === undefined) {
      if (mustSucceed) throw new FuzzFailure(`#${index}: valid registration dropped`);
      return '';
    }
    if (f.type !== MessageType.HandshakeResponse)
      throw new FuzzFailure(`#${index}: answer of type ${f.type}`);
    const r = JSON.parse(Buffer.from(f.payload).toString()) as {
      success: boolean;
      error: string | null;
      connection_id: string;
    };
    if (r.success) return r.connection_id;
    if (mustSucceed) throw new FuzzFailure(`#${index}: valid registration refused: ${r.error}`);
    if (typeof r.error !== 'string' || r.error.length === 0) {
      throw new FuzzFailure(`#${index}: refusal without a reason`);
    }
    if (r.error.includes(TOKEN_MARK))
      throw new FuzzFailure(`#${index}: refusal text contains the token`);
    return '';
  }

  private async junkRegistration(rng: Rng, index: number, agent: RawConn): Promise<ConnOutcome> {
    this.counts.junkRegistrations++;
    const token = rng.chance(0.5) ? TOKEN : `${TOKEN_MARK}${rng.u32().toString(16)}`;
    const valid = Buffer.from(
      rng.chance(0.3)
        ? golden('V9a').subarray(5)
        : encodeRegistrationRequest(
            this.registration(`fz-${index}`, rng.chance(0.1) ? null : token),
          ),
    );
    let type: number = MessageType.HandshakeRequest;
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
        payload = wrongEncoding(rng, valid);
        break;
      case 4:
        type = rng.pick(LIVE_TYPES.filter((t) => t !== MessageType.HandshakeRequest));
        payload = rng.chance(0.5) ? valid : rng.bytes(rng.size(256));
        break;
      default:
        payload = valid; // valid shape, but (half the time) a wrong token
    }
    const frame = mutateV2Frame(rng, type, payload, 0.25);
    await writeSplit(agent, frame.bytes, rng.int(1, 3), (m) => rng.int(0, m));
    if (frame.kind === 'partial') agent.end();
    await agent.until(() => agent.frames.length > 0, GUARD_MS, `listener reaction on #${index}`);
    if (agent.frames.length === 0) {
      this.counts.dropped++;
      if (!agent.peerClosed && !agent.closed)
        throw new FuzzFailure(`#${index}: junk neither answered nor dropped`);
    } else {
      const id = await this.readResponse(agent, index, false);
      if (id === '') this.counts.refused++;
      else {
        // the junk happened to be a valid registration: close it again
        this.counts.acceptedJunk++;
        const conn = this.byConnectionId.get(id);
        this.byConnectionId.delete(id);
        await within(conn?.close() ?? Promise.resolve(), GUARD_MS, `close of #${index}`);
      }
    }
    await agent.whenClosed(GUARD_MS, `listener closing #${index}`).catch(() => {
      // a refused or accepted socket stays open until we drop it; that is fine
    });
    return { frames: 1 };
  }

  async finish(): Promise<TargetReport> {
    const good = await this.good.stop();
    const failures: string[] = [];
    await settle(
      () =>
        this.listener.pendingCount === 0 &&
        this.listener.connectionCount === 1 &&
        this.listener.stats.accepted === this.counts.sockets + 1,
      GUARD_MS,
    );
    const s = this.listener.stats;
    if (this.listener.connectionCount !== 1) {
      failures.push(
        `listener still holds ${this.listener.connectionCount} connections (expected the good one)`,
      );
    }
    if (this.listener.pendingCount !== 0)
      failures.push(`${this.listener.pendingCount} registrations still pending`);
    if (s.accepted !== s.dropped + s.refused + s.registered) {
      failures.push(
        `accepted ${s.accepted} ≠ dropped ${s.dropped} + refused ${s.refused} + registered ${s.registered}`,
      );
    }
    if (
      this.dropLogs.dropped !== s.dropped ||
      this.dropLogs.refused !== s.refused ||
      this.dropLogs.registered !== s.registered
    ) {
      failures.push(`logged ${JSON.stringify(this.dropLogs)} but counted ${JSON.stringify(s)}`);
    }
    if (this.closedIds.size !== s.registered - 1) {
      failures.push(
        `${s.registered - 1} fuzz registrations but ${this.closedIds.size} logged closes`,
      );
    }
    if (this.logger.leaks.length > 0) {
      failures.push(
        `a token appeared in ${this.logger.leaks.length} log line(s), e.g. ${JSON.stringify(this.logger.leaks[0])}`,
      );
    }
    await this.goodAgent.stop({ drainTimeoutMs: 1000 });
    await this.listener.close();
    return {
      failures,
      good,
      stats: {
        ...this.counts,
        ...Object.fromEntries(Object.entries(s).map(([k, v]) => [`listener.${k}`, v])),
        tokenLeaks: this.logger.leaks.length,
      },
    };
  }
}
