// AccountRefresher: a cluster front end's background re-read of the accounts (docs/accounts.md,
// "Clusters"). Every intervalMs it calls AccountStore.refresh(), so accounts created and keys
// rotated by `kura account --etcd` (or by another front end) are served within one interval.
//
// Invariants: at most one refresh at a time (the next is timed from the end of the last); a
// failed refresh keeps the accounts already loaded and is logged (first failure, then every
// failuresPerLog-th, then the recovery); stop() cancels the timer and waits for a refresh in
// flight, so nothing runs after it returns.
// Fault model: the partition layer may be unreachable or slow for a while (refresh rejects or
// takes long): requests keep using the loaded keys.
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../util/clock.ts';
import type { AccountStore } from './account-store.ts';
import type { BackgroundTask } from './frontend-assembly.ts';

const failuresPerLog = 20;

export class AccountRefresher implements BackgroundTask {
  private readonly accounts: AccountStore;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private timer: TimerHandle | null = null;
  private inFlight: Promise<void> | null = null;
  private stopped = true;
  private failures = 0;

  constructor(options: { readonly accounts: AccountStore; readonly clock: Clock; readonly logger: Logger; readonly intervalMs: number }) {
    this.accounts = options.accounts;
    this.clock = options.clock;
    this.logger = options.logger.child({ component: 'account-refresher' });
    this.intervalMs = options.intervalMs;
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    await this.inFlight;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimer(this.intervalMs, () => {
      this.timer = null;
      this.inFlight = this.refreshOnce().finally(() => {
        this.inFlight = null;
        this.schedule();
      });
    });
  }

  private async refreshOnce(): Promise<void> {
    try {
      await this.accounts.refresh();
      if (this.failures > 0) this.logger.info({ failures: this.failures }, 'accounts re-read again');
      this.failures = 0;
    } catch (error) {
      if (this.failures % failuresPerLog === 0) {
        this.logger.warn({ failures: this.failures + 1, err: error }, 'accounts not re-read: serving the accounts loaded before');
      }
      this.failures++;
    }
  }
}
