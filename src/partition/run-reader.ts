// One sorted run of a partition's checkpoint (docs/formats/partition-checkpoint.md): its footer,
// sparse index and bloom filter held in memory, its data blocks read from the checkpoint stream
// on demand (through the partition's bounded block cache) and CRC-checked by the codec.
//
// Point read: bloom filter says "no" → done without I/O; else binary-search the index for the
// block whose first key ≤ key, fetch that one block (~64 KiB), binary-search its keys, decode
// that one row (blocks are cached checked but encoded: BlockRows).
// Scan: RunCursor walks blocks in order from a seek position, reading a few blocks ahead; a scan's
// blocks are kept in a small cache of their own (scan resistance), not the point reads' cache.
//
// Invariants: index entries are in key order and name every block of the run; a block returned
// decoded holds strictly increasing keys (checked by the codec) and belongs to this run.
// Fault model: a block that fails its CRC or does not decode throws (wire.corrupt from the codec,
// stream.unavailable from the stream layer); nothing wrong is ever returned as a row.
import { assert } from '../util/assert.ts';
import { StorageError } from '../util/errors.ts';
import { decodeBloom, decodeFooter, decodeIndex, splitBlock } from '../wire/partition-checkpoint.ts';
import type { BloomFilter, IndexEntry, ManifestRun, RecordLocation, RunFooter, SplitBlock } from '../wire/partition-checkpoint.ts';
import { decodeRow } from '../wire/partition-row.ts';
import type { RowRecord } from '../wire/partition-row.ts';
import type { LruCache } from '../util/lru-cache.ts';
import type { PartitionStreams } from './partition-streams.ts';

/**
 * A checked block: keys (latin1 strings) beside their rows, still encoded. A row is decoded each
 * time it is asked for (a point read wants one row of ~200; a scan or a compaction asks once per
 * key), so the block cache holds about the block's encoded bytes, the weight it is charged.
 */
export class BlockRows {
  readonly keys: readonly string[];
  private readonly body: Buffer;
  private readonly rowBounds: Uint32Array;

  constructor(block: SplitBlock) {
    this.keys = block.keys;
    this.body = block.body;
    this.rowBounds = block.rowBounds;
  }

  /** The row at `index` (decoded now), or null past the end. */
  row(index: number): RowRecord | null {
    const bytes = this.encodedAt(index);
    return bytes === null ? null : decodeRow(bytes);
  }

  /** The row at `index` with its u32 length before it, as the block frames it (a view), or null past the end. */
  framedAt(index: number): Buffer | null {
    if (index < 0 || index >= this.keys.length) return null;
    const start = this.rowBounds[index * 2] ?? 0;
    assert(start >= 4 && this.body.readUInt32BE(start - 4) === (this.rowBounds[index * 2 + 1] ?? 0) - start, 'a block frames each row with its length');
    return this.body.subarray(start - 4, this.rowBounds[index * 2 + 1]);
  }

  /** The row at `index` as its block holds it (row codec bytes, a view), or null past the end. */
  encodedAt(index: number): Buffer | null {
    if (index < 0 || index >= this.keys.length) return null;
    return this.body.subarray(this.rowBounds[index * 2], this.rowBounds[index * 2 + 1]);
  }
}

export type BlockCache = LruCache<string, BlockRows>;

export interface RunReaderParts {
  readonly streams: PartitionStreams;
  readonly streamId: number;
  readonly footerLocation: RecordLocation;
  readonly footer: RunFooter;
  readonly index: readonly IndexEntry[];
  readonly bloom: BloomFilter;
}

export class RunReader {
  readonly runId: number;
  readonly footer: RunFooter;
  readonly footerLocation: RecordLocation;
  private readonly streams: PartitionStreams;
  private readonly streamId: number;
  private readonly index: readonly IndexEntry[];
  private readonly indexKeys: readonly string[];
  private readonly bloom: BloomFilter;

  constructor(parts: RunReaderParts) {
    this.runId = parts.footer.runId;
    this.footer = parts.footer;
    this.footerLocation = parts.footerLocation;
    this.streams = parts.streams;
    this.streamId = parts.streamId;
    this.index = parts.index;
    this.indexKeys = parts.index.map((entry) => entry.firstKey.toString('latin1'));
    this.bloom = parts.bloom;
  }

  /** Reads a run's footer, index and bloom filter (three verified reads). */
  static async open(options: { streams: PartitionStreams; streamId: number; run: ManifestRun; partitionId: number }): Promise<RunReader> {
    const { streams, streamId, run } = options;
    const read = (location: RecordLocation): Promise<Buffer> => streams.read(streamId, location.extentId, location.offset, location.length);
    const footer = decodeFooter(await read(run.footer), run.runId);
    if (footer.partitionId !== options.partitionId) {
      throw new StorageError('partition.corrupt', `run ${run.runId} belongs to partition ${footer.partitionId}`, { context: { runId: run.runId } });
    }
    const [indexBytes, bloomBytes] = await Promise.all([read(footer.index), read(footer.bloom)]);
    return new RunReader({ streams, streamId, footerLocation: run.footer, footer, index: decodeIndex(indexBytes, run.runId), bloom: decodeBloom(bloomBytes, run.runId) });
  }

  /** Every checkpoint extent holding a record of this run (blocks, index, bloom, footer). */
  extentIds(): Set<number> {
    const ids = new Set([this.footerLocation.extentId, this.footer.index.extentId, this.footer.bloom.extentId]);
    for (const entry of this.index) ids.add(entry.location.extentId);
    return ids;
  }

  get blockCount(): number {
    return this.index.length;
  }

  mayContain(key: Buffer): boolean {
    return this.bloom.mayContain(key);
  }

  /** Index of the last block whose first key ≤ key, or -1 when key sorts before the run. */
  blockFor(key: string): number {
    let low = 0;
    let high = this.indexKeys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.indexKeys[middle] ?? '') <= key) low = middle + 1;
      else high = middle;
    }
    return low - 1;
  }

  /** Rows in block `blockIndex` (from the index: no read). */
  blockRows(blockIndex: number): number {
    return this.index[blockIndex]?.rowCount ?? 0;
  }

  /**
   * Block `blockIndex`, checked: from `cache` or `fill` if either holds it, else read, split and
   * kept in `fill` (by default `cache`; a scan passes its own, so it does not evict point reads').
   */
  async block(blockIndex: number, cache: BlockCache | null, fill: BlockCache | null = cache): Promise<BlockRows> {
    const cacheKey = `${this.runId}/${blockIndex}`;
    const cached = cache?.get(cacheKey) ?? (fill === cache ? undefined : fill?.get(cacheKey));
    if (cached !== undefined) return cached;
    const entry = this.index[blockIndex];
    if (entry === undefined) throw new RangeError(`run ${this.runId} has no block ${blockIndex}`);
    const { extentId, offset, length } = entry.location;
    const split = splitBlock(await this.streams.read(this.streamId, extentId, offset, length), this.runId);
    if (split.keys.length !== entry.rowCount) {
      throw new StorageError('partition.corrupt', `run ${this.runId} block ${blockIndex} holds ${split.keys.length} rows, index says ${entry.rowCount}`);
    }
    const block = new BlockRows(split);
    fill?.set(cacheKey, block, length);
    return block;
  }

  /** The run's version of `key` (a live row or a tombstone), or null if the run lacks it. */
  async get(key: string, keyBytes: Buffer, cache: BlockCache | null): Promise<RowRecord | null> {
    const found = await this.locate(key, keyBytes, cache);
    return found === null ? null : found.block.row(found.position);
  }

  /** get() left encoded: the run's version of `key` framed as its block holds it (u32 length +
   * row, a view of the checked block, a tombstone included), or null if the run lacks it. */
  async getFramed(key: string, keyBytes: Buffer, cache: BlockCache | null): Promise<Buffer | null> {
    const found = await this.locate(key, keyBytes, cache);
    return found === null ? null : found.block.framedAt(found.position);
  }

  /** False when the run certainly lacks `key` (its bloom filter or index says so), without a read. */
  mayHold(key: string, keyBytes: Buffer): boolean {
    return this.bloom.mayContain(keyBytes) && this.blockFor(key) >= 0;
  }

  /** The block holding `key` and its position there, or null if the run lacks it. */
  private async locate(key: string, keyBytes: Buffer, cache: BlockCache | null): Promise<{ block: BlockRows; position: number } | null> {
    if (!this.mayHold(key, keyBytes)) return null;
    const blockIndex = this.blockFor(key);
    const block = await this.block(blockIndex, cache);
    const position = lowerBound(block.keys, key, true);
    return block.keys[position] === key ? { block, position } : null;
  }
}

/** First index whose key is ≥ key (inclusive) or > key (not inclusive). */
export function lowerBound(keys: readonly string[], key: string, inclusive: boolean): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const probe = keys[middle] ?? '';
    if (inclusive ? probe < key : probe <= key) low = middle + 1;
    else high = middle;
  }
  return low;
}
