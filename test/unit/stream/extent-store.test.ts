// ExtentStore unit tests: every method and error path, on SimDisk, with group commit on and off.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dataAppendBytesMax, extentSyncIntervalMs } from '../../../src/constants.ts';
import type { DiskFile } from '../../../src/io/disk.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import type { SimDiskFile } from '../../../src/io/sim-disk.ts';
import { SystemClock } from '../../../src/util/clock.ts';
import { StorageError, isStorageError } from '../../../src/util/errors.ts';
import type { StorageErrorCode } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { ExtentStore } from '../../../src/stream/extent-store.ts';
import type { CorruptionEvent } from '../../../src/stream/extent-store.ts';
import { blockHeaderBytes, extentFileName, extentHeaderBytes } from '../../../src/wire/extent-format.ts';
import { DelegatingDisk, fileWith } from '../../helpers/delegating-disk.ts';

const clock = new SystemClock();
const identity = { streamId: 3, extentId: 17, epoch: 2 };
const extentPath = `extents/${extentFileName(identity)}`;

function newDisk(seed = 1): SimDisk {
  return new SimDisk({ random: new SeededRandom(seed) });
}

async function open(disk: SimDisk, groupCommit: boolean, events: CorruptionEvent[] = []): Promise<ExtentStore> {
  return ExtentStore.open({ disk, clock, groupCommit, onCorruption: (event) => events.push(event) });
}

function code(expected: StorageErrorCode): (error: unknown) => boolean {
  return (error) => isStorageError(error, expected);
}

/** Appends `count` blocks of `size` bytes (block i filled with i + 1), concurrently. */
async function appendBlocks(store: ExtentStore, count: number, size: number, from = 0): Promise<Buffer> {
  const blocks = Array.from({ length: count }, (_, i) => Buffer.alloc(size, (from / size + i + 1) & 0xff));
  await Promise.all(blocks.map((block, i) => store.append(identity.extentId, from + i * size, block)));
  return Buffer.concat(blocks);
}

for (const groupCommit of [true, false]) {
  describe(`ExtentStore (group commit ${groupCommit ? 'on' : 'off'})`, () => {
    it('creates, appends, reads across and inside blocks, lists and reopens', async () => {
      const disk = newDisk();
      let store = await open(disk, groupCommit);
      await store.create(identity);
      const expected = await appendBlocks(store, 10, 100);
      assert.deepEqual(await store.read(17, 0, 1000), expected);
      assert.deepEqual(await store.read(17, 150, 333), expected.subarray(150, 483));
      assert.deepEqual(await store.read(17, 999, 1), expected.subarray(999));
      assert.equal((await store.read(17, 1000, 0)).length, 0);
      const info = store.info(17);
      assert.deepEqual({ ...info, createdAtMs: 0 }, { ...identity, length: 1000, state: { kind: 'open' }, createdAtMs: 0 });
      assert.deepEqual(store.list().map((entry) => entry.extentId), [17]);
      await store.close();
      store = await open(disk, groupCommit);
      assert.deepEqual(await store.read(17, 0, 1000), expected);
      assert.equal(store.recovery.journalFiles, 0, 'close retires the journal');
      await store.close();
    });

    it('answers the documented errors', async () => {
      const store = await open(newDisk(), groupCommit);
      await store.create(identity);
      await assert.rejects(store.create(identity), code('extent.exists'));
      await assert.rejects(store.append(99, 0, Buffer.from('x')), code('extent.not_found'));
      await store.append(17, 0, Buffer.from('abc'));
      await assert.rejects(store.append(17, 0, Buffer.from('x')), code('extent.offset_mismatch'));
      await assert.rejects(store.append(17, 5, Buffer.from('x')), code('extent.offset_mismatch'));
      await assert.rejects(store.append(17, 3, Buffer.alloc(0)), code('extent.too_large'));
      await assert.rejects(store.append(17, 3, Buffer.alloc(dataAppendBytesMax + 1)), code('extent.too_large'));
      await assert.rejects(store.read(17, 2, 2), code('extent.out_of_range'));
      await assert.rejects(store.read(17, -1, 1), code('extent.out_of_range'));
      await assert.rejects(store.read(99, 0, 1), code('extent.not_found'));
      assert.equal(store.info(99), null);
      await store.close();
      await assert.rejects(store.append(17, 3, Buffer.from('x')), code('io.closed'));
    });

    it('seals durably at a block boundary, truncating the suffix, idempotently', async () => {
      const disk = newDisk();
      let store = await open(disk, groupCommit);
      await store.create(identity);
      const expected = await appendBlocks(store, 5, 10);
      await assert.rejects(store.seal(17, 15), code('extent.out_of_range'));
      await assert.rejects(store.seal(17, 60), code('extent.out_of_range'));
      await store.seal(17, 30);
      await store.seal(17, 30);
      await assert.rejects(store.seal(17, 20), code('extent.sealed'));
      await assert.rejects(store.append(17, 30, Buffer.from('x')), code('extent.sealed'));
      await assert.rejects(store.read(17, 25, 10), code('extent.out_of_range'));
      assert.deepEqual(store.info(17)?.state, { kind: 'sealed', sealedLength: 30 });
      disk.crash({ tornWrites: true });
      store = await open(disk, groupCommit);
      assert.deepEqual(store.info(17)?.state, { kind: 'sealed', sealedLength: 30 });
      assert.deepEqual(await store.read(17, 0, 30), expected.subarray(0, 30));
      await store.close();
    });

    it('removes durably, and a re-created id never receives the old journal records', async () => {
      const disk = newDisk();
      let store = await open(disk, groupCommit);
      await store.create(identity);
      await appendBlocks(store, 3, 50);
      await store.remove(17);
      assert.equal(store.info(17), null);
      await assert.rejects(store.read(17, 0, 1), code('extent.not_found'));
      await store.create(identity);
      await store.append(17, 0, Buffer.from('new'));
      disk.crash({ tornWrites: true });
      store = await open(disk, groupCommit);
      assert.equal(store.info(17)?.length, 3);
      assert.equal((await store.read(17, 0, 3)).toString(), 'new');
      await store.remove(17);
      disk.crash();
      store = await open(disk, groupCommit);
      assert.deepEqual(store.list(), []);
      await store.close();
    });

    it('never serves a flipped bit: extent.corrupt, onCorruption and verify report the block', async () => {
      const disk = newDisk();
      const events: CorruptionEvent[] = [];
      const store = await open(disk, groupCommit, events);
      await store.create(identity);
      await appendBlocks(store, 4, 64);
      await store.close();
      const reopened = await open(disk, groupCommit, events);
      disk.flipBit(extentPath, extentHeaderBytes + 2 * (blockHeaderBytes + 64) + blockHeaderBytes + 7, 3);
      await assert.rejects(reopened.read(17, 130, 10), code('extent.corrupt'));
      assert.deepEqual(await reopened.read(17, 0, 128), Buffer.concat([Buffer.alloc(64, 1), Buffer.alloc(64, 2)]));
      assert.deepEqual(events.map((event) => event.offset), [128]);
      assert.deepEqual(await reopened.verify(17), { blocks: 4, corruptBlocks: [128] });
      const copied: number[] = [];
      await assert.rejects((async () => { for await (const block of reopened.readBlocks(17, 0)) copied.push(block.offset); })(), code('extent.corrupt'));
      assert.deepEqual(copied, [0, 64]);
      await reopened.close();
    });

    it('keeps blocks after a damaged header readable (resync) and reports the damaged one', async () => {
      const disk = newDisk();
      const events: CorruptionEvent[] = [];
      let store = await open(disk, groupCommit, events);
      await store.create(identity);
      const expected = await appendBlocks(store, 4, 64);
      await store.close();
      disk.flipBit(extentPath, extentHeaderBytes + (blockHeaderBytes + 64) + 10, 0);
      store = await open(disk, groupCommit, events);
      assert.equal(store.info(17)?.length, 256);
      assert.equal(store.recovery.corruptBlocksFound, 1);
      await assert.rejects(store.read(17, 64, 1), code('extent.corrupt'));
      assert.deepEqual(await store.read(17, 128, 128), expected.subarray(128));
      assert.deepEqual((await store.verify(17)).corruptBlocks, [64]);
      await store.close();
    });

    it('readBlocks yields verified blocks from a block or mid-block offset', async () => {
      const store = await open(newDisk(), groupCommit);
      await store.create(identity);
      const expected = await appendBlocks(store, 3, 10);
      const blocks: Array<{ offset: number; data: Buffer }> = [];
      for await (const block of store.readBlocks(17, 5)) blocks.push(block);
      assert.deepEqual(blocks.map((block) => block.offset), [5, 10, 20]);
      assert.deepEqual(Buffer.concat(blocks.map((block) => block.data)), expected.subarray(5));
      await assert.rejects(store.readBlocks(17, 31)[Symbol.asyncIterator]().next(), code('extent.out_of_range'));
      await store.close();
    });

    it('a failed fsync fails the store; acknowledged appends survive a reopen', async () => {
      const disk = newDisk();
      let store = await open(disk, groupCommit);
      await store.create(identity);
      const acknowledged = await appendBlocks(store, 3, 20);
      disk.failNext({ operation: 'sync', code: 'io.eio' });
      await assert.rejects(store.append(17, 60, Buffer.from('lost?')), code('extent.failed'));
      await assert.rejects(store.append(17, 60, Buffer.from('again')), code('extent.failed'));
      await assert.rejects(store.create({ ...identity, extentId: 18 }), code('extent.failed'));
      disk.crash({ tornWrites: true });
      store = await open(disk, groupCommit);
      assert.deepEqual(await store.read(17, 0, 60), acknowledged);
      await store.close();
    });
  });
}

describe('ExtentStore group commit', () => {
  it('batches many concurrent appends into few journal fsyncs, and switches off at run time', async (t) => {
    const disk = newDisk();
    const store = await open(disk, true);
    await store.create(identity);
    await appendBlocks(store, 200, 512);
    const on = store.stats();
    assert.equal(on.appends, 200);
    assert.ok(on.journal.fsyncs < 20, `journal fsyncs ${on.journal.fsyncs}`);
    store.setGroupCommit(false);
    await appendBlocks(store, 10, 512, 200 * 512);
    const off = store.stats();
    assert.equal(off.appendFsyncs, 10);
    assert.equal(off.journal.records, on.journal.records, 'no journal records with group commit off');
    t.diagnostic(`200 appends, ${on.journal.fsyncs} journal fsyncs with group commit on; 10 appends, 10 fsyncs off`);
    disk.crash({ tornWrites: true });
    const reopened = await open(disk, false);
    assert.equal(reopened.info(17)?.length, 210 * 512);
    await reopened.close();
  });

  it('retires journal files once their extent files are synced', async () => {
    const disk = newDisk();
    const store = await open(disk, true);
    await store.create(identity);
    await appendBlocks(store, 5, 100);
    // The background sync runs extentSyncIntervalMs after the first write; wait for it, bounded.
    for (let waitedMs = 0; store.stats().extentSyncs === 0 && waitedMs < 20 * extentSyncIntervalMs; waitedMs += 10) await clock.sleep(10);
    assert.ok(store.stats().extentSyncs >= 1);
    await store.close();
    assert.deepEqual(await disk.list('journal'), []);
  });
});

/**
 * A SimDisk whose extent-file writes wait at a gate: the window between a group-commit run's
 * acknowledgement (its journal records are fsync'd) and its blocks reaching the extent file.
 */
class GatedDisk extends DelegatingDisk {
  private gate: { readonly opened: Promise<Error | null>; readonly open: (failure: Error | null) => void } | null = null;

  hold(): void {
    let open: (failure: Error | null) => void = () => undefined;
    const opened = new Promise<Error | null>((resolve) => { open = resolve; });
    this.gate = { opened, open };
  }

  /** Lets the held writes go on, or fail with `failure`. */
  release(failure: Error | null = null): void {
    this.gate?.open(failure);
    this.gate = null;
  }

  protected wrapFile(file: SimDiskFile): DiskFile {
    if (!file.path.startsWith('extents/')) return file;
    return fileWith(file, {
      writev: async (position, parts) => {
        const failure = this.gate === null ? null : await this.gate.opened;
        if (failure !== null) throw failure;
        await file.writev(position, parts);
      },
    });
  }
}

/** True if `promise` is still pending after the event loop turned a few times. */
async function stillPending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => { settled = true; }, () => { settled = true; });
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
  return !settled;
}

describe('ExtentStore group commit: acknowledge before the extent-file write', () => {
  it('acknowledges a run once its journal records are durable; a read waits for the extent-file write', { timeout: 10_000 }, async (t) => {
    const sim = newDisk();
    const disk = new GatedDisk(sim);
    const events: CorruptionEvent[] = [];
    const store = await ExtentStore.open({ disk, clock, groupCommit: true, onCorruption: (event) => events.push(event) });
    await store.create(identity);
    disk.hold();
    const expected = await appendBlocks(store, 8, 4096);
    assert.equal(store.info(17)?.length, expected.length, 'acknowledged and published while the extent-file write is held');
    const file = await sim.open(extentPath, { create: false });
    assert.equal(await file.size(), extentHeaderBytes, 'no block in the extent file yet');
    const reading = store.read(17, 4096, 3 * 4096);
    assert.ok(await stillPending(reading), 'a read of a block not yet in the file waits for the write');
    disk.release();
    assert.deepEqual(await reading, expected.subarray(4096, 4 * 4096));
    assert.equal(await file.size(), extentHeaderBytes + 8 * (blockHeaderBytes + 4096));
    assert.deepEqual(events, []);
    t.diagnostic(`8 appends acknowledged with 0 blocks in the extent file; the read waited for the write, then returned ${3 * 4096} bytes, 0 corruption reports`);
    await store.close();
  });

  it('keeps an acknowledged run across a power cut before its extent-file write', { timeout: 10_000 }, async (t) => {
    const sim = newDisk();
    const disk = new GatedDisk(sim);
    const store = await ExtentStore.open({ disk, clock, groupCommit: true, onCorruption: () => undefined });
    await store.create(identity);
    await appendBlocks(store, 2, 1000);
    disk.hold();
    const expected = await appendBlocks(store, 6, 1000, 2000);
    sim.crash({ tornWrites: true });
    // The crashed store's held write never goes on: it stays behind its gate, as a dead process's would.
    const reopened = await open(sim, true);
    assert.equal(reopened.info(17)?.length, 8000);
    assert.deepEqual(await reopened.read(17, 2000, 6000), expected);
    t.diagnostic(`6 appends acknowledged before their extent-file write, power cut: ${reopened.recovery.journalRecordsApplied} journal records applied, 8000 of 8000 bytes read back`);
    await reopened.close();
  });

  it('answers a read waiting for a failed extent-file write with the failure, never the missing bytes', { timeout: 10_000 }, async (t) => {
    const disk = new GatedDisk(newDisk());
    const events: CorruptionEvent[] = [];
    const store = await ExtentStore.open({ disk, clock, groupCommit: true, onCorruption: (event) => events.push(event) });
    await store.create(identity);
    disk.hold();
    await appendBlocks(store, 3, 512);
    const reading = store.read(17, 0, 512);
    assert.ok(await stillPending(reading));
    disk.release(new StorageError('io.eio', 'injected extent-file write failure'));
    await assert.rejects(reading, code('extent.failed'));
    assert.ok(store.failed);
    assert.deepEqual(events, [], 'no corruption reported for bytes that were never written');
    t.diagnostic('extent-file write failed after the acknowledgement: the waiting read answered extent.failed, 0 corruption reports');
    await store.close();
  });
});
