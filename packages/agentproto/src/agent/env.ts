/**
 * The exec mode's environment allow-list (MachineProxy's `envfilter.Filter`, spec "Details" §2).
 *
 * A variable survives only if it matches a keep pattern or is named in `MPROXY_CHANGED_ENVS`;
 * a remove pattern wins over both; the marker itself is always stripped. A pattern is a Go
 * `filepath.Match` glob, or a regular expression between slashes (`/^AWS_/`), searched
 * unanchored. A pattern that does not compile is skipped, never an error.
 */

/** The variable the local side sets to name variables it changed (always forwarded). */
export const CHANGED_ENVS = 'MPROXY_CHANGED_ENVS';

type Matcher = (name: string) => boolean;

/**
 * The names listed in `MPROXY_CHANGED_ENVS`. The Go filter splits on `:` (its hook library
 * writes `FOO:BAR`); the spec text says comma-separated. Variable names contain neither,
 * so both separators are accepted.
 */
function changedNames(env: readonly string[]): Set<string> {
  const prefix = `${CHANGED_ENVS}=`;
  const entry = env.find((e) => e.startsWith(prefix));
  const names = new Set<string>();
  if (entry === undefined) return names;
  for (const name of entry.slice(prefix.length).split(/[:,]/)) if (name !== '') names.add(name);
  return names;
}

/**
 * A Go `filepath.Match` glob as a RegExp: `*` any run of non-`/`, `?` one non-`/`,
 * `[...]` a class (`^` negates, ranges, `\` escapes), `\x` a literal. undefined when the
 * pattern is malformed (Go: ErrBadPattern, which never matches).
 */
function globToRegExp(glob: string): RegExp | undefined {
  let out = '^';
  let i = 0;
  const lit = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  while (i < glob.length) {
    const c = glob[i] as string;
    if (c === '*') {
      out += '[^/]*';
      i++;
    } else if (c === '?') {
      out += '[^/]';
      i++;
    } else if (c === '\\') {
      if (i + 1 >= glob.length) return undefined;
      out += lit(glob[i + 1] as string);
      i += 2;
    } else if (c === '[') {
      i++;
      let cls = '';
      if (glob[i] === '^') {
        cls += '^';
        i++;
      }
      let items = 0;
      for (;;) {
        if (i >= glob.length) return undefined; // unterminated class
        if (glob[i] === ']' && items > 0) {
          i++;
          break;
        }
        let lo = glob[i] as string;
        if (lo === '\\') {
          if (i + 1 >= glob.length) return undefined;
          lo = glob[i + 1] as string;
          i++;
        } else if (lo === ']' || lo === '-') {
          return undefined; // Go: an empty class or a bare '-' is a bad pattern
        }
        i++;
        if (glob[i] === '-') {
          let hi = glob[i + 1];
          if (hi === undefined || hi === ']') return undefined;
          if (hi === '\\') {
            hi = glob[i + 2];
            if (hi === undefined) return undefined;
            i++;
          }
          i += 2;
          if (hi < lo) return undefined;
          cls += `${lit(lo)}-${lit(hi)}`;
        } else {
          cls += lit(lo);
        }
        items++;
      }
      // a class never matches '/' in Go's Match either
      out += cls.startsWith('^') ? `[${cls}/]` : `(?!/)[${cls}]`;
    } else {
      out += lit(c);
      i++;
    }
  }
  return new RegExp(`${out}$`, 's');
}

function compile(patterns: readonly string[] | null | undefined): Matcher[] {
  const out: Matcher[] = [];
  for (const p of patterns ?? []) {
    let re: RegExp | undefined;
    if (p.length > 2 && p.startsWith('/') && p.endsWith('/')) {
      try {
        re = new RegExp(p.slice(1, -1)); // unanchored search, like Go's MatchString
      } catch {
        re = undefined; // invalid regex: skipped
      }
    } else {
      re = globToRegExp(p);
    }
    if (re !== undefined) {
      const r = re;
      out.push((name) => r.test(name));
    }
  }
  return out;
}

/** The name part of a `KEY=VALUE` entry (the whole entry when it has no `=`). */
function envName(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/**
 * `env` (`KEY=VALUE` entries, order kept) filtered by the allow-list rules above.
 */
export function filterEnv(
  env: readonly string[],
  keep: readonly string[] | null | undefined,
  remove: readonly string[] | null | undefined,
): string[] {
  const keepM = compile(keep);
  const removeM = compile(remove);
  const changed = changedNames(env);
  return env.filter((entry) => {
    const name = envName(entry);
    if (name === CHANGED_ENVS) return false;
    if (removeM.some((m) => m(name))) return false;
    return changed.has(name) || keepM.some((m) => m(name));
  });
}
