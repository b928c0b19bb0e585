// The front-end role (docs/simulation.md, "What runs"): one simulated process running the Blob
// service's logic (PartitionBlobBackend over its own PartitionClient), as a `kura frontend` does.
// The blob workload calls it as a client would call over HTTP: request() runs the operation as
// this process's code, so a failpoint with the `crash` action inside the blob service (the
// container fence's blob.commit.*) or a random crash of the role kills this process mid-request.
//
// Invariants: a request in flight when the process dies fails at once with a lost connection
// (indeterminate for the client: the operation may or may not have committed), never later with
// the dead process's answer; a request while the role is down is refused (nothing was sent, so
// nothing is applied); a restart builds a new PartitionClient and backend from nothing (the front
// end keeps no durable state; its in-memory hints and caches die with it). The fault injector can
// also arm a crash right after the role's n-th commit (crashAfterCommits): the front end dies with
// the commit applied and its answer unseen, before whatever the operation does next (a sweep, a
// cleanup), the narrowest window a random crash rarely hits; and a crash in a sweep intent's windows
// (crashAtIntents: right after the intent, or right after the commit it guards).
import type { BlobScanOptions, BlobTables } from '../src/frontend/blob-service/blob-tables.ts';
import { PartitionBlobBackend } from '../src/frontend/blob-service/partition-blob-backend.ts';
import { sweepIntentPrefix } from '../src/frontend/blob-service/keys.ts';
import { PartitionClient } from '../src/partition/partition-client.ts';
import type { CommitResult, LiveRow, PartitionOp, ScanItem } from '../src/partition/partition.ts';
import type { Body } from '../src/util/body-parts.ts';
import type { DataRef } from '../src/wire/partition-row.ts';
import type { Random } from '../src/util/random.ts';
import { MetaStoreProxy } from './meta-service.ts';
import type { SimProcess } from './process.ts';
import type { RoleKind, SimRole, SimStamp } from './stamp.ts';

export class FrontendRole implements SimRole {
  readonly name: string;
  readonly kind: RoleKind = 'frontend';
  readonly faultDomain = null;
  process: SimProcess | null = null;
  private backend: PartitionBlobBackend | null = null;
  private tables: PartitionClient | null = null;
  private readonly stamp: SimStamp;
  private readonly random: Random;
  /** Rejects each request in flight in the current process (its client's connection). */
  private readonly inFlight = new Set<(error: Error) => void>();
  /** Armed by the fault injector: `crash` right after the `left`-th commit from now. */
  private commitCrash: { left: number; readonly crash: () => void } | null = null;
  private intentsBefore = { written: 0, resolved: 0 };
  /** Armed by the fault injector: crashes in sweep intents' windows (crashAtIntents). */
  private intentCrash: ((where: string) => void) | null = null;
  /** Sweep intents this role put while intentCrash was armed (picks the window). */
  private intentsSeen = 0;

  constructor(stamp: SimStamp, options: { readonly index: number; readonly random: Random }) {
    this.stamp = stamp;
    this.name = `fe${options.index}`;
    this.random = options.random;
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.backend !== null;
  }

  start(): Promise<void> {
    this.kill();
    const process = this.stamp.newProcess(this.name, this.name);
    this.process = process;
    const tables = new PartitionClient({ metaStore: new MetaStoreProxy({ network: process.network, clock: process.clock }), network: process.network, clock: process.clock });
    this.tables = tables;
    this.backend = new PartitionBlobBackend({ tables: new TablesThatDie(tables, (ops) => this.committed(ops)), clock: process.clock, random: this.random });
    // Its background sweep, as every `kura frontend` runs one: graveyards and sweep intents (a process timer: it dies with the role).
    this.backend.background.start();
    return Promise.resolve();
  }

  /** Kills the role (through `crash`, which restarts it) right after its `count`-th commit from now. */
  crashAfterCommits(count: number, crash: () => void): void {
    this.commitCrash = { left: count, crash };
  }

  disarmCommitCrash(): void {
    this.commitCrash = null;
    this.intentCrash = null;
  }

  /** Arms (until disarmCommitCrash) crashes in a sweep intent's windows (docs/blob-schema.md, "Sweep
   * intents"): of every three intents the role puts, one is left alone, one is followed by a crash
   * right after it (its commit never sent), one right after the next commit (the commit discarding
   * rows: its cleanup never runs). */
  crashAtIntents(crash: (where: string) => void): void {
    this.intentCrash = crash;
  }

  /** After each commit of the backend: true if the armed crash fires now (the role is dead). */
  private committed(ops: readonly PartitionOp[]): boolean {
    const intentCrash = this.intentCrash;
    if (intentCrash !== null && this.commitCrash === null && ops.some((op) => op.kind === 'put' && op.key[0] === sweepIntentPrefix[0])) {
      this.intentsSeen += 1;
      const left = this.intentsSeen % 3;
      if (left > 0) this.commitCrash = { left, crash: () => intentCrash(left === 1 ? 'after a sweep intent' : 'after the commit a sweep intent guards') };
    }
    const armed = this.commitCrash;
    if (armed === null) return false;
    armed.left -= 1;
    if (armed.left > 0) return false;
    this.commitCrash = null;
    armed.crash();
    return true;
  }

  /**
   * One request, run as this process's code. Refused (rejects with `refused`) while the role is
   * down; rejects with a lost connection if the process dies before it answers.
   */
  request<T>(work: (backend: PartitionBlobBackend, tables: PartitionClient) => Promise<T>): Promise<T> {
    const process = this.process;
    const backend = this.backend;
    const tables = this.tables;
    if (process === null || backend === null || tables === null || !process.isAlive) return Promise.reject(new FrontendRefused(this.name));
    return new Promise<T>((resolve, reject) => {
      const lose = (error: Error): void => reject(error);
      this.inFlight.add(lose);
      process.run(() => work(backend, tables)).then(
        (value) => {
          if (this.inFlight.delete(lose)) resolve(value);
        },
        (error: unknown) => {
          if (this.inFlight.delete(lose)) reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  /** Sweep intents this role wrote, and resolved by its background sweep, over all its lives. */
  get intents(): { readonly written: number; readonly resolved: number } {
    return { written: this.intentsBefore.written + (this.backend?.stats().sweepIntentsWritten ?? 0), resolved: this.intentsBefore.resolved + (this.backend?.sweeper.totals.intentsResolved ?? 0) };
  }

  kill(): void {
    this.intentsBefore = this.intents;
    this.process?.kill();
    this.process = null;
    this.backend = null;
    this.tables = null;
    const lost = [...this.inFlight];
    this.inFlight.clear();
    if (lost.length > 0) this.stamp.trace(`${this.name} died with ${lost.length} request(s) in flight`);
    for (const lose of lost) lose(new FrontendConnectionLost(this.name));
  }

  powerLoss(): void {
    // No disks: a front end keeps nothing durable of its own.
  }
}

/** A request to a front end that is down: the connection was refused, nothing was sent. */
export class FrontendRefused extends Error {
  override readonly name = 'FrontendRefused';

  constructor(role: string) {
    super(`connection refused: ${role} is down`);
  }
}

/** A request in flight when its front end died: the client saw its connection reset (outcome unknown). */
export class FrontendConnectionLost extends Error {
  override readonly name = 'FrontendConnectionLost';

  constructor(role: string) {
    super(`connection lost: ${role} died mid-request`);
  }
}

const never = new Promise<never>(() => undefined);

/**
 * BlobTables that die right after a transact for which `dieAfter` answers true: the commit is
 * applied, and its answer and every later call never come (a front end killed between a commit and
 * its next step). Also used by block-list-crash.test.ts.
 */
export class TablesThatDie implements BlobTables {
  private readonly inner: BlobTables;
  private readonly dieAfter: (ops: readonly PartitionOp[]) => boolean;
  dead = false;

  constructor(inner: BlobTables, dieAfter: (ops: readonly PartitionOp[]) => boolean) {
    this.inner = inner;
    this.dieAfter = dieAfter;
  }

  get(key: Buffer): Promise<LiveRow | null> {
    return this.dead ? never : this.inner.get(key);
  }

  getMany(keys: readonly Buffer[]): Promise<(LiveRow | null)[]> {
    return this.dead ? never : this.inner.getMany(keys);
  }

  async transact(ops: readonly PartitionOp[]): Promise<CommitResult> {
    if (this.dead) return never;
    const result = await this.inner.transact(ops);
    if (this.dead || !this.dieAfter(ops)) return this.dead ? never : result;
    this.dead = true;
    return never;
  }

  scan(options: BlobScanOptions): Promise<{ items: ScanItem[]; continuation: string | null }> {
    return this.dead ? never : this.inner.scan(options);
  }

  appendData(key: Buffer, bytes: Body): Promise<DataRef> {
    return this.dead ? never : this.inner.appendData(key, bytes);
  }

  readData(key: Buffer, ref: DataRef): Promise<Buffer> {
    return this.dead ? never : this.inner.readData(key, ref);
  }
}
