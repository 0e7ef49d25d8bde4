/**
 * Assertions on an AgentResponse that work under any test runner: each throws
 * node's AssertionError (with `actual` / `expected`, so runners show a diff)
 * naming what differs. Header names compare case-insensitively, as in HTTP.
 */
import { AssertionError } from 'node:assert';
import {
  AGENT_HANDLER_ERROR,
  type AgentResponse,
  type BlockDecision,
  decisionKind,
  HANDLER_ERROR_STATUS,
  type HeaderOp,
  type RedirectDecision,
  type WebSocketDecision,
} from '@picket/protocol';

type AnyFn = (...args: never) => unknown;

function fail(message: string, actual: unknown, expected: unknown, fn: AnyFn): never {
  throw new AssertionError({
    message,
    actual,
    expected,
    operator: 'strictEqual',
    stackStartFn: fn,
  });
}

function describeDecision(r: AgentResponse): string {
  return JSON.stringify(r.decision);
}

/** The response allows (for a WebSocket frame: also its `websocket_decision`, when set, is allow). */
export function expectAllow(r: AgentResponse): void {
  if (r.decision !== 'allow') {
    fail(`expected allow, got ${describeDecision(r)}`, r.decision, 'allow', expectAllow);
  }
  if (r.websocket_decision !== null && r.websocket_decision !== 'allow') {
    fail(
      `expected allow, got websocket_decision ${JSON.stringify(r.websocket_decision)}`,
      r.websocket_decision,
      'allow',
      expectAllow,
    );
  }
}

/** The response blocks (with `status`, when given); returns the block for further checks. */
export function expectBlock(r: AgentResponse, status?: number): BlockDecision {
  const d = r.decision;
  if (decisionKind(d) !== 'block') {
    fail(`expected block, got ${describeDecision(r)}`, d, { block: { status } }, expectBlock);
  }
  const block = (d as { block: BlockDecision }).block;
  if (status !== undefined && block.status !== status) {
    fail(`expected block ${status}, got block ${block.status}`, block.status, status, expectBlock);
  }
  return block;
}

/** The response redirects (to `url` / with `status`, when given); returns the redirect. */
export function expectRedirect(r: AgentResponse, url?: string, status?: number): RedirectDecision {
  const d = r.decision;
  if (decisionKind(d) !== 'redirect') {
    fail(
      `expected redirect, got ${describeDecision(r)}`,
      d,
      { redirect: { url, status } },
      expectRedirect,
    );
  }
  const redirect = (d as { redirect: RedirectDecision }).redirect;
  if (url !== undefined && redirect.url !== url) {
    fail(`expected redirect to ${url}, got ${redirect.url}`, redirect.url, url, expectRedirect);
  }
  if (status !== undefined && redirect.status !== status) {
    fail(
      `expected redirect ${status}, got ${redirect.status}`,
      redirect.status,
      status,
      expectRedirect,
    );
  }
  return redirect;
}

/** The response is the servers' handler-error answer (the hook threw, rejected or returned garbage). */
export function expectHandlerError(r: AgentResponse): void {
  const block = expectBlock(r);
  if (
    block.status !== HANDLER_ERROR_STATUS ||
    !r.audit.reason_codes.includes(AGENT_HANDLER_ERROR)
  ) {
    fail(
      `expected the handler-error block (${HANDLER_ERROR_STATUS}, ${AGENT_HANDLER_ERROR}), got block ${block.status} with reason codes ${JSON.stringify(r.audit.reason_codes)}`,
      { status: block.status, reason_codes: r.audit.reason_codes },
      { status: HANDLER_ERROR_STATUS, reason_codes: [AGENT_HANDLER_ERROR] },
      expectHandlerError,
    );
  }
}

/** The response's `websocket_decision` is `expected` (`null`: none given). */
export function expectWebSocketDecision(
  r: AgentResponse,
  expected: WebSocketDecision | null,
): void {
  if (JSON.stringify(r.websocket_decision) !== JSON.stringify(expected)) {
    fail(
      `expected websocket_decision ${JSON.stringify(expected)}, got ${JSON.stringify(r.websocket_decision)}`,
      r.websocket_decision,
      expected,
      expectWebSocketDecision,
    );
  }
}

type Kind = 'set' | 'add' | 'remove';

function findOp(ops: readonly HeaderOp[], kind: Kind, name: string): HeaderOp[] {
  const lower = name.toLowerCase();
  return ops.filter((op) => {
    const v = (op as Record<string, { name: string } | undefined>)[kind];
    return v !== undefined && v.name.toLowerCase() === lower;
  });
}

function expectOp(
  r: AgentResponse,
  side: 'request_headers' | 'response_headers',
  kind: Kind,
  name: string,
  value: string | undefined,
  fn: AnyFn,
): void {
  const ops = r[side];
  const found = findOp(ops, kind, name);
  const what = `${side.replace('_headers', '')} header ${kind} ${JSON.stringify(name)}`;
  if (found.length === 0) {
    fail(`expected a ${what}, got ${JSON.stringify(ops)}`, ops, { [kind]: { name, value } }, fn);
  }
  if (value === undefined) return;
  const values = found.map((op) => (op as unknown as Record<Kind, { value?: string }>)[kind].value);
  if (!values.includes(value)) {
    fail(
      `expected ${what} = ${JSON.stringify(value)}, got ${values.map((v) => JSON.stringify(v)).join(', ')}`,
      values.length === 1 ? values[0] : values,
      value,
      fn,
    );
  }
}

/** The response sets request header `name` (to `value`, when given). */
export function expectRequestHeaderSet(r: AgentResponse, name: string, value?: string): void {
  expectOp(r, 'request_headers', 'set', name, value, expectRequestHeaderSet);
}
/** The response adds request header `name` (with `value`, when given). */
export function expectRequestHeaderAdded(r: AgentResponse, name: string, value?: string): void {
  expectOp(r, 'request_headers', 'add', name, value, expectRequestHeaderAdded);
}
/** The response removes request header `name`. */
export function expectRequestHeaderRemoved(r: AgentResponse, name: string): void {
  expectOp(r, 'request_headers', 'remove', name, undefined, expectRequestHeaderRemoved);
}
/** The response sets response header `name` (to `value`, when given). */
export function expectResponseHeaderSet(r: AgentResponse, name: string, value?: string): void {
  expectOp(r, 'response_headers', 'set', name, value, expectResponseHeaderSet);
}
/** The response adds response header `name` (with `value`, when given). */
export function expectResponseHeaderAdded(r: AgentResponse, name: string, value?: string): void {
  expectOp(r, 'response_headers', 'add', name, value, expectResponseHeaderAdded);
}
/** The response removes response header `name`. */
export function expectResponseHeaderRemoved(r: AgentResponse, name: string): void {
  expectOp(r, 'response_headers', 'remove', name, undefined, expectResponseHeaderRemoved);
}
/** The response touches no request or response header. */
export function expectNoHeaderOps(r: AgentResponse): void {
  if (r.request_headers.length > 0 || r.response_headers.length > 0) {
    fail(
      `expected no header ops, got request ${JSON.stringify(r.request_headers)}, response ${JSON.stringify(r.response_headers)}`,
      { request_headers: r.request_headers, response_headers: r.response_headers },
      { request_headers: [], response_headers: [] },
      expectNoHeaderOps,
    );
  }
}
