// ReadBufferPool (P4: an optimisation with a model and an off switch). The model: every buffer
// handed out is owned by exactly one holder until that holder releases it; a holder writes its
// own tag over its buffer and checks it before releasing, so any buffer handed to two live
// holders at once (reuse before release, a double release, a view released early) shows up as a
// tag overwritten by the other holder. Also: the view rule, the bound, and the off switch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ReadBufferPool } from '../../../src/util/read-buffer-pool.ts';

const lengthMin = 1024;

describe('ReadBufferPool', () => {
  it('reuses a released buffer, and only one released whole by its last view', () => {
    const pool = new ReadBufferPool({ bytesMax: 16 * 1024, lengthMin });
    const first = pool.acquire(4096);
    const body = first.subarray(64);
    assert.equal(pool.release(first.subarray(0, 64)), false, 'a view short of the end is not a release');
    assert.equal(pool.release(body), true);
    assert.equal(pool.release(body), false, 'a second release is ignored');
    const second = pool.acquire(4096);
    assert.equal(second.buffer, first.buffer, 'the released buffer is handed out again');
    const third = pool.acquire(4096);
    assert.notEqual(third.buffer, first.buffer, 'a buffer out is never handed out twice');
    assert.equal(pool.release(Buffer.alloc(4096)), false, 'a buffer the pool never handed out is ignored');
    assert.deepEqual({ ...pool.stats, ignored: 0 }, { reused: 1, allocated: 2, released: 1, ignored: 0, freeBytes: 0 });
  });

  it('pools only reads of at least lengthMin, keeps at most bytesMax, and switches off', () => {
    const pool = new ReadBufferPool({ bytesMax: 8192, lengthMin });
    const small = pool.acquire(100);
    assert.equal(pool.release(small), false, 'small reads are plain allocations');
    const held = [pool.acquire(4096), pool.acquire(4096), pool.acquire(4096)];
    assert.deepEqual(held.map((buffer) => pool.release(buffer)), [true, true, false], 'the third does not fit in 8 KiB');
    assert.equal(pool.stats.freeBytes, 8192);
    pool.setBytesMax(0);
    assert.equal(pool.stats.freeBytes, 0, 'off empties the free list');
    const off = pool.acquire(4096);
    assert.equal(pool.release(off), false, 'off: nothing is pooled');
    assert.ok(held.every((buffer) => buffer.buffer !== off.buffer));
  });

  it('model: no buffer is ever held by two holders, whatever the order of acquires and releases', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ acquire: fc.boolean(), length: fc.constantFrom(2048, 4096), pick: fc.nat(), split: fc.boolean() }), { minLength: 1, maxLength: 200 }),
      fc.integer({ min: 0, max: 6 }).map((count) => count * 4096),
      (steps, bytesMax) => {
        const pool = new ReadBufferPool({ bytesMax, lengthMin });
        const holders: { tag: number; buffer: Buffer }[] = [];
        let nextTag = 1;
        for (const step of steps) {
          if (step.acquire || holders.length === 0) {
            const buffer = pool.acquire(step.length);
            assert.equal(buffer.length, step.length);
            const tag = nextTag++;
            buffer.fill(tag & 0xff);
            buffer.writeUInt32LE(tag, 0);
            holders.push({ tag, buffer });
            continue;
          }
          const [holder] = holders.splice(step.pick % holders.length, 1);
          assert.ok(holder !== undefined);
          assert.equal(holder.buffer.readUInt32LE(0), holder.tag, 'nobody else wrote into a buffer while it was held');
          assert.ok(holder.buffer.subarray(4).every((byte) => byte === (holder.tag & 0xff)));
          // A holder that split its buffer releases it with the view that ends it, as the front end's last write does.
          if (step.split) pool.release(holder.buffer.subarray(0, 100));
          pool.release(step.split ? holder.buffer.subarray(100) : holder.buffer);
        }
        for (const holder of holders) assert.equal(holder.buffer.readUInt32LE(0), holder.tag);
        assert.ok(pool.stats.freeBytes <= bytesMax);
      },
    ), { numRuns: 300 });
  });
});
