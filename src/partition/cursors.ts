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
// scan pays no promise or microtask per row.
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
  /** The current row in the row codec if the source holds it encoded (runs), else null. */
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
    return null;
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

export class RunCursor implements SourceCursor {
  private readonly run: RunReader;
  private readonly cache: BlockCache | null;
  private blockIndex = 0;
  private block: BlockRows | null = null;
  private index = 0;

  constructor(run: RunReader, cache: BlockCache | null) {
    this.run = run;
    this.cache = cache;
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
    this.blockIndex = Math.max(0, this.run.blockFor(key));
    await this.load();
    if (this.block !== null) this.index = lowerBound(this.block.keys, key, inclusive);
    await this.skipExhaustedBlocks();
  }

  nextInMemory(): boolean {
    if (this.block === null || this.index + 1 >= this.block.keys.length) return false;
    this.index += 1;
    return true;
  }

  async next(): Promise<void> {
    assert(this.block !== null, 'next() on an exhausted cursor');
    this.index += 1;
    await this.skipExhaustedBlocks();
  }

  private async load(): Promise<void> {
    this.block = this.blockIndex < this.run.blockCount ? await this.run.block(this.blockIndex, this.cache) : null;
    this.index = 0;
  }

  private async skipExhaustedBlocks(): Promise<void> {
    while (this.block !== null && this.index >= this.block.keys.length) {
      this.blockIndex += 1;
      await this.load();
    }
  }
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
