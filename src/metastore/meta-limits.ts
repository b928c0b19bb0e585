// Input checks shared by every MetaStore implementation, so both reject the same inputs with the
// same codes before anything is written (the contract in meta-store.ts).
//
// Invariants: a breached size or count limit is StorageError 'wire.too_large'; a malformed key,
// range, lease id, TTL or a transaction that writes one key twice is 'config.invalid'. Checks are
// pure and run before a transaction is queued, so a rejected transaction changes nothing.
//
// Fault model: inputs come from other layers and, in cluster mode, from other processes; nothing
// here trusts a length, count or number it did not check.
import { metaKeyBytesMax, metaRangeLimitMax, metaTxnBytesMax, metaTxnOperationsMax, metaValueBytesMax } from '../constants.ts';
import { StorageError } from '../util/errors.ts';
import { isValidMetaKey, type RangeOptions, type Txn } from './meta-store.ts';

/** Longest lease TTL accepted: a day. Leader and liveness leases are seconds long. */
export const leaseTtlMsMax = 24 * 60 * 60 * 1000;

export interface CheckedRange {
  readonly end: string;
  readonly limit: number;
}

export function checkKey(key: string): void {
  if (Buffer.byteLength(key, 'utf8') > metaKeyBytesMax) {
    throw new StorageError('wire.too_large', `meta key is longer than ${metaKeyBytesMax} bytes`, { context: { keyBytes: Buffer.byteLength(key, 'utf8') } });
  }
  if (!isValidMetaKey(key)) {
    throw new StorageError('config.invalid', 'meta key must be non-empty printable ASCII (0x21..0x7e)', { context: { key: JSON.stringify(key).slice(0, 100) } });
  }
}

function checkValue(key: string, value: string): void {
  const valueBytes = Buffer.byteLength(value, 'utf8');
  if (valueBytes > metaValueBytesMax) {
    throw new StorageError('wire.too_large', `meta value is larger than ${metaValueBytesMax} bytes`, { context: { key, valueBytes } });
  }
}

export function checkLeaseId(lease: number): void {
  if (!Number.isSafeInteger(lease) || lease <= 0) {
    throw new StorageError('config.invalid', 'lease id must be a positive safe integer', { context: { lease } });
  }
}

export function checkTtlMs(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > leaseTtlMsMax) {
    throw new StorageError('config.invalid', `lease TTL must be an integer in 1..${leaseTtlMsMax} ms`, { context: { ttlMs } });
  }
}

/** Checks a whole transaction; throws before anything is written. */
export function checkTxn(txn: Txn): void {
  if (txn.compare.length > metaTxnOperationsMax || txn.success.length > metaTxnOperationsMax) {
    throw new StorageError('wire.too_large', `a meta transaction has at most ${metaTxnOperationsMax} compares and ${metaTxnOperationsMax} operations`, {
      context: { compares: txn.compare.length, operations: txn.success.length },
    });
  }
  for (const compare of txn.compare) {
    checkKey(compare.key);
    if (!Number.isSafeInteger(compare.modRevision) || compare.modRevision < 0) {
      throw new StorageError('config.invalid', 'compare modRevision must be a non-negative safe integer', { context: { key: compare.key } });
    }
  }
  const written = new Set<string>();
  for (const operation of txn.success) {
    checkKey(operation.key);
    if (operation.kind === 'put') {
      checkValue(operation.key, operation.value);
      if (operation.lease !== undefined && operation.lease !== 0) checkLeaseId(operation.lease);
    }
    if (written.has(operation.key)) {
      throw new StorageError('config.invalid', 'a meta transaction may write a key only once', { context: { key: operation.key } });
    }
    written.add(operation.key);
  }
  checkTxnBytes(txn);
}

function checkTxnBytes(txn: Txn): void {
  let txnBytes = 0;
  for (const compare of txn.compare) txnBytes += compare.key.length;
  for (const operation of txn.success) {
    txnBytes += operation.key.length + (operation.kind === 'put' ? Buffer.byteLength(operation.value, 'utf8') : 0);
  }
  if (txnBytes > metaTxnBytesMax) {
    throw new StorageError('wire.too_large', `a meta transaction carries at most ${metaTxnBytesMax} bytes of keys and values`, { context: { txnBytes } });
  }
}

/** Range end keys may also use 0x7f, the character prefixEnd() appends. */
function isValidRangeEnd(end: string): boolean {
  return end.length > 0 && /^[\x21-\x7f]+$/.test(end);
}

export function checkRange(start: string, options: RangeOptions): CheckedRange {
  checkKey(start);
  if (Buffer.byteLength(options.end, 'utf8') > metaKeyBytesMax + 1) {
    throw new StorageError('wire.too_large', `range end is longer than ${metaKeyBytesMax + 1} bytes`);
  }
  if (!isValidRangeEnd(options.end)) {
    throw new StorageError('config.invalid', 'range end must be printable ASCII or 0x7f', { context: { end: JSON.stringify(options.end).slice(0, 100) } });
  }
  const limit = options.limit ?? metaRangeLimitMax;
  if (!Number.isSafeInteger(limit) || limit <= 0 || limit > metaRangeLimitMax) {
    throw new StorageError('config.invalid', `range limit must be an integer in 1..${metaRangeLimitMax}`, { context: { limit } });
  }
  return { end: options.end, limit };
}
