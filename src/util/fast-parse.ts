// Hand-written fast paths beside a few zod schemas: the RPC headers parsed on every Put Blob hop
// (routing key, getMany, transact, extent.append, their answers). zod's safeParse of those cost
// ~4 % of a 4 KiB Put's main thread (~8 parses per Put); a direct check of the same fields is a
// fraction of that. Every header is still validated, on every network (TCP and in-process alike).
//
// Invariant (test/unit/util/fast-parse.test.ts, fast-check against each schema): a fast path
// answers only values its schema accepts, with the value the schema would give (unknown keys
// dropped, arrays and objects copied); for anything else it answers undefined and the schema
// parses as before, so every error, message and default is still zod's.
import type { z } from 'zod';

type FastPath = (value: unknown) => unknown;

const fastPaths = new WeakMap<z.ZodType, FastPath>();

/** Registers `check` as `schema`'s fast path; returns the schema. */
export function withFastPath<S extends z.ZodType>(schema: S, check: (value: unknown) => z.output<S> | undefined): S {
  fastPaths.set(schema, check);
  return schema;
}

/** What `schema`'s fast path answers for `value` (undefined: none, or the value does not take it). */
export function fastPathAnswer<T>(schema: z.ZodType<T>, value: unknown): T | undefined {
  return fastPaths.get(schema)?.(value) as T | undefined;
}

/** safeParse, through the schema's fast path when it has one and the value takes it. */
export function safeParseFast<T>(schema: z.ZodType<T>, value: unknown): z.ZodSafeParseResult<T> {
  const data = fastPathAnswer(schema, value);
  return data === undefined ? schema.safeParse(value) : { success: true, data };
}

/** The fields of a plain object (what a decoded JSON header is), else undefined. */
export function plainObject(value: unknown): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  return value as Record<string, unknown>;
}

export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export function isText(value: unknown, lengthMin: number, lengthMax: number): value is string {
  return typeof value === 'string' && value.length >= lengthMin && value.length <= lengthMax;
}
