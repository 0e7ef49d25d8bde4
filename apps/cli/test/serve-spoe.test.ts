/** `picket serve … --listen spoe://host:port`: the real binary answering SPOP over TCP. */
import * as net from 'node:net';
import {
  decodeActions,
  decodeFrame,
  encodeFrame,
  encodeKvList,
  encodeMessages,
  SpopFrameType,
} from '@picket/spoe';
import { afterEach, describe, expect, it } from 'vitest';
import { jsonLines, killAll, run, start, waitForLine } from './helpers.js';

afterEach(killAll);

/** Sends frames on one connection and collects the frames the agent writes back. */
async function exchange(port: number, frames: Uint8Array[], expected: number) {
  const s = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  const got: ReturnType<typeof decodeFrame>[] = [];
  await new Promise<void>((resolve, reject) => {
    s.on('error', reject);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        got.push(decodeFrame(buf.subarray(4, 4 + n)));
        buf = buf.subarray(4 + n);
      }
      if (got.length >= expected) resolve();
    });
    for (const f of frames) s.write(f);
  });
  s.destroy();
  return got;
}

const str = (value: string) => ({ type: 'string', value }) as const;

describe('picket serve --listen spoe://', () => {
  it('serves the denylist agent to an SPOP peer: HELLO, then block and allow as variables', async () => {
    const cli = start([
      'serve',
      'denylist',
      '--listen',
      'spoe://127.0.0.1:0',
      '--block-path',
      '/admin',
      '--json',
    ]);
    await waitForLine(cli, /"transport":"spoe"/);
    const listening = jsonLines(cli.stdout()).find((l) => l.transport === 'spoe');
    const port = Number(new URL(String(listening?.endpoint)).port);
    expect(port).toBeGreaterThan(0);
    const notify = (streamId: number, path: string) =>
      encodeFrame({
        type: SpopFrameType.Notify,
        streamId,
        frameId: 1,
        payload: encodeMessages([
          {
            name: 'picket',
            args: [
              ['method', str('GET')],
              ['path', str(path)],
              ['ip', { type: 'ipv4', value: '192.0.2.7' }],
            ],
          },
        ]),
      });
    const frames = await exchange(
      port,
      [
        encodeFrame({
          type: SpopFrameType.HaproxyHello,
          payload: encodeKvList([
            ['supported-versions', str('2.0')],
            ['max-frame-size', { type: 'uint32', value: 16380 }],
            ['capabilities', str('pipelining')],
          ]),
        }),
        notify(1, '/admin/users'),
        notify(2, '/public'),
      ],
      3,
    );
    expect(frames[0]?.type).toBe(SpopFrameType.AgentHello);
    const decision = (streamId: number) => {
      const ack = frames.find((f) => f.type === SpopFrameType.Ack && f.streamId === streamId);
      const vars = new Map(
        decodeActions(ack?.payload ?? new Uint8Array()).map((a) => [
          a.name,
          a.type === 'set-var' ? a.value : undefined,
        ]),
      );
      return [vars.get('decision'), vars.get('status')];
    };
    expect(decision(1)).toEqual([str('block'), { type: 'int32', value: 403 }]);
    expect(decision(2)).toEqual([str('allow'), undefined]);
  });

  it('refuses a malformed spoe:// listener with a usage error naming the form', async () => {
    const r = await run(['serve', 'echo', '--listen', 'spoe://nohost']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('expected spoe://host:port');
  });
});
