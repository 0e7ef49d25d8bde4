/**
 * grpc.health.v1 and server reflection on GrpcAgentServerV2, seen from a raw grpc-js client
 * whose messages are encoded and decoded by protobufjs from the shipped .proto files (not
 * by the server's own codecs): Check and Watch through healthy → unhealthy → degraded →
 * draining → closed, unknown services, reflection list / describe lookups over v1 and
 * v1alpha decoded with protobufjs's descriptor module, both options turned off, TLS, and
 * the descriptors compared with protoc's when protoc is installed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ChannelCredentials,
  Client,
  type ClientReadableStream,
  credentials,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { allow, createCapabilities, silentLogger } from '@picket/protocol';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { afterEach, describe, expect, test } from 'vitest';
import { files as generatedFiles } from '../src/generated/descriptors.js';
import { GrpcAgentServerV2, type GrpcAgentServerV2Options } from '../src/server.js';
import { hasOpenssl, testCerts } from './certs.js';

const protoDir = fileURLToPath(new URL('../proto', import.meta.url));
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protoDir, target);
root.loadSync(
  [
    'grpc/health/v1/health.proto',
    'grpc/reflection/v1/reflection.proto',
    'grpc/reflection/v1alpha/reflection.proto',
  ],
  { keepCase: true },
);
const HealthCheckRequest = root.lookupType('grpc.health.v1.HealthCheckRequest');
const HealthCheckResponse = root.lookupType('grpc.health.v1.HealthCheckResponse');
const reflectionTypes = (v: 'v1' | 'v1alpha') => ({
  path: `/grpc.reflection.${v}.ServerReflection/ServerReflectionInfo`,
  Request: root.lookupType(`grpc.reflection.${v}.ServerReflectionRequest`),
  Response: root.lookupType(`grpc.reflection.${v}.ServerReflectionResponse`),
});

const AGENT = 'zentinel.agent.v2.AgentServiceV2';
// sorted, as list_services answers
const ALL_SERVICES = [
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
  AGENT,
];

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A listening server with no client of this process. */
async function servePort(options: GrpcAgentServerV2Options) {
  const handler = {
    capabilities: () => createCapabilities({ agentId: 'health-test' }),
    onRequestHeaders: () => allow(),
  };
  const server = new GrpcAgentServerV2(handler, { logger: silentLogger, ...options });
  cleanups.push(() => server.forceShutdown());
  const { port } = await server.listen('127.0.0.1:0');
  return { server, port };
}

async function serve(
  options: GrpcAgentServerV2Options = {},
  clientCreds: ChannelCredentials = credentials.createInsecure(),
) {
  const { server, port } = await servePort(options);
  const client = new Client(`localhost:${port}`, clientCreds);
  cleanups.push(() => client.close());
  return { server, client };
}

// ------------------------------------------------------------------ health client

type Status = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

const encodeHealth = (service: string) =>
  Buffer.from(HealthCheckRequest.encode({ service }).finish());
const decodeHealth = (b: Buffer): Status =>
  HealthCheckResponse.toObject(HealthCheckResponse.decode(b), { enums: String, defaults: true })
    .status as Status;

function check(client: Client, service: string): Promise<Status> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      encodeHealth,
      decodeHealth,
      service,
      (err, value) => (err ? reject(err) : resolve(value as Status)),
    );
  });
}

/** Check that is expected to fail: resolves with the error. */
async function checkError(client: Client, service: string): Promise<ServiceError> {
  const err = await check(client, service).then(
    (v) => {
      throw new Error(`expected an error, got ${v}`);
    },
    (e: ServiceError) => e,
  );
  return err;
}

/** A Watch stream: every status received, in order, and how the stream ended. */
function watch(client: Client, service: string) {
  const call: ClientReadableStream<Status> = client.makeServerStreamRequest(
    '/grpc.health.v1.Health/Watch',
    encodeHealth,
    decodeHealth,
    service,
  );
  const seen: Status[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  call.on('data', (s: Status) => {
    seen.push(s);
    for (const w of waiters.filter((w) => seen.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const ended = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('status', (s) => resolve({ code: s.code, details: s.details }));
  });
  call.on('error', () => {}); // the status above tells
  return {
    seen,
    ended,
    cancel: () => call.cancel(),
    /** resolves once `n` statuses have arrived */
    count: (n: number) =>
      seen.length >= n
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  };
}

// ------------------------------------------------------------------ reflection client

type ReflectionResponse = {
  valid_host?: string;
  original_request?: Record<string, unknown>;
  file_descriptor_response?: { file_descriptor_proto: Uint8Array[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
};

/** Sends each request on one ServerReflectionInfo stream; resolves with the answers. */
function reflect(
  client: Client,
  requests: Record<string, unknown>[],
  v: 'v1' | 'v1alpha' = 'v1',
): Promise<ReflectionResponse[]> {
  const t = reflectionTypes(v);
  return new Promise((resolve, reject) => {
    const answers: ReflectionResponse[] = [];
    const call = client.makeBidiStreamRequest(
      t.path,
      (m: Record<string, unknown>) =>
        Buffer.from(t.Request.encode(t.Request.fromObject(m)).finish()),
      (b: Buffer) =>
        t.Response.toObject(t.Response.decode(b), { arrays: true }) as ReflectionResponse,
    );
    call.on('data', (r: ReflectionResponse) => {
      answers.push(r);
      if (answers.length === requests.length) call.end();
    });
    call.on('error', reject);
    call.on('status', (s) => (s.code === status.OK ? resolve(answers) : reject(s)));
    for (const r of requests) call.write(r);
  });
}

type FileProto = {
  name: string;
  package: string;
  service: {
    name: string;
    method: {
      name: string;
      clientStreaming?: boolean;
      serverStreaming?: boolean;
      inputType: string;
    }[];
  }[];
  messageType: { name: string }[];
};
const decodeFile = (b: Uint8Array): FileProto =>
  descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(b)) as FileProto;

/** The one file a lookup answered with. */
function onlyFile(r: ReflectionResponse | undefined): FileProto {
  const files = r?.file_descriptor_response?.file_descriptor_proto ?? [];
  expect(files, JSON.stringify(r?.error_response)).toHaveLength(1);
  return decodeFile(files[0] as Uint8Array);
}

// ------------------------------------------------------------------ tests

describe('grpc.health.v1.Health', () => {
  test('Check answers SERVING for "" and the agent service, NOT_FOUND for anything else', async () => {
    const { client } = await serve();
    expect(await check(client, '')).toBe('SERVING');
    expect(await check(client, AGENT)).toBe('SERVING');
    const err = await checkError(client, 'no.such.Service');
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toContain('"no.such.Service"');
  });

  test('the status follows reportHealth: unhealthy and draining are NOT_SERVING, degraded serves', async () => {
    const { server, client } = await serve();
    const w = watch(client, '');
    await w.count(1);
    server.reportHealth('unhealthy', 'model not loaded');
    expect(await check(client, '')).toBe('NOT_SERVING');
    expect(await check(client, AGENT)).toBe('NOT_SERVING');
    await w.count(2);
    server.reportHealth('degraded');
    expect(await check(client, '')).toBe('SERVING');
    await w.count(3);
    server.reportHealth('healthy'); // no change: Watch sends nothing
    server.reportHealth('draining');
    await w.count(4);
    expect(w.seen).toEqual(['SERVING', 'NOT_SERVING', 'SERVING', 'NOT_SERVING']);
    w.cancel();
  });

  test('Watch on an unknown service gets SERVICE_UNKNOWN and stays open', async () => {
    const { server, client } = await serve();
    const w = watch(client, 'no.such.Service');
    await w.count(1);
    expect(w.seen).toEqual(['SERVICE_UNKNOWN']);
    server.reportHealth('unhealthy'); // not its service: nothing more
    const known = watch(client, AGENT);
    await known.count(1);
    expect(known.seen).toEqual(['NOT_SERVING']);
    expect(w.seen).toEqual(['SERVICE_UNKNOWN']);
    let ended = false;
    void w.ended.then(() => (ended = true));
    await check(client, '');
    expect(ended).toBe(false);
    w.cancel();
    known.cancel();
  });

  test('startDrain turns NOT_SERVING; close tells watchers NOT_SERVING, then ends their stream with OK', async () => {
    const { server, client } = await serve();
    const drained = watch(client, '');
    await drained.count(1);
    server.startDrain(1000);
    await drained.count(2);
    expect(await check(client, AGENT)).toBe('NOT_SERVING');
    drained.cancel();

    const { server: other, client: otherClient } = await serve();
    const w = watch(otherClient, AGENT);
    await w.count(1);
    // A Watch left open must not hold close() until its force timer (60 s here, beyond the
    // test's timeout): close ends it.
    await other.close({ drainTimeoutMs: 60_000 });
    expect(await w.ended).toMatchObject({ code: status.OK });
    expect(w.seen).toEqual(['SERVING', 'NOT_SERVING']);
    await server.close({ drainTimeoutMs: 0 });
  });

  test('a malformed HealthCheckRequest is INVALID_ARGUMENT', async () => {
    const { client } = await serve();
    const err = await new Promise<ServiceError>((resolve) => {
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0x0a, 0x05, 0x61]), // field 1 says 5 bytes, 1 follows
        (e) => resolve(e as ServiceError),
      );
    });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
  });

  test('health: false leaves the service out (UNIMPLEMENTED) and out of reflection', async () => {
    const { client } = await serve({ health: false });
    expect((await checkError(client, '')).code).toBe(status.UNIMPLEMENTED);
    const [list] = await reflect(client, [{ list_services: '' }]);
    expect(list?.list_services_response?.service.map((s) => s.name)).toEqual(
      ALL_SERVICES.filter((s) => s !== 'grpc.health.v1.Health'),
    );
    const [health] = await reflect(client, [{ file_by_filename: 'grpc/health/v1/health.proto' }]);
    expect(health?.error_response?.error_code).toBe(status.NOT_FOUND);
  });
});

describe('server reflection', () => {
  test.each(['v1', 'v1alpha'] as const)(
    '%s: list_services names every served service',
    async (v) => {
      const { client } = await serve();
      const [r] = await reflect(client, [{ host: 'agent.example', list_services: '*' }], v);
      expect(r?.list_services_response?.service.map((s) => s.name)).toEqual(ALL_SERVICES);
      expect(r?.valid_host).toBe('agent.example');
      expect(r?.original_request).toMatchObject({ host: 'agent.example', list_services: '*' });
    },
  );

  test('file_containing_symbol: services, methods, messages, nested enums and values, with or without a leading dot', async () => {
    const { client } = await serve();
    const answers = await reflect(client, [
      { file_containing_symbol: AGENT },
      { file_containing_symbol: `${AGENT}.ProcessEvent` },
      { file_containing_symbol: '.zentinel.agent.v2.ProxyToAgent' },
      { file_containing_symbol: 'grpc.health.v1.HealthCheckResponse.ServingStatus' },
      { file_containing_symbol: 'grpc.health.v1.HealthCheckResponse.NOT_SERVING' },
      { file_containing_symbol: 'grpc.reflection.v1alpha.ServerReflection' },
    ]);
    const agent = onlyFile(answers[0]);
    expect(agent.name).toBe('zentinel/agent/v2/agent_v2.proto');
    expect(agent.package).toBe('zentinel.agent.v2');
    expect(agent.service.map((s) => s.name)).toEqual(['AgentServiceV2']);
    expect(
      agent.service[0]?.method.map((m) => [m.name, !!m.clientStreaming, !!m.serverStreaming]),
    ).toEqual([
      ['ProcessStream', true, true],
      ['ControlStream', true, true],
      ['ProcessEvent', false, false],
    ]);
    expect(agent.service[0]?.method[0]?.inputType).toBe('.zentinel.agent.v2.ProxyToAgent');
    expect(onlyFile(answers[1]).name).toBe(agent.name);
    expect(onlyFile(answers[2]).messageType.map((m) => m.name)).toContain('ProxyToAgent');
    const health = onlyFile(answers[3]);
    expect(health.name).toBe('grpc/health/v1/health.proto');
    expect(health.service[0]?.method.map((m) => m.name)).toEqual(['Check', 'Watch']);
    expect(onlyFile(answers[4]).name).toBe(health.name);
    const alpha = onlyFile(answers[5]);
    expect(alpha).toMatchObject({
      name: 'grpc/reflection/v1alpha/reflection.proto',
      package: 'grpc.reflection.v1alpha',
    });
    expect(alpha.service[0]?.method.map((m) => m.name)).toEqual(['ServerReflectionInfo']);
  });

  test('the served descriptors build a working protobufjs root (the agent service is usable from reflection alone)', async () => {
    const { client } = await serve();
    const [r] = await reflect(client, [{ file_by_filename: 'zentinel/agent/v2/agent_v2.proto' }]);
    const fd = descriptor.FileDescriptorProto.decode(
      r?.file_descriptor_response?.file_descriptor_proto[0] as Uint8Array,
    );
    const built = (
      protobuf.Root as unknown as { fromDescriptor(d: unknown): protobuf.Root }
    ).fromDescriptor({ file: [fd] });
    const svc = built.lookupService(AGENT);
    expect(Object.keys(svc.methods)).toEqual(['ProcessStream', 'ControlStream', 'ProcessEvent']);
    // (no map field here: protobufjs's fromDescriptor does not turn map entries back into maps)
    const LogMessage = built.lookupType('zentinel.agent.v2.LogMessage');
    const msg = LogMessage.decode(
      LogMessage.encode({ level: 3, message: 'hi', correlation_id: 'c-1' }).finish(),
    );
    expect(LogMessage.toObject(msg)).toMatchObject({
      level: 3,
      message: 'hi',
      correlation_id: 'c-1',
    });
  });

  test('what is not there: NOT_FOUND error responses, and the stream goes on', async () => {
    const { client } = await serve();
    const answers = await reflect(client, [
      { file_containing_symbol: 'no.such.Symbol' },
      { file_by_filename: 'google/protobuf/empty.proto' },
      {
        file_containing_extension: {
          containing_type: 'zentinel.agent.v2.ProxyToAgent',
          extension_number: 1000,
        },
      },
      { all_extension_numbers_of_type: 'zentinel.agent.v2.ProxyToAgent' },
      { all_extension_numbers_of_type: AGENT },
      {},
      { list_services: '' },
    ]);
    expect(answers.map((a) => a.error_response?.error_code)).toEqual([
      status.NOT_FOUND,
      status.NOT_FOUND,
      status.NOT_FOUND,
      undefined,
      status.NOT_FOUND,
      status.INVALID_ARGUMENT,
      undefined,
    ]);
    expect(answers[0]?.error_response?.error_message).toContain('"no.such.Symbol"');
    expect(answers[3]?.all_extension_numbers_response).toMatchObject({
      base_type_name: 'zentinel.agent.v2.ProxyToAgent',
    });
    expect(answers[3]?.all_extension_numbers_response?.extension_number ?? []).toEqual([]);
    expect(answers[6]?.list_services_response?.service).toHaveLength(4);
  });

  test('a malformed request ends the stream with INVALID_ARGUMENT', async () => {
    const { client } = await serve();
    const ended = await new Promise<{ code: number }>((resolve) => {
      const call = client.makeBidiStreamRequest(
        '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      call.on('error', () => {});
      call.on('status', resolve);
      call.write(Buffer.from([0x3a, 0x09, 0x61])); // list_services says 9 bytes, 1 follows
    });
    expect(ended.code).toBe(status.INVALID_ARGUMENT);
  });

  test('close ends an open ServerReflectionInfo stream instead of waiting for it', async () => {
    const { server, client } = await serve();
    const t = reflectionTypes('v1');
    const call = client.makeBidiStreamRequest(
      t.path,
      (m: Record<string, unknown>) =>
        Buffer.from(t.Request.encode(t.Request.fromObject(m)).finish()),
      (b: Buffer) => b,
    );
    const ended = new Promise<{ code: number }>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    const first = new Promise((resolve) => call.once('data', resolve));
    call.write({ list_services: '' });
    await first;
    // the force timer (60 s) is beyond the test's timeout: close must end the stream itself
    await server.close({ drainTimeoutMs: 60_000 });
    expect(await ended).toMatchObject({ code: status.OK });
  });

  test('reflection: false leaves both versions out (UNIMPLEMENTED); health still answers', async () => {
    const { client } = await serve({ reflection: false });
    for (const v of ['v1', 'v1alpha'] as const) {
      await expect(reflect(client, [{ list_services: '' }], v)).rejects.toMatchObject({
        code: status.UNIMPLEMENTED,
      });
    }
    expect(await check(client, '')).toBe('SERVING');
  });
});

describe.skipIf(!hasOpenssl())('over TLS', () => {
  test('health Check, Watch and reflection list over grpcs', async () => {
    const c = testCerts();
    const { server, client } = await serve(
      { tls: { cert: c.serverCert, key: c.serverKey } },
      credentials.createSsl(Buffer.from(c.caCert)),
    );
    expect(await check(client, AGENT)).toBe('SERVING');
    const w = watch(client, '');
    await w.count(1);
    server.reportHealth('unhealthy');
    await w.count(2);
    expect(w.seen).toEqual(['SERVING', 'NOT_SERVING']);
    const [r] = await reflect(client, [{ list_services: '' }]);
    expect(r?.list_services_response?.service.map((s) => s.name)).toEqual(ALL_SERVICES);
    w.cancel();
  });
});

// Another gRPC and protobuf implementation (Python grpcio on gRPC C-core) as a reflection
// client that knows no .proto, as grpcurl works: see test/interop/reflection_client.py.
// grpcurl and grpc_health_probe are Go programs with no Debian package; python3-grpcio is one.
const python = ['python3', '/usr/bin/python3'].find((exe) => {
  try {
    execFileSync(exe, ['-c', 'import grpc, google.protobuf'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
});
if (!python) {
  console.warn(
    'health-reflection.test: no python3 with grpcio and protobuf (Debian: apt-get install python3-grpcio), interop test skipped',
  );
}
const clientScript = fileURLToPath(new URL('./interop/reflection_client.py', import.meta.url));

function pythonClient(port: number, ca?: string): Promise<Record<string, unknown>> {
  const args = [clientScript, `localhost:${port}`];
  const dir = ca === undefined ? undefined : mkdtempSync(join(tmpdir(), 'picket-ca-'));
  if (dir) {
    writeFileSync(join(dir, 'ca.pem'), ca as string);
    args.push(join(dir, 'ca.pem'));
  }
  return new Promise((resolve, reject) => {
    execFile(python as string, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (err) reject(new Error(`reflection_client.py failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

describe.skipIf(!python)(
  'interop: Python grpcio reflection client (python3-grpcio installed)',
  () => {
    const expected = (health: string) => ({
      services: ALL_SERVICES,
      files: [
        'grpc/health/v1/health.proto',
        'grpc/reflection/v1/reflection.proto',
        'grpc/reflection/v1alpha/reflection.proto',
        'zentinel/agent/v2/agent_v2.proto',
      ],
      missing: status.NOT_FOUND,
      describe: {
        ProcessStream: ['zentinel.agent.v2.ProxyToAgent', true, true],
        ControlStream: ['zentinel.agent.v2.AgentControl', true, true],
        ProcessEvent: ['zentinel.agent.v2.ProxyToAgent', false, false],
      },
      health: { '': health, [AGENT]: health },
      unknown: 'NOT_FOUND',
      watch: health,
      reply: 'pong',
      pongSequence: 7,
    });

    test('plaintext: list, describe, Check, Watch and a ping built from reflection alone', async () => {
      const port = await servePort({});
      expect(await pythonClient(port.port)).toEqual(expected('SERVING'));
      port.server.reportHealth('unhealthy');
      expect(await pythonClient(port.port)).toEqual(expected('NOT_SERVING'));
    });

    test.skipIf(!hasOpenssl())('TLS: the same over grpcs', async () => {
      const c = testCerts();
      const port = await servePort({ tls: { cert: c.serverCert, key: c.serverKey } });
      expect(await pythonClient(port.port, c.caCert)).toEqual(expected('SERVING'));
    });
  },
);

// The generated descriptors are what protoc itself produces from the same .proto files,
// byte for byte. protoc (Debian: protobuf-compiler) is optional: without it this is skipped.
const protoc = (() => {
  try {
    execFileSync('protoc', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();
describe.skipIf(!protoc)('descriptors (protoc installed)', () => {
  test.each(generatedFiles.map((f) => [f.name, f.descriptor] as const))(
    '%s is byte-identical to protoc --descriptor_set_out',
    (name, base64) => {
      const dir = mkdtempSync(join(tmpdir(), 'picket-protoc-'));
      try {
        const out = join(dir, 'set.bin');
        execFileSync('protoc', [`-I${protoDir}`, `--descriptor_set_out=${out}`, name]);
        // a FileDescriptorSet with this one file: field 1, length-delimited
        const ours = protobuf.Writer.create()
          .uint32(0x0a)
          .bytes(Buffer.from(base64, 'base64'))
          .finish();
        expect(Buffer.from(ours).equals(readFileSync(out))).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
if (!protoc) {
  console.warn('health-reflection.test: protoc not found, descriptor comparison skipped');
}
