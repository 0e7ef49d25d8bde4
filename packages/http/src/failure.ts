/** How a next hop fails: the errors the engine turns into 502, 503 and 504. */

/** The next hop failed (`error`: 502), timed out (`timeout`: 504), or has no server (`unavailable`: 503). */
export class UpstreamFailure extends Error {
  constructor(
    readonly kind: 'error' | 'timeout' | 'unavailable',
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamFailure';
  }
}

/** Error codes (Node, undici) that mean a timeout. */
export const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

/** The `code` of an error or of one of its causes. */
export function errorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}
