import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createAgentProject, main } from '../src/index.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const repo = join(pkgDir, '..', '..');
const bin = join(pkgDir, 'bin', 'create-picket-agent.js');
const picketCli = join(repo, 'apps', 'cli', 'bin', 'picket.js');

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});
/** A fresh directory; `inside` puts it in this package, below its node_modules (see the e2e test). */
function tempDir(inside = false): string {
  const dir = mkdtempSync(inside ? join(pkgDir, '.e2e-') : join(tmpdir(), 'create-picket-agent-'));
  temps.push(dir);
  return dir;
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const workspaceVersion = (name: string) =>
  json(join(repo, 'packages', name, 'package.json')).version;
const installedVersion = (name: string) =>
  json(join(pkgDir, 'node_modules', name, 'package.json')).version;

/** A child process to its end, without blocking the event loop (vitest's worker talks on it). */
function exec(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function run(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(
    argv,
    (t) => {
      out += t;
    },
    (t) => {
      err += t;
    },
  );
  return { code, out, err };
}

describe('the generated project', () => {
  it('has the agent, main, test, tsconfig, README and a package.json at the current versions', () => {
    const dir = join(tempDir(), 'shop-guard');
    const { code, out } = run([dir]);
    expect(code).toBe(0);
    expect(out).toContain('Created shop-guard');
    for (const f of [
      'package.json',
      'src/agent.ts',
      'src/main.ts',
      'test/agent.test.ts',
      'tsconfig.json',
      'README.md',
      '.gitignore',
    ]) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const manifest = json(join(dir, 'package.json'));
    expect(manifest.name).toBe('shop-guard');
    expect(manifest.type).toBe('module');
    expect(manifest.scripts).toEqual({
      start: 'tsx src/main.ts',
      test: 'vitest run',
      typecheck: 'tsc -p tsconfig.json',
    });
    expect(manifest.dependencies).toEqual({
      '@picket/protocol': `^${workspaceVersion('protocol')}`,
      '@picket/transport': `^${workspaceVersion('transport')}`,
      '@picket/uds': `^${workspaceVersion('uds')}`,
    });
    expect(manifest.devDependencies).toEqual({
      '@picket/testing': `^${workspaceVersion('testing')}`,
      '@types/node': `^${installedVersion('@types/node')}`,
      tsx: `^${installedVersion('tsx')}`,
      typescript: `^${installedVersion('typescript')}`,
      vitest: `^${installedVersion('vitest')}`,
    });
    expect(manifest.overrides).toBeUndefined();
    // the template's name is the project's, in code and docs
    expect(readFileSync(join(dir, 'src/agent.ts'), 'utf8')).toContain("agentId: 'shop-guard'");
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toMatch(/^# shop-guard\n/);
    expect(readFileSync(join(dir, 'src/main.ts'), 'utf8')).toContain('unix:/tmp/shop-guard.sock');
  });

  it('refuses a directory that is not empty unless --force, and bad arguments', () => {
    const dir = join(tempDir(), 'full');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const refused = run([dir]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('is not empty');
    expect(refused.err).toContain('--force');
    expect(existsSync(join(dir, 'package.json'))).toBe(false);
    expect(run([dir, '--force', '--name', 'my-thing']).code).toBe(0);
    expect(json(join(dir, 'package.json')).name).toBe('my-thing');
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');

    expect(run([join(dir, 'notes.txt')]).err).toContain('is not a directory');
    expect(run([join(tempDir(), 'Bad Name')]).err).toContain('not a valid npm package name');
    for (const [argv, message] of [
      [[], 'no directory given'],
      [['a', 'b'], 'one directory'],
      [['a', '--frobnicate'], 'unknown option --frobnicate'],
      [['a', '--name'], '--name needs a value'],
    ] as const) {
      const r = run([...argv]);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toContain(message);
      expect(r.err).toContain('Usage:');
    }
    expect(run(['--help']).out).toContain('--picket-from');
  });

  it('once packed (as published), asks for the ranges its own manifest was published with', async () => {
    const dir = tempDir();
    const packed = await exec('pnpm', ['pack', '--pack-destination', dir], { cwd: pkgDir });
    expect(packed.status, packed.stdout + packed.stderr).toBe(0);
    const tgz = join(dir, `create-picket-agent-${json(join(pkgDir, 'package.json')).version}.tgz`);
    expect((await exec('tar', ['-xzf', tgz, '-C', dir])).status).toBe(0);
    const published = json(join(dir, 'package', 'package.json')).devDependencies;
    const project = join(dir, 'out');
    const r = await exec(process.execPath, [
      join(dir, 'package', 'bin', 'create-picket-agent.js'),
      project,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const manifest = json(join(project, 'package.json'));
    expect(manifest.dependencies['@picket/uds']).toBe(published['@picket/uds']);
    expect(manifest.dependencies['@picket/uds']).toMatch(/^\^\d+\.\d+\.\d+$/);
    expect(manifest.devDependencies.vitest).toBe(published.vitest);
    expect(manifest.devDependencies.vitest).not.toMatch(/catalog|workspace/);
    expect(existsSync(join(project, '.gitignore'))).toBe(true);
  });

  it('--picket-from points every @picket package, direct or not, at its tarball', async () => {
    const tarballs = tempDir();
    const names = ['protocol', 'codec', 'framing', 'uds', 'pool', 'transport', 'testing'];
    for (const name of names) {
      const packed = await exec('pnpm', ['pack', '--pack-destination', tarballs], {
        cwd: join(repo, 'packages', name),
      });
      expect(packed.status, packed.stdout + packed.stderr).toBe(0);
    }
    const dir = join(tempDir(), 'from-tarballs');
    expect(run([dir, '--picket-from', tarballs]).code).toBe(0);
    const manifest = json(join(dir, 'package.json'));
    const tgz = (name: string) =>
      `file:${join(tarballs, `picket-${name}-${workspaceVersion(name)}.tgz`)}`;
    expect(manifest.dependencies['@picket/transport']).toBe(tgz('transport'));
    expect(manifest.devDependencies['@picket/testing']).toBe(tgz('testing'));
    // every @picket dependency of every tarball has an override (npm and pnpm)
    for (const name of names) {
      const inner = JSON.parse(
        execFileSync('tar', ['-xzOf', tgz(name).slice(5), 'package/package.json'], {
          encoding: 'utf8',
        }),
      );
      for (const dep of Object.keys(inner.dependencies ?? {}).filter((d) =>
        d.startsWith('@picket/'),
      )) {
        expect(manifest.overrides[dep], `${name} → ${dep}`).toMatch(/^file:.*\.tgz$/);
        expect(manifest.pnpm.overrides[dep]).toBe(manifest.overrides[dep]);
      }
    }
    rmSync(join(tarballs, `picket-uds-${workspaceVersion('uds')}.tgz`));
    expect(() =>
      createAgentProject({ directory: join(tempDir(), 'x'), picketFrom: tarballs }),
    ).toThrow(/no tarball for @picket\/uds/);
  });
});

/**
 * End to end: the real bin writes a project, whose own npm scripts then typecheck it, run its
 * tests and start it; the picket CLI sends it requests over its Unix socket.
 *
 * Installing offline is not possible here: `npm install --offline` / `pnpm install --offline`
 * need registry metadata for tsx, vitest, cbor-x … that this machine's caches do not hold
 * (ENOTCACHED / ERR_PNPM_NO_OFFLINE_META). So the project is generated inside this package,
 * where Node, tsc and npm's script PATH find the very packages its package.json asks for (this
 * package's node_modules: the workspace's @picket packages and the same tsx / vitest /
 * typescript / @types/node versions, which the first test checks the manifest names).
 */
describe('end to end', () => {
  let agent: ChildProcess | undefined;
  afterAll(() => {
    // the agent runs in its own process group (tsx starts a second node): end that group
    if (agent?.pid !== undefined && agent.exitCode === null) process.kill(-agent.pid, 'SIGKILL');
  });

  it('generates, typechecks, tests, starts and answers the picket CLI', async () => {
    const dir = join(tempDir(true), 'demo-agent');
    const created = await exec(process.execPath, [bin, dir]);
    expect(created.status, created.stderr).toBe(0);

    const npm = (script: string) => exec('npm', ['run', script], { cwd: dir, env: npmEnv() });
    const typecheck = await npm('typecheck');
    expect(typecheck.status, typecheck.stdout + typecheck.stderr).toBe(0);
    const tests = await npm('test');
    expect(tests.status, tests.stdout + tests.stderr).toBe(0);
    expect(tests.stdout).toMatch(/Tests\s+4 passed/);

    // the generated tests can fail: break the rule and they do
    const agentFile = join(dir, 'src', 'agent.ts');
    const source = readFileSync(agentFile, 'utf8');
    writeFileSync(agentFile, source.replace('uri.startsWith(ADMIN_PREFIX)', "uri === 'never'"));
    expect((await npm('test')).status).not.toBe(0);
    writeFileSync(agentFile, source);

    const sockDir = tempDir();
    const endpoint = `unix:${join(sockDir, 'agent.sock')}`;
    agent = spawn('npm', ['start', '--', endpoint], {
      cwd: dir,
      env: { ...npmEnv(), ADMIN_TOKEN: 's3cret' },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    agent.stdout?.on('data', (d) => {
      output += d;
    });
    agent.stderr?.on('data', (d) => {
      output += d;
    });
    const exited = new Promise<number | null>((resolve) => agent?.once('exit', resolve));
    await expect.poll(() => output, { timeout: 60_000, interval: 100 }).toContain('listening on');
    expect(output).toContain(`demo-agent listening on ${endpoint}`);

    const send = async (...args: string[]) => {
      const r = await exec(process.execPath, [picketCli, 'send', endpoint, '--json', ...args]);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    const blocked = await send('--uri', '/admin/users');
    expect(blocked.agentId).toBe('demo-agent');
    expect(blocked.response.decision).toEqual({
      block: { status: 403, body: 'Forbidden', headers: null },
    });
    expect(blocked.response.audit.reason_codes).toEqual(['ADMIN_TOKEN_MISSING']);
    const allowed = await send('--uri', '/admin/users', '-H', 'x-admin-token: s3cret');
    expect(allowed.decision).toBe('allow');
    expect(allowed.steps[0].response.request_headers).toEqual([
      { set: { name: 'x-agent-checked', value: 'demo-agent' } },
    ]);

    // SIGTERM to the group (npm, sh, tsx, node): the agent drains and removes its socket
    process.kill(-(agent.pid as number), 'SIGTERM');
    await exited;
    await expect
      .poll(() => existsSync(join(sockDir, 'agent.sock')), { timeout: 10_000 })
      .toBe(false);
  });
});

/** npm without update checks, funding or audit lines, and no registry traffic. */
function npmEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_offline: 'true',
    NO_COLOR: '1',
    FORCE_COLOR: '0',
  };
}
