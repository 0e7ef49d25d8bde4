/**
 * The engine adds `x-forwarded-for/-proto/-host` for the agents, as a proxy would. In-process
 * there is no proxy hop: the application gets these as the client sent them, so an app that
 * trusts them (e.g. Express's `trust proxy`) behaves as it does without picket (an HTTPS
 * server is not turned into `x-forwarded-proto: http`).
 */
import { type Headers, putOwn } from '@picket/protocol';

const ADDED_BY_ENGINE = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'];

/** `h` with the `x-forwarded-*` fields the client sent (`sent(name)`), and no others. */
export function clientForwarded(
  h: Headers,
  sent: (name: string) => readonly string[] | undefined,
): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(h)) {
    if (!ADDED_BY_ENGINE.includes(k)) putOwn(out, k, v);
  }
  for (const name of ADDED_BY_ENGINE) {
    const values = sent(name);
    if (values && values.length > 0) putOwn(out, name, [...values]);
  }
  return out;
}
