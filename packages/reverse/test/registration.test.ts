import { createCapabilities, PROTOCOL_VERSION, silentLogger } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import { Admission } from '../src/admission.js';
import { resolveConfig } from '../src/listener-config.js';
import { type RegistrationChannel, register } from '../src/registration.js';

const SECRET = 's3cr3t-token-value';

function channel(body: unknown, over: Partial<RegistrationChannel> = {}): RegistrationChannel {
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return {
    id: 'test#1',
    transport: 'tcp',
    readFrame: () => Promise.resolve({ type: 0x01, payload, rest: Buffer.from('after') }),
    gone: false,
    closing: false,
    peer: () => ({ remoteAddress: '10.0.0.9', remotePort: 4000 }),
    ...over,
  };
}

function request(agentId: string, token: string | null) {
  return {
    protocol_version: PROTOCOL_VERSION,
    agent_id: agentId,
    capabilities: createCapabilities({ agentId, name: agentId, version: '1' }),
    auth_token: token,
    metadata: null,
  };
}

const admission = (config = {}) =>
  new Admission(resolveConfig({ tokens: { waf: [SECRET] }, logger: silentLogger, ...config }));

describe('register() over a frame channel (no socket)', () => {
  it('admits a valid registration; the request it returns holds no token', async () => {
    const out = await register(channel(request('waf', SECRET)), admission(), true);
    expect(out.kind).toBe('admit');
    if (out.kind !== 'admit') return;
    expect(out.request.auth_token).toBeNull();
    expect(out.hasToken).toBe(true);
    expect(out.rest.toString()).toBe('after');
    expect(JSON.stringify(out)).not.toContain(SECRET);
  });

  it('refuses a wrong token with the spec’s text, which never holds the token', async () => {
    const out = await register(channel(request('waf', `${SECRET}x`)), admission(), true);
    expect(out).toMatchObject({
      kind: 'refuse',
      agentId: 'waf',
      rejection: { stage: 'auth', code: 'UNAUTHENTICATED' },
    });
    expect(JSON.stringify(out)).not.toContain(SECRET);
  });

  it('drops (no answer) what is not JSON, and a token of the wrong type without echoing it', async () => {
    const junk = await register(channel('{nope'), admission(), true);
    expect(junk).toMatchObject({ kind: 'drop', rejection: { stage: 'decode' } });
    const typed = await register(
      channel({ ...request('waf', null), auth_token: { secret: SECRET } }),
      admission(),
      true,
    );
    expect(typed).toMatchObject({ kind: 'drop', rejection: { stage: 'decode' } });
    expect(JSON.stringify(typed)).not.toContain(SECRET);
  });

  it('a peer gone while its token was verified is dropped, not answered', async () => {
    const out = await register(
      channel(request('waf', `${SECRET}x`), { gone: true }),
      admission(),
      true,
    );
    expect(out).toMatchObject({ kind: 'drop', rejection: { stage: 'auth' } });
  });

  it('a read failure is dropped at stage read; a closing listener drops at accept', async () => {
    const failing = channel(request('waf', SECRET), {
      readFrame: () => Promise.reject(new Error('EOF')),
    });
    expect(await register(failing, admission(), true)).toMatchObject({
      kind: 'drop',
      rejection: { stage: 'read' },
    });
    const closing = channel(request('waf', SECRET), { closing: true });
    expect(await register(closing, admission(), true)).toMatchObject({
      kind: 'drop',
      rejection: { stage: 'accept', text: 'listener is closing' },
    });
  });

  it('the spec’s checks come before the token: an agent off the allow-list is refused', async () => {
    const out = await register(
      channel(request('intruder', SECRET)),
      admission({ allowedAgents: ['waf'] }),
      true,
    );
    expect(out).toMatchObject({
      kind: 'refuse',
      rejection: {
        stage: 'validate',
        text: "Invalid message format: Agent 'intruder' is not in the allowed list",
      },
    });
  });
});
