// Loading a partition from its streams (docs/formats/partition-log.md "Replay" and
// partition-checkpoint.md "Meta stream"): seal the meta and log tails (fencing a previous owner's
// appends to them and fixing every extent's length), read the newest manifest, open the runs it
// names, and replay the commit log after its position into a fresh memtable, deduping by
// sequence number and skipping records of fenced owners.
//
// Invariants: after a successful load, runs + memtable hold exactly the batches with sequence ≤
// lastSequence that the streams hold (each once), lastSequence has no gaps below it, and the log
// tail is the new empty extent where the next append goes.
// Fault model: stream calls may fail (the load fails, retryable, and can be repeated: sealing
// twice only adds an empty extent); undecodable records, a log gap, a foreign partition id or a
// newer owner's record fail the load with partition.corrupt / partition.fenced.
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
  let last = manifest?.coveredSequence ?? 0;
  let highestEpoch = 0;
  const stats = { recordsReplayed: 0, duplicatesSkipped: 0, fencedSkipped: 0 };
  const records = streamRecords({ streams: context.streams, streamId: context.streamIds.log, extents, from: manifest?.logStart ?? null, recordLength: logRecordLength });
  for await (const scanned of records) {
    const record = decodeOrCorrupt(() => decodeLogRecord(scanned.bytes), scanned);
    const where = { extentId: scanned.extentId, offset: scanned.offset, sequence: record.sequence };
    if (record.partitionId !== context.partitionId) throw new StorageError('partition.corrupt', `log holds a record of partition ${record.partitionId}`, { context: where });
    if (record.ownerEpoch > context.ownerEpoch) {
      throw new StorageError('partition.fenced', `log holds a record of owner epoch ${record.ownerEpoch} > ${context.ownerEpoch}`, { context: where });
    }
    if (record.ownerEpoch < highestEpoch) {
      stats.fencedSkipped += 1;
      continue;
    }
    highestEpoch = record.ownerEpoch;
    if (record.sequence <= last) {
      stats.duplicatesSkipped += 1;
      continue;
    }
    if (record.sequence !== last + 1) throw new StorageError('partition.corrupt', `log gap: sequence ${record.sequence} follows ${last}`, { context: where });
    const framed = logRecordFramedRows(scanned.bytes);
    assert(framed.length === record.rows.length, 'a checked record frames each row of its batch');
    for (let index = 0; index < framed.length; index++) {
      const row = record.rows[index] as RowRecord;
      memtable.apply(row.key.toString('latin1'), row, framed[index] as Buffer, context.clock.monotonicMs());
    }
    last = record.sequence;
    stats.recordsReplayed += 1;
  }
  return { lastSequence: last, stats };
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
