// One partition of an object table (DESIGN.md §5, docs/formats/partition-*.md): a key range
// served with strong consistency, every byte of its state in streams. Reads merge the memtable, a
// frozen memtable being checkpointed and the sorted runs (newest first); writes are batches
// (single rows or multi-row transactions with ETag conditions) made durable in the commit log
// before they touch memory (durable first, then publish).
//
//   transact ──► queue ──► writer (one at a time): check conditions against the current state
//                          plus the groups in flight and earlier batches of the same group;
//                          assign sequence, ETag, time; ONE log append for the group (at most
//                          limits.logAppendsInFlight in flight) ──► apply to memtable ──►
//                          acknowledge, group after group in sequence order
//   checkpoint: freeze memtable → runs (checkpoint stream) → manifest (meta stream) → publish
//   compaction: size-tiered (compaction-policy.ts): merge adjacent runs of one tier (tombstones
//               dropped when the oldest run is merged) → new runs in their place → manifest
//   GC:         drop meta/log/checkpoint extents the manifest no longer needs, copy live data
//               forward out of mostly-dead data extents and drop dead ones (docs/partition-gc.md)
//   open:       seal meta and log tails → newest manifest → runs → replay log after it
//
// Invariants:
// - a batch is acknowledged only after its log record and every lower sequence's are durable, and
//   applied to memory only then; batches are published in sequence order, each exactly once;
// - a checkpoint's logStart precedes every record of a group not yet published (the end of the
//   last append completed when the oldest in-flight group was issued: docs/formats/partition-log.md,
//   "Pipelined log appends");
// - conditions are evaluated and the batch logged with no other write in between (one writer);
// - after a log append whose outcome is unknown, the partition refuses everything (failed state)
//   until it is reloaded from the streams: it never reuses a sequence number, and no later group
//   in flight is acknowledged, even one whose append completed;
// - memory changes (memtable swap, run list) are published only after the manifest naming them
//   is durable; the row cache holds the newest version of a key and is invalidated by writes;
// - GC drops only what the published (durable) manifest and the live rows no longer reference,
//   and nothing after a manifest append of unknown outcome until a later one succeeds; the writer
//   refuses rows that name a data extent GC condemned, and rows that name an extent outside the
//   partition's own and inherited data streams (checkDataStreams).
// Fault model: any stream call may fail (stream.unavailable …) or be slow; the process may die
// at any point (a reload from the streams restores every acknowledged batch); a stale owner is
// fenced by sealing at open (leases come with the partition server).
import {
  appendBytesMax, dataAppendBytesMax, blockCacheBytesMax, scanBlockCacheBytesMax, checkpointIntervalMs, compactionMergeRunsMax, compactionTierBaseBytes, compactionTombstoneRatio,
  dataGcCopyBytesPerPassMax, dataGcCopyForwardLiveRatio, dataGcGraceMs, dataGcIntervalMs, dataGcRefsTrackedMax, dataGcTailSealBytes,
  maintenanceTickMs, memtableBytesMax, metaManifestsPerExtentMax, partitionBatchMutationsMax, partitionKeyBytesMax, partitionLogAppendOverlapAfterMs, partitionLogAppendsInFlight, partitionWriteQueueMax,
  rowCacheEntriesMax, rowCacheUnitBytes, runBlockBytesTarget, runBytesMax, runReadAheadBlocks, runsCompactionTrigger, runsMax, scanExaminedMax, scanLimitMax, scanPageBytesMax,
} from '../constants.ts';
import { AssertionFailure, assert } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import { SerialLock } from '../stream/serial-lock.ts';
import { encodeManifest } from '../wire/partition-checkpoint.ts';
import type { LogPosition, Manifest } from '../wire/partition-checkpoint.ts';
import { encodeLogRecord, logHeaderBytes, logRecordBytes, logRecordFramedRows } from '../wire/partition-log.ts';
import { encodedRowBytes, encodedRowIsTombstone, encodeFramedRows } from '../wire/partition-row.ts';
import type { Column, DataRef, RowRecord } from '../wire/partition-row.ts';
import { chooseMerge } from './compaction-policy.ts';
import type { MergeChoice } from './compaction-policy.ts';
import { decodeContinuation, encodeContinuation, scanFingerprint } from './continuation-token.ts';
import { dataGcPass } from './data-gc.ts';
import type { DataGcHost, DataGcReport } from './data-gc.ts';
import { columnDataReferences, extentsBefore, unreferencedExtents } from './partition-gc.ts';
import type { RowDataReferences } from './partition-gc.ts';
import { MemtableCursor, MergeCursor, RunCursor, wholeRunReads } from './cursors.ts';
import type { RunCursorReads } from './cursors.ts';
import type { SourceCursor } from './cursors.ts';
import { LruCache } from '../util/lru-cache.ts';
import { Memtable } from './memtable.ts';
import { SpillingRunWriter, type InlineData } from './inline-spill.ts';
import { loadPartition } from './partition-load.ts';
import type { ReplayStats } from './partition-load.ts';
import { decodedRows, encodedRows, scanPage, successor } from './partition-scan.ts';
import type { EncodedScanItem, PrefixItem, RowItem } from './partition-scan.ts';
import type { LiveRow, ScanItem } from './partition-scan.ts';
import type { PartitionStreamIds, PartitionStreams } from './partition-streams.ts';
import type { BlockCache, BlockRows, RunReader } from './run-reader.ts';
import { RunWriter } from './run-writer.ts';
import type { Body } from '../util/body-parts.ts';

export type { LiveRow, ScanItem } from './partition-scan.ts';

/**
 * One op of a transaction. A `check` writes nothing: the transaction applies only if the row at its
 * key is live with ETag `ifMatch` ('*': with any ETag) when the batch is checked (a row the caller read and relies on,
 * e.g. a blob's container row). A check of a key outside this partition refuses the transaction
 * as partition.condition_failed (it cannot be checked here; nothing applied), so a caller that
 * guessed the rows share a partition reads and decides the slow way.
 */
export type PartitionOp =
  | { readonly kind: 'put'; readonly key: Buffer; readonly columns: readonly Column[]; readonly ifMatch?: string; readonly ifNoneMatch?: '*' }
  | { readonly kind: 'delete'; readonly key: Buffer; readonly ifMatch?: string }
  | { readonly kind: 'check'; readonly key: Buffer; readonly ifMatch: string };

export interface CommitResult {
  readonly sequence: number;
  readonly lastModifiedMs: number;
  /** Per op: the new ETag of a put, null for a delete or a check. */
  readonly etags: readonly (string | null)[];
}

export interface ScanOptions {
  readonly start?: Buffer;
  readonly end?: Buffer;
  readonly prefix?: Buffer;
  readonly delimiter?: Buffer;
  readonly limit: number;
  readonly continuation?: string;
}

export interface ScanPage<T = ScanItem> {
  readonly items: readonly T[];
  readonly continuation: string | null;
}

/** Tunables; defaults from src/constants.ts. Tests shrink them to exercise many blocks and runs. */
export interface PartitionLimits {
  readonly memtableBytesMax: number;
  readonly blockBytesTarget: number;
  readonly runBytesMax: number;
  readonly runsCompactionTrigger: number;
  readonly rowCacheEntriesMax: number;
  readonly blockCacheBytesMax: number;
  readonly scanBlockCacheBytesMax: number;
  readonly checkpointIntervalMs: number;
  readonly scanExaminedMax: number;
  /** Compaction (compaction-policy.ts): runsCompactionTrigger is the fanout F of one tier. */
  readonly compactionTierBaseBytes: number;
  readonly compactionMergeRunsMax: number;
  readonly compactionTombstoneRatio: number;
  /** GC (docs/partition-gc.md). */
  readonly maintenanceTickMs: number;
  readonly dataGcIntervalMs: number;
  readonly dataGcGraceMs: number;
  readonly dataGcCopyBytesPerPassMax: number;
  readonly dataGcCopyForwardLiveRatio: number;
  readonly dataGcTailSealBytes: number;
  readonly dataGcRefsTrackedMax: number;
  /** Log appends (commit groups) in flight at once, 1..partitionLogReorderAppendsMax. */
  readonly logAppendsInFlight: number;
  /** A further log append starts while others are in flight only once the newest has been in flight this long. */
  readonly logAppendOverlapAfterMs: number;
}

export const defaultPartitionLimits: PartitionLimits = {
  memtableBytesMax, blockBytesTarget: runBlockBytesTarget, runBytesMax, runsCompactionTrigger, rowCacheEntriesMax, blockCacheBytesMax, scanBlockCacheBytesMax,
  checkpointIntervalMs, scanExaminedMax, compactionTierBaseBytes, compactionMergeRunsMax, compactionTombstoneRatio, maintenanceTickMs,
  dataGcIntervalMs, dataGcGraceMs, dataGcCopyBytesPerPassMax, dataGcCopyForwardLiveRatio, dataGcTailSealBytes, dataGcRefsTrackedMax,
  logAppendsInFlight: partitionLogAppendsInFlight, logAppendOverlapAfterMs: partitionLogAppendOverlapAfterMs,
};

export interface PartitionOptions {
  readonly partitionId: number;
  readonly streams: PartitionStreams;
  readonly streamIds: PartitionStreamIds;
  readonly clock: Clock;
  /** Lease epoch of this owner (≥ 1); written into every log record. */
  readonly ownerEpoch: number;
  readonly keyRange?: { readonly low: Buffer; readonly high: Buffer | null };
  readonly limits?: Partial<PartitionLimits>;
  /** Start checkpoints, compactions and GC passes by themselves (default true). */
  readonly autoMaintenance?: boolean;
  /** Collect the data stream (default true). Off for a table whose rows hide refs from `dataReferences`. */
  readonly dataGc?: boolean;
  /** Where rows keep their data refs (default: every dataRefs column); docs/partition-gc.md. */
  readonly dataReferences?: RowDataReferences;
  /** Data the table keeps inline in rows, moved to the data stream when rows go into a run
   * (inline-spill.ts; docs/formats/partition-checkpoint.md, "Inline bytes spill"). Absent: none. */
  readonly inlineData?: InlineData;
  /**
   * Ancestors' data streams this partition's rows may point into (the map's inheritedData; its
   * `streams` must read them). GC copies such refs forward and then proves the streams unused
   * (stats().gc.inheritedFree), so the manager can release them (docs/partition-gc.md).
   */
  readonly inheritedData?: readonly number[];
}

/** What garbage collection did so far (docs/partition-gc.md, "Budgets"). */
export interface GcStats {
  readonly passes: number;
  readonly metaExtentsDropped: number;
  readonly logExtentsDropped: number;
  readonly checkpointExtentsDropped: number;
  readonly dataExtentsDropped: number;
  readonly dataBytesDropped: number;
  readonly bytesCopiedForward: number;
  readonly rowsRewritten: number;
  readonly rewritesLost: number;
  readonly tailSeals: number;
  readonly commitsRefusedCondemned: number;
  /** Of the last pass: live and dead bytes of sealed own data extents, and refs still foreign. */
  readonly lastLiveBytes: number;
  readonly lastDeadBytes: number;
  readonly lastForeignBytes: number;
  readonly lastDanglingRefs: number;
  /** Live rows the last data pass could not list refs of (it then dropped nothing). */
  readonly lastOpaqueRows: number;
  /** No live row references an inherited data stream, and the writer refuses rows that would
   * (proved by a pass, then fenced): the manager may release them. False without inherited streams. */
  readonly inheritedFree: boolean;
}

export interface PartitionStats extends ReplayStats {
  readonly batchesCommitted: number;
  readonly logAppends: number;
  readonly conditionFailures: number;
  readonly checkpoints: number;
  readonly compactions: number;
  readonly maintenanceFailures: number;
  /** Rows whose inline bytes a checkpoint or compaction moved to the data stream, those bytes, and the appends. */
  readonly inlineRowsSpilled: number;
  readonly inlineBytesSpilled: number;
  readonly inlineSpillAppends: number;
  /** Batches refused because a row named a data extent outside the partition's data streams. */
  readonly commitsRefusedForeignData: number;
  readonly runCount: number;
  readonly memtableBytes: number;
  readonly lastSequence: number;
  /** Sequence the current manifest's runs cover: lastSequence − this is the log a load replays. */
  readonly coveredSequence: number;
  readonly rowCacheHits: number;
  readonly gc: GcStats;
}

type PartitionState =
  | { readonly kind: 'open' }
  | { readonly kind: 'read_only' } // writes stopped (a split copies the rows); reads go on
  | { readonly kind: 'failed'; readonly cause: StorageError }
  | { readonly kind: 'closed' };

interface PreparedOp {
  readonly op: PartitionOp;
  readonly key: string;
  /** A GC rewrite: the row keeps this ETag and Last-Modified (GC is invisible to clients). */
  readonly preserve?: { readonly etag: string; readonly lastModifiedMs: number };
}

interface PendingBatch {
  readonly ops: readonly PreparedOp[];
  readonly estimateBytes: number;
  readonly resolve: (result: CommitResult) => void;
  readonly reject: (error: unknown) => void;
}

interface AcceptedBatch {
  readonly batch: PendingBatch;
  readonly rows: readonly RowRecord[];
  readonly sequence: number;
  /** Its log record's exact size. */
  readonly recordBytes: number;
}

/**
 * A log group: the accepted batches' records encoded in place, one after the other, into one
 * exact-size buffer (one copy of each inline body, not a record each and then their concatenation).
 */
function encodeGroup(accepted: readonly AcceptedBatch[], partitionId: number, ownerEpoch: number): { readonly group: Buffer; readonly records: readonly Buffer[] } {
  const group = Buffer.allocUnsafe(accepted.reduce((sum, item) => sum + item.recordBytes, 0));
  const records: Buffer[] = [];
  let offset = 0;
  for (const item of accepted) {
    records.push(encodeLogRecord({ partitionId, sequence: item.sequence, ownerEpoch, rows: item.rows }, group.subarray(offset, offset + item.recordBytes)));
    offset += item.recordBytes;
  }
  return { group, records };
}

/** A commit group whose log append was issued and which is not yet published. */
interface LogGroup {
  readonly accepted: readonly AcceptedBatch[];
  readonly records: readonly Buffer[];
  /** The end of the last log append completed when this group was issued: every record before it
   * belongs to a group issued earlier (S1 in docs/formats/partition-log.md), so it is a safe
   * checkpoint logStart while this group is the oldest unpublished one. */
  readonly logStartAtIssue: LogPosition;
  /** When its append was issued (monotonic ms): the writer's overlap rule (logAppendSlot). */
  readonly issuedAtMs: number;
  /** Its append returned (stored or failed): it no longer counts as in flight, though it may be unpublished. */
  returned: boolean;
  /** Settles when its append returns, before it is published. */
  appendReturned: Promise<void>;
  /** Where its append ended, once it completed. */
  end: LogPosition | null;
  /** Settles once its append completed and what that allows is published, or the partition failed. */
  settled: Promise<void>;
}

interface ManifestState {
  readonly manifestSequence: number;
  readonly coveredSequence: number;
  readonly logStart: LogPosition;
  readonly nextRunId: number;
}

interface Frozen {
  readonly memtable: Memtable;
  readonly coveredSequence: number;
  readonly logStart: LogPosition;
}

/** Placeholder ETag of the longest form (sequence < 2^53 is at most 14 hex digits), for size estimates. */
const longestEtag = `0x${'F'.repeat(14)}`;

export class Partition {
  readonly partitionId: number;
  private readonly streams: PartitionStreams;
  private readonly streamIds: PartitionStreamIds;
  private readonly clock: Clock;
  private readonly ownerEpoch: number;
  private readonly limits: PartitionLimits;
  private readonly keyLow: string;
  private readonly keyHigh: string | null;
  private readonly autoMaintenance: boolean;
  private state: PartitionState = { kind: 'open' };
  private active: Memtable;
  private frozen: Frozen | null = null;
  private runs: readonly RunReader[];
  private manifestState: ManifestState;
  /** The meta extent holding the published manifest (null: none yet). */
  private manifestExtentId: number | null;
  /** A manifest append failed: it may have landed naming runs we do not know; no stream GC until one succeeds. */
  private manifestUncertain = false;
  /** Data extents GC decided to drop: the writer refuses rows naming them (for this owner's life). */
  private readonly condemned = new Set<number>();
  /** Per data extent this owner appended to: monotonic time of the last append, and its end. */
  private readonly dataAppends = new Map<number, { lastMs: number; end: number }>();
  /** Extents of the data streams its rows may name (its own, the inherited ones) as last listed,
   * and every one this owner appended to: the writer's stream check (checkDataStreams). */
  private readonly dataExtentsKnown = new Set<number>();
  private readonly openedAtMs: number;
  private lastGcMs: number;
  private tickTimer: TimerHandle | null = null;
  /** The group the writer is checking (its batches left the queue, no append issued yet). */
  private accepting: readonly PendingBatch[] = [];
  private issuing: Promise<void> | null = null;
  /** Groups whose log appends were issued, not yet published, in sequence order. */
  private readonly logGroups: LogGroup[] = [];
  /** A log append failed: nothing more is issued or published by this owner. */
  private logFailed = false;
  /** The highest sequence and Last-Modified given to a batch (published or in flight). */
  private issuedSequence: number;
  private issuedModifiedMs = 0;
  private readonly dataGcEnabled: boolean;
  private readonly references: RowDataReferences;
  private readonly inlineData: InlineData | null;
  private appliedSequence: number;
  /** The end of the last log append that completed (in completion order). */
  private lastAppendEnd: LogPosition;
  private lastModifiedMs = 0;
  private manifestsInMetaTail = 0;
  private readonly queue: PendingBatch[] = [];
  private writer: Promise<void> | null = null;
  private background: Promise<void> | null = null;
  private readonly maintenanceLock = new SerialLock();
  private readonly rowCache: LruCache<string, RowRecord | null>;
  private readonly blockCache: BlockCache;
  /** Blocks scans read (scan resistance: a listing does not evict point reads' blocks). */
  private readonly scanBlockCache: BlockCache;
  private readonly replayStats: ReplayStats;
  private readonly counters = { batchesCommitted: 0, logAppends: 0, conditionFailures: 0, checkpoints: 0, compactions: 0, maintenanceFailures: 0,
    inlineRowsSpilled: 0, inlineBytesSpilled: 0, inlineSpillAppends: 0, commitsRefusedForeignData: 0 };
  private gcCounters: GcStats = {
    passes: 0, metaExtentsDropped: 0, logExtentsDropped: 0, checkpointExtentsDropped: 0, dataExtentsDropped: 0, dataBytesDropped: 0,
    bytesCopiedForward: 0, rowsRewritten: 0, rewritesLost: 0, tailSeals: 0, commitsRefusedCondemned: 0,
    lastLiveBytes: 0, lastDeadBytes: 0, lastForeignBytes: 0, lastDanglingRefs: 0, lastOpaqueRows: 0, inheritedFree: false,
  };
  private readonly inheritedData: readonly number[];
  lastMaintenanceError: unknown = null;

  private constructor(options: PartitionOptions, loaded: Awaited<ReturnType<typeof loadPartition>>) {
    this.partitionId = options.partitionId;
    this.streams = options.streams;
    this.streamIds = options.streamIds;
    this.clock = options.clock;
    this.ownerEpoch = options.ownerEpoch;
    this.limits = { ...defaultPartitionLimits, ...options.limits };
    this.keyLow = options.keyRange?.low.toString('latin1') ?? '';
    this.keyHigh = options.keyRange?.high?.toString('latin1') ?? null;
    this.autoMaintenance = options.autoMaintenance ?? true;
    this.active = loaded.memtable;
    this.runs = loaded.runs;
    this.manifestExtentId = loaded.manifestExtentId;
    this.dataGcEnabled = options.dataGc ?? true;
    this.references = options.dataReferences ?? columnDataReferences;
    this.inlineData = options.inlineData ?? null;
    this.inheritedData = options.inheritedData ?? [];
    this.openedAtMs = options.clock.monotonicMs();
    this.lastGcMs = this.openedAtMs;
    const manifest = loaded.manifest;
    this.manifestState = {
      manifestSequence: manifest?.manifestSequence ?? 0,
      coveredSequence: manifest?.coveredSequence ?? 0,
      logStart: manifest?.logStart ?? loaded.logTail,
      nextRunId: manifest?.nextRunId ?? 1,
    };
    this.appliedSequence = loaded.lastSequence;
    this.issuedSequence = loaded.lastSequence;
    this.lastAppendEnd = loaded.logTail;
    this.rowCache = new LruCache(this.limits.rowCacheEntriesMax);
    this.blockCache = new LruCache<string, BlockRows>(this.limits.blockCacheBytesMax);
    this.scanBlockCache = new LruCache<string, BlockRows>(this.limits.scanBlockCacheBytesMax);
    this.replayStats = loaded.replay;
  }

  /** Loads the partition from its streams: newest manifest, its runs, then log replay. */
  static async open(options: PartitionOptions): Promise<Partition> {
    assert(Number.isSafeInteger(options.ownerEpoch) && options.ownerEpoch >= 1, 'ownerEpoch is a positive integer');
    const loaded = await loadPartition(options);
    const partition = new Partition(options, loaded);
    partition.maybeStartMaintenance();
    partition.scheduleTick();
    return partition;
  }

  /**
   * Why this partition answers nothing more, once a log append's outcome was unknown (any commit's:
   * a request's, or a data GC rewrite's that no request waits for); null while it is usable. Only a
   * reload (a new Partition at the same or a later epoch) decides the append and serves again.
   */
  get failure(): StorageError | null {
    return this.state.kind === 'failed' ? this.state.cause : null;
  }

  stats(): PartitionStats {
    return {
      ...this.replayStats, ...this.counters, runCount: this.runs.length, memtableBytes: this.active.bytes + (this.frozen?.memtable.bytes ?? 0),
      lastSequence: this.appliedSequence, coveredSequence: this.manifestState.coveredSequence, rowCacheHits: this.rowCache.hits, gc: this.gcCounters,
    };
  }

  // ---- reads ----------------------------------------------------------------------------------

  /** The live row at `key`, or null. */
  async get(key: Buffer): Promise<LiveRow | null> {
    this.checkUsable();
    checkKey(key);
    const version = await this.latest(key.toString('latin1'), key);
    return version?.kind === 'live' ? version : null;
  }

  /**
   * get() as a partition.get answer body: the live row at `key` framed (u32 length + row codec
   * bytes) as the memtable or a run block holds it, or null. A memtable row is encoded once per
   * version (Memtable.framed); a run's row is a view of its checked, cached block (blocks frame
   * rows the same way), so a point read decodes and re-encodes nothing. Same newest-version order
   * as latest(); the row cache is read but not filled (a run row costs no decode here).
   */
  async getFramed(key: Buffer): Promise<Buffer | null> {
    this.checkUsable();
    checkKey(key);
    const latin1 = key.toString('latin1');
    // framed() is null for a tombstone, which hides an older version in the frozen memtable.
    const active = this.active.framed(latin1);
    if (active !== undefined) return active;
    const frozen = this.frozen?.memtable.framed(latin1);
    if (frozen !== undefined) return frozen;
    const cached = this.rowCache.get(latin1);
    if (cached !== undefined) return cached?.kind === 'live' ? encodeFramedRows([cached], 0) : null;
    for (const run of this.runs) {
      const framed = await run.getFramed(latin1, key, this.blockCache);
      if (framed !== null) return encodedRowIsTombstone(framed.subarray(4)) ? null : framed;
    }
    return null;
  }

  /** Newest version of a key: the row cache, then memtables, then runs newest first. */
  private async latest(key: string, keyBytes: Buffer): Promise<RowRecord | null> {
    const known = this.latestKnown(key, keyBytes);
    if (known !== undefined) return known;
    const appliedBefore = this.appliedSequence;
    let found: RowRecord | null = null;
    for (const run of this.runs) {
      found = await run.get(key, keyBytes, this.blockCache);
      if (found !== null) break;
    }
    // A write that landed meanwhile may have made `found` stale: cache only a quiet read.
    if (this.appliedSequence === appliedBefore) this.cacheRow(key, found);
    return found;
  }

  /**
   * The newest version of `key` if memory holds it: the row cache, else a memtable (its row then
   * cached: decoded once, not at each read); undefined if neither does. The row cache holds only
   * newest versions: publish() drops a key's entry when it applies a newer version, and nothing
   * else changes a version (a checkpoint moves rows to runs as they are; a spilled row means
   * what its inline form meant).
   */
  private knownRow(key: string): RowRecord | null | undefined {
    const cached = this.rowCache.get(key);
    if (cached !== undefined) return cached;
    const row = this.active.get(key) ?? this.frozen?.memtable.get(key);
    if (row !== undefined) this.cacheRow(key, row);
    return row;
  }

  /** Caches the newest version of `key` (null: no row), weighed by its encoded size (constants.ts, rowCacheEntriesMax). */
  private cacheRow(key: string, row: RowRecord | null): void {
    this.rowCache.set(key, row, row === null ? 1 : Math.ceil(encodedRowBytes(row) / rowCacheUnitBytes));
  }

  /**
   * latest()'s answer when it needs no read: the row in a memtable or the row cache, or null when
   * no run may hold the key (bloom filters, indexes; a new key's usual answer, cached like a read
   * one); undefined when a run must be read. Synchronous: the writer checks a batch's conditions
   * without a promise per key when every row is known (checkConditions).
   */
  private latestKnown(key: string, keyBytes: Buffer): RowRecord | null | undefined {
    const inMemory = this.knownRow(key);
    if (inMemory !== undefined) return inMemory;
    for (const run of this.runs) if (run.mayHold(key, keyBytes)) return undefined;
    this.cacheRow(key, null);
    return null;
  }

  /** One page of rows (and delimiter prefixes) in key order; pass `continuation` for the next. */
  scan(options: ScanOptions): Promise<ScanPage> {
    return this.scanWith(options, decodedRows);
  }

  /** scan() with rows in the row codec, as runs hold them (the server sends them on as they are). */
  scanEncoded(options: ScanOptions): Promise<ScanPage<EncodedScanItem>> {
    return this.scanWith(options, encodedRows);
  }

  private async scanWith<T>(options: ScanOptions, rowItem: RowItem<T>): Promise<ScanPage<T | PrefixItem>> {
    this.checkUsable();
    const shape = checkScanOptions(options);
    const fingerprint = scanFingerprint(shape);
    const prefix = options.prefix?.toString('latin1') ?? '';
    const low = maxKey([options.start?.toString('latin1') ?? '', prefix, this.keyLow]);
    const end = minKey([options.end?.toString('latin1') ?? null, prefix === '' ? null : successor(prefix), this.keyHigh]);
    let start = { key: low, inclusive: true };
    if (options.continuation !== undefined) {
      start = decodeContinuation(options.continuation, fingerprint);
      if (start.key < low) throw new StorageError('partition.bad_continuation', 'continuation token points before the scan range');
    }
    const reads = { cache: this.blockCache, fill: this.scanBlockCache, aheadBlocks: runReadAheadBlocks, rowsWanted: options.limit };
    const result = await scanPage(new MergeCursor(this.sources(reads)), {
      start, end, prefixLength: prefix.length, delimiter: options.delimiter?.toString('latin1') ?? null,
      limit: options.limit, examinedMax: this.limits.scanExaminedMax, bytesMax: scanPageBytesMax,
    }, rowItem);
    return { items: result.items, continuation: result.next === null ? null : encodeContinuation(result.next, fingerprint) };
  }

  private sources(reads: RunCursorReads): SourceCursor[] {
    const sources: SourceCursor[] = [new MemtableCursor(this.active)];
    if (this.frozen !== null) sources.push(new MemtableCursor(this.frozen.memtable));
    for (const run of this.runs) sources.push(new RunCursor(run, reads));
    return sources;
  }

  // ---- data stream ----------------------------------------------------------------------------

  /** Appends blob bytes to the data stream; the returned ref is durable, and goes in a row next. */
  async appendData(bytes: Body): Promise<DataRef> {
    this.checkWritable();
    if (bytes.length === 0 || bytes.length > dataAppendBytesMax) throw new StorageError('partition.too_large', `data append of ${bytes.length} bytes: must be 1..${dataAppendBytesMax}`);
    return this.appendToDataStream(bytes);
  }

  /** One durable data append, remembered for the GC grace rule (appendData's, and a run writer's inline spill). */
  private async appendToDataStream(bytes: Body): Promise<DataRef> {
    const position = await this.streams.append(this.streamIds.data, bytes);
    this.dataExtentsKnown.add(position.extentId);
    const previous = this.dataAppends.get(position.extentId);
    this.dataAppends.set(position.extentId, { lastMs: this.clock.monotonicMs(), end: Math.max(previous?.end ?? 0, position.offset + position.length) });
    return { extentId: position.extentId, offset: position.offset, length: position.length };
  }

  async readData(ref: DataRef): Promise<Buffer> {
    this.checkUsable();
    return this.streams.read(this.streamIds.data, ref.extentId, ref.offset, ref.length);
  }

  // ---- writes ---------------------------------------------------------------------------------

  async put(key: Buffer, columns: readonly Column[], conditions: { readonly ifMatch?: string; readonly ifNoneMatch?: '*' } = {}): Promise<{ etag: string; lastModifiedMs: number; sequence: number }> {
    const result = await this.transact([{ kind: 'put', key, columns, ...conditions }]);
    const etag = result.etags[0];
    assert(typeof etag === 'string', 'a put yields an etag');
    return { etag, lastModifiedMs: result.lastModifiedMs, sequence: result.sequence };
  }

  async delete(key: Buffer, conditions: { readonly ifMatch?: string } = {}): Promise<{ sequence: number }> {
    const result = await this.transact([{ kind: 'delete', key, ...conditions }]);
    return { sequence: result.sequence };
  }

  /** Applies every op or none, atomically, after checking every op's conditions. */
  transact(ops: readonly PartitionOp[]): Promise<CommitResult> {
    try {
      this.checkWritable();
      const prepared = this.prepare(ops);
      const refused = this.refusedNow(prepared);
      if (refused !== null) {
        this.counters.conditionFailures += 1;
        return Promise.reject(refused);
      }
      return this.enqueue(prepared);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * The refusal the writer would give this batch, when it is already certain: the rows its
   * conditions read are in memory (memtables, row cache), no batch ahead of it (queued or being
   * committed) writes any of them, and no data ref needs the writer's stream checks. Then the
   * batch is refused now instead of after the group ahead's log append (a Put Blob that tries a
   * new blob's one-call commit and finds the blob exists waits for no fsync). Same error as the
   * writer's: the first failing condition in op order. null: left to the writer.
   */
  private refusedNow(prepared: readonly PreparedOp[]): StorageError | null {
    const rows = new Map<string, RowRecord | null>();
    for (const { op, key } of prepared) {
      if (!isConditional(op)) continue;
      const current = this.knownRow(key);
      if (current === undefined) return null;
      rows.set(key, current);
    }
    // Every conditional op's row is known: the writer's own check, on these rows, once they are settled.
    const error = this.conditionFailure(prepared, (key) => rows.get(key) ?? null);
    if (error === null || this.unknownDataRef(prepared) !== null || this.checkCondemned(prepared) !== null) return null;
    for (const batch of [...this.inFlightBatches(), ...this.queue]) for (const { key } of batch.ops) if (rows.has(key)) return null;
    return error;
  }

  private enqueue(prepared: readonly PreparedOp[]): Promise<CommitResult> {
    try {
      if (this.queue.length >= partitionWriteQueueMax) throw new StorageError('partition.busy', `${this.queue.length} batches queued`, { retryable: true });
      // The record's size with the longest ETag, by arithmetic (encoding it here would copy every inline body once more).
      const estimateBytes = buildRows(prepared, 1, longestEtag, 0).reduce((sum, row) => sum + 4 + encodedRowBytes(row), logHeaderBytes);
      if (estimateBytes > appendBytesMax) throw new StorageError('partition.too_large', `batch encodes to ${estimateBytes} bytes, more than ${appendBytesMax}`);
      const promise = new Promise<CommitResult>((resolve, reject) => this.queue.push({ ops: prepared, estimateBytes, resolve, reject }));
      this.startWriter();
      return promise;
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private prepare(ops: readonly PartitionOp[]): PreparedOp[] {
    if (ops.length === 0 || ops.length > partitionBatchMutationsMax) {
      throw new StorageError('partition.too_large', `a batch holds 1..${partitionBatchMutationsMax} ops, got ${ops.length}`);
    }
    const keys = new Set<string>();
    let writes = 0;
    const prepared = ops.map((op) => {
      checkKey(op.key);
      const key = op.key.toString('latin1');
      if (keys.has(key)) throw new StorageError('config.invalid', 'a batch names a key twice');
      const outside = key < this.keyLow || (this.keyHigh !== null && key >= this.keyHigh);
      if (outside && op.kind === 'check') throw new StorageError('partition.condition_failed', `checked key outside partition ${this.partitionId}'s range`, { context: { partitionId: this.partitionId, outside: true } });
      if (outside) throw new StorageError('config.invalid', `key outside partition ${this.partitionId}'s range`);
      if (op.kind === 'check' && (typeof op.ifMatch !== 'string' || op.ifMatch === '')) throw new StorageError('config.invalid', 'a check names the ETag it expects');
      if (op.kind !== 'check') writes += 1;
      keys.add(key);
      return { op, key };
    });
    if (writes === 0) throw new StorageError('config.invalid', 'a batch of checks alone writes nothing');
    return prepared;
  }

  private startWriter(): void {
    if (this.writer !== null) return;
    this.writer = this.drainQueue();
  }

  /** Resolves when the group being checked (if any) and every group issued are published or failed. */
  private async groupSettled(): Promise<void> {
    while (this.issuing !== null) await this.issuing;
    for (let oldest = this.logGroups[0]; oldest !== undefined; oldest = this.logGroups[0]) await oldest.settled;
  }

  /** Resolves when no writer runs and every issued group is published or failed. */
  private async writerSettled(): Promise<void> {
    while (this.writer !== null || this.logGroups.length > 0) {
      if (this.writer !== null) await this.writer;
      await this.groupSettled();
    }
  }

  /** Batches the writer has taken from the queue and not published: checked or in flight. */
  private inFlightBatches(): PendingBatch[] {
    return [...this.logGroups.flatMap((group) => group.accepted.map((item) => item.batch)), ...this.accepting];
  }

  /**
   * The single writer: takes queued batches in groups until the queue is empty, with at most
   * limits.logAppendsInFlight log appends in flight (docs/formats/partition-log.md, "Pipelined log
   * appends"); groups are published in sequence order as their appends complete, after the writer
   * may have ended (writerSettled waits for both).
   */
  private async drainQueue(): Promise<void> {
    await Promise.resolve();
    try {
      while (this.queue.length > 0 && this.state.kind === 'open') {
        await this.logAppendSlot();
        await this.waitForMemtableRoom();
        if (this.queue.length === 0 || this.state.kind !== 'open') break;
        this.issuing = this.issueGroup(this.takeGroup());
        try {
          await this.issuing;
        } finally {
          this.issuing = null;
        }
      }
    } finally {
      this.writer = null;
    }
  }

  /**
   * Resolves when another log append may start: none in flight, or fewer than
   * limits.logAppendsInFlight and the newest issued at least limits.logAppendOverlapAfterMs ago.
   * An append that returns quickly (a quiet disk) is waited for, so the queue gathers one large
   * group instead of several small ones (each its own append and journal write); one that is slow
   * no longer holds every batch that arrives behind it. An append that returned frees its slot
   * before its group is published, so the next group's append is under way while the previous
   * group's answers are written (docs/formats/partition-log.md, "When a further append starts");
   * at most one group more than the appends in flight waits to be published.
   */
  private async logAppendSlot(): Promise<void> {
    for (;;) {
      const inFlight = this.logGroups.filter((group) => !group.returned);
      const oldest = inFlight[0];
      const newest = inFlight.at(-1);
      if (this.logGroups.length > this.limits.logAppendsInFlight) await (this.logGroups[0] as LogGroup).settled;
      else if (oldest === undefined || newest === undefined) return;
      else if (inFlight.length >= this.limits.logAppendsInFlight) await oldest.appendReturned;
      else {
        const overlapInMs = newest.issuedAtMs + this.limits.logAppendOverlapAfterMs - this.clock.monotonicMs();
        if (overlapInMs <= 0) return;
        await this.returnedOrAfter(oldest.appendReturned, overlapInMs);
      }
    }
  }

  /** Resolves when `returned` does or after `ms` of the clock, whichever comes first. */
  private returnedOrAfter(returned: Promise<void>, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimer(ms, resolve);
      void returned.then(() => {
        timer.cancel();
        resolve();
      });
    });
  }

  /** Batches from the queue head whose records fit one append together. */
  private takeGroup(): PendingBatch[] {
    const group: PendingBatch[] = [];
    let bytes = 0;
    for (let next = this.queue[0]; next !== undefined && (group.length === 0 || bytes + next.estimateBytes <= appendBytesMax); next = this.queue[0]) {
      group.push(next);
      bytes += next.estimateBytes;
      this.queue.shift();
    }
    return group;
  }

  /** Checks a group against the published state and the groups in flight, then issues its log append. */
  private async issueGroup(group: readonly PendingBatch[]): Promise<void> {
    this.accepting = group;
    let accepted: AcceptedBatch[];
    try {
      accepted = await this.acceptBatches(group);
    } finally {
      this.accepting = [];
    }
    // A group in flight failed meanwhile: fail() rejected these batches; their sequences are not used.
    if (accepted.length === 0 || this.logFailed) return;
    const { group: bytes, records } = encodeGroup(accepted, this.partitionId, this.ownerEpoch);
    this.issuedSequence += accepted.length;
    this.counters.logAppends += 1;
    const append = (async () => this.streams.append(this.streamIds.log, bytes))();
    const logGroup: LogGroup = { accepted, records, logStartAtIssue: this.lastAppendEnd, issuedAtMs: this.clock.monotonicMs(), returned: false, appendReturned: Promise.resolve(), end: null, settled: Promise.resolve() };
    logGroup.settled = append.then((position) => this.appendCompleted(logGroup, position), (error: unknown) => this.fail(error));
    const returned = (): void => {
      logGroup.returned = true;
    };
    logGroup.appendReturned = append.then(returned, returned);
    this.logGroups.push(logGroup);
  }

  /** A group's append completed: publishes it, and the completed groups after it, once every
   * earlier group is published (acknowledgements strictly in sequence order). */
  private async appendCompleted(group: LogGroup, position: { readonly extentId: number; readonly offset: number; readonly length: number }): Promise<void> {
    try {
      await failpoint('partition.commit.after-log-append');
    } catch (error) {
      this.fail(error);
      return;
    }
    group.end = { extentId: position.extentId, offset: position.offset + position.length };
    this.lastAppendEnd = group.end;
    for (let head = this.logGroups[0]; head !== undefined && head.end !== null; head = this.logGroups[0]) {
      this.logGroups.shift();
      // Closed meanwhile: its waiters were answered by close(). Writes stopped meanwhile (read_only):
      // this group is durable, so it is still published and acknowledged.
      if (this.state.kind !== 'open' && this.state.kind !== 'read_only') continue;
      for (let index = 0; index < head.accepted.length; index++) this.publish(head.accepted[index] as AcceptedBatch, head.records[index] as Buffer);
      this.maybeStartMaintenance();
    }
  }

  /** Checks conditions in order (later batches see earlier ones); builds the accepted rows. */
  private async acceptBatches(group: readonly PendingBatch[]): Promise<AcceptedBatch[]> {
    // The rows of the groups in flight are the newest versions of their keys (not yet published).
    const overlay = new Map<string, RowRecord | null>();
    for (const { accepted: items } of this.logGroups) for (const { rows } of items) for (const row of rows) overlay.set(row.key.toString('latin1'), row);
    const refuseCondition = this.conditionRefusal();
    const accepted: AcceptedBatch[] = [];
    const lastModifiedMs = Math.max(this.clock.nowMs(), this.lastModifiedMs, this.issuedModifiedMs);
    this.issuedModifiedMs = lastModifiedMs;
    for (const batch of group) {
      const condemned = this.checkCondemned(batch.ops);
      // Each check awaited only when it must read (a ref to an extent not known yet, a row not in memory).
      const foreign = condemned === null && this.unknownDataRef(batch.ops) !== null ? await this.checkDataStreams(batch.ops) : null;
      let failure = condemned ?? foreign;
      if (failure === null) {
        const checked = this.checkConditions(batch.ops, overlay);
        failure = checked instanceof Promise ? await checked : checked;
      }
      if (failure !== null) {
        if (foreign !== null) this.counters.commitsRefusedForeignData += 1;
        else if (failure.code === 'extent.not_found') this.gcCounters = { ...this.gcCounters, commitsRefusedCondemned: this.gcCounters.commitsRefusedCondemned + 1 };
        else this.counters.conditionFailures += 1;
        if (foreign === null && failure.code !== 'extent.not_found') refuseCondition(batch, failure);
        else batch.reject(failure);
        continue;
      }
      const sequence = this.issuedSequence + accepted.length + 1;
      const rows = buildRows(batch.ops, sequence, etagFor(sequence), lastModifiedMs);
      for (const row of rows) overlay.set(row.key.toString('latin1'), row);
      accepted.push({ batch, rows, sequence, recordBytes: logRecordBytes(rows) });
    }
    return accepted;
  }

  /**
   * How a group's condition failures are answered: at once with no group in flight; else once the
   * groups in flight now are published (or failed). A condition may have failed against their rows,
   * which reads do not see until then: answered earlier, the caller's read-evaluate-write retry
   * reads the same stale row and fails again, for as long as a write to that row is in flight
   * (docs/formats/partition-log.md, "Pipelined log appends").
   */
  private conditionRefusal(): (batch: PendingBatch, failure: StorageError) => void {
    if (this.logGroups.length === 0) return (batch, failure) => batch.reject(failure);
    const inFlight = Promise.allSettled(this.logGroups.map((group) => group.settled));
    return (batch, failure) => void inFlight.then(() => batch.reject(failure));
  }

  /**
   * The writer's stream check: a row may name only extents of the partition's own data stream or of
   * one it inherits (after a split or merge; docs/partition-gc.md, "References"). A ref elsewhere
   * would still read while this server's StreamClient has its extent cached (reads resolve an extent
   * through that cache), but no GC that owns it sees the ref: its owner drops it and the row reads
   * extent.not_found later. A known extent costs a set lookup (every appendData adds its extent); an
   * unknown one lists the streams again (one getStream each), once per batch. A listing that fails
   * refuses the batch with its error (nothing written; retryable as the stream layer says).
   */
  private async checkDataStreams(ops: readonly PreparedOp[]): Promise<StorageError | null> {
    if (this.unknownDataRef(ops) === null) return null;
    try {
      for (const streamId of [this.streamIds.data, ...this.inheritedData]) {
        for (const extent of await this.streams.extents(streamId)) this.dataExtentsKnown.add(extent.extentId);
      }
    } catch (error) {
      if (!isStorageError(error)) throw error;
      return error;
    }
    const unknown = this.unknownDataRef(ops);
    if (unknown === null) return null;
    const elsewhere = this.streams.streamOfExtent?.(unknown.ref.extentId) ?? null;
    const inherited = this.inheritedData.length === 0 ? 'none inherited' : `inherited ${this.inheritedData.join(', ')}`;
    return new StorageError('extent.not_found', `partition ${this.partitionId}: row ${JSON.stringify(unknown.key)} names data extent ${unknown.ref.extentId}${elsewhere === null ? '' : ` of stream ${elsewhere}`}, `
      + `which is in none of the partition's data streams (own ${this.streamIds.data}; ${inherited}): batch refused, nothing written`, {
      context: { partitionId: this.partitionId, extentId: unknown.ref.extentId, streamId: elsewhere, dataStreams: [this.streamIds.data, ...this.inheritedData] },
    });
  }

  /** The first ref of a put in ops into an extent not known to be in the partition's data streams. */
  private unknownDataRef(ops: readonly PreparedOp[]): { readonly key: string; readonly ref: DataRef } | null {
    for (const { op, key } of ops) {
      if (op.kind !== 'put') continue;
      for (const ref of this.references.refs(op.columns)) if (!this.dataExtentsKnown.has(ref.extentId)) return { key, ref };
    }
    return null;
  }

  /** The writer's GC fence: a row may not name a data extent that GC condemned (docs/partition-gc.md). */
  private checkCondemned(ops: readonly PreparedOp[]): StorageError | null {
    if (this.condemned.size === 0) return null;
    for (const { op } of ops) {
      if (op.kind !== 'put') continue;
      const ref = this.references.refs(op.columns).find((candidate) => this.condemned.has(candidate.extentId));
      if (ref !== undefined) {
        return new StorageError('extent.not_found', `data extent ${ref.extentId} was garbage-collected: upload the data again`, {
          context: { partitionId: this.partitionId, extentId: ref.extentId },
        });
      }
    }
    return null;
  }

  /** The batch's condition failure against the newest rows (`overlay`: the group's earlier
   * batches), decided at once when no row needs a read (the usual case: no promise per batch). */
  private checkConditions(ops: readonly PreparedOp[], overlay: ReadonlyMap<string, RowRecord | null>): StorageError | null | Promise<StorageError | null> {
    const rows = new Map<string, RowRecord | null>();
    for (const { op, key } of ops) {
      if (!isConditional(op)) continue;
      const row = overlay.has(key) ? overlay.get(key) ?? null : this.latestKnown(key, op.key);
      if (row === undefined) return this.checkConditionsReading(ops, overlay);
      rows.set(key, row);
    }
    return this.conditionFailure(ops, (key) => rows.get(key) ?? null);
  }

  private async checkConditionsReading(ops: readonly PreparedOp[], overlay: ReadonlyMap<string, RowRecord | null>): Promise<StorageError | null> {
    const rows = new Map<string, RowRecord | null>();
    for (const { op, key } of ops) {
      if (!isConditional(op)) continue;
      rows.set(key, overlay.has(key) ? overlay.get(key) ?? null : await this.latest(key, op.key));
    }
    return this.conditionFailure(ops, (key) => rows.get(key) ?? null);
  }

  /** The first op whose condition fails against `rowAt` (the newest version of each conditional op's key). */
  private conditionFailure(ops: readonly PreparedOp[], rowAt: (key: string) => RowRecord | null): StorageError | null {
    for (let index = 0; index < ops.length; index++) {
      const { op, key } = ops[index] as PreparedOp;
      const ifNoneMatch = op.kind === 'put' ? op.ifNoneMatch : undefined;
      if (op.ifMatch === undefined && ifNoneMatch === undefined) continue;
      const current = rowAt(key);
      const live = current?.kind === 'live' ? current : null;
      const context = { index, partitionId: this.partitionId };
      if (ifNoneMatch === '*' && live !== null) return new StorageError('partition.exists', 'the row exists (If-None-Match: *)', { context });
      if (op.ifMatch === undefined) continue;
      if (live === null) return new StorageError('partition.row_not_found', 'the row does not exist (If-Match)', { context });
      if (op.ifMatch !== '*' && op.ifMatch !== live.etag) {
        return new StorageError('partition.condition_failed', `If-Match ${op.ifMatch} does not match ETag ${live.etag}`, { context });
      }
    }
    return null;
  }

  /** Applies a durable batch (its log record: `record`) to memory and acknowledges it. */
  private publish(item: AcceptedBatch, record: Buffer): void {
    const sequence = item.rows[0]?.sequence ?? 0;
    assert(sequence === this.appliedSequence + 1, 'batches are applied in sequence order');
    const framed = logRecordFramedRows(record);
    assert(framed.length === item.rows.length, 'a record frames each row of its batch');
    for (let index = 0; index < framed.length; index++) {
      const row = item.rows[index] as RowRecord;
      const key = row.key.toString('latin1');
      this.active.apply(key, row, framed[index] as Buffer, this.clock.monotonicMs());
      this.rowCache.delete(key);
    }
    this.appliedSequence = sequence;
    // A GC rewrite keeps an older Last-Modified: the commit clock never goes back.
    this.lastModifiedMs = Math.max(this.lastModifiedMs, item.rows[0]?.lastModifiedMs ?? 0);
    this.counters.batchesCommitted += 1;
    item.batch.resolve({ sequence, lastModifiedMs: this.lastModifiedMs, etags: opEtags(item.batch.ops, item.rows) });
  }

  /**
   * A log append failed: its outcome is unknown, so nothing more may be written by this owner.
   * Only an open partition becomes failed. A read_only one (stopWrites: a release, split or merge)
   * stays read_only: it takes no write again at this epoch, so no later commit can reuse the unknown
   * record's sequence (the hazard `failed` prevents), and its rows are exactly the acknowledged ones,
   * which a split or merge copies (the write: not applied) and a release's new owner replays over
   * (applied iff its bytes landed). Failing it would only refuse those reads
   * (docs/partition-protocol.md, "Fault model"; partition-stop-writes-failure.test.ts).
   */
  private fail(error: unknown): void {
    if (error instanceof AssertionFailure) throw error;
    const cause = new StorageError('partition.unavailable', `partition ${this.partitionId} must be reloaded: a log append failed`, {
      retryable: true, cause: error, context: { partitionId: this.partitionId },
    });
    if (this.state.kind === 'open') this.state = { kind: 'failed', cause };
    this.logFailed = true;
    // Every group after the failed one too, even one whose append completed: acknowledged only in order.
    const unpublished = this.inFlightBatches();
    this.logGroups.splice(0);
    for (const batch of [...unpublished, ...this.queue.splice(0)]) batch.reject(cause);
  }

  // ---- maintenance ----------------------------------------------------------------------------

  /** Writes the memtable as runs and a manifest (waits for any maintenance in progress). */
  async checkpoint(): Promise<void> {
    this.checkWritable();
    await this.maintenanceLock.run(() => this.checkpointLocked());
  }

  /** Merges every run into new runs without tombstones or shadowed versions (a major merge). */
  async compact(): Promise<void> {
    this.checkWritable();
    await this.maintenanceLock.run(async () => {
      if (this.runs.length > 1 || this.runs.some((run) => run.footer.tombstoneCount > 0)) await this.mergeLocked({ start: 0, end: this.runs.length, dropTombstones: true });
    });
  }

  /** Merges runs while the size-tiered policy finds a merge (bounded); answers the merges done. */
  async compactByPolicy(): Promise<number> {
    this.checkWritable();
    return this.maintenanceLock.run(() => this.compactByPolicyLocked());
  }

  private async compactByPolicyLocked(): Promise<number> {
    let merges = 0;
    for (let choice = this.mergeChoice(); choice !== null && merges < runsMax && this.state.kind === 'open'; choice = this.mergeChoice()) {
      await this.mergeLocked(choice);
      merges += 1;
    }
    return merges;
  }

  /**
   * One garbage-collection pass (docs/partition-gc.md): meta, log and checkpoint extents the
   * published manifest no longer needs, then the data stream (copy forward, drop dead extents).
   */
  async collectGarbage(): Promise<DataGcReport | null> {
    this.checkWritable();
    return this.maintenanceLock.run(() => this.collectGarbageLocked());
  }

  /** Checkpoints when the memtable holds rows older than checkpointIntervalMs (the server calls this on a timer). */
  async checkpointIfDue(): Promise<boolean> {
    const first = this.active.firstWriteMs;
    if (first === null || this.clock.monotonicMs() - first < this.limits.checkpointIntervalMs) return false;
    await this.checkpoint();
    return true;
  }

  private async checkpointLocked(): Promise<void> {
    if (this.state.kind !== 'open') return;
    if (this.frozen === null) {
      if (this.active.size === 0) return;
      this.frozen = { memtable: this.active, coveredSequence: this.appliedSequence, logStart: this.logGroups[0]?.logStartAtIssue ?? this.lastAppendEnd };
      this.active = new Memtable();
    }
    const frozen = this.frozen;
    const writer = this.spillingWriter(frozen.coveredSequence, frozen.logStart);
    for (const [key, row] of frozen.memtable.encodedEntries()) await writer.addEncoded(key, row);
    const written = await this.finishSpilling(writer);
    const runs = [...written, ...this.runs];
    await failpoint('partition.checkpoint.before-manifest');
    if (runs.length > runsMax) throw new StorageError('partition.too_large', `partition ${this.partitionId} would have ${runs.length} runs (max ${runsMax}); it must split`);
    await this.commitManifest({ ...this.manifestState, coveredSequence: frozen.coveredSequence, logStart: frozen.logStart }, runs);
    this.frozen = null;
    this.counters.checkpoints += 1;
  }

  /** The size-tiered policy's choice for the current runs (compaction-policy.ts), or null. */
  private mergeChoice(): MergeChoice | null {
    return chooseMerge(this.runs.map((run) => run.footer), {
      fanout: this.limits.runsCompactionTrigger, tierBaseBytes: this.limits.compactionTierBaseBytes, mergeRunsMax: this.limits.compactionMergeRunsMax,
      tombstoneRatio: this.limits.compactionTombstoneRatio, runsMajor: Math.floor(runsMax / 2),
    });
  }

  /** Merges runs [start, end) into new runs put in their place (adjacent: newest-first order holds). */
  private async mergeLocked(choice: MergeChoice): Promise<void> {
    const inputs = this.runs;
    if (this.state.kind !== 'open' || choice.end <= choice.start || choice.end > inputs.length) return;
    const window = inputs.slice(choice.start, choice.end);
    // A major merge starts a new checkpoint extent: the old ones then hold only merged runs and
    // become garbage as a whole once the manifest names the output (docs/partition-gc.md).
    if (choice.start === 0 && choice.dropTombstones) await this.streams.sealTail(this.streamIds.checkpoint);
    const merge = new MergeCursor(window.map((run) => new RunCursor(run, wholeRunReads(runReadAheadBlocks))));
    const writer = this.spillingWriter(this.manifestState.coveredSequence, this.manifestState.logStart);
    await merge.seek('', true);
    for (let key = merge.key(); key !== null; key = merge.key()) {
      // The newest version as its block holds it (a view of a checked block): copied, not decoded.
      const row = merge.newest()?.encoded() ?? null;
      assert(row !== null, 'a run cursor at a key holds its row encoded');
      if (!choice.dropTombstones || !encodedRowIsTombstone(row)) await writer.addEncoded(key, row);
      await merge.next();
    }
    const written = await this.finishSpilling(writer);
    assert(this.runs === inputs, 'runs change only under the maintenance lock');
    await failpoint('partition.compaction.before-manifest');
    await this.commitManifest(this.manifestState, [...inputs.slice(0, choice.start), ...written, ...inputs.slice(choice.end)]);
    this.counters.compactions += 1;
  }

  /** A run writer for the partition's own rows: inline bytes go to the data stream first (inline-spill.ts). */
  private spillingWriter(coveredSequence: number, logStart: LogPosition): SpillingRunWriter {
    return new SpillingRunWriter(this.runWriter(coveredSequence, logStart), this.inlineData, (bytes) => this.appendToDataStream(bytes));
  }

  private async finishSpilling(writer: SpillingRunWriter): Promise<RunReader[]> {
    const written = (await writer.finish()).map((item) => item.reader);
    const counters = this.counters;
    counters.inlineRowsSpilled += writer.counts.rows;
    counters.inlineBytesSpilled += writer.counts.bytes;
    counters.inlineSpillAppends += writer.counts.appends;
    return written;
  }

  private runWriter(coveredSequence: number, logStart: LogPosition): RunWriter {
    return new RunWriter({
      streams: this.streams, streamId: this.streamIds.checkpoint, partitionId: this.partitionId, clock: this.clock,
      allocateRunId: () => {
        const runId = this.manifestState.nextRunId;
        this.manifestState = { ...this.manifestState, nextRunId: runId + 1 };
        return runId;
      },
      coveredSequence, logStart, blockBytesTarget: this.limits.blockBytesTarget, runBytesMax: this.limits.runBytesMax,
    });
  }

  /** Appends a manifest naming `runs` (durable first), then publishes them. */
  private async commitManifest(base: ManifestState, runs: readonly RunReader[]): Promise<void> {
    const next: ManifestState = { ...base, manifestSequence: base.manifestSequence + 1, nextRunId: this.manifestState.nextRunId };
    const manifest: Manifest = {
      partitionId: this.partitionId, ...next, createdAtMs: this.clock.nowMs(),
      lowKey: Buffer.from(this.keyLow, 'latin1'), highKey: this.keyHigh === null ? null : Buffer.from(this.keyHigh, 'latin1'),
      runs: runs.map((run) => ({ runId: run.runId, footer: run.footerLocation })),
    };
    if (this.manifestsInMetaTail >= metaManifestsPerExtentMax) {
      await this.streams.sealTail(this.streamIds.meta);
      this.manifestsInMetaTail = 0;
    }
    let position;
    try {
      position = await this.streams.append(this.streamIds.meta, encodeManifest(manifest));
    } catch (error) {
      this.manifestUncertain = true; // it may have landed, naming runs this owner never publishes
      throw error;
    }
    this.manifestsInMetaTail += 1;
    this.manifestState = next;
    this.manifestExtentId = position.extentId;
    this.manifestUncertain = false;
    this.runs = runs;
  }

  private maybeStartMaintenance(): void {
    if (!this.autoMaintenance || this.background !== null || this.state.kind !== 'open') return;
    if (this.checkpointDue(false) || this.mergeChoice() !== null) this.background = this.runMaintenance(false);
  }

  /** Size: the memtable is full (or a frozen one waits); time (on a tick): its oldest row is old. */
  private checkpointDue(timed: boolean): boolean {
    if (this.frozen !== null || this.active.bytes >= this.limits.memtableBytesMax) return true;
    const first = this.active.firstWriteMs;
    return timed && first !== null && this.clock.monotonicMs() - first >= this.limits.checkpointIntervalMs;
  }

  private gcDue(): boolean {
    return this.clock.monotonicMs() - this.lastGcMs >= this.limits.dataGcIntervalMs;
  }

  /** The maintenance timer (injected clock): time-based checkpoints and GC passes. */
  private scheduleTick(): void {
    if (!this.autoMaintenance || this.state.kind !== 'open') return;
    this.tickTimer = this.clock.setTimer(this.limits.maintenanceTickMs, () => {
      this.tickTimer = null;
      if (this.state.kind !== 'open') return;
      if (this.background === null && (this.checkpointDue(true) || this.gcDue())) this.background = this.runMaintenance(true);
      this.scheduleTick();
    });
  }

  private async runMaintenance(timed: boolean): Promise<void> {
    await Promise.resolve();
    try {
      if (this.checkpointDue(timed)) await this.maintenanceLock.run(() => this.checkpointLocked());
      if (this.mergeChoice() !== null) await this.maintenanceLock.run(() => this.compactByPolicyLocked());
      if (timed && this.gcDue()) await this.maintenanceLock.run(() => this.collectGarbageLocked());
    } catch (error) {
      if (error instanceof AssertionFailure || !isStorageError(error)) throw error;
      this.counters.maintenanceFailures += 1;
      this.lastMaintenanceError = error;
    } finally {
      this.background = null;
    }
  }

  // ---- garbage collection (docs/partition-gc.md) -------------------------------------------------

  private async collectGarbageLocked(): Promise<DataGcReport | null> {
    if (this.state.kind !== 'open') return null;
    this.lastGcMs = this.clock.monotonicMs();
    // A frozen memtable left by a failed checkpoint is written first: during the pass nothing
    // else may checkpoint (the writer would wait for it while the pass waits for the writer).
    if (this.frozen !== null) await this.checkpointLocked();
    await this.collectManifestGarbage();
    const passStartedMs = this.clock.monotonicMs();
    const startSequence = this.appliedSequence;
    const report = this.dataGcEnabled ? await dataGcPass(this.dataGcHost(), {
      copyBytesMax: this.limits.dataGcCopyBytesPerPassMax, copyForwardLiveRatio: this.limits.dataGcCopyForwardLiveRatio,
      tailSealBytes: this.limits.dataGcTailSealBytes, refsTrackedMax: this.limits.dataGcRefsTrackedMax,
    }) : null;
    const gc = this.gcCounters;
    this.gcCounters = {
      ...gc, passes: gc.passes + 1,
      ...(report === null ? {} : {
        dataExtentsDropped: gc.dataExtentsDropped + report.extentsDropped, dataBytesDropped: gc.dataBytesDropped + report.bytesDropped,
        bytesCopiedForward: gc.bytesCopiedForward + report.bytesCopied, rowsRewritten: gc.rowsRewritten + report.rowsRewritten,
        rewritesLost: gc.rewritesLost + report.rewritesLost, tailSeals: gc.tailSeals + (report.tailSealed ? 1 : 0),
        lastLiveBytes: report.liveBytes, lastDeadBytes: report.deadBytes, lastForeignBytes: report.foreignBytes, lastDanglingRefs: report.danglingRefs, lastOpaqueRows: report.opaqueRows,
      }),
    };
    if (report !== null && (await this.proveInheritedFree(report, startSequence, passStartedMs))) this.gcCounters = { ...this.gcCounters, inheritedFree: true };
    return report;
  }

  /**
   * After a pass that found no ref into an inherited data stream: fence every inherited extent
   * (the writer refuses rows naming one), wait for the batch group in flight, and recheck the rows
   * committed since the pass began. True: no live row names an inherited stream, and none will
   * while this owner serves. Needs the grace since load (an upload to an ancestor's stream that
   * began before this owner loaded may still commit; docs/partition-gc.md, "Recently appended data").
   */
  private async proveInheritedFree(report: DataGcReport, startSequence: number, passStartedMs: number): Promise<boolean> {
    if (this.inheritedData.length === 0 || this.gcCounters.inheritedFree) return false;
    if (report.foreignRefs > 0 || report.overflowed || report.opaqueRows > 0 || report.danglingRefs > 0) return false;
    if (passStartedMs - this.openedAtMs < this.limits.dataGcGraceMs) return false;
    const fenced: number[] = [];
    for (const streamId of this.inheritedData) for (const extent of await this.streams.extents(streamId)) fenced.push(extent.extentId);
    for (const extentId of fenced) this.condemned.add(extentId);
    await this.groupSettled();
    const own = new Set((await this.streams.extents(this.streamIds.data)).map((extent) => extent.extentId));
    for (const row of this.rowsAfter(startSequence)) {
      if (row.kind !== 'live') continue;
      if (this.references.opaque?.(row.columns) === true || this.references.refs(row.columns).some((ref) => !own.has(ref.extentId))) {
        for (const extentId of fenced) this.condemned.delete(extentId);
        return false;
      }
    }
    return true;
  }

  /** Meta, log and checkpoint extents that the published manifest no longer needs. */
  private async collectManifestGarbage(): Promise<void> {
    if (this.manifestUncertain || this.manifestState.manifestSequence === 0 || this.manifestExtentId === null) return;
    const { meta, log, checkpoint } = this.streamIds;
    const metaGarbage = extentsBefore(await this.streams.extents(meta), this.manifestExtentId);
    const logGarbage = extentsBefore(await this.streams.extents(log), this.manifestState.logStart.extentId);
    const referenced = new Set<number>();
    for (const run of this.runs) for (const extentId of run.extentIds()) referenced.add(extentId);
    const checkpointGarbage = unreferencedExtents(await this.streams.extents(checkpoint), referenced);
    await failpoint('partition.gc.before-drop');
    if (metaGarbage.length > 0) await this.streams.dropExtents(meta, metaGarbage);
    if (logGarbage.length > 0) await this.streams.dropExtents(log, logGarbage);
    if (checkpointGarbage.length > 0) await this.streams.dropExtents(checkpoint, checkpointGarbage);
    const gc = this.gcCounters;
    this.gcCounters = {
      ...gc, metaExtentsDropped: gc.metaExtentsDropped + metaGarbage.length, logExtentsDropped: gc.logExtentsDropped + logGarbage.length,
      checkpointExtentsDropped: gc.checkpointExtentsDropped + checkpointGarbage.length,
    };
  }

  /** The partition as the data GC pass sees it (data-gc.ts). */
  private dataGcHost(): DataGcHost {
    const dataStreamId = this.streamIds.data;
    return {
      references: this.references,
      dataExtents: () => this.streams.extents(dataStreamId),
      liveRows: () => this.liveRows(),
      appliedSequence: () => this.appliedSequence,
      rowsAfter: (sequence) => this.rowsAfter(sequence),
      eligible: (extentId) => this.dataExtentEligible(extentId),
      appendedBytes: (extentId) => this.dataAppends.get(extentId)?.end ?? 0,
      readData: (ref) => this.streams.read(dataStreamId, ref.extentId, ref.offset, ref.length),
      appendData: (bytes) => this.appendData(bytes),
      rewriteRow: (row, columns) => this.rewriteRow(row, columns),
      condemn: async (extentIds) => {
        for (const extentId of extentIds) this.condemned.add(extentId);
        await this.groupSettled();
      },
      pardon: (extentIds) => { for (const extentId of extentIds) this.condemned.delete(extentId); },
      sealDataTail: () => this.streams.sealTail(dataStreamId),
      dropDataExtents: async (extentIds) => {
        await failpoint('partition.gc.before-data-drop');
        await this.streams.dropExtents(dataStreamId, extentIds);
        for (const extentId of extentIds) this.dataExtentsKnown.delete(extentId);
      },
    };
  }

  /** Every live row (newest version), in key order, read in bounded steps. */
  private async *liveRows(): AsyncGenerator<LiveRow> {
    const merge = new MergeCursor(this.sources({ ...wholeRunReads(runReadAheadBlocks), cache: this.blockCache }));
    await merge.seek(this.keyLow, true);
    for (let key = merge.key(); key !== null; key = merge.key()) {
      if (this.keyHigh !== null && key >= this.keyHigh) return;
      const row = merge.row();
      if (row?.kind === 'live') yield row;
      await merge.next();
    }
  }

  /** Rows applied after `sequence` (every such row is in a memtable: no checkpoint runs during GC). */
  private *rowsAfter(sequence: number): Generator<RowRecord> {
    for (const memtable of [this.active, this.frozen?.memtable]) {
      if (memtable === undefined) continue;
      for (const [, row] of memtable.entries()) if (row.sequence > sequence) yield row;
    }
  }

  /** The grace rule: nothing this owner appended to recently, nothing before the grace after load. */
  private dataExtentEligible(extentId: number): boolean {
    const now = this.clock.monotonicMs();
    const grace = this.limits.dataGcGraceMs;
    const appended = this.dataAppends.get(extentId);
    return now - this.openedAtMs >= grace && (appended === undefined || now - appended.lastMs >= grace);
  }

  /** A GC rewrite of a row's refs: If-Match the ETag read; the row keeps its ETag and Last-Modified. */
  private async rewriteRow(row: LiveRow, columns: LiveRow['columns']): Promise<boolean> {
    const prepared = this.prepare([{ kind: 'put', key: row.key, columns, ifMatch: row.etag }])
      .map((item) => ({ ...item, preserve: { etag: row.etag, lastModifiedMs: row.lastModifiedMs } }));
    try {
      await this.enqueue(prepared);
      return true;
    } catch (error) {
      if (isStorageError(error, 'partition.condition_failed') || isStorageError(error, 'partition.row_not_found')) return false;
      throw error;
    }
  }

  /** Write stall: while a frozen memtable is still being written and the active one is full. */
  private async waitForMemtableRoom(): Promise<void> {
    if (this.frozen === null || this.active.bytes < this.limits.memtableBytesMax) return;
    this.maybeStartMaintenance();
    if (this.background !== null) await this.background;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Data bytes of every run (what a split decision compares, with the memtable's bytes). */
  runDataBytes(): number {
    return this.runs.reduce((sum, run) => sum + run.footer.dataBytes, 0);
  }

  /**
   * Stops taking writes (transact, appendData, checkpoints): waits for the group being committed
   * and for maintenance in progress, refuses what is still queued (partition.closed: not applied).
   * Reads go on, over a state that no longer changes. A split copies the rows after this.
   */
  async stopWrites(): Promise<void> {
    if (this.state.kind === 'open') this.state = { kind: 'read_only' };
    this.tickTimer?.cancel();
    this.tickTimer = null;
    await this.writerSettled();
    while (this.background !== null) await this.background;
    const closed = new StorageError('partition.closed', `partition ${this.partitionId} takes no more writes`);
    for (const batch of this.queue.splice(0)) batch.reject(closed);
  }

  /** Stops serving: waits for the writer and maintenance, refuses everything after. */
  async close(): Promise<void> {
    if (this.state.kind === 'closed') return;
    this.tickTimer?.cancel();
    this.tickTimer = null;
    await this.writerSettled();
    const background = this.background;
    if (background !== null) await background;
    this.state = { kind: 'closed' };
    const closed = new StorageError('partition.closed', `partition ${this.partitionId} is closed`);
    for (const batch of this.queue.splice(0)) batch.reject(closed);
  }

  private checkUsable(): void {
    if (this.state.kind === 'failed') throw this.state.cause;
    if (this.state.kind === 'closed') throw new StorageError('partition.closed', `partition ${this.partitionId} is closed`);
  }

  private checkWritable(): void {
    this.checkUsable();
    if (this.state.kind === 'read_only') throw new StorageError('partition.closed', `partition ${this.partitionId} takes no more writes`);
  }
}

/** An op whose row the writer must read first: an If-Match, or a put's If-None-Match. */
function isConditional(op: PartitionOp): boolean {
  return op.ifMatch !== undefined || (op.kind === 'put' && op.ifNoneMatch !== undefined);
}

/** The rows a batch writes, in op order (a check writes none). */
function buildRows(ops: readonly PreparedOp[], sequence: number, etag: string, lastModifiedMs: number): RowRecord[] {
  const rows: RowRecord[] = [];
  for (const { op, preserve } of ops) {
    if (op.kind === 'put') rows.push({ kind: 'live', key: op.key, sequence, lastModifiedMs: preserve?.lastModifiedMs ?? lastModifiedMs, etag: preserve?.etag ?? etag, columns: op.columns });
    else if (op.kind === 'delete') rows.push({ kind: 'tombstone', key: op.key, sequence, lastModifiedMs });
  }
  return rows;
}

/** CommitResult.etags: per op, the ETag its row got (a put), else null; `rows` as buildRows made them. */
function opEtags(ops: readonly PreparedOp[], rows: readonly RowRecord[]): (string | null)[] {
  let next = 0;
  return ops.map(({ op }) => {
    if (op.kind === 'check') return null;
    const row = rows[next++];
    return row?.kind === 'live' ? row.etag : null;
  });
}

/** ETags are unique per partition: the commit sequence never repeats (docs/formats/partition-rows.md). */
export function etagFor(sequence: number): string {
  return `0x${sequence.toString(16).toUpperCase()}`;
}

function checkKey(key: Buffer): void {
  if (key.length === 0 || key.length > partitionKeyBytesMax) throw new StorageError('partition.too_large', `a key must be 1..${partitionKeyBytesMax} bytes, got ${key.length}`);
}

function checkScanOptions(options: ScanOptions): { start: Buffer | null; end: Buffer | null; prefix: Buffer | null; delimiter: Buffer | null } {
  if (!Number.isInteger(options.limit) || options.limit < 1 || options.limit > scanLimitMax) {
    throw new StorageError('config.invalid', `scan limit must be 1..${scanLimitMax}, got ${options.limit}`);
  }
  for (const part of [options.start, options.end, options.prefix, options.delimiter]) {
    if (part !== undefined && part.length > partitionKeyBytesMax) throw new StorageError('partition.too_large', 'scan bound longer than a key');
  }
  if (options.delimiter?.length === 0) throw new StorageError('config.invalid', 'an empty delimiter');
  return { start: options.start ?? null, end: options.end ?? null, prefix: options.prefix ?? null, delimiter: options.delimiter ?? null };
}

function maxKey(keys: readonly string[]): string {
  return keys.reduce((best, key) => (key > best ? key : best), '');
}

function minKey(keys: readonly (string | null)[]): string | null {
  let best: string | null = null;
  for (const key of keys) if (key !== null && (best === null || key < best)) best = key;
  return best;
}
