// The snapshot horizon (docs/blob-schema.md, "Deleting more snapshots than a transaction holds"):
// a row K(blob) 0x00 'h' whose column `through` is a snapshot id; every snapshot row of the blob
// with an id up to it is deleted as far as any client sees, and only waits for a sweep to go.
// Delete Blob of more snapshots than one transaction holds deletes what fits and raises the
// horizon over the rest in the same transaction, so the blob and all its snapshots go at once.
//
// Invariants: a snapshot row with an id above the horizon is never hidden by it, and ids only
// grow: Snapshot Blob picks an id above the horizon it read after the blob row, and its commit's
// If-Match on the blob row fails if a delete raised the horizon in between (every delete rewrites
// or deletes the blob row). The row is deleted (If-Match) only after every hidden snapshot row is.
// Fault model: as context.ts; a sweep stopped midway leaves hidden rows still hidden.

import { blobScanRowsPerCall } from '../../constants.ts';
import type { LiveRow, PartitionOp } from '../../partition/partition.ts';
import type { Column } from '../../wire/partition-row.ts';
import type { SnapshotId } from '../model.ts';
import { snapshotIdAt, type BlobServiceContext } from './context.ts';
import { snapshotHorizonKey, snapshotPrefix } from './keys.ts';

export interface SnapshotHorizon {
  readonly row: LiveRow | null;
  /** Snapshot ids up to this one are deleted; '' when the blob has no horizon row. */
  readonly through: string;
}

export async function readSnapshotHorizon(ctx: BlobServiceContext, blob: Buffer): Promise<SnapshotHorizon> {
  return horizonOfRow(await ctx.tables.get(snapshotHorizonKey(blob)));
}

/** The horizon a row holds (a scan met it), or none for null. */
export function horizonOfRow(row: LiveRow | null): SnapshotHorizon {
  const through = row?.columns.find((column) => column.name === 'through')?.value;
  return { row, through: through?.kind === 'string' ? through.value : '' };
}

export function hiddenBy(horizon: SnapshotHorizon, snapshot: string): boolean {
  return snapshot <= horizon.through;
}

/** The op that raises the horizon to `through` (If-Match the row as read, or If-None-Match when absent). */
export function raiseHorizonOp(blob: Buffer, horizon: SnapshotHorizon, through: string): PartitionOp {
  const columns: Column[] = [{ name: 'through', value: { kind: 'string', value: through } }];
  const condition = horizon.row === null ? { ifNoneMatch: '*' as const } : { ifMatch: horizon.row.etag };
  return { kind: 'put', key: snapshotHorizonKey(blob), columns, ...condition };
}

/** A new snapshot's id: the clock's, or the first id above the horizon when the clock is behind it. */
export function snapshotIdAbove(horizon: SnapshotHorizon, nowMs: number, tick: number): SnapshotId {
  const id = snapshotIdAt(nowMs, tick);
  if (!hiddenBy(horizon, id)) return id;
  const throughMs = Date.parse(`${horizon.through.slice(0, 23)}Z`);
  const throughTick = Number(horizon.through.slice(23, 27));
  return throughTick < 9999 ? snapshotIdAt(throughMs, throughTick + 1) : snapshotIdAt(throughMs + 1, 0);
}

/** The sweep's part: deletes the hidden snapshot rows, then the horizon row (If-Match: a delete
 * that raised it since keeps it); returns how many rows went. Throws on a failed call. */
export async function dropHiddenSnapshots(ctx: BlobServiceContext, blob: Buffer, batchRows: number): Promise<number> {
  const horizon = await readSnapshotHorizon(ctx, blob);
  if (horizon.row === null) return 0;
  const hidden = await hiddenSnapshotKeys(ctx, blob, horizon);
  for (let at = 0; at < hidden.length; at += batchRows) {
    await ctx.tables.transact(hidden.slice(at, at + batchRows).map((key) => ({ kind: 'delete', key })));
  }
  await ctx.tables.transact([{ kind: 'delete', key: horizon.row.key, ifMatch: horizon.row.etag }]);
  return hidden.length + 1;
}

/** The keys of the snapshot rows the horizon hides (the oldest ones: ids sort as their times). */
async function hiddenSnapshotKeys(ctx: BlobServiceContext, blob: Buffer, horizon: SnapshotHorizon): Promise<Buffer[]> {
  const prefix = snapshotPrefix(blob);
  const keys: Buffer[] = [];
  let continuation: string | null = null;
  do {
    const page = await ctx.tables.scan({ prefix, limit: blobScanRowsPerCall, ...(continuation === null ? {} : { continuation }) });
    for (const item of page.items) {
      if (item.kind !== 'row') continue;
      if (!hiddenBy(horizon, item.row.key.subarray(prefix.length).toString('utf8'))) return keys;
      keys.push(item.row.key);
    }
    continuation = page.continuation;
  } while (continuation !== null);
  return keys;
}
