// Append blob operations (docs/blob-schema.md, "Append blobs"): Create (Put Blob with
// x-ms-blob-type AppendBlob), Append Block, Seal.
//
// Invariants: an Append Block is one data append (≤ appendBlockBytesMax) made durable before
// the row that counts it; the blob row and any segment row it fills are one transaction under
// the row version read, so the append position, max-size and block-count checks hold at the
// instant of the write, and two concurrent appends land one after the other, never at the same
// offset; a sealed blob takes no appends.
// Fault model: a lost race re-reads and re-checks (the bytes already appended are reused); a
// failed append leaves unreferenced data.

import { appendBlobBlocksMax } from '../../constants.ts';
import type { AppendResult, CallContext, RequestBody, WriteResult } from '../blob-backend.ts';
import { FrontendError } from '../errors.ts';
import type * as Op from '../operation.ts';
import { checkBlobModify, checkBlobWrite, committed } from './blob-write.ts';
import { leavesDeadRows } from './blob-sweep.ts';
import { commitMaybeUnderIntent, sweepThenDischarge, type SweepIntent } from './sweep-intents.ts';
import type { CommitResult } from '../../partition/partition.ts';
import { appendRefs } from './content.ts';
import {
  blobNotFound, loadContainer, metadataPairs, newVersion, putOp, randomHex, readBlob, withRetry, type BlobServiceContext, type LoadedBlob,
} from './context.ts';
import { commitTagged } from './tag-index.ts';
import { writeBlock } from './data.ts';
import { blobKey } from './keys.ts';
import { encodeBlob, type AppendState, type BlobRecord } from './records.ts';

export async function createAppendBlob(ctx: BlobServiceContext, op: Op.CreateAppendBlob, call: CallContext): Promise<WriteResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  const seen: { replaced: LoadedBlob | null; intent: SweepIntent | null } = { replaced: null, intent: null };
  const result = await withRetry(ctx, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    checkBlobModify(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: call.createOnly });
    const record: BlobRecord = {
      type: 'AppendBlob', createdMs: existing?.record.createdMs ?? ctx.clock.nowMs(), size: 0, headers: op.httpHeaders, metadata: metadataPairs(op.metadata),
      tags: op.tags, lease: existing?.record.lease ?? null, blockList: null,
      append: { inc: randomHex(8, ctx.random), segments: 0, tail: [], blockCount: 0, sealed: false },
    };
    seen.replaced = existing;
    const commit = (): Promise<CommitResult> => commitTagged(ctx, { container, blob: key, before: existing?.record.tags ?? [], after: record.tags }, [putOp(key, encodeBlob(record), existing?.row ?? null)]);
    // The replaced incarnation's segments (unless a snapshot names them) die: a sweep intent first.
    const fence = existing !== null && leavesDeadRows(existing.record) ? existing.row : null;
    const { value, intent } = await commitMaybeUnderIntent(ctx, { blob: key, fence }, commit);
    seen.intent = intent;
    return committed(value);
  });
  if (leavesDeadRows(seen.replaced?.record)) await sweepThenDischarge(ctx, key, seen.intent);
  return result;
}

/** The blob as an unsealed append blob, or Azure's error. */
function appendState(existing: LoadedBlob | null): AppendState {
  if (existing === null) throw blobNotFound();
  if (existing.record.type !== 'AppendBlob' || existing.record.append === null) throw new FrontendError('InvalidBlobType', 'the blob is not an append blob');
  if (existing.record.append.sealed) throw new FrontendError('BlobIsSealed', 'the append blob is sealed');
  return existing.record.append;
}

function checkAppend(existing: LoadedBlob | null, op: Op.AppendBlock, nowMs: number): AppendState {
  checkBlobWrite(existing, op, { nowMs, createOnly: false });
  const state = appendState(existing);
  const size = existing?.record.size ?? 0;
  if (op.maxSize !== undefined && size + op.contentLength > op.maxSize) throw new FrontendError('MaxBlobSizeConditionNotMet', 'the append would pass x-ms-blob-condition-maxsize');
  if (op.appendPosition !== undefined && op.appendPosition !== size) throw new FrontendError('AppendPositionConditionNotMet', 'the blob is not at x-ms-blob-condition-appendpos');
  if (state.blockCount >= appendBlobBlocksMax) throw new FrontendError('BlockCountExceedsLimit', 'the append blob has 50,000 committed blocks');
  return state;
}

export async function appendBlock(ctx: BlobServiceContext, op: Op.AppendBlock, body: RequestBody): Promise<AppendResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  checkAppend(await readBlob(ctx, container, op.blob), op, ctx.clock.nowMs());
  const data = await writeBlock(ctx.tables, key, body, op);
  const result = await withRetry(ctx, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    const state = checkAppend(existing, op, ctx.clock.nowMs());
    if (existing === null) throw blobNotFound();
    const laid = appendRefs(key, { ...state, blockCount: state.blockCount + 1 }, data.refs);
    const record: BlobRecord = newVersion({ ...existing.record, size: existing.record.size + data.size, append: laid.state });
    const commit = await ctx.tables.transact([putOp(key, encodeBlob(record), existing.row), ...laid.segments]);
    return { ...committed(commit), appendOffset: existing.record.size, committedBlockCount: laid.state.blockCount };
  });
  return data.md5 === null ? result : { ...result, contentMd5: data.md5 };
}

export async function sealAppendBlob(ctx: BlobServiceContext, op: Op.SealAppendBlob): Promise<WriteResult> {
  const container = await loadContainer(ctx, op.account, op.container);
  const key = blobKey(container.blobs, op.blob);
  return withRetry(ctx, async () => {
    const existing = await readBlob(ctx, container, op.blob);
    checkBlobWrite(existing, op, { nowMs: ctx.clock.nowMs(), createOnly: false });
    if (existing === null) throw blobNotFound();
    if (existing.record.append === null) throw new FrontendError('InvalidBlobType', 'the blob is not an append blob');
    if (op.appendPosition !== undefined && op.appendPosition !== existing.record.size) throw new FrontendError('AppendPositionConditionNotMet', 'the blob is not at x-ms-blob-condition-appendpos');
    if (existing.record.append.sealed) return { etag: `"${existing.etag}"` as WriteResult['etag'], lastModified: new Date(existing.modifiedMs) };
    const record = newVersion({ ...existing.record, append: { ...existing.record.append, sealed: true } });
    return committed(await ctx.tables.transact([putOp(key, encodeBlob(record), existing.row)]));
  });
}
