/** `picket serve --log-events`: one stdout line per event the served agent answers, and per cancel. */
import {
  type AgentEvent,
  type AgentHandler,
  type AgentResponse,
  allow,
  type CancelReason,
  type EventMap,
  type EventType,
  type RequestContext,
  websocketAllow,
} from '@picket/protocol';

type HookName =
  | 'onRequestHeaders'
  | 'onRequestBodyChunk'
  | 'onResponseHeaders'
  | 'onResponseBodyChunk'
  | 'onRequestComplete'
  | 'onWebSocketFrame'
  | 'onGuardrailInspect'
  | 'onConfigure';

const HOOKS: readonly [HookName, EventType][] = [
  ['onRequestHeaders', 'request_headers'],
  ['onRequestBodyChunk', 'request_body_chunk'],
  ['onResponseHeaders', 'response_headers'],
  ['onResponseBodyChunk', 'response_body_chunk'],
  ['onRequestComplete', 'request_complete'],
  ['onWebSocketFrame', 'web_socket_frame'],
  ['onGuardrailInspect', 'guardrail_inspect'],
  ['onConfigure', 'configure'],
];

/** Writes one log entry: the JSON object (for `--json`) and its human-readable text. */
export type EventLogWriter = (entry: Record<string, unknown>, text: string) => void;

/** What an event was about, in a few words and as JSON fields. */
function describeEvent(type: EventType, e: AgentEvent): [string, Record<string, unknown>] {
  switch (type) {
    case 'request_headers': {
      const r = e as EventMap['request_headers'];
      return [
        `${r.method} ${r.uri} from ${r.metadata.client_ip}`,
        { method: r.method, uri: r.uri, clientIp: r.metadata.client_ip },
      ];
    }
    case 'request_body_chunk':
    case 'response_body_chunk': {
      const c = e as EventMap['request_body_chunk'];
      return [
        `chunk ${c.chunk_index} (${c.data.byteLength} bytes${c.is_last ? ', last' : ''})`,
        { chunkIndex: c.chunk_index, bytes: c.data.byteLength, last: c.is_last },
      ];
    }
    case 'response_headers':
    case 'request_complete': {
      const s = (e as EventMap['response_headers']).status;
      return [`status ${s}`, { status: s }];
    }
    case 'web_socket_frame': {
      const f = e as EventMap['web_socket_frame'];
      return [
        `${f.opcode} frame ${f.frame_index} (${f.data.byteLength} bytes)`,
        { opcode: f.opcode, frameIndex: f.frame_index, bytes: f.data.byteLength },
      ];
    }
    default:
      return ['', {}];
  }
}

/** The decision in a few words (`allow`, `block 403`, `redirect 302 https://…`) and as JSON fields. */
function describeResponse(r: AgentResponse): [string, Record<string, unknown>] {
  const d = r.decision;
  let text: string;
  const fields: Record<string, unknown> = {};
  if (d === 'allow') {
    text = 'allow';
    fields.decision = 'allow';
  } else if ('block' in d) {
    text = `block ${d.block.status}`;
    Object.assign(fields, { decision: 'block', decisionStatus: d.block.status });
  } else if ('redirect' in d) {
    text = `redirect ${d.redirect.status} ${d.redirect.url}`;
    Object.assign(fields, {
      decision: 'redirect',
      decisionStatus: d.redirect.status,
      redirectUrl: d.redirect.url,
    });
  } else {
    text = `challenge ${d.challenge.challenge_type}`;
    Object.assign(fields, { decision: 'challenge', challengeType: d.challenge.challenge_type });
  }
  if (r.websocket_decision != null) {
    const ws = r.websocket_decision;
    const kind = typeof ws === 'string' ? ws : Object.keys(ws)[0];
    text += ` (websocket ${kind})`;
    fields.websocket = kind;
  }
  if (r.needs_more) {
    text += ' (needs more)';
    fields.needsMore = true;
  }
  return [text, fields];
}

/**
 * Wraps `handler` so that every event it answers, and every cancel the proxy
 * sends, is written through `write` — which lets a user watch what a proxy
 * actually sends a served agent. Answers are passed on unchanged; a hook that
 * throws is logged and rethrown; an event the handler has no hook for is
 * answered as the servers would (allow, or allow for a WebSocket frame).
 */
export function withEventLog<H extends AgentHandler & { agentId: string }>(
  handler: H,
  write: EventLogWriter,
): AgentHandler & { agentId: string } {
  const id = handler.agentId;
  const wrapped: AgentHandler & { agentId: string } = {
    agentId: id,
    capabilities: () => handler.capabilities(),
    onCancel(cid: string, reason: CancelReason): void {
      write(
        { event: 'cancel', agentId: id, correlationId: cid, reason },
        `${id} cancel ${cid} ${reason}`,
      );
      handler.onCancel?.(cid, reason);
    },
  };
  if (handler.onHandshake)
    wrapped.onHandshake = (info) => handler.onHandshake?.(info) ?? { accept: true };
  for (const [hook, type] of HOOKS) {
    const inner = handler[hook] as
      | ((e: AgentEvent, ctx: RequestContext) => AgentResponse | Promise<AgentResponse>)
      | undefined;
    const logged = async (e: AgentEvent, ctx: RequestContext): Promise<AgentResponse> => {
      const [what, fields] = describeEvent(type, e);
      const base = {
        event: 'agent_event',
        agentId: id,
        type,
        correlationId: ctx.correlationId,
        transport: ctx.transport,
        ...fields,
      };
      const head = `${id} ${type} ${ctx.correlationId}${what ? ` ${what}` : ''}`;
      try {
        // a missing hook gets what the servers answer for it anyway
        const r = inner
          ? await inner.call(handler, e, ctx)
          : type === 'web_socket_frame'
            ? websocketAllow()
            : allow();
        let decision = 'unreadable answer';
        let dfields: Record<string, unknown> = {};
        try {
          [decision, dfields] = describeResponse(r);
        } catch {
          // a malformed answer is the server's to reject; the log only says so
        }
        write({ ...base, ...dfields }, `${head} => ${decision}`);
        return r;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        write({ ...base, error: message }, `${head} => error: ${message}`);
        throw err;
      }
    };
    (wrapped as Record<HookName, unknown>)[hook] = logged;
  }
  return wrapped;
}
