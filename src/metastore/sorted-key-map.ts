// An in-memory map kept in key order, for the EmbeddedMetaStore's key space. Coordination state
// is small (thousands of keys), so a sorted array of keys with binary search beside a Map is
// simple and fast enough: O(log n) lookups, O(n) inserts and deletes, O(log n + k) ranges.
//
// Invariant: `keys` is strictly increasing (JS string order, which is byte order for the ASCII
// keys MetaStore admits) and holds exactly the keys of `values`.
// Fault model: memory only; nothing here fails except by programmer error.

export class SortedKeyMap<V> {
  private readonly keys: string[] = [];
  private readonly values = new Map<string, V>();

  get size(): number {
    return this.keys.length;
  }

  get(key: string): V | undefined {
    return this.values.get(key);
  }

  set(key: string, value: V): void {
    if (!this.values.has(key)) this.keys.splice(this.lowerBound(key), 0, key);
    this.values.set(key, value);
  }

  delete(key: string): boolean {
    if (!this.values.delete(key)) return false;
    this.keys.splice(this.lowerBound(key), 1);
    return true;
  }

  /** Entries with start <= key < end, in key order, at most `limit`. */
  range(start: string, end: string, limit: number): Array<readonly [string, V]> {
    const out: Array<readonly [string, V]> = [];
    for (let index = this.lowerBound(start); index < this.keys.length && out.length < limit; index++) {
      const key = this.keys[index];
      if (key === undefined || key >= end) break;
      const value = this.values.get(key);
      if (value !== undefined) out.push([key, value]);
    }
    return out;
  }

  /** Every entry in key order. */
  *entries(): Generator<readonly [string, V]> {
    for (const key of this.keys) {
      const value = this.values.get(key);
      if (value !== undefined) yield [key, value];
    }
  }

  /** Index of the first key >= `key`. */
  private lowerBound(key: string): number {
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const probe = this.keys[middle];
      if (probe !== undefined && probe < key) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
