// The in-memory ordering state of one extent on one extent node (docs/stream-protocol.md,
// "Append", steps 3–5): which offset comes next, which appends are in flight, which append ids
// were already applied, and who waits for a gap to fill.
//
//   offsets:  0 ───────── durable ─────────┬── in flight (pipelined writes) ─┬ nextOffset
//                                          │                                │
//   primary:  assigns offset = nextOffset, in arrival order, synchronously
//   secondary: writes only at offset == nextOffset; a call ahead of it waits (bounded) for the
//              gap to fill; a call below it is a retry (same appendId) or a mismatch
//
// Invariants:
// - local writes are issued to the ExtentStore strictly in offset order (it pipelines them and
//   resolves them in that order); after a failed write the log accepts no new ones;
// - an append id is remembered only after its ack promise resolved (all replicas durable on the
//   primary; the local write on a secondary), at most appendIdsRememberedMax per extent, oldest
//   forgotten first;
// - once failed or sealed, the log accepts no new writes (in memory: a restart forgets it, and
//   the stream manager's seal rule covers what the replicas then disagree on);
// - once frozen (a seal is being decided), no ack passed through unlessFrozen() resolves any more,
//   so nothing is acknowledged past the length this replica reported to the seal.
// Fault model: a local write may fail (EIO, failed fsync) or hang; a replicate call may arrive
// out of order, twice, or never.
import { appendIdsRememberedMax, extentQueuedAppendsMax } from '../constants.ts';
import { assert, assertByteCount } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import type { Body } from '../util/body-parts.ts';

export interface AppendResult {
  readonly offset: number;
  readonly length: number;
}

export type LocalWrite = (offset: number, data: Body) => Promise<void>;

type LogState =
  | { readonly kind: 'accepting' }
  | { readonly kind: 'failed'; readonly error: StorageError }
  | { readonly kind: 'sealed' };

interface GapWaiter {
  readonly offset: number;
  readonly wake: (error: StorageError | null) => void;
  readonly timer: TimerHandle;
}

export interface ExtentAppendLogOptions {
  readonly extentId: number;
  /** The extent's durable local length when the log is created. */
  readonly length: number;
  readonly write: LocalWrite;
  readonly clock: Clock;
}

export class ExtentAppendLog {
  readonly extentId: number;
  private readonly write: LocalWrite;
  private readonly clock: Clock;
  private nextOffsetValue: number;
  private state: LogState = { kind: 'accepting' };
  private lastWrite: Promise<void> = Promise.resolve();
  private lastAck: Promise<unknown> = Promise.resolve();
  private readonly remembered = new Map<string, AppendResult>();
  private readonly inFlight = new Map<string, { readonly offset: number; readonly ack: Promise<AppendResult> }>();
  private readonly waiters = new Set<GapWaiter>();
  /** A seal is being decided: no new write, and no ack for a write that completes from now on. */
  private frozen = false;

  constructor(options: ExtentAppendLogOptions) {
    assertByteCount(options.length, 'extent length');
    this.extentId = options.extentId;
    this.write = options.write;
    this.clock = options.clock;
    this.nextOffsetValue = options.length;
  }

  get nextOffset(): number {
    return this.nextOffsetValue;
  }

  get stateKind(): LogState['kind'] {
    return this.state.kind;
  }

  /** The result of an append id already applied or in flight, or null. */
  lookup(appendId: string): { readonly offset: number; readonly ack: Promise<AppendResult> } | null {
    const done = this.remembered.get(appendId);
    if (done !== undefined) return { offset: done.offset, ack: Promise.resolve(done) };
    return this.inFlight.get(appendId) ?? null;
  }

  /** Throws extent.failed / extent.sealed / rpc.overloaded unless a new append may start. */
  checkAccepting(): void {
    const state = this.state;
    if (state.kind === 'failed') {
      throw new StorageError('extent.failed', `extent ${this.extentId} stopped accepting appends after a replica failure`, { cause: state.error });
    }
    if (state.kind === 'sealed') throw new StorageError('extent.sealed', `extent ${this.extentId} is sealed`);
    if (this.inFlight.size + this.waiters.size >= extentQueuedAppendsMax) {
      throw new StorageError('rpc.overloaded', `extent ${this.extentId} has ${extentQueuedAppendsMax} appends queued`, { retryable: true });
    }
  }

  /** Reserves the next offset and issues the local write after the writes before it. */
  writeNext(data: Body): { readonly offset: number; readonly local: Promise<void> } {
    this.checkAccepting();
    const offset = this.nextOffsetValue;
    this.nextOffsetValue = offset + data.length;
    // Issued now, in offset order: the ExtentStore reserves synchronously and pipelines appends
    // in call order, resolving them in offset order (its own invariant).
    const local = this.write(offset, data);
    this.lastWrite = local;
    local.catch((error: unknown) => this.fail(asStorageError(error)));
    this.wakeWaiters();
    return { offset, local };
  }

  /** Records `ack` as the outcome of `appendId` at `offset`: remembered once it resolves. */
  track(appendId: string, offset: number, ack: Promise<AppendResult>): void {
    assert(!this.inFlight.has(appendId) && !this.remembered.has(appendId), `append id ${appendId} tracked twice`);
    this.inFlight.set(appendId, { offset, ack });
    ack.then(
      (result) => {
        this.inFlight.delete(appendId);
        this.remember(appendId, result);
      },
      () => this.inFlight.delete(appendId),
    );
  }

  /**
   * Answers acks in offset order: the returned promise resolves with `ack`'s result only after
   * the ack before it settled, so a client never sees offset N+1 acknowledged before offset N.
   */
  inOrder(ack: Promise<AppendResult>): Promise<AppendResult> {
    const previous = this.lastAck;
    const ordered = ack.then(async (result) => {
      await previous.catch(() => undefined);
      return result;
    });
    this.lastAck = ordered.catch(() => undefined);
    return ordered;
  }

  /** Waits (bounded) until nextOffset reaches `offset`; rejects if the log fails or seals. */
  async waitForOffset(offset: number, waitMs: number): Promise<void> {
    if (this.nextOffsetValue >= offset) return;
    this.checkAccepting();
    const error = await new Promise<StorageError | null>((resolve) => {
      const waiter: GapWaiter = {
        offset,
        wake: (value) => {
          waiter.timer.cancel();
          this.waiters.delete(waiter);
          resolve(value);
        },
        timer: this.clock.setTimer(waitMs, () => {
          waiter.wake(new StorageError('extent.offset_mismatch', `extent ${this.extentId}: gap before offset ${offset} not filled within ${waitMs} ms`, {
            context: { offset, nextOffset: this.nextOffsetValue },
          }));
        }),
      };
      this.waiters.add(waiter);
    });
    if (error !== null) throw error;
  }

  /** Stops all appends: waits for issued local writes to settle (their outcome is irrelevant). */
  async seal(): Promise<void> {
    this.state = { kind: 'sealed' };
    this.wakeWaiters();
    await this.lastWrite.catch(() => undefined);
    this.inFlight.clear();
  }

  /**
   * A seal is being decided from the replicas' lengths (docs/stream-protocol.md, "Seal", step 1):
   * nothing more may be acknowledged through this replica, or an ack given after its length was
   * reported could lie past the sealed length and be cut off. Stops new writes and makes every
   * ack guarded by unlessFrozen() that has not resolved yet fail.
   */
  freeze(): void {
    this.frozen = true;
    this.fail(new StorageError('extent.failed', `extent ${this.extentId} is being sealed`));
  }

  /** `ack`, unless the log froze before it resolved (then extent.failed: nothing was promised). */
  unlessFrozen(ack: Promise<AppendResult>): Promise<AppendResult> {
    return ack.then((result) => {
      if (this.frozen) throw new StorageError('extent.failed', `extent ${this.extentId} froze for a seal before this append was acknowledged`);
      return result;
    });
  }

  fail(error: StorageError): void {
    if (this.state.kind !== 'accepting') return;
    this.state = { kind: 'failed', error };
    this.wakeWaiters();
  }

  /** Appends remembered, for findAppend after a seal. */
  rememberedResult(appendId: string): AppendResult | null {
    return this.remembered.get(appendId) ?? null;
  }

  private remember(appendId: string, result: AppendResult): void {
    this.remembered.set(appendId, result);
    if (this.remembered.size <= appendIdsRememberedMax) return;
    const oldest = this.remembered.keys().next();
    if (oldest.done !== true) this.remembered.delete(oldest.value);
  }

  private wakeWaiters(): void {
    const state = this.state;
    for (const waiter of [...this.waiters]) {
      if (state.kind === 'sealed') waiter.wake(new StorageError('extent.sealed', `extent ${this.extentId} was sealed`));
      else if (state.kind === 'failed') waiter.wake(new StorageError('extent.failed', `extent ${this.extentId} failed`, { cause: state.error }));
      else if (this.nextOffsetValue >= waiter.offset) waiter.wake(null);
    }
  }
}

export function asStorageError(error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  return new StorageError('rpc.remote', error instanceof Error ? error.message : String(error), { cause: error });
}
