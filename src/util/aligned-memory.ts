// Page-aligned memory for O_DIRECT I/O. O_DIRECT needs the buffer's address aligned (to the
// device's DMA alignment, 512 bytes on the bench's virtio disk); a Node Buffer's address is not,
// and JavaScript cannot see addresses. A WebAssembly memory's base is page-aligned (V8 maps it on
// its own pages), so its buffer is. Its size is a whole number of 64 KiB wasm pages.
//
// Fault model: the engine may refuse a new memory (each reserves address space): that is a
// RangeError, which alignedMemory answers with null so the caller takes the buffered way.
import { assert } from './assert.ts';

export const alignedMemoryPageBytes = 64 * 1024;

/** The one WebAssembly API used here (the project's TypeScript lib settings do not declare it). */
type WasmMemoryConstructor = new (descriptor: { readonly initial: number; readonly maximum: number }) => { readonly buffer: ArrayBuffer };
const WasmMemory = (globalThis as unknown as { readonly WebAssembly: { readonly Memory: WasmMemoryConstructor } }).WebAssembly.Memory;

/** `bytes` rounded up to whole wasm pages: the size alignedMemory(bytes) has. */
export function alignedMemoryBytes(bytes: number): number {
  return Math.ceil(bytes / alignedMemoryPageBytes) * alignedMemoryPageBytes;
}

/** Fresh page-aligned memory of alignedMemoryBytes(bytes), or null if the engine refuses one. */
export function alignedMemory(bytes: number): ArrayBuffer | null {
  assert(Number.isSafeInteger(bytes) && bytes > 0, 'aligned memory size is positive');
  const pages = alignedMemoryBytes(bytes) / alignedMemoryPageBytes;
  try {
    return new WasmMemory({ initial: pages, maximum: pages }).buffer;
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}
