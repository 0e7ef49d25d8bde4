import {
  createMessageCodec,
  DEFAULT_OFFERED_ENCODINGS,
  decodeHandshakeRequest,
  encodeHandshakeRequest,
  negotiateEncoding,
} from '@picket/codec';
import { allow, setHeader } from '@picket/protocol';

// Proxy: the handshake is always JSON; it lists the encodings the proxy offers.
const hello = encodeHandshakeRequest({
  supported_versions: [2],
  proxy_id: 'my-proxy',
  proxy_version: '1.0.0',
  config: null,
  supported_encodings: [...DEFAULT_OFFERED_ENCODINGS], // ['msgpack', 'json']
});

// Agent: pick the first offered encoding it supports; both sides then use it.
const codec = createMessageCodec(
  negotiateEncoding(decodeHandshakeRequest(hello).supported_encodings),
);
const payload = codec.encodeEvent(
  'response_headers',
  { correlation_id: 'req-1', status: 200, headers: { 'content-type': ['text/html'] } },
  'req-1',
); // msgpack map: {correlation_id: 'req-1', status: 200, headers: {…}}
const event = codec.decodeEvent('response_headers', payload); // validated, typed
const reply = codec.encodeResponse(
  allow({
    responseHeaders: [setHeader('x-seen', 'yes')],
    custom: { correlation_id: event.correlation_id },
  }),
);
export const decoded = codec.decodeResponse(reply); // what the proxy reads back
