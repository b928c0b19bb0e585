// A bounded least-recently-used cache (the partition's row cache and block cache, the extent
// store's read cache). Bounded by a total weight (entries count 1 each for the row cache, bytes
// for the block caches), so memory stays within its limit whatever the access pattern.
//
// Invariants: `weight` is the sum of the weights of the entries held and never exceeds `capacity`
// after a call returns; an entry heavier than the capacity is not cached at all.
// Fault model: memory only. A cache never decides correctness: callers invalidate on writes.
//
// Recency is the Map's insertion order (a use moves the entry to the end). The least recently used
// entry is found by one iterator kept across calls, not by a new `keys()` iterator per eviction:
// V8 leaves a deleted entry as a hole in the Map's table until it is rehashed, and a new iterator
// walks every hole at the front, which every eviction and every refresh adds to (a full
// 10,000-entry cache: ~5 us per set of a new key, against ~0.3-0.9 us with the kept iterator). The
// kept iterator is valid by the language's rules: a Map iterator visits entries in insertion order,
// skips those deleted before it reached them and visits those added after it started; every entry
// before its position was evicted through it or moved behind it, so its next entry is the oldest.
import { assert } from '../util/assert.ts';

export class LruCache<K, V> {
  private readonly entries = new Map<K, { value: V; weight: number }>();
  private readonly capacity: number;
  private weight = 0;
  /** Yields the least recently used key next (see the file comment). It never answers done: an
   * eviction runs only while some entry weighs, and every entry is at or after its position. A
   * Map's clear() keeps its iterators valid (they go on with the entries added after it). */
  private readonly oldest: Iterator<K> = this.entries.keys();
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
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  set(key: K, value: V, weight = 1): void {
    this.delete(key);
    if (weight > this.capacity) return;
    this.entries.set(key, { value, weight });
    this.weight += weight;
    while (this.weight > this.capacity) {
      const oldest = this.oldest.next();
      if (oldest.done === true) break;
      this.delete(oldest.value);
    }
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.weight -= entry.weight;
  }

  clear(): void {
    this.entries.clear();
    this.weight = 0;
  }
}
