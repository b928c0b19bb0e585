// ExtentStore recovery of an OPEN extent's tail (docs/formats/extent-file.md "Recovery",
// damage-marker.md reason 4): only a record the file ends inside is a torn write and is cut; a
// whole tail record that fails its check and that no journal record restores is rot of synced,
// maybe acknowledged bytes: the replica is marked damaged (extent_tail_damaged), never silently
// shortened. A damaged tail that the journal still holds is restored; a sound direct block past a
// restored run is kept. On SimDisk with a ManualClock (the background extent sync runs only when
// a test closes the store).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendBytesMax, dataAppendBytesMax } from '../../../src/constants.ts';
import { crc32c } from '../../../src/util/crc32c.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { ExtentStore } from '../../../src/stream/extent-store.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { blockHeaderBytes, decodeBlockHeader, encodeDataBlock, encodeExtentHeader, extentFileName, extentHeaderBytes } from '../../../src/wire/extent-format.ts';

const identity = { streamId: 5, extentId: 1, epoch: 1 };
const extentPath = `extents/${extentFileName(identity)}`;
const blockBytes = 300;

async function open(disk: SimDisk, groupCommit: boolean, directAppendBytesMin?: number): Promise<ExtentStore> {
  return ExtentStore.open({ disk, clock: new ManualClock(0), groupCommit, ...(directAppendBytesMin === undefined ? {} : { directAppendBytesMin }) });
}

/** Appends `count` blocks one at a time; returns the acknowledged bytes. */
async function appendBlocks(store: ExtentStore, count: number, from: Buffer = Buffer.alloc(0), bytes = blockBytes): Promise<Buffer> {
  let acked = from;
  for (let index = 0; index < count; index++) {
    const data = Buffer.alloc(bytes, acked.length / bytes + 1);
    await store.append(identity.extentId, acked.length, data);
    acked = Buffer.concat([acked, data]);
  }
  return acked;
}

/** File position of the record holding logical offset `index * bytes` (equal blocks). */
function recordAt(index: number, bytes = blockBytes): number {
  return extentHeaderBytes + index * (blockHeaderBytes + bytes);
}

/** A store whose extent holds `count` acknowledged blocks, synced, with the journal retired. */
async function syncedExtent(disk: SimDisk, groupCommit: boolean, count: number): Promise<Buffer> {
  const store = await open(disk, groupCommit);
  await store.create(identity);
  const acked = await appendBlocks(store, count);
  await store.close(); // fsyncs the extent file, retires the journal: only the file holds the appends
  assert.deepEqual(await disk.list('journal'), []);
  return acked;
}

function fileBytes(disk: SimDisk): number {
  return disk.snapshotFiles('durable').get(extentPath)?.length ?? -1;
}

describe('ExtentStore: the tail of an open extent at recovery', () => {
  for (const groupCommit of [true, false]) {
    for (const where of ['body', 'header'] as const) {
      it(`rot in the ${where} of the synced last block is damage, not a torn tail (group commit ${groupCommit ? 'on' : 'off'})`, async (t) => {
        const disk = new SimDisk({ random: new SeededRandom(1) });
        const acked = await syncedExtent(disk, groupCommit, 4);
        const size = fileBytes(disk);
        disk.flipBit(extentPath, recordAt(3) + (where === 'body' ? blockHeaderBytes + 17 : 9), 2);
        const reopened = await open(disk, groupCommit);
        assert.deepEqual(reopened.damage(1), { reason: 'extent_tail_damaged', length: 3 * blockBytes });
        assert.equal(reopened.recovery.extentTailsDamaged, 1);
        assert.equal(reopened.recovery.tornTailBytesTruncated, 0, 'nothing is cut');
        assert.equal(fileBytes(disk), size, 'the damaged bytes stay as evidence');
        assert.deepEqual(await reopened.read(1, 0, 3 * blockBytes), acked.subarray(0, 3 * blockBytes));
        await assert.rejects(reopened.append(1, 3 * blockBytes, Buffer.from('x')), (error: unknown) => isStorageError(error, 'extent.failed'));
        await reopened.close();
        const again = await open(disk, groupCommit);
        assert.equal(again.damage(1)?.reason, 'extent_tail_damaged', 'the mark survives a restart');
        await again.close();
        t.diagnostic(`${where} rot in the last of 4 synced blocks: marked damaged at ${3 * blockBytes} (the old recovery cut it: ${blockBytes} acknowledged bytes the seal minimum would have taken off every replica)`);
      });
    }
  }

  it('rot in the last two synced blocks (no resync possible) is damage at the first of them', async () => {
    const disk = new SimDisk({ random: new SeededRandom(2) });
    await syncedExtent(disk, true, 5);
    disk.flipBit(extentPath, recordAt(3) + 5, 0);
    disk.flipBit(extentPath, recordAt(4) + 5, 0);
    const reopened = await open(disk, true);
    assert.deepEqual(reopened.damage(1), { reason: 'extent_tail_damaged', length: 3 * blockBytes });
    await reopened.close();
  });

  it('a damaged unsynced tail that the journal holds is restored, not marked', async () => {
    const disk = new SimDisk({ random: new SeededRandom(3) });
    const store = await open(disk, true);
    await store.create(identity);
    const acked = await appendBlocks(store, 4); // journal-durable; the extent file is never synced
    disk.flipBit(extentPath, recordAt(3) + 3, 1); // the last block's header (in the live bytes)
    disk.flipBit(extentPath, recordAt(2) + blockHeaderBytes + 3, 1); // and the body before it
    const reopened = await open(disk, true);
    assert.equal(reopened.damage(1), null);
    assert.deepEqual(await reopened.read(1, 0, acked.length), acked);
    assert.equal(reopened.recovery.extentsMarkedDamaged, 0);
    await reopened.append(1, acked.length, Buffer.from('writable'));
    await reopened.close();
  });

  it('torn writes after power loss (group commit on, journal held): every acknowledged byte back, nothing marked', async (t) => {
    let torn = 0;
    for (let seed = 0; seed < 30; seed++) {
      const disk = new SimDisk({ random: new SeededRandom(100 + seed) });
      const store = await open(disk, true);
      await store.create(identity);
      const acked = await appendBlocks(store, 3, Buffer.alloc(0), 1500); // blocks span sectors
      disk.crash({ tornWrites: true });
      torn += disk.faultCounts().unsyncedWritesTorn;
      await store.close().catch(() => {});
      const reopened = await open(disk, true);
      assert.equal(reopened.damage(1), null, `seed ${seed}`);
      assert.deepEqual(await reopened.read(1, 0, acked.length), acked, `seed ${seed}`);
      await reopened.close();
    }
    t.diagnostic(`30 power losses, ${torn} extent/journal writes torn: 0 acknowledged bytes lost, 0 replicas marked`);
    assert.ok(torn > 0, 'some write was torn');
  });

  for (const groupCommit of [true, false]) {
    it(`a torn last direct append (the file ends inside it) is cut, never marked (group commit ${groupCommit ? 'on' : 'off'})`, async () => {
      for (const keep of [12, blockHeaderBytes, blockHeaderBytes + 100]) {
        const disk = new SimDisk({ random: new SeededRandom(4) });
        const acked = await syncedExtent(disk, groupCommit, 2);
        const record = encodeDataBlock({ extentId: 1, offset: acked.length, body: Buffer.alloc(blockBytes, 9) });
        await writeAt(disk, recordAt(2), record.subarray(0, keep)); // what a crash mid-write leaves
        const reopened = await open(disk, groupCommit, 1);
        assert.equal(reopened.damage(1), null, `keep ${keep}`);
        assert.equal(reopened.info(1)?.length, acked.length);
        assert.equal(reopened.recovery.tornTailBytesTruncated, keep);
        assert.equal(fileBytes(disk), recordAt(2), 'cut durably');
        await reopened.close();
      }
    });
  }

  it('a whole last record that fails its check with no journal record is damage (the conservative rule for direct appends)', async () => {
    const disk = new SimDisk({ random: new SeededRandom(5) });
    const acked = await syncedExtent(disk, false, 2);
    const record = encodeDataBlock({ extentId: 1, offset: acked.length, body: Buffer.alloc(blockBytes, 9) });
    record[blockHeaderBytes + 4] = (record[blockHeaderBytes + 4] ?? 0) ^ 1; // whole, bad body
    await writeAt(disk, recordAt(2), record);
    const reopened = await open(disk, false);
    assert.equal(reopened.damage(1)?.reason, 'extent_tail_damaged');
    assert.equal(reopened.info(1)?.length, acked.length);
    await reopened.close();
  });

  it('keeps a sound direct block that lies past a run of damaged journaled blocks the journal restores', async () => {
    const disk = new SimDisk({ random: new SeededRandom(6) });
    const store = await open(disk, true, 1000);
    await store.create(identity);
    let acked = await appendBlocks(store, 3); // journaled, extent file not synced
    const direct = Buffer.alloc(1200, 7);
    await store.append(1, acked.length, direct); // write + fsync: syncs the file; the journal keeps its records
    acked = Buffer.concat([acked, direct]);
    disk.flipBit(extentPath, recordAt(1) + 2, 0); // two damaged headers: the scan cannot resync over them
    disk.flipBit(extentPath, recordAt(2) + 2, 0);
    const reopened = await open(disk, true, 1000);
    assert.equal(reopened.damage(1), null);
    assert.deepEqual(await reopened.read(1, 0, acked.length), acked, 'the acknowledged direct block is kept');
    await reopened.close();
  });

  it('power cuts after direct appends past un-synced journaled runs (O_DSYNC: only the direct append is durable): nothing lost, nothing marked', async (t) => {
    const seeds = 60;
    let pastLost = 0;
    for (let seed = 0; seed < seeds; seed++) {
      const disk = new SimDisk({ random: new SeededRandom(700 + seed) });
      const store = await open(disk, true, 1000);
      await store.create(identity);
      let acked: Buffer = Buffer.alloc(0);
      // Runs of 3, 1 (the scan can resync over one lost block) and 2 journaled blocks, the extent
      // file never fsync'd, each followed by a direct append: an O_DSYNC write of its own range only.
      for (const run of [3, 1, 2]) acked = await appendBlocks(store, 1, await appendBlocks(store, run, acked, 700), 1400);
      await store.read(1, 0, acked.length); // every write has returned
      disk.crash({ tornWrites: true });
      pastLost += disk.faultCounts().syncedWritesPastLostWrites;
      await store.close().catch(() => {});
      const reopened = await open(disk, true, 1000);
      assert.equal(reopened.damage(1), null, `seed ${seed}`);
      assert.deepEqual(await reopened.read(1, 0, acked.length), acked, `seed ${seed}`);
      await reopened.close();
    }
    t.diagnostic(`${seeds} power cuts: ${pastLost} direct appends kept past a lost or torn journaled write; 0 acknowledged bytes lost, 0 replicas marked`);
    assert.ok(pastLost > 0, 'the state a real power cut can leave was produced');
  });
});

describe('ExtentStore: 8 MiB data blocks (extent format v2)', () => {
  const big = dataAppendBytesMax;

  it('a damaged header of a middle 8 MiB block is resynced over, a torn last one cut, a power cut loses nothing acknowledged', async (t) => {
    const disk = new SimDisk({ random: new SeededRandom(7) });
    const store = await open(disk, true);
    await store.create(identity);
    const acked = await appendBlocks(store, 3, Buffer.alloc(0), big);
    await store.close();
    // The next header lies 8 MiB + 40 bytes on: the v1 window (4 MiB + 80) would not reach it.
    disk.flipBit(extentPath, recordAt(1, big) + 9, 3);
    const record = encodeDataBlock({ extentId: 1, offset: acked.length, body: Buffer.alloc(big, 4) });
    const keep = blockHeaderBytes + 5 * 1024 * 1024;
    await writeAt(disk, recordAt(3, big), record.subarray(0, keep));
    const reopened = await open(disk, true);
    assert.equal(reopened.info(1)?.length, 3 * big, 'the damaged block is resynced over, the torn one cut');
    assert.equal(reopened.recovery.tornTailBytesTruncated, keep);
    assert.deepEqual(await reopened.read(1, 0, big), acked.subarray(0, big));
    assert.deepEqual(await reopened.read(1, 2 * big, big), acked.subarray(2 * big));
    await assert.rejects(reopened.read(1, big, big), (error: unknown) => isStorageError(error, 'extent.corrupt'));
    await reopened.close();
    let torn = 0;
    for (let seed = 0; seed < 4; seed++) {
      const cut = new SimDisk({ random: new SeededRandom(200 + seed) });
      const writer = await open(cut, seed % 2 === 0);
      await writer.create(identity);
      const written = await appendBlocks(writer, 2, Buffer.alloc(0), big);
      // A third 8 MiB append in flight (never acknowledged) when the power goes.
      const unacknowledged = writer.append(1, written.length, Buffer.alloc(big, 7));
      await Promise.resolve();
      cut.crash({ tornWrites: true });
      await unacknowledged.catch(() => {});
      torn += cut.faultCounts().unsyncedWritesTorn;
      await writer.close().catch(() => {});
      const after = await open(cut, seed % 2 === 0);
      assert.equal(after.damage(1), null, `seed ${seed}`);
      assert.deepEqual(await after.read(1, big, big), written.subarray(big), `seed ${seed}`);
      assert.ok([2 * big, 3 * big].includes(after.info(1)?.length ?? -1), `seed ${seed}: the unacknowledged block is whole or cut`);
      await after.close();
    }
    t.diagnostic(`3 × 8 MiB blocks: header rot in block 1 resynced over (8 MiB + 40 B on), torn block 3 (${keep} B) cut; 4 power losses with an 8 MiB append in flight (${torn} writes torn): every acknowledged 8 MiB block back`);
  });
});

async function writeAt(disk: SimDisk, position: number, bytes: Uint8Array): Promise<void> {
  const file = await disk.open(extentPath, { create: false });
  try {
    await file.truncate(position);
    await file.write(position, bytes);
    await file.sync();
  } finally {
    await file.close();
  }
}

describe('ExtentStore: an open extent whose file is format v1 (created before the v2 upgrade)', () => {
  /** Rewrites the extent file's header as a v1 writer made it (version 1, its CRC). */
  async function downgradeHeader(disk: SimDisk): Promise<void> {
    const header = encodeExtentHeader({ ...identity, createdAtMs: 0 });
    header.writeUInt16BE(1, 8);
    header.writeUInt32BE(crc32c(header.subarray(0, 60)), 60);
    const file = await disk.open(extentPath, { create: false });
    try {
      await file.write(0, header);
      await file.sync();
    } finally {
      await file.close();
    }
  }

  /** Every data block's body size in the durable file, as a v1 reader would check them. */
  function durableBlockBytes(disk: SimDisk): number[] {
    const bytes = disk.snapshotFiles('durable').get(extentPath);
    assert.ok(bytes !== undefined);
    const sizes: number[] = [];
    for (let position = extentHeaderBytes; position + blockHeaderBytes <= bytes.length;) {
      const header = decodeBlockHeader(bytes.subarray(position, position + blockHeaderBytes));
      sizes.push(header.bodyBytes);
      position += blockHeaderBytes + header.bodyBytes;
    }
    return sizes;
  }

  for (const groupCommit of [true, false]) {
    it(`takes blocks of at most 4 MiB (v1's limit), before and after a restart; a new extent takes 8 MiB (group commit ${groupCommit ? 'on' : 'off'})`, async (t) => {
      const disk = new SimDisk({ random: new SeededRandom(11) });
      const creator = await open(disk, groupCommit);
      await creator.create(identity);
      await creator.close();
      await downgradeHeader(disk);
      const store = await open(disk, groupCommit);
      await store.append(1, 0, Buffer.alloc(appendBytesMax, 1));
      const refused: number[] = [];
      for (const bytes of [appendBytesMax + 1, dataAppendBytesMax]) {
        await assert.rejects(store.append(1, appendBytesMax, Buffer.alloc(bytes, 2)), (error: unknown) => isStorageError(error, 'extent.too_large'));
        refused.push(bytes);
      }
      await store.append(1, appendBytesMax, Buffer.alloc(blockBytes, 3));
      await store.close();
      const reopened = await open(disk, groupCommit);
      assert.equal(reopened.info(1)?.length, appendBytesMax + blockBytes);
      await assert.rejects(reopened.append(1, appendBytesMax + blockBytes, Buffer.alloc(dataAppendBytesMax, 4)), (error: unknown) => isStorageError(error, 'extent.too_large'));
      const fresh = { streamId: identity.streamId, extentId: 2, epoch: identity.epoch };
      await reopened.create(fresh);
      await reopened.append(2, 0, Buffer.alloc(dataAppendBytesMax, 5));
      assert.equal(reopened.info(2)?.length, dataAppendBytesMax, 'a file the v2 writer creates takes 8 MiB blocks');
      await reopened.close();
      const sizes = durableBlockBytes(disk);
      assert.ok(sizes.every((size) => size <= appendBytesMax), `a v1 reader's limit holds for every block: ${sizes.join(', ')}`);
      t.diagnostic(`v1-headed open extent: blocks ${sizes.join(' + ')} B on disk (all <= ${appendBytesMax}); refused ${refused.join(' and ')} B (extent.too_large: the client seals and rolls to a v2 extent), before and after a restart`);
    });
  }
});
