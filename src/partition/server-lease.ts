// A MetaStore lease held by one process (a partition server, or the partition manager leader),
// with the local rule that says when it is *confirmed valid* (docs/partition-protocol.md,
// "Leases"):
//
//   validUntil = tSend + ttl − margin    (tSend: monotonic time the grant / last successful
//                                         keepAlive was sent, on this process's clock)
//
// The store expires the lease no earlier than it received that call + ttl ≥ tSend + ttl, so while
// isValid() is true no other process can have been given what this lease protects (with clock
// rates within margin/ttl of each other).
//
// Invariants: validUntil only moves forward, and only after a keepAlive that succeeded; once
// lost (expired, revoked, or validUntil passed) the lease is never valid again — the holder
// takes a new lease. Renewals are sent every renewMs on the injected clock, one at a time.
// Fault model: keepAlive may fail (meta.unavailable: retried at the next renewal while time
// remains; meta.lease_expired: lost at once) or hang (bounded: a renewal whose answer comes after
// validUntil changes nothing, it was sent too long ago).
import type { MetaStore } from '../metastore/meta-store.ts';
import { assert } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { isStorageError } from '../util/errors.ts';

export interface ServerLeaseOptions {
  readonly metaStore: MetaStore;
  readonly clock: Clock;
  readonly ttlMs: number;
  readonly renewMs: number;
  readonly marginMs: number;
  /** Called once, when the lease stops being confirmed valid; not when its holder releases it
   * (a stop is not a loss: no warning, no re-registration, no leasesLost count). */
  readonly onLost: () => void;
}

export class ServerLease {
  readonly id: number;
  private readonly options: ServerLeaseOptions;
  private validUntilMs: number;
  private lost = false;
  private renewTimer: TimerHandle | null = null;
  private expiryTimer: TimerHandle | null = null;
  private renewing = false;
  private renewalsStopped = false;

  private constructor(options: ServerLeaseOptions, id: number, sentAtMs: number) {
    this.options = options;
    this.id = id;
    this.validUntilMs = sentAtMs + options.ttlMs - options.marginMs;
  }

  /** Grants a lease and starts renewing it. */
  static async grant(options: ServerLeaseOptions): Promise<ServerLease> {
    assert(options.marginMs > 0 && options.marginMs < options.ttlMs && options.renewMs < options.ttlMs - options.marginMs, 'lease timing: margin < ttl, renew < ttl − margin');
    const sentAtMs = options.clock.monotonicMs();
    const id = await options.metaStore.grantLease(options.ttlMs);
    const lease = new ServerLease(options, id, sentAtMs);
    lease.armExpiry();
    lease.scheduleRenewal();
    return lease;
  }

  /** True while no other process can hold what this lease protects. */
  isValid(): boolean {
    if (this.lost) return false;
    if (this.options.clock.monotonicMs() < this.validUntilMs) return true;
    this.markLost();
    return false;
  }

  /** Remaining confirmed time (0 once lost). */
  remainingMs(): number {
    return this.isValid() ? this.validUntilMs - this.options.clock.monotonicMs() : 0;
  }

  /** Stops renewing and revokes the lease (best effort: it also just expires). */
  async release(): Promise<void> {
    this.markLost({ notify: false });
    try {
      await this.options.metaStore.revokeLease(this.id);
    } catch {
      // Expiry does the same a TTL later.
    }
  }

  /** Stops renewing without telling the store (tests: a process that froze or was cut off). */
  abandon(): void {
    this.markLost();
  }

  /** Tests: renewals stop reaching the store; the lease stays confirmed until validUntil passes. */
  stopRenewing(): void {
    this.renewalsStopped = true;
    this.renewTimer?.cancel();
  }

  private scheduleRenewal(): void {
    if (this.lost || this.renewalsStopped) return;
    this.renewTimer = this.options.clock.setTimer(this.options.renewMs, () => {
      void this.renew();
    });
  }

  private async renew(): Promise<void> {
    if (this.lost || this.renewing) return;
    this.renewing = true;
    const sentAtMs = this.options.clock.monotonicMs();
    try {
      await this.options.metaStore.keepAlive(this.id);
      if (!this.lost) {
        this.validUntilMs = Math.max(this.validUntilMs, sentAtMs + this.options.ttlMs - this.options.marginMs);
        this.armExpiry();
      }
    } catch (error) {
      if (isStorageError(error, 'meta.lease_expired')) this.markLost();
      // Anything else: the next renewal tries again while validUntil has not passed.
    } finally {
      this.renewing = false;
      this.scheduleRenewal();
    }
  }

  /** A timer at validUntil, so holders stop serving at that instant even with no request. */
  private armExpiry(): void {
    this.expiryTimer?.cancel();
    const waitMs = Math.max(0, this.validUntilMs - this.options.clock.monotonicMs());
    this.expiryTimer = this.options.clock.setTimer(waitMs, () => {
      if (this.isValid()) this.armExpiry(); // a timer that fired early: wait the rest
    });
  }

  private markLost(how: { readonly notify: boolean } = { notify: true }): void {
    if (this.lost) return;
    this.lost = true;
    this.renewTimer?.cancel();
    this.expiryTimer?.cancel();
    if (how.notify) this.options.onLost();
  }
}
