import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Chart, Row, ScenarioResult, Target } from './types.js';

// ------------------------------------------------------------------ number formatting

/** `123456` ⇒ `123 456`; small values keep up to 3 significant digits. */
export function formatNumber(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1000) {
    return Math.round(v)
      .toString()
      .replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  }
  if (abs >= 100) return v.toFixed(0);
  if (abs >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Latency in µs (or ms beyond 10 000 µs). */
export function formatLatency(us: number | undefined): string {
  if (us === undefined || Number.isNaN(us)) return '–';
  if (us >= 10_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${formatNumber(us)} µs`;
}

export function formatRatio(r: number | undefined): string {
  if (r === undefined || Number.isNaN(r)) return '–';
  return `${r.toFixed(2)}×`;
}

function formatCpu(row: Row): string {
  const c = row.clientCpuUs;
  const s = row.serverCpuUs;
  if ((c === undefined || Number.isNaN(c)) && (s === undefined || Number.isNaN(s))) return '–';
  const f = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(1));
  return `${f(c)} / ${f(s)}`;
}

function formatTargetValue(v: number, unit: string): string {
  if (Number.isNaN(v)) return '–';
  switch (unit) {
    case 'ratio':
      return formatRatio(v);
    case '%':
      return `${v.toFixed(1)} %`;
    case 'µs':
      return formatLatency(v);
    default:
      return `${formatNumber(v)} ${unit}`;
  }
}

/** One-line verdict of a target. */
export function describeTarget(t: Target): string {
  if (t.skipped !== undefined) return `SKIP  ${t.description}: ${t.skipped}`;
  const verdict = t.met ? 'PASS' : 'MISS';
  return `${verdict}  ${t.description}: ${formatTargetValue(t.actual, t.unit)} (target ${t.op} ${formatTargetValue(t.threshold, t.unit)})`;
}

// ------------------------------------------------------------------ table

const HEADERS = [
  'scenario',
  'variant',
  'throughput',
  'p50',
  'p99',
  'baseline',
  'ratio',
  'CPU µs/op (load / server)',
  'note',
];

/** The cells of one row, in {@link HEADERS} order. */
export function rowCells(row: Row): string[] {
  if (row.skipped !== undefined) {
    return [row.scenario, row.name, `skipped: ${row.skipped}`, '', '', '', '', '', ''];
  }
  return [
    row.scenario,
    row.name,
    `${formatNumber(row.value)} ${row.unit}`,
    formatLatency(row.p50Us),
    formatLatency(row.p99Us),
    row.baseline === row.name ? '(baseline)' : row.baseline,
    formatRatio(row.ratio),
    formatCpu(row),
    row.note ?? '',
  ];
}

/** The results as one plain-text table for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const cells = [HEADERS, ...rows.map(rowCells)];
  const widths = HEADERS.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const rightAligned = new Set([2, 3, 4, 6]);
  const line = (r: string[]): string =>
    r
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  const out: string[] = [line(HEADERS), sep];
  let last = '';
  for (const r of cells.slice(1)) {
    if (last !== '' && r[0] !== last) out.push('');
    last = r[0] ?? '';
    out.push(line(r));
  }
  return out.join('\n');
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** The results as a markdown table. */
export function markdownTable(rows: readonly Row[]): string {
  const out = [
    `| ${HEADERS.join(' | ')} |`,
    `|${HEADERS.map((_, i) => ([2, 3, 4, 6].includes(i) ? '---:' : '---')).join('|')}|`,
  ];
  for (const r of rows) out.push(`| ${rowCells(r).map(mdEscape).join(' | ')} |`);
  return out.join('\n');
}

// ------------------------------------------------------------------ SVG

function xmlEscape(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** A "nice" axis maximum ≥ v (1, 2, 2.5, 5 × 10^n). */
export function niceMax(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const exp = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}

/** A horizontal bar chart as a standalone SVG document (no external assets). */
export function barChartSvg(chart: Chart): string {
  const bars = chart.bars.filter((b) => Number.isFinite(b.value));
  const labelWidth = Math.min(
    320,
    Math.max(120, ...bars.map((b) => Math.ceil(b.label.length * 6.6) + 16)),
  );
  const plotWidth = 420;
  const valueWidth = 110;
  const barHeight = 18;
  const gap = 8;
  const top = 44;
  const bottom = 30;
  const width = labelWidth + plotWidth + valueWidth;
  const height = top + bars.length * (barHeight + gap) + bottom;
  const refValue = chart.reference?.value ?? 0;
  const max = niceMax(Math.max(refValue, ...bars.map((b) => b.value)));
  const x = (v: number): number => labelWidth + (Math.max(0, v) / max) * plotWidth;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${xmlEscape(chart.title)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${xmlEscape(chart.title)}</text>`,
  ];
  // grid: 5 ticks
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const gx = x(v);
    const yEnd = height - bottom + 4;
    parts.push(
      `<line x1="${gx.toFixed(1)}" y1="${top - 6}" x2="${gx.toFixed(1)}" y2="${yEnd}" stroke="#e5e5e5"/>`,
      `<text x="${gx.toFixed(1)}" y="${yEnd + 12}" text-anchor="middle" fill="#666">${xmlEscape(formatNumber(v))}</text>`,
    );
  }
  bars.forEach((b, i) => {
    const y = top + i * (barHeight + gap);
    const w = Math.max(1, x(b.value) - labelWidth);
    const fill = b.baseline ? '#9e9e9e' : '#3b7dd8';
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + barHeight * 0.72}" text-anchor="end">${xmlEscape(b.label)}</text>`,
      `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${fill}"/>`,
      `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + barHeight * 0.72}" fill="#333">${xmlEscape(`${formatNumber(b.value)} ${chart.unit}`)}</text>`,
    );
  });
  if (chart.reference !== undefined) {
    const rx = x(chart.reference.value).toFixed(1);
    parts.push(
      `<line x1="${rx}" y1="${top - 10}" x2="${rx}" y2="${height - bottom}" stroke="#d43c3c" stroke-dasharray="4 3"/>`,
      `<text x="${rx}" y="${top - 12}" text-anchor="middle" fill="#d43c3c" font-size="11">${xmlEscape(chart.reference.label)}</text>`,
    );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

// ------------------------------------------------------------------ report

/** Facts about the run printed at the top of the report. */
export interface RunInfo {
  date: string;
  node: string;
  cpus: string;
  mode: string;
  reps: number;
  durationMs: number;
  warmupMs: number;
  elapsedS: number;
  loadAverage: string;
  /** how the processes were placed on CPUs */
  pinning?: string;
}

/** Writes `report.md` and one SVG per chart into `dir`; returns the markdown. */
export function writeReport(
  dir: string,
  results: readonly ScenarioResult[],
  info: RunInfo,
  extraSections: readonly string[] = [],
): string {
  mkdirSync(join(dir, 'charts'), { recursive: true });
  const rows = results.flatMap((r) => r.rows);
  const targets = results.flatMap((r) => r.targets);
  const md: string[] = [
    '# picket benchmark report',
    '',
    `Generated by \`pnpm bench\` (apps/bench) on ${info.date}: Node ${info.node}, ${info.cpus}, ` +
      `${info.mode} mode, ${info.reps} repetition(s) of ${info.durationMs} ms after ${info.warmupMs} ms warmup ` +
      `per variant, interleaved in alternating order; medians shown. Load average at start: ${info.loadAverage}. ` +
      `Total time ${info.elapsedS.toFixed(0)} s.`,
    '',
    'Every ratio compares two variants measured in this same run, in the same processes,',
    'alternating, so it stays meaningful on a noisy machine where absolute numbers drift.',
    'A ratio target is the median of the per-repetition ratios (each repetition measures both',
    'variants back to back); the tables show medians of each variant and their ratio.',
    'Load generators and servers run in separate processes (`child_process.fork`)' +
      (info.pinning === undefined ? '.' : `; ${info.pinning}.`),
    '"CPU µs/op" is user+system CPU time per operation of the load process / the server process.',
    '',
    '## Targets',
    '',
    ...targets.map((t) => `- ${describeTarget(t).replace(/^(PASS|MISS|SKIP)/, '**$1**')}`),
    '',
    '## Results',
    '',
    markdownTable(rows),
    '',
  ];
  for (const r of results) {
    md.push(`## ${r.title}`, '', r.description, '');
    for (const chart of r.charts) {
      writeFileSync(join(dir, 'charts', `${chart.id}.svg`), barChartSvg(chart));
      md.push(`![${chart.title}](charts/${chart.id}.svg)`, '');
    }
    for (const note of r.notes) md.push(`- ${note}`);
    if (r.notes.length > 0) md.push('');
  }
  md.push(...extraSections);
  const text = `${md.join('\n').trimEnd()}\n`;
  writeFileSync(join(dir, 'report.md'), text);
  return text;
}
