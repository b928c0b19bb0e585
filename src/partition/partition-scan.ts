// One page of a range scan over a partition's merged sources: rows in key order within
// [start, end), tombstones skipped, optionally grouped by a delimiter after a prefix (Azure's
// ListBlobs "BlobPrefix"), stopping at `limit` items, after examining scanExaminedMax entries or
// once the items returned hold scanPageBytesMax bytes (rows with inline bytes, docs/blob-schema.md
// "Inline bodies", are up to ~1 MiB each), with where the next page starts.
//
// Efficiency: the merge cursor seeks, so a delimiter group costs one seek past the whole group,
// not a walk over its rows; work per page is bounded by limit + examinedMax entries.
//
// Invariants: items are in strictly increasing key order; a row or prefix is never returned on
// two pages (the next page starts exactly after what this page returned); a prefix item is
// returned only if some live row lies under it.
// Fault model: run block reads may throw; the page then fails whole (no partial page).
import { assert } from '../util/assert.ts';
import { encodedRowIsTombstone, encodeRow } from '../wire/partition-row.ts';
import type { RowRecord } from '../wire/partition-row.ts';
import type { Continuation } from './continuation-token.ts';
import type { MergeCursor, SourceCursor } from './cursors.ts';

export type LiveRow = Extract<RowRecord, { kind: 'live' }>;

export type ScanItem = { readonly kind: 'row'; readonly row: LiveRow } | PrefixItem;

/** A scan item as the RPC sends it: a live row in the row codec (no decode and re-encode), or a prefix. */
export type EncodedScanItem = { readonly kind: 'encoded'; readonly bytes: Buffer } | PrefixItem;

/**
 * What a scan makes of the newest version at a key: an item, or null for a tombstone.
 * `decodedRows` (the engine's callers) decodes it; `encodedRows` (the server) passes a run's bytes
 * through and encodes only memtable rows.
 */
export type RowItem<T> = (source: SourceCursor) => T | null;

export const decodedRows: RowItem<{ readonly kind: 'row'; readonly row: LiveRow }> = (source) => {
  const row = source.row();
  return row?.kind === 'live' ? { kind: 'row', row } : null;
};

export const encodedRows: RowItem<{ readonly kind: 'encoded'; readonly bytes: Buffer }> = (source) => {
  const bytes = source.encoded();
  if (bytes !== null) return encodedRowIsTombstone(bytes) ? null : { kind: 'encoded', bytes };
  const row = source.row();
  return row?.kind === 'live' ? { kind: 'encoded', bytes: encodeRow(row) } : null;
};

export interface ScanBounds {
  /** latin1 keys. */
  readonly start: Continuation;
  readonly end: string | null;
  readonly prefixLength: number;
  readonly delimiter: string | null;
  readonly limit: number;
  readonly examinedMax: number;
  /** A page stops before its next item once its items hold this many bytes (at least one item is returned). */
  readonly bytesMax: number;
}

export type PrefixItem = { readonly kind: 'prefix'; readonly prefix: Buffer };

export interface ScanResult<T> {
  readonly items: (T | PrefixItem)[];
  readonly next: Continuation | null;
  readonly examined: number;
}

export async function scanPage<T>(merge: MergeCursor, bounds: ScanBounds, rowItem: RowItem<T>): Promise<ScanResult<T>> {
  assert(bounds.limit >= 1 && bounds.examinedMax >= 1, 'a scan page returns or examines at least one entry');
  const items: ScanResult<T>['items'] = [];
  let examined = 0;
  let bytes = 0;
  await merge.seek(bounds.start.key, bounds.start.inclusive);
  for (let key = merge.key(); key !== null && (bounds.end === null || key < bounds.end); key = merge.key()) {
    if (items.length >= bounds.limit || examined >= bounds.examinedMax || bytes >= bounds.bytesMax) return { items, next: { key, inclusive: true }, examined };
    examined += 1;
    const source = merge.newest();
    assert(source !== null, 'a positioned merge has a row');
    const item = rowItem(source);
    const group = item === null ? null : delimiterGroup(key, bounds);
    if (group !== null) {
      items.push({ kind: 'prefix', prefix: Buffer.from(group, 'latin1') });
      const after = successor(group);
      if (after === null) return { items, next: null, examined };
      await merge.seek(after, true);
      continue;
    }
    if (item !== null) {
      items.push(item);
      bytes += itemBytes(item);
    }
    // step(): no promise and no await unless a source must read its next block (most rows).
    const moving = merge.step();
    if (moving !== null) await moving;
  }
  return { items, next: null, examined };
}

/** Bytes an item puts in a scan answer: an encoded row's length; a decoded row's key and column values (an estimate). */
function itemBytes(item: unknown): number {
  if (typeof item !== 'object' || item === null) return 0;
  if ('bytes' in item && Buffer.isBuffer(item.bytes)) return item.bytes.length;
  if (!('row' in item)) return 0;
  const row = item.row as LiveRow;
  let total = row.key.length;
  for (const column of row.columns) {
    const value = column.value;
    total += column.name.length + (value.kind === 'bytes' || value.kind === 'string' ? value.value.length : value.kind === 'dataRefs' ? 24 * value.value.length : 8);
  }
  return total;
}

/** The key's prefix up to and including the first delimiter after the scan prefix, or null. */
function delimiterGroup(key: string, bounds: ScanBounds): string | null {
  if (bounds.delimiter === null) return null;
  const at = key.indexOf(bounds.delimiter, bounds.prefixLength);
  return at === -1 ? null : key.slice(0, at + bounds.delimiter.length);
}

/** The smallest key greater than every key that starts with `prefix` (latin1), or null if none. */
export function successor(prefix: string): string | null {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xff) end -= 1;
  if (end === 0) return null;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}
