import { AgentProtocolError } from '@picket/protocol';
import { describe, expect, it } from 'vitest';
import {
  detectTransport,
  ENDPOINT_FORMS,
  formatEndpoint,
  type ParsedEndpoint,
} from '../src/index.js';

function rejection(endpoint: string): AgentProtocolError {
  try {
    detectTransport(endpoint);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentProtocolError);
    return err as AgentProtocolError;
  }
  throw new Error(`expected ${endpoint} to be refused`);
}

describe('detectTransport: upstream detection cases (spec §5 and §8)', () => {
  it.each([
    ['unix:/var/run/agent.sock', '/var/run/agent.sock'],
    ['unix:agent.sock', 'agent.sock'],
    ['/var/run/agent.sock', '/var/run/agent.sock'],
    ['agent.sock', 'agent.sock'],
  ])('%s ⇒ UDS at %s', (endpoint, path) => {
    expect(detectTransport(endpoint)).toEqual({ kind: 'uds', endpoint, path });
  });

  it.each([
    ['http://localhost:8080', 'localhost:8080', 'http'],
    ['localhost:50051', 'localhost:50051', undefined],
    ['127.0.0.1:8080', '127.0.0.1:8080', undefined],
    ['waf.internal:50051', 'waf.internal:50051', undefined],
  ])('%s ⇒ gRPC plaintext to %s', (endpoint, target, scheme) => {
    const ep = detectTransport(endpoint);
    expect(ep).toMatchObject({ kind: 'grpc', endpoint, target, tls: false });
    expect(ep.kind === 'grpc' && ep.scheme).toBe(scheme ?? undefined);
  });
});

describe('detectTransport: picket grammar', () => {
  const cases: [string, Partial<ParsedEndpoint> & Record<string, unknown>][] = [
    ['/tmp/agent', { kind: 'uds', path: '/tmp/agent' }],
    ['./run/agent', { kind: 'uds', path: './run/agent' }],
    ['../agent.SOCK', { kind: 'uds', path: '../agent.SOCK' }],
    ['unix:///var/run/a.sock', { kind: 'uds', path: '/var/run/a.sock' }],
    ['UNIX:/x.sock', { kind: 'uds', path: '/x.sock' }],
    ['  /padded.sock  ', { kind: 'uds', path: '/padded.sock' }],
    ['http://waf:8080/', { kind: 'grpc', target: 'waf:8080', tls: false }],
    ['http://waf', { kind: 'grpc', target: 'waf:80', tls: false }],
    [
      'grpc://10.0.0.1:50051',
      { kind: 'grpc', target: '10.0.0.1:50051', tls: false, scheme: 'grpc' },
    ],
    ['https://waf.example.com', { kind: 'grpc', target: 'waf.example.com:443', tls: true }],
    ['https://waf.example.com:8443', { kind: 'grpc', target: 'waf.example.com:8443', tls: true }],
    ['grpcs://[::1]:50051', { kind: 'grpc', target: '[::1]:50051', tls: true, scheme: 'grpcs' }],
    ['HTTPS://Waf:1', { kind: 'grpc', target: 'Waf:1', tls: true, scheme: 'https' }],
    ['[::1]:50051', { kind: 'grpc', target: '[::1]:50051', tls: false }],
    [
      'dns:///waf.internal:50051',
      { kind: 'grpc', target: 'dns:///waf.internal:50051', tls: false, scheme: 'dns' },
    ],
    ['dns:waf:1', { kind: 'grpc', target: 'dns:waf:1', scheme: 'dns' }],
    [
      'ipv4:10.0.0.1:50051,10.0.0.2:50051',
      { kind: 'grpc', target: 'ipv4:10.0.0.1:50051,10.0.0.2:50051', scheme: 'ipv4' },
    ],
    ['ipv6:[::1]:50051', { kind: 'grpc', target: 'ipv6:[::1]:50051', scheme: 'ipv6' }],
    [
      'grpc+unix:/run/agent.sock',
      { kind: 'grpc', target: 'unix:/run/agent.sock', tls: false, scheme: 'grpc+unix' },
    ],
    ['v1+unix:/run/legacy.sock', { kind: 'v1', path: '/run/legacy.sock' }],
    ['v1+unix:legacy.sock', { kind: 'v1', path: 'legacy.sock' }],
    [
      'reverse+unix:/run/agents.sock',
      { kind: 'reverse', listen: { transport: 'uds', path: '/run/agents.sock' }, tls: false },
    ],
    [
      'reverse+tcp://0.0.0.0:9090',
      {
        kind: 'reverse',
        listen: { transport: 'tcp', host: '0.0.0.0', port: 9090, address: '0.0.0.0:9090' },
        tls: false,
      },
    ],
    [
      'reverse+tls://127.0.0.1:0',
      {
        kind: 'reverse',
        listen: { transport: 'tcp', host: '127.0.0.1', port: 0, address: '127.0.0.1:0' },
        tls: true,
      },
    ],
    [
      'reverse+tcp://[::1]:9090',
      {
        kind: 'reverse',
        listen: { transport: 'tcp', host: '::1', port: 9090, address: '[::1]:9090' },
        tls: false,
      },
    ],
  ];
  it.each(cases)('%s', (endpoint, expected) => {
    expect(detectTransport(endpoint)).toMatchObject({ ...expected, endpoint });
  });

  it('formats endpoints canonically, and the canonical form parses to the same thing', () => {
    for (const [endpoint] of cases) {
      const ep = detectTransport(endpoint);
      const again = detectTransport(formatEndpoint(ep));
      const { endpoint: _a, ...x } = ep;
      const { endpoint: _b, ...y } = again;
      if (
        ep.kind === 'grpc' &&
        ep.scheme !== 'dns' &&
        ep.scheme !== 'ipv4' &&
        ep.scheme !== 'ipv6'
      ) {
        // http:// and https:// come back as grpc:// and grpcs://
        expect(y).toMatchObject({ kind: 'grpc', target: ep.target, tls: ep.tls });
      } else {
        expect(y).toEqual(x);
      }
    }
  });
});

describe('detectTransport: refusals', () => {
  it.each([
    ['ftp://x', 'unknown scheme "ftp://"'],
    ['grpc+quic://agent:443', 'unknown scheme "grpc+quic://"'],
    ['ws://agent:80', 'unknown scheme "ws://"'],
    ['mailto:agent', 'unknown scheme "mailto:"'],
    ['', 'it is empty'],
    ['   ', 'it is empty'],
    ['localhost', 'has no port'],
    ['http://waf:8080/v1/agent', 'without path'],
    ['http://user@waf:8080', 'without path, query or user'],
    ['grpc://waf', 'needs a port'],
    ['localhost:99999', 'out of range'],
    ['reverse+tcp://0.0.0.0', 'needs host:port'],
    ['reverse+unix:', 'needs a socket path'],
    ['unix:', 'needs a socket path'],
    ['unix://relative', 'absolute path'],
    ['not an endpoint', 'neither a socket path'],
  ])('%s ⇒ INVALID_ARGUMENT (%s)', (endpoint, problem) => {
    const e = rejection(endpoint);
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toContain(problem);
    expect(e.message).toContain(JSON.stringify(endpoint));
  });

  it('lists every accepted form in the error', () => {
    const e = rejection('ftp://x');
    expect(e.message).toContain('accepted endpoint forms:');
    for (const [form] of ENDPOINT_FORMS) expect(e.message).toContain(form);
  });

  it('refuses non-strings', () => {
    expect(rejection(42 as unknown as string).code).toBe('INVALID_ARGUMENT');
  });
});
