// Proves each publishable package installs and imports from its packed tarball alone: pack them
// all (after `pnpm build`), install the tarballs together with plain npm into an empty project
// (no workspace links, no pnpm hoisting to hide a missing dependency), then import each one, or
// run its commands when it is a command-line package (@picket/cli: `picket --version`,
// `npx picket --help`, `npx @picket/cli probe` against `picket serve`).
// Then a second empty project gets only the facade and the UDS transport (transport, uds and
// what they need: no @picket/grpc): it must install, serve and connect over `unix:`, and a gRPC
// endpoint must fail with the `npm install @picket/grpc` line.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/** The packages a facade user who only talks UDS installs (transport's optional peers: uds only). */
const UDS_ONLY = [
  '@picket/transport',
  '@picket/uds',
  '@picket/protocol',
  '@picket/codec',
  '@picket/framing',
  '@picket/pool',
];

/** Run in the UDS-only project: serve and connect over unix:, then try gRPC endpoints. */
const UDS_ONLY_PROGRAM = `
import { join } from 'node:path';
import { allow, createCapabilities, decisionKind } from '@picket/protocol';
import { serve, V2Transport } from '@picket/transport';
const handler = {
  capabilities: () => createCapabilities({ agentId: 'smoke' }),
  onRequestHeaders: () => allow(),
};
const served = await serve('unix:' + join(process.argv[1], 'uds-only.sock'), handler);
const t = await V2Transport.connect('smoke', served.endpoints[0]);
const reply = await t.sendRequestHeaders({
  metadata: { correlation_id: 'c1', request_id: 'c1', client_ip: '127.0.0.1', client_port: 1,
    protocol: 'HTTP/1.1', timestamp: new Date().toISOString() },
  method: 'GET', uri: '/', headers: {},
});
await t.close();
const why = (p) => p.then(() => 'did not fail', (e) => e.message);
const grpc = {
  serve: await why(serve('grpc://127.0.0.1:0', handler, { agentId: 'smoke' })),
  connect: await why(V2Transport.connect('waf', 'grpc://127.0.0.1:50051')),
};
await served.close();
console.log(JSON.stringify({ decision: decisionKind(reply.decision), grpc }));
`;

/**
 * Why the UDS-only project does not work, or undefined: `npm install` of just those tarballs,
 * no gRPC installed, a round trip over unix: through serve() and connect, and the install line
 * (naming agent and endpoint) for a gRPC endpoint.
 */
function udsOnlyProblem(tarballs, env) {
  const dir = join(tmp, 'uds-only');
  mkdirSync(dir);
  const dependencies = Object.fromEntries(UDS_ONLY.map((n) => [n, `file:${tarballs[n]}`]));
  const manifest = { name: 'picket-smoke-uds-only', private: true, type: 'module', dependencies };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts'], {
    cwd: dir,
    env,
    encoding: 'utf8',
  });
  if (install.status !== 0) return `npm install failed\n${install.stderr.trim()}`;
  for (const absent of ['@picket/grpc', '@grpc/grpc-js', 'protobufjs']) {
    if (existsSync(join(dir, 'node_modules', absent))) return `${absent} got installed`;
  }
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', UDS_ONLY_PROGRAM, dir], {
    cwd: dir,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (res.status !== 0) return `the program failed\n${`${res.stdout}${res.stderr}`.trim()}`;
  const r = JSON.parse(res.stdout.trim().split('\n').pop());
  if (r.decision !== 'allow') return `unix: round trip answered ${r.decision}, not allow`;
  const expected = {
    serve: 'cannot serve agent "smoke" on grpc://127.0.0.1:0',
    connect: 'agent "waf" at grpc://127.0.0.1:50051',
  };
  for (const [call, where] of Object.entries(expected)) {
    const lines = String(r.grpc[call]).split('\n');
    if (!lines[0].startsWith(where) || !lines.includes('npm install @picket/grpc')) {
      return `${call} with a gRPC endpoint said ${JSON.stringify(r.grpc[call])}`;
    }
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
/** why the UDS-only project failed; set once it ran */
let udsOnly = 'not run';

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

  console.log(`smoke: npm install ${UDS_ONLY.join(' ')} (no gRPC)`);
  udsOnly = udsOnlyProblem(tarballs, env);
  console.log(
    udsOnly === undefined ? 'ok    UDS-only facade' : `FAIL  UDS-only facade: ${udsOnly}`,
  );
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
if (udsOnly === undefined)
  console.log('smoke: the facade with only @picket/uds serves and connects');
else console.log('smoke: the facade with only @picket/uds FAILED');
process.exitCode = failed === 0 && udsOnly === undefined ? 0 : 1;
