/**
 * The eight typed `send*` methods of {@link AgentTransport}, written once on top of the
 * generic `send(type, event, options)` every transport implements.
 */
import { EventEmitter } from 'node:events';
import type { AgentTransport, CallOptions, TransportEventMap } from '../roles.js';
import type { AgentResponse, EventMap, EventType } from '../types.js';

type TypedSends = Pick<
  AgentTransport,
  | 'sendRequestHeaders'
  | 'sendRequestBodyChunk'
  | 'sendResponseHeaders'
  | 'sendResponseBodyChunk'
  | 'sendRequestComplete'
  | 'sendWebSocketFrame'
  | 'sendGuardrailInspect'
  | 'sendConfigure'
>;

/** Base class of the proxy-side transports: an EventEmitter of transport events plus the typed sends. */
export abstract class AgentTransportBase
  extends EventEmitter<TransportEventMap>
  implements TypedSends
{
  /** Sends one event and resolves with the agent's answer. */
  abstract send<K extends EventType>(
    type: K,
    event: EventMap[K],
    options?: CallOptions,
  ): Promise<AgentResponse>;

  sendRequestHeaders(e: EventMap['request_headers'], o?: CallOptions): Promise<AgentResponse> {
    return this.send('request_headers', e, o);
  }
  sendRequestBodyChunk(e: EventMap['request_body_chunk'], o?: CallOptions): Promise<AgentResponse> {
    return this.send('request_body_chunk', e, o);
  }
  sendResponseHeaders(e: EventMap['response_headers'], o?: CallOptions): Promise<AgentResponse> {
    return this.send('response_headers', e, o);
  }
  sendResponseBodyChunk(
    e: EventMap['response_body_chunk'],
    o?: CallOptions,
  ): Promise<AgentResponse> {
    return this.send('response_body_chunk', e, o);
  }
  sendRequestComplete(e: EventMap['request_complete'], o?: CallOptions): Promise<AgentResponse> {
    return this.send('request_complete', e, o);
  }
  sendWebSocketFrame(e: EventMap['web_socket_frame'], o?: CallOptions): Promise<AgentResponse> {
    return this.send('web_socket_frame', e, o);
  }
  sendGuardrailInspect(e: EventMap['guardrail_inspect'], o?: CallOptions): Promise<AgentResponse> {
    return this.send('guardrail_inspect', e, o);
  }
  sendConfigure(e: EventMap['configure'], o?: CallOptions): Promise<AgentResponse> {
    return this.send('configure', e, o);
  }
}
