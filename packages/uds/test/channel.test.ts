import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { type AgentHandler, allow, createCapabilities, MessageType } from '@picket/protocol';
import { batchNow } from '@picket/protocol/internal';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds, type UdsAgentServerOptions, UdsAgentServerV2 } from '../src/index.js';
import { FrameChannel, ProxyConnection, SocketReader } from '../src/internal.js';
import {
  captureLogger,
  handler,
  RawPeer,
  rawFrame,
  requestHeaders,
  tempSocket,
  until,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A connected socket pair over a Unix socket: `local` for the channel, `remote` raw.
 * With `reader`, `local` is read through it (net's `onread`) instead of 'data' events.
 */
async function socketPair(
  reader?: SocketReader,
): Promise<{ local: net.Socket; remote: net.Socket }> {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  let remote: net.Socket | undefined;
  const server = net.createServer((s) => {
    remote = s;
  });
  await new Promise<void>((r) => server.listen(tmp.path, () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  const local = net.createConnection({
    path: tmp.path,
    ...(reader === undefined ? {} : { onread: reader.onread }),
  });
  await new Promise<void>((r) => local.once('connect', () => r()));
  await until(() => remote !== undefined);
  cleanups.push(() => {
    local.destroy();
    remote?.destroy();
  });
  return { local, remote: remote as net.Socket };
}

/** Calls `observe` with every chunk written to `socket`, before the socket takes it. */
function onWrite(socket: net.Socket, observe: (chunk: Uint8Array) => void): void {
  const original = socket.write.bind(socket);
  socket.write = ((chunk: Uint8Array, ...rest: never[]) => {
    observe(chunk);
    return original(chunk, ...rest);
  }) as typeof socket.write;
}

/** A UdsAgentServerV2 serving `h` and one client connected to it, both closed after the test. */
async function serveAndConnect(
  h: AgentHandler,
  options: Omit<UdsAgentServerOptions, 'logger'> = {},
): Promise<{ server: UdsAgentServerV2; client: AgentClientV2Uds }> {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const server = new UdsAgentServerV2(tmp.path, h, { logger: captureLogger(), ...options });
  await server.listen();
  cleanups.push(() => server.close({ drainTimeoutMs: 100 }));
  const client = await AgentClientV2Uds.connect('t', tmp.path, {
    logger: captureLogger(),
    timeoutMs: 60_000,
  });
  cleanups.push(() => client.close());
  return { server, client };
}

describe.each([
  { reading: 'data events', viaReader: false },
  { reading: 'a SocketReader (onread)', viaReader: true },
])('FrameChannel reading through $reading', ({ viaReader }) => {
  /** the socket pair, read the way this run tests, and the channel's options for it */
  async function pair(): Promise<{ local: net.Socket; remote: net.Socket; reader?: SocketReader }> {
    const reader = viaReader ? new SocketReader() : undefined;
    return { ...(await socketPair(reader)), ...(reader === undefined ? {} : { reader }) };
  }

  it('writes every frame queued in one tick with a single socket write', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    const writes: number[] = [];
    onWrite(local, (chunk) => writes.push(chunk.length));
    const peer = new RawPeer(remote);
    for (let i = 0; i < 50; i++)
      channel.write(MessageType.Ping, Buffer.from(`{"sequence":${i},"timestamp_ms":0}`));
    await peer.frame(49);
    expect(writes).toHaveLength(1);
    expect(peer.frames.map((f) => JSON.parse(Buffer.from(f.payload).toString()).sequence)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  it('coalesce: frames written in different ticks of one loop turn share a write; without it each tick writes', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    let writes = 0;
    onWrite(local, () => {
      writes++;
    });
    const peer = new RawPeer(remote);
    const ping = (i: number) => Buffer.from(`{"sequence":${i},"timestamp_ms":0}`);
    // three ticks of one turn, as three I/O callbacks of a busy proxy would be
    const threeTicks = async (coalesce: boolean, from: number) => {
      await new Promise<void>((done) => {
        channel.write(MessageType.Ping, ping(from), coalesce);
        process.nextTick(() => {
          channel.write(MessageType.Ping, ping(from + 1), coalesce);
          process.nextTick(() => {
            channel.write(MessageType.Ping, ping(from + 2), coalesce);
            done();
          });
        });
      });
      await peer.frame(from + 2);
    };
    await threeTicks(true, 0);
    expect(writes).toBe(1);
    await threeTicks(false, 3);
    expect(writes).toBe(4);
    expect(peer.frames.map((f) => JSON.parse(Buffer.from(f.payload).toString()).sequence)).toEqual([
      0, 1, 2, 3, 4, 5,
    ]);
  });

  it('flushNow sends what is queued at once; the scheduled flush then finds nothing to send', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    let writes = 0;
    onWrite(local, () => {
      writes++;
    });
    const peer = new RawPeer(remote);
    channel.write(MessageType.Ping, Buffer.from('{"sequence":1,"timestamp_ms":0}'));
    channel.write(MessageType.Ping, Buffer.from('{"sequence":2,"timestamp_ms":0}'));
    expect(writes).toBe(0); // queued for the end of the tick
    channel.flushNow();
    expect(writes).toBe(1); // both, now
    channel.flushNow(); // nothing queued: no empty write
    await peer.frame(1);
    await new Promise((r) => setImmediate(r));
    expect(writes).toBe(1);
  });

  it('replies written while handling one chunk of frames leave together, before the tick ends', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    const order: string[] = [];
    onWrite(local, () => order.push('write'));
    channel.setFrameHandler((frame) => {
      // work the handler leaves for later in the tick: the replies do not wait for it
      process.nextTick(() => order.push('tick'));
      channel.write(MessageType.Pong, frame.payload);
    });
    const peer = new RawPeer(remote);
    const ping = (i: number) => rawFrame(MessageType.Ping, `{"sequence":${i},"timestamp_ms":0}`);
    peer.write(Buffer.concat([ping(1), ping(2), ping(3)])); // one chunk, three frames
    await peer.frame(2);
    await until(() => order.length === 4);
    expect(order).toEqual(['write', 'tick', 'tick', 'tick']); // one write, first
    expect(peer.frames.map((f) => f.type)).toEqual([
      MessageType.Pong,
      MessageType.Pong,
      MessageType.Pong,
    ]);
  });

  it('the frames of one chunk share one batch clock reading; the next chunk takes a new one', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    const seen: number[] = [];
    channel.setFrameHandler(() => {
      seen.push(batchNow());
      const busyUntil = performance.now() + 1;
      while (performance.now() < busyUntil) {
        // time passes while the frame is handled
      }
    });
    const peer = new RawPeer(remote);
    const ping = (i: number) => rawFrame(MessageType.Ping, `{"sequence":${i},"timestamp_ms":0}`);
    peer.write(Buffer.concat([ping(1), ping(2), ping(3)])); // one chunk, three frames
    await until(() => seen.length === 3);
    expect(new Set(seen).size).toBe(1);
    peer.write(ping(4));
    await until(() => seen.length === 4);
    expect(seen[3]).toBeGreaterThan(seen[0] as number);
    expect(batchNow()).toBeGreaterThan(seen[3] as number); // no batch open after the pump
  });

  it('a lone call leaves at once; calls made while others are pending share one write', async () => {
    const { local, remote, reader } = await pair();
    let writes = 0;
    onWrite(local, () => {
      writes++;
    });
    const conn = new ProxyConnection(new FrameChannel(local, { reader }), {
      agentId: 'lone',
      capabilities: createCapabilities({ agentId: 'lone' }),
      timeoutMs: 60_000,
      logger: captureLogger(),
    });
    cleanups.push(() => conn.close());
    const peer = new RawPeer(remote);
    const calls = [conn.sendRequestHeaders(requestHeaders('c0')).catch(() => undefined)];
    expect(writes).toBe(1); // before this tick ends
    for (let i = 1; i <= 3; i++) {
      calls.push(conn.sendRequestHeaders(requestHeaders(`c${i}`)).catch(() => undefined));
    }
    expect(writes).toBe(1); // the other three wait for the end of the loop turn…
    await peer.frame(3);
    expect(writes).toBe(2); // …and leave together
    await conn.close();
    await Promise.all(calls);
  });

  it('queues behind socket backpressure up to a bound, then UNAVAILABLE; drain flushes the rest', async () => {
    const { local, remote, reader } = await pair();
    remote.pause(); // the peer stops reading
    const channel = new FrameChannel(local, { reader, maxWriteQueueBytes: 1024 * 1024 });
    const big = Buffer.alloc(256 * 1024, 0x61);
    let written = 0;
    let refused: unknown;
    // Fill the kernel buffer and Node's, then the channel's own bounded queue.
    for (let round = 0; round < 400 && refused === undefined; round++) {
      try {
        channel.write(MessageType.Ping, big);
        written++;
      } catch (err) {
        refused = err;
      }
      await new Promise((r) => setImmediate(r));
    }
    expect(refused).toMatchObject({ code: 'UNAVAILABLE' });
    expect(channel.queuedWriteBytes).toBeGreaterThan(0);
    expect(channel.queuedWriteBytes).toBeLessThanOrEqual(1024 * 1024);
    // Once the peer reads again every accepted frame arrives, intact and in order.
    const peer = new RawPeer(remote);
    remote.resume();
    await peer.frame(written - 1, 10_000);
    expect(peer.frames).toHaveLength(written);
    expect(peer.frames.every((f) => f.payload.length === big.length)).toBe(true);
    await until(() => channel.queuedWriteBytes === 0);
  });

  it('never reuses a flush buffer the socket still holds: every frame intact across stalls', async () => {
    // Small batches share one reused buffer while the socket takes each write whole; a
    // write the kernel only half took keeps its buffer. The peer stalls now and then, so
    // both happen; any reuse too early would overwrite bytes still queued in libuv.
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    const peer = new RawPeer(remote);
    const payload = (i: number) => Buffer.alloc(1500 + (i % 7) * 300, i % 251);
    const total = 3000;
    for (let i = 0; i < total; i++) {
      channel.write(MessageType.Ping, payload(i));
      if (i % 3 === 2) {
        if (i % 300 === 2) remote.pause();
        if (i % 300 === 152) remote.resume();
        await new Promise((r) => setImmediate(r));
      }
    }
    remote.resume();
    await peer.frame(total - 1, 10_000);
    for (let i = 0; i < total; i++) {
      expect(
        Buffer.from((peer.frames[i] as { payload: Uint8Array }).payload).equals(payload(i)),
      ).toBe(true);
    }
  });

  it('holds frames that arrive before anyone consumes them, and delivers them in order', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    remote.write(Buffer.concat([rawFrame(0x41, 'a'), rawFrame(0x41, 'b'), rawFrame(0x41, 'c')]));
    const first = await channel.readFrame(3000);
    expect(Buffer.from(first.payload).toString()).toBe('a');
    await until(() => local.isPaused());
    const rest: string[] = [];
    channel.setFrameHandler((f) => rest.push(Buffer.from(f.payload).toString()));
    await until(() => rest.length === 2);
    expect(rest).toEqual(['b', 'c']);
  });

  it('refuses an oversize payload with MESSAGE_TOO_LARGE and stays usable', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader, maxFrameLength: 1024 });
    expect(() => channel.write(MessageType.Ping, Buffer.alloc(1024))).toThrow(
      expect.objectContaining({ code: 'MESSAGE_TOO_LARGE' }),
    );
    const peer = new RawPeer(remote);
    channel.write(MessageType.Ping, Buffer.alloc(1023));
    expect((await peer.frame(0)).payload.length).toBe(1023);
  });

  it('frames kept from earlier reads keep their bytes while later reads arrive (several slabs)', async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    const kept: Uint8Array[] = [];
    channel.setFrameHandler((f) => kept.push(f.payload));
    // 300 frames of 1 000 bytes in 60 separate writes (separate reads), plus one frame of
    // 200 KiB that arrives in pieces: 500 KiB in all, well past one 64 KiB slab
    const payload = (i: number) => Buffer.alloc(i === 150 ? 200 * 1024 : 1000, i & 0xff);
    for (let w = 0; w < 60; w++) {
      const frames: Buffer[] = [];
      for (let i = w * 5; i < w * 5 + 5; i++) frames.push(rawFrame(0x41, payload(i)));
      remote.write(Buffer.concat(frames));
      await until(() => kept.length === w * 5 + 5);
    }
    for (let i = 0; i < 300; i++) {
      expect(Buffer.from(kept[i] as Uint8Array).equals(payload(i)), `frame ${i}`).toBe(true);
    }
  });

  it("the peer's end closes the channel as CONNECTION_CLOSED", async () => {
    const { local, remote, reader } = await pair();
    const channel = new FrameChannel(local, { reader });
    const closed = new Promise<unknown>((resolve) => channel.onClose(resolve));
    remote.end();
    expect(await closed).toMatchObject({
      code: 'CONNECTION_CLOSED',
      message: expect.stringContaining('peer closed the connection'),
    });
    expect(channel.closed).toBe(true);
  });
});

describe('SocketReader', () => {
  it('delivers bytes that came before anyone took them, in order, then the rest', async () => {
    const reader = new SocketReader();
    const { local, remote } = await socketPair(reader);
    remote.write('one,');
    await until(() => local.bytesRead >= 4);
    remote.write('two,');
    await until(() => local.bytesRead >= 8);
    const got: string[] = [];
    reader.onBytes((bytes) => got.push(bytes.toString()));
    remote.write('three');
    await until(() => got.join('') === 'one,two,three');
  });
});

describe('agent-side concurrency bound', () => {
  it('queues events beyond maxConcurrentPerConnection and answers all of them', async () => {
    let running = 0;
    let peak = 0;
    const gates: (() => void)[] = [];
    const { client } = await serveAndConnect(
      handler({
        onRequestHeaders: async (_e, ctx) => {
          running++;
          peak = Math.max(peak, running);
          await new Promise<void>((r) => gates.push(r));
          running--;
          return allow({ tags: [ctx.correlationId] });
        },
      }),
      { maxConcurrentPerConnection: 3, maxQueuedPerConnection: 4 },
    );

    const ids = Array.from({ length: 20 }, (_, i) => `q${i}`);
    const calls = ids.map((id) => client.sendRequestHeaders(requestHeaders(id)));
    let answered = 0;
    for (const c of calls) void c.then(() => answered++);
    // Release handlers one at a time; the agent never runs more than 3 at once.
    while (answered < ids.length) {
      await until(() => gates.length > 0 || answered === ids.length);
      gates.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    const replies = await Promise.all(calls);
    expect(replies.map((r) => r.audit.tags[0])).toEqual(ids);
    expect(peak).toBe(3);
  });
  it('answers a long queue of synchronous answers behind slow ones, in order, bounded', async () => {
    // Synchronous answers are sent without a promise: finishing one starts the next
    // queued event from inside finish(), which must neither recurse once per queued
    // event nor run more than the limit at once.
    let running = 0;
    let peak = 0;
    const releases = new Map<string, () => void>();
    const { server, client } = await serveAndConnect(
      handler({
        onRequestHeaders: (_e, ctx) => {
          const id = ctx.correlationId;
          running++;
          peak = Math.max(peak, running);
          if (id.startsWith('slow')) {
            return new Promise((r) => {
              releases.set(id, () => {
                running--;
                r(allow({ tags: [id] }));
              });
            });
          }
          running--;
          return allow({ tags: [id] });
        },
      }),
      { maxConcurrentPerConnection: 2, maxQueuedPerConnection: 20_000 },
    );
    const slowA = client.sendRequestHeaders(requestHeaders('slow-a'));
    const slowB = client.sendRequestHeaders(requestHeaders('slow-b'));
    const ids = Array.from({ length: 12_000 }, (_, i) => `s${i}`);
    const calls = ids.map((id) => client.sendRequestHeaders(requestHeaders(id)));
    const [connection] = [...server.connections];
    await until(() => connection?.inFlight === ids.length + 2);
    releases.get('slow-a')?.(); // frees one slot: the whole queue runs from there
    const replies = await Promise.all(calls);
    expect(replies.map((r) => r.audit.tags[0])).toEqual(ids);
    expect(peak).toBe(2);
    releases.get('slow-b')?.();
    expect((await slowA).audit.tags).toEqual(['slow-a']);
    expect((await slowB).audit.tags).toEqual(['slow-b']);
    await until(() => connection?.inFlight === 0);
  });
});

describe('jobs by correlation id', () => {
  it('cancels running events whose ids are object-prototype names', async () => {
    const cancels: string[] = [];
    const aborted: string[] = [];
    const { server, client } = await serveAndConnect(
      handler({
        onRequestHeaders: (_e, ctx) =>
          new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              aborted.push(ctx.correlationId);
              resolve(allow());
            });
          }),
        onCancel: (cid) => cancels.push(cid),
      }),
    );
    const ids = ['__proto__', 'constructor', 'toString', '0'];
    const calls = ids.map((id) => client.sendRequestHeaders(requestHeaders(id)));
    const [connection] = [...server.connections];
    await until(() => connection?.inFlight === ids.length);
    for (const id of ids) await client.cancel(id);
    for (const c of calls) await expect(c).rejects.toMatchObject({ code: 'CANCELLED' });
    await until(() => cancels.length === ids.length && connection?.inFlight === 0);
    expect(cancels).toEqual(ids);
    expect(aborted.sort()).toEqual([...ids].sort());
    await client.ping();
    expect(client.stats.droppedReplies).toBe(0);
  });
});

describe('cancel of a queued event', () => {
  it('removes it before its handler runs, calls onCancel, and sends no reply', async () => {
    const started: string[] = [];
    const cancels: string[] = [];
    let release: () => void = () => {};
    const { server, client } = await serveAndConnect(
      handler({
        onRequestHeaders: async (_e, ctx) => {
          started.push(ctx.correlationId);
          if (ctx.correlationId === 'first') await new Promise<void>((r) => (release = r));
          return allow();
        },
        onCancel: (cid) => cancels.push(cid),
      }),
      { maxConcurrentPerConnection: 1 },
    );

    const first = client.sendRequestHeaders(requestHeaders('first'));
    const queued = client.sendRequestHeaders(requestHeaders('queued'));
    await until(() => started.length === 1);
    const [connection] = [...server.connections];
    await until(() => connection?.inFlight === 2);
    await client.cancel('queued');
    await expect(queued).rejects.toMatchObject({ code: 'CANCELLED' });
    await until(() => cancels.length === 1);
    release();
    await first;
    await client.ping();
    expect(started).toEqual(['first']);
    expect(cancels).toEqual(['queued']);
    expect(client.stats.droppedReplies).toBe(0);
  });
});
