/**
 * The demo's body-inspecting agent (joined to the gateway by a reverse
 * connection): stamps requests and responses, blocks request bodies that look
 * like SQL injection and redacts the word "secret".
 */
import {
  type AgentCapabilities,
  type AgentHandler,
  type AgentResponse,
  allow,
  block,
  createCapabilities,
  type RequestBodyChunkEvent,
  type RequestHeadersEvent,
  replaceBody,
  setHeader,
} from '@picket/protocol';

const SQLI = /\b(drop\s+table|union\s+select)\b/i;
const SECRET = /\bsecret\b/i;

/** Header-stamping, body-inspecting agent used by the embedded demo. */
export class InspectorAgent implements AgentHandler {
  constructor(readonly agentId = 'inspector') {}

  capabilities(): AgentCapabilities {
    return createCapabilities({
      agentId: this.agentId,
      name: 'Body Inspector',
      version: '1.0.0',
      events: ['request_headers', 'request_body_chunk'],
      features: { streaming_body: true, cancellation: true, concurrent_requests: 100 },
    });
  }

  onRequestHeaders(_e: RequestHeadersEvent): AgentResponse {
    return allow({
      requestHeaders: [setHeader('x-inspected-by', this.agentId)],
      responseHeaders: [setHeader('x-inspected-by', this.agentId)],
      tags: ['inspector'],
    });
  }

  onRequestBodyChunk(e: RequestBodyChunkEvent): AgentResponse {
    const text = Buffer.from(e.data).toString('utf8');
    if (SQLI.test(text)) {
      return block(403, {
        body: 'Request body rejected: SQL injection pattern\n',
        tags: ['inspector', 'sqli'],
        reasonCodes: ['BODY_SQLI'],
      });
    }
    if (SECRET.test(text)) {
      return allow({
        requestBodyMutation: replaceBody(text.replace(/\bsecret\b/gi, '[redacted]'), e.chunk_index),
        tags: ['inspector', 'redacted'],
      });
    }
    return allow();
  }
}
