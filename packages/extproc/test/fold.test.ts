/**
 * Header ops folded into one HeaderMutation: whatever the ops, Envoy applying the mutation
 * (every removal first, then the sets in order: OVERWRITE replaces, `append: true` adds)
 * must end with the headers picket's in-order semantics give.
 */
import { addHeader, type HeaderOp, removeHeader, setHeader } from '@picket/protocol';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { MutationWriter } from '../src/convert.js';
import { HeaderAppendAction, type HeaderMutation } from '../src/proto.js';

type State = Map<string, string[]>;

/** picket: each op in order. */
function picket(start: State, ops: HeaderOp[]): State {
  const s = new Map([...start].map(([k, v]) => [k, [...v]]));
  for (const op of ops) {
    if ('remove' in op) s.delete(op.remove.name.toLowerCase());
    else if ('set' in op) s.set(op.set.name.toLowerCase(), [op.set.value]);
    else {
      const name = op.add.name.toLowerCase();
      s.set(name, [...(s.get(name) ?? []), op.add.value]);
    }
  }
  return s;
}

/** Envoy: removals, then sets (what its mutation code does). */
function envoy(start: State, m: HeaderMutation | undefined): State {
  const s = new Map([...start].map(([k, v]) => [k, [...v]]));
  for (const name of m?.remove_headers ?? []) s.delete(name);
  for (const o of m?.set_headers ?? []) {
    const name = o.header?.key ?? '';
    const value = Buffer.from(o.header?.raw_value ?? []).toString('utf8');
    if (o.append_action === HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD) s.set(name, [value]);
    else if (o.append_action === undefined && o.append?.value === true) {
      s.set(name, [...(s.get(name) ?? []), value]);
    } else throw new Error(`unexpected option ${JSON.stringify(o)}`);
  }
  return s;
}

const name = fc.constantFrom('x-a', 'X-A', 'x-b', 'cookie');
const value = fc.constantFrom('1', '2', 'three', '');
const op: fc.Arbitrary<HeaderOp> = fc.oneof(
  fc.tuple(name, value).map(([n, v]) => setHeader(n, v)),
  fc.tuple(name, value).map(([n, v]) => addHeader(n, v)),
  name.map((n) => removeHeader(n)),
);
const start: fc.Arbitrary<State> = fc
  .uniqueArray(fc.tuple(fc.constantFrom('x-a', 'x-b', 'cookie', 'x-c'), fc.array(value)), {
    selector: ([n]) => n,
  })
  .map((entries) => new Map(entries.filter(([, v]) => v.length > 0)));

it('Envoy applying the folded mutation ends where picket order does', () => {
  const writer = new MutationWriter('raw_value');
  fc.assert(
    fc.property(start, fc.array(op, { maxLength: 12 }), (headers, ops) => {
      const m = writer.mutation(ops, (why) => {
        throw new Error(why);
      });
      expect(envoy(headers, m)).toEqual(picket(headers, ops));
    }),
    { numRuns: 2000 },
  );
});
