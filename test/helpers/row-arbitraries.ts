// fast-check arbitraries for partition rows (docs/formats/partition-rows.md), shared by the row
// codec's property tests: any column value of every type, safe integers, keys.
import fc from 'fast-check';
import type { ColumnValue } from '../../src/wire/partition-row.ts';

export const safeIntegerArbitrary = fc.nat({ max: Number.MAX_SAFE_INTEGER });

export const keyArbitrary = fc.uint8Array({ minLength: 1, maxLength: 40 }).map((bytes) => Buffer.from(bytes));

export const valueArbitrary: fc.Arbitrary<ColumnValue> = fc.oneof(
  fc.constant({ kind: 'null' as const }),
  fc.boolean().map((value) => ({ kind: 'bool' as const, value })),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((value) => ({ kind: 'int64' as const, value })),
  fc.double().map((value) => ({ kind: 'float64' as const, value })),
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((value) => ({ kind: 'string' as const, value })),
  fc.uint8Array({ maxLength: 40 }).map((value) => ({ kind: 'bytes' as const, value: Buffer.from(value) })),
  fc.array(fc.record({ extentId: safeIntegerArbitrary, offset: safeIntegerArbitrary, length: safeIntegerArbitrary }), { maxLength: 4 })
    .map((value) => ({ kind: 'dataRefs' as const, value: value.map((ref) => ({ ...ref })) })),
);
