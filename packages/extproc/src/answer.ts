/**
 * A picket decision that stops the request (block, redirect, challenge) as an ext_proc
 * ImmediateResponse: the reply Envoy sends downstream instead of proxying.
 */
import {
  AgentProtocolError,
  type AgentResponse,
  type ChallengeDecision,
  ErrorCode,
  type HeaderOp,
  setHeader,
} from '@picket/protocol';
import { invalidHeader, type MutationWriter } from './convert.js';
import type { ImmediateResponse } from './proto.js';

const within = (s: number, lo: number, hi: number): boolean =>
  Number.isInteger(s) && s >= lo && s <= hi;

/** A challenge: 403 (or `params.status`, a 4xx) with the challenge as JSON for a front end to render. */
function challenge(c: ChallengeDecision): { status: number; ops: HeaderOp[]; body: string } {
  const { status: wanted, ...params } = c.params;
  const n = Number(wanted);
  return {
    status: wanted !== undefined && within(n, 400, 499) ? n : 403,
    ops: [setHeader('content-type', 'application/json'), setHeader('cache-control', 'no-store')],
    body: JSON.stringify({ challenge_type: c.challenge_type, params }),
  };
}

/**
 * The ImmediateResponse of a non-allow answer:
 * - block ⇒ its status (one outside 400–599 becomes 403), its headers, its body;
 * - redirect ⇒ its status (one outside 300–399 becomes 302) and `location`; an empty or
 *   unsendable URL is an invalid answer (thrown, so the error policy answers instead);
 * - challenge ⇒ see {@link challenge}.
 * The answer's response-header ops apply to the reply too. `details` (Envoy's
 * %RESPONSE_CODE_DETAILS%) says which decision it was.
 */
export function immediateResponse(
  r: AgentResponse,
  writer: MutationWriter,
  skip: (why: string) => void,
): ImmediateResponse {
  const d = r.decision;
  let status: number;
  let ops: HeaderOp[];
  let body: string | null | undefined;
  let details: string;
  if (d === 'allow') throw new Error('immediateResponse: allow has no immediate response');
  if ('block' in d) {
    status = within(d.block.status, 400, 599) ? d.block.status : 403;
    ops = Object.entries(d.block.headers ?? {}).map(([k, v]) => setHeader(k, v));
    body = d.block.body;
    details = 'picket_block';
  } else if ('redirect' in d) {
    const { url } = d.redirect;
    if (url === '' || invalidHeader('location', url) !== undefined) {
      throw new AgentProtocolError(
        ErrorCode.InvalidMessage,
        `redirect URL ${JSON.stringify(url)} cannot be sent as a location header`,
      );
    }
    status = within(d.redirect.status, 300, 399) ? d.redirect.status : 302;
    ops = [setHeader('location', url)];
    details = 'picket_redirect';
  } else {
    ({ status, ops, body } = challenge(d.challenge));
    details = 'picket_challenge';
  }
  const out: ImmediateResponse = { status: { code: status }, details };
  const headers = writer.mutation([...ops, ...r.response_headers], skip);
  if (headers !== undefined) out.headers = headers;
  if (body !== null && body !== undefined && body !== '') out.body = Buffer.from(body, 'utf8');
  return out;
}
