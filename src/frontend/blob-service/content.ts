// Where a blob's bytes are: inline in its row (a small Put Blob's body, docs/blob-schema.md
// "Inline bodies"), or the ordered refs of a block blob (its committed block list) or of an
// append blob (its segment rows, then its tail); how an append blob's refs are laid out in
// segments (docs/blob-schema.md, "Append blobs"); and reading a range of either.
//
// Invariants: the refs' lengths sum to the record's size; a segment row is never rewritten (GC
// copy-forward aside) and holds appendSegmentRefs refs when written (rows written when it was
// 1024 hold 1024: readers take each row's refs as they are); a tail holds fewer.
// Fault model: a missing segment row is partition.corrupt (segments are written in the same
// transaction as the row that counts them).

import { appendSegmentRefs, blobScanRowsPerCall } from '../../constants.ts';
import type { PartitionOp } from '../../partition/partition.ts';
import { StorageError } from '../../util/errors.ts';
import type { DataRef } from '../../wire/partition-row.ts';
import { loadBlockList } from './block-list.ts';
import type { BlobTables } from './blob-tables.ts';
import { readRefs, refsLength, writeBody, type WrittenData } from './data.ts';
import type { BlobServiceContext, LoadedBlob } from './context.ts';
import { segmentKey, segmentPrefix } from './keys.ts';
import { decodeSegment, encodeSegment, type AppendState } from './records.ts';

/** A blob version's bytes: inline in its row, or refs into its partition's data stream. */
export type StoredContent = { readonly kind: 'inline'; readonly bytes: Buffer } | { readonly kind: 'refs'; readonly refs: readonly DataRef[] };

export async function blobContent(ctx: BlobServiceContext, loaded: LoadedBlob): Promise<StoredContent> {
  const record = loaded.record;
  if (record.blockList?.kind === 'body') return { kind: 'inline', bytes: record.blockList.bytes };
  if (record.append !== null) {
    const refs = await segmentRefs(ctx, loaded.blobKey, record.append);
    refs.push(...record.append.tail);
    return { kind: 'refs', refs };
  }
  const blocks = await loadBlockList(ctx.tables, loaded.blobKey, record.blockList);
  return { kind: 'refs', refs: blocks.flatMap((block) => block.refs) };
}

/** The bytes [start, end] (inclusive) of a content, streamed (an inline body: one view of the row's bytes). */
export async function* readContent(tables: BlobTables, key: Buffer, content: StoredContent, range: { readonly start: number; readonly end: number }, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  if (content.kind === 'refs') {
    yield* readRefs(tables, key, content.refs, range, signal);
    return;
  }
  if (range.end >= range.start) yield await Promise.resolve(content.bytes.subarray(range.start, range.end + 1));
}

export function contentSize(content: StoredContent): number {
  return content.kind === 'inline' ? content.bytes.length : refsLength(content.refs);
}

/** Copies a content (or its range [start, end]) into the data stream of `targetKey`'s partition. */
export async function copyContent(tables: BlobTables, source: { readonly key: Buffer; readonly content: StoredContent }, targetKey: Buffer, range: { readonly start: number; readonly end: number } | null): Promise<WrittenData> {
  const body = readContent(tables, source.key, source.content, range ?? { start: 0, end: contentSize(source.content) - 1 });
  return writeBody(tables, targetKey, body);
}

/** The refs of every segment row of an append incarnation, in order (scanned, 128 rows per call). */
async function segmentRefs(ctx: BlobServiceContext, blob: Buffer, state: AppendState): Promise<DataRef[]> {
  const refs: DataRef[] = [];
  let index = 0;
  let continuation: string | null = null;
  do {
    const page = await ctx.tables.scan({ prefix: segmentPrefix(blob, state.inc), limit: blobScanRowsPerCall, ...(continuation === null ? {} : { continuation }) });
    for (const item of page.items) {
      if (item.kind !== 'row' || index >= state.segments) continue;
      if (!item.row.key.equals(segmentKey(blob, state.inc, index))) throw new StorageError('partition.corrupt', `append segment ${index} is missing`);
      refs.push(...decodeSegment(item.row));
      index += 1;
    }
    continuation = page.continuation;
  } while (continuation !== null && index < state.segments);
  if (index !== state.segments) throw new StorageError('partition.corrupt', `append segment ${index} is missing`);
  return refs;
}

/** Appends refs to an append state: the new state and the segment rows to write with it. */
export function appendRefs(blob: Buffer, state: AppendState, refs: readonly DataRef[]): { state: AppendState; segments: PartitionOp[] } {
  let tail = [...state.tail, ...refs];
  let segments = state.segments;
  const ops: PartitionOp[] = [];
  while (tail.length >= appendSegmentRefs) {
    ops.push({ kind: 'put', key: segmentKey(blob, state.inc, segments), columns: encodeSegment(tail.slice(0, appendSegmentRefs)), ifNoneMatch: '*' });
    tail = tail.slice(appendSegmentRefs);
    segments += 1;
  }
  return { state: { ...state, tail, segments }, segments: ops };
}
