// EmbeddedMetaStore: the default MetaStore for a single-process stamp (`kura serve`). The key
// space lives in memory in key order; an append-only log of committed transactions on a Disk
// makes it durable, and a snapshot compacts the log. Format: docs/formats/metastore-log.md.
//
// Invariants:
// - durable first, then publish: a transaction's record is written and the log fsync'd before
//   memory changes and before the transaction resolves. Reads see only acknowledged state.
// - one commit loop owns the log. Transactions queue; the loop takes everything queued (group
//   commit: those that arrived during the previous fsync share the next), evaluates them in
//   order against committed state plus the batch's earlier effects, writes one record per
//   transaction that changed something, fsyncs once, then publishes and resolves them all.
// - the revision rises by exactly one per record; a transaction that changes nothing (failed
//   compare, deletes of absent keys) leaves it unchanged, as in etcd.
// - inputs are checked (meta-limits.ts) before they are queued; a rejected txn writes nothing.
// - watchers of a key (watchKey) are called, each in a microtask, after the batch that wrote it is
//   published, so a re-read in the call sees the write; the store never disconnects, so the one
//   "(re)established" call is the first, right after watchKey.
//
// Leases (documented choice): leases live in memory on the injected Clock and do not survive a
// restart. Keys written with a lease carry its id in the log; expiry and revocation delete them
// with ordinary durable transactions. The store runs in the same process as every lease holder,
// so a restart ends every holder: open() deletes all keys still attached to a lease before it
// returns, and keepAlive of a lease from before the restart fails with meta.lease_expired.
//
// Fault model (see the format doc): a crash may lose or tear un-synced writes; open() replays
// the log and truncates at the first bad record, which was never acknowledged. A failed write or
// fsync poisons the store: that batch and every later write rejects with the I/O error (its
// outcome is unknown), and reads keep serving the last acknowledged state.
import { groupCommitBytesMax, journalFileBytesMax, metaTxnOperationsMax } from '../constants.ts';
import type { Disk, DiskFile } from '../io/disk.ts';
import { writeFileDurably } from '../io/durable-file.ts';
import { assert } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import { checkKey, checkLeaseId, checkRange, checkTtlMs, checkTxn } from './meta-limits.ts';
import {
  encodeRecord, logRecordMagic, parseLogBody, parseSnapshotBody, readRecord, recordBodyBytesMax, recordHeaderBytes, snapshotMagic,
  type LogRecordBody, type LogWrite, type SnapshotBody,
} from './meta-log-codec.ts';
import type { KeyValue, KeyWatch, MetaStore, RangeOptions, Txn, TxnResult } from './meta-store.ts';
import { SortedKeyMap } from './sorted-key-map.ts';

/** Largest snapshot body: coordination state is megabytes; this stays far below V8's string limit. */
export const snapshotBodyBytesMax = 256 * 1024 * 1024;
const snapshotFileName = 'snapshot';

export interface EmbeddedMetaStoreOptions {
  readonly disk: Disk;
  /** Directory on the disk that holds the snapshot and the log; created if absent. */
  readonly directory: string;
  readonly clock: Clock;
  /** Compact into a snapshot once the log passes this many bytes (tests lower it). */
  readonly compactLogBytes?: number;
}

/** What open() found and did, for tests and the operator log. */
export interface RecoveryReport {
  readonly snapshotRevision: number | null;
  readonly recordsReplayed: number;
  readonly bytesTruncated: number;
  readonly leasedKeysDeleted: number;
}

export interface EmbeddedMetaStoreStats {
  readonly revision: number;
  readonly generation: number;
  readonly logBytes: number;
  readonly fsyncs: number;
  readonly compactions: number;
}

interface Entry {
  readonly value: string;
  readonly modRevision: number;
  readonly lease: number;
}

interface Lease {
  readonly ttlMs: number;
  deadlineMs: number;
  timer: TimerHandle;
  readonly keys: Set<string>;
}

interface Settle {
  readonly resolve: (result: TxnResult) => void;
  readonly reject: (error: unknown) => void;
}

/** Work for the commit loop: a caller's txn, a lease revocation (by a caller or by expiry), or
 * the deletion of keys whose leases did not survive a restart. */
type Work =
  | { readonly kind: 'txn'; readonly txn: Txn }
  | { readonly kind: 'revoke'; readonly lease: number }
  | { readonly kind: 'deleteKeys'; readonly keys: readonly string[] };

type Pending = Work & Settle;

type Outcome = { readonly ok: true; readonly result: TxnResult } | { readonly ok: false; readonly error: StorageError };

type StoreState =
  | { readonly kind: 'open' }
  | { readonly kind: 'failed'; readonly error: StorageError }
  | { readonly kind: 'closing' }
  | { readonly kind: 'closed' };

interface RecoveredState {
  readonly entries: SortedKeyMap<Entry>;
  revision: number;
  leaseIdMax: number;
  readonly generation: number;
  readonly snapshotRevision: number | null;
}

/** A batch being evaluated: committed state plus the effects of the batch's earlier txns. */
class Staging {
  readonly overlay = new Map<string, Entry | null>();
  readonly records: Buffer[] = [];
  readonly revoked = new Set<number>();
  revision: number;
  private readonly entries: SortedKeyMap<Entry>;

  constructor(entries: SortedKeyMap<Entry>, revision: number) {
    this.entries = entries;
    this.revision = revision;
  }

  view(key: string): Entry | null {
    const staged = this.overlay.get(key);
    return staged === undefined ? (this.entries.get(key) ?? null) : staged;
  }

  /** Adds one record (one new revision) holding `writes`; returns its revision. */
  commitWrites(writes: readonly LogWrite[]): number {
    assert(writes.length > 0 && writes.length <= metaTxnOperationsMax, 'a meta record holds 1..metaTxnOperationsMax writes');
    this.revision += 1;
    const body: LogRecordBody = { revision: this.revision, writes };
    this.records.push(encodeRecord(logRecordMagic, body, recordBodyBytesMax));
    for (const write of writes) {
      this.overlay.set(write.key, 'delete' in write ? null : { value: write.value, modRevision: this.revision, lease: write.lease });
    }
    return this.revision;
  }
}

function childPath(directory: string, name: string): string {
  return directory === '' ? name : `${directory}/${name}`;
}

function logFileName(generation: number): string {
  return `log-${generation.toString(16).padStart(16, '0')}`;
}

/** '' and every proper ancestor of `directory`, outermost first: "a/b" → ["", "a"]. */
function ancestorsOf(directory: string): string[] {
  const segments = directory === '' ? [] : directory.split('/');
  return segments.map((_, index) => segments.slice(0, index).join('/'));
}

function leaseExpired(lease: number): StorageError {
  return new StorageError('meta.lease_expired', 'lease expired or was revoked', { context: { lease } });
}

function toKeyValue(key: string, entry: Entry): KeyValue {
  return { key, value: entry.value, modRevision: entry.modRevision, lease: entry.lease };
}

/** Runs synchronous work and reports its result or its throw as a promise. */
function settled<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

function noop(): void {
  // Internal work (lease expiry) has no caller waiting for it.
}

export class EmbeddedMetaStore implements MetaStore {
  readonly recovery: RecoveryReport;
  private readonly disk: Disk;
  private readonly directory: string;
  private readonly clock: Clock;
  private readonly compactLogBytes: number;
  private readonly entries: SortedKeyMap<Entry>;
  private readonly leases = new Map<number, Lease>();
  /** Each watched key's notifiers (watchKey), called after a batch that wrote the key is published. */
  private readonly watchers = new Map<string, Set<() => void>>();
  private readonly queue: Pending[] = [];
  private state: StoreState = { kind: 'open' };
  private log: DiskFile;
  private logBytes: number;
  private generation: number;
  private revision: number;
  private leaseIdMax: number;
  private loop: Promise<void> | null = null;
  private fsyncs = 0;
  private compactions = 0;

  private constructor(options: EmbeddedMetaStoreOptions, recovered: RecoveredState, log: DiskFile, logBytes: number, recovery: RecoveryReport) {
    this.disk = options.disk;
    this.directory = options.directory;
    this.clock = options.clock;
    this.compactLogBytes = options.compactLogBytes ?? journalFileBytesMax;
    assert(Number.isSafeInteger(this.compactLogBytes) && this.compactLogBytes > 0, 'compactLogBytes must be a positive integer');
    this.entries = recovered.entries;
    this.revision = recovered.revision;
    this.leaseIdMax = recovered.leaseIdMax;
    this.generation = recovered.generation;
    this.log = log;
    this.logBytes = logBytes;
    this.recovery = recovery;
  }

  /** Opens (or creates) the store in `directory`: recovers, cleans up, revokes old leases. */
  static async open(options: EmbeddedMetaStoreOptions): Promise<EmbeddedMetaStore> {
    const { disk, directory } = options;
    await disk.makeDirectory(directory);
    for (const ancestor of ancestorsOf(directory)) await disk.syncDirectory(ancestor);
    const names = await disk.list(directory);
    const snapshot = names.includes(snapshotFileName) ? await readSnapshot(disk, childPath(directory, snapshotFileName)) : null;
    const recovered = recoveredFromSnapshot(snapshot);
    const logName = logFileName(recovered.generation);
    const log = await disk.open(childPath(directory, logName), { create: true });
    try {
      const replay = await replayLog(log, recovered);
      await removeStaleFiles(disk, directory, names, logName);
      const leasedKeys = [...recovered.entries.entries()].filter(([, entry]) => entry.lease !== 0).map(([key]) => key);
      const recovery = { snapshotRevision: recovered.snapshotRevision, recordsReplayed: replay.records, bytesTruncated: replay.bytesTruncated, leasedKeysDeleted: leasedKeys.length };
      const store = new EmbeddedMetaStore(options, recovered, log, replay.validBytes, recovery);
      if (leasedKeys.length > 0) await store.enqueue({ kind: 'deleteKeys', keys: leasedKeys });
      return store;
    } catch (error) {
      await log.close();
      throw error;
    }
  }

  get(key: string): Promise<KeyValue | null> {
    return settled(() => {
      checkKey(key);
      this.assertReadable();
      const entry = this.entries.get(key);
      return entry === undefined ? null : toKeyValue(key, entry);
    });
  }

  range(start: string, options: RangeOptions): Promise<KeyValue[]> {
    return settled(() => {
      const checked = checkRange(start, options);
      this.assertReadable();
      return this.entries.range(start, checked.end, checked.limit).map(([key, entry]) => toKeyValue(key, entry));
    });
  }

  async txn(txn: Txn): Promise<TxnResult> {
    checkTxn(txn);
    return this.enqueue({ kind: 'txn', txn });
  }

  grantLease(ttlMs: number): Promise<number> {
    return settled(() => {
      checkTtlMs(ttlMs);
      this.assertWritable();
      this.leaseIdMax += 1;
      const id = this.leaseIdMax;
      const timer = this.clock.setTimer(ttlMs, () => this.onLeaseTimer(id));
      this.leases.set(id, { ttlMs, deadlineMs: this.clock.monotonicMs() + ttlMs, timer, keys: new Set() });
      return id;
    });
  }

  keepAlive(lease: number): Promise<void> {
    return settled(() => {
      checkLeaseId(lease);
      this.assertWritable();
      const state = this.leases.get(lease);
      const nowMs = this.clock.monotonicMs();
      if (state === undefined || state.deadlineMs <= nowMs) throw leaseExpired(lease);
      // The timer is not moved: when it fires before the new deadline it re-arms itself.
      state.deadlineMs = nowMs + state.ttlMs;
    });
  }

  async revokeLease(lease: number): Promise<void> {
    checkLeaseId(lease);
    await this.enqueue({ kind: 'revoke', lease });
  }

  /** Notifies after every published write of key, and once at the start (the contract's "established"). */
  watchKey(key: string, onChange: () => void): KeyWatch {
    checkKey(key);
    let open = true;
    const notify = (): void => queueMicrotask(() => {
      if (open) onChange();
    });
    const notifiers = this.watchers.get(key) ?? new Set<() => void>();
    this.watchers.set(key, notifiers);
    notifiers.add(notify);
    notify();
    return {
      close: () => {
        open = false;
        notifiers.delete(notify);
        if (notifiers.size === 0 && this.watchers.get(key) === notifiers) this.watchers.delete(key);
      },
    };
  }

  /** Lets queued transactions finish, then releases the log. Later calls fail with io.closed. */
  async close(): Promise<void> {
    if (this.state.kind === 'closing' || this.state.kind === 'closed') return;
    this.state = { kind: 'closing' };
    if (this.loop !== null) await this.loop;
    for (const lease of this.leases.values()) lease.timer.cancel();
    this.leases.clear();
    this.state = { kind: 'closed' };
    await this.log.close();
  }

  /** Resolves when the commit loop has nothing left to do (tests: after lease expiry fired). */
  async idle(): Promise<void> {
    while (this.loop !== null) await this.loop;
  }

  stats(): EmbeddedMetaStoreStats {
    return { revision: this.revision, generation: this.generation, logBytes: this.logBytes, fsyncs: this.fsyncs, compactions: this.compactions };
  }

  /** A method, not an inline check: the state changes across awaits, which narrowing ignores. */
  private isFailed(): boolean {
    return this.state.kind === 'failed';
  }

  private assertReadable(): void {
    if (this.state.kind === 'closing' || this.state.kind === 'closed') throw new StorageError('io.closed', 'EmbeddedMetaStore is closed');
  }

  private assertWritable(): void {
    this.assertReadable();
    if (this.state.kind === 'failed') throw this.state.error;
  }

  /** Queues work for the commit loop; starts the loop if it is idle. */
  private enqueue(work: Work): Promise<TxnResult> {
    this.assertWritable();
    return new Promise<TxnResult>((resolve, reject) => {
      this.queue.push({ ...work, resolve, reject });
      this.loop ??= this.runCommitLoop();
    });
  }

  /** The one owner of the log: batches queued work until the queue is empty. */
  private async runCommitLoop(): Promise<void> {
    // Yield first: `this.loop` is assigned before the loop can end, and txns issued in the
    // same tick join the first batch.
    await Promise.resolve();
    try {
      while (this.queue.length > 0) {
        const batch = this.takeBatch();
        if (this.state.kind === 'failed') {
          for (const item of batch) item.reject(this.state.error);
          continue;
        }
        await this.commitBatch(batch);
        if (!this.isFailed() && this.logBytes > this.compactLogBytes) await this.compactOrFail();
      }
    } finally {
      this.loop = null;
    }
  }

  /** Takes queued work up to about groupCommitBytesMax of keys and values (at least one item). */
  private takeBatch(): Pending[] {
    let bytes = 0;
    let count = 0;
    for (const item of this.queue) {
      if (count > 0 && bytes >= groupCommitBytesMax) break;
      count += 1;
      if (item.kind === 'txn') for (const operation of item.txn.success) bytes += operation.key.length + (operation.kind === 'put' ? operation.value.length : 0);
    }
    return this.queue.splice(0, count);
  }

  private async commitBatch(batch: readonly Pending[]): Promise<void> {
    const staging = new Staging(this.entries, this.revision);
    const outcomes = batch.map((item) => this.stage(staging, item));
    if (staging.records.length > 0) {
      try {
        await this.appendDurably(staging.records);
      } catch (error) {
        const failure = this.fail(error);
        for (const item of batch) item.reject(failure);
        return;
      }
    }
    this.publish(staging);
    batch.forEach((item, index) => {
      const outcome = outcomes[index];
      assert(outcome !== undefined, 'one outcome per batch item');
      if (outcome.ok) item.resolve(outcome.result);
      else item.reject(outcome.error);
    });
  }

  private stage(staging: Staging, item: Pending): Outcome {
    try {
      switch (item.kind) {
        case 'txn':
          return { ok: true, result: this.stageTxn(staging, item.txn) };
        case 'revoke':
          return { ok: true, result: this.stageRevoke(staging, item.lease) };
        case 'deleteKeys':
          return { ok: true, result: { succeeded: true, revision: this.stageDeletes(staging, item.keys) } };
      }
    } catch (error) {
      if (!isStorageError(error)) throw error;
      return { ok: false, error };
    }
  }

  private stageTxn(staging: Staging, txn: Txn): TxnResult {
    for (const compare of txn.compare) {
      if ((staging.view(compare.key)?.modRevision ?? 0) !== compare.modRevision) return { succeeded: false, revision: staging.revision };
    }
    const writes: LogWrite[] = [];
    for (const operation of txn.success) {
      if (operation.kind === 'put') {
        const lease = operation.lease ?? 0;
        if (lease !== 0 && !this.isLeaseLive(staging, lease)) throw leaseExpired(lease);
        writes.push({ key: operation.key, value: operation.value, lease });
      } else if (staging.view(operation.key) !== null) {
        writes.push({ key: operation.key, delete: true });
      }
    }
    if (writes.length === 0) return { succeeded: true, revision: staging.revision };
    return { succeeded: true, revision: staging.commitWrites(writes) };
  }

  private isLeaseLive(staging: Staging, lease: number): boolean {
    const state = this.leases.get(lease);
    return state !== undefined && !staging.revoked.has(lease) && state.deadlineMs > this.clock.monotonicMs();
  }

  private stageRevoke(staging: Staging, lease: number): TxnResult {
    const state = this.leases.get(lease);
    if (state === undefined || staging.revoked.has(lease)) throw leaseExpired(lease);
    const keys = new Set<string>();
    for (const key of state.keys) if (staging.view(key)?.lease === lease) keys.add(key);
    for (const [key, entry] of staging.overlay) if (entry?.lease === lease) keys.add(key);
    staging.revoked.add(lease);
    return { succeeded: true, revision: this.stageDeletes(staging, [...keys].sort()) };
  }

  /** Deletes `keys` in records of at most metaTxnOperationsMax writes; returns the revision. */
  private stageDeletes(staging: Staging, keys: readonly string[]): number {
    const present = keys.filter((key) => staging.view(key) !== null);
    for (let start = 0; start < present.length; start += metaTxnOperationsMax) {
      staging.commitWrites(present.slice(start, start + metaTxnOperationsMax).map((key) => ({ key, delete: true as const })));
    }
    return staging.revision;
  }

  private async appendDurably(records: readonly Buffer[]): Promise<void> {
    const data = Buffer.concat(records);
    await this.log.write(this.logBytes, data);
    await failpoint('metastore.commit.before-fsync');
    await this.log.sync();
    this.fsyncs += 1;
    this.logBytes += data.length;
    await failpoint('metastore.commit.after-fsync');
  }

  /** After the fsync: makes the batch visible and moves lease bookkeeping along. */
  private publish(staging: Staging): void {
    for (const [key, entry] of staging.overlay) {
      const previous = this.entries.get(key);
      if (previous !== undefined && previous.lease !== 0) this.leases.get(previous.lease)?.keys.delete(key);
      if (entry === null) {
        this.entries.delete(key);
      } else {
        this.entries.set(key, entry);
        if (entry.lease !== 0) this.leases.get(entry.lease)?.keys.add(key);
      }
    }
    for (const lease of staging.revoked) {
      this.leases.get(lease)?.timer.cancel();
      this.leases.delete(lease);
    }
    this.revision = staging.revision;
    for (const key of staging.overlay.keys()) this.watchers.get(key)?.forEach((notify) => notify());
  }

  private fail(error: unknown): StorageError {
    if (!isStorageError(error)) throw error;
    const failure = error.withContext({ component: 'EmbeddedMetaStore', directory: this.directory });
    this.state = { kind: 'failed', error: failure };
    return failure;
  }

  private onLeaseTimer(id: number): void {
    const lease = this.leases.get(id);
    if (lease === undefined || this.state.kind !== 'open') return;
    const remainingMs = lease.deadlineMs - this.clock.monotonicMs();
    if (remainingMs > 0) {
      lease.timer = this.clock.setTimer(remainingMs, () => this.onLeaseTimer(id));
      return;
    }
    this.queue.push({ kind: 'revoke', lease: id, resolve: noop, reject: noop });
    this.loop ??= this.runCommitLoop();
  }

  private async compactOrFail(): Promise<void> {
    try {
      await this.compact();
    } catch (error) {
      this.fail(error);
    }
  }

  /** Snapshot (durable) → new empty log (durable) → switch → delete the old log. */
  private async compact(): Promise<void> {
    const generation = this.generation + 1;
    const body: SnapshotBody = {
      generation,
      revision: this.revision,
      leaseIdMax: this.leaseIdMax,
      entries: [...this.entries.entries()].map(([key, entry]) => [key, entry.value, entry.modRevision, entry.lease] as const),
    };
    await writeFileDurably(this.disk, childPath(this.directory, snapshotFileName), encodeRecord(snapshotMagic, body, snapshotBodyBytesMax));
    const log = await this.disk.open(childPath(this.directory, logFileName(generation)), { create: true, exclusive: true });
    await log.sync();
    await this.disk.syncDirectory(this.directory);
    const oldLog = this.log;
    const oldName = logFileName(this.generation);
    this.log = log;
    this.logBytes = 0;
    this.generation = generation;
    this.compactions += 1;
    await oldLog.close();
    await this.disk.remove(childPath(this.directory, oldName));
    await this.disk.syncDirectory(this.directory);
  }
}

async function readSnapshot(disk: Disk, path: string): Promise<SnapshotBody> {
  const file = await disk.open(path, { create: false });
  try {
    const fileBytes = await file.size();
    const bodyBytesMax = Math.min(snapshotBodyBytesMax, Math.max(0, fileBytes - recordHeaderBytes));
    const outcome = await readRecord(file, 0, fileBytes, snapshotMagic, bodyBytesMax);
    if (outcome.kind !== 'record' || outcome.bytes !== fileBytes) {
      const reason = outcome.kind === 'bad' ? outcome.reason : outcome.kind === 'end' ? 'empty' : 'trailing bytes';
      throw new StorageError('wire.corrupt', 'meta snapshot is damaged', { context: { path, reason } });
    }
    return parseSnapshotBody(outcome.body);
  } finally {
    await file.close();
  }
}

function recoveredFromSnapshot(snapshot: SnapshotBody | null): RecoveredState {
  const entries = new SortedKeyMap<Entry>();
  if (snapshot === null) return { entries, revision: 0, leaseIdMax: 0, generation: 0, snapshotRevision: null };
  for (const [key, value, modRevision, lease] of snapshot.entries) {
    if (modRevision > snapshot.revision || lease > snapshot.leaseIdMax) throw new StorageError('wire.corrupt', 'meta snapshot entry is ahead of the snapshot');
    entries.set(key, { value, modRevision, lease });
  }
  return { entries, revision: snapshot.revision, leaseIdMax: snapshot.leaseIdMax, generation: snapshot.generation, snapshotRevision: snapshot.revision };
}

/** Applies every good record; truncates (durably) at the first bad one. */
async function replayLog(log: DiskFile, state: RecoveredState): Promise<{ validBytes: number; bytesTruncated: number; records: number }> {
  const fileBytes = await log.size();
  let position = 0;
  let records = 0;
  for (;;) {
    const outcome = await readRecord(log, position, fileBytes, logRecordMagic, recordBodyBytesMax);
    if (outcome.kind !== 'record') break;
    applyLogRecord(state, parseLogBody(outcome.body));
    position += outcome.bytes;
    records += 1;
  }
  if (position < fileBytes) {
    await refuseIfDamageIsNotATornTail(log, position, fileBytes);
    await log.truncate(position);
    await log.sync();
  }
  return { validBytes: position, bytesTruncated: fileBytes - position, records };
}

/**
 * A torn tail (a write cut by power loss) has no good record after it: it was never
 * acknowledged and may be cut. A good record after the bad one means the damage is in the
 * middle of acknowledged history (bit rot, misdirected write): cutting there would silently drop
 * acknowledged transactions, so open() refuses and leaves the file untouched for the operator.
 */
async function refuseIfDamageIsNotATornTail(log: DiskFile, badPosition: number, fileBytes: number): Promise<void> {
  const tail = await log.read(badPosition, fileBytes - badPosition);
  const magic = Buffer.alloc(4);
  magic.writeUInt32BE(logRecordMagic, 0);
  for (let at = tail.indexOf(magic, 1); at !== -1; at = tail.indexOf(magic, at + 1)) {
    const outcome = await readRecord(log, badPosition + at, fileBytes, logRecordMagic, recordBodyBytesMax);
    if (outcome.kind === 'record') {
      throw new StorageError('wire.corrupt', `meta log ${log.path} is damaged at byte ${badPosition} with acknowledged records after it (byte ${badPosition + at}); `
        + 'refusing to truncate acknowledged history. Fix: restore the MetaStore directory from a copy, or rebuild it from the extent files; the log was left untouched.', {
        context: { path: log.path, badPosition, nextGoodRecord: badPosition + at },
      });
    }
  }
}

function applyLogRecord(state: RecoveredState, body: LogRecordBody): void {
  if (body.revision !== state.revision + 1) {
    throw new StorageError('wire.corrupt', 'meta log record out of revision order', { context: { expected: state.revision + 1, found: body.revision } });
  }
  for (const write of body.writes) {
    if ('delete' in write) {
      state.entries.delete(write.key);
    } else {
      state.entries.set(write.key, { value: write.value, modRevision: body.revision, lease: write.lease });
      state.leaseIdMax = Math.max(state.leaseIdMax, write.lease);
    }
  }
  state.revision = body.revision;
}

/** Deletes a leftover snapshot tmp and every log but the live one; makes the directory durable. */
async function removeStaleFiles(disk: Disk, directory: string, names: readonly string[], liveLogName: string): Promise<void> {
  for (const name of names) {
    if (name === `${snapshotFileName}.tmp` || (name.startsWith('log-') && name !== liveLogName)) await disk.remove(childPath(directory, name));
  }
  await disk.syncDirectory(directory);
}
