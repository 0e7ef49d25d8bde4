/**
 * The README's code and HAProxy configuration are the files in examples/ (the
 * configuration is what test/haproxy.test.ts runs), and the example agent does what
 * the README says.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { edgeGuard, startEdgeGuard } from '../examples/readme.js';
import type { SpoeAgentServer } from '../src/index.js';
import { notifyFrame, Peer, requestArgs, str } from './peer.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
let server: SpoeAgentServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  vi.restoreAllMocks();
});

describe('README', () => {
  it('each <!-- file: … --> block is that file, byte for byte', () => {
    const blocks = [...readme.matchAll(/<!-- file: (\S+) -->\n```\w+\n([\s\S]*?)```\n/g)];
    expect(blocks.map((m) => m[1])).toEqual([
      'examples/readme.ts',
      'examples/spoe-picket.conf',
      'examples/haproxy.cfg',
    ]);
    for (const [, path, text] of blocks) {
      expect(text, `${path} differs from its copy in README.md`).toBe(
        readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'),
      );
    }
  });

  it('the example agent blocks /admin, redirects /old and sets X-User over SPOP', async () => {
    vi.spyOn(console, 'log').mockImplementation(() => undefined);
    // port 0 instead of 12345: the test must not depend on a fixed port being free
    server = await startEdgeGuard(0);
    expect(edgeGuard.capabilities().agent_id).toBe('edge-guard');
    const port = Number(new URL(server.endpoints[0] as string).port);
    const p = await Peer.connect(port);
    await p.hello();
    p.send(notifyFrame(1, 1, requestArgs('/admin/x')));
    expect((await p.ack()).vars.get('decision')).toEqual(str('block'));
    p.send(notifyFrame(2, 1, requestArgs('/old')));
    const r = await p.ack();
    expect(r.vars.get('location')).toEqual(str('https://example.com/new'));
    p.send(notifyFrame(3, 1, requestArgs('/')));
    const a = await p.ack();
    expect(a.vars.get('req.set.x_user')).toEqual(str('anonymous'));
    expect(a.vars.get('req.del.x_internal')).toEqual({ type: 'bool', value: true });
    expect(a.vars.get('res.set.x_frame_options')).toEqual(str('DENY'));
    p.close();
  });
});
