import { measure, measureVariants } from '../harness.js';
import { type Aggregate, pairedRatio } from '../stats.js';
import type { BenchConfig, Row, Scenario } from '../types.js';
import { skippedScenario, target } from '../types.js';
import type { Hosted } from '../worker.js';
import {
  aggregateRow,
  loadOptions,
  packageAvailable,
  sampleLogger,
  startWorkers,
  stopWorkers,
} from './common.js';

const ID = 'grpc';
const INFLIGHT = [16, 128] as const;
const SELF = new URL('./grpc.ts', import.meta.url).href;
/** A bidi method with raw bytes in and out: grpc-js with no codec of ours. */
const RAW_PATH = '/picket.bench.Echo/Stream';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** The protobuf messages picket would send for the bench event and the echo's reply. */
async function equivalentMessages() {
  const { pb, eventToProto, agentResponseToProto } = await import('@picket/grpc/internal');
  const { requestHeadersEvent, echoLikeResponse } = await import('../fixtures.js');
  const request = eventToProto('request_headers', requestHeadersEvent('req-00000000-0000'));
  const response = {
    response: agentResponseToProto(echoLikeResponse('req-00000000-0000'), 'req-00000000-0000', 0),
  };
  return { pb, request, response };
}

/**
 * Server worker: raw grpc-js bidi stream with the generated protobuf classes as
 * (de)serializers, as a hand-written grpc-js agent would have: each request is
 * decoded, each reply (a prebuilt AgentToProxy) encoded.
 */
export async function rawGrpcServer(): Promise<Hosted> {
  const grpc = await import('@grpc/grpc-js');
  const { pb, response } = await equivalentMessages();
  const server = new grpc.Server();
  server.addService(
    {
      Stream: {
        path: RAW_PATH,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: object) => Buffer.from(pb.ProxyToAgent.encode(m).finish()),
        requestDeserialize: (b: Buffer) => pb.ProxyToAgent.decode(b),
        responseSerialize: (m: object) => Buffer.from(pb.AgentToProxy.encode(m).finish()),
        responseDeserialize: (b: Buffer) => pb.AgentToProxy.decode(b),
      },
    },
    {
      Stream: (call: import('@grpc/grpc-js').ServerDuplexStream<unknown, object>) => {
        call.on('data', () => call.write(response));
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { info: `127.0.0.1:${port}`, close: () => void server.forceShutdown() };
}

/** Load worker: one raw bidi stream (protobuf serializers), replies matched in order. */
export async function rawGrpcClient(args: { address: string }): Promise<Hosted> {
  const grpc = await import('@grpc/grpc-js');
  const { pb, request } = await equivalentMessages();
  const client = new grpc.Client(args.address, grpc.credentials.createInsecure());
  const stream = client.makeBidiStreamRequest(
    RAW_PATH,
    (m: object) => Buffer.from(pb.ProxyToAgent.encode(m).finish()),
    (b: Buffer) => pb.AgentToProxy.decode(b),
  );
  const waiting: (() => void)[] = [];
  let head = 0;
  stream.on('data', () => {
    const w = waiting[head];
    waiting[head++] = undefined as unknown as () => void;
    w?.();
    if (head > 4096 && head === waiting.length) {
      waiting.length = 0;
      head = 0;
    }
  });
  stream.on('error', () => {});
  return {
    call: () =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        stream.write(request);
      }),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}

/** Server worker: `GrpcAgentServerV2` with the reference EchoAgent. */
export async function picketGrpcServer(): Promise<Hosted> {
  const { GrpcAgentServerV2 } = await import('@picket/grpc');
  const { EchoAgent } = await import('@picket/agents');
  const server = new GrpcAgentServerV2(new EchoAgent(), { logger: quiet });
  const bound = await server.listen('127.0.0.1:0');
  return { info: bound.address, close: () => server.close() };
}

/** Load worker: `AgentClientV2` (one ProcessStream) sending the bench event. */
export async function picketGrpcClient(args: { address: string }): Promise<Hosted> {
  const { AgentClientV2 } = await import('@picket/grpc');
  const { eventCall } = await import('../endpoints.js');
  const client = await AgentClientV2.connect('echo', args.address, {
    timeoutMs: 10_000,
    logger: quiet,
  });
  const send = eventCall('headers', 'grpc-');
  return { call: (seq: number) => send(client, seq), close: () => client.close() };
}

/** Scenario 2: raw grpc-js bidi echo with equivalent messages vs picket's gRPC transport. */
export const grpcScenario: Scenario = {
  id: ID,
  title: 'gRPC: picket AgentClientV2 → GrpcAgentServerV2 vs a raw grpc-js bidi echo',
  async run(config: BenchConfig) {
    const description =
      'One HTTP/2 connection on 127.0.0.1, one bidi stream. The baseline is what a hand-written ' +
      'grpc-js client and agent would do: a bidi stream whose serializers are the generated ' +
      'protobuf classes, the client sending a prebuilt ProxyToAgent (the protobuf form of the ' +
      "bench RequestHeaders event) and the server answering each with a prebuilt AgentToProxy (the echo agent's reply): " +
      'protobuf encode/decode on both sides, no conversion, no correlation, no handler. picket: ' +
      '`AgentClientV2` → `GrpcAgentServerV2(EchoAgent)`.';
    const missing = await packageAvailable('@picket/grpc');
    if (missing !== undefined) {
      return skippedScenario(
        ID,
        grpcScenario.title,
        description,
        'picket gRPC ≥ 0.8 × raw grpc-js',
        missing,
      );
    }
    const [server, load] = await startWorkers(config, [`${ID}-server`, `${ID}-load`], {
      serverAndLoad: true,
    });
    if (server === undefined || load === undefined) throw new Error('workers did not start');
    try {
      const { info: rawAddress } = await server.create<string>(SELF, 'rawGrpcServer');
      const { info: agentAddress } = await server.create<string>(SELF, 'picketGrpcServer');
      const raw = await load.create(SELF, 'rawGrpcClient', { address: rawAddress });
      const picket = await load.create(SELF, 'picketGrpcClient', { address: agentAddress });
      const rows: Row[] = [];
      const at = new Map<number, { raw: Aggregate; picket: Aggregate }>();
      for (const n of INFLIGHT) {
        const opts = loadOptions(config, n);
        const aggs = await measureVariants(
          [
            { key: `raw @${n}`, run: () => measure(load, raw.handle, opts, server) },
            { key: `picket @${n}`, run: () => measure(load, picket.handle, opts, server) },
          ],
          config.reps,
          sampleLogger(config, ID),
        );
        const base = { name: `raw grpc-js bidi @${n}`, agg: aggs.get(`raw @${n}`) as Aggregate };
        const p = aggs.get(`picket @${n}`) as Aggregate;
        at.set(n, { raw: base.agg, picket: p });
        rows.push(
          aggregateRow(ID, base.name, base.agg, base),
          aggregateRow(ID, `picket gRPC @${n}`, p, base),
        );
      }
      const top = at.get(128) as { raw: Aggregate; picket: Aggregate };
      return {
        id: ID,
        title: grpcScenario.title,
        description,
        rows,
        targets: [
          target(
            ID,
            'picket gRPC vs raw grpc-js @128 in flight',
            pairedRatio(top.picket.runs, top.raw.runs),
            '>=',
            0.8,
            'ratio',
          ),
        ],
        charts: [
          {
            id: 'grpc',
            title: 'gRPC request headers (decisions/s)',
            unit: 'req/s',
            bars: INFLIGHT.flatMap((n) => [
              {
                label: `raw grpc-js @${n}`,
                value: (at.get(n) as { raw: Aggregate }).raw.opsPerSec,
                baseline: true,
              },
              {
                label: `picket gRPC @${n}`,
                value: (at.get(n) as { picket: Aggregate }).picket.opsPerSec,
              },
            ]),
          },
        ],
        notes: [],
      };
    } finally {
      await stopWorkers([load, server]);
    }
  },
};
