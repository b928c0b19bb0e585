// Writes rows given in key order as one or more sorted runs to the checkpoint stream
// (docs/formats/partition-checkpoint.md): data blocks cut at the block target, each its own
// append (so a point read or a scan reads and checks one block, not a whole multi-MiB append:
// the stream layer verifies whole appends), up to runBlockAppendsInFlightMax of them in flight,
// then per run an append of index + bloom filter and an append of the footer. A run is cut
// before its data passes runBytesMax or its index or bloom filter would not fit one append, so a
// checkpoint or compaction of any size is a list of bounded runs.
//
// Invariants: rows arrive in strictly increasing key order (asserted); a run is reported (as a
// ManifestRun and an open RunReader) only after every record of it was acknowledged durable;
// memory held is one block, runBlockAppendsInFlightMax blocks being appended and 8 bytes of bloom
// hashes per row of the run; a finished run holds only bytes of its own (its index keys are copies,
// never views of the rows given, which may be views of a memtable's 1 MiB slabs). Blocks of a run may land in the stream in any order: the index
// records where each one landed.
// Fault model: any append may fail; the error propagates and the partially written runs are
// garbage no manifest names (the collector frees them later).
import { appendBytesMax, bloomBitsPerKey, bloomHashCount, runBlockAppendsInFlightMax } from '../constants.ts';
import { assert } from '../util/assert.ts';
import type { Clock } from '../util/clock.ts';
import {
  BloomFilter, bloomHashes, checkpointBodyBytesMax, encodeBlockRows, encodeBloom, encodeFooter, encodeIndex, indexEntryBytes,
} from '../wire/partition-checkpoint.ts';
import type { IndexEntry, LogPosition, ManifestRun, RecordLocation } from '../wire/partition-checkpoint.ts';
import { encodeRow, encodedRowIsTombstone, encodedRowKey, encodedRowSequence } from '../wire/partition-row.ts';
import type { RowRecord } from '../wire/partition-row.ts';
import type { PartitionStreams } from './partition-streams.ts';
import { RunReader } from './run-reader.ts';

/** Rows whose bloom filter still fits one append (with a margin for one block of rows). */
const runRowsMax = Math.floor(((checkpointBodyBytesMax - 4) * 8) / bloomBitsPerKey) - 65_536;

export interface RunWriterOptions {
  readonly streams: PartitionStreams;
  readonly streamId: number;
  readonly partitionId: number;
  readonly clock: Clock;
  readonly allocateRunId: () => number;
  readonly coveredSequence: number;
  readonly logStart: LogPosition;
  readonly blockBytesTarget: number;
  readonly runBytesMax: number;
}

interface OpenRun {
  readonly runId: number;
  readonly index: Array<{ firstKey: Buffer; rowCount: number; location: RecordLocation | null }>;
  hashes: Uint32Array;
  rowCount: number;
  tombstoneCount: number;
  minSequence: number;
  maxSequence: number;
  dataBytes: number;
  indexBytes: number;
}

export class RunWriter {
  private readonly options: RunWriterOptions;
  private run: OpenRun | null = null;
  private blockRows: Buffer[] = [];
  private blockFirstKey: Buffer | null = null;
  private blockBytes = 0;
  /** Block appends in flight; each settles without rejecting (a failure is kept in appendFailure). */
  private readonly appending = new Set<Promise<void>>();
  private appendFailure: { readonly error: unknown } | null = null;
  private lastKey: string | null = null;
  private readonly finished: Array<{ run: ManifestRun; reader: RunReader }> = [];

  constructor(options: RunWriterOptions) {
    this.options = options;
  }

  async add(key: string, row: RowRecord): Promise<void> {
    await this.addEncoded(key, encodeRow(row));
  }

  /**
   * Adds a row given in the row codec (encodeRow's bytes: a memtable's, or a row spliced by
   * inline-spill.ts). It may be a view of a buffer the caller keeps unchanged until the block
   * holding it is cut (the run's end at the latest): a checkpoint passes its slabs' bytes.
   */
  async addEncoded(key: string, row: Buffer): Promise<void> {
    assert(this.lastKey === null || this.lastKey < key, 'run rows arrive in strictly increasing key order');
    this.lastKey = key;
    const rowKey = encodedRowKey(row);
    if (this.blockRows.length === 0 && this.run !== null && this.runFull(rowKey.length)) await this.finishRun();
    const run = this.run ?? this.startRun();
    this.blockRows.push(row);
    // A copy: the index lives as long as the run, and the row may be a view of a memtable slab.
    this.blockFirstKey ??= Buffer.from(rowKey);
    this.blockBytes += 4 + row.length;
    const [h1, h2] = bloomHashes(rowKey);
    if (run.hashes.length < (run.rowCount + 1) * 2) run.hashes = grow(run.hashes);
    run.hashes[run.rowCount * 2] = h1;
    run.hashes[run.rowCount * 2 + 1] = h2;
    run.rowCount += 1;
    if (encodedRowIsTombstone(row)) run.tombstoneCount += 1;
    const sequence = encodedRowSequence(row);
    run.minSequence = Math.min(run.minSequence, sequence);
    run.maxSequence = Math.max(run.maxSequence, sequence);
    if (this.blockBytes >= this.options.blockBytesTarget) await this.cutBlock();
  }

  /** Writes what remains; returns the runs written, in key order. */
  async finish(): Promise<Array<{ run: ManifestRun; reader: RunReader }>> {
    if (this.run !== null) await this.finishRun();
    return this.finished;
  }

  private runFull(nextKeyBytes: number): boolean {
    const run = this.run;
    assert(run !== null, 'runFull on an open run');
    return run.dataBytes >= this.options.runBytesMax || run.rowCount >= runRowsMax || run.indexBytes + indexEntryBytes(nextKeyBytes) > checkpointBodyBytesMax;
  }

  private startRun(): OpenRun {
    this.run = {
      runId: this.options.allocateRunId(), index: [], hashes: new Uint32Array(1024), rowCount: 0, tombstoneCount: 0,
      minSequence: Number.MAX_SAFE_INTEGER, maxSequence: 0, dataBytes: 0, indexBytes: 0,
    };
    return this.run;
  }

  private async cutBlock(): Promise<void> {
    const run = this.run;
    if (run === null || this.blockRows.length === 0 || this.blockFirstKey === null) return;
    const record = encodeBlockRows(run.runId, this.blockRows);
    const entry: OpenRun['index'][number] = { firstKey: this.blockFirstKey, rowCount: this.blockRows.length, location: null };
    run.index.push(entry);
    run.dataBytes += record.length;
    run.indexBytes += indexEntryBytes(entry.firstKey.length);
    this.blockRows = [];
    this.blockFirstKey = null;
    this.blockBytes = 0;
    while (this.appending.size >= runBlockAppendsInFlightMax) await Promise.race(this.appending);
    this.throwIfAppendFailed();
    const append = this.options.streams.append(this.options.streamId, record).then(
      (position) => { entry.location = { extentId: position.extentId, offset: position.offset, length: record.length }; },
      (error: unknown) => { this.appendFailure ??= { error }; },
    ).finally(() => this.appending.delete(append));
    this.appending.add(append);
  }

  /** Waits for every block append in flight; throws the first failure. */
  private async flush(): Promise<void> {
    while (this.appending.size > 0) await Promise.all(this.appending);
    this.throwIfAppendFailed();
  }

  private throwIfAppendFailed(): void {
    if (this.appendFailure !== null) throw this.appendFailure.error;
  }

  private async finishRun(): Promise<void> {
    await this.cutBlock();
    await this.flush();
    const run = this.run;
    assert(run !== null && run.rowCount > 0, 'a finished run holds rows');
    this.run = null;
    const index: IndexEntry[] = run.index.map((entry) => {
      assert(entry.location !== null, 'every block was appended before its run is finished');
      return { firstKey: entry.firstKey, rowCount: entry.rowCount, location: entry.location };
    });
    const bloom = BloomFilter.sized(run.rowCount, bloomBitsPerKey, bloomHashCount);
    for (let i = 0; i < run.rowCount; i++) bloom.addHashes(run.hashes[i * 2] ?? 0, run.hashes[i * 2 + 1] ?? 0);
    const [indexLocation, bloomLocation] = await this.appendTogether([encodeIndex(run.runId, index), encodeBloom(run.runId, bloom)]);
    assert(indexLocation !== undefined && bloomLocation !== undefined, 'two records, two locations');
    const footer = {
      partitionId: this.options.partitionId, runId: run.runId, rowCount: run.rowCount, tombstoneCount: run.tombstoneCount,
      minSequence: run.minSequence, maxSequence: run.maxSequence, coveredSequence: this.options.coveredSequence,
      logStart: this.options.logStart, index: indexLocation, bloom: bloomLocation, dataBytes: run.dataBytes, createdAtMs: this.options.clock.nowMs(),
    };
    const [footerLocation] = await this.appendTogether([encodeFooter(footer)]);
    assert(footerLocation !== undefined, 'one record, one location');
    const reader = new RunReader({ streams: this.options.streams, streamId: this.options.streamId, footerLocation, footer, index, bloom });
    this.finished.push({ run: { runId: run.runId, footer: footerLocation }, reader });
  }

  /** Appends records in as few appends as fit; returns each record's location. */
  private async appendTogether(records: readonly Buffer[]): Promise<RecordLocation[]> {
    if (records.length === 0) return [];
    const total = records.reduce((sum, record) => sum + record.length, 0);
    if (total > appendBytesMax) return [...await this.appendTogether(records.slice(0, 1)), ...await this.appendTogether(records.slice(1))];
    const position = await this.options.streams.append(this.options.streamId, Buffer.concat(records, total));
    let offset = position.offset;
    return records.map((record) => {
      const location = { extentId: position.extentId, offset, length: record.length };
      offset += record.length;
      return location;
    });
  }
}

function grow(hashes: Uint32Array): Uint32Array {
  const larger = new Uint32Array(hashes.length * 2);
  larger.set(hashes);
  return larger;
}
