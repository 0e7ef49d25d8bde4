/**
 * What a non-allow decision does to the HTTP exchange: the status, headers and
 * body the engine sends to the client instead of calling the next hop.
 */
import { STATUS_CODES } from 'node:http';
import { type AgentResponse, type ChallengeDecision, type Headers, putOwn } from '@picket/protocol';
import { validHeader } from './http-util.js';

/** A response the engine generates itself. */
export interface GeneratedResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** HTTP auth schemes a challenge can name; they become a 401 with `WWW-Authenticate`. */
const AUTH_SCHEMES = new Map([
  ['basic', 'Basic'],
  ['bearer', 'Bearer'],
  ['digest', 'Digest'],
  ['negotiate', 'Negotiate'],
]);

const validStatus = (s: number, lo: number, hi: number): boolean =>
  Number.isInteger(s) && s >= lo && s <= hi;

function text(status: number, body: string, headers: Headers = {}): GeneratedResponse {
  return {
    status,
    headers: { 'content-type': ['text/plain; charset=utf-8'], ...headers },
    body: Buffer.from(body, 'utf8'),
  };
}

/** Quotes a value for an auth-param (`realm="a \"b\""`). */
function quote(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Challenge rendering (the protocol leaves it to the proxy):
 * - `challenge_type` naming an HTTP auth scheme (`basic`, `bearer`, `digest`,
 *   `negotiate`, any case) ⇒ **401** with `WWW-Authenticate: <Scheme> k="v", …`
 *   built from `params`;
 * - anything else (`captcha`, `js_challenge`, `proof_of_work`, …) ⇒ **403**;
 * - `params.status` (a 4xx code) overrides the status;
 * - the body is always JSON `{"challenge_type": …, "params": {…}}` with
 *   `Cache-Control: no-store`, so a client or a front end can render the challenge.
 */
export function renderChallenge(c: ChallengeDecision): GeneratedResponse {
  const scheme = AUTH_SCHEMES.get(c.challenge_type.toLowerCase());
  const { status: statusParam, ...params } = c.params;
  let status = scheme ? 401 : 403;
  const override = Number(statusParam);
  if (statusParam !== undefined && validStatus(override, 400, 499)) status = override;
  const headers: Headers = {
    'content-type': ['application/json'],
    'cache-control': ['no-store'],
    'x-picket-challenge': [c.challenge_type],
  };
  if (!validHeader('x-picket-challenge', c.challenge_type)) delete headers['x-picket-challenge'];
  if (scheme) {
    const pairs = Object.entries(params)
      .filter(([k]) => /^[A-Za-z0-9_-]+$/.test(k))
      .map(([k, v]) => `${k}=${quote(v)}`);
    const value = pairs.length > 0 ? `${scheme} ${pairs.join(', ')}` : scheme;
    if (validHeader('www-authenticate', value)) headers['www-authenticate'] = [value];
  }
  const body = JSON.stringify({ challenge_type: c.challenge_type, params });
  return { status, headers, body: Buffer.from(body, 'utf8') };
}

/**
 * Turns a non-allow decision into the client's response:
 * - block ⇒ its status (a non-4xx/5xx status becomes 403), its headers, its
 *   body (default: the status text; `text/plain` unless a content-type header is given);
 * - redirect ⇒ its status (a non-3xx status becomes 302) with `Location`;
 * - challenge ⇒ see {@link renderChallenge}.
 * Returns undefined for allow.
 */
export function renderDecision(r: AgentResponse): GeneratedResponse | undefined {
  const d = r.decision;
  if (d === 'allow') return undefined;
  if ('block' in d) {
    const b = d.block;
    const status = validStatus(b.status, 400, 599) ? b.status : 403;
    const headers: Headers = {};
    for (const [k, v] of Object.entries(b.headers ?? {})) {
      if (validHeader(k, v)) putOwn(headers, k.toLowerCase(), [v]);
    }
    const body = b.body ?? `${STATUS_CODES[status] ?? 'Blocked'}\n`;
    if (!headers['content-type']) headers['content-type'] = ['text/plain; charset=utf-8'];
    return { status, headers, body: Buffer.from(body, 'utf8') };
  }
  if ('redirect' in d) {
    const status = validStatus(d.redirect.status, 300, 399) ? d.redirect.status : 302;
    if (!validHeader('location', d.redirect.url) || d.redirect.url === '') {
      return text(502, 'Bad Gateway: agent sent an invalid redirect URL\n');
    }
    return text(status, `Redirecting to ${d.redirect.url}\n`, { location: [d.redirect.url] });
  }
  return renderChallenge(d.challenge);
}

/** A plain-text response for the engine's own errors (404 no route, 502, 504, …). */
export function errorResponse(status: number, message: string): GeneratedResponse {
  return text(status, `${message}\n`);
}
