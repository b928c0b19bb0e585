// ExtentStore damage detection (docs/formats/journal.md "Recovery", docs/formats/damage-marker.md):
// a journal record that rots after it was synced, with the extent file not yet synced, is told
// from a torn tail by the good record after it; the extent it may have robbed is marked damaged
// durably (the mark survives restarts, refuses appends, allows seals, goes with remove); a bad
// record of unknown extent marks every open extent no later record proves complete. On SimDisk
// with a ManualClock, so the background extent sync never runs unless a test asks for it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { extentSyncIntervalMs, journalBatchesInFlightMax } from '../../../src/constants.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { ExtentStore } from '../../../src/stream/extent-store.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { damageMarkerName, decodeDamageMarker, extentFileNameOfMarker } from '../../../src/wire/damage-marker-format.ts';
import { journalFileName, journalRecordHeaderBytes } from '../../../src/wire/journal-format.ts';

const streamId = 4;
const blockBytes = 100;
const recordBytes = journalRecordHeaderBytes + blockBytes;
const journalPath = `journal/${journalFileName(1)}`;
const paddingExtentId = 99;

async function open(disk: SimDisk, clock = new ManualClock(0)): Promise<ExtentStore> {
  return ExtentStore.open({ disk, clock, groupCommit: true });
}

/**
 * Creates the extents, then appends `order` one at a time (each its own journal batch, so record
 * i starts at i * recordBytes in the first journal file); returns the acknowledged bytes.
 */
async function appendInOrder(store: ExtentStore, extentIds: readonly number[], order: readonly number[]): Promise<Map<number, Buffer>> {
  const acked = new Map<number, Buffer>(extentIds.map((extentId) => [extentId, Buffer.alloc(0)]));
  for (const extentId of extentIds) await store.create({ streamId, extentId, epoch: 1 });
  for (const [index, extentId] of order.entries()) {
    const before = acked.get(extentId) ?? Buffer.alloc(0);
    const data = Buffer.alloc(blockBytes, index + 1);
    await store.append(extentId, before.length, data);
    acked.set(extentId, Buffer.concat([before, data]));
  }
  return acked;
}

/**
 * D one-record batches to a padding extent: every earlier batch is then out of the last in-flight
 * window, where rot would read as a torn window (docs/formats/journal.md, Recovery).
 */
async function closeJournalWindow(store: ExtentStore): Promise<void> {
  await store.create({ streamId, extentId: paddingExtentId, epoch: 1 });
  for (let i = 0; i < journalBatchesInFlightMax; i++) await store.append(paddingExtentId, i, Buffer.from('p'));
}

function markerPath(extentId: number): string {
  return `extents/${damageMarkerName({ streamId, extentId, epoch: 1 })}`;
}

describe('ExtentStore damage detection', () => {
  it('marks the extent a rotted, synced journal record robbed, durably, and tells it from a torn tail', async (t) => {
    const disk = new SimDisk({ random: new SeededRandom(11) });
    const store = await open(disk);
    const acked = await appendInOrder(store, [1, 2], [1, 2, 1, 2]);
    await closeJournalWindow(store);
    disk.flipBit(journalPath, 2 * recordBytes + journalRecordHeaderBytes + 10, 4); // body of extent 1's record at 100
    disk.crash(); // the extent files were never synced: only the journal holds the appends
    let reopened = await open(disk);
    const recovery = reopened.recovery;
    assert.equal(recovery.journalRecordsDamaged, 1);
    assert.equal(recovery.extentsMarkedDamaged, 1);
    assert.deepEqual(reopened.damage(1), { reason: 'journal_record_damaged', length: blockBytes });
    assert.equal(reopened.damage(2), null);
    assert.equal(reopened.info(1)?.length, blockBytes, 'the replica lost an acknowledged append');
    assert.deepEqual(await reopened.read(2, 0, 2 * blockBytes), acked.get(2));
    await assert.rejects(reopened.append(1, blockBytes, Buffer.from('x')), (error: unknown) => isStorageError(error, 'extent.failed'));
    await reopened.append(2, 2 * blockBytes, Buffer.from('still writable'));
    const marker = decodeDamageMarker(disk.snapshotFiles('durable').get(markerPath(1)) ?? Buffer.alloc(0));
    assert.deepEqual({ reason: marker.reason, extentId: marker.extentId, length: marker.length }, { reason: 'journal_record_damaged', extentId: 1, length: blockBytes });
    disk.crash();
    reopened = await open(disk);
    assert.deepEqual(reopened.damage(1), { reason: 'journal_record_damaged', length: blockBytes }, 'a second restart still reports damage');
    assert.equal(reopened.recovery.extentsMarkedDamaged, 0);
    await reopened.seal(1, blockBytes);
    assert.deepEqual(reopened.info(1)?.state, { kind: 'sealed', sealedLength: blockBytes });
    await reopened.close();
    reopened = await open(disk);
    assert.notEqual(reopened.damage(1), null, 'sealing does not clear the mark');
    await reopened.remove(1);
    assert.equal(disk.snapshotFiles('durable').has(markerPath(1)), false, 'remove deletes the marker');
    await reopened.create({ streamId, extentId: 1, epoch: 1 });
    await reopened.append(1, 0, Buffer.from('fresh'));
    assert.equal(reopened.damage(1), null);
    await reopened.close();
    t.diagnostic(`rotted record: extent 1 reopened at ${blockBytes} of ${acked.get(1)?.length} acknowledged bytes, marked damaged (the old recovery left it undamaged: ${blockBytes} acknowledged bytes it would offer as complete); mark survived 2 restarts and a seal, went with remove`);
  });

  it('a bad record: in the last in-flight window a torn window (header or body), before it damage', async () => {
    for (const closed of [false, true]) {
      for (const flipAt of [10, journalRecordHeaderBytes + 3]) {
        const disk = new SimDisk({ random: new SeededRandom(12) });
        const store = await open(disk);
        await appendInOrder(store, [1, 2], [1, 2]);
        if (closed) await closeJournalWindow(store);
        disk.flipBit(journalPath, recordBytes + flipAt, 0);
        disk.crash();
        const reopened = await open(disk);
        const what = `flip at ${flipAt} of extent 2's record, ${closed ? 'D batches after it' : 'the last record'}`;
        assert.equal(reopened.damage(2) !== null, closed, what);
        assert.equal(reopened.recovery.journalTornTailBytes, closed ? 0 : recordBytes, what);
        assert.equal(reopened.recovery.journalRecordsDamaged, closed ? 1 : 0, what);
        // A header flip leaves its record's extent unknown: with the window closed, extent 1 (no record after it) is marked too.
        assert.equal(reopened.damage(1) !== null, closed && flipAt < journalRecordHeaderBytes, what);
        await reopened.close();
      }
    }
  });

  it('a record of unknown extent marks every open extent that no later record proves complete', async (t) => {
    const disk = new SimDisk({ random: new SeededRandom(13) });
    const store = await open(disk);
    await appendInOrder(store, [1, 2, 3, 4], [1, 2, 3, 1]);
    await store.seal(4, 0);
    await closeJournalWindow(store);
    disk.flipBit(journalPath, recordBytes + 20, 1); // extent 2's header: its extent is unknown now
    disk.crash();
    const reopened = await open(disk);
    assert.equal(reopened.damage(2)?.reason, 'journal_damage_unattributed');
    assert.equal(reopened.damage(1), null, 'extent 1 has a record after the damage that applied');
    assert.equal(reopened.damage(3), null, 'extent 3 too');
    assert.equal(reopened.damage(4), null, 'a sealed extent was synced when it was sealed');
    await reopened.close();
    t.diagnostic('header rot of an unknown record: 1 of 3 open extents marked (2 proven complete by later records), the sealed one not');
  });

  it('deletes a marker whose extent file is gone (a removal cut short by a crash)', async () => {
    const disk = new SimDisk({ random: new SeededRandom(14) });
    const store = await open(disk);
    await appendInOrder(store, [1], [1, 1]);
    await closeJournalWindow(store);
    disk.flipBit(journalPath, journalRecordHeaderBytes + 1, 2);
    disk.crash();
    const reopened = await open(disk);
    assert.notEqual(reopened.damage(1), null);
    await reopened.close();
    await disk.remove(`extents/${extentFileNameOfMarker(damageMarkerName({ streamId, extentId: 1, epoch: 1 })) ?? ''}`);
    await disk.syncDirectory('extents');
    const again = await open(disk);
    assert.equal(again.recovery.orphanMarkersRemoved, 1);
    assert.deepEqual(await disk.list('extents'), [extentFileNameOfMarker(damageMarkerName({ streamId, extentId: paddingExtentId, epoch: 1 }))]);
    await again.close();
  });

  it('reports a background sync failure through failed and onFailure, before any request', async () => {
    const disk = new SimDisk({ random: new SeededRandom(15) });
    const clock = new ManualClock(0);
    const failures: string[] = [];
    const store = await ExtentStore.open({ disk, clock, groupCommit: true, onFailure: (error) => failures.push(error.code) });
    await appendInOrder(store, [1], [1]);
    assert.equal(store.failed, false);
    disk.failNext({ operation: 'sync', code: 'io.eio' });
    await clock.advance(2 * extentSyncIntervalMs);
    assert.equal(store.failed, true);
    assert.deepEqual(failures, ['extent.failed']);
    await store.close();
  });
});
