/**
 * Admission: who may register over a reverse connection. The spec's checks (version, id,
 * allow-list, token presence), the token check (constant time, or the user's verifier under
 * a deadline), the connection caps, and the registry of open connections those caps count.
 * No socket in here: the listener asks, and answers the agent.
 */
import { ErrorCode, PROTOCOL_VERSION, type RegistrationRequest } from '@picket/protocol';
import { redact, type TokenVerifyInfo } from './auth.js';
import type { ReverseConnection } from './connection.js';
import type { ResolvedListenerConfig } from './listener-config.js';

/** Where a registration attempt failed. */
export type RejectionStage =
  /** dropped at accept: too many registrations pending, or the listener is closing */
  | 'accept'
  /** the TLS handshake failed (e.g. missing or untrusted client certificate) */
  | 'tls'
  /** no valid first frame: timeout, EOF, wrong type, bad length */
  | 'read'
  /** the registration frame did not decode */
  | 'decode'
  /** the spec's checks: version, empty id, allow-list, token presence */
  | 'validate'
  /** the token was wrong or could not be verified */
  | 'auth'
  /** a connection cap was reached */
  | 'limit'
  /** the attached pool refused the connection */
  | 'pool';

/** Why a registration did not succeed; `text` is what the agent is told (when it is told). */
export class Rejection extends Error {
  constructor(
    readonly stage: RejectionStage,
    readonly code: ErrorCode,
    readonly text: string,
  ) {
    super(text);
  }
}

/** The admission rules of one listener and the connections it has admitted. */
export class Admission {
  private readonly live = new Map<string, ReverseConnection>();
  private readonly byAgent = new Map<string, Set<ReverseConnection>>();
  private issuedMs = -1;
  private readonly issuedIds = new Set<string>();

  constructor(private readonly config: ResolvedListenerConfig) {}

  /** Registered, open connections. */
  get size(): number {
    return this.live.size;
  }

  /** The open connections of `agentId`, or of every agent. */
  list(agentId?: string): ReverseConnection[] {
    if (agentId === undefined) return [...this.live.values()];
    return [...(this.byAgent.get(agentId) ?? [])];
  }

  /** The spec's checks in the spec's order (first failure wins), with the spec's texts. */
  validate(request: RegistrationRequest, token: string | null): Rejection | undefined {
    if (request.protocol_version !== PROTOCOL_VERSION) {
      return new Rejection(
        'validate',
        ErrorCode.VersionMismatch,
        `Protocol version mismatch: expected ${PROTOCOL_VERSION}, got ${request.protocol_version}`,
      );
    }
    if (request.agent_id === '') {
      return new Rejection(
        'validate',
        ErrorCode.InvalidMessage,
        'Invalid message format: Agent ID cannot be empty',
      );
    }
    if (!this.config.allow.allows(request.agent_id)) {
      return new Rejection(
        'validate',
        ErrorCode.InvalidMessage,
        `Invalid message format: Agent '${request.agent_id}' is not in the allowed list`,
      );
    }
    if (this.config.requireAuth && token === null) {
      return new Rejection(
        'validate',
        ErrorCode.Unauthenticated,
        'Invalid message format: Authentication required but no token provided',
      );
    }
    return undefined;
  }

  /**
   * Checks `token` for `agentId`: against the configured tokens in constant time, or with
   * the user's verifier within `handshakeTimeout`. A verifier that throws or times out
   * refuses; nothing about the token reaches a message (`id` names the socket in the log).
   */
  async authenticate(
    agentId: string,
    token: string,
    info: TokenVerifyInfo,
    id: string,
  ): Promise<Rejection | undefined> {
    const wrong = new Rejection(
      'auth',
      ErrorCode.Unauthenticated,
      `Authentication failed: invalid token for agent '${agentId}'`,
    );
    if (token === '') return wrong;
    const { tokens, verifyToken, handshakeTimeout, logger } = this.config;
    if (tokens !== undefined) return tokens.verify(agentId, token) ? undefined : wrong;
    if (verifyToken === undefined) return wrong;
    let timer: NodeJS.Timeout | undefined;
    try {
      const verdict = await Promise.race([
        Promise.resolve().then(() => verifyToken(agentId, token, info)),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), handshakeTimeout);
        }),
      ]);
      if (verdict === 'timeout') {
        return new Rejection(
          'auth',
          ErrorCode.Timeout,
          `Authentication failed: token verification for agent '${agentId}' timed out`,
        );
      }
      return verdict === true ? undefined : wrong;
    } catch (err) {
      logger.error('verifyToken threw; refusing the registration', {
        socket: id,
        agentId,
        error: redact(err instanceof Error ? err.message : String(err), token),
      });
      return new Rejection(
        'auth',
        ErrorCode.Unauthenticated,
        `Authentication failed: token verification for agent '${agentId}' failed`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The connection caps. The caller checks them and then adds the connection in one
   * synchronous block, before success is answered, so no two registrations can both
   * take the last place.
   */
  checkCaps(agentId: string): Rejection | undefined {
    const cfg = this.config;
    const mine = this.byAgent.get(agentId)?.size ?? 0;
    if (mine >= cfg.maxConnectionsPerAgent) {
      return new Rejection(
        'limit',
        ErrorCode.Unavailable,
        `Connection limit reached: agent '${agentId}' already has ${mine} connections (maxConnectionsPerAgent ${cfg.maxConnectionsPerAgent})`,
      );
    }
    if (this.live.size >= cfg.maxConnections) {
      return new Rejection(
        'limit',
        ErrorCode.Unavailable,
        `Connection limit reached: the listener already has ${this.live.size} connections (maxConnections ${cfg.maxConnections})`,
      );
    }
    return undefined;
  }

  /** `<agent_id>-<ms hex>`, `-<n>` appended while that id was issued in the same ms or is open. */
  nextConnectionId(agentId: string, now: number): string {
    if (now !== this.issuedMs) {
      this.issuedMs = now;
      this.issuedIds.clear();
    }
    const base = `${agentId}-${Math.max(0, Math.floor(now)).toString(16)}`;
    let candidate = base;
    for (let n = 1; this.issuedIds.has(candidate) || this.live.has(candidate); n++) {
      candidate = `${base}-${n}`;
    }
    this.issuedIds.add(candidate);
    return candidate;
  }

  /** Counts an admitted connection towards the caps until {@link remove}. */
  add(connection: ReverseConnection): void {
    this.live.set(connection.connectionId, connection);
    let set = this.byAgent.get(connection.agentId);
    if (set === undefined) {
      set = new Set();
      this.byAgent.set(connection.agentId, set);
    }
    set.add(connection);
  }

  remove(connection: ReverseConnection): void {
    this.live.delete(connection.connectionId);
    const set = this.byAgent.get(connection.agentId);
    if (set !== undefined) {
      set.delete(connection);
      if (set.size === 0) this.byAgent.delete(connection.agentId);
    }
  }
}
