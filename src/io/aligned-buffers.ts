// AlignedBuffers: the staging buffers RealDisk's O_DIRECT writes copy their parts into. O_DIRECT
// needs the memory aligned: each buffer is page-aligned memory (src/util/aligned-memory.ts).
//
// Invariants: a buffer is lent to one writer at a time (acquire until release); at most buffersMax
// exist, however many disks share the pool (a stamp's disks share one: src/stamp/embedded-stamp.ts);
// acquire never waits (null when none is free and the limit is reached, or the engine refuses the
// memory: the caller writes the buffered way). Buffers are reused for the life of the disk, so their pages are touched once
// (a fresh 8 MiB buffer per write would cost its page faults, the very cost O_DIRECT avoids).
// Fault model: none of its own.
import { alignedMemory, alignedMemoryBytes } from '../util/aligned-memory.ts';
import { assert } from '../util/assert.ts';

export class AlignedBuffers {
  readonly bufferBytes: number;
  private readonly buffersMax: number;
  private readonly free: Buffer[] = [];
  #created = 0;
  /** Writes that found a buffer (tests read it to prove the O_DIRECT path ran). */
  lent = 0;

  constructor(options: { readonly bufferBytes: number; readonly buffersMax: number }) {
    assert(Number.isSafeInteger(options.buffersMax) && options.buffersMax >= 0, 'AlignedBuffers buffersMax is a count');
    assert(Number.isSafeInteger(options.bufferBytes) && options.bufferBytes > 0, 'AlignedBuffers bufferBytes is positive');
    this.bufferBytes = alignedMemoryBytes(options.bufferBytes);
    this.buffersMax = options.buffersMax;
  }

  /** A page-aligned buffer of bufferBytes owned by the caller until release; null if none is free. */
  /** Buffers made so far (resident for the pool's life): at most buffersMax. */
  get created(): number {
    return this.#created;
  }

  acquire(): Buffer | null {
    const buffer = this.free.pop() ?? this.create();
    if (buffer !== null) this.lent += 1;
    return buffer;
  }

  release(buffer: Buffer): void {
    assert(buffer.byteLength === this.bufferBytes && this.free.length < this.#created, 'released buffer was lent by this pool');
    this.free.push(buffer);
  }

  private create(): Buffer | null {
    if (this.#created >= this.buffersMax) return null;
    const memory = alignedMemory(this.bufferBytes);
    if (memory === null) return null;
    this.#created += 1;
    return Buffer.from(memory);
  }
}
