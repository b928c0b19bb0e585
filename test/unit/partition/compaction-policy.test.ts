// The size-tiered compaction policy (src/partition/compaction-policy.ts): merges only adjacent
// whole groups of one tier, drops tombstones only with the oldest run, and bounds write
// amplification. Figure: bytes rewritten by merges ÷ bytes checkpointed over 1,000 checkpoints,
// against the old rule (merge everything once 8 runs were added). Also the maintenance timer:
// a checkpoint on time (injected clock) with no size pressure.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseMerge, runGroups } from '../../../src/partition/compaction-policy.ts';
import type { CompactionPolicyLimits, RunShape } from '../../../src/partition/compaction-policy.ts';
import { Partition } from '../../../src/partition/partition.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

const MiB = 1024 * 1024;
const limits: CompactionPolicyLimits = { fanout: 4, tierBaseBytes: MiB, mergeRunsMax: 16, tombstoneRatio: 0.25, runsMajor: 32 };

function run(dataBytes: number, coveredSequence: number, tombstoneCount = 0): RunShape {
  return { dataBytes, rowCount: 100, tombstoneCount, coveredSequence };
}

/** Simulates checkpoints of `bytes` each with the policy; returns bytes merged ÷ bytes checkpointed. */
interface Merge {
  readonly runs: RunShape[];
  readonly rewrittenBytes: number;
}

function writeAmplification(checkpoints: number, bytes: number, policy: (runs: RunShape[]) => Merge | null): { amplification: number; runsMax: number } {
  let runs: RunShape[] = [];
  let rewritten = 0;
  let runsMax = 0;
  for (let i = 1; i <= checkpoints; i++) {
    runs = [run(bytes, i), ...runs];
    for (let merge = policy(runs); merge !== null; merge = policy(runs)) {
      rewritten += merge.rewrittenBytes;
      runs = merge.runs;
    }
    runsMax = Math.max(runsMax, runs.length);
  }
  return { amplification: rewritten / (checkpoints * bytes), runsMax };
}

function tiered(runs: RunShape[]): Merge | null {
  const choice = chooseMerge(runs, limits);
  if (choice === null) return null;
  const window = runs.slice(choice.start, choice.end);
  const merged = run(window.reduce((sum, shape) => sum + shape.dataBytes, 0), Math.max(...window.map((shape) => shape.coveredSequence)) + 0.5);
  return { runs: [...runs.slice(0, choice.start), merged, ...runs.slice(choice.end)], rewrittenBytes: merged.dataBytes };
}

function mergeAllEvery8(runs: RunShape[]): Merge | null {
  if (runs.length < 8) return null;
  const total = runs.reduce((sum, shape) => sum + shape.dataBytes, 0);
  return { runs: [run(total, 0.5)], rewrittenBytes: total };
}

describe('size-tiered compaction policy', () => {
  it('merges F adjacent groups of one tier; whole groups only; tombstones only with the oldest run', () => {
    assert.equal(chooseMerge([run(MiB, 3), run(MiB, 2), run(MiB, 1)], limits), null);
    assert.deepEqual(chooseMerge([run(MiB, 4), run(MiB, 3), run(MiB, 2), run(MiB, 1)], limits), { start: 0, end: 4, dropTombstones: true });
    // A big old group stays out of a window of small new ones; tombstones are then kept.
    assert.deepEqual(chooseMerge([run(MiB, 5), run(MiB, 4), run(MiB, 3), run(MiB, 2), run(64 * MiB, 1)], limits), { start: 0, end: 4, dropTombstones: false });
    // Runs of one merge (same coveredSequence) are one group: four of them are not four groups.
    assert.equal(runGroups([run(60 * MiB, 7), run(60 * MiB, 7), run(60 * MiB, 7), run(60 * MiB, 7)]).length, 1);
    assert.equal(chooseMerge([run(60 * MiB, 7), run(60 * MiB, 7), run(60 * MiB, 7), run(60 * MiB, 7)], limits), null);
    // Many tombstones: a major merge of everything.
    assert.deepEqual(chooseMerge([run(MiB, 2, 50), run(MiB, 1)], limits), { start: 0, end: 2, dropTombstones: true });
  });

  it('bounds write amplification (figure: against "merge everything every 8 runs")', (t) => {
    const tieredResult = writeAmplification(1000, MiB, tiered);
    const everything = writeAmplification(1000, MiB, mergeAllEvery8);
    assert.ok(tieredResult.amplification < 6, `tiered amplification ${tieredResult.amplification}`);
    assert.ok(tieredResult.runsMax <= 32, `runs ${tieredResult.runsMax}`);
    t.diagnostic(`1000 checkpoints of 1 MiB: bytes rewritten per byte checkpointed: size-tiered ${tieredResult.amplification.toFixed(2)} (≤ ${tieredResult.runsMax} runs), merge-all-every-8 ${everything.amplification.toFixed(1)}`);
  });

  it('checkpoints on time by the maintenance timer (injected clock), with no size pressure', async () => {
    const store = new MemoryStreamStore();
    const clock = new ManualClock();
    const partition = await Partition.open({
      partitionId: 1, streams: store.session(), streamIds: store.createPartitionStreams(), clock, ownerEpoch: 1,
      limits: { checkpointIntervalMs: 60_000, maintenanceTickMs: 1_000 },
    });
    await partition.put(Buffer.from('k'), [{ name: 'v', value: { kind: 'string', value: 'x' } }]);
    await clock.advance(30_000);
    assert.equal(partition.stats().checkpoints, 0);
    for (let i = 0; i < 40 && partition.stats().checkpoints === 0; i++) await clock.advance(1_000);
    assert.equal(partition.stats().checkpoints, 1, 'checkpointed once the oldest row was older than checkpointIntervalMs');
    await partition.close();
  });
});
