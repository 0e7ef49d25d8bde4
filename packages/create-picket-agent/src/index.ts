/**
 * `create-picket-agent`: writes a small runnable, tested picket agent project
 * (the files in ../template plus a package.json) into a directory.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
const TEMPLATE = join(PACKAGE_ROOT, 'template');
/** The name the template's files use; replaced by the project's name. */
const TEMPLATE_NAME = 'my-agent';
/** Template files npm would drop or rename when publishing, stored under another name. */
const RENAMED: Record<string, string> = { _gitignore: '.gitignore' };

/** The generated project's dependencies (taken from this package's own manifest). */
const PROJECT_DEPENDENCIES = ['@picket/protocol', '@picket/transport', '@picket/uds'];
const PROJECT_DEV_DEPENDENCIES = ['@picket/testing', '@types/node', 'tsx', 'typescript', 'vitest'];

/** A bad argument or a directory we will not write into; the message says which. */
export class CreateError extends Error {
  override name = 'CreateError';
}

export interface CreateOptions {
  /** where to write the project (created if missing) */
  directory: string;
  /** the package name; default the directory's name */
  name?: string;
  /** write into a directory that is not empty (existing files with the same names are replaced) */
  force?: boolean;
  /**
   * A folder of picket tarballs (as `pnpm tarballs` writes them: `picket-<name>-<version>.tgz`).
   * Every `@picket/*` dependency, direct or not, then points at its tarball (`file:`), through
   * `dependencies` and npm / pnpm overrides, so the project installs without the npm registry
   * having picket (before it is published, or to try a local build).
   */
  picketFrom?: string;
}

export interface CreatedProject {
  directory: string;
  name: string;
  /** the files written, relative to `directory` */
  files: string[];
}

/** npm's rules for a new package name (lower case, URL-safe, ≤ 214 characters). */
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

/** Writes the project; throws {@link CreateError} naming what is wrong. */
export function createAgentProject(options: CreateOptions): CreatedProject {
  const directory = resolve(options.directory);
  const name = options.name ?? basename(directory);
  if (name.length > 214 || !NAME.test(name)) {
    throw new CreateError(
      `"${name}" is not a valid npm package name (lower case letters, digits, - . _ ~); pass --name <name>`,
    );
  }
  if (existsSync(directory)) {
    if (!statSync(directory).isDirectory()) {
      throw new CreateError(`${directory} exists and is not a directory`);
    }
    if (readdirSync(directory).length > 0 && !options.force) {
      throw new CreateError(
        `${directory} is not empty; choose another directory or pass --force to write into it`,
      );
    }
  }
  const manifest = projectManifest(name, options.picketFrom);
  const files: string[] = [];
  const write = (path: string, text: string) => {
    const target = join(directory, path);
    mkdirSync(join(target, '..'), { recursive: true });
    writeFileSync(target, text);
    files.push(path);
  };
  write('package.json', `${JSON.stringify(manifest, null, 2)}\n`);
  // in code and file paths the name goes without its scope
  const shortName = name.replace(/^@[^/]+\//, '');
  for (const path of templateFiles(TEMPLATE)) {
    const text = readFileSync(join(TEMPLATE, path), 'utf8').replaceAll(TEMPLATE_NAME, shortName);
    const file = basename(path);
    write(join(path, '..', RENAMED[file] ?? file), text);
  }
  return { directory, name, files: files.map((f) => f.replace(/^\.\//, '')) };
}

function templateFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

type Manifest = {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  version: string;
};

function readManifest(path: string): Manifest {
  return JSON.parse(readFileSync(path, 'utf8')) as Manifest;
}

/**
 * The version range to ask for: as this package's manifest has it once published
 * (`^0.1.0`); inside the picket repository (`workspace:^`, `catalog:`) the installed
 * version, so the project gets exactly what the repository tests with.
 */
function versionOf(dep: string): string {
  const own = readManifest(join(PACKAGE_ROOT, 'package.json'));
  const spec = own.devDependencies?.[dep] ?? own.dependencies?.[dep];
  if (spec === undefined) throw new Error(`create-picket-agent: no version for ${dep}`);
  if (!/^(workspace|catalog):/.test(spec)) return spec;
  const installed = join(PACKAGE_ROOT, 'node_modules', dep, 'package.json');
  return `^${readManifest(installed).version}`;
}

/** `@picket/<name>` → its tarball in `dir`, from the names `pnpm pack` gives them. */
function picketTarballs(dir: string): Map<string, string> {
  const folder = resolve(dir);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new CreateError(`--picket-from: ${folder} is not a directory`);
  }
  const found = new Map<string, string>();
  for (const file of readdirSync(folder).sort()) {
    const m = /^picket-(.+)-(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\.tgz$/.exec(file);
    if (m) found.set(`@picket/${m[1]}`, `file:${join(folder, file)}`);
  }
  for (const dep of [...PROJECT_DEPENDENCIES, '@picket/testing']) {
    if (!found.has(dep)) {
      throw new CreateError(
        `--picket-from: no tarball for ${dep} in ${folder} (run \`pnpm build && pnpm tarballs ${folder}\` in the picket checkout)`,
      );
    }
  }
  return found;
}

function projectManifest(name: string, picketFrom: string | undefined): Record<string, unknown> {
  const tarballs = picketFrom === undefined ? undefined : picketTarballs(picketFrom);
  const spec = (dep: string) => tarballs?.get(dep) ?? versionOf(dep);
  const pick = (deps: string[]) => Object.fromEntries(deps.map((d) => [d, spec(d)]));
  const manifest: Record<string, unknown> = {
    name,
    version: '0.1.0',
    private: true,
    type: 'module',
    engines: { node: '>=20.19' },
    scripts: {
      start: 'tsx src/main.ts',
      test: 'vitest run',
      typecheck: 'tsc -p tsconfig.json',
    },
    dependencies: pick(PROJECT_DEPENDENCIES),
    devDependencies: pick(PROJECT_DEV_DEPENDENCIES),
  };
  if (tarballs !== undefined) {
    // the tarballs' own @picket dependencies (^0.1.0) must come from the folder too
    const overrides = Object.fromEntries(tarballs);
    manifest.overrides = overrides;
    manifest.pnpm = { overrides };
  }
  return manifest;
}

export const HELP = `Usage: npm create picket-agent <directory> [-- options]
       create-picket-agent <directory> [options]

Writes a small picket agent project into <directory>: an AgentHandler with one rule
(src/agent.ts), serving it on a Unix socket (src/main.ts), tests with @picket/testing
(test/agent.test.ts), package.json, tsconfig.json and a README.

Options:
  --name <name>          package name (default: the directory's name)
  --force                write into a directory that is not empty
  --picket-from <dir>    take every @picket package from the tarballs in <dir>
                         (\`pnpm tarballs <dir>\` in a picket checkout), not the registry
  -h, --help             this text
`;

/** The command: returns the exit code (0 done, 1 refused, 2 bad usage). */
export function main(
  argv: readonly string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
  err: (text: string) => void = (t) => process.stderr.write(t),
): number {
  const options: Partial<CreateOptions> = {};
  const positional: string[] = [];
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new CreateError(`${flag} needs a value`);
    return v;
  };
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i] as string;
      if (a === '-h' || a === '--help') {
        out(HELP);
        return 0;
      }
      if (a === '--force') options.force = true;
      else if (a === '--name') options.name = value(++i, a);
      else if (a === '--picket-from') options.picketFrom = value(++i, a);
      else if (a.startsWith('-')) throw new CreateError(`unknown option ${a}`);
      else positional.push(a);
    }
    if (positional.length !== 1) {
      throw new CreateError(
        positional.length === 0
          ? 'no directory given'
          : `one directory, got ${positional.join(' ')}`,
      );
    }
  } catch (e) {
    err(`create-picket-agent: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  try {
    const project = createAgentProject({ ...options, directory: positional[0] as string });
    const rel = relative(process.cwd(), project.directory);
    const dir = rel === '' ? '.' : rel.startsWith('..') ? project.directory : rel;
    out(
      `Created ${project.name} in ${project.directory}:\n${project.files.map((f) => `  ${f}\n`).join('')}\nNext:\n  cd ${dir}\n  npm install\n  npm test\n  npm start -- unix:/tmp/${project.name.replace(/^@[^/]+\//, '')}.sock\n`,
    );
    return 0;
  } catch (e) {
    if (!(e instanceof CreateError)) throw e;
    err(`create-picket-agent: ${e.message}\n`);
    return 1;
  }
}
