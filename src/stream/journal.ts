// The extent node's journal (docs/formats/journal.md): group commit of append records, one
// fsync per batch, and retirement of journal files whose records are all in fsync'd extent
// files. Also the crash-time scanner of journal files.
//
// Invariants:
// - append() resolves only after the record's batch is written and fsync'd, and after the
//   file's directory entry is durable (a new file is created exclusive, then journal/ synced).
// - One batch at a time: batch k+1 is written only after batch k's fsync returned, so the valid
//   records of a file after a crash are a prefix of what was written (in-order durability).
// - A file is retired (deleted, then journal/ synced) only when it is not the active file, no
//   tracked record in it is outstanding, and every older file is already retired.
//
// Fault model: a failed write or fsync fails the journal for good (fsyncgate: the dirty pages
// may be gone): the batch and everything queued reject with the failure, and so does every
// later append; onFailure tells the owner. Nothing is retried.
import { groupCommitBytesMax, groupCommitWindowMs, journalFileBytesMax } from '../constants.ts';
import type { Disk, DiskFile } from '../io/disk.ts';
import { assert } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { crcMatches } from '../util/crc32c.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { decodeJournalHeader, journalFileName, journalRecordHeaderBytes, journalRecordOf } from '../wire/journal-format.ts';
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
  readonly clock: Clock;
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

interface PendingRecord {
  readonly bytes: Buffer;
  readonly tracked: boolean;
  readonly resolve: (file: JournalFileState) => void;
  readonly reject: (error: unknown) => void;
}

interface ActiveFile {
  readonly state: JournalFileState;
  readonly handle: DiskFile;
  size: number;
}

export class Journal {
  readonly stats: JournalStats = { batches: 0, records: 0, fsyncs: 0, filesCreated: 0, filesRetired: 0 };
  private readonly disk: Disk;
  private readonly clock: Clock;
  private readonly onFailure: (error: StorageError) => void;
  private readonly files: JournalFileState[] = [];
  private active: ActiveFile | null = null;
  private queue: PendingRecord[] = [];
  private queuedBytes = 0;
  private timer: TimerHandle | null = null;
  private flushing: Promise<void> | null = null;
  private failure: StorageError | null = null;
  private nextSequence: number;

  constructor(options: JournalOptions) {
    this.disk = options.disk;
    this.clock = options.clock;
    this.onFailure = options.onFailure;
    this.nextSequence = options.firstSequence;
  }

  /**
   * Queues one encoded record; resolves with the file it landed in once it is durable. A
   * tracked record counts as outstanding in that file until release() is called for it.
   */
  append(bytes: Buffer, options: { readonly tracked: boolean }): Promise<JournalFileState> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const promise = new Promise<JournalFileState>((resolve, reject) => {
      this.queue.push({ bytes, tracked: options.tracked, resolve, reject });
    });
    this.queuedBytes += bytes.length;
    if (this.queuedBytes >= groupCommitBytesMax) this.startFlush();
    else if (this.timer === null && this.flushing === null) {
      this.timer = this.clock.setTimer(groupCommitWindowMs, () => {
        this.timer = null;
        this.startFlush();
      });
    }
    return promise;
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
    this.startFlush();
    while (this.flushing !== null) await this.flushing;
    const active = this.active;
    this.active = null;
    if (active !== null) await active.handle.close();
    if (this.failure === null) await this.retire();
  }

  private startFlush(): void {
    if (this.timer !== null) {
      this.timer.cancel();
      this.timer = null;
    }
    if (this.flushing !== null || this.queue.length === 0) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = null;
    });
  }

  /** Writes batches until the queue is empty; records queued during a fsync form the next batch. */
  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0 && this.failure === null) {
      const batch = this.takeBatch();
      try {
        const file = await this.writeBatch(batch);
        for (const record of batch) record.resolve(file);
      } catch (error) {
        const failure = this.fail(error);
        for (const record of batch) record.reject(failure);
      }
    }
    if (this.failure !== null) {
      for (const record of this.queue.splice(0)) record.reject(this.failure);
      this.queuedBytes = 0;
    }
  }

  private takeBatch(): PendingRecord[] {
    let bytes = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || bytes + (this.queue[count]?.bytes.length ?? 0) <= groupCommitBytesMax)) {
      bytes += this.queue[count]?.bytes.length ?? 0;
      count += 1;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, count);
  }

  private async writeBatch(batch: readonly PendingRecord[]): Promise<JournalFileState> {
    const bytes = Buffer.concat(batch.map((record) => record.bytes));
    const file = await this.fileFor(bytes.length);
    await file.handle.write(file.size, bytes);
    file.size += bytes.length;
    file.state.outstanding += batch.filter((record) => record.tracked).length;
    await file.handle.sync();
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

export interface JournalScan {
  readonly records: JournalRecord[];
  /** Bytes of the valid prefix; anything after it was ignored. */
  readonly validBytes: number;
  readonly fileBytes: number;
}

/** Reads the valid prefix of one journal file: records up to the first that does not decode. */
export async function scanJournalFile(disk: Disk, path: string): Promise<JournalScan> {
  const handle = await disk.open(path, { create: false });
  try {
    const fileBytes = await handle.size();
    const records: JournalRecord[] = [];
    let position = 0;
    for (;;) {
      const record = await readJournalRecord(handle, position, fileBytes);
      if (record === null) break;
      records.push(record.record);
      position = record.end;
    }
    return { records, validBytes: position, fileBytes };
  } finally {
    await handle.close();
  }
}

async function readJournalRecord(handle: DiskFile, position: number, fileBytes: number): Promise<{ record: JournalRecord; end: number } | null> {
  if (fileBytes - position < journalRecordHeaderBytes) return null;
  let header: JournalHeader;
  try {
    header = decodeJournalHeader(await handle.read(position, journalRecordHeaderBytes));
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) return null;
    throw error;
  }
  const end = position + journalRecordHeaderBytes + header.bodyBytes;
  if (end > fileBytes) return null;
  const body = await handle.read(position + journalRecordHeaderBytes, header.bodyBytes);
  if (body.length !== header.bodyBytes || !crcMatches(body, header.bodyCrc)) return null;
  return { record: journalRecordOf(header, body), end };
}
