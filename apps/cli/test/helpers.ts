/** Runs `node dist/main.js …` as a real child process; every process is killed by `killAll()`. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

export interface Cli {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
}

const running = new Set<Cli>();

/** Starts `picket <args>`. */
export function start(args: string[]): Cli {
  const proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) =>
    proc.once('close', (code) => resolve(code)),
  );
  const cli: Cli = { proc, stdout: () => out, stderr: () => err, exited };
  running.add(cli);
  void exited.then(() => running.delete(cli));
  return cli;
}

/** Runs `picket <args>` to completion. */
export async function run(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = start(args);
  const code = await cli.exited;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

/** Waits until stdout has a line matching `re` and returns the match. */
export async function waitForLine(cli: Cli, re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = cli.stdout().match(re);
    if (m) return m;
    if (cli.proc.exitCode !== null || Date.now() > end) {
      throw new Error(
        `no line matching ${re} (exit ${cli.proc.exitCode})\nstdout:\n${cli.stdout()}\nstderr:\n${cli.stderr()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The JSON objects printed one per line by `serve --json`. */
export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Kills every process still running (afterEach). */
export async function killAll(): Promise<void> {
  const all = [...running];
  for (const cli of all) if (cli.proc.exitCode === null) cli.proc.kill('SIGKILL');
  await Promise.all(all.map((c) => c.exited));
}

/** A fresh temp dir. */
export function tempDir(): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'picket-'));
  return {
    dir,
    path: (n) => join(dir, n),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A CA and a server certificate for localhost / 127.0.0.1, as files (openssl, EC P-256). */
export function certFiles(dir: string): { ca: string; cert: string; key: string } {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=picket cli test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  );
  readFileSync(join(dir, 'server.crt'));
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

/** True when util-linux `script` can give a child a pseudo-terminal. */
export function hasScript(): boolean {
  try {
    execFileSync('script', ['-qc', 'true', '/dev/null'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** Runs `picket <args>` under a pseudo-terminal (`script`); returns what the terminal showed. */
export async function runInTerminal(args: string[]): Promise<string> {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, MAIN, ...args].map(quote).join(' ');
  const proc = spawn('script', ['-qc', command, '/dev/null'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const cli: Cli = {
    proc,
    stdout: () => out,
    stderr: () => '',
    exited: new Promise((resolve) => proc.once('close', (code) => resolve(code))),
  };
  running.add(cli);
  await cli.exited;
  running.delete(cli);
  return out;
}
