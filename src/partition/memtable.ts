// The memtable: a partition's newest rows in memory, sorted by key, holding one version per key
// (a live row or a tombstone). Rows enter it only after their commit-log record is durable; it is
// frozen and written to a run by a checkpoint when it passes its size bound.
//
// Rows are held encoded, as the commit log frames them (u32 rowBytes, then the row codec bytes),
// copied into slabs of memtableSlabBytes, and decoded when read: a row costs the JS heap its key
// string and a Map slot, not a tree of objects that every full GC marks. A version that a newer one
// replaces stays in its slab until the memtable is dropped after its checkpoint.
//
//   slab 0                                   slab 1
//   | u32 n | row (n bytes) | u32 m | row |…  | u32 k | row | …          (position = slab·2^22 + offset)
//
// Keys are held as latin1 strings (one code unit per byte), whose JavaScript order is unsigned
// byte order. The sorted key list is a list of chunks (each at most chunkKeysMax keys), so an
// insert costs O(log n + chunk) instead of moving the whole array.
//
// Invariants: chunks are non-empty, keys strictly increase across and within chunks, and the
// key set equals the map's; each key's position holds its newest version, framed; `bytes` is the
// sum of the framed sizes of every version applied (the slab bytes in use, replaced versions
// included: the memory held). Rows handed out by get() own their bytes (copies), so a caller
// that keeps one (the partition's row cache) never pins a slab; views of a slab (encoded(),
// entries(), encodedEntries()) are for callers that drop them within the call or the checkpoint
// that reads them.
// Iteration is by key (`keysAfter`), so a reader that yields between pages never sees a stale
// position when writes insert keys.
// Fault model: memory only; nothing here fails except by programmer error (assertions).
import { memtableSlabBytes } from '../constants.ts';
import { assert } from '../util/assert.ts';
import { decodeRow, decodeRowDeferred, encodedRowIsTombstone, type RowRecord } from '../wire/partition-row.ts';

const chunkKeysMax = 512;
/** Slab offsets are below 2^22 (a slab is at most memtableSlabBytes or one row of ≤ 2 MiB + 4). */
const slabStride = 2 ** 22;

export class Memtable {
  /** Key → position of its newest version's framed bytes. */
  private readonly rows = new Map<string, number>();
  private readonly chunks: string[][] = [];
  private readonly slabs: Buffer[] = [];
  /** Where the next row goes in the last slab. */
  private slabUsed = memtableSlabBytes;
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

  /**
   * The newest version of `key`, decoded into values of its own (no view of a slab). Decoded at
   * each call: the partition's row cache keeps the rows read again (Partition.knownRow).
   */
  get(key: string): RowRecord | undefined {
    const encoded = this.encoded(key);
    return encoded === undefined ? undefined : decodeRow(encoded);
  }

  /** The newest version of `key` in the row codec, a view of a slab (read it, do not keep it). */
  encoded(key: string): Buffer | undefined {
    const framed = this.framedView(key);
    return framed?.subarray(4);
  }

  /**
   * The newest version of `key` framed as a partition.get answer body (u32 length + row), or null
   * if it is a tombstone, or undefined if the memtable does not hold the key. A copy: the caller
   * may keep it (an answer in flight, a row decoded from it and cached) without pinning a slab.
   */
  framed(key: string): Buffer | null | undefined {
    const framed = this.framedView(key);
    if (framed === undefined) return undefined;
    return encodedRowIsTombstone(framed.subarray(4)) ? null : Buffer.from(framed);
  }

  /** Holds `row` as the newest version of its key; `framed` is it as its log record frames it (u32 length + row). */
  apply(key: string, row: RowRecord, framed: Buffer, nowMs: number): void {
    assert(row.sequence >= this.maxSequence, 'memtable rows arrive in sequence order');
    assert(framed.length >= 4 && framed.readUInt32BE(0) === framed.length - 4, 'a framed row is its length and its bytes');
    if (!this.rows.has(key)) this.insertKey(key);
    this.rows.set(key, this.copyIn(framed));
    this.byteCount += framed.length;
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

  /** Every row in key order, decoded as views of the slabs (for GC passes over this memtable). */
  *entries(): Generator<readonly [string, RowRecord]> {
    for (const [key, encoded] of this.encodedEntries()) yield [key, decodeRowDeferred(encoded)];
  }

  /** Every row in key order in the row codec, views of the slabs (a checkpoint writes them to its run as they are). */
  *encodedEntries(): Generator<readonly [string, Buffer]> {
    for (const chunk of this.chunks) {
      for (const key of chunk) {
        const encoded = this.encoded(key);
        assert(encoded !== undefined, 'memtable key list and map agree');
        yield [key, encoded];
      }
    }
  }

  private framedView(key: string): Buffer | undefined {
    const at = this.rows.get(key);
    return at === undefined ? undefined : this.framedAt(at);
  }

  private framedAt(at: number): Buffer {
    const slab = this.slabs[Math.floor(at / slabStride)];
    assert(slab !== undefined, 'a row position names a slab');
    const offset = at % slabStride;
    return slab.subarray(offset, offset + 4 + slab.readUInt32BE(offset));
  }

  /** Copies a framed row into the last slab (a new one when it does not fit); its position. */
  private copyIn(framed: Buffer): number {
    if (this.slabUsed + framed.length > (this.slabs.at(-1)?.length ?? 0)) {
      this.slabs.push(Buffer.allocUnsafeSlow(Math.max(memtableSlabBytes, framed.length)));
      this.slabUsed = 0;
    }
    const slab = this.slabs.at(-1);
    assert(slab !== undefined && framed.length < slabStride, 'a slab has room for the row');
    framed.copy(slab, this.slabUsed);
    const at = (this.slabs.length - 1) * slabStride + this.slabUsed;
    this.slabUsed += framed.length;
    return at;
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
