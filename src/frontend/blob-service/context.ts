// Shared machinery of the blob service: the injected dependencies, the bounded
// read-evaluate-write retry (docs/blob-schema.md, "Conditions, ETags and atomicity"), loading
// containers and blobs as typed records, and turning records into the front end's properties.
//
// Invariants: a retried attempt re-reads everything it evaluates (only a refused partition
// condition, which applied nothing, is retried); every write names the row version it read
// (ifMatch) or that there was none (ifNoneMatch '*').
// Fault model: partition calls throw StorageErrors, passed through untouched (the front end's
// error table maps them); an exhausted retry is partition.busy (503 ServerBusy, retryable).

import { randomBytes } from 'node:crypto';
import { blobWriteAttemptsMax, containerHintMetadataCharsMax, copyPendingStallMs, incarnationHintsMax } from '../../constants.ts';
import type { LiveRow, PartitionOp } from '../../partition/partition.ts';
import type { Clock } from '../../util/clock.ts';
import { LruCache } from '../../util/lru-cache.ts';
import type { Random } from '../../util/random.ts';
import { StorageError, isStorageError } from '../../util/errors.ts';
import type { Column } from '../../wire/partition-row.ts';
import { FrontendError } from '../errors.ts';
import type { SweepWake } from './sweep-wake.ts';
import type { BlobProperties, ContainerProperties, CopyProperties, Metadata, SnapshotId } from '../model.ts';
import type { BlobTables } from './blob-tables.ts';
import type { DataCache } from './data-cache.ts';
import { quotedEtag } from './conditions.ts';
import { blobKey, blobPrefix, containerKey } from './keys.ts';
import { leaseProperties } from './lease.ts';
import { decodeBlob, decodeContainer, type BlobRecord, type ContainerRecord } from './records.ts';

export interface BlobServiceStats {
  /** Attempts repeated because a partition condition lost a race (nothing was applied). */
  raceRetries: number;
  /** Operations that lost blobWriteAttemptsMax races in a row (answered 503). */
  raceExhausted: number;
  /** Graveyard rows a slow write put back after finding its container deleted (container-fence.ts). */
  graveyardsRestored?: number;
  /** Sweep intents put (sent) before commits that discard more rows than they delete (sweep-intents.ts). */
  sweepIntentsWritten?: number;
  /** Sweep intents their writer deleted itself (its cleanup finished, or its commit was refused). */
  sweepIntentsDischarged?: number;
}

export interface BlobServiceContext {
  readonly tables: BlobTables;
  readonly clock: Clock;
  readonly stats: BlobServiceStats;
  /** Source of new container/staging/append ids (the simulator's seeded one); node:crypto if absent. */
  readonly random?: Random;
  /** Put Blob bodies of 1..this many bytes go inline in the blob row (docs/blob-schema.md, "Inline
   * bodies"); 0 or absent: off (every body to the data stream first). */
  readonly inlineBodyBytesMax?: number;
  /** Containers' incarnations seen lately (loadContainerAndBlob); absent: every read takes two calls. */
  readonly incarnations?: IncarnationHints;
  /** Blobs Put lately, by "account/container/blob" (block-blobs.ts putBlob; putNewBlob: a likely overwrite skips the
   * one-call try); absent: every inline Put of a known container tries it. */
  readonly writtenBlobs?: LruCache<string, true>;
  /** Small data-stream pieces read lately, by ref (data-cache.ts); absent: every Get reads them. */
  readonly dataCache?: DataCache;
  /** Told when this process writes work for the background sweep (an intent, a graveyard). */
  readonly sweepWake?: SweepWake;
}

/**
 * The incarnation each container had when last read, by container key (latin1), at most
 * incarnationHintsMax (the least recently used forgotten first). Only a guess of a blob row's key:
 * loadContainerAndBlob reads the container row in the same partition call and uses the blob row
 * only if the row's incarnation is the guessed one, so a stale hint (the container deleted, or
 * deleted and created again, through any front end) costs a second read, never a wrong answer.
 */
export type IncarnationHints = LruCache<string, ContainerHint>;

/** A container's incarnation as last read, with the keys made from it (built once, not per read). */
export interface ContainerHint {
  readonly inc: string;
  /** containerKey(account, container) */
  readonly key: Buffer;
  /** blobPrefix(account, container, inc) */
  readonly blobs: Buffer;
  /** The container row's ETag as last read: a new blob's Put checks it in its own transaction
   * instead of reading the row (putNewBlob in block-blobs.ts). */
  readonly etag: string;
  /** Its blob rows were found in another partition than the container row (a split between
   * them): a one-call Put cannot check the container there, so it is not tried. */
  readonly separate?: true;
  /** The container row last decoded, by its ETag and Last-Modified: a row read again unchanged
   * (every Put and Get reads it) is not decoded again. A row's ETag never repeats for another
   * version of it (the commit sequence, as If-Match relies on), so an equal one is the same row. */
  readonly decoded?: { readonly etag: string; readonly modifiedMs: number; readonly record: ContainerRecord };
}

/** The hints' key: account names hold no '/'. Built by join, which makes one flat string: a
 * template literal makes a tree of cons strings holding their parts (the blob name a slice of the
 * request's URL), ~400 bytes a key where the flat string is ~150 (writtenBlobs: 10,000 keys). */
export function hintKey(account: string, container: string): string {
  return [account, container].join('/');
}

/** writtenBlobs' key: "account/container/blob", one flat string (hintKey). */
export function writtenBlobKey(account: string, container: string, blob: string): string {
  return [account, container, blob].join('/');
}

export function incarnationHints(): IncarnationHints {
  return new LruCache(incarnationHintsMax);
}

/** A partition condition refused the transaction: nothing was applied (a write lost a race). */
export const conditionRefusedCodes: ReadonlySet<string> = new Set(['partition.condition_failed', 'partition.exists', 'partition.row_not_found']);

/** Runs `attempt` until it does not lose a race on a partition condition (bounded). */
export async function withRetry<T>(ctx: BlobServiceContext, attempt: (index: number) => Promise<T>): Promise<T> {
  let last: unknown = null;
  for (let index = 0; index < blobWriteAttemptsMax; index++) {
    if (index > 0) ctx.stats.raceRetries += 1;
    try {
      return await attempt(index);
    } catch (error) {
      if (!isStorageError(error) || !conditionRefusedCodes.has(error.code)) throw error;
      last = error;
    }
  }
  ctx.stats.raceExhausted += 1;
  throw new StorageError('partition.busy', `the blob changed under ${blobWriteAttemptsMax} attempts in a row`, { retryable: true, cause: last });
}

/** The partition condition for a row read as `row` (null: it was absent). */
export function rowCondition(row: LiveRow | null): { ifMatch: string } | { ifNoneMatch: '*' } {
  return row === null ? { ifNoneMatch: '*' } : { ifMatch: row.etag };
}

export function putOp(key: Buffer, columns: readonly Column[], row: LiveRow | null): PartitionOp {
  return { kind: 'put', key, columns, ...rowCondition(row) };
}

export function randomHex(bytes: number, random?: Random): string {
  return (random?.bytes(bytes) ?? randomBytes(bytes)).toString('hex');
}

// ---- containers ---------------------------------------------------------------------------------

export interface LoadedContainer {
  readonly account: string;
  readonly name: string;
  /** Monotonic time just before the row was read (the container fence measures from it). */
  readonly loadedAtMs: number;
  readonly key: Buffer;
  readonly row: LiveRow;
  readonly record: ContainerRecord;
  readonly etag: string;
  readonly modifiedMs: number;
  /** Prefix of the container's blob rows (its current incarnation). */
  readonly blobs: Buffer;
}

export async function readContainer(ctx: BlobServiceContext, account: string, container: string): Promise<LoadedContainer | null> {
  const key = containerKey(account, container);
  const loadedAtMs = ctx.clock.monotonicMs();
  const row = await ctx.tables.get(key);
  if (row === null) return null;
  return loadedContainer(ctx, { account, name: container, loadedAtMs, key }, row, ctx.incarnations?.get(hintKey(account, container)));
}

function loadedContainer(ctx: BlobServiceContext, at: Pick<LoadedContainer, 'account' | 'name' | 'loadedAtMs' | 'key'>, row: LiveRow, hint?: ContainerHint): LoadedContainer {
  const known = hint?.decoded;
  const same = known !== undefined && known.etag === row.etag && known.modifiedMs === row.lastModifiedMs;
  const record = same ? known.record : decodeContainer(row);
  let blobs = hint?.inc === record.inc ? hint.blobs : null;
  if (blobs === null || !same) {
    blobs ??= blobPrefix(at.account, at.name, record.inc);
    const decoded = smallContainer(record) ? { decoded: { etag: row.etag, modifiedMs: row.lastModifiedMs, record } } : {};
    ctx.incarnations?.set(hintKey(at.account, at.name), { inc: record.inc, key: at.key, blobs, etag: row.etag, ...decoded, ...(hint?.separate === true && hint.inc === record.inc ? { separate: true } : {}) });
  }
  return { ...at, row, record, etag: record.etag ?? row.etag, modifiedMs: record.modifiedMs ?? row.lastModifiedMs, blobs };
}

/** A record a hint may keep decoded: no stored access policies and ≤ containerHintMetadataCharsMax
 * of metadata, so incarnationHintsMax hints stay within their memory bound. */
function smallContainer(record: ContainerRecord): boolean {
  if (record.identifiers.length > 0) return false;
  let chars = 0;
  for (const [name, value] of record.metadata) chars += name.length + value.length;
  return chars <= containerHintMetadataCharsMax;
}

function containerNotFound(container: string): FrontendError {
  return new FrontendError('ContainerNotFound', `container ${container} does not exist`);
}

export async function loadContainer(ctx: BlobServiceContext, account: string, container: string): Promise<LoadedContainer> {
  const loaded = await readContainer(ctx, account, container);
  if (loaded === null) throw containerNotFound(container);
  return loaded;
}

/**
 * loadContainer, then readBlob of `name` in it — in one partition call (getMany) when the
 * container's incarnation is in ctx.incarnations and both rows lie in one partition. The
 * container row is read every time, as loadContainer reads it (a deleted container's blobs are
 * never served); the blob row read beside it is used only if its key was made with the
 * incarnation that container row holds, else the blob is read again under the right one.
 */
export async function loadContainerAndBlob(ctx: BlobServiceContext, account: string, container: string, name: string): Promise<{ container: LoadedContainer; blob: LoadedBlob | null }> {
  const hint = ctx.incarnations?.get(hintKey(account, container));
  if (hint === undefined) {
    const loaded = await loadContainer(ctx, account, container);
    return { container: loaded, blob: await readBlob(ctx, loaded, name) };
  }
  const { key, inc } = hint;
  const guess = blobKey(hint.blobs, name);
  const loadedAtMs = ctx.clock.monotonicMs();
  const [containerRow, blobRow] = await ctx.tables.getMany([key, guess]);
  if (containerRow === null || containerRow === undefined) {
    ctx.incarnations?.delete(hintKey(account, container));
    throw containerNotFound(container);
  }
  const loaded = loadedContainer(ctx, { account, name: container, loadedAtMs, key }, containerRow, hint);
  if (loaded.record.inc !== inc) return { container: loaded, blob: await readBlob(ctx, loaded, name) };
  return { container: loaded, blob: blobRow === null || blobRow === undefined ? null : loadedBlob(blobRow, guess) };
}

export function containerProperties(loaded: Pick<LoadedContainer, 'record' | 'etag' | 'modifiedMs'>, nowMs: number): ContainerProperties {
  return {
    etag: quotedEtag(loaded.etag), lastModified: new Date(loaded.modifiedMs), lease: leaseProperties(loaded.record.lease, nowMs),
    publicAccess: loaded.record.publicAccess, metadata: new Map(loaded.record.metadata),
  };
}

// ---- blobs --------------------------------------------------------------------------------------

export interface LoadedBlob {
  /** The row's key (the blob's own key, or a snapshot's). */
  readonly key: Buffer;
  /** The blob's own key (segments and block data route by it). */
  readonly blobKey: Buffer;
  readonly row: LiveRow;
  readonly record: BlobRecord;
  readonly etag: string;
  readonly modifiedMs: number;
  readonly snapshot?: SnapshotId;
}

export function loadedBlob(row: LiveRow, base: Buffer, snapshot?: SnapshotId): LoadedBlob {
  const record = decodeBlob(row);
  return {
    key: row.key, blobKey: base, row, record, etag: record.etag ?? row.etag, modifiedMs: record.modifiedMs ?? row.lastModifiedMs,
    ...(snapshot === undefined ? {} : { snapshot }),
  };
}

export async function readBlob(ctx: BlobServiceContext, container: LoadedContainer, name: string): Promise<LoadedBlob | null> {
  const key = blobKey(container.blobs, name);
  const row = await ctx.tables.get(key);
  return row === null ? null : loadedBlob(row, key);
}

export function blobNotFound(): FrontendError {
  return new FrontendError('BlobNotFound', 'the blob does not exist');
}

export function blobProperties(loaded: LoadedBlob, nowMs: number): BlobProperties {
  const r = loaded.record;
  const lease = loaded.snapshot === undefined ? leaseProperties(r.lease, nowMs) : leaseProperties(null, nowMs);
  return {
    etag: quotedEtag(loaded.etag), lastModified: new Date(loaded.modifiedMs), createdOn: new Date(r.createdMs), contentLength: r.size,
    blobType: r.type, httpHeaders: r.headers, lease, metadata: new Map(r.metadata),
    ...(r.type === 'BlockBlob' ? { accessTier: r.tier ?? 'Hot' } : {}),
    ...(r.copy === undefined ? {} : { copy: effectiveCopy(loaded, nowMs) ?? r.copy }),
    ...(r.append === null ? {} : { committedBlockCount: r.append.blockCount, sealed: r.append.sealed }),
    ...(r.tags.length === 0 ? {} : { tagCount: r.tags.length }),
    ...(loaded.snapshot === undefined ? {} : { snapshot: loaded.snapshot }),
  };
}

/** The blob's copy state as readers see it: a pending copy its transfer did not write for
 * copyPendingStallMs lost its front end (stopped or died) and is failed (docs/copy-sources.md).
 * The transfer's own beat, not the row's time: a Lease Blob or Set Blob Tags rewrites the row and
 * keeps the copy pending, and must not keep a dead one alive. */
export function effectiveCopy(loaded: LoadedBlob, nowMs: number): CopyProperties | undefined {
  const copy = loaded.record.copy;
  const beatMs = loaded.record.copyBeatMs ?? loaded.row.lastModifiedMs;
  if (copy?.status !== 'pending' || nowMs - beatMs <= copyPendingStallMs) return copy;
  return { ...copy, status: 'failed', statusDescription: 'copy interrupted: the front end transferring it stopped' };
}

export function metadataPairs(metadata: Metadata): (readonly [string, string])[] {
  return [...metadata];
}

/** The record as a write that Azure does not count as a modification leaves it: same ETag and time. */
export function keepVersion(loaded: LoadedBlob, record: BlobRecord): BlobRecord {
  return { ...record, etag: loaded.etag, modifiedMs: loaded.modifiedMs };
}

/** The record as a modifying write leaves it: ETag and time become the commit's. */
export function newVersion(record: BlobRecord): BlobRecord {
  const rest: { -readonly [K in keyof BlobRecord]: BlobRecord[K] } = { ...record };
  delete rest.etag;
  delete rest.modifiedMs;
  return rest;
}

/** Azure's snapshot id: ISO 8601 with 7 fractional digits; `tick` (0..9999) orders ids in one ms. */
export function snapshotIdAt(nowMs: number, tick: number): SnapshotId {
  const iso = new Date(nowMs).toISOString();
  return `${iso.slice(0, 23)}${String(tick).padStart(4, '0')}Z` as SnapshotId;
}
