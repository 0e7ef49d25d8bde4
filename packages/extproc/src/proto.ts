/**
 * The ext_proc service loaded from the shipped .proto files (proto/envoy/…, Envoy's package
 * names and field numbers) with @grpc/proto-loader, and the shapes of the decoded messages.
 * Messages decode to plain objects: snake_case field names (`keepCase`), enums and 64-bit
 * numbers as numbers, bytes as Buffers, unset fields absent, and each oneof's name in a
 * virtual field (`request`, `response`, `mutation`). The well-known types (Struct, BoolValue)
 * come from protobufjs, whose field names are camelCase (`stringValue`).
 */
import { fileURLToPath } from 'node:url';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** Directory of the shipped .proto files (the include path for other gRPC tooling). */
export const PROTO_DIR = fileURLToPath(new URL('../proto', import.meta.url));
/** The service's file, relative to {@link PROTO_DIR}. */
export const PROTO_FILE = 'envoy/service/ext_proc/v3/external_processor.proto';
/** Fully qualified service name. */
export const EXTPROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';
/** HTTP/2 path of the one RPC. */
export const EXTPROC_METHOD_PATH = `/${EXTPROC_SERVICE_NAME}/Process`;

export interface HeaderValue {
  key?: string;
  value?: string;
  raw_value?: Uint8Array;
}

export interface HeaderMap {
  headers?: HeaderValue[];
}

export interface HttpHeaders {
  headers?: HeaderMap;
  end_of_stream?: boolean;
}

export interface HttpBody {
  body?: Uint8Array;
  end_of_stream?: boolean;
}

export interface HttpTrailers {
  trailers?: HeaderMap;
}

/** google.protobuf.Value (protobufjs names its fields in camelCase). */
export interface StructValue {
  stringValue?: string;
  numberValue?: number;
  boolValue?: boolean;
}

/** google.protobuf.Struct. */
export interface Struct {
  fields?: Record<string, StructValue>;
}

/** ProcessingMode.BodySendMode. */
export const BodySendMode = {
  NONE: 0,
  STREAMED: 1,
  BUFFERED: 2,
  BUFFERED_PARTIAL: 3,
  FULL_DUPLEX_STREAMED: 4,
} as const;

export interface ProtocolConfiguration {
  request_body_mode?: number;
  response_body_mode?: number;
  send_body_without_waiting_for_header_response?: boolean;
}

/** Which part of the exchange a ProcessingRequest carries (its `request` oneof). */
export type RequestPart =
  | 'request_headers'
  | 'response_headers'
  | 'request_body'
  | 'response_body'
  | 'request_trailers'
  | 'response_trailers';

export interface ProcessingRequest {
  request?: RequestPart;
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: HttpTrailers;
  response_trailers?: HttpTrailers;
  metadata_context?: { filter_metadata?: Record<string, Struct> };
  attributes?: Record<string, Struct>;
  observability_mode?: boolean;
  protocol_config?: ProtocolConfiguration;
}

/** HeaderValueOption.HeaderAppendAction. */
export const HeaderAppendAction = {
  APPEND_IF_EXISTS_OR_ADD: 0,
  ADD_IF_ABSENT: 1,
  OVERWRITE_IF_EXISTS_OR_ADD: 2,
  OVERWRITE_IF_EXISTS: 3,
} as const;

export interface HeaderValueOption {
  header?: HeaderValue;
  append?: { value?: boolean };
  append_action?: number;
}

export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}

export interface BodyMutation {
  body?: Uint8Array;
  clear_body?: boolean;
  streamed_response?: { body?: Uint8Array; end_of_stream?: boolean };
}

/** CommonResponse.ResponseStatus. */
export const ResponseStatus = { CONTINUE: 0, CONTINUE_AND_REPLACE: 1 } as const;

export interface CommonResponse {
  status?: number;
  header_mutation?: HeaderMutation;
  body_mutation?: BodyMutation;
  clear_route_cache?: boolean;
}

export interface ImmediateResponse {
  status?: { code?: number };
  headers?: HeaderMutation;
  body?: Uint8Array;
  grpc_status?: { status?: number };
  details?: string;
}

export interface ProcessingResponse {
  response?: RequestPart | 'immediate_response';
  request_headers?: { response?: CommonResponse };
  response_headers?: { response?: CommonResponse };
  request_body?: { response?: CommonResponse };
  response_body?: { response?: CommonResponse };
  request_trailers?: { header_mutation?: HeaderMutation };
  response_trailers?: { header_mutation?: HeaderMutation };
  immediate_response?: ImmediateResponse;
}

/** What the server's reader yields for bytes that are not a ProcessingRequest. */
export class Undecodable {
  constructor(readonly reason: string) {}
}

const definition = loadSync(PROTO_FILE, {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: Number,
  enums: Number,
  defaults: false,
  oneofs: true,
});

const loaded = definition[EXTPROC_SERVICE_NAME] as ServiceDefinition;
const processMethod = loaded.Process as MethodDefinition<ProcessingRequest, ProcessingResponse>;

/**
 * The service definition as served: undecodable bytes become an {@link Undecodable} so the
 * stream can end with a clear INVALID_ARGUMENT instead of grpc-js's generic error, and the
 * server writes answers it already encoded (it checks their size first).
 */
export const EXTPROC_SERVICE: ServiceDefinition = {
  Process: {
    ...processMethod,
    responseSerialize: (m: Buffer | ProcessingResponse): Buffer =>
      Buffer.isBuffer(m) ? m : processMethod.responseSerialize(m),
    requestDeserialize: (bytes: Buffer): ProcessingRequest | Undecodable => {
      try {
        return processMethod.requestDeserialize(bytes);
      } catch (err) {
        return new Undecodable(err instanceof Error ? err.message : String(err));
      }
    },
  },
};

/** Encodes a ProcessingRequest (what Envoy sends; for tests and tools). */
export const encodeProcessingRequest = (m: ProcessingRequest): Buffer =>
  processMethod.requestSerialize(m);
/** Decodes a ProcessingRequest. */
export const decodeProcessingRequest = (b: Buffer): ProcessingRequest =>
  processMethod.requestDeserialize(b);
/** Encodes a ProcessingResponse. */
export const encodeProcessingResponse = (m: ProcessingResponse): Buffer =>
  processMethod.responseSerialize(m);
/** Decodes a ProcessingResponse (what Envoy reads; for tests and tools). */
export const decodeProcessingResponse = (b: Buffer): ProcessingResponse =>
  processMethod.responseDeserialize(b);
