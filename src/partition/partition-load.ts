// Loading a partition from its streams (docs/formats/partition-log.md "Replay" and
// partition-checkpoint.md "Meta stream"): seal the meta and log tails (fencing a previous owner's
// appends to them and fixing every extent's length), read the newest manifest, open the runs it
// names, and replay the commit log after its position into a fresh memtable, deduping by
// sequence number, skipping records of fenced owners, and putting records a pipelined writer
// stored out of order back in sequence order (a bounded window).
//
// Invariants: after a successful load, runs + memtable hold exactly the batches with sequence ≤
// lastSequence that the streams hold (each once), lastSequence has no gaps below it (records
// after a gap that never fills are dropped: never acknowledged), and the log tail is the new
// empty extent where the next append goes.
// Fault model: stream calls may fail (the load fails, retryable, and can be repeated: sealing
// twice only adds an empty extent); undecodable records, a gap followed by more records than a
// pipelined writer can leave, a foreign partition id or a newer owner's record fail the load
// with partition.corrupt / partition.fenced.
import { appendBytesMax, partitionLogReorderAppendsMax } from '../constants.ts';
import { assert } from '../util/assert.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { checkpointRecordLength, decodeManifest } from '../wire/partition-checkpoint.ts';
import type { LogPosition, Manifest } from '../wire/partition-checkpoint.ts';
import { decodeLogRecord, logRecordFramedRows, logRecordLength } from '../wire/partition-log.ts';
import type { RowRecord } from '../wire/partition-row.ts';
import { Memtable } from './memtable.ts';
import type { PartitionStreamIds, PartitionStreams, StreamExtent } from './partition-streams.ts';
import { RunReader } from './run-reader.ts';
import { streamRecords } from './stream-records.ts';

export interface LoadContext {
  readonly partitionId: number;
  readonly streams: PartitionStreams;
  readonly streamIds: PartitionStreamIds;
  readonly ownerEpoch: number;
  readonly clock: Clock;
}

export interface ReplayStats {
  readonly recordsReplayed: number;
  readonly duplicatesSkipped: number;
  readonly fencedSkipped: number;
  /** Records stored before a lower sequence (a pipelined writer) and applied once the gap filled. */
  readonly reorderedApplied: number;
  /** Records after a gap that never filled (their predecessor's append failed): never acknowledged. */
  readonly unacknowledgedDropped: number;
}

export interface LoadedPartition {
  readonly manifest: Manifest | null;
  /** The meta extent holding `manifest` (null without one): meta extents before it are garbage. */
  readonly manifestExtentId: number | null;
  readonly runs: readonly RunReader[];
  readonly memtable: Memtable;
  readonly lastSequence: number;
  readonly logTail: LogPosition;
  readonly replay: ReplayStats;
}

export async function loadPartition(context: LoadContext): Promise<LoadedPartition> {
  const { streams, streamIds } = context;
  await streams.sealTail(streamIds.meta);
  await streams.sealTail(streamIds.log);
  const { manifest, extentId: manifestExtentId } = await latestManifest(context);
  const runs = await corruptIfUndecodable(Promise.all((manifest?.runs ?? []).map((run) =>
    RunReader.open({ streams, streamId: streamIds.checkpoint, run, partitionId: context.partitionId }))));
  const logExtents = await streams.extents(streamIds.log);
  const tail = logExtents.at(-1);
  assert(tail !== undefined && tail.state.kind === 'open', 'a sealed stream has a new open tail');
  const memtable = new Memtable();
  const replay = await replayLog(context, logExtents, manifest, memtable);
  return { manifest, manifestExtentId, runs, memtable, lastSequence: replay.lastSequence, logTail: { extentId: tail.extentId, offset: 0 }, replay: replay.stats };
}

/** The last manifest of the newest meta extent that holds one, and that extent; null for a new partition. */
async function latestManifest(context: LoadContext): Promise<{ manifest: Manifest | null; extentId: number | null }> {
  const extents = await context.streams.extents(context.streamIds.meta);
  for (let index = extents.length - 1; index >= 0; index--) {
    const extent = extents[index];
    if (extent === undefined || extent.state.kind !== 'sealed' || extent.state.length === 0) continue;
    let last: Manifest | null = null;
    const records = streamRecords({ streams: context.streams, streamId: context.streamIds.meta, extents: [extent], from: null, recordLength: checkpointRecordLength });
    for await (const record of records) last = decodeOrCorrupt(() => decodeManifest(record.bytes), record);
    if (last === null) continue;
    if (last.partitionId !== context.partitionId) {
      throw new StorageError('partition.corrupt', `meta stream holds a manifest of partition ${last.partitionId}`, { context: { partitionId: context.partitionId } });
    }
    return { manifest: last, extentId: extent.extentId };
  }
  return { manifest: null, extentId: null };
}

async function replayLog(context: LoadContext, extents: readonly StreamExtent[], manifest: Manifest | null, memtable: Memtable): Promise<{ lastSequence: number; stats: ReplayStats }> {
  const replay = new LogReplay(context, memtable, manifest?.coveredSequence ?? 0);
  const records = streamRecords({ streams: context.streams, streamId: context.streamIds.log, extents, from: manifest?.logStart ?? null, recordLength: logRecordLength });
  for await (const scanned of records) replay.read(scanned);
  return { lastSequence: replay.last, stats: replay.finish() };
}

/** A record read from the log: its bytes and where they lie. */
interface ScannedRecord {
  readonly bytes: Buffer;
  readonly extentId: number;
  readonly offset: number;
}

interface HeldRecord {
  readonly scanned: ScannedRecord;
  readonly rows: readonly RowRecord[];
}

/**
 * Applies the log's records in sequence order (docs/formats/partition-log.md, "Replay" and
 * "Pipelined log appends"): a writer with several appends in flight may have stored a record
 * before lower sequences, so a record that follows a gap is held (`pending`, bounded in bytes)
 * until the gap fills. Held records are dropped when a newer owner's record is read (it replayed
 * without them) or at the end: each follows a record that never landed, so none was acknowledged.
 */
class LogReplay {
  last: number;
  private highestEpoch = 0;
  private readonly pending = new Map<number, HeldRecord>();
  private pendingBytes = 0;
  private readonly stats = { recordsReplayed: 0, duplicatesSkipped: 0, fencedSkipped: 0, reorderedApplied: 0, unacknowledgedDropped: 0 };
  private readonly context: LoadContext;
  private readonly memtable: Memtable;

  constructor(context: LoadContext, memtable: Memtable, coveredSequence: number) {
    this.context = context;
    this.memtable = memtable;
    this.last = coveredSequence;
  }

  read(scanned: ScannedRecord): void {
    const record = decodeOrCorrupt(() => decodeLogRecord(scanned.bytes), scanned);
    const where = { extentId: scanned.extentId, offset: scanned.offset, sequence: record.sequence };
    if (record.partitionId !== this.context.partitionId) throw new StorageError('partition.corrupt', `log holds a record of partition ${record.partitionId}`, { context: where });
    if (record.ownerEpoch > this.context.ownerEpoch) {
      throw new StorageError('partition.fenced', `log holds a record of owner epoch ${record.ownerEpoch} > ${this.context.ownerEpoch}`, { context: where });
    }
    if (record.ownerEpoch < this.highestEpoch) {
      this.stats.fencedSkipped += 1;
      return;
    }
    // A newer owner starts after every record of the older one and loaded without the held ones.
    if (record.ownerEpoch > this.highestEpoch) this.dropPending();
    this.highestEpoch = record.ownerEpoch;
    if (record.sequence <= this.last || this.pending.has(record.sequence)) {
      this.stats.duplicatesSkipped += 1;
      return;
    }
    if (record.sequence === this.last + 1) {
      this.apply(scanned, record.rows);
      this.applyPending();
      return;
    }
    this.hold(record.sequence, { scanned, rows: record.rows }, where);
  }

  /** Drops what is still held (never acknowledged) and answers the stats. */
  finish(): ReplayStats {
    this.dropPending();
    return { ...this.stats };
  }

  private hold(sequence: number, held: HeldRecord, where: object): void {
    const pendingBytesMax = (partitionLogReorderAppendsMax - 1) * appendBytesMax;
    if (this.pendingBytes + held.scanned.bytes.length > pendingBytesMax) {
      throw new StorageError('partition.corrupt', `log gap: sequence ${this.last + 1} missing, more than ${pendingBytesMax} bytes of records after it`, { context: { ...where, last: this.last } });
    }
    this.pending.set(sequence, held);
    this.pendingBytes += held.scanned.bytes.length;
  }

  private applyPending(): void {
    for (let next = this.pending.get(this.last + 1); next !== undefined; next = this.pending.get(this.last + 1)) {
      this.pending.delete(this.last + 1);
      this.pendingBytes -= next.scanned.bytes.length;
      this.stats.reorderedApplied += 1;
      this.apply(next.scanned, next.rows);
    }
  }

  private dropPending(): void {
    this.stats.unacknowledgedDropped += this.pending.size;
    this.pending.clear();
    this.pendingBytes = 0;
  }

  private apply(scanned: ScannedRecord, rows: readonly RowRecord[]): void {
    const framed = logRecordFramedRows(scanned.bytes);
    assert(framed.length === rows.length, 'a checked record frames each row of its batch');
    for (let index = 0; index < framed.length; index++) {
      const row = rows[index] as RowRecord;
      this.memtable.apply(row.key.toString('latin1'), row, framed[index] as Buffer, this.context.clock.monotonicMs());
    }
    this.last += 1;
    this.stats.recordsReplayed += 1;
  }
}

function decodeOrCorrupt<T>(decode: () => T, where: { extentId: number; offset: number }): T {
  try {
    return decode();
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) {
      throw new StorageError('partition.corrupt', `undecodable record at extent ${where.extentId} offset ${where.offset}: ${error.message}`, { cause: error, context: { ...where } });
    }
    throw error;
  }
}

async function corruptIfUndecodable<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) {
      throw new StorageError('partition.corrupt', `a run named by the manifest does not decode: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
