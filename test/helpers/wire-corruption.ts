// Helpers for codec corruption tests: flip one bit in a copy of an encoding, and tell whether a
// decode failed the way a codec must (a typed wire.* StorageError, never an untyped crash).
import { isStorageError } from '../../src/util/errors.ts';

/** A copy of `bytes` with bit number `bit` (0 = lowest bit of byte 0) inverted. */
export function flipBit(bytes: Buffer, bit: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

/** True when `fn` throws wire.corrupt, wire.too_large or wire.unsupported_version. */
export function throwsWire(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (error) {
    return isStorageError(error, 'wire.corrupt') || isStorageError(error, 'wire.too_large') || isStorageError(error, 'wire.unsupported_version');
  }
}
