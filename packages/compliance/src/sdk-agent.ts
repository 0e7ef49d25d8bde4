import * as net from 'node:net';

/** A running {@link startSdkLikeV1Agent}. */
export interface SdkLikeV1Agent {
  readonly path: string;
  /** one line per event that reached a connection which had not seen its request's headers */
  readonly failures: readonly string[];
  /** connections accepted so far */
  readonly connections: number;
  /** `{"success": true}` answers sent (request-complete and configure) */
  readonly acks: number;
  close(): Promise<void>;
}

/** Options of {@link startSdkLikeV1Agent}. */
export interface SdkLikeV1AgentOptions {
  /** each answer is delayed by a random 0..jitterMs ms, so connections interleave; default 2 */
  jitterMs?: number;
}

const allowJson = '{"version":2,"decision":"allow"}';
const noCachedJson =
  '{"version":2,"decision":{"block":{"status":500,"body":"No cached request","headers":null}}}';

function frame(json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/**
 * A v1 agent on a Unix socket that behaves like the Zentinel Python and Go SDK
 * v1 agents: request state is kept per connection (an event of a request whose
 * headers came on another connection finds "No cached request" and is answered
 * with a block 500), and request-complete and configure are answered with the
 * acknowledgement `{"success": true}` instead of an agent response.
 */
export async function startSdkLikeV1Agent(
  path: string,
  options: SdkLikeV1AgentOptions = {},
): Promise<SdkLikeV1Agent> {
  const jitterMs = options.jitterMs ?? 2;
  const failures: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let acks = 0;

  const server = net.createServer((socket) => {
    connections++;
    const connection = connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const cached = new Set<string>();
    let buffered = Buffer.alloc(0);
    // v1 has one request in flight per connection: answer them in order
    let chain = Promise.resolve();

    const answer = (request: Record<string, unknown>): string => {
      const type = request.event_type;
      const payload = (request.payload ?? {}) as Record<string, unknown>;
      if (type === 'configure') {
        acks++;
        return '{"success":true}';
      }
      if (type === 'request_headers') {
        const metadata = (payload.metadata ?? {}) as Record<string, unknown>;
        cached.add(String(metadata.correlation_id));
        return allowJson;
      }
      const cid = String(payload.correlation_id);
      if (type === 'request_complete') {
        cached.delete(cid);
        acks++;
        return '{"success":true}';
      }
      if (!cached.has(cid)) {
        failures.push(`No cached request for ${cid} (${String(type)} on connection ${connection})`);
        return noCachedJson;
      }
      return allowJson;
    };

    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4) {
        const length = buffered.readUInt32BE(0);
        if (buffered.length < 4 + length) break;
        const json = buffered.subarray(4, 4 + length).toString('utf8');
        buffered = buffered.subarray(4 + length);
        const reply = answer(JSON.parse(json) as Record<string, unknown>);
        const delay = Math.floor(Math.random() * (jitterMs + 1));
        chain = chain
          .then(() => new Promise((r) => setTimeout(r, delay)))
          .then(() => {
            if (!socket.destroyed) socket.write(frame(reply));
          });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    path,
    failures,
    get connections() {
      return connections;
    },
    get acks() {
      return acks;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
