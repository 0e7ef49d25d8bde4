/**
 * Socket file permissions. Every server (UDS v2, reverse listener, v1, gRPC `unix:`) creates
 * its socket file with its final mode from the start: an observer watching the directory
 * never sees the file with wider bits, even under umask 000 (the shared helper binds in a
 * private directory, chmods, renames into place; packages/protocol/test/socket-file.test.ts).
 * The layers on top keep it: the `picket serve` CLI (UDS v2 and v1) and the transport
 * facade's reverse listener (what the gateway uses) create their sockets with mode 0660.
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, statSync, watch } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { EchoAgent } from '@picket/agents';
import { GrpcAgentServerV2 } from '@picket/grpc';
import { silentLogger } from '@picket/protocol';
import { MAX_SOCKET_PATH_BYTES } from '@picket/protocol/internal';
import { connectReverse, ReverseConnectionListener } from '@picket/reverse';
import { createPool } from '@picket/transport';
import { UdsAgentServerV2 } from '@picket/uds';
import { AgentServer } from '@picket/v1';
import { afterEach, describe, expect, it } from 'vitest';
import { onCleanup, runCleanups, tempDir, until } from './helpers.js';

afterEach(runCleanups);

const require = createRequire(import.meta.url);
const CLI = join(dirname(require.resolve('@picket/cli/package.json')), 'dist/main.js');

const mode = (path: string): number => statSync(path).mode & 0o777;

const KINDS = { uds: 0o600, reverse: 0o660, v1: 0o640, grpc: 0o600 } as const;
type Kind = keyof typeof KINDS;
const FIXTURE = join(import.meta.dirname, 'fixtures/bind-sockets.mjs');

/** A child running fixtures/bind-sockets.mjs; `next(line)` waits for its next stdout line. */
function bindChild(targets: Record<Kind, { path: string; mode: number }>) {
  const child = spawn(process.execPath, [FIXTURE, JSON.stringify(targets)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  onCleanup(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let exit: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exit = code;
      resolve(code);
    }),
  );
  const lines: string[] = [];
  let buffered = '';
  child.stdout.on('data', (b: Buffer) => {
    buffered += b.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  let read = 0;
  return {
    send: (line: string) => child.stdin.write(`${line}\n`),
    next: async (what: string): Promise<string> => {
      await until(
        () => lines.length > read || exit !== undefined,
        30_000,
        `${what} from the child`,
      );
      if (lines.length <= read) throw new Error(`the child exited (${exit}) before ${what}`);
      return lines[read++] ?? '';
    },
    exited,
    end: () => child.stdin.end(),
  };
}

describe('socket files are born with their final mode', () => {
  it('no observer ever sees a UDS, reverse, v1 or gRPC socket with wider bits', async () => {
    const dir = tempDir();
    const targets = Object.fromEntries(
      Object.entries(KINDS).map(([kind, m]) => [
        kind,
        { path: join(dir, `${kind}.sock`), mode: m },
      ]),
    ) as Record<Kind, { path: string; mode: number }>;
    const child = bindChild(targets);
    expect(await child.next('"ready"')).toBe('ready');

    // The observer: every mode ever seen at each final path, from a tight lstat loop and on
    // every inotify event, plus the names whose attributes changed after they appeared (a
    // chmod at the final path, which means the file was visible there with other bits).
    const seen = new Map<Kind, Set<number>>(Object.keys(KINDS).map((k) => [k as Kind, new Set()]));
    const changed = new Set<string>();
    const sample = (): void => {
      for (const [kind, set] of seen) {
        try {
          set.add(lstatSync(targets[kind].path).mode & 0o777);
        } catch {
          // not there (yet)
        }
      }
    };
    const watcher = watch(dir, (event, name) => {
      if (event === 'change' && name !== null) changed.add(name);
      sample();
    });
    onCleanup(() => watcher.close());
    let observing = true;
    const spinning = (async () => {
      while (observing) {
        for (let i = 0; i < 200; i++) sample();
        await turn(); // let the watcher's events in
      }
    })();

    child.send('bind');
    for (const kind of Object.keys(KINDS))
      expect(await child.next(`"bound ${kind}"`)).toBe(`bound ${kind}`);
    observing = false;
    await spinning;
    await turn();
    sample();

    for (const [kind, allowed] of Object.entries(KINDS) as [Kind, number][]) {
      const wider = [...(seen.get(kind) ?? [])].filter((m) => (m & ~allowed) !== 0);
      expect(
        wider.map((m) => m.toString(8)),
        `${kind}: modes wider than ${allowed.toString(8)}`,
      ).toEqual([]);
      expect(lstatSync(targets[kind].path).isSocket()).toBe(true);
      expect(mode(targets[kind].path), kind).toBe(allowed);
      // inotify queues every event, so this holds however the observer was scheduled
      if (process.platform === 'linux') {
        expect(changed.has(`${kind}.sock`), `${kind}: chmodded after it appeared`).toBe(false);
      }
    }

    // close removes every socket file and leaves nothing else behind
    child.send('close');
    expect(await child.next('"closed"')).toBe('closed');
    child.end();
    expect(await child.exited).toBe(0);
    for (const kind of Object.keys(KINDS))
      expect(existsSync(targets[kind as Kind].path)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  }, 60_000);

  it('every server refuses a path past the sun_path limit, naming it and its byte length', async () => {
    // Node would silently truncate it and bind (or refuse) a different file.
    const dir = tempDir();
    const path = join(dir, 'x'.repeat(MAX_SOCKET_PATH_BYTES));
    const message = `socket path ${path} is ${Buffer.byteLength(path)} bytes; a Unix socket path can have at most ${MAX_SOCKET_PATH_BYTES}`;
    const handler = new EchoAgent({ agentId: 'long' });
    const uds = new UdsAgentServerV2(path, handler, { logger: silentLogger });
    const v1 = new AgentServer('long', path, handler, { logger: silentLogger });
    const grpc = new GrpcAgentServerV2(handler, { logger: silentLogger });
    onCleanup(() => Promise.all([uds.close(), v1.close(), grpc.close({ drainTimeoutMs: 0 })]));
    const attempts: Record<Kind, () => Promise<unknown>> = {
      uds: () => uds.listen(),
      reverse: () =>
        ReverseConnectionListener.bindUds(path, { logger: silentLogger }).then((l) => {
          onCleanup(() => l.close());
        }),
      v1: () => v1.run(),
      grpc: () => grpc.listen(`unix:${path}`),
    };
    for (const [kind, attempt] of Object.entries(attempts)) {
      await expect(attempt(), kind).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message });
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('socket modes', () => {
  it('picket serve: UDS and v1 sockets are 0660', async () => {
    const dir = tempDir();
    const uds = join(dir, 'echo.sock');
    const v1 = join(dir, 'echo-v1.sock');
    // umask 000: a server that left the mode to the umask would create 0777 sockets
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        'umask 000 && exec "$0" "$@"',
        process.execPath,
        CLI,
        'serve',
        'echo',
        '--listen',
        uds,
        '--listen',
        `v1+unix:${v1}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    onCleanup(
      () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) resolve();
          else {
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }
        }),
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    await until(
      () => (out.match(/listening on/g) ?? []).length >= 2,
      15_000,
      `two "listening" lines (got: ${out})`,
    );
    expect(mode(uds)).toBe(0o660);
    expect(mode(v1)).toBe(0o660);
  });

  it('a pool reverse listener (reverse+unix:, as the gateway binds it) is 0660', async () => {
    const dir = tempDir();
    const path = join(dir, 'reverse.sock');
    const previous = process.umask(0); // as above: 0777 unless the listener sets the mode
    onCleanup(() => process.umask(previous));
    const pool = createPool({ logger: silentLogger });
    onCleanup(() => pool.close({ drainTimeoutMs: 0 }));
    const adding = pool.addAgent('edge', `reverse+unix:${path}`, {
      reverse: { tokens: ['t0ken'] },
    });
    adding.catch(() => undefined);
    // The file appears only with its final mode, so its first sighting is already 0660
    // (this once failed, seeing 0777 between bind and chmod).
    await until(() => existsSync(path), 10_000, 'the listener socket');
    expect(mode(path)).toBe(0o660);
    // an agent dials in, so the pool entry completes and closes cleanly
    const agent = connectReverse({
      endpoint: `unix:${path}`,
      agentId: 'edge',
      authToken: 't0ken',
      handler: new EchoAgent({ agentId: 'edge' }),
      logger: silentLogger,
    });
    onCleanup(() => agent.stop());
    await agent.ready({ timeoutMs: 10_000 });
    await adding;
  });
});
