/**
 * A transparent tap between a proxy and a UDS agent: every byte is relayed unchanged in both
 * directions (stream pipes, so backpressure reaches the sender) and, on the side, cut into frames
 * and recorded. Nothing the tap decodes influences what it relays: a malformed or oversize frame
 * goes to the agent as sent, and the agent answers (or hangs up) exactly as it would without it.
 */
import * as net from 'node:net';
import {
  createMessageCodec,
  decodeV1Request,
  decodeV1Response,
  encodeV1Request,
  encodeV1Response,
  jsonCodec,
} from '@picket/codec';
import {
  describeMessageType,
  type Encoding,
  type EventMap,
  escapeForLog,
  isMessageType,
  MAX_UDS_FRAME_LENGTH,
  MessageType,
} from '@picket/protocol';
import { listenUnix, type SocketFile } from '@picket/protocol/internal';
import { Dir, type TapFrame, type TapWriter } from './format.js';
import {
  EVENT_OF_TYPE,
  eventCorrelationId,
  redactEvent,
  redactedBytes,
  redactResponse,
} from './redact.js';

/** v1's largest message (no type byte). */
const MAX_V1_LENGTH = 10 * 1024 * 1024;
/** Bytes recorded after a framing error, per direction (the peer hangs up on such a stream). */
const BROKEN_BUDGET = 64 * 1024;

type Piece =
  | { type: number | undefined; payload: Uint8Array }
  | { broken: Uint8Array; error: string };

/**
 * Cuts one direction of the byte stream into frames, as a Rust reader would: `[u32 BE length]
 * [type]` (v2, length counts the type byte, 1..16 MiB, known types only) or `[u32 BE length]`
 * (v1, up to 10 MiB). @picket/framing's decoder drops what follows a bad header; the tap must
 * record those bytes too, so this small splitter keeps them.
 */
class Splitter {
  private readonly head = new Uint8Array(5);
  private headFill = 0;
  private payload: Uint8Array | undefined;
  private fill = 0;
  private type: number | undefined;
  private broken: string | undefined;
  private budget = BROKEN_BUDGET;

  constructor(private readonly v1: boolean) {}

  push(chunk: Uint8Array): Piece[] {
    const out: Piece[] = [];
    const headSize = this.v1 ? 4 : 5;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.broken !== undefined) {
        const take = chunk.subarray(pos, pos + this.budget);
        this.budget -= take.length;
        if (take.length > 0) out.push({ broken: take, error: this.broken });
        return out;
      }
      if (this.payload !== undefined) {
        const n = Math.min(this.payload.length - this.fill, chunk.length - pos);
        this.payload.set(chunk.subarray(pos, pos + n), this.fill);
        this.fill += n;
        pos += n;
        if (this.fill < this.payload.length) return out;
        out.push({ type: this.type, payload: this.payload });
        this.payload = undefined;
        continue;
      }
      while (pos < chunk.length && this.headFill < headSize) {
        this.head[this.headFill++] = chunk[pos++] as number;
      }
      if (this.headFill < headSize) return out;
      this.headFill = 0;
      const length = new DataView(this.head.buffer).getUint32(0);
      const type = this.v1 ? undefined : (this.head[4] as number);
      const problem = this.check(length, type);
      if (problem !== undefined) {
        this.broken = problem;
        // what the peer will see: the header, then whatever follows
        const header = this.head.slice(0, headSize);
        this.budget -= header.length;
        out.push({ broken: header, error: problem });
        continue;
      }
      const size = this.v1 ? length : length - 1;
      this.type = type;
      this.payload = new Uint8Array(size);
      this.fill = 0;
      if (size === 0) {
        out.push({ type, payload: this.payload });
        this.payload = undefined;
      }
    }
    return out;
  }

  private check(length: number, type: number | undefined): string | undefined {
    if (this.v1) {
      return length > MAX_V1_LENGTH
        ? `v1 message length ${length} exceeds the ${MAX_V1_LENGTH}-byte limit`
        : undefined;
    }
    if (length === 0) return 'zero-length frame';
    if (length > MAX_UDS_FRAME_LENGTH) {
      return `frame length ${length} exceeds the ${MAX_UDS_FRAME_LENGTH}-byte limit`;
    }
    if (type !== undefined && !isMessageType(type)) {
      return `unknown message type 0x${type.toString(16).padStart(2, '0')}`;
    }
    return undefined;
  }

  /** Bytes of a frame still incomplete when the stream ended. */
  get pending(): number {
    return this.payload === undefined ? this.headFill : this.fill + (this.v1 ? 4 : 5);
  }
}

/** Frames that are JSON whatever the connection negotiated (spec §2.4). */
const ALWAYS_JSON = new Set<number>([
  MessageType.HandshakeRequest,
  MessageType.HandshakeResponse,
  MessageType.Cancel,
  MessageType.Ping,
  MessageType.Pong,
]);

const ENCODINGS = new Set<string>(['json', 'msgpack', 'cbor']);

export interface TapOptions {
  /** socket path the proxy connects to */
  listen: string;
  /** the agent's socket path */
  agentPath: string;
  /** the agent endpoint as given, for log lines */
  to: string;
  v1: boolean;
  redact: boolean;
  writer: TapWriter;
  /** one line to stderr */
  log: (line: string) => void;
  verbose: boolean;
}

/** One proxy connection and its agent connection. */
class Tapped {
  private encoding: Encoding = 'json';
  private readonly split: Record<Dir, Splitter>;
  private reason: string | undefined;
  private proxyClosed = false;
  private agentClosed = false;
  private ended = false;
  readonly done: Promise<void>;
  private finish!: () => void;
  private readonly agent: net.Socket;

  constructor(
    readonly id: number,
    private readonly proxy: net.Socket,
    private readonly o: TapOptions,
  ) {
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
    this.split = { [Dir.ProxyToAgent]: new Splitter(o.v1), [Dir.AgentToProxy]: new Splitter(o.v1) };
    o.writer.write({ type: 2, conn_start: { id, start_time: o.writer.now() } });
    if (o.verbose) o.log(`connection ${id}: proxy connected`);
    let connected = false;
    const agent = net.connect({ path: o.agentPath, allowHalfOpen: true });
    this.agent = agent;
    proxy.on('error', (err) => this.because(`proxy error: ${err.message}`));
    proxy.once('close', () => {
      this.proxyClosed = true;
      if (!connected) agent.destroy();
      this.maybeEnd();
    });
    agent.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) {
        this.because(`agent error: ${err.message}`);
        return;
      }
      // the agent is unreachable: the proxy must not wait on a connection that leads nowhere
      const why = err.code ?? err.message;
      this.because(`agent unreachable: ${why}`);
      o.log(
        `connection ${id}: cannot reach the agent at ${o.to} (${escapeForLog(why)}); closing the proxy's connection`,
      );
      proxy.destroy();
    });
    agent.once('close', () => {
      this.agentClosed = true;
      this.maybeEnd();
    });
    agent.once('connect', () => {
      connected = true;
      this.relay(proxy, agent, Dir.ProxyToAgent);
      this.relay(agent, proxy, Dir.AgentToProxy);
    });
  }

  /** Records the first reason the connection ended. */
  private because(reason: string): void {
    this.reason ??= reason;
  }

  private relay(from: net.Socket, to: net.Socket, dir: Dir): void {
    // observe first, then pipe: the handshake answer is parsed before the proxy can react to it
    from.on('data', (chunk: Buffer) => this.observe(dir, chunk));
    // pipe: pauses `from` while `to` is full (backpressure) and passes a half-close on
    from.pipe(to);
    from.once('end', () =>
      this.because(dir === Dir.ProxyToAgent ? 'proxy closed' : 'agent closed'),
    );
    from.once('close', () => {
      if (from.errored) to.destroy();
      // nobody can read the other side any more: flush what is queued, then close it
      else to.destroySoon();
    });
  }

  private maybeEnd(): void {
    if (!this.proxyClosed || !this.agentClosed || this.ended) return;
    this.ended = true;
    for (const dir of [Dir.ProxyToAgent, Dir.AgentToProxy] as const) {
      const left = this.split[dir].pending;
      if (left > 0) {
        this.frame({
          dir,
          payload: new Uint8Array(0),
          length: left,
          error: `stream ended mid-frame (${left} bytes of it relayed)`,
        });
      }
    }
    const reason = this.reason ?? 'closed';
    this.o.writer.write({
      type: 4,
      conn_end: { id: this.id, end_time: this.o.writer.now(), reason },
    });
    if (this.o.verbose) this.o.log(`connection ${this.id}: ${escapeForLog(reason)}`);
    this.finish();
  }

  /** Closes both sides now (the recorder is stopping). */
  destroy(): void {
    this.because('recorder stopped');
    this.proxy.destroy();
    this.agent.destroy();
  }

  private frame(f: Omit<TapFrame, 'conn' | 'ts'>): void {
    this.o.writer.write({ type: 3, frame: { conn: this.id, ts: this.o.writer.now(), ...f } });
  }

  private observe(dir: Dir, chunk: Uint8Array): void {
    // recording is a side job: whatever goes wrong in it must not stop the relay
    try {
      this.record(dir, chunk);
    } catch (err) {
      this.o.log(`connection ${this.id}: recording failed: ${escapeForLog(String(err))}`);
    }
  }

  private record(dir: Dir, chunk: Uint8Array): void {
    for (const piece of this.split[dir].push(chunk)) {
      if ('broken' in piece) {
        const n = piece.broken.length;
        this.frame({
          dir,
          payload: this.o.redact ? redactedBytes(n) : piece.broken,
          length: n,
          error: piece.error,
        });
        continue;
      }
      this.frame(this.decode(dir, piece.type, piece.payload));
    }
  }

  /** The frame as recorded: its encoding, the bytes (redacted unless told not to) and any decode error. */
  private decode(
    dir: Dir,
    type: number | undefined,
    payload: Uint8Array,
  ): Omit<TapFrame, 'conn' | 'ts'> {
    const length = payload.length;
    const encoding: Encoding = type === undefined || ALWAYS_JSON.has(type) ? 'json' : this.encoding;
    const base = { dir, ...(type !== undefined && { type }), encoding, length };
    try {
      const bytes = this.check(dir, type, payload, encoding);
      return { ...base, payload: this.o.redact ? bytes : payload };
    } catch (err) {
      return {
        ...base,
        payload: this.o.redact ? redactedBytes(length) : payload,
        error: (err as Error).message,
      };
    }
  }

  /** Decodes the payload (throws when it does not decode); returns its redacted form. */
  private check(
    dir: Dir,
    type: number | undefined,
    payload: Uint8Array,
    encoding: Encoding,
  ): Uint8Array {
    if (type === undefined) {
      // v1: requests one way, AgentResponses the other
      if (dir === Dir.ProxyToAgent) {
        const req = decodeV1Request(payload);
        if (!this.o.redact) return payload;
        const redacted =
          req.event_type === 'configure'
            ? { ...req.payload, config: '<redacted>' }
            : redactEvent(req.event_type, req.payload as EventMap[typeof req.event_type]);
        return encodeV1Request({ ...req, payload: redacted } as typeof req);
      }
      const res = decodeV1Response(payload);
      return this.o.redact ? encodeV1Response(redactResponse(res)) : payload;
    }
    if (ALWAYS_JSON.has(type)) {
      const v = jsonCodec.decode(payload) as Record<string, unknown> | null;
      if (type === MessageType.HandshakeResponse && dir === Dir.AgentToProxy) {
        const e = v !== null && typeof v === 'object' ? v.encoding : undefined;
        // Rust's default when the key is absent
        if (e === undefined || e === null) this.encoding = 'json';
        else if (typeof e === 'string' && ENCODINGS.has(e)) this.encoding = e as Encoding;
        else
          throw new Error(
            `handshake response names an unknown encoding ${escapeForLog(JSON.stringify(e))}`,
          );
      }
      return payload;
    }
    const codec = createMessageCodec(encoding);
    const event = EVENT_OF_TYPE.get(type);
    if (event !== undefined) {
      const e = codec.decodeEvent(event, payload);
      return this.o.redact
        ? codec.encodeEvent(event, redactEvent(event, e), eventCorrelationId(event, e))
        : payload;
    }
    switch (type) {
      case MessageType.AgentResponse: {
        const r = codec.decodeResponse(payload);
        return this.o.redact ? codec.encodeResponse(redactResponse(r)) : payload;
      }
      case MessageType.HealthStatus:
        codec.decodeHealth(payload);
        return payload;
      case MessageType.MetricsReport:
        codec.decodeMetrics(payload);
        return payload;
      case MessageType.ConfigUpdateRequest:
        codec.decodeConfigUpdate(payload);
        return payload;
      case MessageType.FlowControl:
        codec.decodeFlowControl(payload);
        return payload;
      default:
        throw new Error(`${describeMessageType(type)} is not expected here`);
    }
  }
}

/** The tap: a Unix socket server relaying every connection to the agent. */
export class Tap {
  private readonly server: net.Server;
  private socketFile: SocketFile | undefined;
  private nextId = 0;
  private readonly live = new Set<Tapped>();

  constructor(private readonly o: TapOptions) {
    // pauseOnConnect: nothing is read from the proxy before the agent side is up;
    // allowHalfOpen: a half-close passes through as a half-close
    this.server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
      const t = new Tapped(++this.nextId, socket, this.o);
      this.live.add(t);
      void t.done.then(() => this.live.delete(t));
    });
  }

  async listen(): Promise<void> {
    this.socketFile = await listenUnix(this.server, this.o.listen, { mode: 0o660 });
  }

  get connections(): number {
    return this.nextId;
  }

  /** Stops listening, closes every tapped connection and waits for their end records. */
  async close(): Promise<void> {
    await this.socketFile?.remove();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const all = [...this.live];
    for (const t of all) t.destroy();
    await Promise.all(all.map((t) => t.done));
    await closed;
  }
}
