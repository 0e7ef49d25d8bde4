/**
 * `grpc.health.v1.Health` (proto/grpc/health/v1/health.proto) for GrpcAgentServerV2: Check
 * and Watch over one serving status the server sets, so Kubernetes gRPC probes,
 * grpc_health_probe and grpcurl can ask whether the agent takes work.
 */
import {
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import $protobuf from 'protobufjs/minimal.js';

/** Fully qualified name of the health service. */
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/** What the health service answers for a known service. */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

// HealthCheckResponse.ServingStatus values
const WIRE_STATUS = { SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

/**
 * A length-delimited string. protobufjs's Reader#string on a Buffer clamps a length running
 * past the end instead of throwing; Reader#bytes checks it.
 */
export function readString(r: $protobuf.Reader): string {
  const b = r.bytes();
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}

/** HealthCheckRequest → its `service` (field 1); throws on bytes that are not one. */
function decodeRequest(b: Buffer): string {
  const r = $protobuf.Reader.create(b);
  let service = '';
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === 0x0a) service = readString(r);
    else r.skipType(tag & 7);
  }
  return service;
}

/** HealthCheckResponse with `status` (field 1). */
function encodeResponse(wire: number): Buffer {
  return Buffer.from($protobuf.Writer.create().uint32(0x08).int32(wire).finish());
}

const passThrough = (b: Buffer): Buffer => b;
const method = (name: 'Check' | 'Watch', responseStream: boolean) => ({
  path: `/${HEALTH_SERVICE_NAME}/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: passThrough,
  requestDeserialize: passThrough,
  responseSerialize: passThrough,
  responseDeserialize: passThrough,
  originalName: name.toLowerCase(),
});

/** grpc-js definition of `grpc.health.v1.Health`; messages are encoded by {@link HealthService}. */
export const healthServiceDefinition = {
  Check: method('Check', false),
  Watch: method('Watch', true),
} satisfies ServiceDefinition;

/** A peer-chosen service name, quoted and shortened for an error message. */
const quote = (name: string): string =>
  JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);

/**
 * The health service of one server: every name in `services` (`""` is the server as a
 * whole) has the same status; any other name is unknown (Check: NOT_FOUND; Watch:
 * SERVICE_UNKNOWN, stream kept open as the spec asks).
 */
export class HealthService {
  readonly #services: ReadonlySet<string>;
  readonly #watches = new Map<ServerWritableStream<Buffer, Buffer>, string>();
  #status: ServingStatus;
  /** after endWatches(): a Watch gets the status and is ended at once */
  #ended = false;

  constructor(services: readonly string[], initial: ServingStatus) {
    this.#services = new Set(services);
    this.#status = initial;
  }

  get status(): ServingStatus {
    return this.#status;
  }

  /** Sets the status of every known service; open Watch streams are told of a change. */
  set(next: ServingStatus): void {
    if (next === this.#status) return;
    this.#status = next;
    const bytes = encodeResponse(WIRE_STATUS[next]);
    for (const [call, service] of this.#watches) {
      if (this.#services.has(service)) call.write(bytes);
    }
  }

  /** Ends every open Watch stream with OK (the server is going away). */
  endWatches(): void {
    this.#ended = true;
    for (const call of [...this.#watches.keys()]) call.end();
    this.#watches.clear();
  }

  #wire(service: string): number {
    return this.#services.has(service) ? WIRE_STATUS[this.#status] : WIRE_STATUS.SERVICE_UNKNOWN;
  }

  implementation(): UntypedServiceImplementation {
    return {
      Check: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        let service: string;
        try {
          service = decodeRequest(call.request);
        } catch {
          callback({ code: status.INVALID_ARGUMENT, details: 'malformed HealthCheckRequest' });
          return;
        }
        if (!this.#services.has(service)) {
          callback({ code: status.NOT_FOUND, details: `unknown service ${quote(service)}` });
          return;
        }
        callback(null, encodeResponse(this.#wire(service)));
      },
      Watch: (call: ServerWritableStream<Buffer, Buffer>) => {
        let service: string;
        try {
          service = decodeRequest(call.request);
        } catch {
          call.emit('error', {
            code: status.INVALID_ARGUMENT,
            details: 'malformed HealthCheckRequest',
          });
          return;
        }
        call.write(encodeResponse(this.#wire(service)));
        if (this.#ended) {
          call.end();
          return;
        }
        this.#watches.set(call, service);
        const done = () => this.#watches.delete(call);
        call.on('cancelled', done);
        call.on('error', done);
      },
    };
  }
}
