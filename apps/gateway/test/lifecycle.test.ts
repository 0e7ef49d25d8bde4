/**
 * The gateway process from start to stop, as `pnpm start` runs it: a busy port is reported
 * before any agent starts (naming the port and the flag to use instead), Ctrl-C and SIGTERM
 * stop it cleanly, and `--config` paths are taken from where the command was run.
 */
import { readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { APP_DIR, killAll, spawnTs, startGateway, tempDir, writeYaml } from './helpers.js';

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await killAll();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

/** A TCP or Unix-socket server that accepts connections and counts them. */
async function holder(port: number | string): Promise<{ address: string; accepted: () => number }> {
  let accepted = 0;
  const s = createServer((socket) => {
    accepted++;
    socket.on('error', () => {});
  });
  servers.push(s);
  await new Promise<void>((resolve) => {
    if (typeof port === 'string') s.listen(port, resolve);
    else s.listen(port, '127.0.0.1', resolve);
  });
  const a = s.address();
  return {
    address: typeof a === 'object' && a ? `127.0.0.1:${a.port}` : String(a),
    accepted: () => accepted,
  };
}

/** The embedded setup's temp dirs in `tmp` (the process gets TMPDIR=tmp). */
const gatewayDirs = (tmp: string) =>
  readdirSync(tmp).filter((f) => f.startsWith('picket-gateway-'));

describe('gateway process lifecycle', () => {
  it('a port in use: exit 1 naming the address and --listen, before any agent starts', async () => {
    const busy = await holder(0);
    const tmp = dir();
    const p = spawnTs('src/main.ts', ['--listen', busy.address], { TMPDIR: tmp });
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain(`cannot listen on ${busy.address}: the port is already in use`);
    expect(p.stderr()).toContain('--listen');
    expect(p.stdout()).not.toContain('listening');
    // the embedded agents were never started: no temp dir for their sockets was made
    expect(gatewayDirs(tmp)).toEqual([]);
  });

  it('a port in use with --config: no agent is dialled', async () => {
    const busy = await holder(0);
    const d = dir();
    const agent = await holder(join(d, 'agent.sock'));
    const file = writeYaml(d, {
      listen: busy.address,
      upstreams: { app: 'http://127.0.0.1:9' },
      agents: { waf: `unix:${join(d, 'agent.sock')}` },
      routes: [{ upstream: 'app', agents: ['waf'] }],
    });
    const p = spawnTs('src/main.ts', ['--config', file]);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toContain(`cannot listen on ${busy.address}`);
    expect(p.stderr()).toContain(`change listen in ${file}`);
    expect(agent.accepted()).toBe(0);
  });

  for (const [name, signals] of [
    // a terminal's Ctrl-C reaches the gateway, and pnpm forwards it once more
    ['Ctrl-C under pnpm (SIGINT twice)', ['SIGINT', 'SIGINT']],
    ['SIGTERM', ['SIGTERM']],
  ] as const) {
    it(`${name}: says it stops, removes its temp dir, exits 0`, async () => {
      const tmp = dir();
      const gw = await startGateway(['--listen', '127.0.0.1:0', '--quiet'], { TMPDIR: tmp });
      await gw.waitFor(/curl -s http/); // the banner: the embedded setup is up
      expect(gatewayDirs(tmp)).toHaveLength(1);
      for (const s of signals) gw.proc.kill(s);
      expect(await gw.exited).toBe(0);
      expect(gw.stdout()).toContain('picket gateway stopping…');
      expect(gw.stdout()).toContain('picket gateway stopped');
      expect(gatewayDirs(tmp)).toEqual([]);
    });
  }

  it('--config: a relative path is taken from where the command was run (INIT_CWD)', async () => {
    const d = dir();
    writeYaml(d, {
      listen: '127.0.0.1:0',
      upstreams: { app: 'http://127.0.0.1:9' },
      routes: [{ upstream: 'app' }],
    });
    // pnpm runs the script in APP_DIR and sets INIT_CWD to the user's directory
    const gw = await startGateway(['--config', 'gateway.yaml', '--quiet'], { INIT_CWD: d });
    expect(gw.port).toBeGreaterThan(0);

    const missing = spawnTs('src/main.ts', ['--config', 'nope.yaml'], { INIT_CWD: d });
    expect(await missing.exited).toBe(1);
    expect(missing.stderr()).toContain(`invalid gateway config (${join(d, 'nope.yaml')})`);
    expect(missing.stderr()).not.toContain(APP_DIR);
  });
});
