// BlobTables: what the Blob service needs from the partition layer, and nothing more. The
// PartitionClient satisfies it (routing by key to the owning partition server); tests may pass
// the same client over an in-process stamp. Keeping it this small makes the wiring explicit and
// lets docs/blob-schema.md list every partition call the service makes.
//
// Invariants (the partition layer's, relied on here): a put/transact is applied atomically and
// only if its conditions hold at the single writer (ifMatch: the row's ETag; ifNoneMatch: '*'),
// a refused condition applies nothing; appendData returns a durable ref; scans page in key order
// with an opaque continuation.
// Fault model: every call may throw a StorageError (not_owner and busy are retried below this
// seam; a write whose outcome is unknown surfaces as partition.unavailable / rpc.timeout).

import type { CommitResult, LiveRow, PartitionOp, ScanItem } from '../../partition/partition.ts';
import type { DataRef } from '../../wire/partition-row.ts';
import type { Body } from '../../util/body-parts.ts';

export interface BlobScanOptions {
  readonly start?: Buffer;
  readonly end?: Buffer;
  readonly prefix?: Buffer;
  readonly delimiter?: Buffer;
  readonly limit: number;
  readonly continuation?: string;
}

export interface BlobTables {
  get(key: Buffer): Promise<LiveRow | null>;
  /** get() of each key (at most partitionGetManyKeysMax), in as few partition calls as their
   * partitions allow (one when they share a partition). */
  getMany(keys: readonly Buffer[]): Promise<(LiveRow | null)[]>;
  transact(ops: readonly PartitionOp[]): Promise<CommitResult>;
  scan(options: BlobScanOptions): Promise<{ items: ScanItem[]; continuation: string | null }>;
  /** Appends bytes (1..dataAppendBytesMax) to the data stream of the partition that owns `key`. */
  /** `bytes` may be the parts a body arrived in (a large append is not joined). */
  appendData(key: Buffer, bytes: Body): Promise<DataRef>;
  readData(key: Buffer, ref: DataRef): Promise<Buffer>;
}
