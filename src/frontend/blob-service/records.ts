// Typed records of the blob tables and their row columns (docs/blob-schema.md): blob rows
// (current and snapshots), container rows, staging and uncommitted-block rows. The rest of the
// blob service works on these records, never on raw columns.
//
// Invariants: encode(decode(row)) keeps every column this module knows; absent optional fields
// are absent columns; JSON columns are parsed with schemas (a row that does not parse is
// partition.corrupt, never a half-read record).
// Fault model: rows come from the partition (CRC-checked records), so a bad column is a bug or
// an incompatible writer, reported as partition.corrupt.

import { z } from 'zod';
import type { LiveRow } from '../../partition/partition.ts';
import { StorageError } from '../../util/errors.ts';
import type { Column, ColumnValue, DataRef } from '../../wire/partition-row.ts';
import type { StoredBlockList } from './block-list.ts';
import type { AccessTier, BlobHttpHeaders, BlobTag, BlobType, CopyProperties, PublicAccess, SignedIdentifier } from '../model.ts';

export interface LeaseRecord {
  readonly state: 'leased' | 'breaking' | 'broken';
  readonly id: string;
  /** null: infinite. */
  readonly durationSeconds: number | null;
  readonly expiresMs?: number;
  readonly breakMs?: number;
}

export interface AppendState {
  readonly inc: string;
  readonly segments: number;
  readonly tail: readonly DataRef[];
  readonly blockCount: number;
  readonly sealed: boolean;
}


export interface BlobRecord {
  readonly type: Exclude<BlobType, 'PageBlob'>;
  readonly createdMs: number;
  readonly size: number;
  /** Explicit ETag / Last-Modified (a write that is not a modification rewrote the row). */
  readonly etag?: string;
  readonly modifiedMs?: number;
  readonly headers: BlobHttpHeaders;
  readonly metadata: readonly (readonly [string, string])[];
  readonly tags: readonly BlobTag[];
  readonly tier?: AccessTier;
  readonly lease: LeaseRecord | null;
  readonly copy?: CopyProperties;
  /** A pending copy's transfer's last row write (its front end's clock): the copy lost its
   * transfer once this is copyPendingStallMs old (effectiveCopy). Absent (rows of older versions):
   * the row's lastModifiedMs stands in. */
  readonly copyBeatMs?: number;
  readonly blockList: StoredBlockList | null;
  readonly append: AppendState | null;
}

export interface ContainerRecord {
  readonly inc: string;
  readonly etag?: string;
  readonly modifiedMs?: number;
  readonly metadata: readonly (readonly [string, string])[];
  readonly publicAccess: PublicAccess | null;
  readonly identifiers: readonly SignedIdentifier[];
  readonly lease: LeaseRecord | null;
}

export interface StagingRecord {
  readonly gen: string;
  readonly count: number;
  readonly sinceMs: number;
  /** Decoded length of the gen's block ids (Azure: one length per blob); absent in rows written
   * before 2026-11 (then read from an uncommitted row). */
  readonly idBytes?: number;
}

export interface UncommittedRecord {
  readonly size: number;
  readonly refs: readonly DataRef[];
}

const pairs = z.array(z.tuple([z.string(), z.string()]));
const leaseSchema = z.object({
  state: z.enum(['leased', 'breaking', 'broken']), id: z.string(), durationSeconds: z.number().nullable(),
  expiresMs: z.number().optional(), breakMs: z.number().optional(),
});
const copySchema = z.object({
  id: z.string(), status: z.enum(['pending', 'success', 'aborted', 'failed']), source: z.string(), progress: z.string(),
  completedOnMs: z.number().optional(), statusDescription: z.string().optional(),
});
const identifiersSchema = z.array(z.object({ id: z.string(), start: z.string().optional(), expiry: z.string().optional(), permission: z.string().optional() }));

// ---- column helpers ---------------------------------------------------------------------------

class Columns {
  readonly #byName: ReadonlyMap<string, ColumnValue>;

  constructor(row: LiveRow) {
    this.#byName = new Map(row.columns.map((column) => [column.name, column.value]));
  }

  string(name: string): string | undefined {
    const value = this.#byName.get(name);
    if (value === undefined) return undefined;
    if (value.kind !== 'string') throw corrupt(name);
    return value.value;
  }

  int(name: string): number | undefined {
    const value = this.#byName.get(name);
    if (value === undefined) return undefined;
    if (value.kind !== 'int64' || value.value > BigInt(Number.MAX_SAFE_INTEGER) || value.value < 0n) throw corrupt(name);
    return Number(value.value);
  }

  bytes(name: string): Buffer | undefined {
    const value = this.#byName.get(name);
    if (value === undefined) return undefined;
    if (value.kind !== 'bytes') throw corrupt(name);
    return value.value;
  }

  bool(name: string): boolean | undefined {
    const value = this.#byName.get(name);
    if (value === undefined) return undefined;
    if (value.kind !== 'bool') throw corrupt(name);
    return value.value;
  }

  refs(name: string): readonly DataRef[] | undefined {
    const value = this.#byName.get(name);
    if (value === undefined) return undefined;
    if (value.kind !== 'dataRefs') throw corrupt(name);
    return value.value;
  }

  json<T>(name: string, schema: z.ZodType<T>): T | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    try {
      return schema.parse(JSON.parse(text));
    } catch (error) {
      throw new StorageError('partition.corrupt', `blob row column ${name} does not parse`, { cause: error });
    }
  }
}

function corrupt(name: string): StorageError {
  return new StorageError('partition.corrupt', `blob row column ${name} has the wrong type`);
}

/** Builds a column list, skipping undefined values. */
class ColumnList {
  readonly columns: Column[] = [];

  string(name: string, value: string | undefined): this {
    if (value !== undefined) this.columns.push({ name, value: { kind: 'string', value } });
    return this;
  }

  int(name: string, value: number | undefined): this {
    if (value !== undefined) this.columns.push({ name, value: { kind: 'int64', value: BigInt(value) } });
    return this;
  }

  bytes(name: string, value: Uint8Array | undefined): this {
    // A Buffer is kept as is (an inline body is not copied on every row write); columns are never mutated.
    if (value !== undefined) this.columns.push({ name, value: { kind: 'bytes', value: Buffer.isBuffer(value) ? value : Buffer.from(value) } });
    return this;
  }

  bool(name: string, value: boolean | undefined): this {
    if (value !== undefined) this.columns.push({ name, value: { kind: 'bool', value } });
    return this;
  }

  refs(name: string, value: readonly DataRef[] | undefined): this {
    if (value !== undefined) this.columns.push({ name, value: { kind: 'dataRefs', value } });
    return this;
  }

  json(name: string, value: unknown): this {
    if (value !== undefined) this.string(name, JSON.stringify(value));
    return this;
  }
}

// ---- blobs -------------------------------------------------------------------------------------

const headerNames = ['contentType', 'contentEncoding', 'contentLanguage', 'cacheControl', 'contentDisposition'] as const;

/** The record without its copy state: the x-ms-copy-* properties and the transfer's beat ('copy',
 * 'copyBeatMs'), or the beat alone (a copy that ended has none). */
export function withoutCopyFields(record: BlobRecord, fields: readonly ('copy' | 'copyBeatMs')[]): BlobRecord {
  const rest: { -readonly [K in keyof BlobRecord]: BlobRecord[K] } = { ...record };
  for (const field of fields) delete rest[field];
  return rest;
}

export function decodeBlob(row: LiveRow): BlobRecord {
  const c = new Columns(row);
  const type = c.string('type');
  if (type !== 'BlockBlob' && type !== 'AppendBlob') throw corrupt('type');
  const headers: { -readonly [K in keyof BlobHttpHeaders]: BlobHttpHeaders[K] } = {};
  for (const name of headerNames) {
    const value = c.string(name);
    if (value !== undefined) headers[name] = value;
  }
  const md5 = c.bytes('contentMd5');
  if (md5 !== undefined) headers.contentMd5 = md5;
  const copy = c.json('copy', copySchema);
  return {
    type, createdMs: c.int('created') ?? row.lastModifiedMs, size: c.int('size') ?? 0, headers,
    ...optional('etag', c.string('etag')), ...optional('modifiedMs', c.int('modified')),
    metadata: c.json('metadata', pairs) ?? [], tags: (c.json('tags', pairs) ?? []).map(([key, value]) => ({ key, value })),
    ...optional('tier', c.string('tier') as AccessTier | undefined), lease: decodeLease(c),
    ...(copy === undefined ? {} : { copy: decodeCopy(copy) }), ...optional('copyBeatMs', c.int('copyBeat')),
    blockList: decodeStoredBlockList(c), append: decodeAppend(c),
  };
}

function decodeCopy(copy: z.infer<typeof copySchema>): CopyProperties {
  return {
    id: copy.id, status: copy.status, source: copy.source, progress: copy.progress,
    ...(copy.completedOnMs === undefined ? {} : { completedOn: new Date(copy.completedOnMs) }),
    ...optional('statusDescription', copy.statusDescription),
  };
}

function decodeLease(c: Columns): LeaseRecord | null {
  const lease = c.json('lease', leaseSchema);
  if (lease === undefined) return null;
  return {
    state: lease.state, id: lease.id, durationSeconds: lease.durationSeconds,
    ...optional('expiresMs', lease.expiresMs), ...optional('breakMs', lease.breakMs),
  };
}

function decodeStoredBlockList(c: Columns): StoredBlockList | null {
  const body = c.bytes('body');
  if (body !== undefined) return { kind: 'body', bytes: body };
  const index = c.bytes('blockIndex');
  if (index !== undefined) return { kind: 'inline', index, refs: c.refs('blockRefs') ?? [] };
  const indexDoc = c.refs('blockIndexDoc');
  const listId = c.string('blockListId');
  if (indexDoc !== undefined && listId !== undefined) return { kind: 'paged', indexDoc, listId, pages: c.int('blockListPages') ?? 0 };
  const v1 = c.bytes('blocks');
  if (v1 !== undefined) return { kind: 'v1-inline', bytes: v1 };
  const v1Refs = c.refs('blockListRefs');
  return v1Refs === undefined ? null : { kind: 'v1-document', refs: v1Refs };
}

function encodeStoredBlockList(list: ColumnList, stored: StoredBlockList | null): void {
  switch (stored?.kind) {
    case undefined:
      return;
    case 'inline':
      list.bytes('blockIndex', stored.index).refs('blockRefs', stored.refs);
      return;
    case 'paged':
      list.refs('blockIndexDoc', stored.indexDoc).string('blockListId', stored.listId).int('blockListPages', stored.pages);
      return;
    case 'v1-inline':
      list.bytes('blocks', stored.bytes);
      return;
    case 'v1-document':
      list.refs('blockListRefs', stored.refs);
      return;
    case 'body':
      list.bytes('body', stored.bytes);
  }
}

function decodeAppend(c: Columns): AppendState | null {
  const inc = c.string('appendInc');
  if (inc === undefined) return null;
  return { inc, segments: c.int('appendSegments') ?? 0, tail: c.refs('appendTail') ?? [], blockCount: c.int('blockCount') ?? 0, sealed: c.bool('sealed') ?? false };
}

export function encodeBlob(record: BlobRecord): Column[] {
  const list = new ColumnList().string('type', record.type).int('created', record.createdMs).int('size', record.size)
    .string('etag', record.etag).int('modified', record.modifiedMs);
  for (const name of headerNames) list.string(name, record.headers[name]);
  list.bytes('contentMd5', record.headers.contentMd5)
    .json('metadata', record.metadata.length === 0 ? undefined : record.metadata)
    .json('tags', record.tags.length === 0 ? undefined : record.tags.map((tag) => [tag.key, tag.value]))
    .string('tier', record.tier).json('lease', record.lease ?? undefined).json('copy', encodeCopy(record.copy))
    .int('copyBeat', record.copyBeatMs);
  encodeStoredBlockList(list, record.blockList);
  if (record.append !== null) {
    list.string('appendInc', record.append.inc).int('appendSegments', record.append.segments).refs('appendTail', record.append.tail)
      .int('blockCount', record.append.blockCount).bool('sealed', record.append.sealed);
  }
  return list.columns;
}

function encodeCopy(copy: CopyProperties | undefined): unknown {
  if (copy === undefined) return undefined;
  return {
    id: copy.id, status: copy.status, source: copy.source, progress: copy.progress,
    ...(copy.completedOn === undefined ? {} : { completedOnMs: copy.completedOn.getTime() }),
    ...optional('statusDescription', copy.statusDescription),
  };
}

// ---- containers, staging, uncommitted blocks, segments ------------------------------------------

export function decodeContainer(row: LiveRow): ContainerRecord {
  const c = new Columns(row);
  const inc = c.string('inc');
  if (inc === undefined) throw corrupt('inc');
  const publicAccess = c.string('publicAccess');
  if (publicAccess !== undefined && publicAccess !== 'container' && publicAccess !== 'blob') throw corrupt('publicAccess');
  const identifiers = (c.json('acl', identifiersSchema) ?? []).map((item) => ({
    id: item.id, ...optional('start', item.start), ...optional('expiry', item.expiry), ...optional('permission', item.permission),
  }));
  return {
    inc, ...optional('etag', c.string('etag')), ...optional('modifiedMs', c.int('modified')),
    metadata: c.json('metadata', pairs) ?? [], publicAccess: publicAccess ?? null, identifiers, lease: decodeLease(c),
  };
}

export function encodeContainer(record: ContainerRecord): Column[] {
  return new ColumnList().string('inc', record.inc).string('etag', record.etag).int('modified', record.modifiedMs)
    .json('metadata', record.metadata.length === 0 ? undefined : record.metadata).string('publicAccess', record.publicAccess ?? undefined)
    .json('acl', record.identifiers.length === 0 ? undefined : record.identifiers).json('lease', record.lease ?? undefined).columns;
}

export function decodeStaging(row: LiveRow): StagingRecord {
  const c = new Columns(row);
  const gen = c.string('gen');
  if (gen === undefined) throw corrupt('gen');
  const idBytes = c.int('idBytes');
  return { gen, count: c.int('count') ?? 0, sinceMs: c.int('since') ?? row.lastModifiedMs, ...(idBytes === undefined ? {} : { idBytes }) };
}

export function encodeStaging(record: StagingRecord): Column[] {
  return new ColumnList().string('gen', record.gen).int('count', record.count).int('since', record.sinceMs).int('idBytes', record.idBytes).columns;
}

export function decodeUncommitted(row: LiveRow): UncommittedRecord {
  const c = new Columns(row);
  return { size: c.int('size') ?? 0, refs: c.refs('data') ?? [] };
}

export function encodeUncommitted(record: UncommittedRecord): Column[] {
  return new ColumnList().int('size', record.size).refs('data', record.refs).columns;
}

export function decodeSegment(row: LiveRow): readonly DataRef[] {
  return new Columns(row).refs('data') ?? [];
}

export function encodeSegment(refs: readonly DataRef[]): Column[] {
  return new ColumnList().refs('data', refs).columns;
}

export function decodeJsonColumn<T>(row: LiveRow, name: string, schema: z.ZodType<T>): T | undefined {
  return new Columns(row).json(name, schema);
}

export function jsonColumn(name: string, value: unknown): Column[] {
  return new ColumnList().json(name, value).columns;
}

function optional<K extends string, V>(name: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [name]: value } as { [P in K]?: V });
}
