/**
 * Factories run inside worker processes (see worker.ts): the servers under
 * test, the raw baselines and the picket clients the load generator drives.
 * Each returns a {@link Hosted} object.
 */
import { unlinkSync } from 'node:fs';
import * as net from 'node:net';
import { EchoAgent } from '@picket/agents';
import { createMessageCodec } from '@picket/codec';
import { encodeFrame, FrameDecoder } from '@picket/framing';
import { AgentPool } from '@picket/pool';
import type { AgentTransport, Encoding, RequestBodyChunkEvent } from '@picket/protocol';
import { AgentClientV2Uds, silentLogger, UdsAgentServerV2 } from '@picket/uds';
import { bodyChunkEvent, requestHeadersEvent, withCorrelationId } from './fixtures.js';
import type { Hosted } from './worker.js';

/** Frame type used by the raw baselines (any valid v2 type; nothing interprets it). */
const RAW_REQUEST = 0x10;
const RAW_REPLY = 0x20;
/** What the raw "ack" server answers: about the size of a small AgentResponse. */
const ACK = new Uint8Array(64).fill(0x61);

function removeStale(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // nothing to remove
  }
}

/** Writes frames of one tick in a single socket write (what a sane raw client/server does). */
class BatchedWriter {
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private scheduled = false;
  constructor(private readonly socket: net.Socket) {}
  write(frame: Uint8Array): void {
    this.parts.push(frame);
    this.bytes += frame.length;
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(() => this.flush());
    }
  }
  private flush(): void {
    this.scheduled = false;
    const parts = this.parts;
    this.parts = [];
    const total = this.bytes;
    this.bytes = 0;
    if (parts.length === 1) this.socket.write(parts[0] as Uint8Array);
    else this.socket.write(Buffer.concat(parts, total));
  }
}

/**
 * Raw baseline server: v2 frames over a Unix socket, no codec, no correlation.
 * `echo` sends every frame's payload back; `ack` answers each frame with 64 bytes.
 */
export async function rawServer(args: { path: string; reply: 'echo' | 'ack' }): Promise<Hosted> {
  removeStale(args.path);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new FrameDecoder();
    const out = new BatchedWriter(socket);
    socket.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) {
        out.write(encodeFrame(RAW_REPLY, args.reply === 'echo' ? frame.payload : ACK));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(args.path, resolve));
  return {
    info: { path: args.path },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Raw baseline client: sends `payload` framed, waits for the next reply frame (FIFO). */
export async function rawClient(args: { path: string; payload: Uint8Array }): Promise<Hosted> {
  const socket = net.createConnection({ path: args.path });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const decoder = new FrameDecoder();
  const waiting: (() => void)[] = [];
  let head = 0;
  socket.on('data', (chunk) => {
    for (const _frame of decoder.push(chunk)) {
      const w = waiting[head];
      waiting[head++] = undefined as unknown as () => void;
      w?.();
    }
    if (head > 4096 && head === waiting.length) {
      waiting.length = 0;
      head = 0;
    }
  });
  const out = new BatchedWriter(socket);
  const frame = encodeFrame(RAW_REQUEST, args.payload);
  return {
    bytesPerOp: args.payload.length,
    call: () =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        out.write(frame);
      }),
    close: () => {
      socket.destroy();
    },
  };
}

/** The bytes of the bench's RequestHeaders event in `encoding` (the raw baselines send these). */
export function encodedHeadersEvent(encoding: Encoding): Uint8Array {
  return createMessageCodec(encoding).encodeEvent(
    'request_headers',
    requestHeadersEvent(),
    'req-00000000-0000',
  );
}

/** picket's agent side: `UdsAgentServerV2` running the reference `EchoAgent`. */
export async function udsAgentServer(args: { path: string }): Promise<Hosted> {
  removeStale(args.path);
  const server = new UdsAgentServerV2(args.path, new EchoAgent(), { logger: silentLogger });
  await server.listen();
  return {
    info: { path: args.path },
    close: () => server.close({ drainTimeoutMs: 200 }),
  };
}

/** Which event a picket load target sends. */
export type EventKind = 'headers' | { bodySize: number };

/** One operation on a transport: the bench's event with a fresh correlation id. */
export function eventCall(
  kind: EventKind,
  prefix: string,
): (
  t: Pick<AgentTransport, 'sendRequestHeaders' | 'sendRequestBodyChunk'>,
  seq: number,
) => Promise<unknown> {
  if (kind === 'headers') {
    const base = requestHeadersEvent();
    return (t, seq) => t.sendRequestHeaders(withCorrelationId(base, `${prefix}${seq}`));
  }
  const base = bodyChunkEvent(kind.bodySize);
  return (t, seq) => {
    const e: RequestBodyChunkEvent = { ...base, correlation_id: `${prefix}${seq}` };
    return t.sendRequestBodyChunk(e);
  };
}

/** `AgentClientV2Uds` offering one encoding, one connection. */
export async function udsClient(args: {
  path: string;
  encoding: Encoding;
  event?: EventKind;
  binaryBodies?: boolean;
}): Promise<Hosted> {
  const client = await AgentClientV2Uds.connect('echo', args.path, {
    encodings: [args.encoding],
    logger: silentLogger,
    timeoutMs: 10_000,
    ...(args.binaryBodies === undefined ? {} : { binaryBodies: args.binaryBodies }),
  });
  if (client.encoding !== args.encoding) {
    throw new Error(`negotiated ${client.encoding}, wanted ${args.encoding}`);
  }
  const kind = args.event ?? 'headers';
  const send = eventCall(kind, `${args.encoding}-`);
  return {
    info: { encoding: client.encoding },
    bytesPerOp: typeof kind === 'object' ? kind.bodySize : undefined,
    call: (seq: number) => send(client, seq),
    close: () => client.close(),
  };
}

/** `connections` direct clients, used round-robin by the load generator (the pool's baseline). */
export async function directClients(args: {
  path: string;
  encoding: Encoding;
  connections: number;
}): Promise<Hosted> {
  const clients: AgentClientV2Uds[] = [];
  for (let i = 0; i < args.connections; i++) {
    clients.push(
      await AgentClientV2Uds.connect('echo', args.path, {
        encodings: [args.encoding],
        logger: silentLogger,
        timeoutMs: 10_000,
      }),
    );
  }
  const send = eventCall('headers', 'direct-');
  let next = 0;
  return {
    call: (seq: number) => {
      const c = clients[next] as AgentClientV2Uds;
      next = (next + 1) % clients.length;
      return send(c, seq);
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/** Slots of the pool client's id ring (a power of two, several times the calls in flight). */
const RING = 512;

/**
 * `AgentPool` with `connections` UDS connections to one agent. Each call sends
 * request headers; once it is answered the load loop runs `after`, which forgets
 * the request's affinity, as a proxy does when the request ends.
 */
export async function poolClient(args: {
  path: string;
  encoding: Encoding;
  connections: number;
}): Promise<Hosted & { pool: AgentPool; after: (seq: number) => void }> {
  const pool = new AgentPool({
    connectionsPerAgent: args.connections,
    strategy: 'round_robin',
    requestTimeoutMs: 10_000,
    failureMode: 'throw',
    healthCheckIntervalMs: 0,
  });
  const open = await pool.addAgent('echo', () =>
    AgentClientV2Uds.connect('echo', args.path, {
      encodings: [args.encoding],
      logger: silentLogger,
      timeoutMs: 10_000,
    }),
  );
  if (open !== args.connections) throw new Error(`pool opened ${open}/${args.connections}`);
  const base = requestHeadersEvent();
  // Each call's id until its `after`, as a proxy keeps it for the request's lifetime. The
  // ring is a few times the calls in flight: ids kept much longer would outlive young-GC
  // cycles, a cost the direct baseline never pays. A slot overwritten before its `after`
  // (a call overtaken by 512 others) is noticed by its seq, and the id is built again.
  const ids = new Array<string>(RING).fill('');
  const seqs = new Int32Array(RING).fill(-1);
  return {
    pool,
    call: (seq: number) => {
      const cid = `pool-${seq}`;
      ids[seq & (RING - 1)] = cid;
      seqs[seq & (RING - 1)] = seq;
      return pool.sendRequestHeaders('echo', withCorrelationId(base, cid));
    },
    // the request is over once its answer came: as a proxy does, forget its affinity
    after: (seq: number) => {
      const i = seq & (RING - 1);
      const cid = seqs[i] === seq ? (ids[i] as string) : `pool-${seq}`;
      ids[i] = ''; // the request's context is gone
      pool.clearAffinity(cid);
    },
    close: () => pool.close({ drainTimeoutMs: 200 }),
  };
}
