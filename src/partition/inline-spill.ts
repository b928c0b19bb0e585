// Inline bytes leave the rows when they go into a run (docs/formats/partition-checkpoint.md,
// "Inline bytes spill"): a table may keep small data inline in a row (the blob tables: a small Put
// Blob's body, so the write is one durable log append), which is right while the row is in the
// memtable and its log record, and wrong in a run (runs would carry every small blob's bytes
// through every compaction, and scans of the table would read them). So every run the partition
// writes from its own rows (checkpoint, compaction) goes through a SpillingRunWriter: it appends
// the inline bytes of consecutive rows to the data stream in batched appends (≤ appendBytesMax
// each) and writes each row with its bytes replaced by a ref to where they now are, keeping the
// row's sequence, ETag and time (the row means the same thing: the table's `spilled` says so).
//
// Invariants: a row is written to the run only after the append holding its bytes is durable
// (the append resolves first); rows reach the run writer in the order given; at most
// appendBytesMax of inline bytes and spillRowsPendingMax rows are held back at once.
// Fault model: a failed append fails the run (the caller publishes nothing; the appended bytes
// are unreferenced data, garbage for data GC after its grace); a crash before the manifest leaves
// the log's inline rows to be replayed and spilled by the next checkpoint.
import { appendBytesMax } from '../constants.ts';
import { assert } from '../util/assert.ts';
import type { Column, DataRef, RowRecord } from '../wire/partition-row.ts';
import type { RunWriter } from './run-writer.ts';

/** What a table tells the partition about data it keeps inline in rows (TableSchema.inlineData). */
export interface InlineData {
  /** The bytes the row keeps inline that belong in the data stream once it leaves the memtable; null if none. */
  readonly bytes: (columns: readonly Column[]) => Buffer | null;
  /** The row's columns with those bytes named by `ref` instead: the same content for every reader. */
  readonly spilled: (columns: readonly Column[], ref: DataRef) => Column[];
}

/** Rows held back behind a pending spill before it is flushed (bounds memory on a long run of plain rows). */
const spillRowsPendingMax = 1024;

export interface SpillCounts {
  rows: number;
  bytes: number;
  appends: number;
}

type Pending = { readonly key: string; readonly row: RowRecord; readonly bytes: Buffer | null };

export class SpillingRunWriter {
  private readonly writer: RunWriter;
  private readonly inline: InlineData | null;
  private readonly append: (bytes: Buffer) => Promise<DataRef>;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  readonly counts: SpillCounts = { rows: 0, bytes: 0, appends: 0 };

  constructor(writer: RunWriter, inline: InlineData | null, append: (bytes: Buffer) => Promise<DataRef>) {
    this.writer = writer;
    this.inline = inline;
    this.append = append;
  }

  async add(key: string, row: RowRecord): Promise<void> {
    const bytes = this.inline !== null && row.kind === 'live' ? this.inline.bytes(row.columns) : null;
    if (bytes === null && this.pending.length === 0) return this.writer.add(key, row);
    if (bytes !== null) {
      assert(bytes.length > 0 && bytes.length <= appendBytesMax, 'inline bytes fit one data append');
      if (this.pendingBytes + bytes.length > appendBytesMax) await this.flush();
      this.pendingBytes += bytes.length;
    }
    this.pending.push({ key, row, bytes });
    if (this.pending.length >= spillRowsPendingMax) await this.flush();
  }

  async finish(): ReturnType<RunWriter['finish']> {
    await this.flush();
    return this.writer.finish();
  }

  /** One append of the pending rows' bytes (durable), then the rows, rewritten to name it. */
  private async flush(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    const total = this.pendingBytes;
    this.pendingBytes = 0;
    const ref = total === 0 ? null : await this.append(Buffer.concat(pending.flatMap((item) => (item.bytes === null ? [] : [item.bytes])), total));
    if (ref !== null) this.counts.appends += 1;
    let at = 0;
    for (const item of pending) {
      if (item.bytes === null || item.row.kind !== 'live' || ref === null || this.inline === null) {
        await this.writer.add(item.key, item.row);
        continue;
      }
      const own: DataRef = { extentId: ref.extentId, offset: ref.offset + at, length: item.bytes.length };
      at += item.bytes.length;
      await this.writer.add(item.key, { ...item.row, columns: this.inline.spilled(item.row.columns, own) });
      this.counts.rows += 1;
      this.counts.bytes += item.bytes.length;
    }
    assert(at === total, 'every spilled byte is named by one row');
  }
}
