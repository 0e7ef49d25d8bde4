/**
 * What `picket record` hides by default: header values (names stay), body bytes, guardrail
 * content, pushed configuration, and in answers header-op values, block bodies and headers and
 * body mutations. Everything else (methods, URIs, decisions, tags) stays readable.
 */
import {
  type AgentResponse,
  type Decision,
  type EventMap,
  type EventType,
  type HeaderOp,
  type Headers,
  MessageType,
} from '@picket/protocol';

const REDACTED = '<redacted>';
const encoder = new TextEncoder();

/** Event carried by each event frame type (0x10–0x17). */
export const EVENT_OF_TYPE: ReadonlyMap<number, EventType> = new Map<number, EventType>([
  [MessageType.RequestHeaders, 'request_headers'],
  [MessageType.RequestBodyChunk, 'request_body_chunk'],
  [MessageType.ResponseHeaders, 'response_headers'],
  [MessageType.ResponseBodyChunk, 'response_body_chunk'],
  [MessageType.RequestComplete, 'request_complete'],
  [MessageType.WebSocketFrame, 'web_socket_frame'],
  [MessageType.GuardrailInspect, 'guardrail_inspect'],
  [MessageType.Configure, 'configure'],
]);

/** The event's own correlation id (RequestHeaders keeps it in its metadata). */
export function eventCorrelationId<K extends EventType>(type: K, e: EventMap[K]): string {
  if (type === 'request_headers') return (e as EventMap['request_headers']).metadata.correlation_id;
  return (e as { correlation_id: string }).correlation_id;
}

/** `<redacted N bytes>` as bytes: what replaces a body or an undecodable payload. */
export function redactedBytes(n: number): Uint8Array {
  return n === 0 ? new Uint8Array(0) : encoder.encode(`<redacted ${n} bytes>`);
}

function headers(h: Headers): Headers {
  const out: Headers = {};
  for (const [name, values] of Object.entries(h)) {
    Object.defineProperty(out, name, {
      value: values.map(() => REDACTED),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function flatHeaders(h: Record<string, string> | null | undefined): Record<string, string> | null {
  if (!h) return h ?? null;
  const out: Record<string, string> = {};
  for (const name of Object.keys(h)) {
    Object.defineProperty(out, name, {
      value: REDACTED,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** A copy of the event with its header values and body replaced. */
export function redactEvent<K extends EventType>(type: K, event: EventMap[K]): EventMap[K] {
  const e = event as EventMap[EventType];
  switch (type) {
    case 'request_headers':
    case 'response_headers': {
      const h = e as EventMap['request_headers'];
      return { ...h, headers: headers(h.headers) } as EventMap[K];
    }
    case 'request_body_chunk':
    case 'response_body_chunk':
    case 'web_socket_frame': {
      const b = e as EventMap['request_body_chunk'];
      return { ...b, data: redactedBytes(b.data.length) } as EventMap[K];
    }
    case 'guardrail_inspect': {
      const g = e as EventMap['guardrail_inspect'];
      return { ...g, content: `<redacted ${g.content.length} chars>` } as EventMap[K];
    }
    case 'configure':
      return { ...(e as EventMap['configure']), config: REDACTED } as EventMap[K];
    default:
      return event;
  }
}

function op(o: HeaderOp): HeaderOp {
  if ('set' in o) return { set: { name: o.set.name, value: REDACTED } };
  if ('add' in o) return { add: { name: o.add.name, value: REDACTED } };
  return o;
}

function decision(d: Decision): Decision {
  if (typeof d === 'object' && 'block' in d) {
    const b = d.block;
    return {
      block: {
        ...b,
        body: b.body === null || b.body === undefined ? b.body : REDACTED,
        headers: flatHeaders(b.headers),
      },
    } as Decision;
  }
  return d;
}

/** A copy of the answer with header-op values, block body / headers and body mutations replaced. */
export function redactResponse(r: AgentResponse): AgentResponse {
  const mutation = (m: AgentResponse['request_body_mutation']) =>
    m?.data ? { ...m, data: REDACTED } : m;
  return {
    ...r,
    decision: decision(r.decision),
    request_headers: r.request_headers.map(op),
    response_headers: r.response_headers.map(op),
    request_body_mutation: mutation(r.request_body_mutation),
    response_body_mutation: mutation(r.response_body_mutation),
  };
}
