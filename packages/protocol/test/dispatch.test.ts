import { describe, expect, it } from 'vitest';
import {
  AGENT_HANDLER_ERROR,
  AGENT_INVALID_EVENT,
  type AgentHandler,
  AgentProtocolError,
  allow,
  block,
  createCapabilities,
  ErrorCode,
  HANDLER_ERROR_BODY,
  type HandlerErrorInfo,
  handlerErrorResponse,
  type LogFields,
  PICKET_ERROR_TAG,
  websocketClose,
} from '../src/index.js';
import {
  checkErrorPolicy,
  configUpdateRequest,
  defaultResponse,
  errorAnswer,
  LazyAbort,
  notifyCancel,
  requestContext,
  runHook,
} from '../src/internal/index.js';

function recorder() {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  const at = (level: string) => (message: string, fields?: LogFields) =>
    lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

const info = (over: Partial<HandlerErrorInfo> = {}): HandlerErrorInfo => ({
  cause: 'HANDLER_ERROR',
  eventType: 'request_headers',
  correlationId: 'c1',
  connectionId: 'conn',
  transport: 'uds',
  ...over,
});
const boom = new AgentProtocolError(ErrorCode.HandlerError, 'boom');

describe('the handler-error answer', () => {
  it('is block 500 with the fixed body, tag and reason code; WebSocket frames close 1011', () => {
    const r = handlerErrorResponse('request_headers');
    expect(r.decision).toEqual({ block: { status: 500, body: HANDLER_ERROR_BODY, headers: null } });
    expect(r.audit.tags).toEqual([PICKET_ERROR_TAG]);
    expect(r.audit.reason_codes).toEqual([AGENT_HANDLER_ERROR]);
    expect(r.websocket_decision).toBeNull();
    expect(handlerErrorResponse('web_socket_frame').websocket_decision).toEqual({
      close: { code: 1011, reason: 'agent error' },
    });
  });

  it('an undecodable event keeps its own reason code and a null body', () => {
    const r = handlerErrorResponse('request_body_chunk', 'INVALID_EVENT');
    expect(r.decision).toEqual({ block: { status: 500, body: null, headers: null } });
    expect(r.audit.reason_codes).toEqual([AGENT_INVALID_EVENT]);
  });
});

describe('errorPolicy', () => {
  it("'block' and { status, body } answer a block; 'close' answers nothing", () => {
    const log = recorder();
    expect(errorAnswer('block', boom, info(), log)).toEqual(
      handlerErrorResponse('request_headers'),
    );
    expect(errorAnswer({ status: 503, body: 'later' }, boom, info(), log)?.decision).toEqual({
      block: { status: 503, body: 'later', headers: null },
    });
    expect(errorAnswer('close', boom, info(), log)).toBeUndefined();
  });

  it('a function answers, but never with an allow (nor a WebSocket allow); a throw is the default', () => {
    const log = recorder();
    const own = block(502, { tags: ['mine'] });
    expect(errorAnswer(() => own, boom, info(), log)).toBe(own);
    const fallback = handlerErrorResponse('request_headers');
    expect(errorAnswer(() => allow(), boom, info(), log)).toEqual(fallback);
    expect(
      errorAnswer(
        () => block(500, { websocketDecision: 'allow' }),
        boom,
        info({ eventType: 'web_socket_frame' }),
        log,
      ),
    ).toEqual(handlerErrorResponse('web_socket_frame'));
    // for a frame the WebSocket decision counts: a close is not an allow
    const close = websocketClose(1008, 'policy');
    expect(errorAnswer(() => close, boom, info({ eventType: 'web_socket_frame' }), log)).toBe(
      close,
    );
    expect(
      errorAnswer(
        () => {
          throw new Error('policy bug');
        },
        boom,
        info(),
        log,
      ),
    ).toEqual(fallback);
    expect(log.lines.filter((l) => l.level === 'error')).toHaveLength(3);
  });

  it("checkErrorPolicy refuses 'allow' and nonsense, naming the option", () => {
    expect(checkErrorPolicy(undefined, 'x')).toBe('block');
    expect(() => checkErrorPolicy('allow', 'srv')).toThrow(
      /srv: errorPolicy must be .* got "allow" \(a handler error never becomes allow\)/,
    );
    expect(() => checkErrorPolicy({ status: 99 }, 'srv')).toThrow(/errorPolicy\.status/);
    expect(() => checkErrorPolicy({ body: 3 }, 'srv')).toThrow(/errorPolicy\.body/);
    expect(() => checkErrorPolicy(7, 'srv')).toThrow(/got 7/);
  });
});

describe('dispatch', () => {
  const handler: AgentHandler = {
    capabilities: () => createCapabilities({ agentId: 'a' }),
    onRequestHeaders: (_e, ctx) => allow({ tags: [ctx.correlationId] }),
    onResponseHeaders: () => {
      throw new Error('sync throw');
    },
    onCancel: () => {
      throw new Error('cancel throw');
    },
  };

  it('runs the hook, answers the default without one, and turns a throw into a rejection', async () => {
    const ctx = requestContext(new LazyAbort(), 'c9', 'grpc', 'k', 'p');
    expect(runHook(handler, 'request_headers', {}, ctx)).toEqual(allow({ tags: ['c9'] }));
    expect(runHook(handler, 'web_socket_frame', {}, ctx)).toEqual(
      defaultResponse('web_socket_frame'),
    );
    expect(defaultResponse('web_socket_frame').websocket_decision).toBe('allow');
    await expect(runHook(handler, 'response_headers', {}, ctx)).rejects.toThrow('sync throw');
  });

  it('ctx.signal is created on first read and already aborted if the event was', () => {
    const abort = new LazyAbort();
    const ctx = requestContext(abort, 'c', 'uds', 'k', undefined);
    expect(Object.keys(ctx).sort()).toEqual([
      'connectionId',
      'correlationId',
      'signal',
      'transport',
    ]);
    abort.abort('timeout');
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBe('timeout');
    expect({ ...requestContext(abort, 'c', 'uds', 'k', 'p') }.signal).toBe(abort.signal);
  });

  it('a throwing onCancel is logged, not thrown', () => {
    const log = recorder();
    notifyCancel(handler, 'c', 'manual', log, 'k');
    expect(log.lines[0]?.message).toBe('handler.onCancel threw');
  });

  it('config update requests get an id and a time when absent', () => {
    const r = configUpdateRequest({ update_type: { type: 'request_reload' } });
    expect(r.request_id).toMatch(/^cfg-/);
    expect(r.timestamp_ms).toBeGreaterThan(0);
    expect(
      configUpdateRequest({
        update_type: { type: 'request_reload' },
        request_id: 'x',
        timestamp_ms: 5,
      }),
    ).toEqual({ update_type: { type: 'request_reload' }, request_id: 'x', timestamp_ms: 5 });
  });
});
