/**
 * Transports are imported on first use, so that a program that only talks UDS
 * never loads @grpc/grpc-js (and its HTTP/2 stack) just by importing the facade.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';

type UdsModule = typeof import('@picket/uds');
type GrpcModule = typeof import('@picket/grpc');
type V1Module = typeof import('@picket/v1');
type ReverseModule = typeof import('@picket/reverse');

const cache = new Map<string, Promise<unknown>>();

function load<T>(name: string, importer: () => Promise<T>): Promise<T> {
  let p = cache.get(name) as Promise<T> | undefined;
  if (!p) {
    p = importer().catch((err: unknown) => {
      cache.delete(name);
      const missing = (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
      throw new AgentProtocolError(
        missing ? ErrorCode.Unsupported : ErrorCode.Internal,
        missing
          ? `${name} is not installed; install it to use this kind of endpoint`
          : `cannot load ${name}: ${(err as Error).message}`,
        { cause: err },
      );
    });
    cache.set(name, p);
  }
  return p;
}

/** @picket/uds, loaded once. */
export const loadUds = (): Promise<UdsModule> => load('@picket/uds', () => import('@picket/uds'));
/** @picket/grpc (and with it @grpc/grpc-js), loaded once. */
export const loadGrpc = (): Promise<GrpcModule> =>
  load('@picket/grpc', () => import('@picket/grpc'));
/** @picket/v1, loaded once. */
export const loadV1 = (): Promise<V1Module> => load('@picket/v1', () => import('@picket/v1'));
/** @picket/reverse, loaded once. */
export const loadReverse = (): Promise<ReverseModule> =>
  load('@picket/reverse', () => import('@picket/reverse'));
