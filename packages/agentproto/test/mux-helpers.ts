// Shared by the mux / agent / local tests: real kernel byte streams and a real agent process.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Two connected Unix stream sockets (a real kernel socket pair, short private path). */
export async function socketPair(): Promise<[Socket, Socket]> {
  const dir = mkdtempSync(join(tmpdir(), 'apm-'));
  const path = join(dir, 's');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const a = connect(path);
  await new Promise<void>((resolve) => a.once('connect', resolve));
  const b = await accepted;
  server.close();
  rmSync(dir, { recursive: true, force: true });
  return [a, b];
}

/** The agent program run from source (no build needed): `node --import tsx src/agent-main.ts`. */
export const AGENT_VIA: readonly string[] = [
  process.execPath,
  '--import',
  'tsx',
  fileURLToPath(new URL('../src/agent-main.ts', import.meta.url)),
];

/** Collects a stream's bytes. */
export function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}
