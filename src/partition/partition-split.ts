// Preparing a split (docs/partition-protocol.md, "Splits"): planSplit chooses K while the parent
// still takes writes — a group boundary of the table (its splitBoundary) nearest the median row,
// or nearest a hot partition's median request key — then, with the parent's writes stopped, its
// live rows are copied in key order into two children, rows [low, K) and [K, high), each child
// getting four new streams, its rows as checkpoint runs, and one manifest whose coveredSequence is
// the parent's last sequence (children continue the parent's sequence, so ETags stay unique). Rows
// keep their sequence, time, ETag and data refs; the children read refs through the parent's data
// stream (inheritedData). The manager then commits the map. The helpers that build a new
// partition from rows (childStreams, newWriter, finishCheckpoint) serve merges too.
//
// Invariants: the parent takes no write from the first row copied to the end (the caller stopped
// writes and never reopens it at this epoch); a child's manifest is appended only after its runs
// are durable; memory is one scan page plus one run block per child; K is a value the table's
// splitBoundary returned (so whatever rows come and go, no group of rows — a blob and its
// snapshots, blocks, pages, segments — is cut in two), and the copy checks both children got rows.
// Fault model: any stream call may fail: the split fails, the new streams are garbage (the
// collector's), the parent is untouched and is reassigned at a new epoch by the manager.
import { z } from 'zod';
import { runBlockBytesTarget, runBytesMax, scanLimitMax } from '../constants.ts';
import type { StreamManagerApi } from '../stream/protocol.ts';
import type { StreamClient } from '../stream/stream-client.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import { encodeManifest } from '../wire/partition-checkpoint.ts';
import type { Partition } from './partition.ts';
import { keyFromHex, keyHex } from './partition-map.ts';
import type { PartitionEntry } from './partition-map.ts';
import type { PartitionStreamIds, PartitionStreams } from './partition-streams.ts';
import { StreamLayerPartitionStreams } from './partition-streams.ts';
import { RunWriter } from './run-writer.ts';
import type { SplitBoundary } from './table-schema.ts';

const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const childSchema = z.object({ partitionId: id, low: z.string(), high: z.string().nullable(), streams: z.object({ meta: id, log: id, checkpoint: id, data: id }), rows: id });
export const splitAnswerSchema = z.object({ splitKey: z.string(), coveredSequence: id, children: z.array(childSchema).length(2) });
export type SplitAnswer = z.infer<typeof splitAnswerSchema>;

export interface SplitOptions {
  readonly partition: Partition;
  readonly entry: PartitionEntry;
  readonly childIds: readonly [number, number];
  readonly streams: PartitionStreams;
  readonly manager: StreamManagerApi;
  readonly client: StreamClient;
  readonly clock: Clock;
}

export interface SplitCopyOptions extends SplitOptions {
  /** From planSplit, chosen while the parent still took writes: a group boundary, so it stays one. */
  readonly splitKey: Buffer;
}

/**
 * Chooses the split key while the partition still takes writes (a count pass and a key pass):
 * the group boundary nearest the median row, or, with `target` (a hot split), nearest the row at
 * target's position. Throws config.invalid when no boundary lies between two rows.
 */
export async function planSplit(partition: Partition, partitionId: number, boundary: SplitBoundary, target: Buffer | null): Promise<Buffer> {
  const { count, below } = await countRows(partition, target);
  if (count < 2) throw new StorageError('config.invalid', `partition ${partitionId} has ${count} rows: nothing to split`);
  const splitIndex = target === null ? Math.floor(count / 2) : Math.min(count - 1, Math.max(1, below));
  const splitKey = await chooseSplitKey(rowKeys(partition), count, boundary, splitIndex);
  if (splitKey === null) throw new StorageError('config.invalid', `partition ${partitionId}: every row is in one group; no split key`);
  return splitKey;
}

/** The copy pass, with the parent's writes stopped: both children's runs and manifests. */
export async function splitPartition(options: SplitCopyOptions): Promise<SplitAnswer> {
  const { partition, entry, splitKey } = options;
  const coveredSequence = partition.stats().lastSequence;
  const children = [await childStreams(options.manager, options.childIds[0]), await childStreams(options.manager, options.childIds[1])] as const;
  const childStreamsApi = new StreamLayerPartitionStreams({ client: options.client, manager: options.manager });
  const writers = children.map((child, index) => newWriter(childStreamsApi, child, options.childIds[index] ?? 0, coveredSequence, options.clock));
  let copied = 0;
  let left = 0;
  for await (const row of liveRows(partition)) {
    const writer = Buffer.compare(row.key, splitKey) < 0 ? writers[0] : writers[1];
    if (writer === writers[0]) left += 1;
    await writer?.writer.add(row.key.toString('latin1'), row);
    copied += 1;
  }
  // Rows may have come and gone between planSplit and the stop: a child left empty fails the split
  // (the parent is re-epoched and serves on; the next tick plans again).
  if (left === 0 || left === copied) throw new StorageError('config.invalid', `split of partition ${entry.partitionId}: ${left} of ${copied} rows left of the split key`);
  const bounds = [{ low: entry.low, high: keyHex(splitKey) }, { low: keyHex(splitKey), high: entry.high }] as const;
  const answers = [];
  for (const [index, child] of children.entries()) {
    const writer = writers[index];
    const bound = bounds[index];
    const childId = options.childIds[index];
    if (writer === undefined || bound === undefined || childId === undefined) throw new StorageError('config.invalid', 'two children');
    await finishCheckpoint(childStreamsApi, child, writer, { partitionId: childId, coveredSequence, low: bound.low, high: bound.high, clock: options.clock });
    answers.push({ partitionId: childId, low: bound.low, high: bound.high, streams: child.ids, rows: index === 0 ? left : copied - left });
  }
  return { splitKey: keyHex(splitKey), coveredSequence, children: answers };
}

/** Writes a new partition's last runs, then its one manifest (after the runs are durable). */
export async function finishCheckpoint(
  streams: PartitionStreams, child: ChildStreams, writer: ChildWriter,
  target: { readonly partitionId: number; readonly coveredSequence: number; readonly low: string; readonly high: string | null; readonly clock: Clock },
): Promise<void> {
  const runs = await writer.writer.finish();
  await streams.append(child.meta, encodeManifest({
    partitionId: target.partitionId, manifestSequence: 1, coveredSequence: target.coveredSequence, logStart: { extentId: child.logFirstExtent, offset: 0 },
    nextRunId: writer.nextRunId(), createdAtMs: target.clock.nowMs(), lowKey: keyFromHex(target.low), highKey: target.high === null ? null : keyFromHex(target.high),
    runs: runs.map((run) => run.run),
  }));
}

export interface ChildStreams {
  readonly ids: PartitionStreamIds;
  readonly meta: number;
  readonly logFirstExtent: number;
}

export async function childStreams(manager: StreamManagerApi, partitionId: number): Promise<ChildStreams> {
  const create = (name: string): Promise<Awaited<ReturnType<StreamManagerApi['createStream']>>> => manager.createStream({ name: `partition-${partitionId}/${name}` });
  const meta = await create('meta');
  const log = await create('log');
  const checkpoint = await create('checkpoint');
  const data = await create('data');
  const first = log.extents[0];
  if (first === undefined) throw new StorageError('stream.unavailable', 'a new log stream has no extent');
  return { ids: { meta: meta.streamId, log: log.streamId, checkpoint: checkpoint.streamId, data: data.streamId }, meta: meta.streamId, logFirstExtent: first.extentId };
}

export interface ChildWriter {
  readonly writer: RunWriter;
  readonly nextRunId: () => number;
}

export function newWriter(streams: PartitionStreams, child: ChildStreams, partitionId: number, coveredSequence: number, clock: Clock): ChildWriter {
  let nextRunId = 1;
  const writer = new RunWriter({
    streams, streamId: child.ids.checkpoint, partitionId, clock, allocateRunId: () => nextRunId++,
    coveredSequence, logStart: { extentId: child.logFirstExtent, offset: 0 }, blockBytesTarget: runBlockBytesTarget, runBytesMax,
  });
  return { writer, nextRunId: () => nextRunId };
}

/**
 * The split key among `keys` (sorted, `count` of them): the first group boundary between two
 * adjacent rows whose right row is at or after the median (or `splitIndex`), else the last one before it; null if
 * no boundary lies between two rows (one group holds every row). The boundary between rows p < k
 * is k if k starts a group, else the smallest group start above p, boundary(p ‖ 0x00), when ≤ k.
 */
export async function chooseSplitKey(keys: AsyncIterable<Buffer>, count: number, boundary: SplitBoundary, splitIndex = Math.floor(count / 2)): Promise<Buffer | null> {
  const median = splitIndex;
  let previous: Buffer | null = null;
  let lastBefore: Buffer | null = null;
  let index = 0;
  for await (const key of keys) {
    if (previous !== null) {
      const candidate = boundary(key).equals(key) ? key : boundary(Buffer.concat([previous, zeroByte]));
      if (Buffer.compare(candidate, previous) > 0 && Buffer.compare(candidate, key) <= 0) {
        if (index >= median) return candidate;
        lastBefore = candidate;
      }
    }
    previous = key;
    index += 1;
  }
  return lastBefore;
}

const zeroByte = Buffer.from([0]);

async function* rowKeys(partition: Partition): AsyncGenerator<Buffer> {
  for await (const row of liveRows(partition)) yield row.key;
}

/** Live rows, and how many of them lie below `target` (0 without one). */
async function countRows(partition: Partition, target: Buffer | null): Promise<{ count: number; below: number }> {
  let count = 0;
  let below = 0;
  for await (const row of liveRows(partition)) {
    count += 1;
    if (target !== null && Buffer.compare(row.key, target) < 0) below += 1;
  }
  return { count, below };
}

export async function* liveRows(partition: Partition): AsyncGenerator<Extract<Awaited<ReturnType<Partition['get']>>, object>> {
  let continuation: string | null = null;
  do {
    const page = await partition.scan({ limit: scanLimitMax, ...(continuation === null ? {} : { continuation }) });
    for (const item of page.items) if (item.kind === 'row') yield item.row;
    continuation = page.continuation;
  } while (continuation !== null);
}
