// Deadlines for calls that do not go through the Network (an in-process StreamManagerApi, a
// local wait): every wait in the stream layer is bounded in time (STYLE.md principle 2).
//
// Invariant: the returned promise settles exactly once, no later than `deadlineMs` of the
// injected clock after the call; the timer is cancelled as soon as `work` settles.
// Fault model: `work` may never settle (a hung peer); the caller then gets rpc.timeout, and the
// work may or may not have been applied (exactly as a network timeout).
import type { Clock } from '../util/clock.ts';
import { assert } from '../util/assert.ts';
import { StorageError } from '../util/errors.ts';

export function withDeadline<T>(clock: Clock, deadlineMs: number, what: string, work: Promise<T>): Promise<T> {
  assert(Number.isFinite(deadlineMs) && deadlineMs >= 0, `deadline of ${what} must be a finite non-negative number`);
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimer(deadlineMs, () => {
      reject(new StorageError('rpc.timeout', `${what} did not answer within ${deadlineMs} ms`, { retryable: true, context: { deadlineMs } }));
    });
    work.then(
      (value) => {
        timer.cancel();
        resolve(value);
      },
      (error: unknown) => {
        timer.cancel();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Milliseconds left until `deadlineAtMs` on `clock`, never negative. */
export function remainingMs(clock: Clock, deadlineAtMs: number): number {
  return Math.max(0, deadlineAtMs - clock.monotonicMs());
}
