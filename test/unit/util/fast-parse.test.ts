// The hand-written fast paths of the hot RPC schemas (src/util/fast-parse.ts) against the zod
// schemas themselves, fast-check: whatever a fast path accepts, the schema accepts with the same
// value; what the schema refuses, the fast path never takes (so every error is still zod's); and
// the headers the embedded stamp sends do take it (else it would be dead code).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { z } from 'zod';
import { commitAnswer, getManyAnswer, partitionRequests, routingKeyHeader } from '../../../src/partition/partition-rpc.ts';
import { appendResultSchema } from '../../../src/stream/extent-node-rpc.ts';
import { extentNodeRequests } from '../../../src/stream/protocol.ts';
import { fastPathAnswer, safeParseFast } from '../../../src/util/fast-parse.ts';

const key = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj';

/** Values near each field's bounds, wrong types, and absent fields. */
const count = fc.oneof(fc.constantFrom(0, 1, -1, 0.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, Number.NaN, '1', null), fc.nat());
const text = (lengths: readonly number[]): fc.Arbitrary<unknown> => fc.oneof(fc.constantFrom(...lengths).map((length) => 'A'.repeat(length)), fc.string(), fc.constantFrom(1, null, ['a'], { a: 1 }));
const maybe = <T,>(value: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(value, { nil: undefined, freq: 3 });
const object = (fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> =>
  fc.tuple(...Object.entries(fields).map(([name, value]) => maybe(value).map((v) => [name, v] as const)), fc.boolean()).map((entries) => {
    const extra = entries.pop() as boolean;
    const result: Record<string, unknown> = {};
    for (const [name, value] of entries as (readonly [string, unknown])[]) if (value !== undefined) result[name] = value;
    if (extra) result['unknown'] = 'dropped';
    return result;
  });
const keyText = text([0, 1, 64, 88, 89, 700, 1400]);
const op = fc.oneof(object({ kind: fc.constantFrom('put', 'delete', 'get', 1), ifMatch: text([0, 1, 128, 129]), ifNoneMatch: fc.constantFrom('*', '', null) }), fc.constant(null));
const replica = fc.oneof(object({ nodeId: fc.oneof(text([0, 1, 64, 65]), fc.constantFrom('node-1', 'bad node', 'n.1_x')), address: text([2, 3, 300, 301]) }), fc.constant('x'));

const cases: { readonly name: string; readonly schema: z.ZodType; readonly sample: unknown; readonly values: fc.Arbitrary<unknown> }[] = [
  { name: 'routing key', schema: routingKeyHeader, sample: { key, ops: [{ kind: 'put' }] }, values: object({ key: keyText }) },
  { name: 'partition.get', schema: partitionRequests['partition.get'], sample: { key }, values: object({ key: keyText }) },
  { name: 'partition.getMany', schema: partitionRequests['partition.getMany'], sample: { key, keys: `${key},${key}` }, values: object({ key: keyText, keys: text([0, 1, 100]) }) },
  {
    name: 'partition.transact', schema: partitionRequests['partition.transact'], sample: { key, ops: [{ kind: 'put', ifMatch: '"0x8DA"' }, { kind: 'delete' }] },
    values: fc.oneof(
      object({ key: keyText, ops: fc.oneof(fc.array(op, { maxLength: 4 }), fc.constant('ops')) }),
      fc.record({ key: fc.constant(key), ops: fc.array(fc.record({ kind: fc.constantFrom('put', 'delete'), ifMatch: fc.string({ minLength: 1, maxLength: 128 }), ifNoneMatch: fc.constant('*') }, { requiredKeys: ['kind'], noNullPrototype: true }), { minLength: 1, maxLength: 3 }) }, { noNullPrototype: true }),
    ),
  },
  { name: 'getMany answer', schema: getManyAnswer, sample: { found: '10-', rows: 'AAAA' }, values: object({ found: fc.oneof(fc.constantFrom('', '1', '10-', '12', 'x'), text([257])), rows: text([0, 5464, 5465]) }) },
  { name: 'commit answer', schema: commitAnswer, sample: { sequence: 12, lastModifiedMs: 1_763_820_000_000, etags: ['"0x8DA"', null] }, values: object({ sequence: count, lastModifiedMs: count, etags: fc.oneof(fc.array(fc.oneof(fc.string(), fc.constant(null), fc.constant(1)), { maxLength: 3 }), fc.constant('x')) }) },
  { name: 'append result', schema: appendResultSchema, sample: { offset: 4096, length: 4200 }, values: object({ offset: count, length: count }) },
  {
    name: 'extent.append', schema: extentNodeRequests['extent.append'], sample: { epoch: 3, extentId: 17, appendId: 'a-1', replicas: [{ nodeId: 'node-1', address: 'local:30001' }] },
    values: fc.oneof(
      object({ epoch: count, extentId: count, appendId: text([0, 1, 128, 129]), replicas: fc.oneof(fc.array(replica, { maxLength: 17 }), fc.constant([])) }),
      fc.record({ epoch: fc.nat(), extentId: fc.nat(), appendId: fc.string({ minLength: 1, maxLength: 128 }), replicas: fc.array(fc.record({ nodeId: fc.constantFrom('node-1', 'n.2_x'), address: fc.string({ minLength: 3, maxLength: 40 }) }, { noNullPrototype: true }), { minLength: 1, maxLength: 16 }) }, { noNullPrototype: true }),
    ),
  },
];

describe('fast paths of the hot RPC schemas', () => {
  for (const { name, schema, sample, values } of cases) {
    it(`${name}: answers exactly what zod does, and takes the headers the stamp sends`, (t) => {
      assert.deepEqual(fastPathAnswer(schema, sample), schema.parse(sample), 'a typical header takes the fast path');
      let fast = 0;
      let refused = 0;
      fc.assert(fc.property(values, (value) => {
        const answer = fastPathAnswer(schema, value);
        const zod = schema.safeParse(value);
        if (!zod.success) refused += 1;
        if (answer === undefined) return;
        fast += 1;
        assert.ok(zod.success, `zod refuses what the fast path took: ${JSON.stringify(value)}`);
        assert.deepEqual(answer, zod.data);
        assert.deepEqual(safeParseFast(schema, value), { success: true, data: zod.data });
      }), { numRuns: 1_500, seed: 20261122 });
      assert.ok(fast > 20 && refused > 20, `fast ${fast}, refused by zod ${refused}`);
      t.diagnostic(`${fast} of 1,500 values took the fast path, ${refused} refused by zod`);
    });
  }
});
