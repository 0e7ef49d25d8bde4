import type { ExtensionCodecType } from '@msgpack/msgpack';
import { Decoder as MsgpackDecoder, Encoder as MsgpackEncoder } from '@msgpack/msgpack';
import {
  AgentProtocolError,
  type Encoding,
  ErrorCode,
  MAX_UDS_FRAME_LENGTH,
  putOwn,
} from '@picket/protocol';
import {
  Decoder as CborDecoder,
  Encoder as CborEncoder,
  type Options as CborOptions,
} from 'cbor-x';
import { guardDecode, guardEncode } from './errors.js';
import { plain, utf8Decode, utf8Encode } from './json.js';
import { FALLBACK, readMsgpackFast } from './msgpack-reader.js';

/** Turns values into payload bytes and back, for one encoding. No message knowledge. */
export interface Codec {
  /** The encoding's name as it appears in handshakes. */
  readonly name: Encoding;
  /** Encodes any value of the encoding's data model; throws `INVALID_ARGUMENT` for what it cannot represent. */
  encode(value: unknown): Uint8Array;
  /** Decodes one complete value; throws `INVALID_MESSAGE` on any malformed input (never anything else). */
  decode(bytes: Uint8Array): unknown;
}

/** Every encoding picket implements (an agent's default `supported` list). */
export const SUPPORTED_ENCODINGS: readonly Encoding[] = Object.freeze(['json', 'msgpack', 'cbor']);

/**
 * What a picket proxy offers in its HandshakeRequest unless configured
 * otherwise: msgpack, then JSON — what a Rust proxy built with `binary-uds`
 * sends. apps/bench measured msgpack as the faster encoding end to end (see
 * its README). It is safe with every agent: a picket agent and a Rust agent
 * built with `binary-uds` pick msgpack, and picket's msgpack events are maps
 * with each key once, full metadata and base64 body text towards non-picket
 * agents, which Rust decodes; any other agent picks JSON (the name "msgpack"
 * is known to every Rust build). CBOR is never offered by default: an unknown
 * encoding name makes a Rust agent reject the handshake and hang up.
 * `['json']` gives upstream's exact bytes.
 */
export const DEFAULT_OFFERED_ENCODINGS: readonly Encoding[] = Object.freeze(['msgpack', 'json']);

/**
 * Agent side of §2.4: the first entry of the proxy's list that we support;
 * unknown names are skipped; JSON is always supported; nothing usable (or an
 * empty list) ⇒ `'json'`.
 */
export function negotiateEncoding(
  offered: readonly string[] | null | undefined,
  supported: readonly Encoding[] = SUPPORTED_ENCODINGS,
): Encoding {
  if (!offered) return 'json';
  for (const name of offered) {
    if (name === 'json') return 'json';
    if ((supported as readonly string[]).includes(name)) return name as Encoding;
  }
  return 'json';
}

// ---------------------------------------------------------------- json

/** Strict UTF-8 + JSON.parse (throws on malformed input). */
export function parseJson(bytes: Uint8Array): unknown {
  return JSON.parse(utf8Decode(bytes)) as unknown;
}

/** Plain JSON (UTF-8, strict decoding). Key order is whatever the value has; the message layer writes Rust's order. */
export const jsonCodec: Codec = Object.freeze({
  name: 'json' as const,
  encode(value: unknown): Uint8Array {
    return guardEncode('json', 'value', () => {
      const text = JSON.stringify(value);
      if (text === undefined) throw new TypeError(`${typeof value} has no JSON form`);
      return utf8Encode(text);
    });
  },
  decode(bytes: Uint8Array): unknown {
    return guardDecode('invalid JSON', () => parseJson(bytes));
  },
});

// ---------------------------------------------------------------- msgpack

/**
 * Rust never sends extension types and rmp-serde cannot read them into these
 * messages, so any `ext` (including the timestamp extension) is malformed input.
 */
const NO_EXTENSIONS: ExtensionCodecType<undefined> = {
  tryToEncode: () => null,
  decode: (_data: Uint8Array, type: number) => {
    throw new Error(`msgpack extension type ${type} is not part of the protocol`);
  },
};

/**
 * Decoder for protocol payloads: `bin` comes back as Uint8Array (a view into
 * the payload), duplicate map keys keep the last value (Rust's proxy writes
 * `correlation_id` twice, V11b), 64-bit integers become numbers, and lengths
 * are capped by the largest frame so a forged header cannot ask for more.
 */
export const msgpackDecoder = new MsgpackDecoder({
  extensionCodec: NO_EXTENSIONS,
  useBigInt64: false,
  maxStrLength: MAX_UDS_FRAME_LENGTH,
  maxBinLength: MAX_UDS_FRAME_LENGTH,
  maxArrayLength: MAX_UDS_FRAME_LENGTH,
  maxMapLength: MAX_UDS_FRAME_LENGTH,
  maxExtLength: MAX_UDS_FRAME_LENGTH,
});

/**
 * One msgpack item (throws on malformed input or trailing bytes). Common
 * well-formed payloads take the fast reader; everything else, and every
 * error, goes through `msgpackDecoder`.
 */
export function parseMsgpack(bytes: Uint8Array): unknown {
  const fast = readMsgpackFast(bytes);
  return fast === FALLBACK ? msgpackDecoder.decode(bytes) : fast;
}

const msgpackEncoder = new MsgpackEncoder({ extensionCodec: NO_EXTENSIONS, ignoreUndefined: true });

/** MessagePack via @msgpack/msgpack: plain objects ⇒ maps, Uint8Array ⇒ `bin`. */
export const msgpackCodec: Codec = Object.freeze({
  name: 'msgpack' as const,
  encode(value: unknown): Uint8Array {
    return guardEncode('msgpack', 'value', () => plain(msgpackEncoder.encode(value)));
  },
  decode(bytes: Uint8Array): unknown {
    return guardDecode('invalid msgpack', () => parseMsgpack(bytes));
  },
});

// ---------------------------------------------------------------- cbor

/** cbor-x options our typings lack. */
type CborAllOptions = CborOptions & {
  useTag259ForMaps?: boolean;
  int64AsNumber?: boolean;
};

/**
 * Plain RFC 8949 CBOR any peer can read: no record extension, objects as
 * ordinary maps (minimal-size headers), Uint8Array as an untagged byte
 * string, no packing, no tag 259 on Maps; 64-bit integers decode as numbers.
 */
const CBOR_OPTIONS: CborAllOptions = {
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  tagUint8Array: false,
  useTag259ForMaps: false,
  pack: false,
  bundleStrings: false,
  structuredClone: false,
  int64AsNumber: true,
};

/** Shared cbor-x instances with {@link CBOR_OPTIONS} (stateless between calls). */
export const cborEncoder = new CborEncoder(CBOR_OPTIONS);
export const cborDecoder = new CborDecoder(CBOR_OPTIONS);

/** The same options, maps decoded as `Map`s (for payloads with a `__proto__` key). */
const cborMapDecoder = new CborDecoder({ ...CBOR_OPTIONS, mapsAsObjects: false });
/** `__proto__` as a CBOR text string (major type 3, length 9). */
const PROTO_KEY = Buffer.from('695f5f70726f746f5f5f', 'hex');

/** `Map`s (any depth) as plain objects with every key an own entry, as string keys. */
function mapsToObjects(v: unknown): unknown {
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of v) putOwn(out, String(k), mapsToObjects(x));
    return out;
  }
  if (Array.isArray(v)) return v.map(mapsToObjects);
  return v;
}

/** One CBOR item (throws on malformed input or trailing bytes). */
export function parseCbor(bytes: Uint8Array): unknown {
  // cbor-x renames a `__proto__` key to `__proto_` (a different header name, silently):
  // such payloads are decoded with Maps and rebuilt with the key as an own entry.
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(PROTO_KEY)) {
    return mapsToObjects(cborMapDecoder.decode(bytes));
  }
  return cborDecoder.decode(bytes) as unknown;
}

/** CBOR via cbor-x, configured for plain interoperable CBOR. */
export const cborCodec: Codec = Object.freeze({
  name: 'cbor' as const,
  encode(value: unknown): Uint8Array {
    return guardEncode('cbor', 'value', () => plain(cborEncoder.encode(value)));
  },
  decode(bytes: Uint8Array): unknown {
    return guardDecode('invalid CBOR', () => parseCbor(bytes));
  },
});

const CODECS: Readonly<Record<Encoding, Codec>> = {
  json: jsonCodec,
  msgpack: msgpackCodec,
  cbor: cborCodec,
};

/** The codec for an encoding name; `UNSUPPORTED` for anything else. */
export function getCodec(name: Encoding): Codec {
  const codec = Object.hasOwn(CODECS, name) ? CODECS[name] : undefined;
  if (!codec) {
    throw new AgentProtocolError(
      ErrorCode.Unsupported,
      `unknown encoding "${String(name)}" (json, msgpack, cbor)`,
    );
  }
  return codec;
}
