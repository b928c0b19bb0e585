// A log append that fails while the partition is stopping its writes (docs/partition-protocol.md,
// "Moves"): PartitionServer.release runs checkpoint → stopWrites → stats().lastSequence → close,
// and the new owner loads the same streams at ownerEpoch + 1. Here that sequence runs on the real
// Partition over in-memory streams, with one write's log append held until stopWrites began and
// then failed with each outcome a real stream layer can leave: the bytes lost, or the bytes landed
// and the answer lost. Partition.fail() leaves a read_only partition read_only (it switches to
// failed only from open); these tests pin down that this is harmless: the write is never
// acknowledged, the old owner never shows it, and the new owner's replay decides it (applied iff
// its bytes landed), so it resolves one way only; every acknowledged write survives the move.
// A write whose append succeeds during stopWrites is acknowledged and survives too.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Partition } from '../../../src/partition/partition.ts';
import type { PartitionStreamIds, PartitionStreams, StreamAppendPosition } from '../../../src/partition/partition-streams.ts';
import type { Body } from '../../../src/util/body-parts.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import type { Column } from '../../../src/wire/partition-row.ts';
import { ForwardingStreams, MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

function key(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

function text(value: string): Column[] {
  return [{ name: 'v', value: { kind: 'string', value } }];
}

async function valueOf(partition: Partition, name: string): Promise<string | null> {
  const column = (await partition.get(key(name)))?.columns[0]?.value;
  return column?.kind === 'string' ? column.value : null;
}

/** One owner's streams whose next log append can be held at its start until the test lets it go. */
class HeldLogStreams extends ForwardingStreams {
  private readonly logStreamId: number;
  private hold: { entered: () => void; gate: Promise<void> } | null = null;

  constructor(inner: PartitionStreams, logStreamId: number) {
    super(inner);
    this.logStreamId = logStreamId;
  }

  /** Holds the next log append; resolves `entered` once it is waiting, goes on at `release()`. */
  holdNextLogAppend(): { entered: Promise<void>; release: () => void } {
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered = (): void => undefined;
    const enteredPromise = new Promise<void>((resolve) => {
      entered = resolve;
    });
    this.hold = { entered, gate };
    return { entered: enteredPromise, release };
  }

  override async append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    const hold = streamId === this.logStreamId ? this.hold : null;
    if (hold !== null) {
      this.hold = null;
      hold.entered();
      await hold.gate;
    }
    return this.inner.append(streamId, data);
  }
}

type Outcome = 'lost' | 'landed' | 'succeeded';

interface Moved {
  readonly writeAnswer: string;
  readonly oldOwnerState: string;
  readonly oldOwnerValue: string | null;
  readonly releasedSequence: number;
  readonly newOwnerValue: string | null;
  readonly queuedAnswer: string;
  readonly queuedValue: string | null;
  readonly acknowledgedSurvived: number;
  readonly nextSequence: number;
}

function answerOf(settled: PromiseSettledResult<{ sequence: number }>): string {
  if (settled.status === 'fulfilled') return `acknowledged@${settled.value.sequence}`;
  const reason: unknown = settled.reason;
  return isStorageError(reason) ? reason.code : String(reason);
}

/** Writes 20 acknowledged rows, then runs the release with one write's log append held across stopWrites. */
async function releaseWithHeldAppend(outcome: Outcome): Promise<Moved> {
  const store = new MemoryStreamStore({ extentBytesMax: 4096 });
  const ids: PartitionStreamIds = store.createPartitionStreams();
  const clock = new ManualClock();
  const limits = { memtableBytesMax: 2048, blockBytesTarget: 256, runBytesMax: 2048 };
  const session = store.session();
  const streams = new HeldLogStreams(session, ids.log);
  const old = await Partition.open({ partitionId: 9, streams, streamIds: ids, clock, ownerEpoch: 1, limits, autoMaintenance: false });
  for (let i = 0; i < 20; i++) await old.put(key(`k/${i}`), text(`v${i}`));

  // The release: a checkpoint while it still serves…
  await old.checkpoint();
  // …a write whose group is being logged when the writes stop, and one queued behind it…
  const held = streams.holdNextLogAppend();
  const write = old.put(key('k/0'), text('unknown'));
  await held.entered;
  const queued = old.put(key('queued'), text('never'));
  const stopping = old.stopWrites();
  // …then the append's outcome: failed with its bytes dropped or kept, or a plain success.
  if (outcome !== 'succeeded') store.failNextAppend(ids.log, outcome);
  held.release();
  const [writeSettled, queuedSettled] = await Promise.allSettled([write, queued]);
  await stopping;
  assert.ok(writeSettled !== undefined && queuedSettled !== undefined);
  const oldOwnerState = old.failure === null ? 'read_only' : `failed (${old.failure.code})`;
  const oldOwnerValue = await valueOf(old, 'k/0');
  await assert.rejects(old.put(key('late'), text('late')), (error) => isStorageError(error, 'partition.closed'), 'a stopped partition takes no write');
  const releasedSequence = old.stats().lastSequence;
  await old.close();
  session.revoke();

  // The move: the new owner loads the streams at the next epoch (the old one is fenced).
  const next = await Partition.open({ partitionId: 9, streams: store.session(), streamIds: ids, clock, ownerEpoch: 2, limits, autoMaintenance: false });
  let acknowledgedSurvived = 0;
  for (let i = 1; i < 20; i++) if ((await valueOf(next, `k/${i}`)) === `v${i}`) acknowledgedSurvived += 1;
  const newOwnerValue = await valueOf(next, 'k/0');
  if (newOwnerValue === 'v0') acknowledgedSurvived += 1;
  const queuedValue = await valueOf(next, 'queued');
  const nextSequence = (await next.put(key('after'), text('after'))).sequence;
  await next.close();
  return {
    writeAnswer: answerOf(writeSettled), oldOwnerState, oldOwnerValue, releasedSequence, newOwnerValue, queuedAnswer: answerOf(queuedSettled), queuedValue, acknowledgedSurvived,
    nextSequence,
  };
}

describe('Partition: a log append that fails while the writes stop (a release, then the move)', () => {
  it('the write resolves one way only: not applied when its bytes were lost, applied by the new owner’s replay when they landed; never acknowledged', async (t) => {
    for (const outcome of ['lost', 'landed'] as const) {
      const moved = await releaseWithHeldAppend(outcome);
      t.diagnostic(`${outcome}: ${JSON.stringify(moved)}`);
      assert.equal(moved.writeAnswer, 'partition.unavailable', 'an append of unknown outcome is never acknowledged');
      assert.equal(moved.oldOwnerState, 'read_only', 'fail() leaves a stopped partition read_only (it never takes a write again)');
      assert.equal(moved.oldOwnerValue, 'v0', 'the old owner never shows the unknown write');
      assert.equal(moved.releasedSequence, 20, 'the release reports the last acknowledged sequence');
      assert.equal(moved.queuedAnswer, 'partition.unavailable', 'the write queued behind it is refused');
      assert.equal(moved.queuedValue, null, 'and never applied');
      if (outcome === 'landed') {
        assert.equal(moved.newOwnerValue, 'unknown', 'landed bytes: the new owner’s replay applies the write');
        assert.equal(moved.acknowledgedSurvived, 19, 'every other acknowledged row survives (k/0 was overwritten by the replayed write)');
        assert.equal(moved.nextSequence, 22, 'the replayed record took sequence 21: the new owner does not reuse it');
      } else {
        assert.equal(moved.newOwnerValue, 'v0', 'lost bytes: the write is not applied');
        assert.equal(moved.acknowledgedSurvived, 20);
        assert.equal(moved.nextSequence, 21);
      }
    }
  });

  it('a write whose append succeeds while the writes stop is acknowledged and survives the move', async (t) => {
    const moved = await releaseWithHeldAppend('succeeded');
    t.diagnostic(`succeeded: ${JSON.stringify(moved)}`);
    assert.equal(moved.writeAnswer, 'acknowledged@21');
    assert.equal(moved.oldOwnerState, 'read_only');
    assert.equal(moved.oldOwnerValue, 'unknown', 'published by the old owner (durable in its log)');
    assert.equal(moved.releasedSequence, 21);
    assert.equal(moved.queuedAnswer, 'partition.closed', 'the queued write is refused as not applied');
    assert.equal(moved.queuedValue, null);
    assert.equal(moved.newOwnerValue, 'unknown', 'acknowledged, so the new owner has it');
    assert.equal(moved.acknowledgedSurvived, 19);
    assert.equal(moved.nextSequence, 22);
  });
});
