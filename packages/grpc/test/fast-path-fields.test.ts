/**
 * The fast paths' field lists (src/fast-path-fields.ts) are exhaustive: the type checker refuses
 * a list that misses a field of the generated message or names one it does not have (the
 * `@ts-expect-error` lines below are compiled by `pnpm typecheck`, which fails if one of them
 * stops being an error), and the field numbers are those of the shipped .proto.
 */
import type { RequestMetadata } from '@picket/protocol';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  PICKET_FIELDS,
  type PicketFields,
  PROTO_FIELDS,
  type ProtoFields,
} from '../src/fast-path-fields.js';
import type { zentinel } from '../src/generated/agent_v2.js';
import { PROTO_PATH } from '../src/proto.js';

type IRequestMetadata = zentinel.agent.v2.IRequestMetadata;

describe('fast-path field lists', () => {
  it('a list missing a proto field, or naming an unknown one, does not compile', () => {
    type Meta = ProtoFields<IRequestMetadata>;
    type PicketMeta = PicketFields<RequestMetadata, IRequestMetadata>;
    const { tls_cipher: _cipher, ...incomplete } = PROTO_FIELDS.RequestMetadata;
    // @ts-expect-error tls_cipher is missing: a new proto field breaks the build like this
    const missing: Meta = incomplete;
    // @ts-expect-error client_cert is not a field of RequestMetadata
    const extra = { ...PROTO_FIELDS.RequestMetadata, client_cert: 12 } satisfies Meta;
    const { traceparent: _trace, ...picketIncomplete } = PICKET_FIELDS.RequestMetadata;
    // @ts-expect-error a picket field (traceparent) left out of the picket list
    const picket: PicketMeta = picketIncomplete;
    expect([missing, extra, picket]).toHaveLength(3);
  });

  it('names and numbers are exactly those of agent_v2.proto', () => {
    const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });
    for (const [message, fields] of Object.entries(PROTO_FIELDS)) {
      const type = root.lookupType(`zentinel.agent.v2.${message}`);
      const actual = Object.fromEntries(type.fieldsArray.map((f) => [f.name, f.id]));
      expect(fields, message).toEqual(actual);
    }
  });

  it('every picket field maps to a field of the message it travels in', () => {
    const travelsIn: Record<keyof typeof PICKET_FIELDS, keyof typeof PROTO_FIELDS> = {
      RequestHeadersEvent: 'RequestHeadersEvent',
      RequestMetadata: 'RequestMetadata',
      AgentResponse: 'AgentResponse',
      AuditMetadata: 'AuditMetadata',
      BodyMutation: 'PicketBodyMutation',
    };
    for (const [type, fields] of Object.entries(PICKET_FIELDS)) {
      const proto: Record<string, number> =
        PROTO_FIELDS[travelsIn[type as keyof typeof PICKET_FIELDS]];
      for (const target of Object.values(fields)) {
        if (target !== null) expect(proto, `${type} → ${target}`).toHaveProperty(target);
      }
    }
  });
});
