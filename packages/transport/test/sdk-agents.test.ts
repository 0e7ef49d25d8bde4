/**
 * A pool over an agent that behaves like the Zentinel Python / Go SDK v1 agents
 * (per-connection request state, `{"success": true}` for request-complete), on a
 * `v1+unix:` endpoint with several pool connections of several sockets each.
 */
import { startSdkLikeV1Agent } from '@picket/compliance';
import { silentLogger } from '@picket/uds';
import { afterEach, describe, expect, it } from 'vitest';
import { createPool } from '../src/index.js';
import { Closer, headers, tempDir } from './helpers.js';

const closer = new Closer();
afterEach(() => closer.closeAll());

describe('SDK v1 agents behind a pool', () => {
  it('many concurrent requests: every event reaches its request connection, request-complete acks are allow', async () => {
    const tmp = closer.add(tempDir(), (t) => t.cleanup());
    const agent = closer.add(await startSdkLikeV1Agent(tmp.path('sdk.sock')), (a) => a.close());
    const pool = closer.add(
      createPool({
        healthCheckIntervalMs: 0,
        requestTimeoutMs: 30_000,
        connectionsPerAgent: 2,
        logger: silentLogger,
        v1: { connections: 3 },
      }),
      (p) => p.close({ drainTimeoutMs: 0 }),
    );
    expect(await pool.addAgent('sdk', `v1+unix:${agent.path}`)).toBe(2);

    const one = async (i: number): Promise<string[]> => {
      const cid = `req-${i}`;
      const answers = [
        await pool.sendRequestHeaders('sdk', headers(`/r/${i}`, cid)),
        await pool.sendRequestBodyChunk('sdk', {
          correlation_id: cid,
          data: new Uint8Array([1, 2]),
          is_last: true,
          chunk_index: 0,
          bytes_received: 2,
        }),
        await pool.sendResponseHeaders('sdk', { correlation_id: cid, status: 200, headers: {} }),
        await pool.sendRequestComplete('sdk', {
          correlation_id: cid,
          status: 200,
          duration_ms: 1,
          request_body_size: 2,
          response_body_size: 0,
          upstream_attempts: 1,
        }),
      ];
      return answers.map((a) => JSON.stringify([a.decision, a.audit.tags]));
    };
    const results = await Promise.all(Array.from({ length: 150 }, (_, i) => one(i)));
    expect(agent.failures).toEqual([]);
    const allowed = JSON.stringify(['allow', []]);
    for (const r of results) expect(r).toEqual([allowed, allowed, allowed, allowed]);
    expect(agent.acks).toBe(150);
    // 2 pool connections × 3 sockets, none closed by an invalid answer
    expect(agent.connections).toBe(6);
  });
});
