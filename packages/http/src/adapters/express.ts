/**
 * Express middleware (Express 4.21+ and 5): `app.use(picket({ pool, agents }))` before
 * any body parser. The agents see each request first; the routes after it get the request
 * as they left it, and every response goes through their response phase.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { runExchange } from './node.js';
import { type PicketConfig, toEngine } from './options.js';

/** The middleware shape Express calls (no dependency on Express's types). */
export type PicketMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

export function picket(config: PicketConfig): PicketMiddleware {
  const engine = toEngine(config, 'picket');
  return (req, res, next) => {
    let proceeded = false;
    runExchange(engine, req, res, () => {
      proceeded = true;
      next();
    }).catch((e: unknown) => {
      // only a fault before the engine ran (e.g. a body parser ran first) gets here
      if (!proceeded) next(e);
    });
  };
}
