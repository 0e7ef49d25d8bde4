// Proves each publishable package installs and imports from its packed tarball alone: pack them
// all (after `pnpm build`), install the tarballs together with plain npm into an empty project
// (no workspace links, no pnpm hoisting to hide a missing dependency), then import each one, or
// run its commands when it is a command-line package (@picket/cli: `picket --version`,
// `npx picket --help`, `npx @picket/cli probe` against `picket serve`).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, publishablePackages } from './check-packages.mjs';

/** Why importing `name` from the project failed, or undefined. */
function importProblem(name) {
  const probe = `const m = await import(${JSON.stringify(name)});
if (Object.keys(m).length === 0) throw new Error('the module has no exports');`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
    cwd: project,
    encoding: 'utf8',
  });
  return res.status === 0 ? undefined : `import from its tarball failed\n${res.stderr.trim()}`;
}

/**
 * Why the package's commands do not work as installed, or undefined: each bin answers
 * `--version` from node_modules/.bin, `npx --no <bin> --help` finds it (never the registry), and
 * for the picket CLI `npx --no <package> probe` reaches an agent that `serve` started.
 */
async function binProblem(manifest, env) {
  const bins = Object.keys(manifest.bin ?? {});
  if (bins.length === 0) return 'neither exports nor a bin: nothing to check';
  const sh = (cmd, args) => spawnSync(cmd, args, { cwd: project, env, encoding: 'utf8' });
  const failed = (what, res) =>
    `${what} exited ${res.status}\n${`${res.stdout}${res.stderr}`.trim()}`;
  for (const bin of bins) {
    const version = sh(join(project, 'node_modules', '.bin', bin), ['--version']);
    if (version.status !== 0) return failed(`node_modules/.bin/${bin} --version`, version);
    if (!version.stdout.includes(manifest.version)) {
      return `${bin} --version printed "${version.stdout.trim()}", not ${manifest.version}`;
    }
    const help = sh('npx', ['--no', bin, '--help']);
    if (help.status !== 0 || !help.stdout.includes('Usage:')) {
      return failed(`npx ${bin} --help`, help);
    }
  }
  if (!bins.includes('picket')) return undefined;
  const sock = join(tmp, 'echo.sock');
  const server = spawn(
    join(project, 'node_modules', '.bin', 'picket'),
    ['serve', 'echo', '--listen', `unix:${sock}`],
    { env },
  );
  try {
    await new Promise((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (d) => {
        out += d;
        if (out.includes('listening on')) resolve();
      });
      server.once('exit', (code) => reject(new Error(`picket serve exited ${code}`)));
      setTimeout(
        () => reject(new Error('picket serve printed no "listening on" in 30 s')),
        30_000,
      ).unref();
    });
    const probe = sh('npx', ['--no', manifest.name, 'probe', `unix:${sock}`, '--count', '1']);
    if (probe.status !== 0) return failed(`npx ${manifest.name} probe unix:${sock}`, probe);
  } catch (err) {
    return err.message;
  } finally {
    server.kill();
  }
  return undefined;
}

const pkgs = publishablePackages();
if (pkgs.length === 0) {
  console.log('smoke: no publishable packages under packages/ or apps/');
  process.exit(0);
}
const tmp = mkdtempSync(join(tmpdir(), 'picket-smoke-'));
const project = join(tmp, 'project');
let passed = 0;

try {
  const tarballs = Object.fromEntries(pkgs.map((pkg) => [pkg.name, pack(pkg, tmp)]));
  mkdirSync(project);
  // Depend on every tarball at once: a sibling's `^x.y.z` range (pnpm pack rewrote
  // `workspace:^`) is then met by the local tarball, so npm never asks the registry for an
  // unpublished @picket package. A private sibling as a dependency would fail here, as it should.
  const dependencies = Object.fromEntries(
    Object.entries(tarballs).map(([n, t]) => [n, `file:${t}`]),
  );
  const manifest = { name: 'picket-smoke', private: true, type: 'module', dependencies };
  writeFileSync(join(project, 'package.json'), JSON.stringify(manifest, null, 2));

  console.log(`smoke: npm install ${pkgs.length} tarballs`);
  // Plain npm as a user runs it: drop the npm_config_* that `pnpm run` exports.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts'], {
    cwd: project,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });

  for (const { name, manifest } of pkgs) {
    // a library is imported; a command-line package (bin, no exports) is run instead
    const problem = manifest.exports ? importProblem(name) : await binProblem(manifest, env);
    if (problem === undefined) {
      passed++;
      console.log(`ok    ${name}`);
    } else {
      console.log(`FAIL  ${name}: ${problem}`);
    }
  }
} catch (err) {
  console.error(`smoke: ${err.message}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

// A pack or install error fails every package: none of them was shown to install.
// Not worded "N passed, M failed": CI reads that form from .ci/run's last line only.
const failed = pkgs.length - passed;
if (failed === 0) console.log(`smoke: all ${pkgs.length} packages install and import (or run)`);
else console.log(`smoke: ${failed} of ${pkgs.length} packages FAILED to install, import or run`);
process.exitCode = failed === 0 ? 0 : 1;
