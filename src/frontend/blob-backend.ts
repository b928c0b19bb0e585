// BlobBackend: the seam between the stateless front end and the storage behind it. The front
// end parses, authorises and validates; the backend (the partition layer's blob service, wired
// next) performs each operation with Azure's semantics. One sub-interface per operation family,
// one method per Azure operation, every argument and result typed.
//
// Contract for implementations:
// - Throw FrontendError with Azure's specific code (ContainerNotFound, BlobNotFound,
//   LeaseIdMismatchWithBlobOperation, ConditionNotMet, ConditionNotMetRead on reads, InvalidRange
//   …) or a StorageError from below; anything else is reported as 500 InternalError.
// - Evaluate op.conditions against the resource's current ETag / Last-Modified atomically with
//   the write (in the same partition batch).
// - A RequestBody yields exactly `length` bytes or throws (short body, Content-MD5 mismatch,
//   client gone, idle timeout) before its last chunk, so a write made durable only after the
//   iterator completes can never commit a bad body. `signal` aborts when the client goes away.
// - ctx.createOnly: the SAS granted only 'c' (create), so the write must not replace an
//   existing blob (as if If-None-Match: * had been given).
// Fault model: backends fail with typed errors; the front end never retries a write itself.

import { FrontendError } from './errors.ts';
import type { Principal } from './auth/authorizer.ts';
import type {
  AccountInformation, BlobProperties, BlobServiceProperties, BlobTag, BlockList, BlockListEntry,
  ContainerAcl, ContainerProperties, ETag, FindBlobsPage, LeaseId, ListBlobsPage, ListContainersPage,
  ServiceStats, SignedIdentifier, SnapshotId,
} from './model.ts';
import type * as Op from './operation.ts';

export interface RequestBody extends AsyncIterable<Uint8Array> {
  /** Exactly this many bytes will be yielded, or the iteration throws. */
  readonly length: number;
  /**
   * The Content-MD5 the client sent for this body, if any. The body checks it before it yields its
   * last chunk, so once iteration completed it is the body's MD5 (a backend needs no hash of its own).
   */
  readonly contentMd5?: Uint8Array | undefined;
  /** The whole body at once, checked as iteration checks it (instead of iterating; consumes the
   * body). Optional: a body without it is iterated. For small bodies read whole. */
  chunks?(): Promise<Uint8Array[]>;
}

export interface CallContext {
  readonly requestId: string;
  readonly principal: Principal;
  readonly createOnly: boolean;
  readonly signal: AbortSignal;
}

export interface WriteResult {
  readonly etag: ETag;
  readonly lastModified: Date;
  readonly contentMd5?: Uint8Array;
  readonly versionId?: SnapshotId;
}

export interface BlockWriteResult {
  readonly contentMd5?: Uint8Array;
}

export interface AppendResult extends WriteResult {
  readonly appendOffset: number;
  readonly committedBlockCount: number;
}

export interface LeaseResult {
  readonly etag: ETag;
  readonly lastModified: Date;
  readonly leaseId?: LeaseId;
  /** Break: seconds until the lease is broken. */
  readonly leaseTimeSeconds?: number;
}

export interface CopyResult extends WriteResult {
  readonly copyId: string;
  readonly copyStatus: 'pending' | 'success';
}

export interface SnapshotResult extends WriteResult {
  readonly snapshot: SnapshotId;
}

export interface BlobContent {
  readonly properties: BlobProperties;
  /** The bytes of the requested range (or the whole blob), streamed, or whole when they are
   * already in memory (an inline body: a view of its row's checked bytes, written in one call). */
  readonly body: AsyncIterable<Uint8Array> | Uint8Array;
  /** Inclusive served range, resolved against the blob's size; null for the whole blob. */
  readonly range: { readonly start: number; readonly end: number } | null;
  /** MD5 of the served range, when x-ms-range-get-content-md5 asked for it. */
  readonly rangeContentMd5?: Uint8Array;
  /** CRC64 (Azure's byte order) of the served range, when x-ms-range-get-content-crc64 asked for it. */
  readonly rangeContentCrc64?: Uint8Array;
}

export interface ServiceBackend {
  getBlobServiceProperties(op: Op.GetBlobServiceProperties, ctx: CallContext): Promise<BlobServiceProperties>;
  setBlobServiceProperties(op: Op.SetBlobServiceProperties, properties: BlobServiceProperties, ctx: CallContext): Promise<void>;
  getServiceStats(op: Op.GetServiceStats, ctx: CallContext): Promise<ServiceStats>;
  listContainers(op: Op.ListContainers, ctx: CallContext): Promise<ListContainersPage>;
  getAccountInformation(op: Op.GetAccountInformation, ctx: CallContext): Promise<AccountInformation>;
  findBlobsByTags(op: Op.FindBlobsByTags, ctx: CallContext): Promise<FindBlobsPage>;
}

export interface ContainerBackend {
  createContainer(op: Op.CreateContainer, ctx: CallContext): Promise<WriteResult>;
  getContainerProperties(op: Op.GetContainerProperties | Op.GetContainerMetadata, ctx: CallContext): Promise<ContainerProperties>;
  setContainerMetadata(op: Op.SetContainerMetadata, ctx: CallContext): Promise<WriteResult>;
  getContainerAcl(op: Op.GetContainerACL, ctx: CallContext): Promise<{ readonly properties: ContainerProperties; readonly acl: ContainerAcl }>;
  setContainerAcl(op: Op.SetContainerACL, identifiers: readonly SignedIdentifier[], ctx: CallContext): Promise<WriteResult>;
  deleteContainer(op: Op.DeleteContainer, ctx: CallContext): Promise<void>;
  leaseContainer(op: Op.LeaseContainer, ctx: CallContext): Promise<LeaseResult>;
  listBlobs(op: Op.ListBlobs, ctx: CallContext): Promise<ListBlobsPage>;
}

export interface BlockBlobBackend {
  putBlob(op: Op.PutBlob, body: RequestBody, ctx: CallContext): Promise<WriteResult>;
  putBlock(op: Op.PutBlock, body: RequestBody, ctx: CallContext): Promise<BlockWriteResult>;
  putBlockList(op: Op.PutBlockList, blocks: readonly BlockListEntry[], ctx: CallContext): Promise<WriteResult>;
  getBlockList(op: Op.GetBlockList, ctx: CallContext): Promise<BlockList>;
  putBlockFromUrl(op: Op.PutBlockFromURL, ctx: CallContext): Promise<BlockWriteResult>;
  copyBlob(op: Op.CopyBlob, ctx: CallContext): Promise<CopyResult>;
  copyBlobFromUrl(op: Op.CopyBlobFromURL, ctx: CallContext): Promise<CopyResult>;
  abortCopyBlob(op: Op.AbortCopyBlob, ctx: CallContext): Promise<void>;
}

export interface AppendBlobBackend {
  createAppendBlob(op: Op.CreateAppendBlob, ctx: CallContext): Promise<WriteResult>;
  appendBlock(op: Op.AppendBlock, body: RequestBody, ctx: CallContext): Promise<AppendResult>;
  sealAppendBlob(op: Op.SealAppendBlob, ctx: CallContext): Promise<WriteResult>;
}

export interface BlobObjectBackend {
  getBlob(op: Op.GetBlob, ctx: CallContext): Promise<BlobContent>;
  getBlobProperties(op: Op.GetBlobProperties | Op.GetBlobMetadata, ctx: CallContext): Promise<BlobProperties>;
  setBlobProperties(op: Op.SetBlobProperties, ctx: CallContext): Promise<WriteResult>;
  setBlobMetadata(op: Op.SetBlobMetadata, ctx: CallContext): Promise<WriteResult>;
  setBlobTags(op: Op.SetBlobTags, tags: readonly BlobTag[], ctx: CallContext): Promise<void>;
  getBlobTags(op: Op.GetBlobTags, ctx: CallContext): Promise<readonly BlobTag[]>;
  deleteBlob(op: Op.DeleteBlob, ctx: CallContext): Promise<void>;
  snapshotBlob(op: Op.SnapshotBlob, ctx: CallContext): Promise<SnapshotResult>;
  leaseBlob(op: Op.LeaseBlob, ctx: CallContext): Promise<LeaseResult>;
  setBlobTier(op: Op.SetBlobTier, ctx: CallContext): Promise<void>;
}

export interface BlobBackend {
  readonly service: ServiceBackend;
  readonly container: ContainerBackend;
  readonly blockBlob: BlockBlobBackend;
  readonly appendBlob: AppendBlobBackend;
  readonly blob: BlobObjectBackend;
}

/** The backend until the partition layer is wired: every operation fails with the typed
 * NotWired error (Azure's 501 NotImplemented), so the HTTP edge can run and be tested alone.
 * It reads no body: the server discards what the client sent. */
export function notWiredBackend(): BlobBackend {
  const fail = (name: string) => (): Promise<never> => Promise.reject(new FrontendError('NotWired', `${name}: no storage is wired to this front end yet`, [['OperationName', name]]));
  const family = <T extends object>(names: readonly (keyof T & string)[]): T =>
    Object.fromEntries(names.map((name) => [name, fail(name)])) as T;
  return {
    service: family<ServiceBackend>(['getBlobServiceProperties', 'setBlobServiceProperties', 'getServiceStats', 'listContainers', 'getAccountInformation', 'findBlobsByTags']),
    container: family<ContainerBackend>(['createContainer', 'getContainerProperties', 'setContainerMetadata', 'getContainerAcl', 'setContainerAcl', 'deleteContainer', 'leaseContainer', 'listBlobs']),
    blockBlob: family<BlockBlobBackend>(['putBlob', 'putBlock', 'putBlockList', 'getBlockList', 'putBlockFromUrl', 'copyBlob', 'copyBlobFromUrl', 'abortCopyBlob']),
    appendBlob: family<AppendBlobBackend>(['createAppendBlob', 'appendBlock', 'sealAppendBlob']),
    blob: family<BlobObjectBackend>(['getBlob', 'getBlobProperties', 'setBlobProperties', 'setBlobMetadata', 'setBlobTags', 'getBlobTags', 'deleteBlob', 'snapshotBlob', 'leaseBlob', 'setBlobTier']),
  };
}
