import {
  type AgentOptions,
  AgentPool,
  type ConnectFactory,
  type DrainOptions,
  type PoolOptions,
} from '@picket/pool';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { connectEndpoint, named, toEndpoint } from './connect.js';
import type { ParsedEndpoint } from './endpoint.js';
import { loadFor } from './load.js';
import type { TransportOptions } from './options.js';
import { REVERSE_WAIT_MS, ReverseHub, type ReverseListenerInfo } from './reverse.js';

/** Options of {@link createPool}: the pool's own plus transport defaults for every agent. */
export interface TransportPoolOptions extends PoolOptions, TransportOptions {}

/** Options of {@link TransportPool.addAgent}: the pool's agent options plus transport settings. */
export interface TransportAgentOptions extends AgentOptions, TransportOptions {
  /**
   * The agent's own id: passed to the transport, and for a reverse endpoint the
   * `agent_id` whose registrations join this pool entry. Default: the pool name.
   */
  agentId?: string;
}

const TRANSPORT_KEYS = [
  'timeoutMs',
  'tls',
  'encodings',
  'reverse',
  'logger',
  'uds',
  'grpc',
  'v1',
  'prox',
  'agentId',
] as const;

function split(o: TransportAgentOptions): { pool: AgentOptions; transport: TransportOptions } {
  const pool: Record<string, unknown> = { ...o };
  const transport: Record<string, unknown> = {};
  for (const k of TRANSPORT_KEYS) {
    if (o[k] !== undefined) transport[k] = o[k];
    delete pool[k];
  }
  if (o.connectTimeoutMs !== undefined) transport.connectTimeoutMs = o.connectTimeoutMs;
  return { pool: pool as AgentOptions, transport: transport as TransportOptions };
}

/** Reverse agents wait for registrations, not dials: retry the wait at once. */
const REVERSE_RECONNECT = { initialDelayMs: 50, maxDelayMs: 500, multiplier: 2, jitter: 0 };

/**
 * An {@link AgentPool} whose `addAgent` takes an endpoint string and picks the
 * transport (the seeds' "auto-detection in AgentPool"). Every other member is
 * the pool's. Create it with {@link createPool}.
 *
 * A reverse endpoint (`reverse+unix:`, `reverse+tcp://`, `reverse+tls://`) binds
 * a listener — one per address, shared by the agents that name it — which
 * accepts only those agents' ids; each connection an agent registers fills one
 * of its `connectionsPerAgent` slots, and when it drops the slot waits for the
 * agent to dial in again. Until then calls get the agent's failure mode.
 */
export class TransportPool extends AgentPool {
  readonly #defaults: TransportOptions;
  readonly #poolDefaults: PoolOptions;
  readonly #endpoints = new Map<string, ParsedEndpoint>();
  readonly #hub: ReverseHub;
  #closing: Promise<void> | undefined;

  constructor(options: TransportPoolOptions = {}) {
    const { pool, transport } = split(options);
    super(pool as PoolOptions);
    this.#poolDefaults = pool as PoolOptions;
    this.#defaults = transport;
    this.#hub = new ReverseHub();
  }

  /**
   * Adds an agent by endpoint (see `detectTransport`), or by connect factory as
   * `AgentPool.addAgent` does. Resolves to the number of open connections once
   * every first attempt settled (for a reverse endpoint: the registrations that
   * arrived before, usually 0). Rejects INVALID_ARGUMENT for a bad endpoint and
   * when the listener of a reverse endpoint cannot be bound.
   */
  override async addAgent(
    name: string,
    endpoint: string | ParsedEndpoint | ConnectFactory,
    options: TransportAgentOptions = {},
  ): Promise<number> {
    const { pool, transport } = split(options);
    if (typeof endpoint === 'function') return super.addAgent(name, endpoint, pool);
    const ep = toEndpoint(endpoint);
    if (this.#endpoints.has(name) || this.hasAgent(name)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `agent "${name}" is already in the pool`,
      );
    }
    const merged = this.#merge(transport);
    const agentId = options.agentId ?? name;
    // load the transport now: a missing package fails here, naming agent and endpoint, not in every redial
    await loadFor(ep).catch((err: unknown) => {
      throw named(err, agentId, ep);
    });
    if (ep.kind === 'reverse') return this.#addReverse(name, agentId, ep, pool, merged);
    // one plugin process per agent: its transport keeps its own socket pool (maxConnections)
    if (ep.kind === 'prox') pool.connectionsPerAgent = 1;
    this.#endpoints.set(name, ep);
    try {
      return await super.addAgent(name, () => connectEndpoint(agentId, ep, merged), pool);
    } catch (err) {
      this.#endpoints.delete(name);
      throw err;
    }
  }

  async #addReverse(
    name: string,
    agentId: string,
    ep: ParsedEndpoint & { kind: 'reverse' },
    pool: AgentOptions,
    transport: TransportOptions,
  ): Promise<number> {
    const slots = pool.connectionsPerAgent ?? this.#poolDefaults.connectionsPerAgent ?? 4;
    await this.#hub.attach(name, agentId, ep, transport, slots);
    this.#endpoints.set(name, ep);
    let initial = true;
    try {
      return await super.addAgent(name, () => this.#hub.take(name, initial ? 0 : REVERSE_WAIT_MS), {
        ...pool,
        // the pool's connect limit bounds our wait; keep it just above it
        connectTimeoutMs: REVERSE_WAIT_MS + 1_000,
        reconnect: { ...REVERSE_RECONNECT, ...pool.reconnect },
      });
    } catch (err) {
      this.#endpoints.delete(name);
      await this.#hub.detach(name);
      throw err;
    } finally {
      initial = false;
    }
  }

  #merge(o: TransportOptions): TransportOptions {
    const d = this.#defaults;
    return {
      ...d,
      ...o,
      ...((d.reverse || o.reverse) && { reverse: { ...d.reverse, ...o.reverse } }),
      ...((d.uds || o.uds) && { uds: { ...d.uds, ...o.uds } }),
      ...((d.grpc || o.grpc) && { grpc: { ...d.grpc, ...o.grpc } }),
      ...((d.v1 || o.v1) && { v1: { ...d.v1, ...o.v1 } }),
      ...((d.prox || o.prox) && { prox: { ...d.prox, ...o.prox } }),
    };
  }

  /** The endpoint an agent was added with (undefined for factories and unknown names). */
  endpoint(name: string): ParsedEndpoint | undefined {
    return this.#endpoints.get(name);
  }

  /** The reverse listeners this pool runs: where they are bound and which agents they serve. */
  reverseListeners(): ReverseListenerInfo[] {
    return this.#hub.listeners();
  }

  /** Removes an agent; a reverse listener no agent uses any more is closed. */
  override async removeAgent(id: string, options: DrainOptions = {}): Promise<boolean> {
    this.#hub.stopWaiting(id);
    const removed = await super.removeAgent(id, options);
    this.#endpoints.delete(id);
    await this.#hub.detach(id);
    return removed;
  }

  /** Closes the pool (see `AgentPool.close`), then its reverse listeners. Idempotent. */
  override close(options: DrainOptions = {}): Promise<void> {
    this.#closing ??= (async () => {
      for (const name of this.#endpoints.keys()) this.#hub.stopWaiting(name);
      await super.close(options);
      await this.#hub.close();
    })();
    return this.#closing;
  }
}

/**
 * Creates a {@link TransportPool}: an `AgentPool` whose `addAgent(name, endpoint,
 * options)` picks the transport from the endpoint string.
 *
 * ```ts
 * const pool = createPool({ requestTimeoutMs: 1000 });
 * await pool.addAgent('local', '/var/run/agent.sock');          // UDS
 * await pool.addAgent('remote', 'waf.internal:50051');          // gRPC
 * await pool.addAgent('edge', 'https://waf.example.com', { tls: { ca } }); // gRPC + TLS
 * ```
 */
export function createPool(options: TransportPoolOptions = {}): TransportPool {
  return new TransportPool(options);
}
