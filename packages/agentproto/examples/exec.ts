import { Writable } from 'node:stream';
import { enumeratePath, exec } from '@picket/agentproto';

/**
 * Runs `sh -c script` on the host `via` reaches (e.g. `['ssh', 'host', 'picket-agent']`),
 * passing on only PATH and CI of `env`, and collects its stdout. `reason` says why when the
 * script never ran (exit code 127).
 */
export async function runScript(via: readonly string[], script: string, env: string[]) {
  const chunks: Buffer[] = [];
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  let reason: string | undefined;
  const code = await exec(
    { path: 'sh', argv: ['sh', '-c', script], env },
    {
      via,
      stdio: { stdout },
      config: { env_keep: ['PATH', '/^CI$/'], env_remove: null },
      onError: (message) => {
        reason = message;
      },
    },
  );
  return { code, output: Buffer.concat(chunks).toString(), reason };
}

/** Where the host's PATH finds each of `names` (the first directory wins, as for a shell). */
export async function which(via: readonly string[], names: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const entry of await enumeratePath({ via })) {
    if (names.includes(entry.name)) found.set(entry.name, entry.path);
  }
  return found;
}
