import type {
  AgentResponse,
  Encoding,
  RequestBodyChunkEvent,
  RequestHeadersEvent,
  ResponseHeadersEvent,
} from '@picket/protocol';
import { allow, setHeader } from '@picket/protocol';

/** Encodings a picket proxy can negotiate, in the order the tables list them. */
export const ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];

/**
 * A realistic browser request as a proxy sees it: 20 headers (cookies, UA,
 * client hints, tracing), ~1.3 KB once encoded as JSON.
 */
export function requestHeadersEvent(correlationId = 'req-00000000-0000'): RequestHeadersEvent {
  return {
    metadata: {
      correlation_id: correlationId,
      request_id: correlationId,
      client_ip: '203.0.113.42',
      client_port: 52814,
      server_name: 'shop.example.com',
      protocol: 'HTTP/1.1',
      tls_version: 'TLSv1.3',
      tls_cipher: 'TLS_AES_128_GCM_SHA256',
      route_id: 'shop-api',
      upstream_id: 'shop-backend',
      timestamp: '2026-01-15T10:20:30.123+00:00',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    },
    method: 'GET',
    uri: '/api/v1/products?category=shoes&page=3',
    headers: {
      host: ['shop.example.com'],
      'user-agent': [
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
      ],
      accept: ['application/json, text/plain, */*'],
      'accept-language': ['en-GB,en;q=0.9,de;q=0.8'],
      'accept-encoding': ['gzip, deflate, br, zstd'],
      referer: ['https://shop.example.com/catalog/shoes'],
      cookie: ['session=6f1c2e9a8b7d4c3e; cart=3; theme=dark'],
      'x-forwarded-for': ['203.0.113.42, 198.51.100.7'],
      'x-forwarded-proto': ['https'],
      'x-request-id': ['9b2c6a1e-5f43-4d8e-a7b0-3c9d1e2f4a6b'],
      'sec-ch-ua': ['"Chromium";v="126", "Not.A/Brand";v="24"'],
      'sec-ch-ua-mobile': ['?0'],
      'sec-ch-ua-platform': ['"Linux"'],
      'sec-fetch-dest': ['empty'],
      'sec-fetch-mode': ['cors'],
      'sec-fetch-site': ['same-origin'],
      'cache-control': ['no-cache'],
      pragma: ['no-cache'],
      authorization: ['Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2ln'],
      'x-correlation-id': ['c0ffee00-1234-5678-9abc-def012345678'],
    },
  };
}

/** The same event with a fresh correlation id (what a proxy builds per request). */
export function withCorrelationId(base: RequestHeadersEvent, cid: string): RequestHeadersEvent {
  return { ...base, metadata: { ...base.metadata, correlation_id: cid, request_id: cid } };
}

/** A request body chunk of `size` bytes (pseudo-random, so nothing compresses it away). */
export function bodyChunkEvent(size: number, correlationId = 'req-body'): RequestBodyChunkEvent {
  return {
    correlation_id: correlationId,
    data: pseudoRandomBytes(size),
    is_last: false,
    total_size: null,
    chunk_index: 0,
    bytes_received: size,
  };
}

/** Deterministic filler bytes. */
export function pseudoRandomBytes(size: number, seed = 0x9e3779b9): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A response-headers event with 8 headers. */
export function responseHeadersEvent(correlationId = 'req-1'): ResponseHeadersEvent {
  return {
    correlation_id: correlationId,
    status: 200,
    headers: {
      'content-type': ['application/json; charset=utf-8'],
      'content-length': ['18734'],
      'cache-control': ['private, max-age=0'],
      etag: ['W/"492e-1a2b3c4d"'],
      vary: ['Accept-Encoding'],
      date: ['Wed, 15 Jan 2026 10:20:30 GMT'],
      'set-cookie': ['cart=4; Path=/; HttpOnly; Secure'],
      server: ['shop-backend/2.3'],
    },
  };
}

/** What the echo agent answers to request headers (5 header ops, tags, custom audit). */
export function echoLikeResponse(correlationId = 'req-1'): AgentResponse {
  return allow({
    requestHeaders: [
      setHeader('X-Echo-Agent', 'echo-agent/1.0'),
      setHeader('X-Echo-Correlation-Id', correlationId),
      setHeader('X-Echo-Request-Num', '12345'),
      setHeader('X-Echo-Method', 'GET'),
      setHeader('X-Echo-Path', '/api/v1/products?category=shoes&page=3'),
    ],
    tags: ['echo', 'request_headers'],
    custom: {
      request_num: 12345,
      method: 'GET',
      uri: '/api/v1/catalog',
      correlation_id: correlationId,
    },
  });
}
