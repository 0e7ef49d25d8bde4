/**
 * The Zentinel Go SDK's "v2" agent speaks a private dialect (issue 21): it answers
 * picket's handshake with `{"accepted": false, "error": "unsupported protocol
 * version", …}`. picket reports the agent's own error and points to `v1+unix:`.
 * Emulated with an agent of our own over a real Unix socket.
 */
import * as net from 'node:net';
import { type AgentProtocolError, MessageType } from '@picket/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClientV2Uds } from '../src/index.js';
import { captureLogger, rawFrame, tempSocket } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * Answers the first frame the way the Go SDK's v2 runner does: it reads
 * `{protocol_version, client_name}` and refuses anything but protocol_version 2.
 */
async function goDialectAgent(error = 'unsupported protocol version'): Promise<string> {
  const tmp = tempSocket();
  cleanups.push(tmp.cleanup);
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return;
      const request = JSON.parse(buf.subarray(5, 4 + buf.readUInt32BE(0)).toString('utf8')) as {
        protocol_version?: number;
      };
      const accepted = request.protocol_version === 2;
      const response = accepted
        ? { protocol_version: 2, agent_name: 'go-waf', capabilities: {}, accepted: true }
        : { protocol_version: 2, agent_name: 'go-waf', capabilities: null, error, accepted: false };
      socket.end(rawFrame(MessageType.HandshakeResponse, JSON.stringify(response)));
    });
  });
  await new Promise<void>((r) => server.listen(tmp.path, () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return tmp.path;
}

describe('a handshake answered in the Go SDK v2 dialect', () => {
  it("fails with the agent's own error, naming the dialect and the v1+unix: endpoint", async () => {
    const path = await goDialectAgent();
    const err = (await AgentClientV2Uds.connect('go', path, { logger: captureLogger() }).catch(
      (e: unknown) => e,
    )) as AgentProtocolError;
    expect(err.code).toBe('HANDSHAKE_FAILED');
    expect(err.message).toContain(`the agent's error: "unsupported protocol version"`);
    expect(err.message).toContain('Go SDK');
    expect(err.message).toContain('"accepted", "agent_name", "protocol_version"');
    expect(err.message).toContain('v1+unix:');
    expect(err.message).not.toContain('capabilities');
  });

  it("escapes the agent's error text", async () => {
    const path = await goDialectAgent('bad\n[fake] log line\u001b[31m');
    const err = (await AgentClientV2Uds.connect('go', path, { logger: captureLogger() }).catch(
      (e: unknown) => e,
    )) as AgentProtocolError;
    expect(err.code).toBe('HANDSHAKE_FAILED');
    expect(err.message).toContain('bad\\n[fake] log line\\x1b[31m');
    expect(err.message).not.toContain('\n');
    expect(err.message).not.toContain('\u001b');
  });
});
