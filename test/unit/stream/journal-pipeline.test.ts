// The pipelined journal (docs/formats/journal.md, "Pipelined batches"): up to D batches written at
// once, acknowledged strictly in file order, and recovery's torn-window rule after a power cut
// that catches D batches in flight in every keep/tear/drop combination. On SimDisk with a
// ManualClock (no background extent sync), journal writes held in flight by a test disk.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { journalBatchesInFlightMax } from '../../../src/constants.ts';
import type { DiskFile } from '../../../src/io/disk.ts';
import { SimDisk, simSectorBytes } from '../../../src/io/sim-disk.ts';
import type { SimDiskFile } from '../../../src/io/sim-disk.ts';
import { ExtentStore } from '../../../src/stream/extent-store.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { encodeJournalAppend, journalFileName, journalRecordHeaderBytes } from '../../../src/wire/journal-format.ts';
import { DelegatingDisk, fileWith } from '../../helpers/delegating-disk.ts';

const streamId = 5;
const blockBytes = 600;

/** A journal write caught in flight: volatile on the SimDisk until released. */
interface HeldWrite {
  readonly position: number;
  readonly bytes: Buffer;
  readonly release: () => void;
}

/** A SimDisk whose journal writes, while `holding`, are started but wait for release() to become durable. */
class HeldJournalDisk extends DelegatingDisk {
  holding = false;
  readonly held: HeldWrite[] = [];

  protected wrapFile(file: SimDiskFile): DiskFile {
    if (!file.path.startsWith('journal/')) return file;
    return fileWith(file, {
      writevSynced: async (position, parts) => {
        if (!this.holding) return file.writevSynced(position, parts);
        const write = await file.startSyncedWrite(position, parts);
        await new Promise<void>((resolve) => this.held.push({ position, bytes: Buffer.concat(parts), release: resolve }));
        await write.complete();
      },
    });
  }

  async heldCount(count: number): Promise<void> {
    for (let turn = 0; turn < 1000 && this.held.length < count; turn++) await turns(1);
    assert.equal(this.held.length, count, `${count} journal writes in flight`);
  }
}

async function turns(count: number): Promise<void> {
  for (let turn = 0; turn < count; turn++) await new Promise((resolve) => setImmediate(resolve));
}

function block(extentId: number, index: number): Buffer {
  return Buffer.alloc(blockBytes, extentId * 16 + index);
}

describe('pipelined journal: acknowledgement in file order', () => {
  it('starts a second batch only once the first has been in flight journalBatchOverlapAfterMs; what queued meanwhile goes as one batch', async (t) => {
    const disk = new HeldJournalDisk(new SimDisk({ random: new SeededRandom(1) }));
    const clock = new ManualClock(0);
    const store = await ExtentStore.open({ disk, clock, groupCommit: true, journalBatchOverlapAfterMs: 5 });
    for (const extentId of [1, 2, 3]) await store.create({ streamId, extentId, epoch: 1 });
    disk.holding = true;
    const appends = [store.append(1, 0, block(1, 0))];
    await disk.heldCount(1);
    appends.push(store.append(2, 0, block(2, 0)), store.append(3, 0, block(3, 0)));
    await clock.advance(4);
    await turns(5);
    assert.equal(disk.held.length, 1, 'the first batch is younger than 5 ms: the others wait');
    await clock.advance(1);
    await disk.heldCount(2);
    const recordBytes = journalRecordHeaderBytes + blockBytes;
    assert.deepEqual(disk.held.map((write) => write.bytes.length), [recordBytes, 2 * recordBytes], 'the second batch holds both waiting records');
    for (const write of disk.held) write.release();
    await Promise.all(appends);
    t.diagnostic(`journal writes: ${disk.held.length} for 3 appends, ${store.stats().journal.records} records in ${store.stats().journal.batches} batches`);
    await store.close();
  });

  it('a later batch whose write returns first is not acknowledged before the earlier; at most D in flight', async (t) => {
    const disk = new HeldJournalDisk(new SimDisk({ random: new SeededRandom(1) }));
    const store = await ExtentStore.open({ disk, clock: new ManualClock(0), groupCommit: true, journalBatchOverlapAfterMs: 0 });
    for (const extentId of [1, 2, 3, 4]) await store.create({ streamId, extentId, epoch: 1 });
    disk.holding = true;
    const acknowledged: number[] = [];
    const appends: Array<Promise<void>> = [];
    for (const extentId of [1, 2, 3, 4]) {
      appends.push(store.append(extentId, 0, block(extentId, 0)).then(() => { acknowledged.push(extentId); }));
      await disk.heldCount(Math.min(extentId, journalBatchesInFlightMax));
    }
    await turns(5);
    assert.equal(disk.held.length, journalBatchesInFlightMax, 'the fourth batch waits for the first to be durable');
    disk.held[2]?.release();
    disk.held[1]?.release();
    await turns(5);
    assert.deepEqual(acknowledged, [], 'batches 2 and 3 are durable, batch 1 is not: nothing acknowledged');
    disk.held[0]?.release();
    await disk.heldCount(4);
    assert.deepEqual(acknowledged, [1, 2, 3], 'batch 1 durable: batches 1-3 acknowledged, in file order');
    disk.held[3]?.release();
    await Promise.all(appends);
    assert.deepEqual(acknowledged, [1, 2, 3, 4]);
    await store.close();
    t.diagnostic(`writes returned in the order 3, 2, 1, 4; acknowledged ${acknowledged.join(', ')}; a 4th batch started only after batch 1 returned`);
  });
});

type Fate = 'keep' | 'tear' | 'drop';
const fates: readonly Fate[] = ['keep', 'tear', 'drop'];

/** The in-flight window of the power-cut test: per batch, the appends (extent, index) it holds. */
const windowBatches: ReadonlyArray<ReadonlyArray<readonly [number, number]>> = [
  [[1, 2]],
  [[1, 3], [2, 2]],
  [[2, 3], [3, 2]],
];

interface PowerCutFigures {
  applied: number;
  skippedPastGap: number;
  tornWindowRegions: number;
}

/**
 * Two acknowledged appends per extent, then the window's batches held in flight, a power cut that
 * drops them all, and the journal file rebuilt as `combination` says (a kept batch whole, a torn
 * one up to its first sector boundary, a dropped one absent, zeros if a later one extends the file).
 */
async function powerCutWith(combination: readonly Fate[], figures: PowerCutFigures): Promise<void> {
  const what = combination.join('/');
  const sim = new SimDisk({ random: new SeededRandom(2) });
  const disk = new HeldJournalDisk(sim);
  const store = await ExtentStore.open({ disk, clock: new ManualClock(0), groupCommit: true, journalBatchOverlapAfterMs: 0 });
  for (const extentId of [1, 2, 3]) {
    await store.create({ streamId, extentId, epoch: 1 });
    for (const index of [0, 1]) await store.append(extentId, index * blockBytes, block(extentId, index));
  }
  disk.holding = true;
  const inFlight: Array<Promise<unknown>> = [];
  for (const [batchIndex, batch] of windowBatches.entries()) {
    for (const [extentId, index] of batch) inFlight.push(store.append(extentId, index * blockBytes, block(extentId, index)).catch(() => undefined));
    await disk.heldCount(batchIndex + 1);
  }
  sim.crash();
  for (const write of disk.held) write.release();
  await Promise.all(inFlight);
  await store.close().catch(() => undefined);
  const journal = await sim.open(`journal/${journalFileName(1)}`, { create: false });
  for (const [batchIndex, write] of disk.held.entries()) {
    const fate = combination[batchIndex];
    if (fate === 'keep') await journal.write(write.position, write.bytes);
    if (fate === 'tear') await journal.write(write.position, write.bytes.subarray(0, (Math.floor(write.position / simSectorBytes) + 1) * simSectorBytes - write.position));
  }
  await journal.sync();
  await journal.close();
  const reopened = await ExtentStore.open({ disk: sim, clock: new ManualClock(0), groupCommit: true, journalBatchOverlapAfterMs: 0 });
  for (const extentId of [1, 2, 3]) {
    assert.equal(reopened.damage(extentId), null, `${what}: extent ${extentId} not marked damaged`);
    const length = reopened.info(extentId)?.length ?? 0;
    assert.ok(length >= 2 * blockBytes && length <= 4 * blockBytes && length % blockBytes === 0, `${what}: extent ${extentId} holds whole appends (${length})`);
    const expected = Buffer.concat([0, 1, 2, 3].map((index) => block(extentId, index))).subarray(0, length);
    assert.deepEqual(await reopened.read(extentId, 0, length), expected, `${what}: extent ${extentId} is its appends in order, no block past a gap`);
  }
  figures.applied += reopened.recovery.journalRecordsApplied - 6;
  figures.skippedPastGap += reopened.recovery.journalRecordsSkipped;
  figures.tornWindowRegions += reopened.recovery.journalTornWindowRegions;
  assert.equal(reopened.recovery.journalRecordsDamaged, 0, what);
  await reopened.close();
}

describe('pipelined journal: power cut with D batches in flight', () => {
  it('every keep/tear/drop combination: no acknowledged append lost, no damage marker, no block past a gap', { timeout: 60_000 }, async (t) => {
    const figures: PowerCutFigures = { applied: 0, skippedPastGap: 0, tornWindowRegions: 0 };
    let combinations = 0;
    for (const first of fates) {
      for (const second of fates) {
        for (const third of fates) {
          await powerCutWith([first, second, third], figures);
          combinations += 1;
        }
      }
    }
    assert.equal(combinations, 3 ** journalBatchesInFlightMax);
    assert.ok(figures.skippedPastGap > 0 && figures.tornWindowRegions > 0, 'some combinations put a whole batch past a torn or missing one');
    t.diagnostic(`${combinations} combinations of ${journalBatchesInFlightMax} batches (5 records) in flight: 6 acknowledged appends back each time, 0 damage markers; unacknowledged window records applied ${figures.applied}, skipped past a gap ${figures.skippedPastGap}, torn-window regions followed by good records ${figures.tornWindowRegions}`);
  });
});

describe('journal format v1 files still replay under the one-batch rule', () => {
  it('applies v1 records; a whole v1 tail record with a bad body is damage, not a torn window', async (t) => {
    for (const rotten of [false, true]) {
      const sim = new SimDisk({ random: new SeededRandom(3) });
      const store = await ExtentStore.open({ disk: sim, clock: new ManualClock(0), groupCommit: true, journalBatchOverlapAfterMs: 0 });
      await store.create({ streamId, extentId: 1, epoch: 1 });
      await store.close();
      const records = [0, 1, 2].map((index) => encodeJournalAppend({ extentId: 1, offset: index * blockBytes, body: block(1, index), version: 1 }));
      const bytes = Buffer.concat(records);
      if (rotten) bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 1;
      const file = await sim.open(`journal/${journalFileName(7)}`, { create: true });
      await file.write(0, bytes);
      await file.sync();
      await file.close();
      await sim.syncDirectory('journal');
      const reopened = await ExtentStore.open({ disk: sim, clock: new ManualClock(0), groupCommit: true, journalBatchOverlapAfterMs: 0 });
      assert.equal(reopened.recovery.journalRecordsApplied, rotten ? 2 : 3);
      assert.equal(reopened.damage(1)?.reason ?? null, rotten ? 'journal_record_damaged' : null);
      const length = reopened.info(1)?.length ?? 0;
      assert.deepEqual(await reopened.read(1, 0, length), Buffer.concat([0, 1, 2].map((index) => block(1, index))).subarray(0, length));
      await reopened.close();
      t.diagnostic(`v1 journal of 3 records${rotten ? ', last body rotten' : ''}: ${length / blockBytes} applied, ${rotten ? 'marked damaged (v1 rule)' : 'not damaged'}; header bytes ${journalRecordHeaderBytes}`);
    }
  });
});
