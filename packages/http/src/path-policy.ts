/**
 * Path policy: puts a request path into the one form that routing, agents and
 * the upstream all see (in the spirit of Envoy's normalize_path / merge_slashes /
 * path_with_escaped_slashes_action), or says why the path is ambiguous.
 */

/** What to do with `%2F`, `%5C` and a raw `\` in the path. */
export type EscapedSlashes = 'reject' | 'keep' | 'decode';
export const ESCAPED_SLASHES: readonly EscapedSlashes[] = ['reject', 'keep', 'decode'];

/** A route's path policy. */
export interface PathPolicy {
  /** RFC 3986 dot-segment removal, unreserved escapes decoded, hex upper-cased */
  normalize: boolean;
  /** `//` ⇒ `/` */
  mergeSlashes: boolean;
  /** reject (400), keep encoded (a raw `\` becomes `%5C`), or decode to `/` (needs normalize) */
  escapedSlashes: EscapedSlashes;
}

export const DEFAULT_PATH_POLICY: Readonly<PathPolicy> = {
  normalize: true,
  mergeSlashes: true,
  escapedSlashes: 'reject',
};

export type PathResult = { ok: true; path: string } | { ok: false; reason: string };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/** characters a path may carry unencoded: pchar (RFC 3986 §3.3) and `/` */
const PATH_CHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]$/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;

const fail = (reason: string): PathResult => ({ ok: false, reason });

/**
 * Applies `policy` to an origin-form target (`/path?query`). The query string
 * is returned unchanged. Policy-independent errors: a fragment, an invalid
 * percent-escape, NUL or another control character in the path.
 */
export function normalizePath(target: string, policy: PathPolicy): PathResult {
  return apply(target, policy, false);
}

const LENIENT: PathPolicy = { normalize: true, mergeSlashes: true, escapedSlashes: 'decode' };

/**
 * The path as the most lenient server might read it: escaped slashes and
 * backslashes as `/`, `..;x` as `..`, a `..` above the root dropped. Only used
 * to tell which route a refused path was aimed at; undefined when even this
 * fails (NUL, invalid escape, fragment).
 */
export function lenientPath(target: string): string | undefined {
  const r = apply(target, LENIENT, true);
  return r.ok ? r.path : undefined;
}

/** characters the rewrite below keeps as they are under every policy (pchar and `/`) */
const KEPT_AS_IS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
/** a `.` or `..` segment, also with `;params` */
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|;|$)/;

function apply(target: string, policy: PathPolicy, lenient: boolean): PathResult {
  // Most paths are already canonical: no escape, backslash, control or other character to
  // rewrite, no `//`, no dot segment. The full rewrite returns those unchanged under every
  // policy, so they skip it (test/path-policy.test.ts holds the two to the same answers).
  if (!target.includes('#')) {
    const q = target.indexOf('?');
    const rawPath = q === -1 ? target : target.slice(0, q);
    if (
      rawPath.startsWith('/') &&
      KEPT_AS_IS.test(rawPath) &&
      !rawPath.includes('//') &&
      !DOT_SEGMENT.test(rawPath)
    ) {
      return { ok: true, path: target };
    }
  }
  return rewritePath(target, policy, lenient);
}

/** The whole rewrite, character by character (exported for the test of the fast path). */
export function rewritePath(target: string, policy: PathPolicy, lenient: boolean): PathResult {
  if (target.includes('#')) return fail('a fragment ("#") is not allowed in a request target');
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  if (!rawPath.startsWith('/')) return fail('the path must start with "/"');

  let path = '';
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath[i] as string;
    const code = c.charCodeAt(0);
    if (c === '%') {
      const hex = rawPath.slice(i + 1, i + 3);
      if (!HEX2.test(hex)) {
        return fail('invalid percent-escape in path ("%" not followed by two hex digits)');
      }
      i += 2;
      const byte = Number.parseInt(hex, 16);
      if (byte === 0) return fail('NUL (%00) in path');
      const ch = String.fromCharCode(byte);
      if (ch === '/' || ch === '\\') {
        const name = ch === '/' ? 'encoded "/" (%2F)' : 'encoded "\\" (%5C)';
        if (policy.escapedSlashes === 'reject') return fail(`${name} in path`);
        path +=
          policy.escapedSlashes === 'decode'
            ? '/'
            : `%${policy.normalize ? hex.toUpperCase() : hex}`;
      } else if (!policy.normalize) path += `%${hex}`;
      else path += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    } else if (code < 0x20 || code === 0x7f) {
      return fail(code === 0 ? 'NUL in path' : 'control character in path');
    } else if (c === '\\') {
      if (policy.escapedSlashes === 'reject') return fail('backslash ("\\") in path');
      if (policy.escapedSlashes === 'decode') path += '/';
      else path += policy.normalize ? '%5C' : c;
    } else if (policy.normalize && !PATH_CHAR.test(c)) {
      // characters a path may not carry raw (`"`, `<`, `|`, …) get their canonical escape
      path +=
        code < 0x100
          ? `%${code.toString(16).toUpperCase().padStart(2, '0')}`
          : encodeURIComponent(c);
    } else path += c;
  }
  if (policy.mergeSlashes) path = path.replace(/\/{2,}/g, '/');
  if (policy.normalize) {
    // servlet containers drop `;params` from each segment and then treat `..;x` as `..`
    if (!lenient && /(^|\/)\.\.?;/.test(path)) {
      return fail('dot segment with a ";" parameter in path');
    }
    const dotless = removeDotSegments(path, lenient);
    if (dotless === undefined) return fail('".." segment climbs above the root of the path');
    path = dotless;
  }
  return { ok: true, path: path + query };
}

/**
 * RFC 3986 §5.2.4 for an absolute path, except that a `..` with nothing left
 * to remove is an error (undefined) instead of being dropped. `lenient`: a `..`
 * above the root is dropped, and `.;x` / `..;x` count as `.` / `..`.
 */
export function removeDotSegments(path: string, lenient = false): string | undefined {
  const segments = path.split('/').slice(1);
  const out: string[] = [];
  for (const [i, segment] of segments.entries()) {
    const s = lenient ? segment.replace(/^(\.\.?);.*$/, '$1') : segment;
    if (s === '.' || s === '..') {
      if (s === '..' && out.pop() === undefined && !lenient) return undefined;
      // a trailing dot segment leaves the directory: `/a/b/..` ⇒ `/a/`
      if (i === segments.length - 1) out.push('');
    } else out.push(segment);
  }
  return `/${out.join('/')}`;
}
