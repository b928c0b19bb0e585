// ReadBufferPool: the large buffers a disk read fills (a 4 MiB block of a blob, with its record
// header) are reused once the bytes are on their way to a client, instead of a fresh allocation
// per read. A fresh 4 MiB buffer costs its page faults (~1.5 ms per 4 MiB here, more than the
// pread that fills it) and, worse, counts as V8 external memory: every ~64 MiB of them started a
// full mark-compact, so a download's GC threads spent more CPU than the whole rest of the server
// (bench/README.md, "fifth session").
//
// Ownership: acquire() hands out a buffer that nobody else references. A holder that passes it on
// passes ownership with it; a holder that drops it lets the garbage collector take it (the pool
// then allocates again: dropping is always safe). Only the last holder may release(), and only
// once it will never read the bytes again: the front end releases a Get Blob's chunk when the
// socket write of it completed (the kernel has copied it). Who may release is decided by the
// wiring (docs/stream-protocol.md, "Read buffer pool"): in `kura serve` the front end is the last
// holder of the bytes its disks read; in a cluster the front end's bytes came from a socket and
// nothing is released (the extent node's pool then only allocates).
//
// Invariants: a buffer is on the free list only after exactly one release of it while it was out
// (a second release, or a release of a buffer the pool never handed out, is ignored); release
// takes only a view that ends where its buffer ends (a block's body is the tail of its record), so
// a holder that split a buffer into views and wrote them in order releases it with its last view,
// after every earlier write to the same socket completed; the free list holds at most bytesMax.
// bytesMax 0 is the off switch (P4): acquire() then allocates as before and release() does nothing.
// Fault model: none of its own; a holder that releases early could let a later read overwrite bytes
// still being sent, so release has exactly one caller (http-server.ts) and a model test.
import { assert } from './assert.ts';

export interface ReadBufferPoolStats {
  /** Buffers handed out from the free list instead of allocated. */
  readonly reused: number;
  /** Buffers the pool allocated to hand out (the free list had none of that length). */
  readonly allocated: number;
  /** Releases that went onto the free list. */
  readonly released: number;
  /** Releases refused: not out (twice, or never the pool's), a view short of its end, or a full list. */
  readonly ignored: number;
  readonly freeBytes: number;
}

type Counters = { -readonly [K in keyof ReadBufferPoolStats]: number };

export class ReadBufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  /** Buffers handed out and not yet released; weak, so a dropped one is collected as usual. */
  readonly #out = new WeakSet<ArrayBuffer>();
  readonly #lengthMin: number;
  #bytesMax: number;
  readonly #counters: Counters = { reused: 0, allocated: 0, released: 0, ignored: 0, freeBytes: 0 };

  /** Reads of at least `lengthMin` bytes are pooled; the free list holds at most `bytesMax`. */
  constructor(options: { readonly bytesMax: number; readonly lengthMin: number }) {
    assert(Number.isSafeInteger(options.bytesMax) && options.bytesMax >= 0, 'ReadBufferPool bytesMax is a byte count');
    assert(Number.isSafeInteger(options.lengthMin) && options.lengthMin > 0, 'ReadBufferPool lengthMin is positive');
    this.#bytesMax = options.bytesMax;
    this.#lengthMin = options.lengthMin;
  }

  get stats(): ReadBufferPoolStats {
    return { ...this.#counters };
  }

  /** Switches pooling on (bytesMax > 0) or off (0, which empties the free list) at run time. */
  setBytesMax(bytesMax: number): void {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, 'ReadBufferPool bytesMax is a byte count');
    this.#bytesMax = bytesMax;
    if (bytesMax === 0) {
      this.#free.clear();
      this.#counters.freeBytes = 0;
    }
  }

  /** A buffer of exactly `length` bytes (contents undefined) that nobody else references. */
  acquire(length: number): Buffer {
    if (this.#bytesMax === 0 || length < this.#lengthMin) return Buffer.allocUnsafe(length);
    const reused = this.#free.get(length)?.pop();
    if (reused !== undefined) {
      this.#counters.reused += 1;
      this.#counters.freeBytes -= length;
    } else {
      this.#counters.allocated += 1;
    }
    const buffer = reused ?? new ArrayBuffer(length);
    this.#out.add(buffer);
    return Buffer.from(buffer, 0, length);
  }

  /**
   * The last holder's bytes are no longer needed (see the header): their buffer goes back to the
   * free list if the pool handed it out, the view ends where the buffer ends, and there is room.
   * True when it did.
   */
  release(view: Uint8Array): boolean {
    const buffer = view.buffer;
    if (!(buffer instanceof ArrayBuffer) || !this.#out.has(buffer) || view.byteOffset + view.byteLength !== buffer.byteLength) {
      this.#counters.ignored += 1;
      return false;
    }
    this.#out.delete(buffer);
    if (this.#counters.freeBytes + buffer.byteLength > this.#bytesMax) {
      this.#counters.ignored += 1;
      return false;
    }
    const list = this.#free.get(buffer.byteLength) ?? [];
    list.push(buffer);
    this.#free.set(buffer.byteLength, list);
    this.#counters.freeBytes += buffer.byteLength;
    this.#counters.released += 1;
    return true;
  }
}
