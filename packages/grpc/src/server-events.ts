/**
 * What a ProcessStream or ProcessEvent delivers, decoded: the one-pass reader for
 * plain RequestHeaders (fast path), protobufjs for everything else, and the event
 * inside a ProxyToAgent with its correlation id.
 */
import type { EventMap, EventType } from '@picket/protocol';
import {
  configureFromProto,
  guardrailFromProto,
  requestBodyChunkFromProto,
  requestCompleteFromProto,
  requestHeadersFromProto,
  responseBodyChunkFromProto,
  responseHeadersFromProto,
  webSocketFrameFromProto,
} from './convert.js';
import { decodeRequestHeadersFast, FastRequestHeaders } from './fast-paths.js';
import {
  agentServiceV2Definition,
  type ProxyToAgentMsg,
  type UndecodableMessage,
} from './proto.js';

/** One event to hand to the handler. */
export interface DecodedEvent {
  type: EventType;
  event: EventMap[EventType];
  cid: string;
}

/** What a ProcessStream delivers: a plain RequestHeaders read in one pass, or any message. */
export type StreamMessage = ProxyToAgentMsg | FastRequestHeaders;

/** ProcessStream's reader: the one-pass reader for plain RequestHeaders, else protobufjs. */
function readStreamMessage(b: Buffer): StreamMessage | UndecodableMessage {
  return (
    decodeRequestHeadersFast(b) ?? agentServiceV2Definition.ProcessStream.requestDeserialize(b)
  );
}

/** The service definition served: proto.ts's, with {@link readStreamMessage} for ProcessStream. */
export const SERVICE = {
  ...agentServiceV2Definition,
  ProcessStream: {
    ...agentServiceV2Definition.ProcessStream,
    requestDeserialize: readStreamMessage,
  },
};

/** The event inside a ProxyToAgent, or undefined when it carries none. */
export function decodeEvent(msg: StreamMessage): DecodedEvent | undefined {
  if (msg instanceof FastRequestHeaders) {
    return { type: 'request_headers', event: msg.event, cid: msg.event.metadata.correlation_id };
  }
  switch (msg.message) {
    case 'request_headers': {
      const event = requestHeadersFromProto(msg.request_headers ?? {});
      return { type: 'request_headers', event, cid: event.metadata.correlation_id };
    }
    case 'request_body_chunk': {
      const event = requestBodyChunkFromProto(msg.request_body_chunk ?? {});
      return { type: 'request_body_chunk', event, cid: event.correlation_id };
    }
    case 'response_headers': {
      const event = responseHeadersFromProto(msg.response_headers ?? {});
      return { type: 'response_headers', event, cid: event.correlation_id };
    }
    case 'response_body_chunk': {
      const event = responseBodyChunkFromProto(msg.response_body_chunk ?? {});
      return { type: 'response_body_chunk', event, cid: event.correlation_id };
    }
    case 'request_complete': {
      const event = requestCompleteFromProto(msg.request_complete ?? {});
      return { type: 'request_complete', event, cid: event.correlation_id };
    }
    case 'websocket_frame': {
      const event = webSocketFrameFromProto(msg.websocket_frame ?? {});
      return { type: 'web_socket_frame', event, cid: event.correlation_id };
    }
    case 'guardrail': {
      const event = guardrailFromProto(msg.guardrail ?? {});
      return { type: 'guardrail_inspect', event, cid: event.correlation_id };
    }
    case 'configure': {
      const event = configureFromProto(msg.configure ?? {});
      return { type: 'configure', event, cid: event.correlation_id };
    }
    default:
      return undefined;
  }
}
