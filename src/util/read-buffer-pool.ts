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
// Aligned buffers (acquireAligned, eleventh session): an O_DIRECT read (RealDisk) reads the
// page-aligned range covering a record into page-aligned memory (src/util/aligned-memory.ts) and
// hands on only the view of the record; the rules below are the same, with "where its buffer ends"
// read as "where the view handed out ends" (docs/formats/extent-file.md, "Reading").
//
// Invariants: a buffer is on the free list only after exactly one release of it while it was out
// (a second release, or a release of a buffer the pool never handed out, is ignored); release
// takes only a view that ends where the view handed out ends (the buffer's end, or an aligned
// read's record end; a block's body is the tail of its record), so a holder that split a buffer
// into views and wrote them in order releases it with its last view, after every earlier write to
// the same socket completed; the free list (plain and aligned) holds at most bytesMax.
// bytesMax 0 is the off switch (P4): acquire() then allocates as before and release() does nothing.
// Fault model: none of its own; a holder that releases early could let a later read overwrite bytes
// still being sent, so release has exactly one caller (http-server.ts) and a model test.
import { alignedMemory, alignedMemoryBytes } from './aligned-memory.ts';
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
  /** Aligned buffers handed out (reused or allocated) for O_DIRECT reads. */
  readonly aligned: number;
}

/** An aligned read's buffers: the read fills `cover`; `data`, a view of it, is what it hands on. */
export interface AlignedRead {
  readonly cover: Buffer;
  readonly data: Buffer;
}

/** A buffer out: where the view handed out ends (a release must end there), and which free list it returns to. */
interface Lent {
  readonly end: number;
  readonly aligned: boolean;
}

type Counters = { -readonly [K in keyof ReadBufferPoolStats]: number };

export class ReadBufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  /** Free aligned buffers by size (whole wasm pages); apart, as a plain buffer of that size is not aligned. */
  readonly #freeAligned = new Map<number, ArrayBuffer[]>();
  /** Buffers handed out and not yet released; weak, so a dropped one is collected as usual. */
  readonly #out = new WeakMap<ArrayBuffer, Lent>();
  readonly #lengthMin: number;
  #bytesMax: number;
  readonly #counters: Counters = { reused: 0, allocated: 0, released: 0, ignored: 0, freeBytes: 0, aligned: 0 };

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
      this.#freeAligned.clear();
      this.#counters.freeBytes = 0;
    }
  }

  /** A buffer of exactly `length` bytes (contents undefined) that nobody else references. */
  acquire(length: number): Buffer {
    if (this.#bytesMax === 0 || length < this.#lengthMin) return Buffer.allocUnsafe(length);
    const buffer = this.#takeFree(this.#free, length) ?? new ArrayBuffer(length);
    this.#out.set(buffer, { end: length, aligned: false });
    return Buffer.from(buffer, 0, length);
  }

  /**
   * For an O_DIRECT read of `dataBytes` at `dataStart` inside an aligned range of `coverBytes`: a
   * page-aligned buffer of at least coverBytes and the view of the data in it. Null when pooling
   * is off, the data is shorter than lengthMin, or no aligned memory can be had (read buffered).
   */
  acquireAligned(read: { readonly coverBytes: number; readonly dataStart: number; readonly dataBytes: number }): AlignedRead | null {
    assert(read.dataStart >= 0 && read.dataStart + read.dataBytes <= read.coverBytes, 'the data lies inside the aligned cover');
    if (this.#bytesMax === 0 || read.dataBytes < this.#lengthMin) return null;
    const bytes = alignedMemoryBytes(read.coverBytes);
    const memory = this.#takeFree(this.#freeAligned, bytes) ?? alignedMemory(bytes);
    if (memory === null) return null;
    this.#counters.aligned += 1;
    const end = read.dataStart + read.dataBytes;
    this.#out.set(memory, { end, aligned: true });
    const cover = Buffer.from(memory);
    return { cover, data: cover.subarray(read.dataStart, end) };
  }

  /** A free buffer of `bytes` from `lists` (counted as reused), or null (counted as allocated). */
  #takeFree(lists: Map<number, ArrayBuffer[]>, bytes: number): ArrayBuffer | null {
    const reused = lists.get(bytes)?.pop();
    if (reused === undefined) {
      this.#counters.allocated += 1;
      return null;
    }
    this.#counters.reused += 1;
    this.#counters.freeBytes -= bytes;
    return reused;
  }

  /**
   * The last holder's bytes are no longer needed (see the header): their buffer goes back to the
   * free list if the pool handed it out, the view ends where the buffer ends, and there is room.
   * True when it did.
   */
  release(view: Uint8Array): boolean {
    const buffer = view.buffer;
    const lent = buffer instanceof ArrayBuffer ? this.#out.get(buffer) : undefined;
    if (!(buffer instanceof ArrayBuffer) || lent?.end !== view.byteOffset + view.byteLength) {
      this.#counters.ignored += 1;
      return false;
    }
    this.#out.delete(buffer);
    if (this.#counters.freeBytes + buffer.byteLength > this.#bytesMax) {
      this.#counters.ignored += 1;
      return false;
    }
    const lists = lent.aligned ? this.#freeAligned : this.#free;
    const list = lists.get(buffer.byteLength) ?? [];
    list.push(buffer);
    lists.set(buffer.byteLength, list);
    this.#counters.freeBytes += buffer.byteLength;
    this.#counters.released += 1;
    return true;
  }
}
