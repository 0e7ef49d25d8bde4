/**
 * Config validation helpers: the problem collector shared by every section
 * and the `host:port` reader.
 */

export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
export const HOST = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/;

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Collects problems while walking the raw value. */
export class Checker {
  readonly problems: string[] = [];

  fail(path: string, problem: string): undefined {
    this.problems.push(`${path}: ${problem}`);
    return undefined;
  }

  unknownKeys(o: Obj, path: string, known: readonly string[]): void {
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) {
        this.fail(path ? `${path}.${k}` : k, `unknown field (expected one of ${known.join(', ')})`);
      }
    }
  }

  str(v: unknown, path: string): string | undefined {
    if (typeof v !== 'string' || v === '') return this.fail(path, 'must be a non-empty string');
    return v;
  }

  int(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return this.fail(path, `must be an integer between ${min} and ${max}`);
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      return this.fail(path, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
    }
    return v as T;
  }

  listen(v: unknown, path: string): string | undefined {
    const s = this.str(v, path);
    if (s === undefined) return undefined;
    try {
      parseListen(s);
      return s;
    } catch (e) {
      return this.fail(path, (e as Error).message);
    }
  }
}

/**
 * Splits `host:port` (`[::1]:80`, `:8080` ⇒ 127.0.0.1, a bare port ⇒ 127.0.0.1).
 * Throws a readable error for anything else.
 */
export function parseListen(address: string): { host: string; port: number } {
  let host = '127.0.0.1';
  let port: string;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(address);
  if (m) {
    host = m[1] ?? (m[2] || '127.0.0.1');
    port = m[3] as string;
  } else if (/^\d+$/.test(address)) {
    port = address;
  } else {
    throw new Error(`"${address}" is not a host:port address`);
  }
  const n = Number(port);
  if (n > 65535) throw new Error(`port ${n} of "${address}" is out of range`);
  return { host, port: n };
}
