/** Ready checks that do not depend on what the child prints: its endpoint accepts connections. */
import * as net from 'node:net';
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import type { ReadyCheck } from './types.js';

/** Where to try a connection: a Unix socket path or a TCP host and port. */
export type ConnectTarget = { path: string } | { host: string; port: number };

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

function invalid(endpoint: string, why: string): AgentProtocolError {
  return new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `readyWhenConnectable: endpoint ${JSON.stringify(endpoint)}: ${why}`,
  );
}

/**
 * The address behind an agent endpoint: `unix:/p`, `grpc+unix:/p`, `v1+unix:/p`, a path
 * (`/p`, `./p`, `../p`, `*.sock`), `host:port`, `[v6]:port`, or `tcp://`, `grpc://`,
 * `grpcs://`, `http://`, `https://` followed by `host:port` (a TCP connect proves a listener,
 * whatever protocol follows). Anything else is refused with INVALID_ARGUMENT.
 */
export function connectTarget(endpoint: string): ConnectTarget {
  const unix = /^(?:grpc\+|v1\+)?unix:(.*)$/.exec(endpoint);
  if (unix) {
    const path = unix[1] ?? '';
    if (path === '') throw invalid(endpoint, 'the socket path is empty');
    return { path };
  }
  const e = endpoint;
  if (e.startsWith('/') || e.startsWith('./') || e.startsWith('../') || e.endsWith('.sock')) {
    return { path: e };
  }
  const url = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*?)\/?$/.exec(e);
  let hostPort = e;
  if (url) {
    const scheme = (url[1] ?? '').toLowerCase();
    if (!['tcp', 'grpc', 'grpcs', 'http', 'https'].includes(scheme)) {
      throw invalid(endpoint, `unknown scheme "${scheme}://"`);
    }
    hostPort = url[2] ?? '';
  }
  const m = HOST_PORT.exec(hostPort);
  if (!m) throw invalid(endpoint, 'expected unix:/path, a socket path or host:port');
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw invalid(endpoint, `port ${m[2]} is not 1…65535`);
  return { host: (m[1] ?? '').replace(/^\[(.*)\]$/, '$1'), port };
}

/** Resolves when a connection to `target` succeeds (closing it at once), rejects on its error. */
function tryConnect(target: ConnectTarget, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(target);
    const done = (err?: Error): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => done(signal.reason as Error);
    socket.once('connect', () => done());
    socket.once('error', (err) => done(err));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits `ms`, or less when `signal` aborts (then rejects with its reason). */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A {@link ReadyCheck} for agents that listen on a socket (a Zentinel agent started with
 * `--listen unix:…`): ready once `endpoint` accepts a connection, tried every `intervalMs`
 * (default 100) until the supervisor's signal aborts (ready timeout, child exit, stop). The
 * endpoint is checked here, so a typo fails at configuration time, not after the timeout.
 */
export function readyWhenConnectable(
  endpoint: string,
  o: { intervalMs?: number } = {},
): ReadyCheck {
  const target = connectTarget(endpoint);
  const intervalMs = o.intervalMs ?? 100;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw invalid(endpoint, `intervalMs: expected a finite number > 0, got ${String(intervalMs)}`);
  }
  return async (_child, signal) => {
    for (;;) {
      signal.throwIfAborted();
      try {
        await tryConnect(target, signal);
        return;
      } catch {
        // not listening yet (ENOENT, ECONNREFUSED …): try again; an abort ends the loop above
      }
      await delay(intervalMs, signal);
    }
  };
}
