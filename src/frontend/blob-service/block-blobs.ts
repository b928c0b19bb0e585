// Block blob operations (docs/blob-schema.md): Put Blob, Put Block, Put Block List, Get Block
// List, Put Block From URL, Copy Blob / Copy Blob From URL from a blob of this endpoint (synchronous;
// sources outside Kura: remote-copy.ts).
//
// Invariants: bytes are made durable in the data stream before any row refers to them; every
// row change is one transaction under the partition conditions of the rows read (Put Block List:
// the blob row and the staging row together), so Azure's conditions hold atomically with it; a
// Put Block's uncommitted row and its staging count change together, so the 100,000-block limit
// holds under concurrency.
// Fault model: a body that fails leaves unreferenced data; a lost race re-reads and re-checks.

import { randomUUID } from 'node:crypto';
import { partitionBatchMutationsMax, uncommittedBlocksMax } from '../../constants.ts';
import type { CommitResult, LiveRow, PartitionOp } from '../../partition/partition.ts';
import type { BlockWriteResult, CallContext, CopyResult, RequestBody, WriteResult } from '../blob-backend.ts';
import { FrontendError } from '../errors.ts';
import type { BlockList, BlockListEntry } from '../model.ts';
import type * as Op from '../operation.ts';
import { checkBlobRead, checkBlobWrite, checkBlobModify, committed } from './blob-write.ts';
import { loadBlockList, storeBlockList, type CommittedBlock, type PreparedBlockList } from './block-list.ts';
import { dropRows, leavesDeadRows, sweepBlob } from './blob-sweep.ts';
import { commitMaybeUnderIntent, dischargeIntent, type SweepIntent } from './sweep-intents.ts';
import { appendRefs, copyContent } from './content.ts';
import {
  blobNotFound, conditionRefusedCodes, hintKey, loadContainer, loadContainerAndBlob, metadataPairs, putOp, randomHex, readBlob, withRetry, writtenBlobKey, type BlobServiceContext, type LoadedBlob, type LoadedContainer,
} from './context.ts';
import { isStorageError } from '../../util/errors.ts';
import { commitTagged } from './tag-index.ts';
import { fencedCommit } from './container-fence.ts';
import { quotedEtag } from './conditions.ts';
import { readBodyWhole, writeBlock, writeBody, type WrittenBlock, type WrittenData } from './data.ts';
import { blobKey, stagingKey, uncommittedKey, uncommittedPrefix } from './keys.ts';
import { readSource } from './copy-source.ts';
import { redactedSource } from './copy-source-policy.ts';
import { encodeBlob, encodeStaging, encodeUncommitted, type BlobRecord, type StagingRecord } from './records.ts';
import { readSnapshotRow } from './snapshots.ts';
import { readStaging, uncommittedBlocks, type UncommittedBlock } from './staging.ts';

/** A committed attempt of a write that replaces a blob version: what replaceBlob finishes. */
export interface Replaced {
  readonly result: WriteResult;
  readonly replaced: LoadedBlob | null;
  /** The sweep intent put before the commit (sweep-intents.ts); null when it discards nothing it leaves. */
  readonly intent: SweepIntent | null;
  /** Rows the commit discarded but had no room to delete (Put Block List's uncommitted rows). */
  readonly dropLater?: readonly Buffer[];
}

/** Writes the blob row of a new block blob version (Put Blob, Put Block List, Copy Blob). If the
 * version it replaces leaves rows only a sweep removes, or `overflow` is given (the commit discards
 * rows it has no room to delete; the staging row it deletes If-Match), a sweep intent precedes it,
 * fenced by the staging row if given, else the blob row. */
export async function commitBlob(ctx: BlobServiceContext, at: { readonly container: LoadedContainer; readonly existing: LoadedBlob | null; readonly overflow?: LiveRow }, key: Buffer, record: BlobRecord, extra: readonly PartitionOp[] = []): Promise<Replaced> {
  const { existing } = at;
  const full: BlobRecord = { ...record, createdMs: existing?.record.createdMs ?? ctx.clock.nowMs(), lease: existing?.record.lease ?? null };
  const commit = (): Promise<CommitResult> => commitTagged(ctx, { container: at.container, blob: key, before: existing?.record.tags ?? [], after: full.tags }, [putOp(key, encodeBlob(full), existing?.row ?? null), ...extra]);
  // The staging row first: rewriting it (a dead writer's commit fenced out) is invisible, and no other background writer relies on its ETag.
  const fence = leavesDeadRows(existing?.record) || at.overflow !== undefined ? at.overflow ?? existing?.row ?? null : null;
  const { value, intent } = await commitMaybeUnderIntent(ctx, { blob: key, fence }, commit);
  return { result: committed(value), replaced: existing, intent };
}

/** Commits under withRetry; then deletes what the commit discarded and left (the rest of the rows it
 * had no room for, the dead rows of the version replaced), and its sweep intent once that finished. */
export async function replaceBlob(ctx: BlobServiceContext, key: Buffer, attempt: () => Promise<Replaced>): Promise<WriteResult> {
  const { result, replaced, intent, dropLater = [] } = await withRetry(ctx, attempt);
  const dropped = await dropRows(ctx, dropLater) === dropLater.length;
  const swept = !leavesDeadRows(replaced?.record) || (await sweepBlob(ctx, key)).finished;
  if (dropped && swept) await dischargeIntent(ctx, intent);
  return result;
}

/** A block blob's record; `size` when the caller knows it without blocks (an inline body), `createdMs` 0 unless given. */
export function blockRecord(blocks: readonly CommittedBlock[], stored: BlobRecord['blockList'], fields: Pick<BlobRecord, 'headers' | 'metadata' | 'tags'> & { readonly tier?: BlobRecord['tier'] | undefined; readonly size?: number; readonly createdMs?: number }): BlobRecord {
  return {
    type: 'BlockBlob', createdMs: fields.createdMs ?? 0, size: fields.size ?? blocks.reduce((sum, block) => sum + block.size, 0), headers: fields.headers, metadata: fields.metadata,
    tags: fields.tags, ...(fields.tier === undefined ? {} : { tier: fields.tier }), lease: null, blockList: stored, append: null,
  };
}

interface StoredPutBody {
  readonly md5: Buffer;
  readonly size: number;
  readonly list: PreparedBlockList;
}

/** A Put Blob body of 1..inlineBodyBytesMax bytes goes in the blob row (docs/blob-schema.md, "Inline bodies"): one durable append. */
function isInline(ctx: BlobServiceContext, body: RequestBody): boolean {
  return body.length > 0 && body.length <= (ctx.inlineBodyBytesMax ?? 0);
}

/** A body read whole (readBodyWhole) as the blob row stores it inline. Synchronous: the caller
 * awaits the read itself (no async frame of its own per Put). */
function inlineStored(whole: { readonly bytes: Buffer; readonly md5: Buffer }): StoredPutBody {
  return { md5: whole.md5, size: whole.bytes.length, list: { stored: { kind: 'body', bytes: whole.bytes }, pages: [] } };
}

async function storePutBody(ctx: BlobServiceContext, key: Buffer, body: RequestBody): Promise<StoredPutBody> {
  if (isInline(ctx, body)) return inlineStored(await readBodyWhole(body));
  const data = await writeBody(ctx.tables, key, body);
  const blocks: CommittedBlock[] = data.size === 0 ? [] : [{ id: Buffer.alloc(0), size: data.size, refs: data.refs }];
  return { md5: data.md5, size: data.size, list: await storeBlockList(ctx.tables, key, blocks) };
}

/** Built in one object (not a record spread into another per field overridden: a Put Blob builds one per request). */
function putRecord(op: Op.PutBlob, data: StoredPutBody, createdMs = 0): BlobRecord {
  const headers = { ...op.httpHeaders, contentMd5: op.httpHeaders.contentMd5 ?? data.md5 };
  return blockRecord([], data.list.stored, { headers, metadata: metadataPairs(op.metadata), tags: op.tags, tier: op.tier, size: data.size, createdMs });
}

/**
 * Put Blob of a new blob in one partition call (docs/blob-schema.md, "Put Blob in one call"): when
 * the front end knows the container's row (its incarnation hint) and the body is inline, the blob
 * row is put If-None-Match * together with a check of the container row's ETag as last read, so
 * the write applies only if the blob does not exist and the container row is the one read (not
 * deleted, not recreated, not changed) at the commit: what the read would have decided, decided at
 * the single writer instead. Taken only when the Put's own checks pass against an absent blob
 * (no If-Match, no lease id, no tags to index). Refused (the blob exists, the container row
 * changed, or it lies in another partition): nothing was applied, and the caller goes the read
 * way with the body already read. `null`: not tried.
 */
async function putNewBlob(ctx: BlobServiceContext, op: Op.PutBlob, body: RequestBody, call: CallContext, written: string): Promise<{ result: WriteResult } | { refused: StoredPutBody; checked: string } | null> {
  const hint = ctx.incarnations?.get(hintKey(op.account, op.container));
  // A blob this front end wrote lately is likely there still: an overwrite, which the try would not take.
  if (hint === undefined || hint.separate === true || !isInline(ctx, body) || op.tags.length > 0 || ctx.writtenBlobs?.has(written) === true) return null;
  const nowMs = ctx.clock.nowMs();
  try {
    checkBlobWrite(null, op, { nowMs, createOnly: call.createOnly });
  } catch (error) {
    if (error instanceof FrontendError) return null;
    throw error;
  }
  const data = inlineStored(await readBodyWhole(body));
  const record = putRecord(op, data, nowMs);
  // The blob's row first: the partition call routes by it, and committed() reads its ETag.
  const ops: PartitionOp[] = [{ kind: 'put', key: blobKey(hint.blobs, op.blob), columns: encodeBlob(record), ifNoneMatch: '*' }, { kind: 'check', key: hint.key, ifMatch: hint.etag }];
  try {
    // No container fence (container-fence.ts): the check makes the commit conditional on the container row itself.
    return { result: { ...committed(await ctx.tables.transact(ops)), contentMd5: data.md5 } };
  } catch (error) {
    if (!isStorageError(error) || !conditionRefusedCodes.has(error.code)) throw error;
    return { refused: data, checked: hint.etag };
  }
}

export async function putBlob(ctx: BlobServiceContext, op: Op.PutBlob, body: RequestBody, call: CallContext): Promise<WriteResult> {
  // Account and container names hold no '/': the key names one blob.
  const written = writtenBlobKey(op.account, op.container, op.blob);
  const fast = await putNewBlob(ctx, op, body, call, written);
  if (fast !== null && 'result' in fast) {
    ctx.writtenBlobs?.set(written, true);
    return fast.result;
  }
  // The container row and the blob row in one partition call when they share a partition (the
  // container row is still read on every Put: a deleted container refuses the write at once).
  // The blob row is checked before the body is read (a refused Put stores nothing), and reused by
  // the first commit attempt: the commit is conditional on this row's ETag, so a change since then
  // fails it and the retry reads the row again.
  const loaded = await loadContainerAndBlob(ctx, op.account, op.container, op.blob);
  const container = loaded.container;
  if (fast !== null && loaded.blob === null && container.row.etag === fast.checked) markSeparate(ctx, op);
  const key = blobKey(container.blobs, op.blob);
  let early: LoadedBlob | null | undefined = loaded.blob;
  checkBlobModify(early, op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
  const data = fast?.refused ?? await storePutBody(ctx, key, body);
  const record = putRecord(op, data);
  const result = await replaceBlob(ctx, key, async () => {
    const existing = early === undefined ? await readBlob(ctx, container, op.blob) : early;
    early = undefined;
    checkBlobModify(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
    return commitBlob(ctx, { container, existing }, key, record, data.list.pages);
  });
  ctx.writtenBlobs?.set(written, true);
  return { ...result, contentMd5: data.md5 };
}

/** A one-call Put was refused though its blob was absent and its container row unchanged: the rows
 * lie in two partitions (or a race came and went); later Puts to this container read first. */
function markSeparate(ctx: BlobServiceContext, op: Op.PutBlob): void {
  const key = hintKey(op.account, op.container);
  const hint = ctx.incarnations?.get(key);
  if (hint !== undefined) ctx.incarnations?.set(key, { ...hint, separate: true });
}

/** Commits staged bytes as the uncommitted block `blockId` (Put Block, Put Block From URL). */
export async function stageBlock(ctx: BlobServiceContext, op: { readonly blob: string; readonly blockId: string; readonly leaseId?: Op.PutBlock['leaseId']; readonly conditions: Op.Conditions }, blob: Buffer, data: Pick<WrittenBlock, 'refs' | 'size'>, container: LoadedContainer): Promise<void> {
  const id = Buffer.from(op.blockId, 'base64');
  await withRetry(ctx, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    checkBlobWrite(existing, { ...(op.leaseId === undefined ? {} : { leaseId: op.leaseId }), conditions: {} }, { nowMs: ctx.clock.nowMs(), createOnly: false });
    const staging = await readStaging(ctx, blob);
    const record = staging.record ?? { gen: randomHex(8, ctx.random), count: 0, sinceMs: ctx.clock.nowMs() };
    const idBytes = await stagedIdBytes(ctx, blob, record);
    // Azure: every block id of a blob has one length; a block of another length than the uncommitted ones is refused.
    if (idBytes !== null && idBytes !== id.length) throw new FrontendError('InvalidBlobOrBlock', `block id of ${id.length} bytes; the blob's uncommitted blocks have ${idBytes}`);
    const key = uncommittedKey(blob, record.gen, id);
    const previous = staging.record === null ? null : await ctx.tables.get(key);
    if (previous === null && record.count >= uncommittedBlocksMax) throw new FrontendError('BlockCountExceedsLimit', 'the blob has 100,000 uncommitted blocks');
    const count = previous === null ? record.count + 1 : record.count;
    const ops = [putOp(stagingKey(blob), encodeStaging({ ...record, count, idBytes: id.length }), staging.row), putOp(key, encodeUncommitted({ size: data.size, refs: data.refs }), previous)];
    await fencedCommit(ctx, container, ops, () => ctx.tables.transact(ops));
  });
}

/** The id length of a staging gen's blocks: its row's, else (rows before idBytes) one uncommitted row's; null when empty. */
async function stagedIdBytes(ctx: BlobServiceContext, blob: Buffer, record: StagingRecord): Promise<number | null> {
  if (record.count === 0) return null;
  if (record.idBytes !== undefined) return record.idBytes;
  const prefix = uncommittedPrefix(blob, record.gen);
  const first = (await ctx.tables.scan({ prefix, limit: 1 })).items.find((item) => item.kind === 'row');
  return first?.kind === 'row' ? first.row.key.length - prefix.length : null;
}

/** Azure: the block ids of one list have one length (else the list is invalid). */
function checkIdLengths(entries: readonly BlockListEntry[]): void {
  const lengths = new Set(entries.map((entry) => Buffer.from(entry.id, 'base64').length));
  if (lengths.size > 1) throw new FrontendError('InvalidBlockList', `block ids of ${[...lengths].join(', ')} bytes in one list`);
}

export async function putBlock(ctx: BlobServiceContext, op: Op.PutBlock, body: RequestBody): Promise<BlockWriteResult> {
  // The container row and the blob row (its lease, checked before the body is stored) in one call.
  const { container, blob } = await loadContainerAndBlob(ctx, op.account, op.container, op.blob);
  const key = blobKey(container.blobs, op.blob);
  checkBlobWrite(blob, { ...(op.leaseId === undefined ? {} : { leaseId: op.leaseId }), conditions: {} }, { nowMs: ctx.clock.nowMs(), createOnly: false });
  const data = await writeBlock(ctx.tables, key, body, op);
  await stageBlock(ctx, op, key, data, container);
  return data.md5 === null ? {} : { contentMd5: data.md5 };
}

export async function putBlockFromUrl(ctx: BlobServiceContext, op: Op.PutBlockFromURL): Promise<BlockWriteResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  const source = await readSource(ctx, op.account, op.source, op.sourceConditions, undefined);
  const range = op.sourceRange === undefined ? null : { start: op.sourceRange.start, end: Math.min(op.sourceRange.end ?? source.loaded.record.size - 1, source.loaded.record.size - 1) };
  if (range !== null && range.start >= source.loaded.record.size) throw new FrontendError('InvalidRange', 'the source range starts past the source blob');
  const data = await copyContent(ctx.tables, { key: source.loaded.blobKey, content: source.content }, key, range);
  await stageBlock(ctx, op, key, data, container);
  return { contentMd5: data.md5 };
}

function resolveBlock(entry: BlockListEntry, committedById: ReadonlyMap<string, CommittedBlock>, uncommittedById: ReadonlyMap<string, UncommittedBlock>): CommittedBlock {
  const id = Buffer.from(entry.id, 'base64');
  const uncommitted = entry.kind === 'Committed' ? undefined : uncommittedById.get(entry.id);
  if (uncommitted !== undefined) return { id, size: uncommitted.record.size, refs: uncommitted.record.refs };
  const found = entry.kind === 'Uncommitted' ? undefined : committedById.get(entry.id);
  if (found === undefined) throw new FrontendError('InvalidBlockList', `block ${entry.id} is not in the ${entry.kind.toLowerCase()} list`);
  return found;
}

export async function putBlockList(ctx: BlobServiceContext, op: Op.PutBlockList, entries: readonly BlockListEntry[], call: CallContext): Promise<WriteResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  checkIdLengths(entries);
  return replaceBlob(ctx, key, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    checkBlobModify(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
    if (existing !== null && existing.record.type !== 'BlockBlob') throw new FrontendError('InvalidBlobType', 'the blob is not a block blob');
    const staging = await readStaging(ctx, key);
    const consumed = staging.record === null ? [] : await uncommittedBlocks(ctx, key, staging.record.gen);
    const committedBlocks = existing === null ? [] : await loadBlockList(ctx.tables, key, existing.record.blockList);
    const committedById = new Map(committedBlocks.filter((block) => block.id.length > 0).map((block) => [block.id.toString('base64'), block]));
    const uncommittedById = new Map(consumed.map((block) => [block.id, block]));
    const blocks = entries.map((entry) => resolveBlock(entry, committedById, uncommittedById));
    const list: PreparedBlockList = await storeBlockList(ctx.tables, key, blocks);
    const record = blockRecord(blocks, list.stored, { headers: op.httpHeaders, metadata: metadataPairs(op.metadata), tags: op.tags, tier: op.tier });
    const dropStaging: PartitionOp[] = staging.row === null ? [] : [{ kind: 'delete', key: stagingKey(key), ifMatch: staging.row.etag }];
    // The consumed generation's uncommitted rows are deleted by the commit itself as far as they
    // fit in its transaction: dropped after it, a front end dying in between left them dead, and no
    // later Put Block (List) of the blob sweeps them (block-list-crash.test.ts). Their deletes need no
    // condition: the staging row's If-Match fails the commit if any block was staged since. More
    // than that (a generation of hundreds of blocks): the rest after the commit, under a sweep intent.
    const room = Math.max(0, partitionBatchMutationsMax - 1 - dropStaging.length - list.pages.length);
    const dropNow: PartitionOp[] = consumed.slice(0, room).map((block) => ({ kind: 'delete', key: block.key }));
    const overflow = consumed.length > room && staging.row !== null ? { overflow: staging.row } : {};
    const done = await commitBlob(ctx, { container, existing, ...overflow }, key, record, [...dropStaging, ...list.pages, ...dropNow]);
    return { ...done, dropLater: consumed.slice(room).map((block) => block.key) };
  });
}

export async function getBlockList(ctx: BlobServiceContext, op: Op.GetBlockList): Promise<BlockList> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  const existing = op.snapshot === undefined ? await readBlob(ctx, container, op.blob) : await readSnapshotRow(ctx, key, op.snapshot);
  if (existing !== null) checkBlobRead(existing, op, ctx.clock.nowMs());
  if (existing !== null && existing.record.type !== 'BlockBlob') throw new FrontendError('InvalidBlobType', 'the blob is not a block blob');
  const staging = op.listType === 'committed' || op.snapshot !== undefined ? null : (await readStaging(ctx, key)).record;
  if (existing === null && staging === null) throw blobNotFound();
  const blocks = existing === null ? [] : await loadBlockList(ctx.tables, key, existing.record.blockList);
  const uncommitted = staging === null ? [] : await uncommittedBlocks(ctx, key, staging.gen);
  return {
    committed: blocks.filter((block) => block.id.length > 0).map((block) => ({ id: block.id.toString('base64') as Op.PutBlock['blockId'], size: block.size })),
    uncommitted: uncommitted.map((block) => ({ id: block.id, size: block.record.size })),
    ...(existing === null ? {} : { etag: quotedEtag(existing.etag), lastModified: new Date(existing.modifiedMs), contentLength: existing.record.size }),
  };
}

function copiedRecord(source: LoadedBlob, data: WrittenData, key: Buffer, op: Op.CopyBlob | Op.CopyBlobFromURL, nowMs: number): { record: BlobRecord; segments: PartitionOp[] } {
  const copyId = randomUUID();
  const base = {
    createdMs: 0, size: data.size, headers: source.record.headers,
    metadata: op.metadata.size === 0 ? source.record.metadata : metadataPairs(op.metadata), tags: op.tags, lease: null,
    copy: { id: copyId, status: 'success' as const, source: redactedSource(op.source.url), progress: `${data.size}/${data.size}`, completedOn: new Date(nowMs) },
  };
  if (source.record.type === 'AppendBlob') {
    const sealed = source.record.append?.sealed ?? false;
    const laid = appendRefs(key, { inc: randomHex(8), segments: 0, tail: [], blockCount: source.record.append?.blockCount ?? 0, sealed }, data.refs);
    return { record: { ...base, type: 'AppendBlob', blockList: null, append: laid.state }, segments: laid.segments };
  }
  return { record: { ...base, type: 'BlockBlob', tier: op.tier ?? 'Hot', blockList: null, append: null }, segments: [] };
}

export async function copyBlob(ctx: BlobServiceContext, op: Op.CopyBlob | Op.CopyBlobFromURL, call: CallContext): Promise<CopyResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  checkBlobModify(await readBlob(ctx, container, op.blob), op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
  const source = await readSource(ctx, op.account, op.source, op.sourceConditions, op.kind === 'CopyBlob' ? op.sourceLeaseId : undefined);
  const data = await copyContent(ctx.tables, { key: source.loaded.blobKey, content: source.content }, key, null);
  const { record, segments } = copiedRecord(source.loaded, data, key, op, ctx.clock.nowMs());
  const blocks: CommittedBlock[] = data.size === 0 ? [] : [{ id: Buffer.alloc(0), size: data.size, refs: data.refs }];
  const list = record.type === 'BlockBlob' ? await storeBlockList(ctx.tables, key, blocks) : { stored: null, pages: [] };
  const final: BlobRecord = { ...record, blockList: list.stored };
  const result = await replaceBlob(ctx, key, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    checkBlobModify(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
    return commitBlob(ctx, { container, existing }, key, final, [...segments, ...list.pages]);
  });
  return { ...result, copyId: record.copy?.id ?? '', copyStatus: 'success' };
}
