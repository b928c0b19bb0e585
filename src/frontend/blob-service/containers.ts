// Container operations (docs/blob-schema.md, "Container rows"): Create, Get Properties /
// Metadata, Set Metadata, Get / Set ACL, Delete, Lease; List Blobs lives in listing.ts.
//
// Invariants: every write is read-evaluate-write under the row's partition condition; Lease
// Container keeps the container's ETag and Last-Modified (explicit columns); a new container gets
// a fresh incarnation, so blobs of a deleted container of the same name never reappear.
// Fault model: as context.ts (typed errors; races retried a bounded number of times).

import type { LeaseResult, WriteResult } from '../blob-backend.ts';
import { FrontendError } from '../errors.ts';
import type { ContainerAcl, ContainerProperties, SignedIdentifier } from '../model.ts';
import type * as Op from '../operation.ts';
import { checkConditions, quotedEtag } from './conditions.ts';
import {
  containerProperties, loadContainer, metadataPairs, putOp, randomHex, readContainer, withRetry, type BlobServiceContext, type LoadedContainer,
} from './context.ts';
import { containerKey } from './keys.ts';
import { graveyardOp } from './container-fence.ts';
import { applyLeaseAction, checkLeaseAccess } from './lease.ts';
import { encodeContainer, type ContainerRecord } from './records.ts';

function written(etags: readonly (string | null)[], lastModifiedMs: number): WriteResult {
  return { etag: quotedEtag(etags[0] ?? ''), lastModified: new Date(lastModifiedMs) };
}

function conditionsOn(loaded: LoadedContainer, conditions: Op.Conditions): void {
  checkConditions(conditions, { etag: loaded.etag, modifiedMs: loaded.modifiedMs, tags: [] }, { read: false });
}

/** A modifying write of the container row: new ETag and Last-Modified. */
async function rewrite(ctx: BlobServiceContext, loaded: LoadedContainer, record: ContainerRecord): Promise<WriteResult> {
  const rest: { -readonly [K in keyof ContainerRecord]: ContainerRecord[K] } = { ...record };
  delete rest.etag;
  delete rest.modifiedMs;
  const result = await ctx.tables.transact([putOp(loaded.key, encodeContainer(rest), loaded.row)]);
  return written(result.etags, result.lastModifiedMs);
}

export async function createContainer(ctx: BlobServiceContext, op: Op.CreateContainer): Promise<WriteResult> {
  return withRetry(ctx, async () => {
    if (await readContainer(ctx, op.account, op.container) !== null) throw new FrontendError('ContainerAlreadyExists', `container ${op.container} exists`);
    const record: ContainerRecord = { inc: randomHex(8, ctx.random), metadata: metadataPairs(op.metadata), publicAccess: op.publicAccess, identifiers: [], lease: null };
    const result = await ctx.tables.transact([putOp(containerKey(op.account, op.container), encodeContainer(record), null)]);
    return written(result.etags, result.lastModifiedMs);
  });
}

export async function getContainerProperties(ctx: BlobServiceContext, op: Op.GetContainerProperties | Op.GetContainerMetadata): Promise<ContainerProperties> {
  const loaded = await loadContainer(ctx, op.account, op.container);
  const nowMs = ctx.clock.nowMs();
  checkLeaseAccess(loaded.record.lease, nowMs, op.leaseId, { write: false, target: 'container' });
  return containerProperties(loaded, nowMs);
}

export async function setContainerMetadata(ctx: BlobServiceContext, op: Op.SetContainerMetadata): Promise<WriteResult> {
  return withRetry(ctx, async () => {
    const loaded = await loadContainer(ctx, op.account, op.container);
    checkLeaseAccess(loaded.record.lease, ctx.clock.nowMs(), op.leaseId, { write: false, target: 'container' });
    conditionsOn(loaded, op.conditions);
    return rewrite(ctx, loaded, { ...loaded.record, metadata: metadataPairs(op.metadata) });
  });
}

export async function getContainerAcl(ctx: BlobServiceContext, op: Op.GetContainerACL): Promise<{ properties: ContainerProperties; acl: ContainerAcl }> {
  const loaded = await loadContainer(ctx, op.account, op.container);
  const nowMs = ctx.clock.nowMs();
  checkLeaseAccess(loaded.record.lease, nowMs, op.leaseId, { write: false, target: 'container' });
  return { properties: containerProperties(loaded, nowMs), acl: { publicAccess: loaded.record.publicAccess, identifiers: loaded.record.identifiers } };
}

export async function setContainerAcl(ctx: BlobServiceContext, op: Op.SetContainerACL, identifiers: readonly SignedIdentifier[]): Promise<WriteResult> {
  return withRetry(ctx, async () => {
    const loaded = await loadContainer(ctx, op.account, op.container);
    checkLeaseAccess(loaded.record.lease, ctx.clock.nowMs(), op.leaseId, { write: false, target: 'container' });
    conditionsOn(loaded, op.conditions);
    return rewrite(ctx, loaded, { ...loaded.record, publicAccess: op.publicAccess, identifiers: [...identifiers] });
  });
}

export async function deleteContainer(ctx: BlobServiceContext, op: Op.DeleteContainer): Promise<void> {
  await withRetry(ctx, async () => {
    const loaded = await loadContainer(ctx, op.account, op.container);
    checkLeaseAccess(loaded.record.lease, ctx.clock.nowMs(), op.leaseId, { write: true, target: 'container' });
    conditionsOn(loaded, op.conditions);
    // The graveyard row names the ended incarnation for the background sweep (same partition: the
    // split boundary keeps a container's rows together).
    await ctx.tables.transact([
      { kind: 'delete', key: loaded.key, ifMatch: loaded.row.etag },
      graveyardOp(loaded, ctx.clock.nowMs()),
    ]);
    ctx.sweepWake?.notify();
  });
}

export async function leaseContainer(ctx: BlobServiceContext, op: Op.LeaseContainer): Promise<LeaseResult> {
  return withRetry(ctx, async () => {
    const loaded = await loadContainer(ctx, op.account, op.container);
    conditionsOn(loaded, op.conditions);
    const transition = applyLeaseAction(loaded.record.lease, ctx.clock.nowMs(), op.lease);
    const record: ContainerRecord = { ...loaded.record, lease: transition.lease, etag: loaded.etag, modifiedMs: loaded.modifiedMs };
    await ctx.tables.transact([putOp(loaded.key, encodeContainer(record), loaded.row)]);
    return {
      etag: quotedEtag(loaded.etag), lastModified: new Date(loaded.modifiedMs),
      ...(transition.leaseId === undefined ? {} : { leaseId: transition.leaseId }),
      ...(transition.leaseTimeSeconds === undefined ? {} : { leaseTimeSeconds: transition.leaseTimeSeconds }),
    };
  });
}
