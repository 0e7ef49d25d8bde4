/**
 * Reverse endpoints: the proxy binds a listener and agents dial in. A hub owns
 * the listeners of one pool (one per listen address, shared by the agents that
 * name it) and hands each registered connection to the pool entry waiting for
 * that agent id.
 */
import { AgentProtocolError, type AgentTransport, ErrorCode } from '@picket/protocol';
import { formatEndpoint, type ReverseEndpoint } from './endpoint.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, type TransportOptions } from './options.js';
import { type BoundListener, bindReverseListener } from './reverse-bind.js';

/** How long one pool slot waits for a registration before it is retried. */
export const REVERSE_WAIT_MS = 30_000;

/** A reverse listener a pool runs. */
export interface ReverseListenerInfo {
  /** the endpoint in canonical spelling (`reverse+unix:/p`, `reverse+tcp://h:p`) */
  endpoint: string;
  /** where it is bound: the socket path, or `host:port` with the real port */
  address: string;
  /** pool names of the agents it serves */
  agents: string[];
}

interface Waiter {
  resolve(t: AgentTransport): void;
  reject(e: AgentProtocolError): void;
  timer: NodeJS.Timeout | undefined;
}

/** One agent (pool entry) served by a listener. */
interface Route {
  name: string;
  agentId: string;
  entry: Entry;
  waiters: Waiter[];
  /** registered, not yet taken */
  queued: AgentTransport[];
  /** registered and open (taken or queued) */
  open: Set<AgentTransport>;
  /** most connections the agent may have open */
  limit: number;
}

interface Entry {
  key: string;
  /** the reverse settings it was bound with */
  settings: string;
  endpoint: string;
  listener: BoundListener;
  /** routes by registering agent id */
  routes: Map<string, Route>;
}

/** Owns reverse listeners and routes their registrations to waiting pool slots. */
export class ReverseHub {
  readonly #entries = new Map<string, Entry>();
  readonly #binding = new Map<string, Promise<Entry>>();
  readonly #routes = new Map<string, Route>();
  #closed = false;

  /**
   * Serves `agentId` under `name` on the listener of `ep`, binding it on first
   * use. The agent may have `limit` connections open; one that registers while
   * no slot waits is held until one does.
   */
  async attach(
    name: string,
    agentId: string,
    ep: ReverseEndpoint,
    options: TransportOptions,
    limit: number,
  ): Promise<void> {
    if (this.#closed) {
      throw new AgentProtocolError(ErrorCode.Unavailable, `reverse listeners are closed`);
    }
    if (this.#routes.has(name)) {
      throw new AgentProtocolError(ErrorCode.InvalidArgument, `agent "${name}" is already served`);
    }
    const key = listenerKey(ep);
    let entry = this.#entries.get(key);
    if (!entry) {
      let pending = this.#binding.get(key);
      if (!pending) {
        pending = this.#bind(key, ep, options).finally(() => this.#binding.delete(key));
        this.#binding.set(key, pending);
      }
      entry = await pending;
    }
    if (entry.settings !== settingsOf(options)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `reverse listener ${entry.endpoint} is already bound with other reverse settings (tls, tokens, allowedAgents, handshakeTimeoutMs); agents sharing a listener must use the same`,
      );
    }
    if (entry.routes.has(agentId)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `agent id "${agentId}" on ${entry.endpoint} already belongs to pool agent "${entry.routes.get(agentId)?.name}"`,
      );
    }
    const route: Route = { name, agentId, entry, waiters: [], queued: [], open: new Set(), limit };
    entry.routes.set(agentId, route);
    this.#routes.set(name, route);
  }

  async #bind(key: string, ep: ReverseEndpoint, options: TransportOptions): Promise<Entry> {
    const entry: Entry = {
      key,
      settings: settingsOf(options),
      endpoint: formatEndpoint(ep),
      routes: new Map(),
      listener: undefined as unknown as BoundListener,
    };
    entry.listener = await bindReverseListener(ep, options, (agentId, t) =>
      this.#deliver(entry, agentId, t),
    );
    if (this.#closed) {
      await entry.listener.close();
      throw new AgentProtocolError(ErrorCode.Unavailable, `reverse listeners are closed`);
    }
    this.#entries.set(key, entry);
    options.reverse?.onListening?.(entry.listener.address);
    return entry;
  }

  /** Takes a registration for a waiting slot or the queue; throws to refuse it. */
  #deliver(entry: Entry, agentId: string, t: AgentTransport): void {
    const route = entry.routes.get(agentId);
    if (!route) throw new Error(`no agent "${agentId}" is served on ${entry.endpoint}`);
    if (route.open.size >= route.limit) {
      throw new Error(
        `agent "${agentId}" already has the ${route.limit} connection(s) it may open`,
      );
    }
    route.open.add(t);
    t.once('close', () => {
      route.open.delete(t);
      const i = route.queued.indexOf(t);
      if (i >= 0) route.queued.splice(i, 1);
    });
    const waiter = route.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(t);
    } else {
      route.queued.push(t);
    }
  }

  /**
   * The next connection `name`'s agent registers: one already held, or the
   * next within `waitMs` (0: do not wait). Rejects TIMEOUT otherwise.
   */
  take(name: string, waitMs: number): Promise<AgentTransport> {
    const route = this.#routes.get(name);
    if (!route) {
      return Promise.reject(
        new AgentProtocolError(ErrorCode.Unavailable, `agent "${name}" has no reverse listener`),
      );
    }
    const held = route.queued.shift();
    if (held) return Promise.resolve(held);
    const notYet = () =>
      new AgentProtocolError(
        ErrorCode.Timeout,
        `agent "${route.agentId}" has not registered on ${route.entry.endpoint}${waitMs > 0 ? ` within ${waitMs} ms` : ' yet'}`,
      );
    if (waitMs <= 0) return Promise.reject(notYet());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => {
        const i = route.waiters.indexOf(waiter);
        if (i >= 0) route.waiters.splice(i, 1);
        reject(notYet());
      }, waitMs);
      waiter.timer.unref();
      route.waiters.push(waiter);
    });
  }

  /** Rejects the waits of `name` (it is being removed). */
  stopWaiting(name: string): void {
    const route = this.#routes.get(name);
    if (!route) return;
    for (const w of route.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new AgentProtocolError(ErrorCode.Cancelled, `agent "${name}" was removed`));
    }
  }

  /** Stops serving `name`; closes its held connections and a listener nobody uses any more. */
  async detach(name: string): Promise<void> {
    const route = this.#routes.get(name);
    if (!route) return;
    this.stopWaiting(name);
    this.#routes.delete(name);
    const { entry } = route;
    entry.routes.delete(route.agentId);
    await Promise.allSettled(route.queued.splice(0).map((t) => t.close()));
    if (entry.routes.size === 0) {
      this.#entries.delete(entry.key);
      await entry.listener.close();
    }
  }

  /** Closes every listener and held connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#binding.values()]);
    for (const name of [...this.#routes.keys()]) this.stopWaiting(name);
    const routes = [...this.#routes.values()];
    this.#routes.clear();
    await Promise.allSettled(routes.flatMap((r) => r.queued.splice(0).map((t) => t.close())));
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.allSettled(entries.map((e) => e.listener.close()));
  }

  /** The listeners and the agents they serve. */
  listeners(): ReverseListenerInfo[] {
    return [...this.#entries.values()].map((e) => ({
      endpoint: e.endpoint,
      address: e.listener.address,
      agents: [...e.routes.values()].map((r) => r.name),
    }));
  }
}

/** What a shared listener's settings must agree on. */
function settingsOf(o: TransportOptions): string {
  return JSON.stringify(o.reverse ?? {});
}

/** Listeners on port 0 are never shared: each asks for its own free port. */
let anonymous = 0;
function listenerKey(ep: ReverseEndpoint): string {
  if (ep.listen.transport === 'tcp' && ep.listen.port === 0) return `anon#${++anonymous}`;
  return formatEndpoint(ep);
}

/**
 * `V2Transport.connect` for a reverse endpoint: binds a listener that accepts
 * only `agentId`, waits up to `connectTimeoutMs` for its first registration and
 * returns that connection. Further registrations are refused (`success:false`);
 * closing the connection closes the listener (`close()` resolves once it is closed).
 */
export async function connectReverseEndpoint(
  agentId: string,
  ep: ReverseEndpoint,
  options: TransportOptions,
): Promise<AgentTransport> {
  const hub = new ReverseHub();
  await hub.attach(agentId, agentId, ep, options, 1);
  let transport: AgentTransport;
  try {
    transport = await hub.take(agentId, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  } catch (err) {
    await hub.close();
    throw err;
  }
  let hubClosed: Promise<void> | undefined;
  const closeHub = (): Promise<void> => {
    hubClosed ??= hub.close();
    return hubClosed;
  };
  transport.once('close', () => void closeHub());
  // close() resolves once the listener is gone as well (its socket file removed), so the
  // caller may bind the same address right after it
  const closeConnection = transport.close.bind(transport);
  transport.close = async () => {
    await closeConnection();
    await closeHub();
  };
  return transport;
}
