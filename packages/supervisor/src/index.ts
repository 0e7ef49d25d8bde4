/**
 * `@picket/supervisor`: agent processes run for their owner. Each child gets its own process
 * group, a ready check, restarts with a backoff that never gives up, a bounded stop
 * (stdin EOF → SIGTERM → SIGKILL to the group), stderr lines tagged with its name, and a
 * stdout line limit that fails loudly.
 */
export { type ConnectTarget, connectTarget, readyWhenConnectable } from './ready.js';
export { Supervisor, type SupervisorEvents } from './supervisor.js';
export type {
  ChildExit,
  ReadyCheck,
  SupervisedChild,
  SupervisorBackoff,
  SupervisorOptions,
  SupervisorState,
  SupervisorStats,
} from './types.js';
