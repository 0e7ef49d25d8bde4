// Proves each publishable package installs and imports from its packed tarball alone: pack them
// all (after `pnpm build`), install the tarballs together with plain npm into an empty project
// (no workspace links, no pnpm hoisting to hide a missing dependency), then import each one.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, publishablePackages } from './check-packages.mjs';

const pkgs = publishablePackages();
if (pkgs.length === 0) {
  console.log('smoke: no publishable packages under packages/');
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

  for (const { name } of pkgs) {
    const probe = `const m = await import(${JSON.stringify(name)});
if (Object.keys(m).length === 0) throw new Error('the module has no exports');`;
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      cwd: project,
      encoding: 'utf8',
    });
    if (res.status === 0) {
      passed++;
      console.log(`ok    ${name}`);
    } else {
      console.log(`FAIL  ${name}: import from its tarball failed\n${res.stderr.trim()}`);
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
if (failed === 0) console.log(`smoke: all ${pkgs.length} packages install and import`);
else console.log(`smoke: ${failed} of ${pkgs.length} packages FAILED to install or import`);
process.exitCode = failed === 0 ? 0 : 1;
