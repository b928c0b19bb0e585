// Where a blob's bytes are: the ordered refs of a block blob (its committed block list) or of an
// append blob (its segment rows, then its tail), and how an append blob's refs are laid out in
// segments (docs/blob-schema.md, "Append blobs").
//
// Invariants: the refs' lengths sum to the record's size; a segment row holds exactly
// appendSegmentRefs refs and is never rewritten; a tail holds fewer than appendSegmentRefs refs.
// Fault model: a missing segment row is partition.corrupt (segments are written in the same
// transaction as the row that counts them).

import { appendSegmentRefs } from '../../constants.ts';
import type { PartitionOp } from '../../partition/partition.ts';
import { StorageError } from '../../util/errors.ts';
import type { DataRef } from '../../wire/partition-row.ts';
import { loadBlockList } from './block-list.ts';
import type { BlobServiceContext, LoadedBlob } from './context.ts';
import { segmentKey } from './keys.ts';
import { decodeSegment, encodeSegment, type AppendState } from './records.ts';

export async function contentRefs(ctx: BlobServiceContext, loaded: LoadedBlob): Promise<readonly DataRef[]> {
  const record = loaded.record;
  if (record.append !== null) {
    const refs: DataRef[] = [];
    for (let index = 0; index < record.append.segments; index++) {
      const row = await ctx.tables.get(segmentKey(loaded.blobKey, record.append.inc, index));
      if (row === null) throw new StorageError('partition.corrupt', `append segment ${index} is missing`);
      refs.push(...decodeSegment(row));
    }
    refs.push(...record.append.tail);
    return refs;
  }
  const blocks = await loadBlockList(ctx.tables, loaded.blobKey, record.blockList);
  return blocks.flatMap((block) => block.refs);
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
