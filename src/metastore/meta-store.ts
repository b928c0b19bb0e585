// The MetaStore seam: small coordination state (stream -> extents, extent -> replicas, node
// registry, partition map, leases, epochs) lives here; data never does. Two implementations
// share one contract suite (test/contract/meta-store.test.ts): EmbeddedMetaStore (one process,
// an fsync'd log) and EtcdMetaStore (a real etcd cluster).
//
// The model is etcd's: a sorted key space of string keys and string values, a global revision
// that increases with every successful write transaction, a per-key modRevision, and
// transactions whose compares check modRevisions. Safety never relies on locks: writers read,
// then commit with a compare on what they read, and retry on conflict. Leases expire keys
// attached to them when not kept alive (used for leader leases and node liveness); fencing is
// by epochs checked at the nodes, not by the lease itself.
//
// Contract:
// - a transaction is atomic and durable when it resolves (the embedded store fsyncs first).
// - compare { key, modRevision: 0 } means "key is absent".
// - range() returns keys >= start and < end in byte order, at most `limit` of them.
// - keys are printable ASCII (isValidMetaKey); an invalid key is 'config.invalid'.
// - every key, value and transaction respects metaKeyBytesMax, metaValueBytesMax and
//   metaTxnOperationsMax; breaking a limit is a StorageError 'wire.too_large' and writes nothing.
// - watchKey(key, onChange) calls onChange after every committed write of key (put or delete), once
//   the write is readable, and each time the watch is (re)established, so a write made while it was
//   down is never missed. A call is a hint, not a value: the watcher re-reads (several writes may
//   give one call; a call may come with no write). After close() it calls nothing more. A watch may
//   also go silent without an error (an etcd member cut off): watchers keep a slow poll beside it.

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the last write of this key. */
  readonly modRevision: number;
  /** Lease the key is attached to, or 0. */
  readonly lease: number;
}

export interface Compare {
  readonly key: string;
  /** Expected modRevision; 0 means the key must not exist. */
  readonly modRevision: number;
}

export type TxnOperation =
  | { readonly kind: 'put'; readonly key: string; readonly value: string; readonly lease?: number }
  | { readonly kind: 'delete'; readonly key: string };

export interface Txn {
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOperation[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  /** The store's revision after the transaction (unchanged if it did not succeed). */
  readonly revision: number;
}

export interface RangeOptions {
  /** Exclusive end key; defaults to the end of the prefix given as start via rangePrefix(). */
  readonly end: string;
  readonly limit?: number;
}

export interface MetaStore {
  get(key: string): Promise<KeyValue | null>;
  range(start: string, options: RangeOptions): Promise<KeyValue[]>;
  txn(txn: Txn): Promise<TxnResult>;
  /** Grants a lease that expires after ttlMs unless kept alive; returns its id (> 0). */
  grantLease(ttlMs: number): Promise<number>;
  /** Extends the lease; rejects with meta.lease_expired if it already expired. */
  keepAlive(lease: number): Promise<void>;
  /** Revokes the lease and deletes its keys. */
  revokeLease(lease: number): Promise<void>;
  /** Calls onChange after each write of key and on each (re)connection (see the contract above). */
  watchKey(key: string, onChange: () => void): KeyWatch;
  close(): Promise<void>;
}

export interface KeyWatch {
  /** Stops the watch: onChange is not called after this returns. */
  close(): void;
}

/** Keys are printable ASCII (0x21..0x7e), so string order and etcd's byte order agree. */
export function isValidMetaKey(key: string): boolean {
  return key.length > 0 && /^[\x21-\x7e]+$/.test(key);
}

/** The exclusive end key covering every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  return prefix + '\x7f';
}
