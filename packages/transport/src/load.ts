/**
 * Transports are imported on first use, so that a program that only talks UDS
 * never loads @grpc/grpc-js (and its HTTP/2 stack) just by importing the facade.
 * They are optional peer dependencies: a missing one fails with the command
 * that installs it.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import type { ParsedEndpoint } from './endpoint.js';

type UdsModule = typeof import('@picket/uds');
type GrpcModule = typeof import('@picket/grpc');
type V1Module = typeof import('@picket/v1');
type ReverseModule = typeof import('@picket/reverse');
type ProxModule = typeof import('@picket/prox');

const cache = new Map<string, Promise<unknown>>();

/** Whether the failed import was of `name` itself (not of something it imports in turn). */
function isMissing(err: unknown, name: string): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(`'${name}'`);
}

function load<T>(name: string, serves: string, importer: () => Promise<T>): Promise<T> {
  let p = cache.get(name) as Promise<T> | undefined;
  if (!p) {
    p = importer().catch((err: unknown) => {
      cache.delete(name);
      // the install command on a line of its own, ready to copy
      throw isMissing(err, name)
        ? new AgentProtocolError(
            ErrorCode.Unsupported,
            `${name} is not installed (${serves} endpoints need it); install it with:\nnpm install ${name}`,
            { cause: err },
          )
        : new AgentProtocolError(
            ErrorCode.Internal,
            `cannot load ${name}: ${(err as Error).message}`,
            { cause: err },
          );
    });
    cache.set(name, p);
  }
  return p;
}

/** @picket/uds, loaded once. */
export const loadUds = (): Promise<UdsModule> =>
  load('@picket/uds', 'UDS (unix:)', () => import('@picket/uds'));
/** @picket/grpc (and with it @grpc/grpc-js), loaded once. */
export const loadGrpc = (): Promise<GrpcModule> =>
  load('@picket/grpc', 'gRPC', () => import('@picket/grpc'));
/** @picket/v1, loaded once. */
export const loadV1 = (): Promise<V1Module> =>
  load('@picket/v1', 'v1+unix:', () => import('@picket/v1'));
/** @picket/reverse, loaded once. */
export const loadReverse = (): Promise<ReverseModule> =>
  load('@picket/reverse', 'reverse', () => import('@picket/reverse'));

/** @picket/prox (and with it @picket/supervisor), loaded once. */
export const loadProx = (): Promise<ProxModule> =>
  load('@picket/prox', 'prox+exec:', () => import('@picket/prox'));

/** Loads the transport package an endpoint needs. */
export function loadFor(ep: ParsedEndpoint): Promise<unknown> {
  switch (ep.kind) {
    case 'uds':
      return loadUds();
    case 'grpc':
      return loadGrpc();
    case 'v1':
      return loadV1();
    case 'reverse':
      return loadReverse();
    case 'prox':
      return loadProx();
  }
}
