/**
 * What a fuzz target is: something that starts a server (or a fake peer) with a capturing
 * logger and a well-behaved pair, runs one fuzz connection at a time from a seeded
 * generator, and checks its invariants at the end.
 */
import type { AgentResponse, RequestHeadersEvent } from '@picket/protocol';
import type { GoodTrafficStats } from '../lib/good-traffic.js';
import type { Rng } from '../lib/prng.js';

/** Shared settings of a run. */
export interface FuzzContext {
  seed: number;
  /** a fresh temp dir for socket files */
  dir: string;
  /** print every log line at warn and above */
  verbose: boolean;
}

/** What one fuzz connection did. */
export interface ConnOutcome {
  /** frames (or gRPC messages) sent to the target */
  frames: number;
}

/** Per-target figures for the report. */
export interface TargetReport {
  /** invariant violations found at the end (connection-level ones are thrown per connection) */
  failures: string[];
  stats: Record<string, number | string>;
  good: GoodTrafficStats;
}

/** One fuzzed component. */
export interface FuzzTarget {
  readonly name: string;
  start(ctx: FuzzContext): Promise<void>;
  /** Runs one fuzz connection; throws when an invariant is violated. */
  connection(rng: Rng, index: number): Promise<ConnOutcome>;
  /** Stops the good pair, waits for the target to settle and checks the end-state invariants. */
  finish(): Promise<TargetReport>;
}

/** An invariant violation on one connection. */
export class FuzzFailure extends Error {
  override name = 'FuzzFailure';
}

/** A valid request the good pair sends. */
export function goodEvent(cid: string): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: cid,
      request_id: cid,
      client_ip: '127.0.0.1',
      client_port: 40000,
      protocol: 'HTTP/1.1',
      timestamp: '2026-01-01T00:00:00Z',
    },
    method: 'GET',
    uri: `/good/${cid}`,
    headers: { host: ['example.com'] },
  };
}

/** Checks the echo agent's answer to {@link goodEvent}: allow, with the correlation id echoed. */
export function checkGoodReply(cid: string, reply: AgentResponse): void {
  if (reply.decision !== 'allow') {
    throw new FuzzFailure(
      `good request ${cid}: expected allow, got ${JSON.stringify(reply.decision)}`,
    );
  }
  const echoed = reply.request_headers.some(
    (op) => 'set' in op && op.set.name === 'X-Echo-Correlation-Id' && op.set.value === cid,
  );
  if (!echoed) throw new FuzzFailure(`good request ${cid}: reply does not echo its correlation id`);
}
