// Operations on any blob (docs/blob-schema.md): Get Blob (streamed, with Range), Get Properties /
// Metadata, Set Properties / Metadata / Tags / Tier, Get Tags, Delete (with snapshots), Lease.
//
// Invariants: reads check the lease id (if given) and the conditions against the version they
// serve, and stream exactly that version's refs (data never changes under a ref); writes are
// read-evaluate-write; Set Blob Tags / Tier and Lease Blob keep the blob's ETag and Last-Modified
// (explicit columns), as Azure does; Delete Blob removes the blob row, its staging row and its
// snapshots in one transaction (past blobCleanupBatchRows snapshots, the rest hidden by the
// snapshot horizon the same transaction raises), with the rows only they name as far as the
// transaction holds them (rowsDyingWith), then sweeps rows nothing can reach (best effort).
// Fault model: as context.ts; a client that goes away mid-download aborts the reads (signal).

import { createHash } from 'node:crypto';
import { blobCleanupBatchRows, getBlobWholeBodyBytesMax, partitionBatchMutationsMax } from '../../constants.ts';
import { Crc64 } from '../../util/crc64.ts';
import type { BlobContent, CallContext, LeaseResult, WriteResult } from '../blob-backend.ts';
import { FrontendError } from '../errors.ts';
import type { BlobProperties, BlobTag } from '../model.ts';
import type * as Op from '../operation.ts';
import { leavesDeadRows, rowsDyingWith } from './blob-sweep.ts';
import { commitMaybeUnderIntent, sweepThenDischarge, type SweepIntent } from './sweep-intents.ts';
import { checkBlobModify, checkBlobRead, checkBlobWrite, committed, type BlobWriteRequest } from './blob-write.ts';
import { checkConditions, quotedEtag } from './conditions.ts';
import { blobContent, readContent } from './content.ts';
import {
  blobNotFound, blobProperties, keepVersion, loadContainer, loadContainerAndBlob, metadataPairs, newVersion, putOp, readBlob, withRetry,
  type BlobServiceContext, type LoadedBlob, type LoadedContainer,
} from './context.ts';
import { commitTagged } from './tag-index.ts';
import { readRefs, readRefsWhole } from './data.ts';
import { blobKey, stagingKey } from './keys.ts';
import { applyLeaseAction } from './lease.ts';
import { decodeBlob, encodeBlob, withoutCopyFields, type BlobRecord } from './records.ts';
import { deleteSnapshot, readSnapshotRow, snapshotIdOf, snapshotRows } from './snapshots.ts';
import { raiseHorizonOp } from './snapshot-horizon.ts';
import type { PartitionOp } from '../../partition/partition.ts';

async function readVersion(ctx: BlobServiceContext, container: LoadedContainer, name: string, snapshot: string | undefined): Promise<LoadedBlob> {
  const loaded = snapshot === undefined ? await readBlob(ctx, container, name) : await readSnapshotRow(ctx, blobKey(container.blobs, name), snapshot);
  if (loaded === null) throw blobNotFound();
  return loaded;
}

/** The blob (or a snapshot or version of it) a read names, its container checked to exist: the
 * blob's own row with its container's in one partition call (loadContainerAndBlob). */
async function loadVersion(ctx: BlobServiceContext, op: { readonly account: string; readonly container: string; readonly blob: string }, snapshot: string | undefined): Promise<LoadedBlob> {
  if (snapshot !== undefined) return readVersion(ctx, await loadContainer(ctx, op.account, op.container), op.blob, snapshot);
  const { blob } = await loadContainerAndBlob(ctx, op.account, op.container, op.blob);
  if (blob === null) throw blobNotFound();
  return blob;
}

function resolveRange(op: Op.GetBlob, size: number): { start: number; end: number } | null {
  if (op.range === undefined) return null;
  if (op.range.start >= size) throw new FrontendError('InvalidRange', 'the range starts past the end of the blob');
  return { start: op.range.start, end: Math.min(op.range.end ?? size - 1, size - 1) };
}

export async function getBlob(ctx: BlobServiceContext, op: Op.GetBlob, call: CallContext): Promise<BlobContent> {
  const loaded = await loadVersion(ctx, op, op.snapshot ?? op.versionId);
  const nowMs = ctx.clock.nowMs();
  checkBlobRead(loaded, op, nowMs);
  if (loaded.record.tier === 'Archive') throw new FrontendError('BlobArchived', 'the blob is archived');
  const size = loaded.record.size;
  const range = resolveRange(op, size);
  const content = await blobContent(ctx, loaded);
  const properties = blobProperties(loaded, nowMs);
  const span = range ?? { start: 0, end: size - 1 };
  if (size === 0) return { properties, range: null, body: readRefs(ctx.tables, loaded.blobKey, [], { start: 0, end: -1 }) };
  const hashed = range !== null && (op.rangeGetContentMd5 === true || op.rangeGetContentCrc64 === true);
  // A large body is streamed; a small one (and a range hashed before it is served, at most
  // rangeContentHashBytesMax: the parser's check) is read whole and written in one call.
  if (content.kind === 'refs' && !hashed && span.end - span.start + 1 > getBlobWholeBodyBytesMax) {
    return { properties, range, body: readContent(ctx.tables, loaded.blobKey, content, span, call.signal) };
  }
  const bytes = content.kind === 'inline' ? content.bytes.subarray(span.start, span.end + 1) : await readRefsWhole(ctx.tables, loaded.blobKey, content.refs, span, ctx.dataCache);
  if (!hashed) return { properties, range, body: bytes };
  if (op.rangeGetContentCrc64 === true) {
    const crc = new Crc64();
    crc.update(bytes);
    return { properties, range, rangeContentCrc64: crc.digest(), body: bytes };
  }
  return { properties, range, rangeContentMd5: createHash('md5').update(bytes).digest(), body: bytes };
}

export async function getBlobProperties(ctx: BlobServiceContext, op: Op.GetBlobProperties | Op.GetBlobMetadata): Promise<BlobProperties> {
  const snapshot = op.kind === 'GetBlobProperties' ? op.snapshot ?? op.versionId : op.snapshot;
  const loaded = await loadVersion(ctx, op, snapshot);
  const nowMs = ctx.clock.nowMs();
  checkBlobRead(loaded, op, nowMs);
  return blobProperties(loaded, nowMs);
}

/** Whether Azure counts a write as a modification of the blob (a new ETag: refused while a copy
 * onto it is pending) or leaves its version as it is (Set Blob Tags / Tier: the copy goes on). */
type UpdateKind = 'modifies' | 'keepsVersion';

/** Read-evaluate-write of the blob row; `change` returns the new record (or throws). */
async function updateBlob(ctx: BlobServiceContext, op: BlobWriteRequest & { readonly account: string; readonly container: string; readonly blob: string }, kind: UpdateKind, change: (loaded: LoadedBlob) => BlobRecord): Promise<WriteResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const check = kind === 'modifies' ? checkBlobModify : checkBlobWrite;
  return withRetry(ctx, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    if (existing === null) throw blobNotFound();
    check(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: false });
    const record = change(existing);
    return committed(await commitTagged(ctx, { container, blob: existing.key, before: existing.record.tags, after: record.tags }, [putOp(existing.key, encodeBlob(record), existing.row)]));
  });
}

/** Azure: a blob modified by Set Blob Properties (as by Put Blob or Put Block List, which write a
 * new record) after a concluded copy no longer shows the x-ms-copy-* properties. */
export async function setBlobProperties(ctx: BlobServiceContext, op: Op.SetBlobProperties): Promise<WriteResult> {
  return updateBlob(ctx, op, 'modifies', (loaded) => newVersion({ ...withoutCopyFields(loaded.record, ['copy', 'copyBeatMs']), headers: op.httpHeaders }));
}

export async function setBlobMetadata(ctx: BlobServiceContext, op: Op.SetBlobMetadata): Promise<WriteResult> {
  return updateBlob(ctx, op, 'modifies', (loaded) => newVersion({ ...loaded.record, metadata: metadataPairs(op.metadata) }));
}

export async function setBlobTags(ctx: BlobServiceContext, op: Op.SetBlobTags, tags: readonly BlobTag[]): Promise<void> {
  await updateBlob(ctx, { ...op, conditions: op.conditions.ifTags === undefined ? {} : { ifTags: op.conditions.ifTags } }, 'keepsVersion', (loaded) => keepVersion(loaded, { ...loaded.record, tags }));
}

export async function getBlobTags(ctx: BlobServiceContext, op: Op.GetBlobTags): Promise<readonly BlobTag[]> {
  const container = await loadContainer(ctx, op.account, op.container);
  const loaded = await readVersion(ctx, container, op.blob, op.snapshot ?? op.versionId);
  checkBlobRead(loaded, { ...(op.leaseId === undefined ? {} : { leaseId: op.leaseId }), conditions: op.conditions.ifTags === undefined ? {} : { ifTags: op.conditions.ifTags } }, ctx.clock.nowMs());
  return loaded.record.tags;
}

export async function setBlobTier(ctx: BlobServiceContext, op: Op.SetBlobTier): Promise<void> {
  if (op.snapshot !== undefined) {
    const container = await loadContainer(ctx, op.account, op.container);
    await withRetry(ctx, async () => {
      const loaded = await readVersion(ctx, container, op.blob, op.snapshot);
      if (loaded.record.type !== 'BlockBlob') throw new FrontendError('InvalidBlobType', 'only block blobs have an access tier');
      await ctx.tables.transact([putOp(loaded.key, encodeBlob(keepVersion(loaded, { ...loaded.record, tier: op.tier })), loaded.row)]);
    });
    return;
  }
  await updateBlob(ctx, op, 'keepsVersion', (loaded) => {
    if (loaded.record.type !== 'BlockBlob') throw new FrontendError('InvalidBlobType', 'only block blobs have an access tier');
    return keepVersion(loaded, { ...loaded.record, tier: op.tier });
  });
}

export async function leaseBlob(ctx: BlobServiceContext, op: Op.LeaseBlob): Promise<LeaseResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  return withRetry(ctx, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    if (existing === null) throw blobNotFound();
    checkConditions(op.conditions, { etag: existing.etag, modifiedMs: existing.modifiedMs, tags: existing.record.tags }, { read: false });
    const transition = applyLeaseAction(existing.record.lease, ctx.clock.nowMs(), op.lease);
    await ctx.tables.transact([putOp(existing.key, encodeBlob(keepVersion(existing, { ...existing.record, lease: transition.lease })), existing.row)]);
    return {
      etag: quotedEtag(existing.etag), lastModified: new Date(existing.modifiedMs),
      ...(transition.leaseId === undefined ? {} : { leaseId: transition.leaseId }),
      ...(transition.leaseTimeSeconds === undefined ? {} : { leaseTimeSeconds: transition.leaseTimeSeconds }),
    };
  });
}

export async function deleteBlob(ctx: BlobServiceContext, op: Op.DeleteBlob): Promise<void> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  const intent = op.snapshot !== undefined ? await deleteSnapshot(ctx, op, op.snapshot) : await withRetry(ctx, () => deleteAttempt(ctx, op, container, key));
  await sweepThenDischarge(ctx, key, intent);
}

/** The blob row's op in Delete Blob of its snapshots only. Azure leaves the base blob as it is (not
 * a modification: its ETag and Last-Modified stay), so the row is only checked If-Match (the
 * conditions and lease evaluated hold at the commit) and keeps its row ETag, which an asynchronous
 * copy's transfer still writing it holds in its If-Match. Rewritten (Azure's ETag kept) only when a
 * horizon is raised: Snapshot Blob commits If-Match the blob row it read before the horizon, so
 * the rewrite refuses a snapshot whose id was chosen under the old one (H2, docs/blob-schema.md);
 * a copy's transfer refused by it reads the row again and goes on (remote-copy.ts). */
function onlySnapshotsBlobOp(key: Buffer, existing: LoadedBlob, raisesHorizon: boolean): PartitionOp {
  if (!raisesHorizon) return { kind: 'check', key, ifMatch: existing.row.etag };
  return putOp(key, encodeBlob(keepVersion(existing, existing.record)), existing.row);
}

/** One read-evaluate-commit of Delete Blob (not of a snapshot); the sweep intent if its commit
 * discards rows it has no room to delete (or snapshots' rows only a sweep tells dead or not). */
async function deleteAttempt(ctx: BlobServiceContext, op: Op.DeleteBlob, container: LoadedContainer, key: Buffer): Promise<SweepIntent | null> {
  const removeBase = op.deleteSnapshots !== 'only';
  const existing = await readBlob(ctx, container, op.blob);
  if (existing === null) throw blobNotFound();
  checkBlobWrite(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: false });
  const { rows: snapshots, horizon } = await snapshotRows(ctx, key);
  if (snapshots.length > 0 && op.deleteSnapshots === undefined) throw new FrontendError('SnapshotsPresent', 'the blob has snapshots');
  // The oldest snapshots that fit go in the commit; the horizon, raised in the same commit, hides
  // the rest until the sweep deletes them (snapshot-horizon.ts).
  const inCommit = snapshots.slice(0, blobCleanupBatchRows);
  const ops: PartitionOp[] = inCommit.map((row) => ({ kind: 'delete', key: row.key, ifMatch: row.etag }));
  const newest = snapshots.at(-1);
  const hidesRest = newest !== undefined && inCommit.length < snapshots.length;
  if (hidesRest) ops.push(raiseHorizonOp(key, horizon, snapshotIdOf(key, newest)));
  let complete: boolean;
  let fence = existing.row;
  if (removeBase) {
    ops.push({ kind: 'delete', key, ifMatch: existing.row.etag });
    const staging = await ctx.tables.get(stagingKey(key));
    if (staging !== null) ops.push({ kind: 'delete', key: staging.key, ifMatch: staging.etag });
    const versions = [existing.record, ...snapshots.map((row) => decodeBlob(row))];
    const dying = await rowsDyingWith(ctx, key, versions, staging, partitionBatchMutationsMax - ops.length);
    ops.push(...dying.ops);
    complete = dying.complete && !hidesRest;
    // A row the commit deletes If-Match other than the blob row (the staging row, else a snapshot
    // row): a background rewrite of the blob row would void the If-Match of an asynchronous copy
    // still writing it, failing the copy for a delete that never applied.
    fence = staging ?? snapshots[0] ?? existing.row;
  } else {
    ops.push(onlySnapshotsBlobOp(key, existing, hidesRest));
    complete = !hidesRest && !snapshots.some((row) => leavesDeadRows(decodeBlob(row)));
    // The fence must be a row the commit changes: a snapshot row it deletes (the blob row is only
    // checked unless a horizon is raised).
    fence = inCommit[0] ?? existing.row;
  }
  const commit = (): Promise<unknown> => commitTagged(ctx, { container, blob: key, before: existing.record.tags, after: removeBase ? [] : existing.record.tags }, ops);
  return (await commitMaybeUnderIntent(ctx, { blob: key, fence: complete ? null : fence }, commit)).intent;
}
