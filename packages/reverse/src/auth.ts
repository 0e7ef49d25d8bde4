import { createHash, timingSafeEqual } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { type AgentCapabilities, AgentProtocolError, ErrorCode } from '@picket/protocol';

/**
 * Accepted registration tokens: either one list for every agent, or a list per
 * agent id (`{ 'waf-1': ['t1', 't2'] }`; an agent missing from the map has no
 * valid token). Several tokens per agent allow rotation.
 */
export type TokenConfig = readonly string[] | Readonly<Record<string, string | readonly string[]>>;

/** What a {@link TokenVerifier} learns about the connection besides id and token. */
export interface TokenVerifyInfo {
  /** the listener's wire */
  transport: 'uds' | 'tcp' | 'tls';
  /** peer address (TCP/TLS) */
  remoteAddress?: string;
  remotePort?: number;
  /** TLS: whether the client certificate was verified against the configured CA */
  authorized?: boolean;
  /** TLS: the client certificate, when one was presented */
  peerCertificate?: PeerCertificate;
  /** the registration's `metadata` */
  metadata: unknown;
  /** the registration's capabilities */
  capabilities: AgentCapabilities;
}

/**
 * Decides whether `token` is valid for `agentId`. Only `true` accepts; `false`,
 * any other value, a throw or a rejection refuses the registration.
 */
export type TokenVerifier = (
  agentId: string,
  token: string,
  info: TokenVerifyInfo,
) => boolean | Promise<boolean>;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Digests compared when an agent has no tokens, so every check does the same work. */
const NO_TOKENS: readonly Buffer[] = [sha256('\u0000picket: no token configured\u0000')];

/**
 * Checks tokens in constant time: only SHA-256 digests of the configured tokens
 * are kept, the presented token is hashed and compared (`timingSafeEqual`) with
 * every candidate without stopping early, so neither the token's length nor how
 * much of it matched shows in the timing.
 */
export class TokenSet {
  private readonly shared: readonly Buffer[] | undefined;
  private readonly perAgent: ReadonlyMap<string, readonly Buffer[]> | undefined;

  constructor(config: TokenConfig) {
    const check = (t: unknown, where: string): string => {
      if (typeof t !== 'string' || t === '') {
        throw new AgentProtocolError(
          ErrorCode.InvalidArgument,
          `reverse listener: ${where} must be a non-empty string`,
        );
      }
      return t;
    };
    if (Array.isArray(config)) {
      if (config.length === 0) {
        throw new AgentProtocolError(
          ErrorCode.InvalidArgument,
          'reverse listener: tokens is an empty list (no agent could authenticate)',
        );
      }
      this.shared = config.map((t, i) => sha256(check(t, `tokens[${i}]`)));
    } else {
      const map = new Map<string, readonly Buffer[]>();
      for (const [agentId, value] of Object.entries(config as Record<string, unknown>)) {
        const list = typeof value === 'string' ? [value] : value;
        if (!Array.isArray(list)) {
          throw new AgentProtocolError(
            ErrorCode.InvalidArgument,
            `reverse listener: tokens['${agentId}'] must be a string or a list of strings`,
          );
        }
        map.set(
          agentId,
          list.map((t: unknown, i: number) => sha256(check(t, `tokens['${agentId}'][${i}]`))),
        );
      }
      this.perAgent = map;
    }
  }

  /** True when `token` is one of `agentId`'s tokens (or a shared token). */
  verify(agentId: string, token: string): boolean {
    const candidates = this.shared ?? this.perAgent?.get(agentId) ?? NO_TOKENS;
    const digest = sha256(token);
    let match = 0;
    for (const candidate of candidates) match |= timingSafeEqual(digest, candidate) ? 1 : 0;
    return match === 1 && candidates !== NO_TOKENS;
  }
}

/** Escapes everything but the glob characters and turns `*` / `?` into a regex. */
function globToRegExp(glob: string): RegExp {
  let source = '^';
  for (const ch of glob) {
    if (ch === '*') source += '[\\s\\S]*';
    else if (ch === '?') source += '[\\s\\S]';
    else source += ch.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  }
  return new RegExp(`${source}$`, 'u');
}

/**
 * The agents allowed to register: exact ids, or globs with `*` (any run of
 * characters, also none) and `?` (exactly one character), e.g. `waf-*`, `*`.
 * Empty = every agent (as upstream).
 */
export class AllowList {
  private readonly exact = new Set<string>();
  private readonly globs: RegExp[] = [];
  /** true when no pattern was given (everyone is allowed) */
  readonly allowsAll: boolean;

  constructor(patterns: Iterable<string> = []) {
    for (const p of patterns) {
      if (typeof p !== 'string' || p === '') {
        throw new AgentProtocolError(
          ErrorCode.InvalidArgument,
          'reverse listener: allowedAgents entries must be non-empty strings',
        );
      }
      if (p.includes('*') || p.includes('?')) this.globs.push(globToRegExp(p));
      else this.exact.add(p);
    }
    this.allowsAll = this.exact.size === 0 && this.globs.length === 0;
  }

  /** True when `agentId` is allowed. */
  allows(agentId: string): boolean {
    if (this.allowsAll || this.exact.has(agentId)) return true;
    return this.globs.some((g) => g.test(agentId));
  }
}

/** Replaces every occurrence of `secret` in `text`, so error texts cannot carry a token. */
export function redact(text: string, secret: string | null | undefined): string {
  if (secret === null || secret === undefined || secret === '') return text;
  return text.split(secret).join('[redacted]');
}
