// ByteSemaphore: bounded in-flight bytes, FIFO fairness, fail-fast, abandoning a wait.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteSemaphore } from '../../../src/util/byte-semaphore.ts';
import { AssertionFailure } from '../../../src/util/assert.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';

async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('ByteSemaphore', { timeout: 10_000 }, () => {
  it('never lends more than its capacity', () => {
    const semaphore = new ByteSemaphore({ capacityBytes: 100, waitersMax: 0 });
    assert.ok(semaphore.tryAcquire(60));
    assert.ok(!semaphore.tryAcquire(41));
    assert.ok(semaphore.tryAcquire(40));
    assert.equal(semaphore.availableBytes, 0);
    semaphore.release(100);
    assert.equal(semaphore.inUseBytes, 0);
    assert.throws(() => semaphore.release(1), AssertionFailure);
  });

  it('fails fast with rpc.overloaded (retryable) when it may not wait', async () => {
    const semaphore = new ByteSemaphore({ capacityBytes: 100, waitersMax: 0 });
    await semaphore.acquire(80);
    await assert.rejects(semaphore.acquire(30), (error: unknown) => isStorageError(error, 'rpc.overloaded') && error.retryable);
    await assert.rejects(new ByteSemaphore({ capacityBytes: 10, waitersMax: 5 }).acquire(11), (error: unknown) => isStorageError(error, 'rpc.overloaded'));
  });

  it('grants waiters in FIFO order: a large waiter is not overtaken by small ones', async () => {
    const semaphore = new ByteSemaphore({ capacityBytes: 100, waitersMax: 10 });
    await semaphore.acquire(90);
    const order: string[] = [];
    const large = semaphore.acquire(50).then(() => order.push('large'));
    const small = semaphore.acquire(5).then(() => order.push('small'));
    assert.ok(!semaphore.tryAcquire(5), 'tryAcquire does not barge past waiters');
    await settled();
    assert.deepEqual(order, []);
    semaphore.release(45); // 55 free: the large waiter first, then the small one fits too
    await Promise.all([large, small]);
    assert.deepEqual(order, ['large', 'small']);
    assert.equal(semaphore.inUseBytes, 100);
  });

  it('bounds the number of waiters', async () => {
    const semaphore = new ByteSemaphore({ capacityBytes: 10, waitersMax: 2 });
    await semaphore.acquire(10);
    const waiting = [semaphore.acquire(1), semaphore.acquire(1)];
    await assert.rejects(semaphore.acquire(1), (error: unknown) => isStorageError(error, 'rpc.overloaded'));
    assert.equal(semaphore.waiterCount, 2);
    semaphore.release(10);
    await Promise.all(waiting);
    assert.equal(semaphore.inUseBytes, 2);
  });

  it('lets a waiter abandon its wait, unblocking the ones behind it', async () => {
    const semaphore = new ByteSemaphore({ capacityBytes: 10, waitersMax: 10 });
    await semaphore.acquire(5);
    const controller = new AbortController();
    const big = semaphore.acquire(10, { signal: controller.signal });
    const small = semaphore.acquire(5);
    controller.abort(new Error('deadline'));
    await assert.rejects(big, /deadline/);
    await small;
    assert.equal(semaphore.inUseBytes, 10);
    assert.equal(semaphore.waiterCount, 0);
    const aborted = AbortSignal.abort();
    await assert.rejects(semaphore.acquire(1, { signal: aborted }));
  });

  it('keeps its invariants under a random workload', async (t) => {
    const random = new SeededRandom(2024);
    const semaphore = new ByteSemaphore({ capacityBytes: 1000, waitersMax: 64 });
    const held: number[] = [];
    let granted = 0;
    let refused = 0;
    for (let step = 0; step < 5000; step++) {
      if (random.next() < 0.55) {
        const bytes = 1 + random.int(400);
        semaphore.acquire(bytes).then(() => { held.push(bytes); granted += 1; }, () => { refused += 1; });
      } else if (held.length > 0) {
        semaphore.release(held.splice(random.int(held.length), 1)[0] ?? 0);
      }
      await settled();
      assert.ok(semaphore.inUseBytes <= semaphore.capacityBytes);
      assert.equal(semaphore.inUseBytes, held.reduce((sum, bytes) => sum + bytes, 0));
    }
    t.diagnostic(`${granted} granted, ${refused} refused, ${semaphore.waiterCount} still waiting`);
    assert.ok(granted > 1000);
  });
});
