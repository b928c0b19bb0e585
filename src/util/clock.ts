// Time as a dependency (STYLE.md principle 7): stream, partition and controller logic never call
// Date.now() or setTimeout directly, so a simulator can run them on a virtual clock.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch (wall clock, for timestamps). */
  nowMs(): number;
  /** Monotonic milliseconds, for deadlines and durations. */
  monotonicMs(): number;
  /** Resolves after `ms` milliseconds of this clock's time. */
  sleep(ms: number): Promise<void>;
  /** Calls `callback` once after `ms` milliseconds unless cancelled. */
  setTimer(ms: number, callback: () => void): TimerHandle;
}

export class SystemClock implements Clock {
  nowMs(): number {
    return Date.now();
  }

  monotonicMs(): number {
    return performance.now();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      setTimeout(resolve, ms);
    });
  }

  setTimer(ms: number, callback: () => void): TimerHandle {
    const timer = setTimeout(callback, ms);
    return { cancel: () => clearTimeout(timer) };
  }
}

interface PendingTimer {
  readonly dueMs: number;
  readonly sequence: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/**
 * A virtual clock for tests and the simulator: time moves only when advance() is called, and
 * timers fire in (due time, creation order) order, so runs are reproducible.
 */
export class ManualClock implements Clock {
  private currentMs: number;
  private sequence = 0;
  private readonly timers: PendingTimer[] = [];

  constructor(startMs = 1_700_000_000_000) {
    this.currentMs = startMs;
  }

  nowMs(): number {
    return this.currentMs;
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
    const timer: PendingTimer = { dueMs: this.currentMs + Math.max(0, ms), sequence: this.sequence++, callback, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }

  /** Number of timers not yet fired or cancelled. */
  pendingTimerCount(): number {
    return this.timers.filter((timer) => !timer.cancelled).length;
  }

  /** Moves time forward by `ms`, firing due timers in order; awaits microtasks between timers. */
  async advance(ms: number): Promise<void> {
    const targetMs = this.currentMs + ms;
    for (;;) {
      const next = this.nextDueTimer(targetMs);
      if (next === null) break;
      this.currentMs = next.dueMs;
      next.callback();
      await flushMicrotasks();
    }
    this.currentMs = targetMs;
    await flushMicrotasks();
  }

  private nextDueTimer(limitMs: number): PendingTimer | null {
    let best: PendingTimer | null = null;
    let bestIndex = -1;
    for (const [index, timer] of this.timers.entries()) {
      if (timer.cancelled || timer.dueMs > limitMs) continue;
      if (best === null || timer.dueMs < best.dueMs || (timer.dueMs === best.dueMs && timer.sequence < best.sequence)) {
        best = timer;
        bestIndex = index;
      }
    }
    if (best !== null) this.timers.splice(bestIndex, 1);
    this.timers.splice(0, this.timers.length, ...this.timers.filter((timer) => !timer.cancelled));
    return best;
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Resolves true once every promise settled, or false after timeoutMs of `clock`'s time, whichever
 * comes first; never rejects (a bounded wait for work that may hang: stops, drains). */
export async function settledWithin(clock: Clock, promises: readonly Promise<unknown>[], timeoutMs: number): Promise<boolean> {
  if (promises.length === 0) return true;
  let expire = (): void => undefined;
  const expired = new Promise<false>((resolve) => { expire = () => resolve(false); });
  const timer = clock.setTimer(timeoutMs, expire);
  const settled = await Promise.race([Promise.allSettled(promises).then(() => true), expired]);
  timer.cancel();
  return settled;
}
