// SimDisk's fault injection (src/io/sim-disk.ts header): power loss drops exactly the un-synced
// writes and directory entries, torn writes keep sector-aligned prefixes, failed syncs poison,
// capacity gives ENOSPC, bit flips are seen, and everything replays by seed. The plain Disk
// contract is in test/contract/disk.test.ts. Each test reports its figures via t.diagnostic().
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SimDisk, simSectorBytes } from '../../../src/io/sim-disk.ts';
import type { SimFaultCounts } from '../../../src/io/sim-disk.ts';
import { readFileFully, writeFileDurably } from '../../../src/io/durable-file.ts';
import { canary } from '../../../src/util/crc32c.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import type { StorageErrorCode } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

function rejectsWith(code: StorageErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isStorageError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  };
}

function newDisk(seed: number, capacityBytes?: number): SimDisk {
  const random = new SeededRandom(seed);
  return capacityBytes === undefined ? new SimDisk({ random }) : new SimDisk({ random, capacityBytes });
}

function describeCounts(counts: SimFaultCounts): string {
  return Object.entries(counts)
    .filter(([, value]) => value > 0)
    .map(([key, value]) => `${key}=${value}`)
    .join(' ');
}

describe('SimDisk power loss', () => {
  it('keeps only synced bytes of durably linked files', async (t: TestContext) => {
    const disk = newDisk(1);
    const file = await disk.open('f', { create: true });
    await disk.syncDirectory('');
    await file.write(0, bytes('synced|'));
    await file.sync();
    await file.write(7, bytes('volatile'));
    await file.truncate(3);
    await file.write(0, bytes('XY'));
    assert.deepEqual(await file.read(0, 100), bytes('XYn'));
    assert.deepEqual(disk.snapshotFiles('durable').get('f'), bytes('synced|'));
    disk.crash();
    assert.deepEqual(await readFileFully(disk, 'f'), bytes('synced|'));
    const counts = disk.faultCounts();
    assert.equal(counts.crashes, 1);
    assert.equal(counts.unsyncedWritesDropped, 3);
    t.diagnostic(describeCounts(counts));
  });

  it('keeps what writevSynced wrote once it resolved, drops a plain write after it', async (t: TestContext) => {
    const disk = newDisk(4);
    const file = await disk.open('w', { create: true });
    await disk.syncDirectory('');
    await file.writevSynced(0, [bytes('record'), bytes('|')]);
    await file.write(7, bytes('volatile'));
    disk.crash();
    assert.deepEqual(await readFileFully(disk, 'w'), bytes('record|'));
    assert.equal(disk.faultCounts().unsyncedWritesDropped, 1);
    t.diagnostic(describeCounts(disk.faultCounts()));
  });

  it('drops creates whose directory was not synced, even if the file was', async () => {
    const disk = newDisk(2);
    const empty = await disk.open('linked-empty', { create: true });
    await disk.syncDirectory('');
    await empty.write(0, bytes('never synced'));
    const file = await disk.open('unlinked', { create: true });
    await file.write(0, bytes('data'));
    await file.sync();
    disk.crash();
    assert.equal(await disk.exists('unlinked'), false);
    assert.deepEqual(await readFileFully(disk, 'linked-empty'), Buffer.alloc(0));
    assert.equal(disk.faultCounts().directoryEntriesDropped, 1);
  });

  it('undoes un-synced renames and removes; synced ones survive', async (t: TestContext) => {
    const disk = newDisk(3);
    await writeFileDurably(disk, 'a', bytes('A'));
    await writeFileDurably(disk, 'gone', bytes('G'));
    await disk.rename('a', 'b');
    await disk.remove('gone');
    assert.deepEqual(await disk.list(''), ['b']);
    disk.crash();
    assert.deepEqual(await disk.list(''), ['a', 'gone']);
    assert.deepEqual(await readFileFully(disk, 'gone'), bytes('G'), 'a removed file comes back with its bytes');
    await disk.rename('a', 'b');
    await disk.syncDirectory('');
    disk.crash();
    assert.deepEqual(await disk.list(''), ['b', 'gone']);
    t.diagnostic(`directory entries dropped: ${disk.faultCounts().directoryEntriesDropped}`);
    assert.equal(disk.faultCounts().directoryEntriesDropped, 3);
  });

  it('drops a directory tree whose own entry never became durable', async () => {
    const disk = newDisk(4);
    await disk.makeDirectory('x/y');
    await writeFileDurably(disk, 'x/y/f', bytes('orphan'));
    await disk.syncDirectory('x'); // links y into x durably, but x is not durably in the root
    disk.crash();
    assert.deepEqual(await disk.list(''), []);
    await disk.makeDirectory('x/y');
    await writeFileDurably(disk, 'x/y/f', bytes('kept'));
    await disk.syncDirectory('x');
    await disk.syncDirectory('');
    disk.crash();
    assert.deepEqual(await readFileFully(disk, 'x/y/f'), bytes('kept'));
  });

  it('invalidates every open handle', async () => {
    const disk = newDisk(5);
    await writeFileDurably(disk, 'f', bytes('x'));
    const file = await disk.open('f', { create: false });
    assert.equal(disk.openFileCount(), 1);
    disk.crash();
    assert.equal(disk.openFileCount(), 0);
    await assert.rejects(file.read(0, 1), rejectsWith('io.closed'));
    await assert.rejects(file.write(0, bytes('y')), rejectsWith('io.closed'));
    await assert.rejects(file.sync(), rejectsWith('io.closed'));
    await assert.rejects(file.size(), rejectsWith('io.closed'));
    await file.close();
    const reopened = await disk.open('f', { create: false });
    assert.deepEqual(await reopened.read(0, 1), bytes('x'));
    await reopened.close();
    assert.equal(disk.openFileCount(), 0);
  });
});

describe('SimDisk torn writes', () => {
  for (const how of ['write', 'writev'] as const) it(`keep a prefix that ends on a sector boundary (${how})`, async (t: TestContext) => {
    const seeds = 300;
    const outcomes = { dropped: 0, whole: 0, torn: 0 };
    const cuts = new Set<number>();
    const position = 100;
    const length = 3000; // spans the sector boundaries 512, 1024, ..., 3072
    for (let seed = 1; seed <= seeds; seed++) {
      const disk = newDisk(seed);
      await writeFileDurably(disk, 'f', Buffer.alloc(4096, 0xaa));
      const file = await disk.open('f', { create: false });
      const data = Buffer.alloc(length, 0x55);
      // writev: a header-sized part, then the rest in two: torn only to a prefix of the whole, like one write.
      if (how === 'writev') await file.writev(position, [data.subarray(0, 48), data.subarray(48, 2000), data.subarray(2000)]);
      else await file.write(position, data);
      disk.crash({ tornWrites: true });
      const after = await readFileFully(disk, 'f');
      assert.ok(after !== null && after.length === 4096);
      const cut = firstIndexNotEqual(after, 0x55, position);
      assert.ok(after.subarray(cut).every((byte, i) => byte === 0xaa || cut + i < position), `seed ${seed}: old bytes after the cut`);
      assert.ok(after.subarray(0, position).every((byte) => byte === 0xaa), `seed ${seed}: bytes before the write untouched`);
      if (cut === position) outcomes.dropped += 1;
      else if (cut === position + length) outcomes.whole += 1;
      else {
        assert.equal(cut % simSectorBytes, 0, `seed ${seed}: torn at ${cut}, not a sector boundary`);
        outcomes.torn += 1;
        cuts.add(cut);
      }
    }
    t.diagnostic(`${seeds} seeds: dropped=${outcomes.dropped} whole=${outcomes.whole} torn=${outcomes.torn} at ${cuts.size} distinct sector boundaries`);
    assert.ok(outcomes.dropped > 0 && outcomes.whole > 0 && outcomes.torn > 0);
    assert.equal(cuts.size, 6, 'every boundary inside the write is reachable');
  });

  it('never tear a write that fits inside one sector', async (t: TestContext) => {
    let kept = 0;
    const seeds = 100;
    for (let seed = 1; seed <= seeds; seed++) {
      const disk = newDisk(seed);
      await writeFileDurably(disk, 'f', Buffer.alloc(2048, 0xaa));
      const file = await disk.open('f', { create: false });
      await file.write(600, Buffer.alloc(400, 0x55)); // 600..1000, inside sector 512..1024
      disk.crash({ tornWrites: true });
      const region = (await readFileFully(disk, 'f'))?.subarray(600, 1000);
      assert.ok(region !== undefined);
      const allNew = region.every((byte) => byte === 0x55);
      assert.ok(allNew || region.every((byte) => byte === 0xaa), `seed ${seed}: a one-sector write was torn`);
      if (allNew) kept += 1;
    }
    t.diagnostic(`${seeds} seeds: one-sector write kept whole ${kept} times, dropped ${seeds - kept}`);
  });

  it('replay the same way for the same seed', async (t: TestContext) => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 20; seed++) {
      const first = await tornWorkload(seed);
      const second = await tornWorkload(seed);
      assert.deepEqual(first, second, `seed ${seed} is not deterministic`);
      outcomes.add(first);
    }
    t.diagnostic(`20 seeds, each run twice identically; ${outcomes.size} distinct post-crash states`);
    assert.ok(outcomes.size > 10, 'different seeds give different crashes');
  });
});

/** A seeded workload over three files and a crash with torn writes; returns the state after. */
async function tornWorkload(seed: number): Promise<string> {
  const workload = new SeededRandom(seed * 7919);
  const disk = newDisk(seed);
  const files = await Promise.all(['a', 'b', 'c'].map((name) => disk.open(name, { create: true })));
  await disk.syncDirectory('');
  for (let i = 0; i < 60; i++) {
    const file = files[workload.int(files.length)];
    assert.ok(file !== undefined);
    await file.write(workload.int(5000), workload.bytes(1 + workload.int(2000)));
    if (workload.int(8) === 0) await file.sync();
  }
  disk.crash({ tornWrites: true });
  const state = [...disk.snapshotFiles('live')].map(([path, data]) => `${path}:${data.toString('hex')}`);
  return `${state.join('|')}#${describeCounts(disk.faultCounts())}`;
}

function firstIndexNotEqual(data: Buffer, value: number, from: number): number {
  let index = from;
  while (index < data.length && data[index] === value) index += 1;
  return index;
}

describe('SimDisk writevSynced is an O_DSYNC write: only its own range becomes durable', () => {
  // The extent file's shape after acknowledge-before-write: a synced header, a journaled run
  // written without fsync (4 KiB, 8 sectors), then a direct append synced by writevSynced.
  const runAt = 512;
  const directAt = runAt + 4096;
  async function journaledRunThenDirectAppend(seed: number): Promise<SimDisk> {
    const disk = newDisk(seed);
    await writeFileDurably(disk, 'extent', Buffer.alloc(runAt, 0x11));
    const file = await disk.open('extent', { create: false });
    await file.write(runAt, Buffer.alloc(4096, 0x22));
    await file.writevSynced(directAt, [Buffer.alloc(48, 0x33), Buffer.alloc(1000, 0x44)]);
    return disk;
  }

  it('a power cut keeps the synced range and the size it needs, and drops the earlier write', async (t: TestContext) => {
    const disk = await journaledRunThenDirectAppend(21);
    const durable = disk.snapshotFiles('durable').get('extent');
    disk.crash();
    const after = await readFileFully(disk, 'extent');
    assert.ok(after !== null);
    assert.deepEqual(after, durable, 'the durable view is what the crash leaves');
    assert.equal(after.length, directAt + 1048, 'the file size reaches the synced range');
    assert.ok(after.subarray(0, runAt).every((byte) => byte === 0x11), 'fsync\'d bytes kept');
    assert.ok(after.subarray(runAt, directAt).every((byte) => byte === 0), 'the un-synced run is lost: its range reads as zeros');
    assert.ok(after.subarray(directAt, directAt + 48).every((byte) => byte === 0x33) && after.subarray(directAt + 48).every((byte) => byte === 0x44));
    t.diagnostic(describeCounts(disk.faultCounts()));
    assert.equal(disk.faultCounts().unsyncedWritesDropped, 1, 'only the plain write was volatile');
  });

  it('with torn writes, the synced range is always whole; the earlier write is dropped, kept or torn', async (t: TestContext) => {
    const seeds = 200;
    const run = { dropped: 0, whole: 0, torn: 0 };
    let syncedPastLoss = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const disk = await journaledRunThenDirectAppend(seed);
      disk.crash({ tornWrites: true });
      syncedPastLoss += disk.faultCounts().syncedWritesPastLostWrites;
      const after = await readFileFully(disk, 'extent');
      assert.ok(after !== null && after.length === directAt + 1048, `seed ${seed}: size ${after?.length}`);
      assert.ok(after.subarray(directAt + 48).every((byte) => byte === 0x44), `seed ${seed}: synced range damaged`);
      const kept = firstIndexNotEqual(after, 0x22, runAt);
      assert.ok(after.subarray(kept, directAt).every((byte) => byte === 0), `seed ${seed}: the run's lost part reads as zeros`);
      if (kept === runAt) run.dropped += 1;
      else if (kept === directAt) run.whole += 1;
      else {
        assert.equal(kept % simSectorBytes, 0, `seed ${seed}: torn at ${kept}`);
        run.torn += 1;
      }
    }
    t.diagnostic(`${seeds} seeds: synced range whole ${seeds}/${seeds}; earlier un-synced run dropped=${run.dropped} whole=${run.whole} torn=${run.torn}`);
    assert.ok(run.dropped > 0 && run.whole > 0 && run.torn > 0, 'every fate of the earlier write is produced');
    assert.equal(syncedPastLoss, run.dropped + run.torn, 'counted as syncedWritesPastLostWrites');
  });

  it('a later un-synced overwrite stays volatile; a later sync makes everything durable', async () => {
    const disk = newDisk(22);
    await writeFileDurably(disk, 'f', bytes(''));
    const file = await disk.open('f', { create: false });
    await file.writevSynced(0, [bytes('AAAA')]);
    await file.write(0, bytes('BB'));
    await file.write(8, bytes('CC'));
    assert.deepEqual(disk.snapshotFiles('durable').get('f'), bytes('AAAA'));
    await file.writevSynced(4, [bytes('DD')]);
    assert.deepEqual(disk.snapshotFiles('durable').get('f'), bytes('AAAADD'), 'BB, CC and the size CC gave are not durable');
    await file.sync();
    disk.crash();
    assert.deepEqual(await readFileFully(disk, 'f'), Buffer.concat([bytes('BBAADD'), Buffer.alloc(2), bytes('CC')]));
  });

  it('makes the truncates before it durable (the size it needs), not the writes', async () => {
    const disk = newDisk(23);
    await writeFileDurably(disk, 'f', bytes('0123456789'));
    const file = await disk.open('f', { create: false });
    await file.write(0, bytes('xx'));
    await file.truncate(4);
    await file.writevSynced(6, [bytes('ss')]);
    disk.crash({ tornWrites: true });
    const after = (await readFileFully(disk, 'f'))?.toString('latin1');
    assert.ok(after === '0123\0\0ss' || after === 'xx23\0\0ss', `the truncate kept, the write dropped or kept: ${after}`);
  });

  it('a crash between the write and its completion drops or tears it; the completion then fails', async (t: TestContext) => {
    const outcomes = { dropped: 0, whole: 0, torn: 0 };
    for (let seed = 1; seed <= 60; seed++) {
      const disk = newDisk(seed);
      await writeFileDurably(disk, 'j', bytes(''));
      const file = await disk.open('j', { create: false });
      const write = await file.startSyncedWrite(0, [Buffer.alloc(1500, 0x55)]);
      disk.crash({ tornWrites: true });
      await assert.rejects(write.complete(), rejectsWith('io.closed'));
      const length = (await readFileFully(disk, 'j'))?.length ?? -1;
      if (length === 0) outcomes.dropped += 1;
      else if (length === 1500) outcomes.whole += 1;
      else outcomes.torn += 1;
    }
    t.diagnostic(`60 seeds: dropped=${outcomes.dropped} whole=${outcomes.whole} torn=${outcomes.torn}`);
    assert.ok(outcomes.dropped > 0 && outcomes.torn > 0);
  });

  it('a failed synced write poisons the handle and loses itself and the un-synced writes, not synced ones', async (t: TestContext) => {
    const disk = newDisk(24);
    await writeFileDurably(disk, 'f', bytes(''));
    const file = await disk.open('f', { create: false });
    await file.writevSynced(0, [bytes('kept|')]);
    await file.write(5, bytes('lost|'));
    disk.failNext({ operation: 'sync', path: 'f', code: 'io.eio' });
    await assert.rejects(file.writevSynced(10, [bytes('failed')]), rejectsWith('io.fsync_failed'));
    await assert.rejects(file.write(0, bytes('x')), rejectsWith('io.fsync_failed'), 'poisoned');
    await file.close();
    assert.deepEqual(await readFileFully(disk, 'f'), bytes('kept|'), 'the dirty pages were dropped, the synced write was not');
    disk.crash();
    assert.deepEqual(await readFileFully(disk, 'f'), bytes('kept|'));
    t.diagnostic(describeCounts(disk.faultCounts()));
  });

  it('a bit flip inside a synced range is seen after a crash', async () => {
    const disk = newDisk(25);
    await writeFileDurably(disk, 'f', bytes(''));
    const file = await disk.open('f', { create: false });
    await file.write(0, Buffer.alloc(4));
    await file.writevSynced(4, [Buffer.alloc(4)]);
    disk.flipBit('f', 5, 1);
    disk.crash();
    assert.deepEqual(await readFileFully(disk, 'f'), Buffer.from([0, 0, 0, 0, 0, 2, 0, 0]));
  });
});

describe('SimDisk injected errors', () => {
  it('a failed sync poisons the handle and loses the un-synced bytes', async (t: TestContext) => {
    const disk = newDisk(6);
    await writeFileDurably(disk, 'journal', bytes('good'));
    const file = await disk.open('journal', { create: false });
    await file.write(4, bytes('-lost'));
    disk.failNext({ operation: 'sync', path: 'journal', code: 'io.eio' });
    await assert.rejects(file.sync(), rejectsWith('io.fsync_failed'));
    await assert.rejects(file.sync(), rejectsWith('io.fsync_failed'), 'never retried as if the data were safe');
    await assert.rejects(file.write(9, bytes('x')), rejectsWith('io.fsync_failed'));
    await assert.rejects(file.read(0, 4), rejectsWith('io.fsync_failed'));
    await assert.rejects(file.size(), rejectsWith('io.fsync_failed'));
    await file.close();
    assert.deepEqual(await readFileFully(disk, 'journal'), bytes('good'), 'the dirty pages were dropped');
    disk.crash();
    assert.deepEqual(await readFileFully(disk, 'journal'), bytes('good'));
    t.diagnostic(describeCounts(disk.faultCounts()));
    assert.equal(disk.faultCounts().fsyncFailures, 1);
  });

  it('fails the next matching reads, writes and opens, and only those', async (t: TestContext) => {
    const disk = newDisk(7);
    await disk.makeDirectory('extents');
    await writeFileDurably(disk, 'extents/1', bytes('one'));
    await writeFileDurably(disk, 'other', bytes('two'));
    disk.failNext({ operation: 'write', path: /^extents\//, code: 'io.eio', count: 2 });
    const extent = await disk.open('extents/1', { create: false });
    const other = await disk.open('other', { create: false });
    await other.write(0, bytes('TWO')); // does not match the rule
    await assert.rejects(extent.write(0, bytes('ONE')), rejectsWith('io.eio'));
    await assert.rejects(extent.write(0, bytes('ONE')), rejectsWith('io.eio'));
    assert.deepEqual(await extent.read(0, 3), bytes('one'), 'a failed write changes nothing');
    await extent.write(0, bytes('ONE'));
    disk.failNext({ operation: 'read', code: 'io.eio' });
    await assert.rejects(other.read(0, 3), rejectsWith('io.eio'));
    assert.deepEqual(await other.read(0, 3), bytes('TWO'));
    disk.failNext({ operation: 'open', path: 'other', code: 'io.enospc' });
    await assert.rejects(disk.open('other', { create: true }), rejectsWith('io.enospc'));
    disk.failNext({ operation: 'syncDirectory', code: 'io.eio' });
    await assert.rejects(disk.syncDirectory('extents'), rejectsWith('io.fsync_failed'));
    disk.failNext({ operation: 'read', code: 'io.eio', count: 5 });
    disk.clearFaults();
    assert.deepEqual(await extent.read(0, 3), bytes('ONE'));
    const counts = disk.faultCounts();
    assert.equal(counts.eioInjected, 4);
    assert.equal(counts.enospcInjected, 1);
    t.diagnostic(describeCounts(counts));
  });

  it('refuses writes past capacity with io.enospc and frees space on remove', async (t: TestContext) => {
    const disk = newDisk(8, 4096);
    const file = await disk.open('f', { create: true });
    await file.write(0, Buffer.alloc(4000));
    assert.equal(await disk.freeBytes(), 96);
    await assert.rejects(file.write(4000, Buffer.alloc(200)), rejectsWith('io.enospc'));
    assert.equal(await file.size(), 4000, 'a refused write writes nothing');
    await file.write(0, Buffer.alloc(4000, 1)); // overwriting needs no new space
    await file.write(4000, Buffer.alloc(96));
    await assert.rejects(file.write(4096, bytes('x')), rejectsWith('io.enospc'));
    await disk.remove('f');
    assert.equal(await disk.freeBytes(), 0, 'an open unlinked file still holds its space');
    await file.close();
    assert.equal(await disk.freeBytes(), 4096);
    t.diagnostic(`enospc at capacity: ${disk.faultCounts().enospcCapacity}`);
    assert.equal(disk.faultCounts().enospcCapacity, 2);
  });

  it('frees every removed file: 1000 create/remove cycles leave the disk empty', async () => {
    const disk = newDisk(9, 1 << 20);
    for (let i = 0; i < 1000; i++) {
      await writeFileDurably(disk, `f${i}`, Buffer.alloc(1000));
      await disk.remove(`f${i}`);
      if (i % 10 === 0) await disk.syncDirectory('');
    }
    await disk.syncDirectory('');
    assert.equal(await disk.freeBytes(), 1 << 20);
    assert.deepEqual(disk.snapshotFiles('durable').size, 0);
  });
});

describe('SimDisk bit flips', () => {
  it('are seen by reads now and after a crash', async (t: TestContext) => {
    const disk = newDisk(10);
    await writeFileDurably(disk, 'f', Buffer.alloc(16));
    const file = await disk.open('f', { create: false });
    disk.flipBit('f', 3, 0);
    assert.equal((await file.read(3, 1))[0], 0x01);
    await file.write(5, Buffer.alloc(1, 0xf0)); // un-synced overwrite
    disk.flipBit('f', 5, 7);
    assert.equal((await file.read(5, 1))[0], 0x70, 'current bytes flipped');
    disk.crash();
    const after = await readFileFully(disk, 'f');
    assert.equal(after?.[3], 0x01);
    assert.equal(after?.[5], 0x80, 'durable bytes flipped too');
    assert.throws(() => disk.flipBit('f', 16, 0), /past the end/);
    t.diagnostic(`bit flips: ${disk.faultCounts().bitFlips}`);
  });
});

describe('SimDisk and the skip-fsync canary', () => {
  it('loses "durable" files when fsync is skipped, which the crash checks catch', async (t: TestContext) => {
    const saved = canary.skipFsync;
    canary.skipFsync = true;
    try {
      const disk = newDisk(11);
      await writeFileDurably(disk, 'manifest', bytes('acknowledged'));
      disk.crash();
      assert.equal(await readFileFully(disk, 'manifest'), null);
    } finally {
      canary.skipFsync = saved;
    }
    t.diagnostic('canary skipFsync: caught (an acknowledged file vanished on crash)');
  });
});
