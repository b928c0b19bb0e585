// Preparing a merge (docs/partition-protocol.md, "Merges"): with the writes of two adjacent
// partitions P1 = [a, b) and P2 = [b, c) stopped, their live rows are copied in key order (all of
// P1's, then all of P2's) into one new partition M = [a, c): four new streams, the rows as
// checkpoint runs, and one manifest whose coveredSequence is max(P1's, P2's last sequence), so M
// continues above every sequence either parent used and a key's ETag never repeats. Rows keep
// their sequence, time, ETag and data refs; M reads refs through both parents' data streams (the
// manager lists them in M's inheritedData). The manager then commits the map.
//
// Invariants: neither parent takes a write from the first row copied to the end (the caller
// stopped them and never reopens them at these epochs); P1's rows all lie below b ≤ P2's rows
// (checked per row: the copy is sorted or it fails); M's manifest is appended only after its runs
// are durable; memory is one scan page plus one run block.
// Fault model: any stream call may fail: the merge fails, M's streams are garbage, the parents are
// untouched and are re-epoched by the manager (they reload from their own streams).
import { z } from 'zod';
import type { StreamManagerApi } from '../stream/protocol.ts';
import type { StreamClient } from '../stream/stream-client.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import type { Partition } from './partition.ts';
import type { PartitionEntry } from './partition-map.ts';
import { StreamLayerPartitionStreams } from './partition-streams.ts';
import { childStreams, finishCheckpoint, liveRows, newWriter } from './partition-split.ts';

const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const mergeAnswerSchema = z.object({
  partitionId: id, low: z.string(), high: z.string().nullable(), coveredSequence: id,
  streams: z.object({ meta: id, log: id, checkpoint: id, data: id }), rows: id,
});
export type MergeAnswer = z.infer<typeof mergeAnswerSchema>;

export interface MergeSide {
  readonly partition: Partition;
  readonly entry: PartitionEntry;
}

export interface MergeOptions {
  readonly left: MergeSide;
  readonly right: MergeSide;
  readonly mergedId: number;
  readonly manager: StreamManagerApi;
  readonly client: StreamClient;
  readonly clock: Clock;
}

export async function mergePartitions(options: MergeOptions): Promise<MergeAnswer> {
  const { left, right, mergedId } = options;
  if (left.entry.high !== right.entry.low) throw new StorageError('config.invalid', `partitions ${left.entry.partitionId} and ${right.entry.partitionId} are not neighbours`);
  const coveredSequence = Math.max(left.partition.stats().lastSequence, right.partition.stats().lastSequence);
  const merged = await childStreams(options.manager, mergedId);
  const streams = new StreamLayerPartitionStreams({ client: options.client, manager: options.manager });
  const writer = newWriter(streams, merged, mergedId, coveredSequence, options.clock);
  let previous: Buffer | null = null;
  let rows = 0;
  for (const side of [left, right]) {
    for await (const row of liveRows(side.partition)) {
      if (previous !== null && Buffer.compare(previous, row.key) >= 0) throw new StorageError('partition.corrupt', `merge of ${left.entry.partitionId} and ${right.entry.partitionId}: rows out of order`);
      await writer.writer.add(row.key.toString('latin1'), row);
      previous = row.key;
      rows += 1;
    }
  }
  await finishCheckpoint(streams, merged, writer, { partitionId: mergedId, coveredSequence, low: left.entry.low, high: right.entry.high, clock: options.clock });
  return { partitionId: mergedId, low: left.entry.low, high: right.entry.high, coveredSequence, streams: merged.ids, rows };
}
