// Checks every publishable package as a consumer will get it: `pnpm pack` (which rewrites
// `workspace:` and `catalog:` specifiers the way `pnpm publish` does), then publint --strict
// and attw on that tarball. Packages are ESM only, so attw uses the `esm-only` profile.
// Run `pnpm build` first: dist/ is what gets packed.
// Also exports the package listing and packing helpers that scripts/smoke-pack.mjs reuses.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);

/** Non-private packages under packages/ and apps/ (the CLI): `{ name, dir, manifest }`. */
export function publishablePackages() {
  return ['packages', 'apps']
    .map((folder) => join(root, folder))
    .flatMap((base) => readdirSync(base, { withFileTypes: true }).map((e) => join(base, e.name)))
    .filter((dir) => existsSync(join(dir, 'package.json')))
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      return { name: manifest.name, dir, manifest };
    })
    .filter((pkg) => !pkg.manifest.private);
}

/** `pnpm pack` one package into `dest`; returns the tarball's absolute path. */
export function pack(pkg, dest) {
  if (!existsSync(join(pkg.dir, 'dist'))) {
    throw new Error(`${pkg.name}: no dist/ in ${pkg.dir}; run \`pnpm build\` first`);
  }
  const res = spawnSync('pnpm', ['pack', '--json', '--pack-destination', dest], {
    cwd: pkg.dir,
    encoding: 'utf8',
  });
  // With --json, pnpm reports its errors on stdout too.
  if (res.status !== 0) {
    throw new Error(`${pkg.name}: pnpm pack failed\n${res.stdout}${res.stderr}`);
  }
  return JSON.parse(res.stdout).filename;
}

const indent = (text) => text.replace(/^/gm, '     ');

/** Runs a checker; returns its output when it fails, undefined when it passes. */
function failureOf(cmd, args) {
  const res = spawnSync(cmd, args, { encoding: 'utf8' });
  return res.status === 0 ? undefined : `${res.stdout}${res.stderr}`.trim() || `exit ${res.status}`;
}

function main() {
  const pkgs = publishablePackages();
  if (pkgs.length === 0) {
    console.log('check-packages: no publishable packages under packages/ or apps/');
    return 0;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'picket-check-'));
  let failed = 0;
  try {
    for (const pkg of pkgs) {
      const problems = {};
      try {
        const tarball = pack(pkg, tmp);
        problems.publint = failureOf(bin('publint'), ['run', tarball, '--strict']);
        problems.attw = failureOf(bin('attw'), [tarball, '--profile', 'esm-only', '--no-color']);
      } catch (err) {
        problems.pack = err.message.trim();
      }
      const bad = Object.entries(problems).filter(([, output]) => output !== undefined);
      if (bad.length === 0) {
        console.log(`ok    ${pkg.name}`);
        continue;
      }
      failed++;
      console.log(`FAIL  ${pkg.name} (${bad.map(([tool]) => tool).join(', ')})`);
      for (const [tool, output] of bad) console.log(`  -- ${tool}:\n${indent(output)}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  // Not worded "N passed, M failed": CI reads that form from .ci/run's last line only.
  if (failed === 0) console.log(`check-packages: all ${pkgs.length} packages ok`);
  else console.log(`check-packages: ${failed} of ${pkgs.length} packages FAILED`);
  return failed === 0 ? 0 : 1;
}

// Run only when executed directly, not when smoke-pack.mjs imports the helpers.
if (realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
