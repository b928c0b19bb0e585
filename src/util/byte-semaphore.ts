// A counting semaphore over bytes (STYLE.md: bound in-flight bytes with a semaphore). A server
// acquires a request's size before handling it and releases it after, so the memory held by
// in-flight requests never passes capacityBytes.
//
// Invariants:
// - 0 <= inUseBytes <= capacityBytes at all times.
// - FIFO fair: a request is granted only when every earlier waiter has been granted, so a large
//   request is never starved by a stream of small ones (no barging, even by tryAcquire).
// - At most waitersMax callers wait; waitersMax = 0 makes acquire() fail fast.
//
// Fault model: none of its own; the failure it reports (rpc.overloaded, retryable) is the
// operating error "too much work in flight". Releasing more than was acquired is a programmer
// error and asserts.
import { assert, assertByteCount } from './assert.ts';
import { StorageError } from './errors.ts';

export interface ByteSemaphoreOptions {
  readonly capacityBytes: number;
  /** How many acquire() calls may wait; 0 = fail fast when the bytes are not free now. */
  readonly waitersMax: number;
}

export interface AcquireOptions {
  /** Abandons the wait (the promise rejects with the signal's reason). */
  readonly signal?: AbortSignal;
}

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
  settled: boolean;
}

export class ByteSemaphore {
  readonly capacityBytes: number;
  readonly waitersMax: number;
  private used = 0;
  /** FIFO queue: live entries are waiters[head..]; the array is compacted as head grows. */
  private waiters: Waiter[] = [];
  private head = 0;
  /** Waiters not yet granted or abandoned (abandoned ones stay queued until they reach the head). */
  private waiting = 0;

  constructor(options: ByteSemaphoreOptions) {
    assertByteCount(options.capacityBytes, 'capacityBytes');
    assert(Number.isSafeInteger(options.waitersMax) && options.waitersMax >= 0, 'waitersMax must be a non-negative integer');
    this.capacityBytes = options.capacityBytes;
    this.waitersMax = options.waitersMax;
  }

  get inUseBytes(): number {
    return this.used;
  }

  get availableBytes(): number {
    return this.capacityBytes - this.used;
  }

  get waiterCount(): number {
    return this.waiting;
  }

  /** Takes `bytes` now if they are free and nobody is waiting; never waits. */
  tryAcquire(bytes: number): boolean {
    assertByteCount(bytes, 'bytes');
    if (this.waiterCount > 0 || bytes > this.availableBytes) return false;
    this.used += bytes;
    return true;
  }

  /** Takes `bytes`, waiting in FIFO order if needed; rejects rpc.overloaded if it may not wait. */
  acquire(bytes: number, options: AcquireOptions = {}): Promise<void> {
    if (this.tryAcquire(bytes)) return Promise.resolve();
    if (bytes > this.capacityBytes) {
      return Promise.reject(overloaded(`${bytes} bytes exceed the in-flight capacity ${this.capacityBytes}`, bytes, this));
    }
    if (this.waiterCount >= this.waitersMax) {
      return Promise.reject(overloaded(`${bytes} bytes not free and ${this.waiterCount} callers already waiting`, bytes, this));
    }
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, reject, signal, settled: false, onAbort: () => this.abandon(waiter) };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
      this.waiting += 1;
    });
  }

  release(bytes: number): void {
    assertByteCount(bytes, 'bytes');
    assert(bytes <= this.used, `release of ${bytes} bytes exceeds the ${this.used} in use`);
    this.used -= bytes;
    this.grant();
  }

  /** Grants waiters in order while the first one fits. */
  private grant(): void {
    for (;;) {
      const first = this.waiters[this.head];
      if (first === undefined) break;
      if (first.settled) {
        this.head += 1;
        continue;
      }
      if (first.bytes > this.availableBytes) break;
      this.head += 1;
      this.used += first.bytes;
      this.settle(first);
      first.resolve();
    }
    this.compact();
  }

  private abandon(waiter: Waiter): void {
    if (waiter.settled) return;
    this.settle(waiter);
    waiter.reject(waiter.signal === undefined ? new Error('aborted') : abortReason(waiter.signal));
    // The abandoned waiter may have been blocking smaller ones behind it.
    this.grant();
  }

  private settle(waiter: Waiter): void {
    waiter.settled = true;
    this.waiting -= 1;
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }

  private compact(): void {
    if (this.head === this.waiters.length) {
      this.waiters = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.head);
      this.head = 0;
    }
  }
}

function overloaded(message: string, bytes: number, semaphore: ByteSemaphore): StorageError {
  return new StorageError('rpc.overloaded', message, {
    retryable: true,
    context: { bytes, inUseBytes: semaphore.inUseBytes, capacityBytes: semaphore.capacityBytes },
  });
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted', { cause: reason });
}
