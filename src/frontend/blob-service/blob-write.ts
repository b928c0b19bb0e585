// The checks every blob write makes against the blob as read, in Azure's order: the lease
// (x-ms-lease-id), then the conditional headers (with SAS create-only as If-None-Match: *), then,
// for a write Azure counts as a modification of the blob, no copy pending onto it
// (docs/copy-sources.md, "Writes while a copy is pending"). Shared by block, append and object
// operations.
//
// Invariants: runs inside a withRetry attempt, on rows read in that attempt; throws Azure's
// error and writes nothing when a check fails.
// Fault model: none (pure over the loaded records).

import type { LeaseId } from '../model.ts';
import type { Conditions } from '../operation.ts';
import { checkConditions, quotedEtag } from './conditions.ts';
import { effectiveCopy, type LoadedBlob } from './context.ts';
import { FrontendError } from '../errors.ts';
import { checkLeaseAccess } from './lease.ts';
import type { WriteResult } from '../blob-backend.ts';
import type { CommitResult } from '../../partition/partition.ts';

export interface BlobWriteRequest {
  readonly leaseId?: LeaseId;
  readonly conditions: Conditions;
}

export function checkBlobWrite(existing: LoadedBlob | null, op: BlobWriteRequest, options: { readonly nowMs: number; readonly createOnly: boolean }): void {
  checkLeaseAccess(existing?.record.lease ?? null, options.nowMs, op.leaseId, { write: true, target: 'blob' });
  const conditions: Conditions = options.createOnly ? { ...op.conditions, ifNoneMatch: { kind: 'any' } } : op.conditions;
  const target = existing === null ? null : { etag: existing.etag, modifiedMs: existing.modifiedMs, tags: existing.record.tags };
  checkConditions(conditions, target, { read: false, existsCode: 'BlobAlreadyExists' });
}

/** A write Azure counts as a modification of the blob (its content, properties or metadata: a
 * new ETag; a Snapshot Blob; a copy onto it): writable (lease, conditions) and with no copy
 * pending onto it (Azure: 409 PendingCopyOperation; the copy's transfer owns the content). */
export function checkBlobModify(existing: LoadedBlob | null, op: BlobWriteRequest, options: { readonly nowMs: number; readonly createOnly: boolean }): void {
  checkBlobWrite(existing, op, options);
  if (existing !== null) refusePendingCopy(existing, options.nowMs);
}

export function refusePendingCopy(existing: LoadedBlob, nowMs: number): void {
  if (effectiveCopy(existing, nowMs)?.status === 'pending') throw new FrontendError('PendingCopyOperation', 'a copy onto this blob is pending');
}

export function checkBlobRead(existing: LoadedBlob, op: BlobWriteRequest, nowMs: number): void {
  if (existing.snapshot === undefined) checkLeaseAccess(existing.record.lease, nowMs, op.leaseId, { write: false, target: 'blob' });
  checkConditions(op.conditions, { etag: existing.etag, modifiedMs: existing.modifiedMs, tags: existing.record.tags }, { read: true });
}

/** The write result of the commit's first row. */
export function committed(result: CommitResult, index = 0): WriteResult {
  return { etag: quotedEtag(result.etags[index] ?? ''), lastModified: new Date(result.lastModifiedMs) };
}
