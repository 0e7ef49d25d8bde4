/**
 * Log forging against the gateway process: what a network peer sends (a
 * reverse registration's agent id, a client's header value reflected by an
 * agent) reaches the gateway's stderr/stdout escaped, never as a raw line
 * break, ANSI escape or other control character.
 */
import { rmSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { createCapabilities, MessageType } from '@picket/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EchoUpstream, startEchoUpstream } from '../src/echo-upstream.js';
import { killAll, spawnTs, startGateway, tempDir, until, writeYaml } from './helpers.js';

/** Raw characters a peer must never get into a log line: C0, DEL, C1, separators, bidi controls. */
const RAW_UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

let dir: string;
let upstream: EchoUpstream;

beforeEach(async () => {
  dir = tempDir();
  upstream = await startEchoUpstream('echo');
});

afterEach(async () => {
  await killAll();
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** Sends a registration frame and resolves once the listener closed the socket. */
function register(port: number, agentId: string, token: string): Promise<void> {
  const payload = Buffer.from(
    JSON.stringify({
      protocol_version: 2,
      agent_id: agentId,
      capabilities: createCapabilities({ agentId, name: 'x', version: '1.0.0' }),
      auth_token: token,
      metadata: null,
    }),
  );
  // a v2 frame: [u32 BE 1 + payload length][type][payload]
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + 1);
  head[4] = MessageType.HandshakeRequest;
  const frame = Buffer.concat([head, payload]);
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ host: '127.0.0.1', port }, () => s.write(frame));
    s.on('data', () => {});
    s.once('error', reject);
    s.once('close', () => resolve());
  });
}

/** Every line both outputs hold, checked for raw control characters. */
function expectClean(text: string): void {
  for (const line of text.split('\n')) expect(line).not.toMatch(RAW_UNSAFE);
  expect(text).not.toMatch(/^\[FAKE\]/m);
}

describe('gateway logs escape what peers sent', () => {
  it('a forged agent id registering with a wrong token on a TCP reverse listener', async () => {
    const port = await freePort();
    const gw = await startGateway([
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        upstreams: { echo: upstream.url },
        agents: { rev: { endpoint: `reverse+tcp://127.0.0.1:${port}`, auth_token: 'right' } },
        routes: [{ name: 'main', upstream: 'echo', agents: ['rev'] }],
      }),
    ]);
    const forged = 'evil\n[FAKE] registered ok\u001b[31m';
    await register(port, forged, 'wrong');
    await register(port, 'bidi\u202eroot\u2028x\u0085y\u009b1m', 'wrong');
    const out = await until(() => {
      const t = gw.stderr();
      return t.includes('bidi') && t;
    });
    expect(out).toContain('evil\\n[FAKE] registered ok\\x1b[31m');
    expect(out).toContain('bidi\\u202eroot\\u2028x\\x85y\\x9b1m');
    expectClean(out);
    expectClean(gw.stdout());
  });

  it('a client header value with C1 controls, reflected by an agent into an invalid header op', async () => {
    const sock = join(dir, 'reflect.sock');
    const agent = spawnTs('test/fixtures/reflect-agent.ts', [sock]);
    await agent.waitFor(/agent ready/);
    const gw = await startGateway([
      '--config',
      writeYaml(dir, {
        listen: '127.0.0.1:0',
        upstreams: { echo: upstream.url },
        agents: { reflect: { endpoint: `unix:${sock}` } },
        routes: [{ name: 'main', upstream: 'echo', agents: ['reflect'] }],
      }),
    ]);
    // raw bytes on the wire: Node passes obs-text (0x80-0xff) in header values as latin1 characters
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.createConnection({ host: '127.0.0.1', port: gw.port }, () =>
        s.write(
          Buffer.from(
            'GET /x HTTP/1.1\r\nHost: a\r\nX-Name: n\x85[FAKE]\x9b31m\r\nConnection: close\r\n\r\n',
            'latin1',
          ),
        ),
      );
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      s.once('error', reject);
      s.once('close', () => resolve(got));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    const out = await until(() => {
      const t = gw.stderr();
      return t.includes('invalid header op') && t;
    });
    expect(out).toContain('x-n\\x85[FAKE]\\x9b31m');
    expectClean(out);
    expectClean(gw.stdout());
  });
});
