// ExtentStore's read cache (docs/stream-protocol.md, "Read cache"): a hot block is served from
// memory only as bytes that passed their checks, rot under it is still found (by the scrub at
// once, by reads once the entry expires), a changed cached buffer is never served, and blocks
// that leave the index leave the cache.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { extentReadCacheBlockBytesMax, extentReadCacheEntryMsMax, extentReadCacheRecheckHits } from '../../../src/constants.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { crc32c } from '../../../src/util/crc32c.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { ExtentStore } from '../../../src/stream/extent-store.ts';
import type { CorruptionEvent } from '../../../src/stream/extent-store.ts';
import { blockHeaderBytes, extentFileName, extentHeaderBytes } from '../../../src/wire/extent-format.ts';

const identity = { streamId: 3, extentId: 17, epoch: 2 };
const extentPath = `extents/${extentFileName(identity)}`;
const blockBytes = 64 * 1024;

/** A store on a fresh SimDisk holding `count` blocks of `size` bytes (block i filled with i + 1). */
async function storeWithBlocks(count: number, size = blockBytes, readCacheBytes?: number): Promise<{ store: ExtentStore; disk: SimDisk; clock: ManualClock; blocks: Buffer[]; events: CorruptionEvent[] }> {
  const disk = new SimDisk({ random: new SeededRandom(7) });
  const clock = new ManualClock();
  const events: CorruptionEvent[] = [];
  const store = await ExtentStore.open({ disk, clock, groupCommit: false, onCorruption: (event) => events.push(event), ...(readCacheBytes === undefined ? {} : { readCacheBytes }) });
  await store.create(identity);
  const blocks = Array.from({ length: count }, (_, i) => Buffer.alloc(size, i + 1));
  for (const [i, block] of blocks.entries()) await store.append(identity.extentId, i * size, block);
  return { store, disk, clock, blocks, events };
}

/** File position of a byte inside block `index` (blocks of `size` bytes). */
function bodyPosition(index: number, size = blockBytes): number {
  return extentHeaderBytes + index * (blockHeaderBytes + size) + blockHeaderBytes + 100;
}

function corrupt(error: unknown): boolean {
  return isStorageError(error, 'extent.corrupt');
}

describe('ExtentStore read cache', () => {
  it('serves a hot block from memory; the scrub still finds rot under it; reads find it once the entry expires', async (t) => {
    const { store, disk, clock, blocks, events } = await storeWithBlocks(2);
    assert.deepEqual(await store.read(17, 0, blockBytes), blocks[0]);
    assert.deepEqual(store.stats().readCache, { hits: 0, misses: 1, rechecksFailed: 0, bytes: blockBytes });
    disk.flipBit(extentPath, bodyPosition(0), 2);
    // The cached bytes passed their check when read and are the acknowledged ones: still served.
    assert.deepEqual(await store.read(17, 0, blockBytes), blocks[0]);
    assert.equal(store.stats().readCache.hits, 1);
    // The scrub reads the disk, not the cache.
    assert.deepEqual(await store.verify(17), { blocks: 2, corruptBlocks: [0] });
    assert.equal(events.length, 1);
    await clock.advance(extentReadCacheEntryMsMax);
    await assert.rejects(store.read(17, 0, blockBytes), corrupt, 'an expired entry goes back to the disk, whose copy is rotten');
    assert.equal(events.length, 2);
    assert.deepEqual(await store.read(17, blockBytes, blockBytes), blocks[1]);
    t.diagnostic(`read cache after the run: ${JSON.stringify(store.stats().readCache)}`);
    await store.close();
  });

  it('a cached body changed in memory is never served: dropped, the block read again from disk', async () => {
    const { store, blocks } = await storeWithBlocks(1);
    const first = await store.read(17, 0, blockBytes);
    first[5] = (first[5] ?? 0) ^ 0xff; // a caller that wrote into the read-only buffer it was given
    const again = await store.read(17, 0, blockBytes);
    assert.deepEqual(again, blocks[0]);
    assert.deepEqual(store.stats().readCache, { hits: 0, misses: 1, rechecksFailed: 1, bytes: blockBytes });
    assert.deepEqual(await store.read(17, 0, blockBytes), blocks[0]);
    assert.equal(store.stats().readCache.hits, 1);
    await store.close();
  });

  it('a body changed after its first hit is found by the sampled re-check within extentReadCacheRecheckHits hits', async (t) => {
    const { store, blocks } = await storeWithBlocks(1);
    const lent = await store.read(17, 0, blockBytes);
    assert.deepEqual(await store.read(17, 0, blockBytes), blocks[0], 'the first hit re-checks and serves');
    lent[9] = (lent[9] ?? 0) ^ 0x01; // a holder breaking the read-only rule after the first check
    let reads = 0;
    let last = lent;
    while (store.stats().readCache.rechecksFailed === 0) {
      assert.ok(reads < extentReadCacheRecheckHits, 'found within one re-check interval');
      last = await store.read(17, 0, blockBytes);
      reads += 1;
    }
    // Hits 2..16 of the entry served it unchecked; hit 17 (16 after the first) re-checked it and
    // read the disk instead: the checked bytes, in a fresh buffer, cached afresh.
    assert.equal(reads, extentReadCacheRecheckHits, 'the re-check falls on every extentReadCacheRecheckHits-th hit');
    assert.deepEqual(last, blocks[0]);
    const fresh = await store.read(17, 0, blockBytes);
    assert.deepEqual(fresh, blocks[0]);
    assert.notEqual(fresh.buffer, lent.buffer, 'a fresh buffer, not the one written into');
    t.diagnostic(`changed body found on the ${reads}th read after the change; cache ${JSON.stringify(store.stats().readCache)}`);
    await store.close();
  });

  it('answers the CRC of what it returns: the block CRC for a whole block, computed otherwise', async () => {
    const { store, blocks } = await storeWithBlocks(3, 1000);
    const whole = Buffer.concat(blocks);
    for (const [offset, length] of [[1000, 1000], [1000, 1000], [10, 900], [500, 2000], [0, 3000]] as const) {
      const { data, crc32c: crc } = await store.readWithCrc(17, offset, length);
      assert.deepEqual(data, whole.subarray(offset, offset + length));
      assert.equal(crc, crc32c(data), `crc of [${offset}, +${length})`);
    }
    await store.close();
  });

  it('keeps blocks within its byte bound, least recently used out first, and skips blocks above the size cap', async () => {
    const { store, blocks } = await storeWithBlocks(4, blockBytes, 2 * blockBytes);
    for (let i = 0; i < 4; i++) assert.deepEqual(await store.read(17, i * blockBytes, blockBytes), blocks[i]);
    assert.equal(store.stats().readCache.bytes, 2 * blockBytes);
    await store.read(17, 3 * blockBytes, blockBytes);
    await store.read(17, 0, blockBytes);
    assert.deepEqual({ ...store.stats().readCache, bytes: 0 }, { hits: 1, misses: 5, rechecksFailed: 0, bytes: 0 });
    await store.close();
    const large = await storeWithBlocks(1, extentReadCacheBlockBytesMax + 1);
    await large.store.read(17, 0, extentReadCacheBlockBytesMax + 1);
    await large.store.read(17, 0, extentReadCacheBlockBytesMax + 1);
    assert.deepEqual(large.store.stats().readCache, { hits: 0, misses: 2, rechecksFailed: 0, bytes: 0 });
    await large.store.close();
  });

  it('blocks cut by a seal and blocks of a removed extent leave the cache', async () => {
    const { store } = await storeWithBlocks(3);
    for (let i = 0; i < 3; i++) await store.read(17, i * blockBytes, blockBytes);
    assert.equal(store.stats().readCache.bytes, 3 * blockBytes);
    await store.seal(17, 2 * blockBytes);
    assert.equal(store.stats().readCache.bytes, 2 * blockBytes);
    await store.remove(17);
    assert.equal(store.stats().readCache.bytes, 0);
    await store.close();
  });
});
