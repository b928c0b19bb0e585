// One rule for the caches that lend out bytes read and CRC-checked earlier (the extent store's
// read cache, the front end's data cache): an entry is served only while it is young, and its
// CRC is re-checked on its first hit and then every extentReadCacheRecheckHits-th, the cheap
// assertion that every holder treated the lent bytes as read-only. Either failure drops the entry
// and the caller reads again from below.
import { extentReadCacheRecheckHits } from '../constants.ts';
import { crc32c } from './crc32c.ts';

/** A cached piece: its bytes' CRC when it was checked, when it was read, and hits served so far. */
export interface CheckedCacheEntry {
  readonly crc: number;
  readonly readAtMs: number;
  hitsServed: number;
}

/** 'serve' counts the hit; 'expired' (older than entryMsMax) and 'rotten' (CRC mismatch) mean drop it. */
export type CacheEntryVerdict = 'serve' | 'expired' | 'rotten';

export function judgeCacheEntry(entry: CheckedCacheEntry, bytes: Uint8Array, nowMs: number, entryMsMax: number): CacheEntryVerdict {
  if (nowMs - entry.readAtMs >= entryMsMax) return 'expired';
  if (entry.hitsServed % extentReadCacheRecheckHits === 0 && crc32c(bytes) !== entry.crc) return 'rotten';
  entry.hitsServed += 1;
  return 'serve';
}
