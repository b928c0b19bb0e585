// The extent node's journal (docs/formats/journal.md): group commit of append records, one
// write and one fsync per batch, and retirement of journal files whose records are all in
// fsync'd extent files. Also the crash-time scanner of journal files, which reports bad records
// and the good records after them (a bad record followed by a good one is damage in the synced
// part of the journal, not a torn tail: the store marks the extents it may have hurt).
//
// Group commit is leader/follower, with no timer: the first record queued while no batch is in
// flight starts one (after a single microtask, so records queued in the same turn join it); the
// records queued while a batch's write and fsync are in flight form the next batch, written as
// soon as that fsync returns. An idle journal therefore commits at once, and a busy one batches
// as many records as arrive during one fsync (up to groupCommitBytesMax per batch).
//
// Invariants:
// - onDurable is called only after the record's batch is written and fsync'd, and after the
//   file's directory entry is durable (a new file is created exclusive, then journal/ synced);
//   records are reported durable in the order they were appended.
// - One batch at a time: batch k+1 is written only after batch k's fsync returned, so the valid
//   records of a file after a crash are a prefix of what was written (in-order durability).
// - A file is retired (deleted, then journal/ synced) only when it is not the active file, no
//   tracked record in it is outstanding, and every older file is already retired.
//
// Fault model: a failed write or fsync fails the journal for good (fsyncgate: the dirty pages
// may be gone): onFailure tells the owner first, then the batch and everything queued get
// onFailed, and every later append throws the failure. Nothing is retried.
import { groupCommitBytesMax, journalFileBytesMax, journalResyncChunkBytes } from '../constants.ts';
import type { Disk, DiskFile } from '../io/disk.ts';
import { assert } from '../util/assert.ts';
import { type BodyParts, bodyPartsOf } from '../util/body-parts.ts';
import { crcMatches } from '../util/crc32c.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import { decodeJournalHeader, journalFileName, journalRecordHeaderBytes, journalRecordMagic, journalRecordOf } from '../wire/journal-format.ts';
import type { JournalHeader, JournalRecord } from '../wire/journal-format.ts';

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
  /** The record is durable in `file`. Called in append order; must not throw. */
  readonly onDurable: (file: JournalFileState) => void;
  /** The record's batch failed, or the journal had already failed (not durable, as far as known). */
  readonly onFailed: (error: StorageError) => void;
}

interface ActiveFile {
  readonly state: JournalFileState;
  readonly handle: DiskFile;
  size: number;
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
  /** The leader: set while a batch is being gathered, written or fsync'd. */
  private flushing: Promise<void> | null = null;
  private failure: StorageError | null = null;
  private nextSequence: number;

  constructor(options: JournalOptions) {
    this.disk = options.disk;
    this.onFailure = options.onFailure;
    this.nextSequence = options.firstSequence;
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
   * The leader: writes batches until the queue is empty; records queued during a fsync form the
   * next batch. It clears `flushing` in the same synchronous step that finds the queue empty, so
   * a record appended later always starts a new leader.
   */
  private async lead(): Promise<void> {
    // One microtask: records appended in this same turn (a burst of callers) join the first batch.
    await Promise.resolve();
    try {
      while (this.queue.length > 0 && this.failure === null) await this.commitBatch();
      if (this.failure !== null) this.failQueued(this.failure);
    } finally {
      this.flushing = null;
    }
  }

  private async commitBatch(): Promise<void> {
    const batch = this.takeBatch();
    let file: JournalFileState;
    try {
      file = await this.writeBatch(batch);
    } catch (error) {
      const failure = this.fail(error);
      for (const entry of batch) entry.onFailed(failure);
      return;
    }
    for (const entry of batch) entry.onDurable(file);
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

  /**
   * One write of the whole batch, durable when it returns. The records go as one writev of their headers and
   * bodies, not copied into a batch buffer: every copy of an appended body is a fresh allocation,
   * and V8 runs a major GC per ~64 MiB of them (bench/README.md, "Put Blob CPU, fifth session").
   */
  private async writeBatch(batch: readonly JournalEntry[]): Promise<JournalFileState> {
    const { parts, bytes } = batchParts(batch);
    const file = await this.fileFor(bytes);
    let tracked = 0;
    for (const entry of batch) if (entry.tracked) tracked += 1;
    file.state.outstanding += tracked;
    await failpoint('journal.batch.before-fsync');
    // The write and its fsync in one call (an O_DSYNC write on RealDisk; extent-file.md, Writing).
    await file.handle.writevSynced(file.size, parts);
    file.size += bytes;
    await failpoint('journal.batch.after-fsync');
    this.stats.batches += 1;
    this.stats.records += batch.length;
    this.stats.fsyncs += 1;
    return file.state;
  }

  /** The active file, rotated when this batch would take it past journalFileBytesMax. */
  private async fileFor(batchBytes: number): Promise<ActiveFile> {
    const current = this.active;
    if (current !== null && (current.size === 0 || current.size + batchBytes <= journalFileBytesMax)) return current;
    if (current !== null) {
      this.active = null;
      await current.handle.close();
    }
    const sequence = this.nextSequence++;
    const path = `${journalDirectory}/${journalFileName(sequence)}`;
    const handle = await this.disk.open(path, { create: true, exclusive: true });
    const state: JournalFileState = { sequence, path, outstanding: 0 };
    this.files.push(state);
    this.active = { state, handle, size: 0 };
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
  | { readonly kind: 'record'; readonly record: JournalRecord }
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

type Probe =
  | { readonly kind: 'good'; readonly record: JournalRecord; readonly end: number }
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
        items.push({ kind: 'record', record: probe.record });
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
  return { kind: 'good', record: journalRecordOf(header, body), end };
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
