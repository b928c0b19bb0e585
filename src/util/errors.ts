// Operating errors (STYLE.md, errors rule 2): every expected failure is a StorageError with a
// code from one closed union, a human-readable message that names the cause, optional context
// added by each layer, and whether retrying the same call may succeed. Mapping to Azure's status
// and error codes happens only in the front end.

export const storageErrorCodes = [
  // io: local disk
  'io.eio', // read/write failed at the device
  'io.enospc', // no space left on the device
  'io.fsync_failed', // fsync failed: the file's unsynced data must be treated as lost
  'io.not_found',
  'io.already_exists',
  'io.closed',
  // wire: bytes that do not decode
  'wire.corrupt', // checksum mismatch or bad magic
  'wire.too_large', // a length exceeds its limit
  'wire.unsupported_version',
  // rpc: node to node
  'rpc.timeout', // deadline passed; the call may or may not have been applied
  'rpc.unreachable', // could not connect or the connection was lost
  'rpc.overloaded', // in-flight limit reached
  'rpc.remote', // the remote side answered with an error it could not express more precisely
  // metastore
  'meta.conflict', // a compare in a transaction failed
  'meta.lease_expired',
  'meta.unavailable',
  // stream layer
  'extent.not_found',
  'extent.exists',
  'extent.sealed', // append to a sealed extent
  'extent.stale_epoch', // command from an older stream-manager epoch
  'extent.corrupt', // a replica's bytes failed their CRC
  'extent.out_of_range', // read past the commit length
  'extent.offset_mismatch', // append at a position other than the replica's end
  'extent.failed', // the replica refuses writes after an I/O failure (e.g. failed fsync)
  'extent.too_large',
  'stream.not_found',
  'stream.no_placement', // not enough healthy fault domains to place replicas
  'stream.unavailable', // no replica could serve the request
  'stream.fenced', // an owner epoch below the stream's: a newer owner took the stream over
  'node.not_found',
  'node.protected', // a wipe was refused: live replicas or protection
  'token.invalid',
  'manager.not_leader', // a controller standby answered a manager.* call: nothing applied, ask the leader
  'config.invalid',
  // partition layer
  'partition.condition_failed', // If-Match did not match the row's ETag
  'partition.exists', // If-None-Match: * and the row exists
  'partition.row_not_found', // a condition needed the row and it does not exist
  'partition.too_large', // a key, row or batch over its limit
  'partition.bad_continuation', // a continuation token that does not decode or belongs to another scan
  'partition.unavailable', // a log append's outcome is unknown: the partition must be reloaded
  'partition.corrupt', // its streams hold records that do not decode or a log gap
  'partition.fenced', // a newer owner (higher epoch) has written to its log
  'partition.closed',
  'partition.busy', // too many writes queued
  'partition.not_owner', // this server holds no range containing the key under a valid lease; nothing applied
] as const;

export type StorageErrorCode = (typeof storageErrorCodes)[number];

export interface StorageErrorOptions {
  readonly retryable?: boolean;
  readonly cause?: unknown;
  readonly context?: Readonly<Record<string, unknown>>;
}

export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly code: StorageErrorCode;
  readonly retryable: boolean;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: StorageErrorCode, message: string, options: StorageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.context = options.context ?? {};
  }

  /** Returns a copy with more context, as a layer passes the error up. */
  withContext(context: Readonly<Record<string, unknown>>): StorageError {
    return new StorageError(this.code, this.message, {
      retryable: this.retryable,
      cause: this.cause,
      context: { ...this.context, ...context },
    });
  }
}

export function isStorageError(error: unknown, code?: StorageErrorCode): error is StorageError {
  return error instanceof StorageError && (code === undefined || error.code === code);
}

export function isStorageErrorCode(value: unknown): value is StorageErrorCode {
  return typeof value === 'string' && (storageErrorCodes as readonly string[]).includes(value);
}
