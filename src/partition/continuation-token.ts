// Scan continuation tokens: opaque to callers (base64url), bounded (≤ tokenBytesMax decoded), and
// checked: a token carries a CRC32C and a fingerprint of the scan it continues (range, prefix,
// delimiter), so a damaged, forged-by-accident or misapplied token is refused with
// partition.bad_continuation instead of silently listing the wrong range. The fingerprint names no
// partition: the key means the same in whichever partition holds it after a split, merge or move
// (docs/partition-protocol.md, "Scans across splits, merges and moves"), and PartitionClient
// routes the next page by it (continuationKey).
//
//   u8 version (1) | u8 flags (bit 0: start key inclusive) | u32 scanFingerprint | key | u32 crc32c
//
// Invariants: decode(encode(t)) = t; the key is 1..partitionKeyBytesMax bytes.
// Fault model: tokens come from clients (through the front end): any bytes at all.
import { partitionKeyBytesMax } from '../constants.ts';
import { crc32c } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';

const tokenVersion = 1;
const overheadBytes = 1 + 1 + 4 + 4;
export const continuationTokenBytesMax = overheadBytes + partitionKeyBytesMax;

export interface Continuation {
  /** Where the next page starts (latin1 key). */
  readonly key: string;
  readonly inclusive: boolean;
}

export interface ScanShape {
  readonly start: Buffer | null;
  readonly end: Buffer | null;
  readonly prefix: Buffer | null;
  readonly delimiter: Buffer | null;
}

/** CRC32C over the scan's parameters, each length-prefixed so different shapes never collide by concatenation. */
export function scanFingerprint(shape: ScanShape): number {
  let crc = 0;
  for (const part of [shape.start, shape.end, shape.prefix, shape.delimiter]) {
    const header = Buffer.alloc(5);
    header.writeUInt8(part === null ? 0 : 1, 0);
    header.writeUInt32BE(part?.length ?? 0, 1);
    crc = crc32c(header, crc);
    if (part !== null) crc = crc32c(part, crc);
  }
  return crc;
}

export function encodeContinuation(continuation: Continuation, fingerprint: number): string {
  const key = Buffer.from(continuation.key, 'latin1');
  const bytes = Buffer.alloc(overheadBytes + key.length);
  bytes.writeUInt8(tokenVersion, 0);
  bytes.writeUInt8(continuation.inclusive ? 1 : 0, 1);
  bytes.writeUInt32BE(fingerprint >>> 0, 2);
  key.copy(bytes, 6);
  bytes.writeUInt32BE(crc32c(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
  return bytes.toString('base64url');
}

export function decodeContinuation(token: string, fingerprint: number): Continuation {
  if (token.length === 0 || token.length > Math.ceil((continuationTokenBytesMax * 4) / 3) || !/^[A-Za-z0-9_-]+$/.test(token)) {
    throw bad('not a continuation token');
  }
  const bytes = Buffer.from(token, 'base64url');
  if (bytes.length <= overheadBytes || bytes.length > continuationTokenBytesMax) throw bad('wrong length');
  if (crc32c(bytes.subarray(0, bytes.length - 4)) !== bytes.readUInt32BE(bytes.length - 4)) throw bad('checksum mismatch');
  if (bytes.readUInt8(0) !== tokenVersion || (bytes.readUInt8(1) & ~1) !== 0) throw bad('unknown version or flags');
  if (bytes.readUInt32BE(2) !== fingerprint >>> 0) throw bad('token belongs to another scan');
  return { key: bytes.subarray(6, bytes.length - 4).toString('latin1'), inclusive: (bytes.readUInt8(1) & 1) === 1 };
}

/** The key a token continues at, without knowing its scan (routing only: the owner still checks the fingerprint). */
export function continuationKey(token: string): Buffer {
  const bytes = Buffer.from(token, 'base64url');
  if (bytes.length <= overheadBytes || bytes.length > continuationTokenBytesMax) throw bad('wrong length');
  if (crc32c(bytes.subarray(0, bytes.length - 4)) !== bytes.readUInt32BE(bytes.length - 4)) throw bad('checksum mismatch');
  return Buffer.from(bytes.subarray(6, bytes.length - 4));
}

function bad(reason: string): StorageError {
  return new StorageError('partition.bad_continuation', `continuation token: ${reason}`, { context: { reason } });
}
