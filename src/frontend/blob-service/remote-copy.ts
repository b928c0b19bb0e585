// Copies from sources outside this Kura endpoint (docs/copy-sources.md): Copy Blob From URL and
// Put Block From URL (synchronous), Copy Blob (asynchronous: a pending row, then a background
// transfer by this front end), and Abort Copy.
//
// Invariants: the source's bytes are durable in the destination's data stream before any row
// names them (writeBody, as Put Blob); an asynchronous copy's every row write is conditional on
// the row it wrote or read last (If-Match); refused, it reads the row again and goes on only if
// the row still holds its copy pending (a Lease Blob, Set Blob Tags or Tier keep a copy pending,
// as in Azure, and merge into its next write), so a write that ends the copy (Abort Copy, Delete
// Blob) wins and the transfer stops, committing nothing; writes Azure counts as modifications
// are refused while the copy is pending (checkBlobModify: 409 PendingCopyOperation); the Azure
// ETag of a pending row is kept across progress writes (keepVersion) and changes at completion.
// Fault model: the source may fail at any point (remote-source.ts maps it); the partition may
// refuse or fail a write: a refused condition rebases as above, another failure of a progress
// write is retried at the next interval, of the final write leaves the row pending, which reads
// as failed after copyPendingStallMs; a front end that stops aborts its transfers (same
// outcome), one that dies leaves them to that rule.

import { randomUUID } from 'node:crypto';
import { blobWriteAttemptsMax, copyProgressIntervalMs } from '../../constants.ts';
import type { PartitionOp } from '../../partition/partition.ts';
import { AssertionFailure } from '../../util/assert.ts';
import { isStorageError } from '../../util/errors.ts';
import type { BlockWriteResult, CallContext, CopyResult } from '../blob-backend.ts';
import { FrontendError } from '../errors.ts';
import type { CopyProperties } from '../model.ts';
import type * as Op from '../operation.ts';
import { checkBlobWrite, checkBlobModify } from './blob-write.ts';
import { blockRecord, commitBlob, replaceBlob, stageBlock } from './block-blobs.ts';
import { storeBlockList, type CommittedBlock } from './block-list.ts';
import {
  blobNotFound, conditionRefusedCodes, effectiveCopy, loadContainer, loadedBlob, metadataPairs, readBlob, withRetry, type BlobServiceContext,
} from './context.ts';
import { writeBody, type WrittenData } from './data.ts';
import { blobKey } from './keys.ts';
import { encodeBlob, withoutCopyFields, type BlobRecord } from './records.ts';
import { redactedSource } from './copy-source-policy.ts';
import { RemoteSourceFetcher, cannotVerify, type CopySourceOptions, type OpenedSource } from './remote-source.ts';

export interface RemoteCopyStats {
  started: number;
  succeeded: number;
  failed: number;
  /** Transfers that stopped because the row changed under them (abort, overwrite, delete). */
  superseded: number;
}

/** This front end's copy-source fetcher and its asynchronous transfers (stopped with the backend). */
export class RemoteCopies {
  readonly fetcher: RemoteSourceFetcher;
  readonly stats: RemoteCopyStats = { started: 0, succeeded: 0, failed: 0, superseded: 0 };
  readonly #running = new Map<string, { readonly abort: AbortController; readonly done: Promise<void> }>();
  readonly #progressIntervalMs: number;
  #stopped = false;

  constructor(options: CopySourceOptions & { readonly progressIntervalMs?: number }) {
    this.fetcher = new RemoteSourceFetcher(options);
    this.#progressIntervalMs = options.progressIntervalMs ?? copyProgressIntervalMs;
  }

  get progressIntervalMs(): number {
    return this.#progressIntervalMs;
  }

  get running(): number {
    return this.#running.size;
  }

  run(copyId: string, abort: AbortController, transfer: () => Promise<void>): void {
    if (this.#stopped) abort.abort();
    const done = transfer().finally(() => this.#running.delete(copyId));
    this.#running.set(copyId, { abort, done });
  }

  /** Stops this front end's transfer of `copyId`, if it runs here (Abort Copy). */
  abort(copyId: string): void {
    this.#running.get(copyId)?.abort.abort(supersededReason);
  }

  /** Aborts every transfer (their rows stay pending and read as failed once stale) and waits for them. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const running = [...this.#running.values()];
    for (const entry of running) entry.abort.abort();
    await Promise.allSettled(running.map((entry) => entry.done));
    await this.fetcher.close();
  }
}

async function drain(source: OpenedSource, write: (body: AsyncIterable<Uint8Array>) => Promise<WrittenData>): Promise<WrittenData> {
  try {
    return await write(source.body);
  } finally {
    source.close();
  }
}

/** The source's own Content-MD5 (whole body), and the caller's x-ms-source-content-md5. */
function checkMd5(data: WrittenData, source: OpenedSource, expected: Uint8Array | undefined): void {
  if (source.headers.contentMd5 !== undefined && !data.md5.equals(source.headers.contentMd5)) throw cannotVerify('the copy source\'s bytes do not match its Content-MD5');
  if (expected !== undefined && !data.md5.equals(expected)) throw new FrontendError('Md5Mismatch', 'the copy source does not match x-ms-source-content-md5');
}

function copiedFields(op: Op.CopyBlob | Op.CopyBlobFromURL, source: OpenedSource): Pick<BlobRecord, 'headers' | 'metadata' | 'tags'> & { readonly tier: BlobRecord['tier'] } {
  return { headers: source.headers, metadata: op.metadata.size === 0 ? source.metadata : metadataPairs(op.metadata), tags: op.tags, tier: op.tier ?? 'Hot' };
}

/** Copy Blob From URL from outside Kura: fetched, stored and committed within the request. */
export async function copyFromRemoteUrl(ctx: BlobServiceContext, copies: RemoteCopies, op: Op.CopyBlobFromURL, call: CallContext): Promise<CopyResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  checkBlobModify(await readBlob(ctx, container, op.blob), op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
  const source = await copies.fetcher.open({ source: op.source, conditions: op.sourceConditions, bytesMax: copies.fetcher.limits.copyFromUrlBytesMax, mode: 'sync', signal: call.signal });
  const data = await drain(source, (body) => writeBody(ctx.tables, key, body));
  checkMd5(data, source, op.sourceContentMd5);
  const blocks: CommittedBlock[] = data.size === 0 ? [] : [{ id: Buffer.alloc(0), size: data.size, refs: data.refs }];
  const list = await storeBlockList(ctx.tables, key, blocks);
  const fields = copiedFields(op, source);
  const copy: CopyProperties = { id: randomUUID(), status: 'success', source: redactedSource(op.source.url), progress: `${data.size}/${data.size}`, completedOn: new Date(ctx.clock.nowMs()) };
  const record: BlobRecord = { ...blockRecord(blocks, list.stored, { ...fields, headers: { ...fields.headers, contentMd5: data.md5 } }), copy };
  const result = await replaceBlob(ctx, key, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    checkBlobModify(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
    return commitBlob(ctx, { container, existing }, key, record, list.pages);
  });
  return { ...result, copyId: copy.id, copyStatus: 'success' };
}

/** Put Block From URL from outside Kura: the source (range) staged as an uncommitted block. */
export async function putBlockFromRemoteUrl(ctx: BlobServiceContext, copies: RemoteCopies, op: Op.PutBlockFromURL, call: CallContext): Promise<BlockWriteResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  checkBlobWrite(await readBlob(ctx, container, op.blob), { ...(op.leaseId === undefined ? {} : { leaseId: op.leaseId }), conditions: {} }, { nowMs: ctx.clock.nowMs(), createOnly: false });
  const source = await copies.fetcher.open({
    source: op.source, conditions: op.sourceConditions, bytesMax: copies.fetcher.limits.blockBytesMax, mode: 'sync', signal: call.signal,
    ...(op.sourceRange === undefined ? {} : { range: op.sourceRange }),
  });
  const data = await drain(source, (body) => writeBody(ctx.tables, key, body));
  checkMd5(data, source, op.sourceContentMd5);
  await stageBlock(ctx, op, key, data, container);
  return { contentMd5: data.md5 };
}

/** The row an asynchronous transfer writes against: the version it wrote or read last (rowEtag),
 * with the pending version's Azure ETag and time pinned in the record (kept by progress writes). */
interface Pending {
  readonly key: Buffer;
  readonly copyId: string;
  record: BlobRecord;
  rowEtag: string;
}

/** The abort reason of a transfer whose row was rewritten by Abort Copy (not a failure of the copy). */
const supersededReason = 'superseded';

class Superseded extends Error {
  override readonly name = 'Superseded';
}

/** Copy Blob from outside Kura: the source's head checked, a pending row written, 202; the body
 * follows in the background (see the file comment). */
export async function startRemoteCopy(ctx: BlobServiceContext, copies: RemoteCopies, op: Op.CopyBlob, call: CallContext): Promise<CopyResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  checkBlobModify(await readBlob(ctx, container, op.blob), op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
  const abort = new AbortController();
  const source = await copies.fetcher.open({ source: op.source, conditions: op.sourceConditions, bytesMax: copies.fetcher.limits.copyBytesMax, mode: 'async', signal: abort.signal });
  const copy: CopyProperties = { id: randomUUID(), status: 'pending', source: redactedSource(op.source.url), progress: `0/${source.length ?? 0}` };
  let result: CopyResult;
  try {
    const record: BlobRecord = { ...blockRecord([], null, copiedFields(op, source)), copy, copyBeatMs: ctx.clock.nowMs() };
    const written = await replaceBlob(ctx, key, async () => {
      const existing = await readBlob(ctx, container, op.blob);
      checkBlobModify(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
      return commitBlob(ctx, { container, existing }, key, record);
    });
    result = { ...written, copyId: copy.id, copyStatus: 'pending' };
  } catch (error) {
    source.close();
    throw error;
  }
  copies.stats.started += 1;
  copies.run(copy.id, abort, () => transfer(ctx, copies, { key, copyId: copy.id, signal: abort.signal }, source));
  return result;
}

/** The background half of Copy Blob: body → data stream (progress rows), then the final row. */
async function transfer(ctx: BlobServiceContext, copies: RemoteCopies, at: { readonly key: Buffer; readonly copyId: string; readonly signal: AbortSignal }, source: OpenedSource): Promise<void> {
  let pending: Pending | null = null;
  try {
    pending = await readPending(ctx, at.key, at.copyId);
    const data = await writeBody(ctx.tables, pending.key, withProgress(ctx, copies, pending, source));
    checkMd5(data, source, undefined);
    await completeCopy(ctx, pending, data);
    copies.stats.succeeded += 1;
  } catch (error) {
    if (error instanceof AssertionFailure) throw error;
    const abandoned = at.signal.aborted && at.signal.reason === supersededReason;
    if (abandoned || error instanceof Superseded) {
      copies.stats.superseded += 1;
      return;
    }
    copies.stats.failed += 1;
    if (pending !== null) await failCopy(ctx, pending, error instanceof Error ? error.message : String(error));
  } finally {
    source.close();
  }
}

/** The row as this transfer's pending copy (its version the next write is conditional on), or
 * Superseded: Abort Copy, Put Blob, Delete Blob or a newer copy ended the copy, or the row is gone. */
async function readPending(ctx: BlobServiceContext, key: Buffer, copyId: string): Promise<Pending> {
  const row = await ctx.tables.get(key);
  const loaded = row === null ? null : loadedBlob(row, key);
  const copy = loaded?.record.copy;
  if (loaded === null || copy?.id !== copyId || copy.status !== 'pending') throw new Superseded('the destination changed during the transfer');
  return { key, copyId, record: { ...loaded.record, etag: loaded.etag, modifiedMs: loaded.modifiedMs }, rowEtag: loaded.row.etag };
}

/** After a refused write: the row read again, still this copy pending (a Lease Blob, Set Blob Tags
 * or Tier, or a Delete Blob of its snapshots rewrote it: none of these ends a copy in Azure). */
async function rebase(ctx: BlobServiceContext, pending: Pending): Promise<void> {
  const fresh = await readPending(ctx, pending.key, pending.copyId);
  pending.record = fresh.record;
  pending.rowEtag = fresh.rowEtag;
}

/** Commits the ops `build` makes from the pending row (the row's own put first, If-Match the
 * version read last); a refused condition rebases and builds again, at most blobWriteAttemptsMax
 * times (a rewrite by every attempt: lease renewals cannot starve a copy for long). */
async function writePending(ctx: BlobServiceContext, pending: Pending, build: (pending: Pending) => PartitionOp[]): Promise<void> {
  for (let attempt = 0; attempt < blobWriteAttemptsMax; attempt++) {
    try {
      const result = await ctx.tables.transact(build(pending));
      pending.rowEtag = result.etags[0] ?? pending.rowEtag;
      return;
    } catch (error) {
      if (!isStorageError(error) || !conditionRefusedCodes.has(error.code)) throw error;
      await rebase(ctx, pending);
    }
  }
  throw new Superseded(`the destination changed under ${blobWriteAttemptsMax} writes in a row`);
}

function pendingPut(pending: Pending, record: BlobRecord): PartitionOp {
  return { kind: 'put', key: pending.key, columns: encodeBlob(record), ifMatch: pending.rowEtag };
}

/** The source's body, rewriting the pending row with the progress every progressIntervalMs. */
async function* withProgress(ctx: BlobServiceContext, copies: RemoteCopies, pending: Pending, source: OpenedSource): AsyncGenerator<Uint8Array> {
  let copied = 0;
  let lastMs = ctx.clock.monotonicMs();
  for await (const chunk of source.body) {
    copied += chunk.length;
    if (ctx.clock.monotonicMs() - lastMs >= copies.progressIntervalMs) {
      lastMs = ctx.clock.monotonicMs();
      await writeProgress(ctx, pending, `${copied}/${source.length ?? copied}`);
    }
    yield chunk;
  }
}

/** One rewrite of the pending row with the progress; the partition away for a moment: the next
 * interval writes it again. */
async function writeProgress(ctx: BlobServiceContext, pending: Pending, progress: string): Promise<void> {
  try {
    await writePending(ctx, pending, (at) => {
      const copy = at.record.copy;
      return [pendingPut(at, copy === undefined ? at.record : { ...at.record, copy: { ...copy, progress }, copyBeatMs: ctx.clock.nowMs() })];
    });
  } catch (error) {
    if (error instanceof Superseded || error instanceof AssertionFailure || !isStorageError(error)) throw error;
  }
}

/** The final row: the copied content on the pending row as it is now (its lease, tags, tier and
 * metadata may have changed during the transfer), status success, a new Azure ETag. */
async function completeCopy(ctx: BlobServiceContext, pending: Pending, data: WrittenData): Promise<void> {
  const blocks: CommittedBlock[] = data.size === 0 ? [] : [{ id: Buffer.alloc(0), size: data.size, refs: data.refs }];
  const list = await storeBlockList(ctx.tables, pending.key, blocks);
  await writePending(ctx, pending, (at) => {
    const { record } = at;
    const done = blockRecord(blocks, list.stored, { headers: { ...record.headers, contentMd5: data.md5 }, metadata: record.metadata, tags: record.tags, tier: record.tier });
    const copy: CopyProperties | undefined = record.copy === undefined ? undefined
      : { ...record.copy, status: 'success', progress: `${data.size}/${data.size}`, completedOn: new Date(ctx.clock.nowMs()) };
    const final: BlobRecord = { ...done, createdMs: record.createdMs, lease: record.lease, ...(copy === undefined ? {} : { copy }) };
    return [pendingPut(at, final), ...list.pages];
  });
}

async function failCopy(ctx: BlobServiceContext, pending: Pending, description: string): Promise<void> {
  try {
    await writePending(ctx, pending, (at) => {
      const copy = at.record.copy;
      const rest = withoutCopyFields(at.record, ['copyBeatMs']);
      const failed: BlobRecord = copy === undefined ? rest
        : { ...rest, copy: { ...copy, status: 'failed', statusDescription: description.slice(0, 512), completedOn: new Date(ctx.clock.nowMs()) } };
      return [pendingPut(at, failed)];
    });
  } catch (error) {
    if (error instanceof AssertionFailure) throw error;
    // Someone else ended the copy, or the partition is away: the row reads as failed once stale.
  }
}

/** Abort Copy: a pending copy with this id becomes aborted, zero length, metadata kept (Azure). */
export async function abortCopyBlob(ctx: BlobServiceContext, copies: RemoteCopies, op: Op.AbortCopyBlob): Promise<void> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  await withRetry(ctx, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    if (existing === null) throw blobNotFound();
    checkBlobWrite(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: false });
    const copy = effectiveCopy(existing, ctx.clock.nowMs());
    if (copy?.status !== 'pending') throw new FrontendError('NoPendingCopyOperation', 'there is no pending copy on this blob');
    if (copy.id !== op.copyId) throw new FrontendError('CopyIdMismatch', 'the copy id does not match the blob\'s pending copy');
    const aborted: BlobRecord = {
      ...withoutCopyFields(existing.record, ['copyBeatMs']), size: 0, blockList: null, copy: { ...copy, status: 'aborted', completedOn: new Date(ctx.clock.nowMs()) },
      etag: existing.etag, modifiedMs: existing.modifiedMs,
    };
    await ctx.tables.transact([{ kind: 'put', key, columns: encodeBlob(aborted), ifMatch: existing.row.etag }]);
  });
  copies.abort(op.copyId);
}
