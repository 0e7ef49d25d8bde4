/**
 * gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, proto/grpc/reflection/…) for
 * GrpcAgentServerV2, so grpcurl and similar tools can list and describe its services. The
 * FileDescriptorProtos are made at generation time from the shipped .proto files
 * (scripts/descriptors.mjs → src/generated/descriptors.js).
 */
import {
  type ServerDuplexStream,
  type ServiceDefinition,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import $protobuf from 'protobufjs/minimal.js';
import { files as generatedFiles } from './generated/descriptors.js';
import { readString } from './health.js';

/** Fully qualified names of the two reflection services (same protocol, two package names). */
export const REFLECTION_SERVICE_NAMES = [
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
] as const;

const passThrough = (b: Buffer): Buffer => b;

/** grpc-js definitions of both reflection services; messages are encoded by {@link ReflectionService}. */
export const reflectionServiceDefinitions: readonly ServiceDefinition[] =
  REFLECTION_SERVICE_NAMES.map((name) => ({
    ServerReflectionInfo: {
      path: `/${name}/ServerReflectionInfo`,
      requestStream: true,
      responseStream: true,
      requestSerialize: passThrough,
      requestDeserialize: passThrough,
      responseSerialize: passThrough,
      responseDeserialize: passThrough,
      originalName: 'serverReflectionInfo',
    },
  }));

/** A decoded ServerReflectionRequest: `host` and the one request of its `message_request` oneof. */
interface ReflectionRequest {
  host: string;
  kind?:
    | 'file_by_filename'
    | 'file_containing_symbol'
    | 'file_containing_extension'
    | 'all_extension_numbers_of_type'
    | 'list_services';
  name: string;
  extensionNumber: number;
}

const STRING_FIELDS = {
  3: 'file_by_filename',
  4: 'file_containing_symbol',
  6: 'all_extension_numbers_of_type',
  7: 'list_services',
} as const;

/** Decodes a ServerReflectionRequest; throws on bytes that are not one. */
function decodeRequest(b: Buffer): ReflectionRequest {
  const r = $protobuf.Reader.create(b);
  const req: ReflectionRequest = { host: '', name: '', extensionNumber: 0 };
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== 2) {
      r.skipType(tag & 7);
    } else if (field === 1) {
      req.host = readString(r);
    } else if (field === 3 || field === 4 || field === 6 || field === 7) {
      req.kind = STRING_FIELDS[field];
      req.name = readString(r);
    } else if (field === 5) {
      // ExtensionRequest { string containing_type = 1; int32 extension_number = 2; }
      const sub = $protobuf.Reader.create(r.bytes());
      req.kind = 'file_containing_extension';
      req.name = '';
      req.extensionNumber = 0;
      while (sub.pos < sub.len) {
        const t = sub.uint32();
        if (t === 0x0a) req.name = readString(sub);
        else if (t === 0x10) req.extensionNumber = sub.int32();
        else sub.skipType(t & 7);
      }
    } else {
      r.skipType(2);
    }
  }
  return req;
}

/** The `message_response` of a ServerReflectionResponse. */
type ReflectionAnswer =
  | { files: readonly Buffer[] }
  | { services: readonly string[] }
  | { extensionsOf: string }
  | { error: number; message: string };

/** Encodes a ServerReflectionResponse; `original` is the request's bytes, echoed as field 2. */
function encodeResponse(host: string, original: Buffer, answer: ReflectionAnswer): Buffer {
  const w = $protobuf.Writer.create();
  if (host) w.uint32(0x0a).string(host);
  w.uint32(0x12).bytes(original);
  if ('files' in answer) {
    w.uint32(0x22).fork();
    for (const f of answer.files) w.uint32(0x0a).bytes(f);
    w.ldelim();
  } else if ('extensionsOf' in answer) {
    // ExtensionNumberResponse: no message here has extensions
    w.uint32(0x2a).fork().uint32(0x0a).string(answer.extensionsOf).ldelim();
  } else if ('services' in answer) {
    w.uint32(0x32).fork();
    for (const name of answer.services) w.uint32(0x0a).fork().uint32(0x0a).string(name).ldelim();
    w.ldelim();
  } else {
    w.uint32(0x3a).fork();
    w.uint32(0x08).int32(answer.error);
    w.uint32(0x12).string(answer.message);
    w.ldelim();
  }
  return Buffer.from(w.finish());
}

/** A peer-chosen name, quoted and shortened for an error message. */
const quote = (name: string): string =>
  JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);

/**
 * Server reflection over the generated descriptors of the files that declare one of
 * `services` (the services the server really registered). Every served file stands alone
 * (no imports), so a lookup answers with exactly one FileDescriptorProto.
 */
export class ReflectionService {
  readonly #services: readonly string[];
  readonly #byName = new Map<string, Buffer>();
  readonly #bySymbol = new Map<string, Buffer>();
  readonly #messages = new Set<string>();
  readonly #streams = new Set<ServerDuplexStream<Buffer, Buffer>>();
  /** after endStreams(): new streams are refused (they would hold the shutdown) */
  #ended = false;

  constructor(services: readonly string[]) {
    this.#services = [...services].sort();
    for (const f of generatedFiles) {
      if (!f.services.some((s) => services.includes(s))) continue;
      const bytes = Buffer.from(f.descriptor, 'base64');
      this.#byName.set(f.name, bytes);
      for (const s of f.symbols) this.#bySymbol.set(s, bytes);
      for (const m of f.messages) this.#messages.add(m);
    }
  }

  /** Ends every open ServerReflectionInfo stream with OK (the server is going away). */
  endStreams(): void {
    this.#ended = true;
    for (const call of [...this.#streams]) call.end();
    this.#streams.clear();
  }

  #answer(req: ReflectionRequest): ReflectionAnswer {
    const notFound = (what: string): ReflectionAnswer => ({
      error: status.NOT_FOUND,
      message: `${what} not found`,
    });
    const symbol = req.name.replace(/^\./, ''); // a leading dot is allowed: ".pkg.Type"
    switch (req.kind) {
      case 'list_services':
        return { services: this.#services };
      case 'file_by_filename': {
        const f = this.#byName.get(req.name);
        return f ? { files: [f] } : notFound(`file ${quote(req.name)}`);
      }
      case 'file_containing_symbol': {
        const f = this.#bySymbol.get(symbol);
        return f ? { files: [f] } : notFound(`symbol ${quote(req.name)}`);
      }
      case 'file_containing_extension':
        return notFound(`extension ${req.extensionNumber} of ${quote(req.name)}`);
      case 'all_extension_numbers_of_type':
        // a message type here has no extensions; anything else is unknown
        return this.#messages.has(symbol)
          ? { extensionsOf: req.name }
          : notFound(`message type ${quote(req.name)}`);
      default:
        return {
          error: status.INVALID_ARGUMENT,
          message: 'ServerReflectionRequest has no request',
        };
    }
  }

  implementation(): UntypedServiceImplementation {
    return {
      ServerReflectionInfo: (call: ServerDuplexStream<Buffer, Buffer>) => {
        if (this.#ended) {
          call.emit('error', { code: status.UNAVAILABLE, details: 'server is closing' });
          return;
        }
        this.#streams.add(call);
        const done = () => this.#streams.delete(call);
        call.on('data', (raw: Buffer) => {
          let req: ReflectionRequest;
          try {
            req = decodeRequest(raw);
          } catch {
            done();
            call.emit('error', {
              code: status.INVALID_ARGUMENT,
              details: 'malformed ServerReflectionRequest',
            });
            return;
          }
          call.write(encodeResponse(req.host, raw, this.#answer(req)));
        });
        call.on('end', () => {
          done();
          call.end();
        });
        call.on('cancelled', done);
        call.on('error', done);
      },
    };
  }
}
