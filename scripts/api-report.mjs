// API reports: for every publishable package and every `exports` subpath that has types, reads
// the built entry (`dist/**/*.d.ts`) with the TypeScript compiler and writes
// `packages/<pkg>/api/<subpath>.api.md`: the exported names, sorted, each with its declaration
// text (comments and private class members left out, so only the surface shows). The reports are
// checked in, so every change to a public surface shows in review (see VERSIONING.md).
//
//   node scripts/api-report.mjs           rewrite the reports (pnpm api:update)
//   node scripts/api-report.mjs --check   fail with a diff when one is stale (pnpm api:check)
//
// Run `pnpm build` first: the reports are made from dist/.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { publishablePackages } from './check-packages.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });

/** `"."` → `index`, `"./internal"` → `internal`, `"./a/b"` → `a-b`. */
const reportName = (subpath) =>
  subpath === '.' ? 'index' : subpath.replace(/^\.\//, '').replaceAll('/', '-');

/** The `types` file of one `exports` entry (string, or conditions object), if any. */
function typesOf(target) {
  if (typeof target === 'string') return target.endsWith('.d.ts') ? target : undefined;
  if (target && typeof target === 'object') {
    if (typeof target.types === 'string') return target.types;
    for (const value of Object.values(target)) {
      const found = typesOf(value);
      if (found) return found;
    }
  }
  return undefined;
}

/** `[subpath, absolute .d.ts path]` for every typed entry of a package. */
function entries(pkg) {
  const exp = pkg.manifest.exports;
  if (!exp) return [];
  const map = typeof exp === 'string' || !Object.keys(exp).some((k) => k.startsWith('.'));
  const pairs = map ? [['.', exp]] : Object.entries(exp);
  return pairs
    .map(([subpath, target]) => [subpath, typesOf(target)])
    .filter(([, types]) => types !== undefined)
    .map(([subpath, types]) => [subpath, join(pkg.dir, types)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const isPrivateMember = (m) =>
  (m.name && ts.isPrivateIdentifier(m.name)) ||
  (ts.canHaveModifiers(m) &&
    (ts.getModifiers(m) ?? []).some((x) => x.kind === ts.SyntaxKind.PrivateKeyword));

/** One declaration as text: no comments, no private members, no export/declare modifiers. */
function declarationText(decl) {
  let node = decl;
  // `export declare const a: T;` — print the whole statement, not just `a: T`
  if (ts.isVariableDeclaration(node) && ts.isVariableStatement(node.parent?.parent)) {
    node = node.parent.parent;
  }
  if (ts.isClassDeclaration(node)) {
    node = ts.factory.updateClassDeclaration(
      node,
      node.modifiers,
      node.name,
      node.typeParameters,
      node.heritageClauses,
      node.members.filter((m) => !isPrivateMember(m)),
    );
  }
  const text = printer.printNode(ts.EmitHint.Unspecified, node, decl.getSourceFile());
  return text.replace(/^(export\s+)?(default\s+)?(declare\s+)?/, '');
}

/**
 * Public instance members a class gets from picket base classes that are not in its own body
 * (e.g. from a base exported only under `./internal`): they are part of its surface too.
 * Members from Node or other dependencies (EventEmitter's) are left out.
 */
function inherited(checker, symbol) {
  if (!(symbol.flags & ts.SymbolFlags.Class)) return '';
  const own = new Set(symbol.declarations ?? []);
  const lines = [];
  for (const prop of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol))) {
    const decl = prop.declarations?.[0];
    if (!decl || own.has(decl.parent) || isPrivateMember(decl)) continue;
    if (ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Protected) continue;
    if (decl.getSourceFile().fileName.includes('/node_modules/')) continue;
    const from = decl.parent.name?.text ?? '?';
    const text = printer.printNode(ts.EmitHint.Unspecified, decl, decl.getSourceFile());
    lines.push(`// inherited from ${from}: ${text}`);
  }
  return lines.sort().join('\n');
}

const kindOf = (symbol) => {
  const f = symbol.flags;
  const S = ts.SymbolFlags;
  if (f & S.Class) return 'class';
  if (f & S.Enum) return 'enum';
  if (f & S.Function) return 'function';
  if (f & S.Interface) return 'interface';
  if (f & S.TypeAlias) return 'type';
  if (f & S.Variable) return 'const';
  if (f & S.Module) return 'namespace';
  return 'other';
};

/** The report text for one entry file; also returns the export count. */
function report(pkgName, subpath, file) {
  const program = ts.createProgram([file], {
    noEmit: true,
    skipLibCheck: true,
    types: [],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`${pkgName}: ${relative(root, file)} not found; run \`pnpm build\``);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const exported = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
  const sections = exported
    .map((sym) => {
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
      const decls = target.declarations ?? [];
      const text = [decls.map(declarationText).join('\n'), inherited(checker, target)]
        .filter(Boolean)
        .join('\n');
      return { name: sym.name, kind: kindOf(target), text };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const spec = subpath === '.' ? pkgName : `${pkgName}/${subpath.slice(2)}`;
  const lines = [
    `# API report: \`${spec}\``,
    '',
    '<!-- Generated by scripts/api-report.mjs from dist/. Do not edit: run `pnpm api:update`. -->',
    '',
    `${sections.length} exports.`,
    '',
  ];
  for (const s of sections)
    lines.push(`## \`${s.name}\` (${s.kind})`, '', '```ts', s.text, '```', '');
  return { text: lines.join('\n'), count: sections.length };
}

/** Every report that should exist: `{ pkg, file, text, count }`. */
function buildReports() {
  const out = [];
  for (const pkg of publishablePackages()) {
    for (const [subpath, file] of entries(pkg)) {
      const { text, count } = report(pkg.name, subpath, file);
      out.push({
        pkg,
        subpath,
        file: join(pkg.dir, 'api', `${reportName(subpath)}.api.md`),
        text,
        count,
      });
    }
  }
  return out;
}

function diff(file, expected) {
  const tmp = mkdtempSync(join(tmpdir(), 'picket-api-'));
  try {
    const fresh = join(tmp, 'expected.api.md');
    writeFileSync(fresh, expected);
    const old = existsSync(file) ? file : '/dev/null';
    const rel = relative(root, file);
    const labels = ['--label', `${rel} (checked in)`, '--label', `${rel} (from dist/)`];
    const res = spawnSync('diff', ['-u', ...labels, old, fresh], { encoding: 'utf8' });
    return res.stdout || res.stderr;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function main() {
  const check = process.argv.includes('--check');
  const reports = buildReports();
  const wanted = new Set(reports.map((r) => r.file));
  let stale = 0;
  for (const r of reports) {
    const current = existsSync(r.file) ? readFileSync(r.file, 'utf8') : undefined;
    const rel = relative(root, r.file);
    if (current === r.text) continue;
    if (check) {
      stale++;
      console.log(`STALE ${rel}${current === undefined ? ' (missing)' : ''}`);
      console.log(diff(r.file, r.text));
    } else {
      mkdirSync(join(r.pkg.dir, 'api'), { recursive: true });
      writeFileSync(r.file, r.text);
      console.log(`wrote ${rel} (${r.count} exports)`);
    }
  }
  // A report whose entry is gone (subpath removed) is stale too.
  for (const pkg of new Set(reports.map((r) => r.pkg.dir))) {
    const dir = join(pkg, 'api');
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.api.md'))) {
      const file = join(dir, name);
      if (wanted.has(file)) continue;
      if (check) {
        stale++;
        console.log(`STALE ${relative(root, file)}: no such entry point any more`);
      } else {
        rmSync(file);
        console.log(`removed ${relative(root, file)}`);
      }
    }
  }
  if (check && stale > 0) {
    console.log(
      `api-report: ${stale} report(s) stale; review the diff, then run \`pnpm api:update\``,
    );
    return 1;
  }
  const total = reports.reduce((n, r) => n + r.count, 0);
  console.log(
    `api-report: ${reports.length} reports, ${total} exports${check ? ', all current' : ''}`,
  );
  return 0;
}

process.exitCode = main();
