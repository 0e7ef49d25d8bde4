/**
 * Junk an agent sends to a proxy (used against `AgentClientV2Uds` and against reverse
 * connections, which run the same proxy engine): replies with wrong field types or in the
 * wrong encoding, replies to nobody, junk health / metrics / config-update / flow-control
 * frames, junk pongs, frames an agent never sends, random bytes, and (rarely) a frame that
 * breaks the framing.
 */
import { getCodec, type MessageCodec } from '@picket/codec';
import { MessageType } from '@picket/protocol';
import type { Rng } from '../lib/prng.js';
import {
  type Encoding,
  encodeRaw,
  type JunkFrame,
  LIVE_TYPES,
  mutateBytes,
  mutateV2Frame,
  mutateValue,
} from './mutate.js';
import { golden, validResponse } from './templates.js';

const ENCODINGS: readonly Encoding[] = ['json', 'msgpack', 'cbor'];

/** One junk frame from a fake agent; `pending` are correlation ids the proxy waits on. */
export function agentJunkFrame(
  rng: Rng,
  codec: MessageCodec,
  encoding: Encoding,
  pending: readonly string[],
): JunkFrame {
  const raw = getCodec(encoding);
  const cid = pending.length > 0 && rng.chance(0.7) ? rng.pick(pending) : `nobody-${rng.u32()}`;
  const kind = rng.weighted<string>([
    [30, 'response'],
    [5, 'valid-response'],
    [5, 'foreign-response'],
    [10, 'health'],
    [8, 'metrics'],
    [8, 'config'],
    [8, 'flow'],
    [8, 'pong'],
    [8, 'unexpected'],
    [10, 'random'],
  ]);
  const mutate = (valid: Uint8Array): Uint8Array =>
    rng.chance(0.6)
      ? (encodeRaw(
          rng.chance(0.9) ? encoding : rng.pick(ENCODINGS),
          mutateValue(rng, raw.decode(valid)),
        ) ?? mutateBytes(rng, valid))
      : mutateBytes(rng, valid);
  let type: number;
  let payload: Uint8Array;
  switch (kind) {
    case 'response':
      type = MessageType.AgentResponse;
      payload = mutate(codec.encodeResponse(validResponse(rng, cid)));
      break;
    case 'valid-response':
      type = MessageType.AgentResponse;
      payload = codec.encodeResponse(validResponse(rng, cid));
      break;
    case 'foreign-response': {
      const g = golden(rng.pick(['V5', 'V6a', 'V6b', 'V6c']));
      type = MessageType.AgentResponse;
      payload = rng.chance(0.5) ? g.subarray(5) : mutateBytes(rng, g.subarray(5));
      break;
    }
    case 'health':
      type = MessageType.HealthStatus;
      payload = mutate(codec.encodeHealth({ state: rng.int(0, 4), message: 'fuzz' }));
      break;
    case 'metrics':
      type = MessageType.MetricsReport;
      payload = mutate(
        codec.encodeMetrics({
          agent_id: 'fake-agent',
          timestamp_ms: 1767225600000,
          interval_ms: 1000,
          counters: [{ name: 'c', labels: {}, value: rng.int(0, 100) }],
          gauges: [],
          histograms: [],
        }),
      );
      break;
    case 'config':
      type = MessageType.ConfigUpdateRequest;
      payload = mutate(
        codec.encodeConfigUpdate({
          update_type: { type: 'request_reload' },
          request_id: `cfg-${rng.u32()}`,
          timestamp_ms: 1767225600000,
        }),
      );
      break;
    case 'flow': {
      type = MessageType.FlowControl;
      const valid = codec.encodeFlowControl({ action: rng.int(1, 2) });
      payload = rng.chance(0.5) ? valid : mutate(valid);
      break;
    }
    case 'pong':
      type = MessageType.Pong;
      payload = mutateBytes(rng, golden('V7b').subarray(5));
      break;
    case 'unexpected':
      type = rng.pick([0x01, 0x02, 0x10, 0x11, 0x17, 0x40, 0x41]);
      payload = rng.chance(0.5) ? golden('V3').subarray(5) : rng.bytes(rng.size(200));
      break;
    default:
      type = rng.pick(LIVE_TYPES);
      payload = rng.bytes(rng.size(1024));
  }
  return mutateV2Frame(rng, type, payload, 0.02);
}
