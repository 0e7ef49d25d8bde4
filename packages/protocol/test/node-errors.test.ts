import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentProtocolError, ErrorCode } from '../src/index.js';
import {
  describeNodeError,
  MAX_SOCKET_PATH_BYTES,
  nodeErrorCode,
  socketError,
  tlsVerifyText,
} from '../src/internal/index.js';

const dir = mkdtempSync(join(tmpdir(), 'picket-node-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The error a real socket reports. */
function failure(open: () => net.Socket, ready = 'connect'): Promise<Error> {
  return new Promise((resolve, reject) => {
    const socket = open();
    socket.once('error', (err) => {
      socket.destroy();
      resolve(err);
    });
    socket.once(ready, () => reject(new Error('connected')));
  });
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('socketError (the one Node-error mapper)', () => {
  it('a missing socket file: CONNECTION_FAILED naming the endpoint, never sent, cause kept', async () => {
    const path = join(dir, 'nobody.sock');
    const err = await failure(() => net.createConnection({ path }));
    const e = socketError(err, 'connect', `unix:${path}`, { who: 'agent "waf"' });
    expect(e).toBeInstanceOf(AgentProtocolError);
    expect(e.code).toBe(ErrorCode.ConnectionFailed);
    expect(e.message).toBe(
      `agent "waf": cannot connect to unix:${path}: no such file or directory (ENOENT)`,
    );
    expect(e.sent).toBe(false);
    expect(e.cause).toBe(err);
  });

  it('a closed port: connection refused', async () => {
    const port = await closedPort();
    const err = await failure(() => net.createConnection({ host: '127.0.0.1', port }));
    const e = socketError(err, 'connect', `tcp://127.0.0.1:${port}`);
    expect(e.message).toBe(
      `cannot connect to tcp://127.0.0.1:${port}: connection refused (is anything listening there?) (ECONNREFUSED)`,
    );
  });

  it('a socket path past sun_path: says so instead of Node’s misleading ENOENT', async () => {
    const path = join(dir, 'x'.repeat(MAX_SOCKET_PATH_BYTES + 10));
    const err = await failure(() => net.createConnection({ path }));
    expect(nodeErrorCode(err)).toMatch(/^(ENOENT|ENAMETOOLONG|EINVAL)$/);
    const e = socketError(err, 'connect', `unix:${path}`);
    expect(e.message).toContain(`the socket path is ${Buffer.byteLength(path)} bytes, longer than`);
  });

  it('a busy port on listen: CONNECTION_FAILED, address already in use', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const { port } = busy.address() as net.AddressInfo;
    const second = net.createServer();
    const err = await new Promise<Error>((resolve) => {
      second.once('error', resolve);
      second.listen(port, '127.0.0.1');
    });
    await new Promise<void>((r) => busy.close(() => r()));
    const e = socketError(err, 'listen', `127.0.0.1:${port}`);
    expect(e.code).toBe(ErrorCode.ConnectionFailed);
    expect(e.message).toBe(
      `cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`,
    );
    expect('sent' in e).toBe(false);
  });

  it('a reset established connection: CONNECTION_CLOSED with the sent fact given', async () => {
    const server = net.createServer((s) => s.resetAndDestroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const err = await new Promise<Error>((resolve) => {
      const s = net.createConnection({ host: '127.0.0.1', port });
      s.once('error', resolve);
      // keep writing so the reset surfaces as ECONNRESET or EPIPE
      s.once('connect', () => {
        const t = setInterval(() => s.write('x'), 5);
        s.once('close', () => clearInterval(t));
      });
    });
    await new Promise<void>((r) => server.close(() => r()));
    const e = socketError(err, 'io', `tcp://127.0.0.1:${port}`, { sent: true });
    expect(e.code).toBe(ErrorCode.ConnectionClosed);
    expect(e.message).toMatch(
      /^connection to tcp:\/\/127\.0\.0\.1:\d+ failed: (connection reset by the peer \(ECONNRESET\)|broken pipe \(the peer closed the connection\) \(EPIPE\))$/,
    );
    expect(e.sent).toBe(true);
  });

  it('TLS to a plain TCP server: a TLS failure in words', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('HTTP/1.1 400 nope\r\n\r\n'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const err = await failure(
      () => tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }),
      'secureConnect',
    );
    await new Promise<void>((r) => server.close(() => r()));
    const e = socketError(err, 'connect', `tls://127.0.0.1:${port}`);
    expect(e.code).toBe(ErrorCode.ConnectionFailed);
    expect(e.message).toBe(
      `cannot connect to tls://127.0.0.1:${port}: TLS: the peer does not speak TLS (wrong version number) (ERR_SSL_WRONG_VERSION_NUMBER)`,
    );
  });

  it.skipIf(!hasOpenssl())(
    'an untrusted server certificate: its verification code in words',
    async () => {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
        ],
        { stdio: 'ignore' },
      );
      const server = tls.createServer({ key: readFileSync(key), cert: readFileSync(cert) });
      server.on('tlsClientError', () => {});
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address() as net.AddressInfo;
      const err = await failure(
        () => tls.connect({ host: '127.0.0.1', port, servername: 'localhost' }),
        'secureConnect',
      );
      await new Promise<void>((r) => server.close(() => r()));
      const e = socketError(err, 'connect', `tls://127.0.0.1:${port}`);
      expect(e.message).toBe(
        `cannot connect to tls://127.0.0.1:${port}: TLS: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)`,
      );
    },
  );

  it('returns an AgentProtocolError as is; unknown codes keep Node’s message', () => {
    const own = new AgentProtocolError(ErrorCode.Timeout, 'slow');
    expect(socketError(own, 'connect', 'unix:/x')).toBe(own);
    const odd = Object.assign(new Error('something odd'), { code: 'EWEIRD' });
    expect(describeNodeError(odd)).toBe('something odd (EWEIRD)');
    expect(describeNodeError(new Error('plain'))).toBe('plain');
    const wrapped = new Error('outer', {
      cause: Object.assign(new Error('in'), { code: 'EPIPE' }),
    });
    expect(nodeErrorCode(wrapped)).toBe('EPIPE');
    expect(tlsVerifyText('CERT_HAS_EXPIRED')).toBe('certificate has expired');
    expect(tlsVerifyText('NOPE')).toBeUndefined();
  });
});
