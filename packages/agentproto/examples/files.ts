import { FileOpError, files, GoFileMode, LinuxOpenFlag, openFileSession } from '@picket/agentproto';

const { O_CREAT, O_WRONLY, O_TRUNC } = LinuxOpenFlag;

/**
 * Writes `data` to `dir/name` on the agent's side (`via` reaches a picket-agent, e.g.
 * `['ssh', 'host', 'picket-agent']`) and lists `dir`: name and whether each entry is a directory.
 */
export async function upload(
  via: readonly string[],
  dir: string,
  name: string,
  data: Uint8Array,
): Promise<[string, boolean][]> {
  const session = await openFileSession({ via });
  try {
    const fc = files(session.mux);
    await fc.mkdirAll(dir, 0o755);
    const h = await fc.openFile(`${dir}/${name}`, O_CREAT | O_WRONLY | O_TRUNC, 0o640);
    try {
      for (let at = 0; at < data.length; at += 64 * 1024) {
        await fc.writeAt(h, data.subarray(at, at + 64 * 1024), at);
      }
    } finally {
      await fc.close(h);
    }
    return (await fc.readDir(dir)).map((st) => [st.n, (st.m & GoFileMode.Dir) !== 0]);
  } catch (err) {
    // The agent's answer: err.code is the POSIX name ('EACCES', 'ENOSPC', …).
    if (err instanceof FileOpError) throw new Error(`upload to ${dir} failed: ${err.code}`);
    throw err;
  } finally {
    await session.close();
  }
}
