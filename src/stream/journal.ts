// The extent node's journal (docs/formats/journal.md): group commit of append records, one
// O_DSYNC write per batch, up to D batches in flight, and retirement of journal files whose
// records are all in fsync'd extent files. Also the crash-time scanner of journal files, which
// reports bad records and the good records after them, with their batch numbers (the store
// decides, by the torn-window rule, which bad regions are damage).
//
// Group commit is leader/follower, with no timer: the first record queued while no leader runs
// starts one (after a single microtask, so records queued in the same turn join it). The leader
// takes everything queued as a batch whenever fewer than D = journalBatchesInFlightMax batches
// are in flight, reserves its position (the file's size advances before its write starts) and
// starts its write; records queued meanwhile form the next batch. An idle journal therefore
// commits at once, and a busy one overlaps up to D writes.
//
// Invariants:
// - onDurable is called only after the record's batch AND every earlier batch of the journal is
//   written durably, and after the file's directory entry is durable (a new file is created
//   exclusive, then journal/ synced); records are reported durable in the order they were
//   appended (batches in file order, records in batch order).
// - Batch b of a file is written only once every batch up to b - D is durable; every record is
//   stamped with its batch number and lastOfBatch before its write (format v2).
// - A rotation waits until no batch is in flight, so a window never spans two files.
// - A file is retired (deleted, then journal/ synced) only when it is not the active file, no
//   tracked record in it is outstanding, and every older file is already retired.
//
// Fault model: a failed write fails the journal for good (fsyncgate: the dirty pages may be
// gone): onFailure tells the owner first, then every batch not yet reported and everything
// queued get onFailed, and every later append throws the failure. Nothing is retried; a batch
// whose write returned after the failure is not reported durable either (recovery decides).
import { groupCommitBytesMax, journalBatchesInFlightMax, journalFileBytesMax, journalResyncChunkBytes } from '../constants.ts';
import type { Disk, DiskFile } from '../io/disk.ts';
import { assert } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { type BodyParts, bodyPartsOf } from '../util/body-parts.ts';
import { crcMatches } from '../util/crc32c.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import { decodeJournalHeader, journalFileName, journalRecordHeaderBytes, journalRecordMagic, journalRecordOf, stampJournalBatch } from '../wire/journal-format.ts';
import type { JournalBatchPosition, JournalHeader, JournalRecord } from '../wire/journal-format.ts';

export const journalDirectory = 'journal';

/** One journal file; `outstanding` counts its tracked records not yet in a synced extent file. */
export interface JournalFileState {
  readonly sequence: number;
  readonly path: string;
  outstanding: number;
}

export interface JournalOptions {
  readonly disk: Disk;
  /** Sequence of the first file this journal creates (greater than any file on disk). */
  readonly firstSequence: number;
  readonly onFailure: (error: StorageError) => void;
  /** When a batch may start while others are in flight (the overlap rule, `batchOverlapAfterMs`). */
  readonly clock: Clock;
  /** A further batch starts while others are in flight only once the newest has been in flight this long (0: at once). */
  readonly batchOverlapAfterMs: number;
}

export interface JournalStats {
  batches: number;
  records: number;
  fsyncs: number;
  filesCreated: number;
  filesRetired: number;
}

/** One encoded record, as its header and body (empty for a tombstone; one buffer or the parts it arrived in), and who to tell. */
export interface JournalEntry {
  readonly header: Uint8Array;
  readonly body: Uint8Array | BodyParts;
  /** A tracked record counts as outstanding in its file until release() is called for it. */
  readonly tracked: boolean;
  /** The record and every record before it are durable; it is in `file`. Called in append order; must not throw. */
  readonly onDurable: (file: JournalFileState) => void;
  /** The record's batch failed, or the journal had already failed (not durable, as far as known). */
  readonly onFailed: (error: StorageError) => void;
}

interface ActiveFile {
  readonly state: JournalFileState;
  readonly handle: DiskFile;
  /** Bytes reserved: the end of the last batch taken (its write may still be in flight). */
  size: number;
  /** Batches taken in this file (the last one's number). */
  batches: number;
}

/** A batch whose write has started and that is not yet reported. */
interface InFlightBatch {
  readonly entries: readonly JournalEntry[];
  readonly file: JournalFileState;
  /** When its write started (monotonic ms). */
  readonly startedAtMs: number;
  written: boolean;
}

const emptyBody = new Uint8Array(0);

export class Journal {
  readonly stats: JournalStats = { batches: 0, records: 0, fsyncs: 0, filesCreated: 0, filesRetired: 0 };
  private readonly disk: Disk;
  private readonly onFailure: (error: StorageError) => void;
  private readonly files: JournalFileState[] = [];
  private active: ActiveFile | null = null;
  private queue: JournalEntry[] = [];
  private queuedBytes = 0;
  /** The leader: set while batches are being gathered or are in flight. */
  private flushing: Promise<void> | null = null;
  /** Batches in flight, in file order: written but not reported, or still being written. */
  private readonly inFlight: InFlightBatch[] = [];
  /** Resumes the leader waiting for a record to be queued or a write to settle. */
  private wakeLeader: (() => void) | null = null;
  private failure: StorageError | null = null;
  private nextSequence: number;
  private readonly clock: Clock;
  private readonly batchOverlapAfterMs: number;
  /** Wakes the leader when the newest batch in flight has been in flight batchOverlapAfterMs. */
  private overlapTimer: TimerHandle | null = null;

  constructor(options: JournalOptions) {
    this.disk = options.disk;
    this.onFailure = options.onFailure;
    this.nextSequence = options.firstSequence;
    this.clock = options.clock;
    this.batchOverlapAfterMs = options.batchOverlapAfterMs;
  }

  /**
   * Queues one record; entry.onDurable runs once it is durable. Throws the failure (and queues
   * nothing) if the journal has failed.
   */
  append(entry: JournalEntry): void {
    if (this.failure !== null) throw this.failure;
    this.queue.push(entry);
    this.queuedBytes += entry.header.length + entry.body.length;
    if (this.flushing === null) this.flushing = this.lead();
    else this.wake();
  }

  /** append() of an untracked record (a tombstone), as a promise. */
  appendDurable(header: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.append({ header, body: emptyBody, tracked: false, onDurable: () => resolve(), onFailed: reject });
    });
  }

  /** One tracked record of `file` is now in an fsync'd extent file (or its extent is gone). */
  release(file: JournalFileState): void {
    assert(file.outstanding > 0, `journal file ${file.path}: release without an outstanding record`);
    file.outstanding -= 1;
  }

  /** True while any journal file exists (records of any extent may still be replayed). */
  hasFiles(): boolean {
    return this.files.length > 0;
  }

  /** Deletes the oldest files whose records are all released, each deletion made durable. */
  async retire(): Promise<void> {
    for (;;) {
      const oldest = this.files[0];
      if (oldest === undefined || oldest === this.active?.state || oldest.outstanding > 0) return;
      await this.disk.remove(oldest.path);
      await this.disk.syncDirectory(journalDirectory);
      this.files.shift();
      this.stats.filesRetired += 1;
    }
  }

  /** Writes what is queued, closes the active file and retires every released file. */
  async close(): Promise<void> {
    while (this.flushing !== null) await this.flushing;
    const active = this.active;
    this.active = null;
    if (active !== null) await active.handle.close();
    if (this.failure === null) await this.retire();
  }

  /**
   * The leader: starts a batch whenever records are queued and fewer than D batches are in
   * flight, and otherwise waits for a record or a write; it ends when nothing is queued or in
   * flight. It clears `flushing` in the same synchronous step that finds both empty, so a record
   * appended later always starts a new leader.
   */
  private async lead(): Promise<void> {
    // One microtask: records appended in this same turn (a burst of callers) join the first batch.
    await Promise.resolve();
    try {
      while ((this.queue.length > 0 || this.inFlight.length > 0) && this.failure === null) {
        if (this.queue.length > 0 && this.batchMayStart()) await this.startBatch();
        else await this.nextEvent();
      }
      if (this.failure !== null) this.failQueued(this.failure);
    } finally {
      this.flushing = null;
    }
  }

  /**
   * Whether a batch may start now: none in flight, or fewer than D and the newest in flight for at
   * least batchOverlapAfterMs. A write that returns quickly (a quiet disk) is waited for, so what
   * arrives meanwhile goes as one batch, not several (each its own O_DSYNC write); one that is slow
   * no longer holds everything behind it. Otherwise it arms the timer that wakes the leader then.
   */
  private batchMayStart(): boolean {
    const newest = this.inFlight.at(-1);
    if (newest === undefined) return true;
    if (this.inFlight.length >= journalBatchesInFlightMax) return false;
    const overlapInMs = newest.startedAtMs + this.batchOverlapAfterMs - this.clock.monotonicMs();
    if (overlapInMs <= 0) return true;
    this.overlapTimer?.cancel();
    this.overlapTimer = this.clock.setTimer(overlapInMs, () => {
      this.overlapTimer = null;
      this.wake();
    });
    return false;
  }

  /** Resolves when a record is queued or a write settles (whichever comes first). */
  private nextEvent(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeLeader = resolve;
    });
  }

  private wake(): void {
    const wakeLeader = this.wakeLeader;
    this.wakeLeader = null;
    wakeLeader?.();
  }

  /**
   * Takes a batch, reserves its place in the active file (rotating first, once no batch is in
   * flight, when it would not fit) and starts its write.
   */
  private async startBatch(): Promise<void> {
    const entries = this.takeBatch();
    const { parts, bytes } = batchParts(entries);
    while (this.rotates(bytes) && this.inFlight.length > 0 && this.failure === null) await this.nextEvent();
    if (this.failure !== null) {
      for (const entry of entries) entry.onFailed(this.failure);
      return;
    }
    let file: ActiveFile;
    try {
      file = await this.fileFor(bytes);
    } catch (error) {
      const failure = this.fail(error);
      for (const entry of entries) entry.onFailed(failure);
      return;
    }
    const position = file.size;
    const batch = this.reserve(file, entries, bytes);
    void this.writeBatch(batch, file.handle, position, parts);
  }

  /** Numbers the batch in its file, stamps its records, counts them outstanding and advances the file's size. */
  private reserve(file: ActiveFile, entries: readonly JournalEntry[], bytes: number): InFlightBatch {
    file.batches += 1;
    entries.forEach((entry, index) => stampJournalBatch(entry.header, { batch: file.batches, lastOfBatch: index === entries.length - 1 }));
    for (const entry of entries) if (entry.tracked) file.state.outstanding += 1;
    file.size += bytes;
    const batch: InFlightBatch = { entries, file: file.state, startedAtMs: this.clock.monotonicMs(), written: false };
    this.inFlight.push(batch);
    return batch;
  }

  /**
   * One write of the whole batch at its reserved position, durable when it returns. The records go
   * as one writev of their headers and bodies, not copied into a batch buffer: every copy of an
   * appended body is a fresh allocation, and V8 runs a major GC per ~64 MiB of them (bench/README.md,
   * "Put Blob CPU, fifth session"). Never rejects: a failure fails the journal.
   */
  private async writeBatch(batch: InFlightBatch, handle: DiskFile, position: number, parts: readonly Uint8Array[]): Promise<void> {
    try {
      await failpoint('journal.batch.before-fsync');
      // The write and its fsync in one call (an O_DSYNC write on RealDisk; extent-file.md, Writing).
      await handle.writevSynced(position, parts);
      await failpoint('journal.batch.after-fsync');
    } catch (error) {
      this.failInFlight(error);
      return;
    }
    batch.written = true;
    this.stats.batches += 1;
    this.stats.records += batch.entries.length;
    this.stats.fsyncs += 1;
    this.reportWritten();
  }

  /** Reports the written batches at the head of the window, in file order, and wakes the leader. */
  private reportWritten(): void {
    for (let head = this.inFlight[0]; head?.written === true && this.failure === null; head = this.inFlight[0]) {
      this.inFlight.shift();
      for (const entry of head.entries) entry.onDurable(head.file);
    }
    this.wake();
  }

  /** A write failed: the journal fails, and every batch not yet reported gets onFailed. */
  private failInFlight(error: unknown): void {
    const failure = this.fail(error);
    for (const batch of this.inFlight.splice(0)) for (const entry of batch.entries) entry.onFailed(failure);
    this.wake();
  }

  private rotates(batchBytes: number): boolean {
    const current = this.active;
    return current === null || (current.size > 0 && current.size + batchBytes > journalFileBytesMax);
  }

  private failQueued(failure: StorageError): void {
    const rest = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const entry of rest) entry.onFailed(failure);
  }

  /** Everything queued (the usual case), or a prefix of at most groupCommitBytesMax bytes. */
  private takeBatch(): JournalEntry[] {
    if (this.queuedBytes <= groupCommitBytesMax) {
      const batch = this.queue;
      this.queue = [];
      this.queuedBytes = 0;
      return batch;
    }
    let bytes = 0;
    let count = 0;
    for (const entry of this.queue) {
      const entryBytes = entry.header.length + entry.body.length;
      if (count > 0 && bytes + entryBytes > groupCommitBytesMax) break;
      bytes += entryBytes;
      count += 1;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, count);
  }

  /** The active file, rotated when this batch would take it past journalFileBytesMax. */
  private async fileFor(batchBytes: number): Promise<ActiveFile> {
    const current = this.active;
    if (current !== null && !this.rotates(batchBytes)) return current;
    assert(this.inFlight.length === 0, 'a journal file rotates only once no batch is in flight');
    if (current !== null) {
      this.active = null;
      await current.handle.close();
    }
    const sequence = this.nextSequence++;
    const path = `${journalDirectory}/${journalFileName(sequence)}`;
    const handle = await this.disk.open(path, { create: true, exclusive: true });
    const state: JournalFileState = { sequence, path, outstanding: 0 };
    this.files.push(state);
    this.active = { state, handle, size: 0, batches: 0 };
    await this.disk.syncDirectory(journalDirectory);
    this.stats.filesCreated += 1;
    return this.active;
  }

  private fail(error: unknown): StorageError {
    if (this.failure === null) {
      const message = error instanceof Error ? error.message : String(error);
      this.failure = new StorageError('extent.failed', `journal write failed: ${message}`, { cause: error });
      this.onFailure(this.failure);
    }
    return this.failure;
  }
}

/** The batch's records as writev parts (header, body parts, header, ...; empty bodies left out) and their size. */
function batchParts(batch: readonly JournalEntry[]): { parts: Uint8Array[]; bytes: number } {
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for (const entry of batch) {
    assert(entry.header.length > 0, 'a journal record has a header');
    parts.push(entry.header);
    bytes += entry.header.length;
    if (entry.body.length === 0) continue;
    for (const part of bodyPartsOf(entry.body)) parts.push(part);
    bytes += entry.body.length;
  }
  return { parts, bytes };
}

/** One thing a journal scan found, in file order. */
export type JournalScanItem =
  | { readonly kind: 'record'; readonly record: JournalRecord; readonly batch: JournalBatchPosition | null }
  /**
   * A bad record at `position`: `header` when its header checked (its body did not, or is cut
   * short), `bodyWhole` when its whole body is in the file, `endsFile` when no good record follows
   * it in this file (the caller decides, across files, whether that is a torn tail or damage).
   */
  | { readonly kind: 'bad'; readonly position: number; readonly header: JournalHeader | null; readonly bodyWhole: boolean; readonly endsFile: boolean };

export interface JournalScan {
  readonly items: JournalScanItem[];
  readonly fileBytes: number;
}

/**
 * What a bad record (scan item `index` of `scan`) is, by docs/formats/journal.md, Recovery:
 * - damage: it was in the synced part of the journal, so it may have held acknowledged appends;
 * - torn tail (version 1): the batch in flight at the crash, nothing after it;
 * - torn window (version 2): inside the last D batches in flight at the crash; nothing from it on
 *   was acknowledged (good records after it are replayed only where they continue their extent).
 * `laterFileHasRecord`: a good record follows in a later file (a rotation waits for the window to
 * drain, so this whole file was durable: damage).
 */
export function judgeBadRecord(scan: JournalScan, index: number, laterFileHasRecord: boolean): 'damage' | 'torn-tail' | 'torn-window' {
  const item = scan.items[index];
  assert(item?.kind === 'bad', 'judgeBadRecord judges a bad item');
  if (laterFileHasRecord) return 'damage';
  const before = scan.items.slice(0, index).flatMap((candidate) => (candidate.kind === 'record' ? [candidate.batch] : []));
  const after = scan.items.slice(index + 1).flatMap((candidate) => (candidate.kind === 'record' ? [candidate.batch] : []));
  const version2 = item.header !== null ? item.header.batch !== null : [...before, ...after].some((batch) => batch !== null);
  if (!version2) return after.length > 0 || (item.header !== null && item.bodyWhole) ? 'damage' : 'torn-tail';
  const last = before.at(-1);
  const first = last === undefined || last === null ? 1 : last.batch + (last.lastOfBatch ? 1 : 0);
  const max = after.reduce((largest, batch) => Math.max(largest, batch?.batch ?? 0), 0);
  return after.length > 0 && first <= max - journalBatchesInFlightMax ? 'damage' : 'torn-window';
}

type Probe =
  | { readonly kind: 'good'; readonly record: JournalRecord; readonly batch: JournalBatchPosition | null; readonly end: number }
  | { readonly kind: 'bad'; readonly header: JournalHeader | null; readonly bodyWhole: boolean };

/**
 * Scans one journal file: every good record, and every bad one, after which it searches forward
 * (journalResyncChunkBytes at a time) for the next position where a whole record checks.
 */
export async function scanJournalFile(disk: Disk, path: string): Promise<JournalScan> {
  const handle = await disk.open(path, { create: false });
  try {
    const fileBytes = await handle.size();
    const items: JournalScanItem[] = [];
    let position = 0;
    while (fileBytes - position >= journalRecordHeaderBytes) {
      const probe = await probeRecord(handle, position, fileBytes);
      if (probe.kind === 'good') {
        items.push({ kind: 'record', record: probe.record, batch: probe.batch });
        position = probe.end;
        continue;
      }
      const next = await findNextRecord(handle, position + 1, fileBytes);
      items.push({ kind: 'bad', position, header: probe.header, bodyWhole: probe.bodyWhole, endsFile: next === null });
      if (next === null) break;
      position = next;
    }
    return { items, fileBytes };
  } finally {
    await handle.close();
  }
}

async function probeRecord(handle: DiskFile, position: number, fileBytes: number): Promise<Probe> {
  let header: JournalHeader;
  try {
    header = decodeJournalHeader(await handle.read(position, journalRecordHeaderBytes));
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) return { kind: 'bad', header: null, bodyWhole: false };
    throw error;
  }
  const end = position + journalRecordHeaderBytes + header.bodyBytes;
  if (end > fileBytes) return { kind: 'bad', header, bodyWhole: false };
  const body = await handle.read(position + journalRecordHeaderBytes, header.bodyBytes);
  if (body.length !== header.bodyBytes || !crcMatches(body, header.bodyCrc)) return { kind: 'bad', header, bodyWhole: body.length === header.bodyBytes };
  return { kind: 'good', record: journalRecordOf(header, body), batch: header.batch, end };
}

/** The first position at or after `from` where a whole record checks, or null. */
async function findNextRecord(handle: DiskFile, from: number, fileBytes: number): Promise<number | null> {
  const overlap = journalRecordMagic.length - 1;
  for (let chunkStart = from; fileBytes - chunkStart >= journalRecordHeaderBytes;) {
    const chunk = await handle.read(chunkStart, Math.min(journalResyncChunkBytes, fileBytes - chunkStart));
    for (let at = chunk.indexOf(journalRecordMagic); at !== -1; at = chunk.indexOf(journalRecordMagic, at + 1)) {
      if ((await probeRecord(handle, chunkStart + at, fileBytes)).kind === 'good') return chunkStart + at;
    }
    if (chunkStart + chunk.length >= fileBytes) return null;
    chunkStart += Math.max(1, chunk.length - overlap);
  }
  return null;
}
