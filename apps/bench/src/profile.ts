import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One row of a CPU profile summary. */
export interface ProfileEntry {
  /** `function (file:line)` */
  name: string;
  /** self time in ms */
  selfMs: number;
  /** share of all sampled time, 0–1 */
  share: number;
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const m = /\/(packages|apps)\/([^/]+)\/(?:dist|src)\/(.+)$/.exec(url);
  if (m) return `${m[2]}/${m[3]}`;
  const nm = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\/(.+)$/.exec(
    url,
  );
  if (nm) return `${nm[1]}/${nm[2]?.split('/').pop()}`;
  return url
    .replace(/^node:/, 'node:')
    .split('/')
    .slice(-2)
    .join('/');
}

/** Self time per function of a `.cpuprofile` file (from `node --cpu-prof`), biggest first. */
export function summarizeCpuProfile(file: string, top = 15): ProfileEntry[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, CpuProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] as number);
    const dt = profile.timeDeltas[i] ?? 0;
    if (node === undefined) continue;
    const f = node.callFrame;
    const name =
      f.url === ''
        ? `${f.functionName || '(anonymous)'}`
        : `${f.functionName || '(anonymous)'} (${shortUrl(f.url)}:${f.lineNumber + 1})`;
    selfUs.set(name, (selfUs.get(name) ?? 0) + dt);
    total += dt;
  }
  return [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: total > 0 ? us / total : 0 }));
}

/**
 * The main-thread profile among the files `--cpu-prof` wrote into `dir` (the
 * one with the most non-idle samples; loader threads write nearly idle ones).
 */
export function mainThreadProfile(dir: string): string | undefined {
  let best: { file: string; busy: number } | undefined;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.cpuprofile')) continue;
    const file = join(dir, f);
    const busy = summarizeCpuProfile(file, 1_000_000)
      .filter((e) => !/^\((idle|program|garbage collector)\)/.test(e.name))
      .reduce((sum, e) => sum + e.selfMs, 0);
    if (best === undefined || busy > best.busy) best = { file, busy };
  }
  return best?.file;
}
