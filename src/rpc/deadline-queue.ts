// DeadlineQueue: many deadlines behind one timer of the clock. Every in-process call (LocalNetwork)
// has a deadline that almost never fires: the answer comes first and the timer is cancelled.
// A setTimeout + clearTimeout pair per call cost ~3 µs of the main thread per hop (4 hops per Put
// Blob); here a deadline is a heap entry and the clock holds one timer, armed for the earliest
// live deadline.
//
// Invariants:
// - same contract as Clock.setTimer: an entry's callback runs once, at or after `delayMs` of the
//   clock's time from add(), unless cancelled first; cancel() after it ran is a no-op;
// - entries due at the same time run in the order they were added;
// - the clock holds at most one timer, and none while no entry is live (nothing keeps a process
//   alive, and a ManualClock shows no pending timer once every call has been answered);
// - memory: cancelled entries are dropped lazily, and the heap is rebuilt without them whenever
//   they are more than half of it, so it holds at most ~2× the live entries (+ a small floor).
// Fault model: a callback that throws propagates out of the clock's timer as a setTimeout callback
// would; entries behind it are still run when the timer is re-armed (it is re-armed first).
import type { Clock, TimerHandle } from '../util/clock.ts';

interface Entry extends TimerHandle {
  readonly dueMs: number;
  readonly sequence: number;
  callback: (() => void) | null;
}

/** Below this many entries the heap is never rebuilt only to drop cancelled ones. */
const compactFloor = 64;

export class DeadlineQueue {
  private readonly clock: Clock;
  private readonly heap: Entry[] = [];
  private live = 0;
  private sequence = 0;
  private armed: TimerHandle | null = null;
  private armedAtMs = Number.POSITIVE_INFINITY;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** Entries not yet run or cancelled. */
  get size(): number {
    return this.live;
  }

  /** Entries held, cancelled ones included (the memory bound's figure). */
  get heldEntries(): number {
    return this.heap.length;
  }

  /** Runs `callback` once, `delayMs` (clamped at 0) of the clock's time from now, unless cancelled. */
  add(delayMs: number, callback: () => void): TimerHandle {
    const dueMs = this.clock.monotonicMs() + Math.max(0, delayMs);
    const entry: Entry = { dueMs, sequence: this.sequence++, callback, cancel: () => this.cancel(entry) };
    this.push(entry);
    this.live += 1;
    if (dueMs < this.armedAtMs) this.arm(dueMs);
    return entry;
  }

  private cancel(entry: Entry): void {
    if (entry.callback === null) return;
    entry.callback = null;
    this.live -= 1;
    if (this.live === 0) {
      this.heap.length = 0;
      this.disarm();
    } else if (this.overCompactBound()) {
      this.compact();
    }
  }

  private overCompactBound(): boolean {
    return this.heap.length > compactFloor && this.heap.length > 2 * this.live;
  }

  /** The clock's timer: runs every entry due by now, in (due, added) order, then re-arms. */
  private fire(): void {
    this.armed = null;
    this.armedAtMs = Number.POSITIVE_INFINITY;
    const nowMs = this.clock.monotonicMs();
    for (let top = this.heap[0]; top !== undefined && (top.callback === null || top.dueMs <= nowMs); top = this.heap[0]) {
      this.pop();
      const callback = top.callback;
      if (callback === null) continue;
      top.callback = null;
      this.live -= 1;
      try {
        callback();
      } catch (error) {
        this.rearm();
        throw error;
      }
    }
    if (this.overCompactBound()) this.compact();
    else this.rearm();
  }

  /** Arms the clock for the earliest live entry (dropping cancelled ones at the top). */
  private rearm(): void {
    while (this.heap[0]?.callback === null) this.pop();
    const top = this.heap[0];
    if (top === undefined) this.disarm();
    else if (this.armed === null || top.dueMs !== this.armedAtMs) this.arm(top.dueMs);
  }

  private arm(dueMs: number): void {
    this.armed?.cancel();
    this.armedAtMs = dueMs;
    this.armed = this.clock.setTimer(Math.max(0, dueMs - this.clock.monotonicMs()), () => this.fire());
  }

  private disarm(): void {
    this.armed?.cancel();
    this.armed = null;
    this.armedAtMs = Number.POSITIVE_INFINITY;
  }

  private compact(): void {
    const kept = this.heap.filter((entry) => entry.callback !== null);
    this.heap.length = 0;
    for (const entry of kept) this.push(entry);
    this.rearm();
  }

  // ---- binary min-heap on (dueMs, sequence) -------------------------------------------------

  private push(entry: Entry): void {
    const heap = this.heap;
    let index = heap.length;
    heap.push(entry);
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex] as Entry;
      if (!before(entry, parent)) break;
      heap[index] = parent;
      index = parentIndex;
    }
    heap[index] = entry;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right] as Entry, heap[left] as Entry) ? right : left;
      if (!before(heap[child] as Entry, last)) break;
      heap[index] = heap[child] as Entry;
      index = child;
    }
    heap[index] = last;
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.sequence < b.sequence);
}
