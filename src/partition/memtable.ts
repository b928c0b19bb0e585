// The memtable: a partition's newest rows in memory, sorted by key, holding one version per key
// (a live row or a tombstone). Rows enter it only after their commit-log record is durable; it is
// frozen and written to a run by a checkpoint when it passes its size bound.
//
// Keys are held as latin1 strings (one code unit per byte), whose JavaScript order is unsigned
// byte order. The sorted key list is a list of chunks (each at most chunkKeysMax keys), so an
// insert costs O(log n + chunk) instead of moving the whole array.
//
// Invariants: chunks are non-empty, keys strictly increase across and within chunks, and the
// key set equals the map's; `bytes` is the sum of the encoded sizes of the versions held.
// Iteration is by key (`keysAfter`), so a reader that yields between pages never sees a stale
// position when writes insert keys.
// Fault model: memory only; nothing here fails except by programmer error (assertions).
import { assert } from '../util/assert.ts';
import { decodeRowDeferred, encodeFramedRows, type RowRecord } from '../wire/partition-row.ts';

const chunkKeysMax = 512;

export interface MemtableEntry {
  readonly row: RowRecord;
  readonly encodedBytes: number;
  /** The row as a point get answers it (u32 length + row codec bytes), made by the first framed()
   * of this version; `row` is then a view of these bytes (no second copy of an inline body). */
  readonly framed?: Buffer;
}

export class Memtable {
  private readonly rows = new Map<string, MemtableEntry>();
  private readonly chunks: string[][] = [];
  private byteCount = 0;
  private maxSequence = 0;
  /** Monotonic time of the first row, for checkpoint-by-age. */
  firstWriteMs: number | null = null;

  get size(): number {
    return this.rows.size;
  }

  get bytes(): number {
    return this.byteCount;
  }

  get highestSequence(): number {
    return this.maxSequence;
  }

  get(key: string): RowRecord | undefined {
    return this.rows.get(key)?.row;
  }

  /**
   * The newest version of `key` framed as a partition.get answer body (u32 length + row), or null
   * if it is a tombstone, or undefined if the memtable does not hold the key. Encoded on the first
   * call for each version and kept: repeated point reads of a fresh row (a blob just written, with
   * its inline body) send the same bytes without encoding them again. The entry's row is replaced
   * by a row decoded from those bytes (views, equal to it), so the memtable does not hold the
   * version twice; the callee of a point read treats the bytes as read-only (the Network seam's
   * ownership rule), so they never change under the row.
   */
  framed(key: string): Buffer | null | undefined {
    const entry = this.rows.get(key);
    if (entry === undefined) return undefined;
    if (entry.row.kind !== 'live') return null;
    if (entry.framed !== undefined) return entry.framed;
    const framed = encodeFramedRows([entry.row], 0);
    this.rows.set(key, { row: decodeRowDeferred(framed.subarray(4)), encodedBytes: entry.encodedBytes, framed });
    return framed;
  }

  /** Holds `row` as the newest version of its key. */
  apply(key: string, row: RowRecord, encodedBytes: number, nowMs: number): void {
    assert(row.sequence >= this.maxSequence, 'memtable rows arrive in sequence order');
    const previous = this.rows.get(key);
    if (previous === undefined) this.insertKey(key);
    this.byteCount += encodedBytes - (previous?.encodedBytes ?? 0);
    this.rows.set(key, { row, encodedBytes });
    this.maxSequence = row.sequence;
    this.firstWriteMs ??= nowMs;
  }

  /** Up to `limit` keys in order, starting at `from` (inclusive or not); from = null: the first. */
  keysAfter(from: string | null, inclusive: boolean, limit: number): string[] {
    const out: string[] = [];
    let [chunkIndex, index] = from === null ? [0, 0] : this.position(from, inclusive);
    while (chunkIndex < this.chunks.length && out.length < limit) {
      const chunk = this.chunks[chunkIndex];
      assert(chunk !== undefined, 'chunk index within range');
      for (; index < chunk.length && out.length < limit; index++) out.push(chunk[index] ?? '');
      if (index >= chunk.length) {
        chunkIndex += 1;
        index = 0;
      }
    }
    return out;
  }

  /** Every entry in key order (for checkpoints of a frozen memtable). */
  *entries(): Generator<readonly [string, MemtableEntry]> {
    for (const chunk of this.chunks) {
      for (const key of chunk) {
        const entry = this.rows.get(key);
        assert(entry !== undefined, 'memtable key list and map agree');
        yield [key, entry];
      }
    }
  }

  private insertKey(key: string): void {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      return;
    }
    const [chunkIndex, index] = this.position(key, true);
    const target = Math.min(chunkIndex, this.chunks.length - 1);
    const chunk = this.chunks[target];
    assert(chunk !== undefined, 'a chunk exists');
    chunk.splice(chunkIndex === target ? index : chunk.length, 0, key);
    if (chunk.length > chunkKeysMax) this.chunks.splice(target + 1, 0, chunk.splice(chunkKeysMax >> 1));
  }

  /** [chunk, index] of the first key >= `key` (or > `key` when not inclusive). */
  private position(key: string, inclusive: boolean): [number, number] {
    let low = 0;
    let high = this.chunks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const last = this.chunks[middle]?.at(-1) ?? '';
      if (inclusive ? last < key : last <= key) low = middle + 1;
      else high = middle;
    }
    const chunk = this.chunks[low];
    if (chunk === undefined) return [this.chunks.length, 0];
    let first = 0;
    let end = chunk.length;
    while (first < end) {
      const middle = (first + end) >>> 1;
      const probe = chunk[middle] ?? '';
      if (inclusive ? probe < key : probe <= key) first = middle + 1;
      else end = middle;
    }
    return [low, first];
  }
}
