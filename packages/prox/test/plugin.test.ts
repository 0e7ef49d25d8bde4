/**
 * A real plugin child process driven over its real stdio and hook socket by a test playing
 * prox as the spec describes: every hook, Go-style and JS-style integers, hostile input.
 */
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { encode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeAuthorizeResult,
  decodeConnResult,
  decodeResponseModResult,
  encodeConfigureLine,
  encodeConnInfo,
  encodeDisconnectInfo,
  encodeEnvelope,
  encodeProxFrame,
  encodeRequestInfo,
  encodeResponsePair,
  HookType,
  MAX_PROX_FRAME,
  type RequestInfoInput,
} from '../src/index.js';
import { HookConn, PluginChild } from './prox-peer.js';

const hex = (s: string): Uint8Array => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const cat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);

const request = (info: RequestInfoInput): Uint8Array =>
  encodeProxFrame(encodeEnvelope(HookType.Request, encodeRequestInfo(info)));

/** A frame as prox's Go encoder writes it: `t` as `cc 0N`, `d` as bin. */
function goFrame(hook: number, inner: Uint8Array): Uint8Array {
  const len = inner.length;
  const binHeader =
    len <= 0xff ? Uint8Array.of(0xc4, len) : Uint8Array.of(0xc5, len >> 8, len & 0xff);
  return encodeProxFrame(
    cat(hex(`82 a174 cc${hook.toString(16).padStart(2, '0')} a164`), binHeader, inner),
  );
}

/** A Go-written RequestInfo: `cl` int64 as `d3` + 8 bytes, nil `h` as c0, unknown `zz` key. */
function goRequestInfo(path: string, cl: number): Uint8Array {
  const clBytes = Buffer.alloc(8);
  clBytes.writeBigInt64BE(BigInt(cl));
  return cat(
    hex('88'),
    encode('r'),
    encode('gw:0'),
    encode('m'),
    encode('POST'),
    encode('p'),
    encode(path),
    encode('d'),
    encode('a.example'),
    encode('a'),
    encode('10.1.2.3:4567'),
    encode('cl'),
    hex('d3'),
    clBytes,
    encode('h'),
    hex('c0'),
    encode('zz'),
    hex('cb 3ff0000000000000'),
  );
}

describe('a prox plugin child process (native hooks)', () => {
  let p: PluginChild;
  let socket: string;

  beforeAll(async () => {
    p = new PluginChild(['native']);
    const ready = await p.configure(
      encodeConfigureLine({ routeId: 'gw:0', match: { domain: 'a.example', path: '/' } }),
    );
    expect(ready.hooks).toEqual(['on_request', 'on_response', 'on_connect', 'on_disconnect']);
    socket = ready.socket;
  });
  afterAll(() => p.kill());

  it('stdout carries only protocol lines: ack, ready, then the pushes of onConfigure', async () => {
    await p.until(() => p.lines.length >= 5, 'the configure pushes');
    expect(p.raw[0]).toBe('{"result":"ok"}');
    expect(p.lines.slice(2, 5)).toEqual([
      { kind: 'set_targets', routeId: 'gw:0', action: '', targets: ['10.0.0.1:80'], groups: {} },
      {
        kind: 'set_targets',
        routeId: '',
        action: 'api',
        targets: [],
        groups: { eu: ['10.0.1.1:80'], us: ['10.0.2.1:80'] },
      },
      {
        kind: 'set_speed',
        routeId: '*',
        action: '',
        downloadMbps: 5,
        uploadMbps: 0,
        groupKey: 'user',
      },
    ]);
    for (const raw of p.raw) expect(() => JSON.parse(raw)).not.toThrow();
  });

  it('the socket lives in a private 0700 directory and is 0600', async () => {
    const dir = await fsp.stat(dirname(socket));
    expect(dir.mode & 0o777).toBe(0o700);
    const s = await fsp.lstat(socket);
    expect(s.isSocket()).toBe(true);
    expect(s.mode & 0o077).toBe(0);
  });

  it('on_request: allow with headers, from a Go-style frame (cc t, d3 cl, nil h, unknown key)', async () => {
    const c = await HookConn.open(socket);
    const answer = decodeAuthorizeResult(await c.call(goFrame(1, goRequestInfo('/a', -1))));
    expect(answer.allow).toBe(true);
    expect(answer.headers).toMatchObject({
      'X-Path': '/a',
      'X-Route': 'gw:0',
      'X-Cl': '-1',
      'X-Body': '-',
    });
    c.close();
  });

  it('on_request: allow from a JS-style frame, with the body, headers and a speed limit', async () => {
    const c = await HookConn.open(socket);
    const frame = request({
      routeId: 'gw:0',
      method: 'POST',
      path: '/limited',
      contentLength: 5,
      headers: { 'User-Agent': 'curl/8' },
      body: Buffer.from('hello'),
    });
    const bytes = await c.call(frame);
    const answer = decodeAuthorizeResult(bytes);
    expect(answer).toMatchObject({
      allow: true,
      headers: { 'X-Body': 'hello', 'X-Cl': '5', 'X-Ua': 'curl/8' },
      speedLimit: { downloadMbps: 50, uploadMbps: 1.5, groupKey: '' },
    });
    // dl/ul are float64 on the wire, as Go writes them.
    expect(toHex(bytes)).toContain(`a2646ccb${toHex(hex('4049000000000000'))}`);
    c.close();
  });

  it('on_request: deny is the spec vector byte for byte; a throwing or bad hook is deny 500', async () => {
    const c = await HookConn.open(socket);
    expect(toHex(await c.call(request({ path: '/deny' })))).toBe(
      '83a26f6bc2a173cd0191a162ac556e617574686f72697a6564',
    );
    for (const path of ['/throw', '/bad-answer']) {
      const answer = decodeAuthorizeResult(await c.call(request({ path })));
      expect(answer).toMatchObject({ allow: false, status: 500, body: 'Agent handler error' });
    }
    c.close();
  });

  it('on_response: status and headers changed, a header removed', async () => {
    const c = await HookConn.open(socket);
    const frame = encodeProxFrame(
      encodeEnvelope(
        HookType.Response,
        encodeResponsePair({
          req: { path: '/a' },
          resp: { status: 500, headers: { Server: 'x' } },
        }),
      ),
    );
    expect(decodeResponseModResult(await c.call(frame))).toEqual({
      status: 503,
      headers: { 'X-Up': '500' },
      remove: ['Server'],
    });
    c.close();
  });

  it('on_connect: the spec vector frame (JS and Go style) is allowed, a blocked domain denied', async () => {
    const c = await HookConn.open(socket);
    const inner = '83a172a467773a30a164ad612e6578616d706c652e636f6da161a9312e322e332e343a35';
    expect(toHex(await c.call(hex(`0000002c 82 a174 03 a164 c4 24 ${inner}`)))).toBe('81a26f6bc3');
    expect(toHex(await c.call(hex(`0000002d 82 a174 cc03 a164 c4 24 ${inner}`)))).toBe(
      '81a26f6bc3',
    );
    const blocked = encodeConnInfo({
      routeId: 'gw:0',
      domain: 'blocked.example',
      remoteAddr: '1.1.1.1:1',
    });
    expect(decodeConnResult(await c.call(goFrame(3, blocked))).allow).toBe(false);
    c.close();
  });

  it('on_disconnect: no reply, and the same connection serves the next call', async () => {
    const c = await HookConn.open(socket);
    const rx = 2 ** 33 + 1;
    // Go writes rx/tx/ms as d3 + 8 bytes.
    const inner = cat(
      hex('85'),
      encode('r'),
      encode('gw:0'),
      encode('a'),
      encode('1.2.3.4:5'),
      encode('rx'),
      hex('d3'),
      hex(rx.toString(16).padStart(16, '0')),
      encode('tx'),
      hex('d3 0000000000000007'),
      encode('ms'),
      hex('d3 0000000000000064'),
    );
    const from = p.lines.length;
    c.write(goFrame(4, inner));
    c.write(
      encodeProxFrame(encodeEnvelope(4, encodeDisconnectInfo({ routeId: 'js', bytesRx: 1 }))),
    );
    // The next answer on this connection is the request's: nothing was written for on_disconnect.
    const answer = decodeAuthorizeResult(await c.call(request({ path: '/after' })));
    expect(answer.headers['X-Path']).toBe('/after');
    expect(c.frames).toHaveLength(1);
    await p.until(() => p.lines.length >= from + 2, 'two disconnect log pushes');
    expect(p.lines.slice(from, from + 2)).toEqual([
      {
        kind: 'log',
        level: 'info',
        message: 'disconnect',
        args: ['route', 'gw:0', 'rx', rx, 'tx', 7, 'ms', 100],
      },
      {
        kind: 'log',
        level: 'info',
        message: 'disconnect',
        args: ['route', 'js', 'rx', 1, 'tx', 0, 'ms', 0],
      },
    ]);
    c.close();
  });

  it('a peer that pipelines 3000 calls before reading gets every answer, in order', async () => {
    const c = await HookConn.open(socket);
    c.socket.pause();
    const frames = Array.from({ length: 3000 }, (_, i) =>
      request({ path: `/p${i}`, query: 'x'.repeat(200) }),
    );
    c.write(Buffer.concat(frames));
    await new Promise((r) => setTimeout(r, 300));
    c.socket.resume();
    await c.waitFor(() => c.frames.length === 3000, 60_000);
    expect(c.frames.map((f) => decodeAuthorizeResult(f).headers['X-Path'])).toEqual(
      frames.map((_, i) => `/p${i}`),
    );
    c.close();
  });

  it('calls on several connections run concurrently', async () => {
    const conns = await Promise.all([1, 2, 3].map(() => HookConn.open(socket)));
    const answers = await Promise.all(
      conns.map((c, i) => c.call(request({ path: i === 0 ? '/slow' : `/p${i}` }))),
    );
    expect(answers.map((a) => decodeAuthorizeResult(a).allow)).toEqual([true, true, true]);
    for (const c of conns) c.close();
  });

  describe('hostile input: never an allow, and the plugin keeps serving', () => {
    let bystander: HookConn;
    beforeAll(async () => {
      bystander = await HookConn.open(socket);
    });
    const stillServes = async (): Promise<void> => {
      const answer = decodeAuthorizeResult(await bystander.call(request({ path: '/alive' })));
      expect(answer.headers['X-Path']).toBe('/alive');
      const fresh = await HookConn.open(socket);
      expect(decodeAuthorizeResult(await fresh.call(request({ path: '/fresh' }))).allow).toBe(true);
      fresh.close();
    };

    it('bad envelope (a string, a string t, garbage): the connection is closed with no answer', async () => {
      for (const payload of ['a3616263', '82 a174 a3616263 a164 c400', 'c1', '81']) {
        const c = await HookConn.open(socket);
        c.write(encodeProxFrame(hex(payload)));
        expect(await c.closedWithin(20_000)).toBe(true);
        expect(c.frames).toEqual([]);
      }
      await stillServes();
    });

    it('unknown hook byte (9, and 300 that wraps to 44): no reply, the connection stays usable', async () => {
      const c = await HookConn.open(socket);
      c.write(encodeProxFrame(hex('82 a174 09 a164 c401 80')));
      c.write(encodeProxFrame(hex('82 a174 cd012c a164 c401 80')));
      const answer = decodeAuthorizeResult(await c.call(request({ path: '/next' })));
      expect(answer.headers['X-Path']).toBe('/next');
      expect(c.frames).toHaveLength(1);
      expect(c.closed).toBe(false);
      c.close();
      await stillServes();
    });

    it('oversize length (1 MiB + 1) and zero length: closed before any payload', async () => {
      for (const header of ['00100001', 'ffffffff', '00000000']) {
        const c = await HookConn.open(socket);
        c.write(hex(header));
        expect(await c.closedWithin(20_000)).toBe(true);
        expect(c.frames).toEqual([]);
      }
      await stillServes();
    });

    it('a frame of exactly 1 MiB is legal and answered', async () => {
      const inner = encodeRequestInfo({ path: '/big' });
      const head = encodeEnvelope(HookType.Request, inner);
      // Pad the envelope with an unknown key so the payload is exactly 1<<20 bytes.
      // key "x" (a1 78) + bin32 header (c6 + 4 length bytes)
      const padLength = MAX_PROX_FRAME - head.length - 7;
      const padded = cat(
        Uint8Array.of(0x83),
        head.subarray(1),
        hex('a178 c6'),
        hex(padLength.toString(16).padStart(8, '0')),
        new Uint8Array(padLength),
      );
      expect(padded.length).toBe(MAX_PROX_FRAME);
      const c = await HookConn.open(socket);
      const answer = decodeAuthorizeResult(await c.call(encodeProxFrame(padded)));
      expect(answer.headers['X-Path']).toBe('/big');
      c.close();
    });

    it('truncated frame (the peer stops mid-frame): closed, nothing answered', async () => {
      const c = await HookConn.open(socket);
      const frame = request({ path: '/cut' });
      c.socket.end(frame.subarray(0, frame.length - 3));
      expect(await c.closedWithin(20_000)).toBe(true);
      expect(c.frames).toEqual([]);
      await stillServes();
    });

    it('undecodable payloads: deny 500 "plugin error" / ok:false / {} — and the connection lives on', async () => {
      const c = await HookConn.open(socket);
      const garbage = hex('81 a16d 05'); // m as an integer
      expect(decodeAuthorizeResult(await c.call(goFrame(1, garbage)))).toMatchObject({
        allow: false,
        status: 500,
        body: 'plugin error',
      });
      expect(toHex(await c.call(goFrame(3, hex('c1'))))).toBe('81a26f6bc2');
      expect(toHex(await c.call(goFrame(2, hex('91 a3616263'))))).toBe('80');
      expect(decodeAuthorizeResult(await c.call(goFrame(1, new Uint8Array(0)))).allow).toBe(false);
      expect(c.closed).toBe(false);
      c.close();
      await stillServes();
    });

    afterAll(() => bystander.close());
  });
});

describe('the control plane', () => {
  it('configure twice → two ok + ready; configure without params → neither; unknown lines skipped', async () => {
    const p = new PluginChild(['native']);
    try {
      const first = await p.configure(encodeConfigureLine({ routeId: 'a:0' }));
      await p.until(() => p.lines.length >= 5, 'pushes of the first configure');
      const before = p.lines.length;
      p.send('{"method":"configure"}\n');
      p.send('not json\n');
      p.send('{"method":"shutdown","params":{}}\n');
      p.send('\n');
      const second = await p.configure(encodeConfigureLine({ routeId: 'b:0' }));
      expect(p.raw[before]).toBe('{"result":"ok"}');
      expect(second).toEqual(first);
      expect(p.stderr).toMatch(/configure without params/);
    } finally {
      p.kill();
    }
  });

  it('peer data reaches stderr escaped: no forged log line', async () => {
    const p = new PluginChild(['native']);
    try {
      const { socket } = await p.configure(encodeConfigureLine({ routeId: 'a:0' }));
      p.send(`${JSON.stringify({ method: 'evil\n[FAKE] ok\u001b[31m' })}\n`);
      const c = await HookConn.open(socket);
      // an undecodable on_request whose bad field name carries a line break and ESC
      const inner = Buffer.concat([hex('81'), encode('x\n[FAKE] ok\u001b'), hex('c1')]);
      expect(decodeAuthorizeResult(await c.call(goFrame(1, inner))).allow).toBe(false);
      await p.until(
        () => /evil/.test(p.stderr) && /undecodable on_request/.test(p.stderr),
        'both warnings',
      );
      expect(p.stderr.match(/\[FAKE\]/g)?.length).toBe(2); // both made it, escaped
      expect(p.stderr).not.toMatch(/\n\[FAKE\]/);
      expect(p.stderr).not.toContain('\u001b');
      c.close();
    } finally {
      p.kill();
    }
  });

  it('a hook the plugin did not declare gets no reply (never an allow); the connection stays usable', async () => {
    const p = new PluginChild(['request-only']);
    try {
      const ready = await p.configure(encodeConfigureLine({ routeId: 'a:0' }));
      expect(ready.hooks).toEqual(['on_request']);
      const c = await HookConn.open(ready.socket);
      c.write(goFrame(3, encodeConnInfo({ domain: 'a.example' })));
      c.write(goFrame(2, encodeResponsePair({ resp: { status: 200 } })));
      c.write(goFrame(4, encodeDisconnectInfo({ routeId: 'a:0' })));
      const answer = decodeAuthorizeResult(await c.call(request({ path: '/x' })));
      expect(answer.headers).toEqual({ 'X-Only': 'request' });
      expect(c.frames).toHaveLength(1);
      c.close();
    } finally {
      p.kill();
    }
  });

  it('a plugin without hooks opens no socket and never sends ready: ack, then its pushes', async () => {
    const p = new PluginChild(['targets']);
    try {
      p.send(encodeConfigureLine({ routeId: 'svc:1' }));
      await p.until(() => p.lines.length >= 2, 'ack and push');
      expect(p.raw.slice(0, 2)).toEqual([
        '{"result":"ok"}',
        '{"method":"set_targets","params":{"route_id":"svc:1","targets":["10.9.9.9:80"]}}',
      ]);
      p.child.stdin?.end();
      expect(await p.exited).toBe(0);
      expect(p.lines.some((l) => l.kind === 'ready')).toBe(false);
    } finally {
      p.kill();
    }
  });

  it('stdin EOF → the plugin removes its socket and directory and exits 0', async () => {
    const p = new PluginChild(['native']);
    try {
      const { socket } = await p.configure(encodeConfigureLine({ routeId: 'a:0' }));
      const c = await HookConn.open(socket);
      expect(decodeAuthorizeResult(await c.call(request({ path: '/x' }))).allow).toBe(true);
      p.child.stdin?.end();
      expect(await p.exited).toBe(0);
      await expect(fsp.lstat(socket)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(fsp.lstat(dirname(socket))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await c.closedWithin(20_000)).toBe(true);
    } finally {
      p.kill();
    }
  });

  it('SIGTERM also removes the socket before exiting', async () => {
    const p = new PluginChild(['native']);
    try {
      const { socket } = await p.configure(encodeConfigureLine({ routeId: 'a:0' }));
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      await expect(fsp.lstat(dirname(socket))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      p.kill();
    }
  });
});
