// Inline bytes leave the rows when they go into a run (docs/formats/partition-checkpoint.md,
// "Inline bytes spill"): a table may keep small data inline in a row (the blob tables: a small Put
// Blob's body, so the write is one durable log append), which is right while the row is in the
// memtable and its log record, and wrong in a run (runs would carry every small blob's bytes
// through every compaction, and scans of the table would read them). So every run the partition
// writes from its own rows (checkpoint, compaction) goes through a SpillingRunWriter: it appends
// the inline bytes of consecutive rows to the data stream in batched appends (≤ appendBytesMax
// each) and writes each row with its bytes replaced by a ref to where they now are, keeping the
// row's sequence, ETag and time (the row means the same thing: the table's `spilledColumns` say
// so). Rows are handled in the row codec: a row's bytes are found and spliced in place
// (findEncodedColumn, replaceEncodedColumn), never decoded, and a row without inline bytes is
// passed on as it is (a checkpoint hands its memtable's slab bytes straight to the run, a
// compaction its input blocks' bytes).
//
// Invariants: a row is written to the run only after the append holding its bytes is durable
// (the append resolves first); rows reach the run writer in the order given; at most
// appendBytesMax of inline bytes and spillRowsPendingMax rows are held back at once.
// Fault model: a failed append fails the run (the caller publishes nothing; the appended bytes
// are unreferenced data, garbage for data GC after its grace); a crash before the manifest leaves
// the log's inline rows to be replayed and spilled by the next checkpoint.
import { appendBytesMax } from '../constants.ts';
import { assert } from '../util/assert.ts';
import { findEncodedColumn, replaceEncodedColumn } from '../wire/partition-row.ts';
import type { Column, DataRef, EncodedColumn } from '../wire/partition-row.ts';
import type { RunWriter } from './run-writer.ts';

/** What a table tells the partition about data it keeps inline in rows (TableSchema.inlineData). */
export interface InlineData {
  /** The column that holds a row's inline bytes, as a non-empty bytes value (any other value is none). */
  readonly column: string;
  /** The columns naming those bytes at `ref` instead, which take the column's place after the row's
   * other columns: the same content for every reader. */
  readonly spilledColumns: (ref: DataRef) => Column[];
}

/** Rows held back behind a pending spill before it is flushed (bounds memory on a long run of plain rows). */
const spillRowsPendingMax = 1024;

export interface SpillCounts {
  rows: number;
  bytes: number;
  appends: number;
}

/** A row held back (encoded) and its inline bytes' column (its value a view of the row), if any. */
type Pending = { readonly key: string; readonly row: Buffer; readonly inline: InlineColumn | null };
type InlineColumn = EncodedColumn & { readonly bytes: Buffer };

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

  /** A row in the row codec; may be a view (of a memtable slab, a run block) that stays unchanged until finish(). */
  async addEncoded(key: string, row: Buffer): Promise<void> {
    const inline = this.inlineColumn(row);
    if (inline === null && this.pending.length === 0) return this.writer.addEncoded(key, row);
    if (inline !== null) {
      assert(inline.bytes.length <= appendBytesMax, 'inline bytes fit one data append');
      if (this.pendingBytes + inline.bytes.length > appendBytesMax) await this.flush();
      this.pendingBytes += inline.bytes.length;
    }
    this.pending.push({ key, row, inline });
    if (this.pending.length >= spillRowsPendingMax) await this.flush();
  }

  async finish(): ReturnType<RunWriter['finish']> {
    await this.flush();
    return this.writer.finish();
  }

  private inlineColumn(row: Buffer): InlineColumn | null {
    const column = this.inline === null ? null : findEncodedColumn(row, this.inline.column);
    if (column === null || column.bytes === null || column.bytes.length === 0) return null;
    return { start: column.start, end: column.end, bytes: column.bytes };
  }

  /** One append of the pending rows' bytes (durable), then the rows, rewritten to name it. */
  private async flush(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    const total = this.pendingBytes;
    this.pendingBytes = 0;
    const ref = total === 0 ? null : await this.append(Buffer.concat(pending.flatMap((item) => (item.inline === null ? [] : [item.inline.bytes])), total));
    if (ref !== null) this.counts.appends += 1;
    let at = 0;
    for (const item of pending) {
      if (item.inline === null || ref === null || this.inline === null) {
        await this.writer.addEncoded(item.key, item.row);
        continue;
      }
      const own: DataRef = { extentId: ref.extentId, offset: ref.offset + at, length: item.inline.bytes.length };
      at += item.inline.bytes.length;
      await this.writer.addEncoded(item.key, replaceEncodedColumn(item.row, item.inline, this.inline.spilledColumns(own)));
      this.counts.rows += 1;
      this.counts.bytes += item.inline.bytes.length;
    }
    assert(at === total, 'every spilled byte is named by one row');
  }
}
