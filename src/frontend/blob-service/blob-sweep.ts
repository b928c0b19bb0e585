// Sweeping a blob's range (docs/blob-schema.md, "Rows nothing refers to"): page rows of replaced
// block lists, segment rows of replaced append incarnations and uncommitted rows of discarded
// staging generations are dead, and a dead row keeps its data alive for partition data GC. After
// a write that replaced one of them (and after deletes) the backend deletes them:
//
//   0. delete the snapshot rows the blob's snapshot horizon hides, then the horizon row
//   1. scan K 0x00 …: the page (l), segment (a) and uncommitted (u) rows and their ids
//   2. then read the blob row, the snapshot rows, the staging row
//   3. delete the rows of step 1 whose id neither the blob row, a snapshot nor the staging names
//
// Invariants: a row is deleted only if its id was found dead after the row was seen (step 2
// after step 1); ids are random and never reused, a page or segment row exists only once the
// transaction naming its id committed, and only a snapshot taken while the blob row named an id
// can name it later, so an id dead in step 3 stays dead (the argument is in the doc). At most
// blobSweepRowsMax rows are examined per call.
// Fault model: best effort: any failure stops the sweep; dead rows left behind cost space only.

import { blobCleanupBatchRows, blobScanRowsPerCall, blobSweepRowsMax } from '../../constants.ts';
import type { LiveRow, PartitionOp } from '../../partition/partition.ts';
import { AssertionFailure } from '../../util/assert.ts';
import type { BlobServiceContext } from './context.ts';
import { auxPrefix, auxRow, listPageKey, segmentKey, snapshotPrefix, stagingKey } from './keys.ts';
import type { AuxRowKind } from './keys.ts';
import { decodeBlob, decodeStaging, type BlobRecord } from './records.ts';
import { uncommittedBlocks } from './staging.ts';
import { dropHiddenSnapshots } from './snapshot-horizon.ts';

interface AuxKey {
  readonly key: Buffer;
  readonly kind: AuxRowKind;
  readonly id: string;
}

const sweptKinds: ReadonlySet<AuxRowKind> = new Set(['list', 'append', 'uncommitted']);

/** True when replacing or deleting `record` leaves rows only a sweep removes. */
export function leavesDeadRows(record: BlobRecord | null | undefined): boolean {
  return record?.blockList?.kind === 'paged' || (record?.append?.segments ?? 0) > 0;
}

/** Deletes the dead rows of a blob's range: how many, and whether every dead row is gone (no
 * failure, the range examined whole); never throws a StorageError. */
export async function sweepBlob(ctx: BlobServiceContext, blob: Buffer): Promise<{ readonly dropped: number; readonly finished: boolean }> {
  try {
    const hidden = await dropHiddenSnapshots(ctx, blob, blobCleanupBatchRows);
    const dead = await findDeadRows(ctx, blob);
    const dropped = await dropRows(ctx, dead.keys);
    return { dropped: hidden + dropped, finished: dead.complete && dropped === dead.keys.length };
  } catch (error) {
    if (error instanceof AssertionFailure) throw error;
    return { dropped: 0, finished: false };
  }
}

/** Steps 1-3: the keys of a blob's dead rows (the simulator counts them too); throws on failure. */
export async function deadRows(ctx: BlobServiceContext, blob: Buffer): Promise<Buffer[]> {
  return (await findDeadRows(ctx, blob)).keys;
}

/** The dead rows' keys, and whether the scan covered the whole range (not cut at blobSweepRowsMax). */
async function findDeadRows(ctx: BlobServiceContext, blob: Buffer): Promise<{ keys: Buffer[]; complete: boolean }> {
  const candidates = await auxKeys(ctx, blob);
  if (candidates.found.length === 0) return { keys: [], complete: candidates.complete };
  const live = await liveIds(ctx, blob);
  return { keys: candidates.found.filter((row) => !live.has(`${row.kind}:${row.id}`)).map((row) => row.key), complete: candidates.complete };
}

/**
 * Delete ops (at most `room`) for the rows that die with a whole blob (Delete Blob of the blob and
 * every snapshot): the list pages and append segments its versions name, then its staging gen's
 * uncommitted rows; complete: every such row has its op (else the commit needs a sweep intent). Delete Blob puts them in its own transaction, so a front end dying before the
 * sweep that follows leaves none of them dead (no later write of the name would sweep them). They
 * need no condition: the transaction's If-Match on the blob row (which Snapshot Blob, Put Block List
 * and Append Block rewrite) and on the staging row (which Put Block rewrites) fails it if a version,
 * a segment or a block was added since they were read.
 */
export async function rowsDyingWith(ctx: BlobServiceContext, blob: Buffer, versions: readonly BlobRecord[], staging: LiveRow | null, room: number): Promise<{ ops: PartitionOp[]; complete: boolean }> {
  const keys = new Map<string, Buffer>();
  const add = (key: Buffer): void => { keys.set(key.toString('latin1'), key); };
  for (const record of versions) {
    if (record.blockList?.kind === 'paged') for (let index = 0; index < record.blockList.pages; index++) add(listPageKey(blob, record.blockList.listId, index));
    if (record.append !== null) for (let index = 0; index < record.append.segments; index++) add(segmentKey(blob, record.append.inc, index));
  }
  const stagedRead = staging === null || keys.size < room;
  if (staging !== null && stagedRead) for (const block of await uncommittedBlocks(ctx, blob, decodeStaging(staging).gen)) add(block.key);
  const ops: PartitionOp[] = [...keys.values()].slice(0, Math.max(0, room)).map((key) => ({ kind: 'delete', key }));
  return { ops, complete: stagedRead && ops.length === keys.size };
}

/** Best-effort delete of rows nothing refers to, in batches; returns how many were deleted. */
export async function dropRows(ctx: BlobServiceContext, keys: readonly Buffer[]): Promise<number> {
  let dropped = 0;
  for (let at = 0; at < keys.length; at += blobCleanupBatchRows) {
    const batch = keys.slice(at, at + blobCleanupBatchRows);
    try {
      await ctx.tables.transact(batch.map((key) => ({ kind: 'delete', key })));
    } catch {
      return dropped;
    }
    dropped += batch.length;
  }
  return dropped;
}

async function auxKeys(ctx: BlobServiceContext, blob: Buffer): Promise<{ found: AuxKey[]; complete: boolean }> {
  const found: AuxKey[] = [];
  let continuation: string | null = null;
  let examined = 0;
  do {
    const page = await ctx.tables.scan({ prefix: auxPrefix(blob), limit: blobScanRowsPerCall, ...(continuation === null ? {} : { continuation }) });
    for (const item of page.items) {
      if (item.kind !== 'row') continue;
      examined += 1;
      const aux = auxRow(blob, item.row.key);
      if (aux !== null && sweptKinds.has(aux.kind)) found.push({ key: item.row.key, ...aux });
    }
    continuation = page.continuation;
  } while (continuation !== null && examined < blobSweepRowsMax);
  return { found, complete: continuation === null };
}

/** `kind:id` of every list, append incarnation and gen still named (read after the aux scan). */
async function liveIds(ctx: BlobServiceContext, blob: Buffer): Promise<Set<string>> {
  const live = new Set<string>();
  const name = (record: BlobRecord): void => {
    if (record.blockList?.kind === 'paged') live.add(`list:${record.blockList.listId}`);
    if (record.append !== null) live.add(`append:${record.append.inc}`);
  };
  const row = await ctx.tables.get(blob);
  if (row !== null) name(decodeBlob(row));
  let continuation: string | null = null;
  do {
    const page = await ctx.tables.scan({ prefix: snapshotPrefix(blob), limit: blobScanRowsPerCall, ...(continuation === null ? {} : { continuation }) });
    for (const item of page.items) if (item.kind === 'row') name(decodeBlob(item.row));
    continuation = page.continuation;
  } while (continuation !== null);
  const staging = await ctx.tables.get(stagingKey(blob));
  if (staging !== null) live.add(`uncommitted:${decodeStaging(staging).gen}`);
  return live;
}
