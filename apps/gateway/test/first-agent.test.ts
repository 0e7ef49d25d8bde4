/**
 * Walks docs/first-agent.md as a reader would: its example files are the ones on the page, its
 * `start` commands (agent, app, gateway) run as printed from the repository root, and every
 * `$ command` of its console blocks, curl included, prints exactly the output shown. Only the
 * socket path and the ports differ (a temp dir and free ports), substituted in both.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { APP_DIR, tempDir } from './helpers.js';

const ROOT = join(APP_DIR, '..', '..');
const GUIDE = readFileSync(join(ROOT, 'docs', 'first-agent.md'), 'utf8');

/** The fenced blocks of the guide marked `<!-- kind: name -->`, by name. */
function marked(kind: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /<!-- (\w[\w-]*): (\S+) -->\n```\w*\n([\s\S]*?)```\n/g;
  for (const m of GUIDE.matchAll(re)) if (m[1] === kind) out.set(m[2] as string, m[3] as string);
  return out;
}

function block(kind: string, name: string): string {
  const text = marked(kind).get(name);
  if (text === undefined)
    throw new Error(`docs/first-agent.md has no <!-- ${kind}: ${name} --> block`);
  return text;
}

/** Replaces each key by its value, insisting that every key occurs. */
function substitute(text: string, subs: Record<string, string>): string {
  let out = text;
  for (const [from, to] of Object.entries(subs)) {
    if (!out.includes(from)) throw new Error(`expected "${from}" in:\n${text}`);
    out = out.split(from).join(to);
  }
  return out;
}

interface Started {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const started: Started[] = [];

/** Runs a guide command with bash in the repository root, in its own process group. */
function startCommand(command: string): Started {
  const proc = spawn('bash', ['-c', command], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const s = { proc, output: () => out, exited };
  started.push(s);
  return s;
}

/** Signals the whole process group (pnpm, tsx and node under it). */
function signal(s: Started, sig: NodeJS.Signals): void {
  try {
    process.kill(-(s.proc.pid as number), sig);
  } catch {
    // already gone
  }
}

async function waitFor(s: Started, re: RegExp, ms = 90_000): Promise<RegExpMatchArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = re.exec(s.output());
    if (m) return m;
    if (s.proc.exitCode !== null || Date.now() > end) {
      throw new Error(`no ${re} (exit ${s.proc.exitCode}); output:\n${s.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The `$ command` lines of a console block and the output shown under each. */
function steps(console: string): { command: string; expected: string }[] {
  const out: { command: string; expected: string }[] = [];
  for (const line of console.split('\n')) {
    if (line.startsWith('$ ')) out.push({ command: line.slice(2), expected: '' });
    else if (line !== '' && out.length > 0)
      (out.at(-1) as { expected: string }).expected += `${line}\n`;
  }
  return out;
}

/** `picket` as the guide's alias defines it: the CLI's bin in this checkout. */
const PICKET = `picket() { node "${ROOT}/apps/cli/bin/picket.js" "$@"; }`;

function runConsole(name: string, subs: Record<string, string>): void {
  const list = steps(substitute(block('run', name), subs));
  expect(list.length).toBeGreaterThan(0);
  for (const { command, expected } of list) {
    const r = spawnSync('bash', ['-c', `${PICKET}\n${command}`], { cwd: ROOT, encoding: 'utf8' });
    expect({ command, stdout: r.stdout, status: r.status }).toEqual({
      command,
      stdout: expected,
      status: 0,
    });
  }
}

let dir: string | undefined;

afterEach(async () => {
  for (const s of started) signal(s, 'SIGTERM');
  const force = setTimeout(() => {
    for (const s of started) signal(s, 'SIGKILL');
  }, 5_000);
  await Promise.all(started.splice(0).map((s) => s.exited));
  clearTimeout(force);
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('docs/first-agent.md', () => {
  it('shows each example file exactly as it is in the repository', () => {
    const files = marked('file');
    expect([...files.keys()].sort()).toEqual([
      'apps/gateway/examples/first-agent/agent.ts',
      'apps/gateway/examples/first-agent/app.ts',
      'apps/gateway/examples/first-agent/gateway.yaml',
    ]);
    for (const [path, text] of files) {
      expect(text, `${path} on the page differs from the file`).toBe(
        readFileSync(join(ROOT, path), 'utf8'),
      );
    }
  });

  it('works as written: agent, picket probe/send, app, gateway, curl, agent stopped', async () => {
    execFileSync('curl', ['--version'], { stdio: 'ignore' }); // the guide's requests use curl
    dir = tempDir();
    const sock = join(dir, 'first-agent.sock');

    // terminal 1: the agent (the test gives it a socket in a temp dir)
    const agentCommand = `${block('start', 'agent').trim()} ${sock}`;
    let agent = startCommand(agentCommand);
    await waitFor(agent, /first-agent listening on unix:\S+/);
    runConsole('agent', { '/tmp/first-agent.sock': sock });

    // terminal 2: the app, on a free port
    const app = startCommand(`${block('start', 'app').trim()} 0`);
    const appPort = (await waitFor(app, /app listening on http:\/\/127\.0\.0\.1:(\d+)/))[1];

    // terminal 3: the gateway with the guide's config, pointed at the temp socket and app port
    const config = join(dir, 'gateway.yaml');
    writeFileSync(
      config,
      substitute(readFileSync(join(APP_DIR, 'examples/first-agent/gateway.yaml'), 'utf8'), {
        'unix:/tmp/first-agent.sock': `unix:${sock}`,
        'http://127.0.0.1:3000': `http://127.0.0.1:${appPort}`,
      }),
    );
    const gwCommand = substitute(block('start', 'gateway').trim(), {
      // a path relative to where the command runs (the repository root), as printed
      'apps/gateway/examples/first-agent/gateway.yaml': config,
    });
    const gw = startCommand(`${gwCommand} --listen 127.0.0.1:0`);
    const port = (await waitFor(gw, /picket gateway listening on http:\/\/127\.0\.0\.1:(\d+)/))[1];
    const gwSubs = { '127.0.0.1:8080': `127.0.0.1:${port}` };
    runConsole('gateway', gwSubs);

    // Ctrl-C in terminal 1: the agent stops and removes its socket; fail-closed ⇒ 503
    signal(agent, 'SIGINT');
    await agent.exited;
    for (let i = 0; i < 300 && existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(sock)).toBe(false);
    runConsole('agent-stopped', gwSubs);

    // "Start the agent again and the next request goes through"
    agent = startCommand(agentCommand);
    await waitFor(agent, /first-agent listening on/);
    const curl = ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'x-api-key: 42'];
    const url = `http://127.0.0.1:${port}/hello`;
    let status = '';
    for (let i = 0; i < 300 && status !== '200'; i++) {
      status = execFileSync('curl', [...curl, url], { encoding: 'utf8' });
      if (status !== '200') await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe('200');
  }, 240_000);
});
