/**
 * A Fastify 5 plugin: `await app.register(picketFastify, { pool, agents })`. Its
 * `onRequest` hook runs the agents before Fastify parses the body; the route gets the
 * request as they left it, and every reply goes through their response phase.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { runExchange } from './node.js';
import { type PicketOptions, toEngine } from './options.js';

/** The parts of a Fastify instance the plugin uses (no dependency on Fastify's types). */
export interface FastifyLike {
  addHook(
    name: 'onRequest',
    hook: (
      request: { raw: IncomingMessage },
      reply: { raw: ServerResponse; hijack(): unknown },
      done: (error?: Error) => void,
    ) => void,
  ): unknown;
}

/** The plugin; registered at any level, its hook applies to the whole instance. */
export function picketFastify(
  fastify: FastifyLike,
  options: PicketOptions,
  done: (error?: Error) => void,
): void {
  let engine: ReturnType<typeof toEngine>;
  try {
    engine = toEngine(options, 'picketFastify');
  } catch (e) {
    done(e as Error);
    return;
  }
  fastify.addHook('onRequest', (request, reply, next) => {
    let proceeded = false;
    runExchange(engine, request.raw, reply.raw, () => {
      proceeded = true;
      next();
    }).then(
      (ran) => {
        // the agents answered: Fastify must not answer too
        if (!ran) reply.hijack();
      },
      (e: unknown) => {
        if (!proceeded) next(e as Error);
      },
    );
  });
  done();
}
// what fastify-plugin sets: the hook is not encapsulated in the registering context
Object.assign(picketFastify, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@picket/http',
});
