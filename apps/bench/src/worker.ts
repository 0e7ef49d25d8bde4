/**
 * Entry point of every child process the bench forks (servers under test and
 * load generators). It waits for IPC requests from the runner:
 * - `create {module, fn, args}`: imports `module` and calls its export `fn(args)`,
 *   which returns a {@link Hosted} object; answers with the object's `info`;
 * - `run {handle, load}`: drives the object's `call` in a closed loop;
 * - `invoke {handle, method, args}`: calls one of the object's methods;
 * - `cpu`: this process's CPU usage so far; `exit`: closes everything and exits
 *   (so `--cpu-prof` gets written).
 */
import { closedLoop, type LoadOptions } from './load.js';

/** What a factory run inside a worker returns. */
export interface Hosted {
  /** sent back to the runner (addresses, sizes …) */
  info?: unknown;
  /** one operation of a load target */
  call?: (seq: number) => Promise<unknown>;
  /**
   * Run by the load loop once `call(seq)` has answered: the target's end-of-request work
   * (the pool forgets the request's affinity), without wrapping every call in one more
   * promise as an async `call` would.
   */
  after?: (seq: number) => void;
  /** bytes moved per `call`, reported with the sample */
  bytesPerOp?: number;
  /** any other method the runner may `invoke` */
  [method: string]: unknown;
  close?: () => Promise<void> | void;
}

interface Request {
  id: number;
  op: 'create' | 'run' | 'invoke' | 'cpu' | 'exit';
  module?: string;
  fn?: string;
  args?: unknown;
  handle?: number;
  load?: LoadOptions;
  method?: string;
}

const hosted = new Map<number, Hosted>();
let nextHandle = 1;

function get(handle: number | undefined): Hosted {
  const h = handle === undefined ? undefined : hosted.get(handle);
  if (h === undefined) throw new Error(`no hosted object #${handle}`);
  return h;
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'create': {
      const mod = (await import(req.module as string)) as Record<string, unknown>;
      const factory = mod[req.fn as string];
      if (typeof factory !== 'function') throw new Error(`${req.module} has no export ${req.fn}`);
      const obj = (await factory(req.args)) as Hosted;
      const id = nextHandle++;
      hosted.set(id, obj);
      return { handle: id, info: obj.info };
    }
    case 'run': {
      const obj = get(req.handle);
      if (typeof obj.call !== 'function') throw new Error(`#${req.handle} is not a load target`);
      const result = await closedLoop(obj.call, req.load as LoadOptions, obj.after);
      return obj.bytesPerOp === undefined ? result : { ...result, bytesPerOp: obj.bytesPerOp };
    }
    case 'invoke': {
      const obj = get(req.handle);
      const fn = obj[req.method as string];
      if (typeof fn !== 'function') throw new Error(`#${req.handle} has no method ${req.method}`);
      return await (fn as (a: unknown) => unknown).call(obj, req.args);
    }
    case 'cpu':
      return process.cpuUsage();
    case 'exit': {
      for (const obj of [...hosted.values()].reverse()) {
        try {
          await obj.close?.();
        } catch {
          // best effort: the process exits anyway
        }
      }
      hosted.clear();
      return null;
    }
  }
}

process.on('message', (raw) => {
  const req = raw as Request;
  handle(req).then(
    (result) => {
      process.send?.({ id: req.id, ok: true, result });
      if (req.op === 'exit') setImmediate(() => process.exit(0));
    },
    (err: unknown) => {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.send?.({ id: req.id, ok: false, error: message });
    },
  );
});
process.send?.({ id: 0, ok: true, result: 'ready' });
