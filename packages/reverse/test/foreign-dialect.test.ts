/**
 * The Zentinel Go SDK's "v2" reverse agent registers with a 0x03 frame in a private
 * dialect (issue 21): the listener drops it with a clear reason that names the
 * dialect and `v1+unix:`, and keeps serving other agents. Emulated over a real socket.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  type RegistrationRejection,
  type ReverseConnection,
  ReverseConnectionListener,
} from '../src/index.js';
import {
  captureLogger,
  exchange,
  json,
  registration,
  registrationFrame,
  tempSocket,
  until,
} from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What the Go SDK's reverse runner sends first: 0x03 with its RegistrationRequest. */
function goRegistration(): Buffer {
  const body = JSON.stringify({
    protocol_version: 2,
    agent_id: 'go-waf',
    capabilities: { handles_request_headers: true, supports_cancellation: true },
    metadata: {},
  });
  const payload = Buffer.from(body);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + 1, 0);
  head[4] = 0x03; // not a Zentinel message type: encodeFrame refuses it
  return Buffer.concat([head, payload]);
}

describe('a reverse agent registering in the Go SDK v2 dialect', () => {
  it('is dropped with a reason naming the dialect and v1+unix:, and the listener keeps serving', async () => {
    const sock = tempSocket();
    const log = captureLogger();
    const listener = await ReverseConnectionListener.bindUds(sock.path, { logger: log });
    cleanups.push(async () => {
      await listener.close();
      sock.cleanup();
    });
    const rejected: RegistrationRejection[] = [];
    listener.on('rejected', (r) => rejected.push(r));
    const target = { path: sock.path };

    const go = await exchange(target, goRegistration());
    expect(go.closed).toBe(true);
    expect(go.bytes.length).toBe(0);
    await until(() => rejected.length === 1, 3000, 'the rejection');
    expect(rejected[0]).toMatchObject({ code: 'INVALID_MESSAGE', responded: false });
    expect(rejected[0]?.reason).toMatch(
      /expected RegistrationRequest \(0x01\) as the first frame, got .*0x03.*Go SDK's private v2 dialect.*v1\+unix:/,
    );
    expect(log.text()).toContain('v1+unix:');

    // another agent registers on the same listener afterwards
    const accepted = new Promise<ReverseConnection>((r) => listener.once('connection', r));
    const ok = await exchange(target, registrationFrame(registration()), { untilFrames: 1 });
    expect(json(ok.frames[0]).success).toBe(true);
    const conn = await accepted;
    expect(conn.agentId).toBe(registration().agent_id);
    ok.socket.destroy();
    await conn.close();
  });
});
