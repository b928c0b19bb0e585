// Ordered cursors over a partition's sources and their merge: the memtable, a frozen memtable and
// each run yield (key, version) in key order; MergeCursor yields, for each key, the version of
// the newest source that holds it (sources are given newest first). Scans and compaction use it.
//
// Invariants:
// - a cursor's key() strictly increases between next() calls, and seek(k) positions it at the
//   first key ≥ k (or > k), so re-seeking forward skips whole key ranges (delimiter listing);
// - MergeCursor.row() is the version of the lowest-numbered (newest) source at the smallest key;
//   next() advances every source positioned at that key, so an older version is never yielded.
// - a memtable cursor pages by key, not by position, so concurrent inserts cannot derail it.
// Cost: MergeCursor.step() moves sources within their current block or memtable page
// synchronously (nextInMemory) and returns a promise only when one must read a block, so a
// scan pays no promise or microtask per row. A run cursor moving block to block reads up to
// RunCursorReads.aheadBlocks blocks ahead (bounded by the rows its reader may want), so the
// reads of a scan or a compaction overlap its work on rows.
// Fault model: run cursors read blocks from streams and may throw (stream.unavailable,
// wire.corrupt); the error propagates to the scan or compaction, which yields nothing wrong.
import { assert } from '../util/assert.ts';
import type { RowRecord } from '../wire/partition-row.ts';
import type { Memtable } from './memtable.ts';
import { lowerBound } from './run-reader.ts';
import type { BlockCache, BlockRows, RunReader } from './run-reader.ts';

export interface SourceCursor {
  key(): string | null;
  row(): RowRecord | null;
  /** The current row in the row codec if the source holds it encoded (runs, memtables), else null. */
  encoded(): Buffer | null;
  seek(key: string, inclusive: boolean): Promise<void>;
  next(): Promise<void>;
  /** Moves to the next key if that needs no I/O (true); otherwise moves nothing (false). */
  nextInMemory(): boolean;
}

const memtablePageKeys = 256;

export class MemtableCursor implements SourceCursor {
  private readonly memtable: Memtable;
  private page: string[] = [];
  private index = 0;

  constructor(memtable: Memtable) {
    this.memtable = memtable;
  }

  key(): string | null {
    return this.page[this.index] ?? null;
  }

  row(): RowRecord | null {
    const key = this.key();
    return key === null ? null : this.memtable.get(key) ?? null;
  }

  encoded(): Buffer | null {
    const key = this.key();
    return key === null ? null : this.memtable.encoded(key) ?? null;
  }

  seek(key: string, inclusive: boolean): Promise<void> {
    this.page = this.memtable.keysAfter(key, inclusive, memtablePageKeys);
    this.index = 0;
    return Promise.resolve();
  }

  nextInMemory(): boolean {
    if (this.index + 1 >= this.page.length) return false;
    this.index += 1;
    return true;
  }

  next(): Promise<void> {
    const current = this.key();
    assert(current !== null, 'next() on an exhausted cursor');
    this.index += 1;
    if (this.index >= this.page.length) {
      this.page = this.page.length < memtablePageKeys ? [] : this.memtable.keysAfter(current, false, memtablePageKeys);
      this.index = 0;
    }
    return Promise.resolve();
  }
}

/** Where a run cursor finds and keeps blocks, and how far it reads ahead. */
export interface RunCursorReads {
  /** Looked up first (the partition's block cache of point reads); filled only if it is also `fill`. */
  readonly cache: BlockCache | null;
  /** Looked up next and filled with every block this cursor reads (null: nothing kept). */
  readonly fill: BlockCache | null;
  /** Blocks read ahead of the current one once the cursor moves block to block (0: none). */
  readonly aheadBlocks: number;
  /** Rows its reader may want from one seek: no block is read ahead past them. */
  readonly rowsWanted: number;
}

/** A compaction's or GC pass's reads: every block once, nothing kept, read ahead. */
export function wholeRunReads(aheadBlocks: number): RunCursorReads {
  return { cache: null, fill: null, aheadBlocks, rowsWanted: Number.POSITIVE_INFINITY };
}

export class RunCursor implements SourceCursor {
  private readonly run: RunReader;
  private readonly reads: RunCursorReads;
  private blockIndex = 0;
  private block: BlockRows | null = null;
  private index = 0;
  /** Rows moved past since the last seek (read-ahead stops at reads.rowsWanted). */
  private rowsPassed = 0;
  /** Reads of blocks after blockIndex already started, by block index. */
  private readonly ahead = new Map<number, Promise<BlockRows>>();

  constructor(run: RunReader, reads: RunCursorReads) {
    this.run = run;
    this.reads = reads;
  }

  key(): string | null {
    return this.block?.keys[this.index] ?? null;
  }

  row(): RowRecord | null {
    return this.block?.row(this.index) ?? null;
  }

  encoded(): Buffer | null {
    return this.block?.encodedAt(this.index) ?? null;
  }

  async seek(key: string, inclusive: boolean): Promise<void> {
    this.rowsPassed = 0;
    this.blockIndex = Math.max(0, this.run.blockFor(key));
    // Reads ahead of blocks before the new position are dropped (their outcome is ignored, see read()).
    for (const started of this.ahead.keys()) if (started < this.blockIndex) this.ahead.delete(started);
    await this.load(false);
    if (this.block !== null) this.index = lowerBound(this.block.keys, key, inclusive);
    await this.skipExhaustedBlocks();
  }

  nextInMemory(): boolean {
    if (this.block === null || this.index + 1 >= this.block.keys.length) return false;
    this.index += 1;
    this.rowsPassed += 1;
    return true;
  }

  async next(): Promise<void> {
    assert(this.block !== null, 'next() on an exhausted cursor');
    this.index += 1;
    this.rowsPassed += 1;
    await this.skipExhaustedBlocks();
  }

  /** Makes blockIndex current; `sequential` (moved on from the block before) starts read-ahead. */
  private async load(sequential: boolean): Promise<void> {
    if (this.blockIndex >= this.run.blockCount) {
      this.block = null;
      this.index = 0;
      return;
    }
    const started = this.ahead.get(this.blockIndex);
    this.ahead.delete(this.blockIndex);
    const reading = started ?? this.read(this.blockIndex);
    if (sequential) this.readAhead();
    this.block = await reading;
    this.index = 0;
  }

  /**
   * Starts reads of the next aheadBlocks blocks while the rows already passed plus those of the
   * blocks up to there stay under rowsWanted (a seek alone reads ahead nothing: a delimiter
   * listing that seeks from group to group would waste it).
   */
  private readAhead(): void {
    const last = Math.min(this.run.blockCount - 1, this.blockIndex + this.reads.aheadBlocks);
    let rows = this.rowsPassed + this.run.blockRows(this.blockIndex);
    for (let next = this.blockIndex + 1; next <= last && rows < this.reads.rowsWanted; next++) {
      if (!this.ahead.has(next)) this.ahead.set(next, this.read(next));
      rows += this.run.blockRows(next);
    }
  }

  private read(blockIndex: number): Promise<BlockRows> {
    const reading = this.run.block(blockIndex, this.reads.cache, this.reads.fill);
    // A read ahead that a seek (or the end of a page) abandons must not become an unhandled
    // rejection; whoever awaits it still gets its error.
    reading.catch(ignoreAbandoned);
    return reading;
  }

  private async skipExhaustedBlocks(): Promise<void> {
    while (this.block !== null && this.index >= this.block.keys.length) {
      this.blockIndex += 1;
      await this.load(true);
    }
  }
}

function ignoreAbandoned(): void {
  // The error reaches the cursor if it awaits this read; otherwise nobody needs it.
}

/** Merges sources given newest first. */
export class MergeCursor {
  private readonly sources: readonly SourceCursor[];
  private currentKey: string | null = null;

  constructor(sources: readonly SourceCursor[]) {
    this.sources = sources;
  }

  key(): string | null {
    return this.currentKey;
  }

  /** The newest version at key() (a live row or a tombstone). */
  row(): RowRecord | null {
    return this.newest()?.row() ?? null;
  }

  /** The newest version at key(): its source (row() decodes it; encoded() gives a run's bytes). */
  newest(): SourceCursor | null {
    if (this.currentKey === null) return null;
    for (const source of this.sources) {
      if (source.key() === this.currentKey) return source;
    }
    return null;
  }

  async seek(key: string, inclusive: boolean): Promise<void> {
    await Promise.all(this.sources.map((source) => source.seek(key, inclusive)));
    this.currentKey = this.smallestKey();
  }

  async next(): Promise<void> {
    const moving = this.step();
    if (moving !== null) await moving;
  }

  /**
   * Moves past the current key. Returns null when every source moved in memory (the common
   * case inside a block: no promise, no microtask per row), else a promise to await. Each
   * source is visited once and checked against the key before it moves.
   */
  step(): Promise<void> | null {
    const key = this.currentKey;
    assert(key !== null, 'next() on an exhausted merge');
    let loading: Array<Promise<void>> | null = null;
    for (const source of this.sources) {
      if (source.key() !== key || source.nextInMemory()) continue;
      loading ??= [];
      loading.push(source.next());
    }
    if (loading === null) {
      this.currentKey = this.smallestKey();
      return null;
    }
    return Promise.all(loading).then(() => {
      this.currentKey = this.smallestKey();
    });
  }

  private smallestKey(): string | null {
    let smallest: string | null = null;
    for (const source of this.sources) {
      const key = source.key();
      if (key !== null && (smallest === null || key < smallest)) smallest = key;
    }
    return smallest;
  }
}
