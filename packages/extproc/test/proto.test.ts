/**
 * The shipped .proto files say what Envoy's API says: every field the server reads or writes
 * has Envoy's name and number (the table is Envoy's api/envoy/... files), and bytes built by
 * hand, field tag by field tag, decode as Envoy means them.
 */
import { loadSync } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import {
  decodeProcessingRequest,
  decodeProcessingResponse,
  EXTPROC_METHOD_PATH,
  EXTPROC_SERVICE,
  encodeProcessingResponse,
  PROTO_DIR,
  PROTO_FILE,
} from '../src/proto.js';

const ENVOY_FIELDS: Record<string, Record<string, number>> = {
  'envoy.service.ext_proc.v3.ProcessingRequest': {
    request_headers: 2,
    response_headers: 3,
    request_body: 4,
    response_body: 5,
    request_trailers: 6,
    response_trailers: 7,
    metadata_context: 8,
    attributes: 9,
    observability_mode: 10,
    protocol_config: 11,
  },
  'envoy.service.ext_proc.v3.ProcessingResponse': {
    request_headers: 1,
    response_headers: 2,
    request_body: 3,
    response_body: 4,
    request_trailers: 5,
    response_trailers: 6,
    immediate_response: 7,
    dynamic_metadata: 8,
    mode_override: 9,
    override_message_timeout: 10,
  },
  'envoy.service.ext_proc.v3.ProtocolConfiguration': {
    request_body_mode: 1,
    response_body_mode: 2,
    send_body_without_waiting_for_header_response: 3,
  },
  'envoy.service.ext_proc.v3.HttpHeaders': { headers: 1, attributes: 2, end_of_stream: 3 },
  'envoy.service.ext_proc.v3.HttpBody': { body: 1, end_of_stream: 2 },
  'envoy.service.ext_proc.v3.HttpTrailers': { trailers: 1 },
  'envoy.service.ext_proc.v3.HeadersResponse': { response: 1 },
  'envoy.service.ext_proc.v3.BodyResponse': { response: 1 },
  'envoy.service.ext_proc.v3.TrailersResponse': { header_mutation: 1 },
  'envoy.service.ext_proc.v3.CommonResponse': {
    status: 1,
    header_mutation: 2,
    body_mutation: 3,
    trailers: 4,
    clear_route_cache: 5,
  },
  'envoy.service.ext_proc.v3.ImmediateResponse': {
    status: 1,
    headers: 2,
    body: 3,
    grpc_status: 4,
    details: 5,
  },
  'envoy.service.ext_proc.v3.GrpcStatus': { status: 1 },
  'envoy.service.ext_proc.v3.HeaderMutation': { set_headers: 1, remove_headers: 2 },
  'envoy.service.ext_proc.v3.StreamedBodyResponse': { body: 1, end_of_stream: 2 },
  'envoy.service.ext_proc.v3.BodyMutation': { body: 1, clear_body: 2, streamed_response: 3 },
  'envoy.config.core.v3.HeaderValue': { key: 1, value: 2, raw_value: 3 },
  'envoy.config.core.v3.HeaderValueOption': {
    header: 1,
    append: 2,
    append_action: 3,
    keep_empty_value: 4,
  },
  'envoy.config.core.v3.HeaderMap': { headers: 1 },
  'envoy.config.core.v3.Metadata': { filter_metadata: 1, typed_filter_metadata: 2 },
  'envoy.type.v3.HttpStatus': { code: 1 },
  'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode': {
    request_header_mode: 1,
    response_header_mode: 2,
    request_body_mode: 3,
    response_body_mode: 4,
    request_trailer_mode: 5,
    response_trailer_mode: 6,
  },
};

interface Descriptor {
  field?: { name: string; number: number }[];
  enumType?: { name: string; value: { name: string; number: number }[] }[];
}

const definition = loadSync(PROTO_FILE, { includeDirs: [PROTO_DIR], keepCase: true });
const fields = (message: string): Record<string, number> => {
  const d = (definition[message] as { type: Descriptor }).type;
  return Object.fromEntries((d.field ?? []).map((f) => [f.name, f.number]));
};

describe('the .proto subset is Envoy’s', () => {
  it('serves /envoy.service.ext_proc.v3.ExternalProcessor/Process, streaming both ways', () => {
    expect(EXTPROC_METHOD_PATH).toBe('/envoy.service.ext_proc.v3.ExternalProcessor/Process');
    expect(EXTPROC_SERVICE.Process).toMatchObject({
      path: EXTPROC_METHOD_PATH,
      requestStream: true,
      responseStream: true,
    });
  });

  for (const [message, expected] of Object.entries(ENVOY_FIELDS)) {
    it(`${message}: names and numbers`, () => {
      expect(fields(message)).toEqual(expected);
    });
  }

  it('enum values', () => {
    const mode = (
      definition['envoy.extensions.filters.http.ext_proc.v3.ProcessingMode'] as {
        type: Descriptor;
      }
    ).type;
    const values = (name: string) =>
      Object.fromEntries(
        (mode.enumType?.find((e) => e.name === name)?.value ?? []).map((v) => [v.name, v.number]),
      );
    expect(values('BodySendMode')).toEqual({
      NONE: 0,
      STREAMED: 1,
      BUFFERED: 2,
      BUFFERED_PARTIAL: 3,
      FULL_DUPLEX_STREAMED: 4,
    });
    expect(values('HeaderSendMode')).toEqual({ DEFAULT: 0, SEND: 1, SKIP: 2 });
    const option = (definition['envoy.config.core.v3.HeaderValueOption'] as { type: Descriptor })
      .type;
    expect(
      Object.fromEntries((option.enumType?.[0]?.value ?? []).map((v) => [v.name, v.number])),
    ).toEqual({
      APPEND_IF_EXISTS_OR_ADD: 0,
      ADD_IF_ABSENT: 1,
      OVERWRITE_IF_EXISTS_OR_ADD: 2,
      OVERWRITE_IF_EXISTS: 3,
    });
  });
});

describe('bytes built by hand', () => {
  const len = (b: number[]) => [b.length, ...b];
  const text = (s: string) => [...Buffer.from(s, 'latin1')];

  it('decodes request headers as Envoy encodes them (raw_value, end_of_stream)', () => {
    // HeaderValue { key = 1: ":path", raw_value = 3: "/x" }
    const header = [0x0a, ...len(text(':path')), 0x1a, ...len(text('/x'))];
    const headerMap = [0x0a, ...len(header)]; // HeaderMap.headers = 1
    const httpHeaders = [0x0a, ...len(headerMap), 0x18, 0x01]; // headers = 1, end_of_stream = 3
    const request = Buffer.from([0x12, ...len(httpHeaders), 0x50, 0x01]); // request_headers = 2, observability_mode = 10
    const m = decodeProcessingRequest(request);
    expect(m.request).toBe('request_headers');
    expect(m.request_headers?.end_of_stream).toBe(true);
    expect(m.observability_mode).toBe(true);
    const h = m.request_headers?.headers?.headers?.[0];
    expect(h?.key).toBe(':path');
    expect(Buffer.from(h?.raw_value ?? []).toString()).toBe('/x');
  });

  it('encodes an ImmediateResponse 403 with Envoy’s tags', () => {
    const bytes = encodeProcessingResponse({
      immediate_response: { status: { code: 403 }, body: Buffer.from('no') },
    });
    // immediate_response = 7 (0x3a) { status = 1 (0x0a) { code = 1: 403 varint 0x93 0x03 }, body = 3 (0x1a) }
    expect([...bytes]).toEqual([0x3a, 0x09, 0x0a, 0x03, 0x08, 0x93, 0x03, 0x1a, 0x02, 0x6e, 0x6f]);
    expect(decodeProcessingResponse(bytes).immediate_response?.status?.code).toBe(403);
  });
});
