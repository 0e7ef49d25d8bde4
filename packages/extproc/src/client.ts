/**
 * `@picket/extproc/internal`: an ext_proc client that plays Envoy (for picket's own tests and
 * tools: the CLI tests drive `picket serve --listen extproc://` with it). Not part of the
 * public API and outside semver.
 */
import {
  ChannelCredentials,
  type Client,
  type ClientDuplexStream,
  credentials,
  type MethodDefinition,
  makeGenericClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  EXTPROC_SERVICE,
  encodeProcessingRequest,
  type HeaderMap,
  type ProcessingRequest,
  type ProcessingResponse,
} from './proto.js';

/** The service as a client sees it; a Buffer is sent as it is (for undecodable bytes). */
const CLIENT_SERVICE = {
  Process: {
    ...(EXTPROC_SERVICE.Process as MethodDefinition<ProcessingRequest, ProcessingResponse>),
    requestSerialize: (m: Buffer | ProcessingRequest): Buffer =>
      Buffer.isBuffer(m) ? m : encodeProcessingRequest(m),
  },
};
const ExtProcClient = makeGenericClientConstructor(CLIENT_SERVICE, 'ExternalProcessor');

/** TLS for {@link extProcClient}: the CA to trust, and a client certificate for mTLS. */
export interface ClientTls {
  ca: Uint8Array;
  cert?: Uint8Array;
  key?: Uint8Array;
}

/**
 * A grpc-js client of the ext_proc service at `target` (`host:port`): plaintext, grpc-js
 * credentials, or {@link ClientTls}. Close it with `close()`.
 */
export function extProcClient(
  target: string,
  creds: ChannelCredentials | ClientTls = credentials.createInsecure(),
  options: Record<string, string | number> = {},
): Client {
  const c = !(creds instanceof ChannelCredentials)
    ? credentials.createSsl(
        Buffer.from(creds.ca),
        creds.key ? Buffer.from(creds.key) : null,
        creds.cert ? Buffer.from(creds.cert) : null,
      )
    : creds;
  return new ExtProcClient(target, c, options);
}

/** A HeaderMap as Envoy sends it: lower-case keys, values in raw_value. */
export function headerMap(pairs: [string, string][]): HeaderMap {
  return { headers: pairs.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'utf8') })) };
}

/** One ext_proc stream, driven like Envoy: write a message, read its answer. */
export class EnvoyStream {
  readonly call: ClientDuplexStream<ProcessingRequest | Buffer, ProcessingResponse>;
  readonly #answers: ProcessingResponse[] = [];
  #waiters: { resolve(r: ProcessingResponse): void; reject(e: Error): void }[] = [];
  #error: ServiceError | undefined;
  #ended = false;
  /** resolves when the call ends: its error, or undefined for OK */
  readonly done: Promise<ServiceError | undefined>;

  constructor(client: Client) {
    this.call = (
      client as unknown as {
        Process(): ClientDuplexStream<ProcessingRequest | Buffer, ProcessingResponse>;
      }
    ).Process();
    this.call.on('data', (r: ProcessingResponse) => {
      const w = this.#waiters.shift();
      if (w) w.resolve(r);
      else this.#answers.push(r);
    });
    this.done = new Promise((resolve) => {
      this.call.on('error', (e: ServiceError) => {
        this.#error = e;
        for (const w of this.#waiters.splice(0)) w.reject(e);
        resolve(e);
      });
      this.call.on('end', () => {
        this.#ended = true;
        for (const w of this.#waiters.splice(0)) w.reject(new Error('stream ended'));
        // 'error' follows 'end' for a failed call on some grpc-js versions: give it a turn
        setImmediate(() => resolve(this.#error));
      });
    });
  }

  /** Sends without waiting (STREAMED bodies: Envoy does not wait for each answer). */
  send(m: ProcessingRequest | Buffer): void {
    this.call.write(m);
  }

  /** The next answer, in order. */
  next(): Promise<ProcessingResponse> {
    const r = this.#answers.shift();
    if (r) return Promise.resolve(r);
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.reject(new Error('stream ended'));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Sends one message and waits for its answer. */
  async exchange(m: ProcessingRequest): Promise<ProcessingResponse> {
    this.send(m);
    return this.next();
  }

  /** Envoy is done with the request: half-close, and wait for the call to end. */
  async finish(): Promise<ServiceError | undefined> {
    this.call.end();
    return this.done;
  }
}
