/** Tiny `--flag value` / `--flag=value` / `--switch` parser for the harness CLIs. */

/** Parsed arguments: flag name → value (`true` for a bare switch). */
export type Args = Map<string, string | true>;

/** Parses argv; a lone `--` is skipped (pnpm may pass one through). */
export function parseArgs(argv: readonly string[], switches: readonly string[]): Args {
  const out: Args = new Map();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') continue;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    if (eq > 0) {
      out.set(a.slice(2, eq), a.slice(eq + 1));
      continue;
    }
    const name = a.slice(2);
    if (switches.includes(name)) {
      out.set(name, true);
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`);
    out.set(name, value);
    i++;
  }
  return out;
}

/** A numeric flag, or `fallback`. */
export function numberArg(args: Args, name: string, fallback: number): number {
  const v = args.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === true || !Number.isFinite(n)) throw new Error(`--${name} must be a number`);
  return n;
}

/** A duration flag (`60`, `60s`, `2m`, `500ms`) in ms, or `fallbackMs`. */
export function durationArg(args: Args, name: string, fallbackMs: number): number {
  const v = args.get(name);
  if (v === undefined) return fallbackMs;
  const m = v === true ? null : /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (m === null) throw new Error(`--${name} must be a duration like 60s, 2m or 500ms`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}
