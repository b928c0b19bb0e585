// DataCache: the small data-stream pieces a front end read lately, by ref, so a hot small blob
// (a 64 KiB Get Blob read again and again) is answered after its one partition call for the rows
// (getMany), without partition.readData and extent.read: two in-process hops (or two network
// round trips in a cluster) per Get.
//
// Why a ref's bytes may be cached: the bytes under a ref never change. A ref names
// [offset, offset + length) of one extent; it is handed out only for an acknowledged append, which
// no seal cuts (P1); an extent is append-only; extent ids are never handed out twice in a stamp
// (manager-store allocateId). Data GC copies live bytes to new refs and rewrites the rows before an
// old extent is dropped, so an old ref is only ever unreachable, never reused.
// Why strong consistency holds: the cache answers only for a ref the caller took from the blob's
// row read in this request (a deleted or overwritten blob's row no longer names the old ref), so
// what it changes is where the bytes of a ref come from, never which ref a Get serves.
//
// Invariants: only bytes the partition layer answered for exactly that ref enter it (checked
// there: the extent store's block check, the stream client's CRC check off-process); only pieces
// up to dataCachePieceBytesMax (below the read buffer pool's lengthMin, so never a pooled buffer
// that a holder gives back); bodies are lent read-only (response.end, hashes), their CRC32C taken
// when cached and re-checked on an entry's first hit and every extentReadCacheRecheckHits-th after
// (a mismatch: dropped and read again); an entry is dropped dataCacheEntryMsMax after it was read,
// so rot under a hot block is still found by reads (the extent store's own cache adds at most
// extentReadCacheEntryMsMax); at most dataCacheBytes held (least recently used out first).
// Fault model: memory only; a failed read caches nothing.

import { assert } from '../../util/assert.ts';
import type { Clock } from '../../util/clock.ts';
import { type CheckedCacheEntry, judgeCacheEntry } from '../../util/checked-cache-entry.ts';
import { crc32c } from '../../util/crc32c.ts';
import { LruCache } from '../../util/lru-cache.ts';
import type { DataRef } from '../../wire/partition-row.ts';
import type { BlobTables } from './blob-tables.ts';

export interface DataCacheStats {
  readonly hits: number;
  readonly misses: number;
  /** Cached bodies that failed their sampled CRC re-check: dropped, read again. */
  readonly rechecksFailed: number;
  readonly bytes: number;
}

interface Entry extends CheckedCacheEntry {
  readonly bytes: Buffer;
}

export class DataCache {
  readonly #entries: LruCache<string, Entry>;
  readonly #clock: Clock;
  readonly #pieceBytesMax: number;
  readonly #entryMsMax: number;
  readonly #counters = { hits: 0, misses: 0, rechecksFailed: 0 };

  constructor(options: { readonly bytesMax: number; readonly pieceBytesMax: number; readonly entryMsMax: number; readonly clock: Clock }) {
    assert(Number.isSafeInteger(options.pieceBytesMax) && options.pieceBytesMax > 0, 'pieceBytesMax is a positive integer');
    this.#entries = new LruCache(options.bytesMax);
    this.#clock = options.clock;
    this.#pieceBytesMax = options.pieceBytesMax;
    this.#entryMsMax = options.entryMsMax;
  }

  /** True when `ref` is small enough to be cached (read it whole through read()). */
  holds(ref: DataRef): boolean {
    return ref.length <= this.#pieceBytesMax;
  }

  /** The bytes under `ref` (one that holds() accepts) in the data stream of `key`'s partition: cached, or read and cached. */
  async read(tables: BlobTables, key: Buffer, ref: DataRef): Promise<Buffer> {
    assert(this.holds(ref), 'only small refs go through the data cache');
    const id = `${ref.extentId}:${ref.offset}:${ref.length}`;
    const hit = this.#fresh(id);
    if (hit !== null) return hit;
    this.#counters.misses += 1;
    const read = await tables.readData(key, ref);
    assert(read.length === ref.length, 'readData answers exactly its ref');
    // An entry weighs the memory it keeps alive: a view of a much larger buffer (a range of a
    // cached block, a piece of a received frame) is copied into its own first.
    const bytes = read.length * 2 >= read.buffer.byteLength ? read : ownCopy(read);
    this.#entries.set(id, { bytes, crc: crc32c(bytes), readAtMs: this.#clock.monotonicMs(), hitsServed: 0 }, bytes.buffer.byteLength);
    return bytes;
  }

  stats(): DataCacheStats {
    return { ...this.#counters, bytes: this.#entries.totalWeight };
  }

  #fresh(id: string): Buffer | null {
    const entry = this.#entries.get(id);
    if (entry === undefined) return null;
    const verdict = judgeCacheEntry(entry, entry.bytes, this.#clock.monotonicMs(), this.#entryMsMax);
    if (verdict !== 'serve') {
      this.#entries.delete(id);
      if (verdict === 'rotten') this.#counters.rechecksFailed += 1;
      return null;
    }
    this.#counters.hits += 1;
    return entry.bytes;
  }
}

/** `bytes` in an ArrayBuffer of exactly their length (not Node's shared pool for small buffers). */
function ownCopy(bytes: Buffer): Buffer {
  const copy = new Uint8Array(bytes);
  return Buffer.from(copy.buffer, 0, copy.length);
}
