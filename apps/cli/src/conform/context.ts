/** What every `picket conform` check gets, and what it returns. */
import {
  AgentProtocolError,
  type AgentTransport,
  ErrorCode,
  EVENT_TYPE_NUMBERS,
  type EventType,
} from '@picket/protocol';
import { type ParsedEndpoint, type TransportOptions, V2Transport } from '@picket/transport';
import type { RawTarget } from './targets.js';

export type Status = 'pass' | 'fail' | 'skip';

export interface CheckResult {
  status: Status;
  /** one line; may hold the agent's text (escaped when printed) */
  reason: string;
}

export const pass = (reason: string): CheckResult => ({ status: 'pass', reason });
export const fail = (reason: string): CheckResult => ({ status: 'fail', reason });
export const skip = (reason: string): CheckResult => ({ status: 'skip', reason });

export interface ConformContext {
  ep: ParsedEndpoint;
  agentId: string;
  options: TransportOptions;
  /** per-call deadline */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** a fresh correlation id */
  nextId(): string;
  /** the shared facade connection (reopened when it broke, except for reverse endpoints) */
  transport(): Promise<AgentTransport>;
  /**
   * Fresh raw connections for the wire-level checks (UDS, v1, reverse), or why the endpoint
   * gives none. On a reverse endpoint the first call closes the shared connection.
   */
  rawTarget(): Promise<RawTarget | string>;
}

export interface Check {
  name: string;
  run(ctx: ConformContext): Promise<CheckResult>;
}

/** Opens the facade connection on first use and again after it broke. */
export function sharedTransport(
  ep: ParsedEndpoint,
  agentId: string,
  options: TransportOptions,
): { get(): Promise<AgentTransport>; close(): Promise<void> } {
  let current: Promise<AgentTransport> | undefined;
  return {
    async get() {
      if (current !== undefined) {
        const t = await current.catch(() => undefined);
        // a reverse endpoint's listener closes with its connection: nothing to reopen
        if (t !== undefined && (t.isHealthy() || t.paused || ep.kind === 'reverse')) return t;
        if (t !== undefined) await t.close().catch(() => {});
      }
      current = V2Transport.connect(agentId, ep, options);
      return current;
    },
    async close() {
      const t = await current?.catch(() => undefined);
      await t?.close().catch(() => {});
    },
  };
}

/** True when the agent's capabilities list `type` (configure may be 0 or 8, see spec 2.3). */
export function declares(t: AgentTransport, type: EventType): boolean {
  const events = t.capabilities.supported_events;
  if (type === 'configure' && events.includes(0)) return true;
  return events.includes(EVENT_TYPE_NUMBERS[type]);
}

/** The error code of a failed call. */
export function codeOf(err: unknown): string {
  return AgentProtocolError.from(err, ErrorCode.Internal).code;
}

/** One line about a failed call. */
export function failureText(err: unknown, timeoutMs: number): string {
  const e = AgentProtocolError.from(err, ErrorCode.Internal);
  if (e.code === ErrorCode.Timeout) return `no answer within ${timeoutMs} ms`;
  return `${e.message} [${e.code}]`;
}
