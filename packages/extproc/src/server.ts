/**
 * `ExtProcServer`: any picket `AgentHandler` served to Envoy as an
 * `envoy.service.ext_proc.v3.ExternalProcessor` gRPC server (plaintext, TLS or mTLS).
 */
import {
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerOptions,
  status,
} from '@grpc/grpc-js';
import {
  type AgentHandler,
  AgentProtocolError,
  type AgentServer,
  type AgentTracingOptions,
  createConsoleLogger,
  DEFAULT_GRPC_MAX_MESSAGE_SIZE,
  ErrorCode,
  type ErrorPolicy,
  type Logger,
  type TlsOptions,
} from '@picket/protocol';
import {
  agentTracing,
  bindSocketFile,
  checkErrorPolicy,
  loadTlsMaterial,
  requiresClientCert,
  type SocketFile,
} from '@picket/protocol/internal';
import { type HeaderValueField, MutationWriter } from './convert.js';
import { EXTPROC_SERVICE, type ProcessingRequest, type Undecodable } from './proto.js';
import { ExtProcStream, type StreamHost } from './stream.js';

/** Options of {@link ExtProcServer}; `tracer`: a span per event. */
export interface ExtProcServerOptions extends AgentTracingOptions {
  /**
   * where {@link ExtProcServer.listen} binds: `host:port`, `extproc://host:port`, (with
   * `tls`) `extprocs://host:port` — port 0 picks a free port — or a Unix socket,
   * `extproc+unix:/path` (Envoy's `pipe` address; plaintext only)
   */
  address?: string;
  /** permission bits of a Unix socket file; default 0o660 (owner and group may connect) */
  socketMode?: number;
  /** TLS, and mTLS when `ca` is set (Envoy's client certificate is then required); plaintext when absent */
  tls?: TlsOptions;
  /**
   * what a failing handler is answered: default `'block'`, an ImmediateResponse 500 with
   * body `Agent handler error`; `'close'` ends the stream with INTERNAL (Envoy then answers
   * 500 itself unless its `failure_mode_allow` is set). Never allow. See ErrorPolicy in
   * @picket/protocol.
   */
  errorPolicy?: ErrorPolicy;
  /** default: warnings and errors to the console, tagged `[picket/extproc]` */
  logger?: Logger;
  /**
   * largest gRPC message in bytes, both directions (default 4 MiB): a bigger
   * ProcessingRequest (a buffered body, say) ends its stream with RESOURCE_EXHAUSTED
   */
  maxMessageSize?: number;
  /** streams open at once; more are refused with RESOURCE_EXHAUSTED (default 4096) */
  maxStreams?: number;
  /** how long {@link ExtProcServer.close} lets open streams finish, ms (default 5000) */
  closeTimeoutMs?: number;
  /**
   * the HeaderValue field answers use: `raw_value` (default, Envoy ≥ 1.28 reads it) or
   * `value` for older Envoy releases. Both are read from Envoy.
   */
  headerValueField?: HeaderValueField;
  /** extra grpc-js server options (applied last) */
  serverOptions?: ServerOptions;
}

/** Default of {@link ExtProcServerOptions.maxStreams}. */
export const DEFAULT_EXTPROC_MAX_STREAMS = 4096;

/** Where listen() binds. */
type Where = { kind: 'tcp'; target: string } | { kind: 'unix'; path: string };

function parseAddress(address: string, tls: boolean): Where {
  const fail = (why: string) =>
    new AgentProtocolError(ErrorCode.InvalidArgument, `ExtProcServer: ${why}`);
  const unix = /^(?:extproc\+unix|unix):(?:\/\/)?(\/.*)$/.exec(address);
  if (unix !== null) {
    if (tls) throw fail(`${address} is a Unix socket: TLS is for extprocs://host:port`);
    return { kind: 'unix', path: unix[1] as string };
  }
  const m = /^(extprocs?):\/\/(.+)$/.exec(address);
  if (m === null) {
    if (address.includes(':/')) {
      throw fail(
        `cannot listen on ${address}: use host:port, extproc://host:port, extprocs://host:port or extproc+unix:/path`,
      );
    }
    return { kind: 'tcp', target: address };
  }
  if (m[1] === 'extprocs' && !tls) {
    throw fail(`${address} asks for TLS: give options.tls (cert and key)`);
  }
  if (m[1] === 'extproc' && tls) {
    throw fail(`${address} is plaintext but options.tls is set: listen on extprocs://${m[2]}`);
  }
  return { kind: 'tcp', target: m[2] as string };
}

/**
 * An Envoy ext_proc server running one `AgentHandler`. Each gRPC stream is one HTTP
 * request: its headers, bodies (one chunk when Envoy buffers, many when it streams) and
 * response become picket events, the handler's answers become CommonResponse mutations or
 * an ImmediateResponse. An {@link AgentServer}: `listen()` resolves to
 * `extproc://host:port` (`extprocs://…` with TLS).
 */
export class ExtProcServer implements AgentServer {
  readonly #options: ExtProcServerOptions;
  readonly #server: Server;
  readonly #host: StreamHost;
  readonly #maxStreams: number;
  readonly #streams = new Set<ExtProcStream>();
  /** Unix socket files listen() created, removed (if still ours) on close */
  readonly #socketFiles: SocketFile[] = [];
  #endpoints: string[] = [];
  #draining = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(handler: AgentHandler, options: ExtProcServerOptions = {}) {
    this.#options = options;
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_GRPC_MAX_MESSAGE_SIZE;
    if (!(Number.isInteger(maxMessageSize) && maxMessageSize > 0)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `ExtProcServer: maxMessageSize must be a positive integer, got ${String(options.maxMessageSize)}`,
      );
    }
    this.#maxStreams = options.maxStreams ?? DEFAULT_EXTPROC_MAX_STREAMS;
    if (!(Number.isInteger(this.#maxStreams) && this.#maxStreams >= 1)) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `ExtProcServer: maxStreams must be an integer ≥ 1, got ${String(options.maxStreams)}`,
      );
    }
    const field = options.headerValueField ?? 'raw_value';
    if (field !== 'raw_value' && field !== 'value') {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        `ExtProcServer: headerValueField must be 'raw_value' or 'value', got ${String(field)}`,
      );
    }
    this.#host = {
      handler,
      log: options.logger ?? createConsoleLogger('picket/extproc'),
      errorPolicy: checkErrorPolicy(options.errorPolicy, 'ExtProcServer'),
      tracing: agentTracing(options.tracer, 'ExtProcServer'),
      writer: new MutationWriter(field),
      maxMessageSize,
      ended: (s) => this.#streams.delete(s),
    };
    this.#server = new Server({
      'grpc.max_receive_message_length': maxMessageSize,
      'grpc.max_send_message_length': maxMessageSize,
      ...options.serverOptions,
    });
    this.#server.addService(EXTPROC_SERVICE, {
      Process: (call: ServerDuplexStream<ProcessingRequest | Undecodable, Buffer>) =>
        this.#process(call),
    });
  }

  /** What listen() bound (`extproc://127.0.0.1:50052`); empty before listen() and after close(). */
  get endpoints(): readonly string[] {
    return this.#closing !== undefined || this.#closed ? [] : this.#endpoints;
  }

  /** Streams (HTTP requests in processing) open now. */
  get streams(): number {
    return this.#streams.size;
  }

  /**
   * Binds `options.address` and starts serving; resolves to the bound endpoints (the real
   * port for port 0). Rejects with CONNECTION_FAILED when the address cannot be bound.
   */
  async listen(): Promise<readonly string[]> {
    const address = this.#options.address;
    if (address === undefined) {
      throw new AgentProtocolError(
        ErrorCode.InvalidArgument,
        'ExtProcServer: listen() needs options.address (host:port or extproc://host:port)',
      );
    }
    const tls = this.#options.tls;
    const where = parseAddress(address, tls !== undefined);
    const creds = credentials(tls);
    let endpoint: string;
    if (where.kind === 'unix') {
      const file = await bindSocketFile(where.path, (temp) => this.#bind(`unix:${temp}`, creds), {
        mode: this.#options.socketMode ?? 0o660,
        logger: this.#host.log,
      }).catch((err: Error) => {
        throw AgentProtocolError.from(
          err,
          ErrorCode.ConnectionFailed,
          `cannot listen on ${address}`,
        );
      });
      this.#socketFiles.push(file);
      endpoint = `extproc+unix:${where.path}`;
    } else {
      const port = await new Promise<number>((resolve, reject) => {
        this.#server.bindAsync(where.target, creds, (err, p) => (err ? reject(err) : resolve(p)));
      }).catch((err: Error) => {
        throw new AgentProtocolError(
          ErrorCode.ConnectionFailed,
          `cannot listen on ${where.target}: ${err.message}`,
          { cause: err },
        );
      });
      endpoint = `${tls ? 'extprocs' : 'extproc'}://${where.target.replace(/:\d+$/, `:${port}`)}`;
    }
    this.#endpoints.push(endpoint);
    return this.endpoints;
  }

  /** Binds a grpc-js address; resolves with the function that unbinds it. */
  #bind(address: string, creds: ServerCredentials): Promise<() => void> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(address, creds, (err) =>
        err ? reject(err) : resolve(() => this.#server.unbind(address)),
      );
    });
  }

  /**
   * Refuses new streams (UNAVAILABLE), lets the open ones finish for up to `timeoutMs`
   * (default {@link ExtProcServerOptions.closeTimeoutMs}, 5000), ends what is left with
   * UNAVAILABLE (handlers see `ctx.signal` abort) and stops the server. Idempotent.
   */
  drain(timeoutMs?: number): Promise<void> {
    this.#closing ??= this.#shutdown(timeoutMs ?? this.#options.closeTimeoutMs ?? 5000);
    return this.#closing;
  }

  /** {@link drain} with the configured grace. */
  close(): Promise<void> {
    return this.drain();
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.#draining = true;
    const idle = Promise.all([...this.#streams].map((s) => s.idle()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const s of [...this.#streams]) s.end('agent server closing');
    // before shutting down: while the server holds the inodes, their numbers cannot be reused
    await Promise.all(this.#socketFiles.splice(0).map((f) => f.remove()));
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, 1000);
      this.#server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    this.#closed = true;
  }

  #process(call: ServerDuplexStream<ProcessingRequest | Undecodable, Buffer>): void {
    if (this.#draining) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'agent server is closing' });
      return;
    }
    if (this.#streams.size >= this.#maxStreams) {
      const details = `stream limit reached: ${this.#streams.size} open (maxStreams ${this.#maxStreams})`;
      this.#host.log.warn(`refusing ext_proc stream: ${details}`, { peer: call.getPeer() });
      call.emit('error', { code: status.RESOURCE_EXHAUSTED, details });
      return;
    }
    this.#streams.add(new ExtProcStream(call, this.#host));
  }
}

/** grpc-js server credentials: insecure without TLS, TLS or mTLS otherwise. */
function credentials(tls: TlsOptions | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  const m = loadTlsMaterial(tls, 'listen', 'ExtProcServer: tls');
  return ServerCredentials.createSsl(
    m.ca ?? null,
    [{ cert_chain: m.cert as Buffer, private_key: m.key as Buffer }],
    requiresClientCert(tls),
  );
}
