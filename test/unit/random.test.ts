import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../src/util/random.ts';
import { ManualClock } from '../../src/util/clock.ts';

describe('SeededRandom', () => {
  it('gives the same sequence for the same seed and different ones for different seeds', () => {
    const a = new SeededRandom(42n);
    const b = new SeededRandom(42n);
    const c = new SeededRandom(43n);
    const seqA = Array.from({ length: 100 }, () => a.int(1_000_000));
    const seqB = Array.from({ length: 100 }, () => b.int(1_000_000));
    const seqC = Array.from({ length: 100 }, () => c.int(1_000_000));
    assert.deepEqual(seqA, seqB);
    assert.notDeepEqual(seqA, seqC);
  });

  it('is roughly uniform over 10 buckets', () => {
    const random = new SeededRandom(7);
    const buckets = new Array<number>(10).fill(0);
    const draws = 100_000;
    for (let i = 0; i < draws; i++) buckets[random.int(10)]! += 1;
    for (const count of buckets) assert.ok(Math.abs(count - draws / 10) < draws / 100, `bucket count ${count}`);
  });
});

describe('ManualClock', () => {
  it('fires timers in due order only when advanced', async () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    clock.setTimer(20, () => fired.push('b'));
    clock.setTimer(10, () => fired.push('a'));
    const cancelled = clock.setTimer(15, () => fired.push('x'));
    cancelled.cancel();
    await clock.advance(5);
    assert.deepEqual(fired, []);
    await clock.advance(20);
    assert.deepEqual(fired, ['a', 'b']);
    assert.equal(clock.nowMs(), 25);
  });
});
