// DeadlineQueue (many deadlines behind one clock timer) against a model of Clock.setTimer: random
// sequences of add / cancel / advance on a ManualClock (fast-check); every entry runs once, at its
// due time, in (due, added) order, never after a cancel; the clock holds at most one timer, none
// when nothing is live; cancelled entries do not pile up. Then the same on the real clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeadlineQueue } from '../../../src/rpc/deadline-queue.ts';
import { ManualClock, SystemClock } from '../../../src/util/clock.ts';
import type { TimerHandle } from '../../../src/util/clock.ts';

type Command =
  | { readonly kind: 'add'; readonly delayMs: number }
  | { readonly kind: 'cancel'; readonly pick: number }
  | { readonly kind: 'advance'; readonly ms: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), delayMs: fc.oneof(fc.integer({ min: 0, max: 60 }), fc.constantFrom(0, 10, 10)) }),
  fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40 }) }),
);

interface ModelEntry {
  readonly id: number;
  readonly dueMs: number;
  readonly handle: TimerHandle;
  state: 'pending' | 'cancelled' | 'fired';
}

describe('DeadlineQueue', () => {
  it('behaves as one clock timer per entry (model, fast-check)', async () => {
    let runs = 0;
    let maxHeld = 0;
    await fc.assert(fc.asyncProperty(fc.array(command, { maxLength: 120 }), async (commands) => {
      runs += 1;
      const clock = new ManualClock(0);
      const queue = new DeadlineQueue(clock);
      const entries: ModelEntry[] = [];
      const fired: { id: number; atMs: number }[] = [];
      const expected: number[] = [];
      for (const step of commands) {
        if (step.kind === 'add') {
          const id = entries.length;
          const handle = queue.add(step.delayMs, () => fired.push({ id, atMs: clock.monotonicMs() }));
          entries.push({ id, dueMs: clock.monotonicMs() + step.delayMs, handle, state: 'pending' });
        } else if (step.kind === 'cancel') {
          const entry = entries[step.pick % Math.max(1, entries.length)];
          if (entry !== undefined) {
            entry.handle.cancel();
            if (entry.state === 'pending') entry.state = 'cancelled';
          }
        } else {
          const untilMs = clock.monotonicMs() + step.ms;
          const due = entries.filter((entry) => entry.state === 'pending' && entry.dueMs <= untilMs).sort((a, b) => (a.dueMs === b.dueMs ? a.id - b.id : a.dueMs - b.dueMs));
          for (const entry of due) {
            entry.state = 'fired';
            expected.push(entry.id);
          }
          await clock.advance(step.ms);
        }
        const live = entries.filter((entry) => entry.state === 'pending').length;
        assert.equal(queue.size, live, 'live entries');
        assert.ok(clock.pendingTimerCount() <= 1, 'at most one clock timer');
        if (live === 0) assert.equal(clock.pendingTimerCount(), 0, 'no clock timer while nothing is live');
        else assert.equal(clock.pendingTimerCount(), 1, 'a clock timer while an entry is live');
        assert.ok(queue.heldEntries <= Math.max(64, 2 * live) + 1, `held ${queue.heldEntries} for ${live} live`);
        maxHeld = Math.max(maxHeld, queue.heldEntries);
      }
      assert.deepEqual(fired.map((entry) => entry.id), expected, 'fired entries, in (due, added) order');
      for (const { id, atMs } of fired) assert.equal(atMs, entries[id]?.dueMs, `entry ${id} ran at its due time`);
    }), { numRuns: 300, seed: 20261122 });
    assert.ok(runs >= 300);
    assert.ok(maxHeld > 0);
  });

  it('holds a bounded heap when most entries are cancelled (the in-process call pattern)', () => {
    const clock = new ManualClock(0);
    const queue = new DeadlineQueue(clock);
    const open: TimerHandle[] = [];
    let maxHeld = 0;
    for (let call = 0; call < 100_000; call++) {
      open.push(queue.add(10_000, () => assert.fail('no deadline passes here')));
      // 64 calls in flight, answered in order: each answer cancels the oldest deadline.
      if (open.length > 64) open.shift()?.cancel();
      maxHeld = Math.max(maxHeld, queue.heldEntries);
    }
    for (const handle of open) handle.cancel();
    assert.equal(queue.size, 0);
    assert.equal(clock.pendingTimerCount(), 0);
    assert.ok(maxHeld <= 2 * 65 + 1, `held at most ${maxHeld} entries`);
  });

  it('runs what follows a throwing callback on the next timer', async () => {
    const clock = new ManualClock(0);
    const queue = new DeadlineQueue(clock);
    const ran: string[] = [];
    queue.add(5, () => { ran.push('a'); throw new Error('callback failed'); });
    queue.add(5, () => ran.push('b'));
    await assert.rejects(clock.advance(5), /callback failed/);
    await clock.advance(0);
    assert.deepEqual(ran, ['a', 'b']);
    assert.equal(queue.size, 0);
  });

  it('fires deadlines on the real clock, not before their time', async (t) => {
    const clock = new SystemClock();
    const queue = new DeadlineQueue(clock);
    const startMs = clock.monotonicMs();
    const delays = [40, 5, 20, 5, 80];
    const done = delays.map((delayMs) => new Promise<number>((resolve) => { queue.add(delayMs, () => resolve(clock.monotonicMs() - startMs)); }));
    const cancelled = queue.add(10, () => assert.fail('cancelled'));
    cancelled.cancel();
    const elapsed = await Promise.all(done);
    for (const [index, delayMs] of delays.entries()) assert.ok((elapsed[index] ?? 0) >= delayMs, `entry ${index}: ${elapsed[index]} ms for ${delayMs}`);
    assert.equal(queue.size, 0);
    t.diagnostic(`ran after ${elapsed.map((ms) => ms.toFixed(1)).join(' / ')} ms`);
  });
});
