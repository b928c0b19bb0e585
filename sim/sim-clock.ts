// The simulator's virtual clock (docs/simulation.md, "Driver"): one monotonic timeline for the
// whole stamp, timers at whole milliseconds fired in (due time, creation order), and a driver
// that fires the earliest timer only when nothing else can run. Each simulated process sees it
// through a ProcessClock (sim/process.ts) with its own wall-clock offset, so a clock jump moves
// one process's nowMs() and never anyone's monotonicMs().
//
// Invariants: time never goes backwards; timers due at the same millisecond fire in creation
// order; every due time is an integer (ExtentStore stores integral timestamps); the heap holds
// cancelled timers until they surface (lazy deletion), which changes nothing observable.
import { assert } from '../src/util/assert.ts';
import type { Clock, TimerHandle } from '../src/util/clock.ts';

/** Wall-clock milliseconds at virtual time zero (a fixed date: runs must not depend on today). */
export const simEpochWallMs = 1_767_225_600_000;

interface Timer {
  readonly dueMs: number;
  readonly sequence: number;
  readonly callback: () => void;
  cancelled: boolean;
}

export class SimClock implements Clock {
  private currentMs = 0;
  private sequence = 0;
  private readonly heap: Timer[] = [];
  private liveTimers = 0;
  timersFired = 0;

  nowMs(): number {
    return simEpochWallMs + this.currentMs;
  }

  monotonicMs(): number {
    return this.currentMs;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.setTimer(ms, resolve);
    });
  }

  setTimer(ms: number, callback: () => void): TimerHandle {
    const delayMs = Number.isFinite(ms) ? Math.max(0, Math.ceil(ms)) : 0;
    const timer: Timer = { dueMs: this.currentMs + delayMs, sequence: this.sequence++, callback, cancelled: false };
    this.push(timer);
    this.liveTimers += 1;
    return {
      cancel: () => {
        if (timer.cancelled) return;
        timer.cancelled = true;
        this.liveTimers -= 1;
      },
    };
  }

  /** Timers neither fired nor cancelled. */
  pendingTimerCount(): number {
    return this.liveTimers;
  }

  /** Due time of the earliest live timer, or null. */
  nextDueMs(): number | null {
    this.dropCancelled();
    return this.heap[0]?.dueMs ?? null;
  }

  /** Moves time to the earliest live timer and fires it; false if there is none. */
  fireNext(): boolean {
    this.dropCancelled();
    const timer = this.pop();
    if (timer === undefined) return false;
    assert(timer.dueMs >= this.currentMs, 'virtual time never goes backwards');
    this.currentMs = timer.dueMs;
    timer.cancelled = true;
    this.liveTimers -= 1;
    this.timersFired += 1;
    timer.callback();
    return true;
  }

  private dropCancelled(): void {
    while (this.heap[0]?.cancelled === true) this.pop();
  }

  private push(timer: Timer): void {
    const heap = this.heap;
    heap.push(timer);
    for (let index = heap.length - 1; index > 0;) {
      const parent = (index - 1) >> 1;
      if (!before(heap[index], heap[parent])) break;
      swap(heap, index, parent);
      index = parent;
    }
  }

  private pop(): Timer | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    for (let index = 0; ;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let best = index;
      if (left < heap.length && before(heap[left], heap[best])) best = left;
      if (right < heap.length && before(heap[right], heap[best])) best = right;
      if (best === index) break;
      swap(heap, index, best);
      index = best;
    }
    return top;
  }
}

function before(a: Timer | undefined, b: Timer | undefined): boolean {
  assert(a !== undefined && b !== undefined, 'heap indexes are in range');
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.sequence < b.sequence);
}

function swap(heap: Timer[], i: number, j: number): void {
  const a = heap[i];
  const b = heap[j];
  assert(a !== undefined && b !== undefined, 'heap indexes are in range');
  heap[i] = b;
  heap[j] = a;
}

/** Resolves after the microtask queue has drained (nothing in the simulation uses real I/O). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => {
    setImmediate(resolve);
  });
}
