// AlignedBuffers: the staging buffers RealDisk's O_DIRECT reads and writes go through. O_DIRECT
// needs the memory aligned (to the device's DMA alignment, 512 bytes on the bench's virtio disk);
// a Node Buffer's address is not, and JavaScript cannot see addresses. A WebAssembly memory's
// base is page-aligned (V8 maps it on its own pages), so its buffer is; its size is a whole
// number of 64 KiB wasm pages.
//
// Invariants: a buffer is lent to one user at a time (acquire until release); at most buffersMax
// exist, however many disks share the pool (a stamp's disks share one: src/stamp/embedded-stamp.ts);
// acquire never waits (null when none is free and the limit is reached, or the engine refuses the
// memory: the caller takes the buffered way). Buffers are reused for the life of the pool, so their
// pages are touched once (a fresh 8 MiB buffer per write would cost its page faults, the very cost
// O_DIRECT avoids).
// Fault model: the engine may refuse a new memory (each reserves address space): a RangeError,
// answered as "no buffer".
import { assert } from '../util/assert.ts';

const wasmPageBytes = 64 * 1024;

/** The one WebAssembly API used here (the project's TypeScript lib settings do not declare it). */
type WasmMemoryConstructor = new (descriptor: { readonly initial: number; readonly maximum: number }) => { readonly buffer: ArrayBuffer };
const WasmMemory = (globalThis as unknown as { readonly WebAssembly: { readonly Memory: WasmMemoryConstructor } }).WebAssembly.Memory;

export class AlignedBuffers {
  readonly bufferBytes: number;
  readonly buffersMax: number;
  private readonly free: Buffer[] = [];
  #created = 0;
  /** Acquires that found a buffer (tests read it to prove the O_DIRECT path ran). */
  lent = 0;

  constructor(options: { readonly bufferBytes: number; readonly buffersMax: number }) {
    assert(Number.isSafeInteger(options.buffersMax) && options.buffersMax >= 0, 'AlignedBuffers buffersMax is a count');
    assert(Number.isSafeInteger(options.bufferBytes) && options.bufferBytes > 0, 'AlignedBuffers bufferBytes is positive');
    this.bufferBytes = Math.ceil(options.bufferBytes / wasmPageBytes) * wasmPageBytes;
    this.buffersMax = options.buffersMax;
  }

  /** Buffers made so far (resident for the pool's life): at most buffersMax. */
  get created(): number {
    return this.#created;
  }

  /** A page-aligned buffer of bufferBytes owned by the caller until release; null if none is free. */
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
    const pages = this.bufferBytes / wasmPageBytes;
    let memory: ArrayBuffer;
    try {
      memory = new WasmMemory({ initial: pages, maximum: pages }).buffer;
    } catch (error) {
      if (error instanceof RangeError) return null;
      throw error;
    }
    this.#created += 1;
    return Buffer.from(memory);
  }
}
