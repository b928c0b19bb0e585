// ExtentStore over a RealDisk whose large reads go through O_DIRECT via aligned staging buffers
// (docs/formats/extent-file.md, "Reading"). What must hold: the block check is exactly as before
// (P2: a corrupt block is never served, through this path too, and the scrub finds it), ranges at
// unaligned offsets inside and across large blocks are the bytes appended, and a read of a block
// whose extent-file write (group commit on, journaled) is still in flight waits for it.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AlignedBuffers } from '../../../src/io/aligned-buffers.ts';
import { directReadStaging, RealDisk } from '../../../src/io/real-disk.ts';
import { ExtentStore } from '../../../src/stream/extent-store.ts';
import type { CorruptionEvent } from '../../../src/stream/extent-store.ts';
import { SystemClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { blockHeaderBytes, extentFileName, extentHeaderBytes } from '../../../src/wire/extent-format.ts';

const MiB = 1024 * 1024;
const identity = { streamId: 5, extentId: 41, epoch: 1 };
const roots: string[] = [];

async function storeOnRealDisk(options: { readonly groupCommit: boolean }): Promise<{ store: ExtentStore; pool: AlignedBuffers; root: string; events: CorruptionEvent[] }> {
  const root = await mkdtemp(join(tmpdir(), 'kura-direct-read-'));
  roots.push(root);
  const pool = directReadStaging(1);
  const events: CorruptionEvent[] = [];
  const store = await ExtentStore.open({ disk: new RealDisk({ root, directReads: pool }), clock: new SystemClock(), groupCommit: options.groupCommit, onCorruption: (event) => events.push(event) });
  await store.create(identity);
  return { store, pool, root, events };
}

/** Appends blocks of the given sizes (random bytes); returns their concatenation. */
async function appendBlocks(store: ExtentStore, sizes: readonly number[], random: SeededRandom): Promise<Buffer> {
  const blocks = sizes.map((size) => random.bytes(size));
  let offset = 0;
  for (const block of blocks) {
    await store.append(identity.extentId, offset, block);
    offset += block.length;
  }
  return Buffer.concat(blocks);
}

describe('ExtentStore on a RealDisk with O_DIRECT reads', () => {
  after(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  it('ranges at unaligned offsets inside and across large blocks are the bytes appended', async (t) => {
    const { store, pool } = await storeOnRealDisk({ groupCommit: false });
    const random = new SeededRandom(31);
    // Odd sizes: every record starts off a page boundary.
    const data = await appendBlocks(store, [3 * MiB + 13, 100_001, 8 * MiB, 2 * MiB + 4095, 5 * MiB - 7], random);
    let reads = 0;
    for (let round = 0; round < 20; round++) {
      const offset = random.int(data.length - 1);
      const length = 1 + random.int(Math.min(8 * MiB, data.length - offset) - 1);
      assert.ok((await store.read(identity.extentId, offset, length)).equals(data.subarray(offset, offset + length)), `${length} bytes at ${offset}`);
      reads += 1;
    }
    t.diagnostic(`${reads} ranges over ${(data.length / MiB).toFixed(1)} MiB matched; ${pool.lent} block reads through O_DIRECT`);
    assert.ok(pool.lent >= reads, 'the large blocks were read through O_DIRECT');
    await store.close();
  });

  it('a flipped bit in a large block is never served: extent.corrupt, reported, found by the scrub', async (t) => {
    const { store, pool, root, events } = await storeOnRealDisk({ groupCommit: false });
    const data = await appendBlocks(store, [4 * MiB + 1, 4 * MiB + 1], new SeededRandom(32));
    // A bit flip in the second block's body, behind the kernel's back (media rot), through a buffered descriptor.
    const position = extentHeaderBytes + 2 * blockHeaderBytes + 4 * MiB + 1 + 3 * MiB;
    const file = await open(join(root, 'extents', extentFileName(identity)), 'r+');
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, position);
    byte[0] = (byte[0] ?? 0) ^ 0x10;
    await file.write(byte, 0, 1, position);
    await file.sync();
    await file.close();
    const alignedBefore = pool.lent;
    await assert.rejects(store.read(identity.extentId, 4 * MiB + 1, 4 * MiB + 1), (error) => isStorageError(error, 'extent.corrupt'));
    assert.ok(pool.lent > alignedBefore, 'the corrupt block was read through O_DIRECT');
    assert.ok((await store.read(identity.extentId, 0, 4 * MiB + 1)).equals(data.subarray(0, 4 * MiB + 1)), 'the sound block is served');
    assert.deepEqual(await store.verify(identity.extentId), { blocks: 2, corruptBlocks: [4 * MiB + 1] });
    t.diagnostic(`corruption events: ${events.length} (read, scrub)`);
    assert.equal(events.length, 2);
    await store.close();
  });

  it('with group commit on, journaled and direct blocks read back at once after their appends', async () => {
    const { store, pool } = await storeOnRealDisk({ groupCommit: true });
    const random = new SeededRandom(33);
    // Small journaled appends make a block run written to the file after its journal batch; large ones go direct.
    const sizes = [40_000, 3 * MiB + 5, 70_000, 2 * MiB + 1, 9_000];
    const blocks = sizes.map((size) => random.bytes(size));
    let offset = 0;
    const appends = blocks.map((block) => {
      const at = offset;
      offset += block.length;
      return store.append(identity.extentId, at, block);
    });
    await Promise.all(appends);
    const data = Buffer.concat(blocks);
    assert.ok((await store.read(identity.extentId, 0, data.length > 8 * MiB ? 8 * MiB : data.length)).equals(data.subarray(0, Math.min(8 * MiB, data.length))));
    assert.ok(pool.lent >= 2, 'the two large blocks were read through O_DIRECT');
    await store.close();
  });
});
