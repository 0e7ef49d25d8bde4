import { AssertionError } from 'node:assert';
import {
  addHeader,
  allow,
  block,
  handlerErrorResponse,
  redirect,
  removeHeader,
  setHeader,
  websocketAllow,
} from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import {
  expectAllow,
  expectBlock,
  expectHandlerError,
  expectNoHeaderOps,
  expectRedirect,
  expectRequestHeaderAdded,
  expectRequestHeaderRemoved,
  expectRequestHeaderSet,
  expectResponseHeaderAdded,
  expectResponseHeaderRemoved,
  expectResponseHeaderSet,
  expectWebSocketDecision,
} from '../src/index.js';

describe('assertions', () => {
  it('decisions pass when they match and throw an AssertionError naming the difference', () => {
    expectAllow(allow());
    expectAllow(websocketAllow());
    expect(() => expectAllow(block(403))).toThrow(AssertionError);
    expect(() => expectAllow(block(403))).toThrow('expected allow, got {"block":{"status":403');
    expect(expectBlock(block(403, { body: 'x' }), 403).body).toBe('x');
    expect(() => expectBlock(block(403), 401)).toThrow('expected block 401, got block 403');
    expect(() => expectBlock(allow())).toThrow('expected block, got "allow"');
    expect(expectRedirect(redirect('/a', 301), '/a', 301).url).toBe('/a');
    expect(() => expectRedirect(redirect('/a'), '/b')).toThrow('expected redirect to /b, got /a');
    expect(() => expectRedirect(redirect('/a'), undefined, 307)).toThrow('expected redirect 307');
    expectHandlerError(handlerErrorResponse('request_headers'));
    expect(() => expectHandlerError(block(500))).toThrow(/handler-error block/);
    expectWebSocketDecision(block(1, { websocketDecision: 'drop' }), 'drop');
    expect(() => expectWebSocketDecision(allow(), 'drop')).toThrow(/websocket_decision "drop"/);
  });

  it('header ops match by kind, case-insensitive name and value', () => {
    const r = allow({
      requestHeaders: [setHeader('X-User', 'ann'), addHeader('Via', 'p'), removeHeader('Cookie')],
      responseHeaders: [
        setHeader('Cache-Control', 'no-store'),
        addHeader('Set-Cookie', 'a=1'),
        removeHeader('Server'),
      ],
    });
    expectRequestHeaderSet(r, 'x-user');
    expectRequestHeaderSet(r, 'x-user', 'ann');
    expectRequestHeaderAdded(r, 'via', 'p');
    expectRequestHeaderRemoved(r, 'cookie');
    expectResponseHeaderSet(r, 'cache-control', 'no-store');
    expectResponseHeaderAdded(r, 'set-cookie');
    expectResponseHeaderRemoved(r, 'SERVER');
    expect(() => expectRequestHeaderSet(r, 'x-user', 'bob')).toThrow(
      'expected request header set "x-user" = "bob", got "ann"',
    );
    expect(() => expectRequestHeaderSet(r, 'via')).toThrow(/expected a request header set "via"/);
    expect(() => expectResponseHeaderRemoved(r, 'cookie')).toThrow(AssertionError);
    expect(() => expectNoHeaderOps(r)).toThrow(/expected no header ops/);
    expectNoHeaderOps(allow());
  });
});
