/**
 * `picket serve … --listen extproc://host:port`: the agent served to Envoy's ext_proc
 * filter (@picket/extproc); `extprocs://host:port` with `--tls-cert` / `--tls-key` (and
 * `--tls-ca` to require Envoy's client certificate); `extproc+unix:/path`. Kept out of the facade's endpoint
 * grammar, which names agents a proxy connects to; an ext_proc listener only serves.
 */
import type { AgentHandler, AgentServer, Logger, TlsOptions } from '@picket/protocol';
import { UsageError } from './common.js';

/** One `--listen extproc[s]://host:port` or `extproc+unix:/path`. */
export interface ExtProcListen {
  given: string;
  /** `extproc://host:port`, `extprocs://host:port` or `extproc+unix:/path`, as ExtProcServer takes it */
  address: string;
  tls: boolean;
}

/** Whether a `--listen` value is an ext_proc listener. */
export function isExtProcListen(value: string): boolean {
  return /^(extprocs?:\/\/|extproc\+unix:)/i.test(value.trim());
}

/** `extproc[s]://host:port` (IPv6 in brackets) or `extproc+unix:/path`; a usage error names what is wrong. */
export function extProcListen(value: string): ExtProcListen {
  const unix = /^extproc\+unix:(\/.+)$/i.exec(value.trim());
  if (unix !== null) return { given: value, address: `extproc+unix:${unix[1]}`, tls: false };
  const m = /^(extprocs?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})\/?$/i.exec(
    value.trim(),
  );
  const port = Number(m?.[3]);
  if (m === null || !(port <= 65_535)) {
    throw new UsageError(
      `--listen ${value}: expected extproc://host:port, extprocs://host:port or extproc+unix:/path (e.g. extproc://127.0.0.1:50052)`,
      'serve',
    );
  }
  const scheme = (m[1] as string).toLowerCase();
  return { given: value, address: `${scheme}://${m[2]}:${port}`, tls: scheme === 'extprocs' };
}

/**
 * A usage error when an extprocs:// listener has no certificate. TLS is never switched on
 * implicitly: extproc:// stays plaintext whatever certificate is given.
 */
export function checkExtProcTls(listens: readonly ExtProcListen[], hasCertAndKey: boolean): void {
  const l = listens.find((x) => x.tls);
  if (l !== undefined && !hasCertAndKey) {
    throw new UsageError(`--listen ${l.given}: TLS needs --tls-cert and --tls-key`, 'serve');
  }
}

/** Starts one server per listener; on a failure closes those started and rethrows. */
export async function startExtProc(
  listens: readonly ExtProcListen[],
  handler: AgentHandler,
  tls: TlsOptions,
  logger?: Logger,
): Promise<AgentServer[]> {
  const servers: AgentServer[] = [];
  if (listens.length === 0) return servers;
  // Loaded on first use: @picket/extproc loads grpc-js, which must come after main() has set
  // GRPC_VERBOSITY (and costs every other command nothing).
  const { ExtProcServer } = await import('@picket/extproc');
  try {
    for (const l of listens) {
      const s = new ExtProcServer(handler, {
        address: l.address,
        ...(l.tls && { tls: { ...(tls.ca && { ca: tls.ca }), cert: tls.cert, key: tls.key } }),
        ...(logger !== undefined && { logger }),
      });
      servers.push(s);
      await s.listen();
    }
  } catch (err) {
    await Promise.allSettled(servers.map((s) => s.close()));
    throw err;
  }
  return servers;
}
