// Blob snapshots (docs/blob-schema.md, "Blob rows"): a snapshot row K(blob) 0x00 's' <id> holds a
// copy of the blob row's columns at the time of the snapshot (its refs, block list, segments'
// append incarnation), with the blob's ETag and Last-Modified of that moment and no lease.
//
// Invariants: a snapshot is created in one transaction with a rewrite of the blob row under its
// read version (ETag kept), so a snapshot never outlives a concurrent delete of its blob;
// snapshot ids are unique per blob (If-None-Match: *, the tick advances on a collision).
// Fault model: as context.ts.

import { blobScanRowsPerCall } from '../../constants.ts';
import type { LiveRow } from '../../partition/partition.ts';
import type { SnapshotId } from '../model.ts';
import type { SnapshotResult } from '../blob-backend.ts';
import { FrontendError } from '../errors.ts';
import type * as Op from '../operation.ts';
import { checkBlobWrite, refusePendingCopy } from './blob-write.ts';
import { quotedEtag, checkConditions } from './conditions.ts';
import {
  blobNotFound, keepVersion, loadContainer, loadedBlob, metadataPairs, putOp, readBlob, withRetry, type BlobServiceContext, type LoadedBlob,
} from './context.ts';
import { blobKey, snapshotKey, snapshotPrefix } from './keys.ts';
import { checkLeaseAccess } from './lease.ts';
import { leavesDeadRows } from './blob-sweep.ts';
import { commitMaybeUnderIntent, type SweepIntent } from './sweep-intents.ts';
import { encodeBlob } from './records.ts';
import { hiddenBy, readSnapshotHorizon, snapshotIdAbove, type SnapshotHorizon } from './snapshot-horizon.ts';

export async function readSnapshotRow(ctx: BlobServiceContext, blob: Buffer, snapshot: string): Promise<LoadedBlob | null> {
  const row = await ctx.tables.get(snapshotKey(blob, snapshot));
  if (row === null || hiddenBy(await readSnapshotHorizon(ctx, blob), snapshot)) return null;
  return loadedBlob(row, blob, snapshot as SnapshotId);
}

/** Every snapshot row of a blob a client sees (above its horizon, read first), oldest first. */
export async function snapshotRows(ctx: BlobServiceContext, blob: Buffer): Promise<{ readonly rows: LiveRow[]; readonly horizon: SnapshotHorizon }> {
  const horizon = await readSnapshotHorizon(ctx, blob);
  const prefix = snapshotPrefix(blob);
  const rows: LiveRow[] = [];
  let continuation: string | undefined;
  do {
    const page = await ctx.tables.scan({ prefix, limit: blobScanRowsPerCall, ...(continuation === undefined ? {} : { continuation }) });
    for (const item of page.items) if (item.kind === 'row' && !hiddenBy(horizon, snapshotIdOf(blob, item.row))) rows.push(item.row);
    continuation = page.continuation ?? undefined;
  } while (continuation !== undefined);
  return { rows, horizon };
}

export function snapshotIdOf(blob: Buffer, row: LiveRow): SnapshotId {
  return row.key.subarray(snapshotPrefix(blob).length).toString('utf8') as SnapshotId;
}

export async function snapshotBlob(ctx: BlobServiceContext, op: Op.SnapshotBlob): Promise<SnapshotResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  return withRetry(ctx, async (attempt) => {
    const existing = await readBlob(ctx, container, op.blob);
    if (existing === null) throw blobNotFound();
    const nowMs = ctx.clock.nowMs();
    checkLeaseAccess(existing.record.lease, nowMs, op.leaseId, { write: false, target: 'blob' });
    checkConditions(op.conditions, { etag: existing.etag, modifiedMs: existing.modifiedMs, tags: existing.record.tags }, { read: false });
    // A snapshot of a copy's destination would keep its pending state (and no bytes) forever.
    refusePendingCopy(existing, nowMs);
    const snapshot = snapshotIdAbove(await readSnapshotHorizon(ctx, key), nowMs, attempt);
    const record = { ...keepVersion(existing, existing.record), lease: null, ...(op.metadata.size === 0 ? {} : { metadata: metadataPairs(op.metadata) }) };
    await ctx.tables.transact([
      putOp(key, encodeBlob(keepVersion(existing, existing.record)), existing.row),
      putOp(snapshotKey(key, snapshot), encodeBlob(record), null),
    ]);
    return { etag: quotedEtag(existing.etag), lastModified: new Date(existing.modifiedMs), snapshot };
  });
}

/** Delete Blob with ?snapshot=: removes that snapshot only; a snapshot naming pages or segments
 * (which may die with it) is deleted under a sweep intent, returned for the caller's sweep. */
export async function deleteSnapshot(ctx: BlobServiceContext, op: Op.DeleteBlob, snapshot: SnapshotId): Promise<SweepIntent | null> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  if (op.deleteSnapshots !== undefined) throw new FrontendError('InvalidQueryParameterValue', 'x-ms-delete-snapshots cannot be used when deleting a snapshot', [['QueryParameterName', 'snapshot']]);
  return withRetry(ctx, async () => {
    const existing = await readSnapshotRow(ctx, key, snapshot);
    if (existing === null) throw blobNotFound();
    checkBlobWrite(existing, { conditions: op.conditions }, { nowMs: ctx.clock.nowMs(), createOnly: false });
    const commit = (): Promise<unknown> => ctx.tables.transact([{ kind: 'delete', key: existing.key, ifMatch: existing.row.etag }]);
    return (await commitMaybeUnderIntent(ctx, { blob: key, fence: leavesDeadRows(existing.record) ? existing.row : null }, commit)).intent;
  });
}
