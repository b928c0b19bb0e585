// Uncommitted blocks (docs/blob-schema.md, "Block staging"): the staging row of a blob (its
// current generation and block count) and the uncommitted-block rows of that generation.
//
// Invariants: a generation id is random and never reused, so rows of a discarded generation can
// never reappear; a generation older than uncommittedBlockExpiryMs reads as empty; at most
// uncommittedBlocksMax rows are read for one generation.
// Fault model: partition errors propagate; garbage rows of dead generations are harmless.

import { blobScanRowsPerCall, uncommittedBlockExpiryMs, uncommittedBlocksMax } from '../../constants.ts';
import type { LiveRow } from '../../partition/partition.ts';
import type { BlockId } from '../model.ts';
import type { BlobServiceContext } from './context.ts';
import { stagingKey, uncommittedPrefix } from './keys.ts';
import { decodeStaging, decodeUncommitted, type StagingRecord, type UncommittedRecord } from './records.ts';

export interface Staging {
  readonly row: LiveRow | null;
  /** null: no live generation (none yet, or expired). */
  readonly record: StagingRecord | null;
}

export async function readStaging(ctx: BlobServiceContext, blob: Buffer): Promise<Staging> {
  const row = await ctx.tables.get(stagingKey(blob));
  if (row === null) return { row, record: null };
  const record = decodeStaging(row);
  const expired = ctx.clock.nowMs() - record.sinceMs > uncommittedBlockExpiryMs;
  return { row, record: expired ? null : record };
}

export interface UncommittedBlock {
  readonly key: Buffer;
  readonly id: BlockId;
  readonly record: UncommittedRecord;
}

/** Every uncommitted block of a generation, in key order (block id bytes). */
export async function uncommittedBlocks(ctx: BlobServiceContext, blob: Buffer, gen: string): Promise<UncommittedBlock[]> {
  const prefix = uncommittedPrefix(blob, gen);
  const blocks: UncommittedBlock[] = [];
  let continuation: string | undefined;
  do {
    const page = await ctx.tables.scan({ prefix, limit: blobScanRowsPerCall, ...(continuation === undefined ? {} : { continuation }) });
    for (const item of page.items) {
      if (item.kind !== 'row') continue;
      const id = item.row.key.subarray(prefix.length).toString('base64') as BlockId;
      blocks.push({ key: item.row.key, id, record: decodeUncommitted(item.row) });
    }
    continuation = page.continuation ?? undefined;
  } while (continuation !== undefined && blocks.length <= uncommittedBlocksMax);
  return blocks;
}
