/**
 * Typed msgpack encoders and decoders of prox's hook payloads. Decoders are as lenient as
 * Go's (see msgpack.ts): every integer width, nil and absent keys as zero values, unknown keys
 * skipped, trailing bytes ignored. Encoders are strict: they check every field they are given
 * and write keys in Go's field order, omitting what Go's `omitempty` omits.
 */
import { AgentProtocolError, ErrorCode } from '@picket/protocol';
import { MsgpackReader, MsgpackWriter } from './msgpack.js';
import type {
  AuthorizeResult,
  AuthorizeResultInput,
  ConnInfo,
  ConnInfoInput,
  ConnResult,
  ConnResultInput,
  DisconnectInfo,
  DisconnectInfoInput,
  Envelope,
  RequestInfo,
  RequestInfoInput,
  ResponseModResult,
  ResponseModResultInput,
  ResponsePair,
  ResponsePairInput,
  SpeedLimit,
  UpstreamResponseInfo,
} from './types.js';

// ------------------------------------------------------------------ decoding

type Fields = Record<string, (r: MsgpackReader) => void>;

function decodeWith<T>(bytes: Uint8Array, what: string, init: T, fields: (o: T) => Fields): T {
  if (bytes.length === 0) {
    throw new AgentProtocolError(ErrorCode.InvalidMessage, `${what}: empty payload`);
  }
  new MsgpackReader(bytes).struct(what, fields(init));
  return init;
}

function emptyRequestInfo(): RequestInfo {
  return {
    routeId: '',
    method: '',
    path: '',
    query: '',
    domain: '',
    host: '',
    proto: '',
    remoteAddr: '',
    contentLength: 0,
    headers: {},
    body: undefined,
    matchDomain: '',
    matchGlob: '',
    matchPath: '',
    vars: {},
    target: '',
  };
}

/** RequestInfo's readers, in Go field order (the order of a positional array). */
function requestInfoFields(o: RequestInfo, w: string): Fields {
  return {
    r: (r) => (o.routeId = r.string(`${w}.r`)),
    m: (r) => (o.method = r.string(`${w}.m`)),
    p: (r) => (o.path = r.string(`${w}.p`)),
    q: (r) => (o.query = r.string(`${w}.q`)),
    d: (r) => (o.domain = r.string(`${w}.d`)),
    ho: (r) => (o.host = r.string(`${w}.ho`)),
    pr: (r) => (o.proto = r.string(`${w}.pr`)),
    a: (r) => (o.remoteAddr = r.string(`${w}.a`)),
    cl: (r) => (o.contentLength = r.int(`${w}.cl`)),
    h: (r) => (o.headers = r.stringMap(`${w}.h`)),
    bd: (r) => (o.body = r.bytesOrNil(`${w}.bd`)),
    md: (r) => (o.matchDomain = r.string(`${w}.md`)),
    mg: (r) => (o.matchGlob = r.string(`${w}.mg`)),
    mp: (r) => (o.matchPath = r.string(`${w}.mp`)),
    v: (r) => (o.vars = r.stringMap(`${w}.v`)),
    tg: (r) => (o.target = r.string(`${w}.tg`)),
  };
}

/** Decodes the envelope `{t, d}` (or Go's positional `[t, d]`; nil reads as hook 0, no data). */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  return decodeWith<Envelope>(bytes, 'envelope', { hook: 0, data: new Uint8Array(0) }, (o) => ({
    t: (r) => (o.hook = r.uint8('envelope.t')),
    d: (r) => (o.data = r.bytesOrNil('envelope.d') ?? new Uint8Array(0)),
  }));
}

/** Decodes an `on_request` payload. */
export function decodeRequestInfo(bytes: Uint8Array): RequestInfo {
  return decodeWith(bytes, 'RequestInfo', emptyRequestInfo(), (o) =>
    requestInfoFields(o, 'RequestInfo'),
  );
}

/** Decodes an `on_request` answer; a missing `ok` reads as deny, as in Go. */
export function decodeAuthorizeResult(bytes: Uint8Array): AuthorizeResult {
  const w = 'AuthorizeResult';
  const init: AuthorizeResult = {
    allow: false,
    drop: false,
    fallback: false,
    status: 0,
    body: '',
    headers: {},
    speedLimit: undefined,
    cleanQuery: false,
    rewritePath: '',
  };
  return decodeWith(bytes, w, init, (o) => ({
    ok: (r) => (o.allow = r.bool(`${w}.ok`)),
    dr: (r) => (o.drop = r.bool(`${w}.dr`)),
    fb: (r) => (o.fallback = r.bool(`${w}.fb`)),
    s: (r) => (o.status = r.int(`${w}.s`)),
    b: (r) => (o.body = r.string(`${w}.b`)),
    h: (r) => (o.headers = r.stringMap(`${w}.h`)),
    sp: (r) => {
      if (r.nil(`${w}.sp`)) {
        o.speedLimit = undefined;
        return;
      }
      const sp: SpeedLimit = { downloadMbps: 0, uploadMbps: 0, groupKey: '' };
      r.struct(`${w}.sp`, {
        dl: (x) => (sp.downloadMbps = x.float(`${w}.sp.dl`)),
        ul: (x) => (sp.uploadMbps = x.float(`${w}.sp.ul`)),
        gk: (x) => (sp.groupKey = x.string(`${w}.sp.gk`)),
      });
      o.speedLimit = sp;
    },
    cq: (r) => (o.cleanQuery = r.bool(`${w}.cq`)),
    rp: (r) => (o.rewritePath = r.string(`${w}.rp`)),
  }));
}

/** Decodes an `on_response` payload. */
export function decodeResponsePair(bytes: Uint8Array): ResponsePair {
  const w = 'ResponsePair';
  const init: ResponsePair = { req: emptyRequestInfo(), resp: { status: 0, headers: {} } };
  return decodeWith(bytes, w, init, (o) => ({
    req: (r) => r.struct(`${w}.req`, requestInfoFields(o.req, `${w}.req`)),
    resp: (r) =>
      r.struct(`${w}.resp`, {
        s: (x) => (o.resp.status = x.int(`${w}.resp.s`)),
        h: (x) => (o.resp.headers = x.stringMap(`${w}.resp.h`)),
      }),
  }));
}

/** Decodes an `on_response` answer. */
export function decodeResponseModResult(bytes: Uint8Array): ResponseModResult {
  const w = 'ResponseModResult';
  return decodeWith(bytes, w, { status: 0, headers: {}, remove: [] } as ResponseModResult, (o) => ({
    s: (r) => (o.status = r.int(`${w}.s`)),
    h: (r) => (o.headers = r.stringMap(`${w}.h`)),
    rm: (r) => (o.remove = r.stringList(`${w}.rm`)),
  }));
}

/** Decodes an `on_connect` payload. */
export function decodeConnInfo(bytes: Uint8Array): ConnInfo {
  const w = 'ConnInfo';
  const init: ConnInfo = {
    routeId: '',
    domain: '',
    remoteAddr: '',
    matchDomain: '',
    matchGlob: '',
  };
  return decodeWith(bytes, w, init, (o) => ({
    r: (r) => (o.routeId = r.string(`${w}.r`)),
    d: (r) => (o.domain = r.string(`${w}.d`)),
    a: (r) => (o.remoteAddr = r.string(`${w}.a`)),
    md: (r) => (o.matchDomain = r.string(`${w}.md`)),
    mg: (r) => (o.matchGlob = r.string(`${w}.mg`)),
  }));
}

/** Decodes an `on_connect` answer; a missing `ok` reads as deny. */
export function decodeConnResult(bytes: Uint8Array): ConnResult {
  return decodeWith(bytes, 'ConnResult', { allow: false } as ConnResult, (o) => ({
    ok: (r) => (o.allow = r.bool('ConnResult.ok')),
  }));
}

/** Decodes an `on_disconnect` payload (int64 counters in any width). */
export function decodeDisconnectInfo(bytes: Uint8Array): DisconnectInfo {
  const w = 'DisconnectInfo';
  const init: DisconnectInfo = {
    routeId: '',
    target: '',
    remoteAddr: '',
    bytesRx: 0,
    bytesTx: 0,
    durationMs: 0,
  };
  return decodeWith(bytes, w, init, (o) => ({
    r: (r) => (o.routeId = r.string(`${w}.r`)),
    tg: (r) => (o.target = r.string(`${w}.tg`)),
    a: (r) => (o.remoteAddr = r.string(`${w}.a`)),
    rx: (r) => (o.bytesRx = r.int(`${w}.rx`)),
    tx: (r) => (o.bytesTx = r.int(`${w}.tx`)),
    ms: (r) => (o.durationMs = r.int(`${w}.ms`)),
  }));
}

// ------------------------------------------------------------------ encoding

function bad(what: string, expected: string, v: unknown): AgentProtocolError {
  const got =
    v === null
      ? 'null'
      : Array.isArray(v)
        ? 'an array'
        : typeof v === 'number'
          ? String(v)
          : typeof v;
  return new AgentProtocolError(
    ErrorCode.InvalidArgument,
    `${what} must be ${expected}, got ${got}`,
  );
}

/** Checked field values: undefined means "absent" (Go's zero value). */
const check = {
  string(v: unknown, what: string): string | undefined {
    if (v === undefined || typeof v === 'string') return v;
    throw bad(what, 'a string', v);
  },
  bool(v: unknown, what: string): boolean | undefined {
    if (v === undefined || typeof v === 'boolean') return v;
    throw bad(what, 'a boolean', v);
  },
  int(v: unknown, what: string): number | undefined {
    if (v === undefined || Number.isSafeInteger(v)) return v as number | undefined;
    throw bad(what, 'a safe integer', v);
  },
  status(v: unknown, what: string): number | undefined {
    const n = check.int(v, what);
    if (n === undefined || n === 0 || (n >= 100 && n <= 999)) return n;
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${what} must be 0 (unset) or an HTTP status 100-999, got ${n}`,
    );
  },
  float(v: unknown, what: string): number | undefined {
    if (v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
      return v as number | undefined;
    }
    throw bad(what, 'a finite number >= 0', v);
  },
  bytes(v: unknown, what: string): Uint8Array | undefined {
    if (v === undefined || v instanceof Uint8Array) return v;
    throw bad(what, 'a Uint8Array', v);
  },
  map(v: unknown, what: string): Record<string, string> | undefined {
    if (v === undefined) return v;
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
      throw bad(what, 'an object of strings', v);
    }
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'string') throw bad(`${what}[${JSON.stringify(k)}]`, 'a string', x);
    }
    return v as Record<string, string>;
  },
  list(v: unknown, what: string): string[] | undefined {
    if (v === undefined) return v;
    if (!Array.isArray(v)) throw bad(what, 'an array of strings', v);
    v.forEach((x, i) => {
      if (typeof x !== 'string') throw bad(`${what}[${i}]`, 'a string', x);
    });
    return v as string[];
  },
  object(v: unknown, what: string): Record<string, unknown> {
    if (v === undefined) return {};
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(what, 'an object', v);
    return v as Record<string, unknown>;
  },
};

/** One struct field to write: key, whether Go writes it, how. */
type Entry = [key: string, present: boolean, write: (w: MsgpackWriter) => void];

function writeStruct(w: MsgpackWriter, entries: Entry[]): void {
  const present = entries.filter((e) => e[1]);
  w.mapHeader(present.length);
  for (const [key, , write] of present) {
    w.str(key);
    write(w);
  }
}

/** Fields Go writes always write their zero value; `omitempty` ones only when non-zero. */
function requestInfoEntries(input: unknown, what: string): Entry[] {
  const o = check.object(input, what);
  const s = (k: string) => check.string(o[k], `${what}.${k}`) ?? '';
  const routeId = s('routeId');
  const method = s('method');
  const path = s('path');
  const query = s('query');
  const domain = s('domain');
  const host = s('host');
  const proto = s('proto');
  const remoteAddr = s('remoteAddr');
  const cl = check.int(o.contentLength, `${what}.contentLength`) ?? 0;
  const headers = check.map(o.headers, `${what}.headers`) ?? {};
  const body = check.bytes(o.body, `${what}.body`);
  const md = s('matchDomain');
  const mg = s('matchGlob');
  const mp = s('matchPath');
  const vars = check.map(o.vars, `${what}.vars`) ?? {};
  const target = s('target');
  return [
    ['r', true, (w) => w.str(routeId)],
    ['m', true, (w) => w.str(method)],
    ['p', true, (w) => w.str(path)],
    ['q', query !== '', (w) => w.str(query)],
    ['d', true, (w) => w.str(domain)],
    ['ho', host !== '', (w) => w.str(host)],
    ['pr', proto !== '', (w) => w.str(proto)],
    ['a', true, (w) => w.str(remoteAddr)],
    ['cl', cl !== 0, (w) => w.int(cl)],
    ['h', true, (w) => w.stringMap(headers)],
    ['bd', body !== undefined && body.length > 0, (w) => w.bin(body as Uint8Array)],
    ['md', md !== '', (w) => w.str(md)],
    ['mg', mg !== '', (w) => w.str(mg)],
    ['mp', mp !== '', (w) => w.str(mp)],
    ['v', Object.keys(vars).length > 0, (w) => w.stringMap(vars)],
    ['tg', target !== '', (w) => w.str(target)],
  ];
}

function encodeEntries(entries: Entry[]): Uint8Array {
  const w = new MsgpackWriter();
  try {
    writeStruct(w, entries);
    return w.finish();
  } finally {
    w.release(); // after a throw: the scratch buffer is reused by the next encode
  }
}

/** Encodes the request envelope `{t, d: bin}`; `hook` must be 1..4 (compact `t`, as @msgpack/msgpack). */
export function encodeEnvelope(hook: number, data: Uint8Array): Uint8Array {
  if (!Number.isInteger(hook) || hook < 1 || hook > 4) {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `envelope hook must be 1 (on_request), 2 (on_response), 3 (on_connect) or 4 (on_disconnect), got ${String(hook)}`,
    );
  }
  check.bytes(data, 'envelope data');
  return encodeEntries([
    ['t', true, (w) => w.int(hook)],
    ['d', true, (w) => w.bin(data)],
  ]);
}

/** Encodes an `on_request` payload. */
export function encodeRequestInfo(info: RequestInfoInput): Uint8Array {
  return encodeEntries(requestInfoEntries(info, 'RequestInfo'));
}

/** Encodes an `on_request` answer; dl/ul are written as float64 like Go. */
export function encodeAuthorizeResult(result: AuthorizeResultInput): Uint8Array {
  const w = 'AuthorizeResult';
  const o = check.object(result, w);
  const allow = check.bool(o.allow, `${w}.allow`) ?? false;
  const drop = check.bool(o.drop, `${w}.drop`) ?? false;
  const fallback = check.bool(o.fallback, `${w}.fallback`) ?? false;
  const status = check.status(o.status, `${w}.status`) ?? 0;
  const body = check.string(o.body, `${w}.body`) ?? '';
  const headers = check.map(o.headers, `${w}.headers`) ?? {};
  const cleanQuery = check.bool(o.cleanQuery, `${w}.cleanQuery`) ?? false;
  const rewritePath = check.string(o.rewritePath, `${w}.rewritePath`) ?? '';
  let sp: Entry[] | undefined;
  if (o.speedLimit !== undefined) {
    const l = check.object(o.speedLimit, `${w}.speedLimit`);
    const dl = check.float(l.downloadMbps, `${w}.speedLimit.downloadMbps`) ?? 0;
    const ul = check.float(l.uploadMbps, `${w}.speedLimit.uploadMbps`) ?? 0;
    const gk = check.string(l.groupKey, `${w}.speedLimit.groupKey`) ?? '';
    sp = [
      ['dl', dl !== 0, (x) => x.float64(dl)],
      ['ul', ul !== 0, (x) => x.float64(ul)],
      ['gk', gk !== '', (x) => x.str(gk)],
    ];
  }
  return encodeEntries([
    ['ok', true, (x) => x.bool(allow)],
    ['dr', drop, (x) => x.bool(true)],
    ['fb', fallback, (x) => x.bool(true)],
    ['s', status !== 0, (x) => x.int(status)],
    ['b', body !== '', (x) => x.str(body)],
    ['h', Object.keys(headers).length > 0, (x) => x.stringMap(headers)],
    ['sp', sp !== undefined, (x) => writeStruct(x, sp as Entry[])],
    ['cq', cleanQuery, (x) => x.bool(true)],
    ['rp', rewritePath !== '', (x) => x.str(rewritePath)],
  ]);
}

/** Encodes an `on_response` payload. */
export function encodeResponsePair(pair: ResponsePairInput): Uint8Array {
  const w = 'ResponsePair';
  const o = check.object(pair, w);
  const req = requestInfoEntries(o.req, `${w}.req`);
  const resp = check.object(o.resp, `${w}.resp`) as Partial<UpstreamResponseInfo>;
  const status = check.status(resp.status, `${w}.resp.status`) ?? 0;
  const headers = check.map(resp.headers, `${w}.resp.headers`) ?? {};
  return encodeEntries([
    ['req', true, (x) => writeStruct(x, req)],
    [
      'resp',
      true,
      (x) =>
        writeStruct(x, [
          ['s', true, (y) => y.int(status)],
          ['h', true, (y) => y.stringMap(headers)],
        ]),
    ],
  ]);
}

/** Encodes an `on_response` answer. */
export function encodeResponseModResult(mod: ResponseModResultInput): Uint8Array {
  const w = 'ResponseModResult';
  const o = check.object(mod, w);
  const status = check.status(o.status, `${w}.status`) ?? 0;
  const headers = check.map(o.headers, `${w}.headers`) ?? {};
  const remove = check.list(o.remove, `${w}.remove`) ?? [];
  return encodeEntries([
    ['s', status !== 0, (x) => x.int(status)],
    ['h', Object.keys(headers).length > 0, (x) => x.stringMap(headers)],
    ['rm', remove.length > 0, (x) => x.stringList(remove)],
  ]);
}

/** Encodes an `on_connect` payload. */
export function encodeConnInfo(info: ConnInfoInput): Uint8Array {
  const w = 'ConnInfo';
  const o = check.object(info, w);
  const s = (k: string) => check.string(o[k], `${w}.${k}`) ?? '';
  const [r, d, a, md, mg] = [
    s('routeId'),
    s('domain'),
    s('remoteAddr'),
    s('matchDomain'),
    s('matchGlob'),
  ];
  return encodeEntries([
    ['r', true, (x) => x.str(r)],
    ['d', true, (x) => x.str(d)],
    ['a', true, (x) => x.str(a)],
    ['md', md !== '', (x) => x.str(md)],
    ['mg', mg !== '', (x) => x.str(mg)],
  ]);
}

/** Encodes an `on_connect` answer. */
export function encodeConnResult(result: ConnResultInput): Uint8Array {
  const o = check.object(result, 'ConnResult');
  const allow = check.bool(o.allow, 'ConnResult.allow') ?? false;
  return encodeEntries([['ok', true, (x) => x.bool(allow)]]);
}

/** Encodes an `on_disconnect` payload (counters compact; Go writes them as `d3` + 8 bytes). */
export function encodeDisconnectInfo(info: DisconnectInfoInput): Uint8Array {
  const w = 'DisconnectInfo';
  const o = check.object(info, w);
  const r = check.string(o.routeId, `${w}.routeId`) ?? '';
  const tg = check.string(o.target, `${w}.target`) ?? '';
  const a = check.string(o.remoteAddr, `${w}.remoteAddr`) ?? '';
  const rx = check.int(o.bytesRx, `${w}.bytesRx`) ?? 0;
  const tx = check.int(o.bytesTx, `${w}.bytesTx`) ?? 0;
  const ms = check.int(o.durationMs, `${w}.durationMs`) ?? 0;
  return encodeEntries([
    ['r', true, (x) => x.str(r)],
    ['tg', tg !== '', (x) => x.str(tg)],
    ['a', true, (x) => x.str(a)],
    ['rx', true, (x) => x.int(rx)],
    ['tx', true, (x) => x.int(tx)],
    ['ms', true, (x) => x.int(ms)],
  ]);
}
