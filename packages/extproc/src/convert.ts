/**
 * Envoy's messages ⇄ picket's: a HeaderMap read into pseudo-headers and picket Headers,
 * the client address from the request attributes, and picket HeaderOps / BodyMutations
 * written as an ext_proc HeaderMutation / BodyMutation.
 */
import {
  AgentProtocolError,
  ErrorCode,
  type HeaderOp,
  type Headers,
  headerMap,
  type BodyMutation as PicketBodyMutation,
  putOwn,
} from '@picket/protocol';
import {
  type BodyMutation,
  HeaderAppendAction,
  type HeaderMap,
  type HeaderMutation,
  type HeaderValue,
  type HeaderValueOption,
  type Struct,
} from './proto.js';

/**
 * Which HeaderValue field carries values the server writes: `raw_value` (bytes; what Envoy
 * sends and reads since its `send_header_raw_value` runtime flag became the default) or
 * `value` (a string; Envoy releases before that flag).
 */
export type HeaderValueField = 'raw_value' | 'value';

/** A HeaderMap as the request's pseudo-headers (`:method`, `:path`, …) and its other headers. */
export interface ReadHeaders {
  pseudo: Map<string, string>;
  headers: Headers;
}

/** A header's value: `raw_value` when set (read as UTF-8), else `value`. */
function headerValue(h: HeaderValue): string {
  if (h.raw_value !== undefined && h.raw_value.length > 0) {
    return Buffer.from(h.raw_value.buffer, h.raw_value.byteOffset, h.raw_value.length).toString(
      'utf8',
    );
  }
  return h.value ?? '';
}

/** Reads a HeaderMap; names are lower-cased, repeated names keep every value in order. */
export function readHeaderMap(map: HeaderMap | undefined): ReadHeaders {
  const pseudo = new Map<string, string>();
  const headers: Headers = headerMap();
  for (const h of map?.headers ?? []) {
    const name = (h.key ?? '').toLowerCase();
    if (name === '') continue;
    const value = headerValue(h);
    if (name.startsWith(':')) {
      if (!pseudo.has(name)) pseudo.set(name, value);
    } else if (Object.hasOwn(headers, name)) {
      (headers[name] as string[]).push(value);
    } else {
      putOwn(headers, name, [value]);
    }
  }
  return { pseudo, headers };
}

/** A required pseudo-header; a missing or empty one is INVALID_ARGUMENT naming it. */
export function pseudoHeader(read: ReadHeaders, name: string, where: string): string {
  const v = read.pseudo.get(name);
  if (v === undefined || v === '') {
    throw new AgentProtocolError(
      ErrorCode.InvalidArgument,
      `${where}: the ${name} pseudo-header is missing`,
    );
  }
  return v;
}

/** Where the request came from, read from the attributes Envoy was configured to send. */
export interface ClientAddress {
  ip: string;
  port: number;
  protocol?: string;
  serverName?: string;
  tlsVersion?: string;
}

/** One attribute of any filter's Struct (Envoy keys them by the filter's name). */
function attribute(attrs: Record<string, Struct> | undefined, name: string): unknown {
  if (attrs === undefined) return undefined;
  for (const key of Object.keys(attrs)) {
    const fields = attrs[key]?.fields;
    if (fields === undefined || !Object.hasOwn(fields, name)) continue;
    const v = fields[name];
    return v?.stringValue ?? v?.numberValue ?? v?.boolValue;
  }
  return undefined;
}

/**
 * The client address from `source.address` (`ip:port`, `[v6]:port`) and `source.port`, plus
 * `request.protocol`, `connection.requested_server_name` and `connection.tls_version` when
 * Envoy sends them (`request_attributes` in the filter config). Without them the address is
 * empty: picket never guesses it from a header a client can write.
 */
export function clientAddress(attrs: Record<string, Struct> | undefined): ClientAddress {
  const out: ClientAddress = { ip: '', port: 0 };
  const address = attribute(attrs, 'source.address');
  if (typeof address === 'string') {
    const m = /^\[([^\]]*)\](?::(\d+))?$/.exec(address) ?? /^([^:]*)(?::(\d+))?$/.exec(address);
    if (m) {
      out.ip = m[1] ?? '';
      if (m[2] !== undefined) out.port = Number(m[2]);
    } else {
      out.ip = address; // a bare IPv6 address
    }
  }
  // a number since Envoy evaluates attributes with CEL types; a decimal string before that
  const raw = attribute(attrs, 'source.port');
  const port = typeof raw === 'string' && /^\d{1,5}$/.test(raw) ? Number(raw) : raw;
  if (typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535) {
    out.port = port;
  }
  const protocol = attribute(attrs, 'request.protocol');
  if (typeof protocol === 'string' && protocol !== '') out.protocol = protocol;
  const sni = attribute(attrs, 'connection.requested_server_name');
  if (typeof sni === 'string' && sni !== '') out.serverName = sni;
  const tls = attribute(attrs, 'connection.tls_version');
  if (typeof tls === 'string' && tls !== '') out.tlsVersion = tls;
  return out;
}

// RFC 9110 token characters; a leading ':' lets a handler set a pseudo-header (`:path`).
const HEADER_NAME = /^:?[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Envoy refuses NUL, CR and LF in a header value (and the whole mutation with it).
const HEADER_VALUE = /^[^\0\r\n]*$/;

/** Why a header op cannot go to Envoy, or undefined when it can. */
export function invalidHeader(name: string, value?: string): string | undefined {
  if (!HEADER_NAME.test(name)) return `invalid header name ${JSON.stringify(name)}`;
  if (value !== undefined && !HEADER_VALUE.test(value)) {
    return `invalid value for header ${name} (NUL, CR or LF)`;
  }
  return undefined;
}

/** Builds HeaderValueOptions in the configured value field. */
export class MutationWriter {
  constructor(private readonly field: HeaderValueField) {}

  #header(key: string, value: string): HeaderValue {
    return this.field === 'raw_value'
      ? { key, raw_value: Buffer.from(value, 'utf8') }
      : { key, value };
  }

  /** Replaces every value of `name`. */
  overwrite(name: string, value: string): HeaderValueOption {
    return {
      header: this.#header(name, value),
      append_action: HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    };
  }

  /**
   * Adds a value. APPEND_IF_EXISTS_OR_ADD is append_action's zero value, which Envoy reads as
   * "unset" and falls back to the deprecated `append` (default false: overwrite), so an
   * append says `append: true` instead.
   */
  append(name: string, value: string): HeaderValueOption {
    return { header: this.#header(name, value), append: { value: true } };
  }

  /**
   * picket's header ops (applied in order) as one HeaderMutation. Envoy applies every
   * removal before every set, so the ops are folded per name first: a removal drops the
   * sets and adds before it, a set drops the adds before it. Invalid ops are skipped and
   * reported through `skip`.
   */
  mutation(ops: readonly HeaderOp[], skip: (why: string) => void): HeaderMutation | undefined {
    const byName = new Map<string, { remove: boolean; sets: HeaderValueOption[] }>();
    const entry = (name: string) => {
      let e = byName.get(name);
      if (e === undefined) {
        e = { remove: false, sets: [] };
        byName.set(name, e);
      }
      return e;
    };
    for (const op of ops) {
      if ('remove' in op) {
        const name = op.remove.name.toLowerCase();
        const bad = invalidHeader(name);
        if (bad !== undefined) {
          skip(bad);
          continue;
        }
        const e = entry(name);
        e.remove = true;
        e.sets = [];
        continue;
      }
      const { name: rawName, value } = 'set' in op ? op.set : op.add;
      const name = rawName.toLowerCase();
      const bad = invalidHeader(name, value);
      if (bad !== undefined) {
        skip(bad);
        continue;
      }
      const e = entry(name);
      if ('set' in op) {
        e.remove = false;
        e.sets = [this.overwrite(name, value)];
      } else {
        e.sets.push(this.append(name, value));
      }
    }
    const remove: string[] = [];
    const set: HeaderValueOption[] = [];
    for (const [name, e] of byName) {
      if (e.remove) remove.push(name);
      set.push(...e.sets);
    }
    const out: HeaderMutation = {};
    if (remove.length > 0) out.remove_headers = remove;
    if (set.length > 0) out.set_headers = set;
    return remove.length > 0 || set.length > 0 ? out : undefined;
  }
}

/**
 * picket's body mutation as Envoy's: `data: null` leaves the chunk as it is (undefined),
 * `""` clears it, any other text replaces it (UTF-8).
 */
export function bodyMutation(m: PicketBodyMutation | null | undefined): BodyMutation | undefined {
  if (m === null || m === undefined || m.data === null) return undefined;
  if (m.data === '') return { clear_body: true };
  return { body: Buffer.from(m.data, 'utf8') };
}
