// CRC32C (Castagnoli), the checksum of every on-disk and on-wire record (P2). Hardware
// accelerated through @node-rs/crc32. A test-only canary switch can disable verification so the
// suite can prove it would catch the missing check (TESTING.md, canary builds).
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

export function crc32c(data: Uint8Array, previous = 0): number {
  return nativeCrc32c(data, previous) >>> 0;
}

/** Canary switches: test-only, read once from the environment, never set in production. */
export const canary = {
  skipCrcVerification: process.env['KURA_CANARY_SKIP_CRC'] === '1',
  skipFsync: process.env['KURA_CANARY_SKIP_FSYNC'] === '1',
  /** The primary acknowledges an append without waiting for its last secondary (extent-node.ts). */
  ackBeforeLastReplica: process.env['KURA_CANARY_ACK_BEFORE_LAST_REPLICA'] === '1',
};

/** True when the checksum matches (or the skip-CRC canary is on). */
export function crcMatches(data: Uint8Array, expected: number): boolean {
  return canary.skipCrcVerification || crc32c(data) === expected >>> 0;
}
