/** Small helpers shared by this package's tests. */
import type { RequestHeadersEvent } from '@picket/protocol';

/**
 * The barest request-headers event: only the correlation id (and the protocol,
 * 'HTTP/1.1' unless given) carries a value. For tests about calls, not content.
 */
export function bareRequest(correlationId: string, protocol = 'HTTP/1.1'): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: correlationId,
      request_id: '',
      client_ip: '',
      client_port: 0,
      protocol,
      timestamp: '',
    },
    method: 'GET',
    uri: '/',
    headers: {},
  };
}
