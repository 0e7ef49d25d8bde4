// `picket exec --via '<agent>' -- …` end to end: the built CLI, the built picket-agent bin
// (node packages/agentproto/bin/picket-agent.js) and real children.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { shellWords } from '../src/exec.js';
import { MAIN, run } from './helpers.js';

const AGENT_BIN = fileURLToPath(
  new URL('../../../packages/agentproto/bin/picket-agent.js', import.meta.url),
);
const VIA = `'${process.execPath}' '${AGENT_BIN}'`;

/** `picket exec` with stdin from `input`. */
function execWithInput(args: string[], input: string) {
  const proc = spawn(process.execPath, [MAIN, 'exec', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  proc.stdin.end(input);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    proc.once('close', (code) => resolve({ code, stdout: out, stderr: err })),
  );
}

describe('picket exec', () => {
  it('bridges stdin / stdout / stderr and passes the exit status through', async () => {
    const r = await execWithInput(
      ['--via', VIA, '--', 'sh', '-c', 'tr a-z A-Z; echo to-stderr >&2; exit 7'],
      'hello agent\n',
    );
    expect(r).toMatchObject({ code: 7, stdout: 'HELLO AGENT\n', stderr: 'to-stderr\n' });
  });

  it('env, the allow-list and cwd', async () => {
    const r = await run([
      'exec',
      '--via',
      VIA,
      '--cwd',
      '/',
      '--env',
      'KEEP_A=1',
      '--env',
      'DROP_B=2',
      '--env-keep',
      'KEEP_*',
      '--',
      '/usr/bin/env',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('KEEP_A=1\n');
  });

  it('a program that cannot be found → 127 and the reason on stderr', async () => {
    const r = await run(['exec', '--via', VIA, '--', 'picket-no-such-program']);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('executable file not found in $PATH');
  });

  it('SIGTERM to picket exec reaches the program group: exit 143', async () => {
    const proc = spawn(
      process.execPath,
      [MAIN, 'exec', '--via', VIA, '--', 'sh', '-c', 'echo ready; sleep 120'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    await new Promise<void>((resolve) => proc.stdout.once('data', () => resolve()));
    proc.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) =>
      proc.once('close', (c) => resolve(c)),
    );
    expect(code).toBe(143);
  });

  it('is listed in picket --help and documents its options', async () => {
    expect((await run(['--help'])).stdout).toContain('exec --via');
    const r = await run(['exec', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: picket exec');
    for (const f of ['--via', '--cwd', '--env', '--env-keep', '--env-remove'])
      expect(r.stdout).toContain(f);
    expect((await run(['help', 'exec'])).stdout).toBe(r.stdout);
  });

  it('usage errors exit 2', async () => {
    expect((await run(['exec', '--', 'true'])).code).toBe(2);
    expect((await run(['exec', '--via', VIA])).code).toBe(2);
  });

  it('splits --via like a shell', () => {
    expect(shellWords(`ssh -p 22 'my host' "a \\"b\\"" c\\ d`)).toEqual([
      'ssh',
      '-p',
      '22',
      'my host',
      'a "b"',
      'c d',
    ]);
  });
});
