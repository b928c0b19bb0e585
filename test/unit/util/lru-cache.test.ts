// LruCache (src/util/lru-cache.ts) against a trivial model (an array in recency order, evicting
// from its front), fast-check: after every get, has, set, delete and clear the cache holds the
// model's entries in the model's order with the model's weight. The kept eviction iterator is the
// optimisation under test (P4): runs drive it through evictions, refreshes of entries it has not
// reached yet, deletes down to an empty cache, clears and re-fills. A cache that is read and never
// fills holds no more memory after 500,000 hits than before them (the Map-iterator design held 38 MB).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LruCache } from '../../../src/util/lru-cache.ts';

type Command =
  | { readonly kind: 'get' | 'has' | 'delete'; readonly key: number }
  | { readonly kind: 'set'; readonly key: number; readonly weight: number }
  | { readonly kind: 'clear' };

/** The model: entries oldest first. */
class ModelLru {
  entries: { key: number; value: number; weight: number }[] = [];
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get weight(): number {
    return this.entries.reduce((sum, entry) => sum + entry.weight, 0);
  }

  get(key: number): number | undefined {
    const index = this.entries.findIndex((entry) => entry.key === key);
    if (index === -1) return undefined;
    const [entry] = this.entries.splice(index, 1);
    this.entries.push(entry!);
    return entry!.value;
  }

  set(key: number, value: number, weight: number): void {
    this.delete(key);
    if (weight > this.capacity) return;
    this.entries.push({ key, value, weight });
    while (this.weight > this.capacity) this.entries.shift();
  }

  delete(key: number): void {
    this.entries = this.entries.filter((entry) => entry.key !== key);
  }
}

const keys = fc.integer({ min: 0, max: 40 });
const command: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('set' as const), key: keys, weight: fc.integer({ min: 0, max: 6 }) }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constantFrom('get' as const, 'has' as const, 'delete' as const), key: keys }), weight: 4 },
  { arbitrary: fc.constant({ kind: 'clear' as const }), weight: 1 },
);

function run(capacity: number, commands: readonly Command[]): number {
  const cache = new LruCache<number, number>(capacity);
  const model = new ModelLru(capacity);
  let evictionsSeen = 0;
  commands.forEach((c, step) => {
    if (c.kind === 'set') {
      const others = model.entries.filter((entry) => entry.key !== c.key).length;
      cache.set(c.key, step, c.weight);
      model.set(c.key, step, c.weight);
      evictionsSeen += others - model.entries.filter((entry) => entry.key !== c.key).length;
    } else if (c.kind === 'get') {
      assert.equal(cache.get(c.key), model.get(c.key), `get ${c.key} at step ${step}`);
    } else if (c.kind === 'has') {
      assert.equal(cache.has(c.key), model.entries.some((entry) => entry.key === c.key));
    } else if (c.kind === 'delete') {
      cache.delete(c.key);
      model.delete(c.key);
    } else {
      cache.clear();
      model.entries = [];
    }
    assert.equal(cache.size, model.entries.length, `size at step ${step}`);
    assert.equal(cache.totalWeight, model.weight, `weight at step ${step}`);
  });
  // The order: getting every key oldest first returns each one (a refresh of the oldest never evicts).
  for (const entry of [...model.entries]) assert.equal(cache.get(entry.key), entry.value);
  return evictionsSeen;
}

describe('LruCache against an array model', () => {
  it('holds the model\'s entries, order and weight under random commands', () => {
    let evictions = 0;
    let runs = 0;
    fc.assert(fc.property(fc.integer({ min: 0, max: 12 }), fc.array(command, { minLength: 50, maxLength: 300 }), (capacity, commands) => {
      evictions += run(capacity, commands);
      runs += 1;
    }), { numRuns: 300 });
    console.log(`# ${runs} runs, ${evictions} entries evicted`);
    assert.ok(evictions > 1000, 'the runs evict');
  });

  it('evicts the oldest after the cache was emptied and refilled, and after a clear', () => {
    const cache = new LruCache<string, number>(2);
    cache.set('a', 1, 2);
    cache.set('b', 2, 2); // evicts a
    cache.set('c', 3, 3); // not cached; b stays
    cache.delete('b'); // empty
    cache.set('d', 4);
    cache.set('e', 5);
    cache.set('f', 6); // evicts d
    assert.deepEqual([cache.has('d'), cache.get('e'), cache.get('f')], [false, 5, 6]);
    cache.clear();
    cache.set('g', 7);
    cache.set('h', 8);
    cache.set('i', 9); // evicts g
    assert.deepEqual([cache.has('g'), cache.get('h'), cache.get('i')], [false, 8, 9]);
  });

  it('costs O(1) per set of a new key in a full 10,000-entry cache', () => {
    const cache = new LruCache<string, true>(10_000);
    const names = Array.from({ length: 100_000 }, (_, index) => `devstoreaccount1/container/blob-${index}`);
    const started = process.hrtime.bigint();
    for (const name of names) cache.set(name, true);
    const perSetNs = Number(process.hrtime.bigint() - started) / names.length;
    console.log(`# ${perSetNs.toFixed(0)} ns per set of a new key, 10,000 entries held`);
    assert.equal(cache.size, 10_000);
  });

  it('holds no more memory after 500,000 hits on a cache that never fills', () => {
    setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;
    const cache = new LruCache<string, { readonly index: number }>(10_000);
    for (let index = 0; index < 16; index++) cache.set(`key-${index}`, { index });
    collect();
    const before = process.memoryUsage().heapUsed;
    for (let read = 0; read < 500_000; read++) cache.get(`key-${read % 16}`);
    collect();
    const grownBytes = process.memoryUsage().heapUsed - before;
    console.log(`# heap grown by ${(grownBytes / 1e6).toFixed(2)} MB after 500,000 hits on 16 entries`);
    assert.equal(cache.size, 16);
    assert.ok(grownBytes < 2e6, `the cache held ${grownBytes} bytes more`);
  });
});
