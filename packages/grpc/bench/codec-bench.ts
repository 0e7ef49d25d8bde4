/**
 * Chooses the protobuf library by measurement: encodes and decodes a G6-like
 * ProxyToAgent{request_headers} and a G3-like AgentToProxy{response} N times with each
 * candidate (best of BENCH_ROUNDS runs) and prints ns/op. Run: `pnpm --filter @picket/grpc bench` (N = 100 000, or
 * `BENCH_N=…`). All candidates must produce the same bytes; the script checks that first.
 *
 * Candidates:
 *  - protobufjs static  — pbjs static-module code (src/generated, what the package ships)
 *  - protobufjs reflect — the .proto parsed at run time (how @grpc/proto-loader works)
 *  - protobuf-es        — @bufbuild/protobuf v2 with protoc-gen-es code (bench/generated,
 *                         regenerate with `buf generate proto --template bench/buf.gen.yaml`)
 */

import { fileURLToPath } from 'node:url';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import protobuf from 'protobufjs';
import { zentinel } from '../src/generated/agent_v2.js';
import { AgentToProxySchema, ProxyToAgentSchema } from './generated/agent_v2_pb.js';

const N = Number(process.env.BENCH_N ?? 100_000);
const pb = zentinel.agent.v2;
const TS = 1767225600000;

const headers: [string, string][] = [
  ['host', 'example.com'],
  ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)'],
  ['accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['accept-language', 'en-US,en;q=0.5'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['cookie', 'session=0123456789abcdef; theme=dark'],
  ['x-forwarded-for', '203.0.113.7'],
  ['x-request-id', 'req-1'],
];

// Same content in each library's object shape.
const reqPlain = {
  request_headers: {
    metadata: {
      correlation_id: 'req-1',
      request_id: 'req-1',
      client_ip: '127.0.0.1',
      client_port: 54321,
      server_name: 'example.com',
      protocol: 'HTTP/1.1',
      route_id: 'default',
      timestamp_ms: TS,
    },
    method: 'GET',
    uri: '/admin/secret?x=1',
    http_version: 'HTTP/1.1',
    headers: headers.map(([name, value]) => ({ name, value })),
  },
};
const resPlain = {
  response: {
    correlation_id: 'req-1',
    block: { status: 403, body: 'Forbidden path' },
    audit: { tags: ['denylist', 'blocked_path'], reason_codes: ['PATH_BLOCKED'] },
    processing_time_ms: 0,
  },
};
const reqEs = create(ProxyToAgentSchema, {
  message: {
    case: 'requestHeaders',
    value: {
      metadata: {
        correlationId: 'req-1',
        requestId: 'req-1',
        clientIp: '127.0.0.1',
        clientPort: 54321,
        serverName: 'example.com',
        protocol: 'HTTP/1.1',
        routeId: 'default',
        timestampMs: BigInt(TS),
      },
      method: 'GET',
      uri: '/admin/secret?x=1',
      httpVersion: 'HTTP/1.1',
      headers: headers.map(([name, value]) => ({ name, value })),
    },
  },
});
const resEs = create(AgentToProxySchema, {
  message: {
    case: 'response',
    value: {
      correlationId: 'req-1',
      decision: { case: 'block', value: { status: 403, body: 'Forbidden path' } },
      audit: { tags: ['denylist', 'blocked_path'], reasonCodes: ['PATH_BLOCKED'] },
      processingTimeMs: 0n,
    },
  },
});

const protoPath = fileURLToPath(
  new URL('../proto/zentinel/agent/v2/agent_v2.proto', import.meta.url),
);
const root = new protobuf.Root().loadSync(protoPath, { keepCase: true });
const RP2A = root.lookupType('zentinel.agent.v2.ProxyToAgent');
const RA2P = root.lookupType('zentinel.agent.v2.AgentToProxy');

interface Candidate {
  name: string;
  encReq(): Uint8Array;
  encRes(): Uint8Array;
  decReq(b: Uint8Array): unknown;
  decRes(b: Uint8Array): unknown;
}
const candidates: Candidate[] = [
  {
    name: 'protobufjs static',
    encReq: () => pb.ProxyToAgent.encode(reqPlain).finish(),
    encRes: () => pb.AgentToProxy.encode(resPlain).finish(),
    decReq: (b) => pb.ProxyToAgent.decode(b),
    decRes: (b) => pb.AgentToProxy.decode(b),
  },
  {
    name: 'protobufjs reflect',
    encReq: () => RP2A.encode(reqPlain).finish(),
    encRes: () => RA2P.encode(resPlain).finish(),
    decReq: (b) => RP2A.decode(b),
    decRes: (b) => RA2P.decode(b),
  },
  {
    name: 'protobuf-es',
    encReq: () => toBinary(ProxyToAgentSchema, reqEs),
    encRes: () => toBinary(AgentToProxySchema, resEs),
    decReq: (b) => fromBinary(ProxyToAgentSchema, b),
    decRes: (b) => fromBinary(AgentToProxySchema, b),
  },
];

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const [reference] = candidates;
if (!reference) throw new Error('no candidates');
const reqBytes = reference.encReq();
const resBytes = reference.encRes();
for (const c of candidates) {
  if (hex(c.encReq()) !== hex(reqBytes) || hex(c.encRes()) !== hex(resBytes)) {
    throw new Error(`${c.name} produces different bytes`);
  }
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** Best of ROUNDS runs of N calls, in ns per call (the minimum is the least noisy on a shared box). */
function time(fn: () => unknown): number {
  for (let i = 0; i < Math.min(N, 10_000); i++) fn(); // warm up the JIT
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / N);
  }
  return best;
}

console.log(
  `node ${process.version}, N=${N} x ${ROUNDS} rounds (best), request ${reqBytes.length} B, response ${resBytes.length} B, ns/op`,
);
console.log('candidate            enc req  dec req  enc res  dec res');
for (const c of candidates) {
  const cols = [
    time(c.encReq),
    time(() => c.decReq(reqBytes)),
    time(c.encRes),
    time(() => c.decRes(resBytes)),
  ].map((ns) => ns.toFixed(0).padStart(7));
  console.log(`${c.name.padEnd(20)} ${cols.join('  ')}`);
}
