import { fileURLToPath } from 'node:url';
import { readmeExamplesMatchFiles } from '@picket/compliance';
import { describe, expect, it } from 'vitest';
import {
  decodeAuthorizeResult,
  encodeConfigureLine,
  encodeEnvelope,
  encodeProxFrame,
  encodeRequestInfo,
  HookType,
} from '../src/index.js';
import { HookConn, PluginChild } from './prox-peer.js';

describe('README', () => {
  readmeExamplesMatchFiles(import.meta.url);
});

describe('the README plugin example, run as prox would run it', () => {
  it('pushes targets on configure, refuses a missing key, allows a known one with its speed limit', async () => {
    const p = new PluginChild(
      [],
      fileURLToPath(new URL('../examples/plugin.ts', import.meta.url)),
      {
        API_KEYS: 'k1,k2',
      },
    );
    try {
      const ready = await p.configure(encodeConfigureLine({ routeId: 'web:0' }));
      expect(ready.hooks).toEqual(['on_request', 'on_response', 'on_disconnect']);
      await p.until(() => p.lines.length >= 3, 'the set_targets push');
      expect(p.lines[2]).toMatchObject({ kind: 'set_targets', routeId: 'web:0' });
      const c = await HookConn.open(ready.socket);
      const call = async (headers: Record<string, string>) =>
        decodeAuthorizeResult(
          await c.call(
            encodeProxFrame(encodeEnvelope(HookType.Request, encodeRequestInfo({ headers }))),
          ),
        );
      expect(await call({})).toMatchObject({ allow: false, status: 401 });
      expect(await call({ 'X-Api-Key': 'k2' })).toMatchObject({
        allow: true,
        headers: { 'X-Api-Key': '', 'X-Client': 'k2' },
        speedLimit: { downloadMbps: 100, uploadMbps: 0, groupKey: 'k2' },
      });
      c.close();
    } finally {
      p.kill();
    }
  });
});
