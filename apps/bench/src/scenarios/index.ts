import type { Scenario } from '../types.js';
import { agentprotoScenario } from './agentproto.js';
import { bodyScenario } from './body.js';
import { codecScenario } from './codec.js';
import { gatewayScenario } from './gateway.js';
import { grpcScenario } from './grpc.js';
import { memoryScenario } from './memory.js';
import { middlewareScenario } from './middleware.js';
import { poolScenario } from './pool.js';
import { proxScenario } from './prox.js';
import { reverseScenario } from './reverse.js';
import { udsScenario } from './uds.js';

/**
 * Every scenario, in the order (1–8) with the [9/9] rows for prox, agentproto and
 * middleware (9–11) after the gateway: how they run and appear in the report.
 */
export const SCENARIOS: readonly Scenario[] = [
  udsScenario,
  grpcScenario,
  reverseScenario,
  poolScenario,
  bodyScenario,
  gatewayScenario,
  proxScenario,
  agentprotoScenario,
  middlewareScenario,
  codecScenario,
  memoryScenario,
];
