// A bounded least-recently-used cache (the partition's row cache and block cache, the extent
// store's read cache). Bounded by a total weight (entries count 1 each for the row cache, bytes
// for the block caches), so memory stays within its limit whatever the access pattern.
//
// Invariants: `weight` is the sum of the weights of the entries held and never exceeds `capacity`
// after a call returns; an entry heavier than the capacity is not cached at all. The recency list
// (oldest to newest through `newer`, back through `older`) holds exactly the map's entries.
// Fault model: memory only. A cache never decides correctness: callers invalidate on writes.
//
// Recency is a doubly linked list through the entries, so a use moves an entry without touching
// the Map: a hit leaves no hole in the Map's table and needs no rehash, and eviction takes the
// list's oldest entry in O(1). Not the Map's insertion order walked by one iterator kept across
// calls (the ninth session's design): V8 keeps every table a Map outgrew or rehashed alive while an
// iterator still points into it (each old table links to its successor for that iterator), so a
// cache that was not full, whose iterator never moved, pinned a copy of its table per rehash: a
// 16-entry cache read 500,000 times held 38 MB, and `kura serve`'s row cache (the container row
// read by every Put) was a third of its live heap after 44,000 Puts.
import { assert } from '../util/assert.ts';

interface Entry<K, V> {
  readonly key: K;
  readonly value: V;
  readonly weight: number;
  older: Entry<K, V> | null;
  newer: Entry<K, V> | null;
}

export class LruCache<K, V> {
  private readonly entries = new Map<K, Entry<K, V>>();
  private readonly capacity: number;
  private weight = 0;
  private oldest: Entry<K, V> | null = null;
  private newest: Entry<K, V> | null = null;
  hits = 0;
  misses = 0;

  constructor(capacity: number) {
    assert(Number.isSafeInteger(capacity) && capacity >= 0, 'cache capacity is a non-negative integer');
    this.capacity = capacity;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The sum of the weights of the entries held. */
  get totalWeight(): number {
    return this.weight;
  }

  /** The cached value (moved to most recently used), or undefined. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.misses += 1;
      return undefined;
    }
    this.hits += 1;
    this.unlink(entry);
    this.linkNewest(entry);
    return entry.value;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  set(key: K, value: V, weight = 1): void {
    this.delete(key);
    if (weight > this.capacity) return;
    const entry: Entry<K, V> = { key, value, weight, older: null, newer: null };
    this.entries.set(key, entry);
    this.linkNewest(entry);
    this.weight += weight;
    while (this.weight > this.capacity && this.oldest !== null) this.delete(this.oldest.key);
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.unlink(entry);
    this.weight -= entry.weight;
  }

  clear(): void {
    this.entries.clear();
    this.oldest = null;
    this.newest = null;
    this.weight = 0;
  }

  private linkNewest(entry: Entry<K, V>): void {
    entry.older = this.newest;
    entry.newer = null;
    if (this.newest === null) this.oldest = entry;
    else this.newest.newer = entry;
    this.newest = entry;
  }

  private unlink(entry: Entry<K, V>): void {
    if (entry.older === null) this.oldest = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === null) this.newest = entry.older;
    else entry.newer.older = entry.older;
    entry.older = null;
    entry.newer = null;
  }
}
