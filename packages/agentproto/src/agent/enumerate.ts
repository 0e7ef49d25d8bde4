/**
 * Enumerate mode (PathQuery → one PathInfo): the executables reachable through PATH-style
 * directories, as MachineProxy's `EnumerateLocally` lists them.
 *
 * Directories are scanned in order (empty entries skipped, unreadable ones too); entries of one
 * directory in byte order of their names (Go's `os.ReadDir`); each is `stat`ed (symlinks
 * followed) and kept when it is a regular file with any execute bit. The first directory that
 * has a name wins; a later one with the same name is skipped. `mode` is the permission bits
 * (`& 0o777`), `mtime` nanoseconds since the epoch.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PathInfoEntry } from '../frames.js';

/** The directories of a PATH value (none for an empty one). */
export function splitPath(value: string | undefined): string[] {
  return value === undefined || value === '' ? [] : value.split(':');
}

/** Executables in `dirs` (the agent's `$PATH` when empty); `null` when none is found. */
export async function enumeratePathDirs(
  dirs: readonly string[] | null | undefined,
  envPath: string | undefined = process.env.PATH,
): Promise<PathInfoEntry[] | null> {
  const list = dirs !== null && dirs !== undefined && dirs.length > 0 ? dirs : splitPath(envPath);
  const seen = new Set<string>();
  const out: PathInfoEntry[] = [];
  for (const dir of list) {
    if (dir === '') continue;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue; // a missing or unreadable PATH entry is normal
    }
    names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      if (seen.has(name)) continue;
      const full = join(dir, name);
      let st: Awaited<ReturnType<typeof stat>> & { mtimeNs: bigint };
      try {
        st = await stat(full, { bigint: true });
      } catch {
        continue;
      }
      if (!st.isFile() || (st.mode & 0o111n) === 0n) continue;
      seen.add(name);
      out.push({
        name,
        path: full,
        mode: Number(st.mode & 0o777n),
        size: Number(st.size),
        mtime: st.mtimeNs,
      });
    }
  }
  return out.length === 0 ? null : out;
}
