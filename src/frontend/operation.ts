// The typed Operation: every Blob service request Kura understands, named exactly as Azure
// names the operation, with validated fields. request-parser.ts builds one per request, once,
// at the edge (STYLE.md principle 5); the authoriser, the server and the backend only switch on
// `kind` — exhaustively — and never look at raw headers again.
//
// Invariants: every field is a typed, validated value (branded names, parsed ranges, GUID lease
// ids, Base64 block ids); optional fields are absent, never empty strings. Operations with a
// request body say how long it is (contentLength, checked against its limit); XML bodies are
// parsed by the server (xml.ts) into the typed documents in model.ts before dispatch.
// Fault model: none here (types only); see request-parser.ts.

import type {
  AccessTier, AccountName, BlobHttpHeaders, BlobName, BlobTag, BlockId, ContainerName, ETag,
  LeaseId, Metadata, PublicAccess, SnapshotId,
} from './model.ts';

/** Inclusive byte range; `end` null means "to the end of the blob" (bytes=N-). */
export interface ByteRange {
  readonly start: number;
  readonly end: number | null;
}

export type ETagCondition = { readonly kind: 'any' } | { readonly kind: 'list'; readonly etags: readonly ETag[] };

/** HTTP conditional headers (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since)
 * and Azure's x-ms-if-tags predicate, as given. */
export interface Conditions {
  readonly ifMatch?: ETagCondition;
  readonly ifNoneMatch?: ETagCondition;
  readonly ifModifiedSince?: Date;
  readonly ifUnmodifiedSince?: Date;
  readonly ifTags?: string;
}

export type LeaseAction =
  | { readonly action: 'acquire'; readonly durationSeconds: number; readonly proposedLeaseId?: LeaseId }
  | { readonly action: 'renew'; readonly leaseId: LeaseId }
  | { readonly action: 'change'; readonly leaseId: LeaseId; readonly proposedLeaseId: LeaseId }
  | { readonly action: 'release'; readonly leaseId: LeaseId }
  | { readonly action: 'break'; readonly breakPeriodSeconds?: number };

export interface BlobRef {
  readonly container: ContainerName;
  readonly blob: BlobName;
}

/** A copy source: an absolute http(s) URL (Kura or elsewhere), validated for shape only. */
export interface CopySource {
  readonly url: string;
  /** x-ms-copy-source-authorization (Bearer only), forwarded to a source outside Kura. */
  readonly authorization?: string;
  /** The URL's authority is the request's Host: a blob of this endpoint, read from the partition
   * layer; otherwise the source is fetched over HTTP (docs/copy-sources.md). */
  readonly local: boolean;
}

export type ListContainersInclude = 'metadata' | 'deleted' | 'system';
export type ListBlobsInclude = 'copy' | 'deleted' | 'metadata' | 'snapshots' | 'uncommittedblobs' | 'tags' | 'versions' | 'immutabilitypolicy' | 'legalhold' | 'deletedwithversions';

interface Common {
  readonly account: AccountName;
}

interface OnContainer extends Common {
  readonly container: ContainerName;
}

interface OnBlob extends Common, BlobRef {
  /** x-ms-lease-id: the operation must hold the blob's lease. */
  readonly leaseId?: LeaseId;
  readonly conditions: Conditions;
}

// ---- service ----
export interface GetBlobServiceProperties extends Common { readonly kind: 'GetBlobServiceProperties' }
export interface SetBlobServiceProperties extends Common { readonly kind: 'SetBlobServiceProperties'; readonly contentLength: number }
export interface GetServiceStats extends Common { readonly kind: 'GetServiceStats' }
export interface ListContainers extends Common {
  readonly kind: 'ListContainers';
  readonly prefix?: string;
  readonly marker?: string;
  readonly maxResults: number;
  readonly include: ReadonlySet<ListContainersInclude>;
}
export interface GetAccountInformation extends Common { readonly kind: 'GetAccountInformation' }
export interface GetUserDelegationKey extends Common { readonly kind: 'GetUserDelegationKey'; readonly contentLength: number }
export interface FindBlobsByTags extends Common {
  readonly kind: 'FindBlobsByTags';
  /** Container-scoped (restype=container&comp=blobs) or account-wide. */
  readonly container?: ContainerName;
  readonly where: string;
  readonly marker?: string;
  readonly maxResults: number;
}

// ---- container ----
export interface CreateContainer extends OnContainer { readonly kind: 'CreateContainer'; readonly metadata: Metadata; readonly publicAccess: PublicAccess | null }
export interface GetContainerProperties extends OnContainer { readonly kind: 'GetContainerProperties'; readonly leaseId?: LeaseId }
export interface GetContainerMetadata extends OnContainer { readonly kind: 'GetContainerMetadata'; readonly leaseId?: LeaseId }
export interface SetContainerMetadata extends OnContainer { readonly kind: 'SetContainerMetadata'; readonly metadata: Metadata; readonly leaseId?: LeaseId; readonly conditions: Conditions }
export interface GetContainerACL extends OnContainer { readonly kind: 'GetContainerACL'; readonly leaseId?: LeaseId }
export interface SetContainerACL extends OnContainer {
  readonly kind: 'SetContainerACL';
  readonly publicAccess: PublicAccess | null;
  readonly leaseId?: LeaseId;
  readonly conditions: Conditions;
  readonly contentLength: number;
}
export interface DeleteContainer extends OnContainer { readonly kind: 'DeleteContainer'; readonly leaseId?: LeaseId; readonly conditions: Conditions }
export interface LeaseContainer extends OnContainer { readonly kind: 'LeaseContainer'; readonly lease: LeaseAction; readonly conditions: Conditions }
export interface ListBlobs extends OnContainer {
  readonly kind: 'ListBlobs';
  readonly prefix?: string;
  readonly delimiter?: string;
  readonly marker?: string;
  readonly maxResults: number;
  readonly include: ReadonlySet<ListBlobsInclude>;
}

// ---- block blobs ----
export interface PutBlob extends OnBlob {
  readonly kind: 'PutBlob';
  readonly contentLength: number;
  readonly contentMd5?: Uint8Array;
  /** x-ms-content-crc64 (8 bytes, Azure's little-endian order): checked by the body, echoed. */
  readonly contentCrc64?: Uint8Array;
  readonly httpHeaders: BlobHttpHeaders;
  readonly metadata: Metadata;
  readonly tags: readonly BlobTag[];
  readonly tier?: AccessTier;
}
/** The Content-MD5 of a Put Block / Append Block: checked when sent, then echoed; when none was sent,
 * computed and answered only for x-ms-version before 2019-02-02 (Azure; later versions answer none). */
export interface BodyMd5 {
  readonly contentMd5?: Uint8Array;
  readonly computeMd5: boolean;
  /** x-ms-content-crc64 (8 bytes, Azure's little-endian order): checked by the body, echoed. */
  readonly contentCrc64?: Uint8Array;
}

export interface PutBlock extends OnBlob, BodyMd5 { readonly kind: 'PutBlock'; readonly blockId: BlockId; readonly contentLength: number }
export interface PutBlockList extends OnBlob {
  readonly kind: 'PutBlockList';
  readonly contentLength: number;
  readonly httpHeaders: BlobHttpHeaders;
  readonly metadata: Metadata;
  readonly tags: readonly BlobTag[];
  readonly tier?: AccessTier;
}
export interface GetBlockList extends OnBlob { readonly kind: 'GetBlockList'; readonly listType: 'committed' | 'uncommitted' | 'all'; readonly snapshot?: SnapshotId }
export interface PutBlockFromURL extends OnBlob {
  readonly kind: 'PutBlockFromURL';
  readonly blockId: BlockId;
  readonly source: CopySource;
  readonly sourceRange?: ByteRange;
  readonly sourceContentMd5?: Uint8Array;
  readonly sourceConditions: Conditions;
}
export interface CopyBlob extends OnBlob {
  readonly kind: 'CopyBlob';
  readonly source: CopySource;
  readonly metadata: Metadata;
  /** x-ms-tags: the destination's tags (a copy does not carry the source's). */
  readonly tags: readonly BlobTag[];
  readonly tier?: AccessTier;
  readonly sourceConditions: Conditions;
  readonly sourceLeaseId?: LeaseId;
}
export interface CopyBlobFromURL extends OnBlob {
  readonly kind: 'CopyBlobFromURL';
  readonly source: CopySource;
  readonly metadata: Metadata;
  readonly tags: readonly BlobTag[];
  readonly tier?: AccessTier;
  readonly sourceConditions: Conditions;
  readonly sourceContentMd5?: Uint8Array;
}
export interface AbortCopyBlob extends OnBlob { readonly kind: 'AbortCopyBlob'; readonly copyId: string }

// ---- append blobs ----
export interface CreateAppendBlob extends OnBlob { readonly kind: 'CreateAppendBlob'; readonly httpHeaders: BlobHttpHeaders; readonly metadata: Metadata; readonly tags: readonly BlobTag[] }
export interface AppendBlock extends OnBlob, BodyMd5 {
  readonly kind: 'AppendBlock';
  readonly contentLength: number;
  /** x-ms-blob-condition-maxsize and x-ms-blob-condition-appendpos. */
  readonly maxSize?: number;
  readonly appendPosition?: number;
}
export interface SealAppendBlob extends OnBlob { readonly kind: 'SealAppendBlob'; readonly appendPosition?: number }

// ---- all blobs ----
export interface GetBlob extends OnBlob {
  readonly kind: 'GetBlob';
  readonly range?: ByteRange;
  /** x-ms-range-get-content-md5: only with a range of at most 4 MiB. */
  readonly rangeGetContentMd5: boolean;
  /** x-ms-range-get-content-crc64: the same, answered as x-ms-content-crc64; not with the MD5 one. */
  readonly rangeGetContentCrc64?: boolean;
  readonly snapshot?: SnapshotId;
  readonly versionId?: SnapshotId;
}
export interface GetBlobProperties extends OnBlob { readonly kind: 'GetBlobProperties'; readonly snapshot?: SnapshotId; readonly versionId?: SnapshotId }
export interface SetBlobProperties extends OnBlob { readonly kind: 'SetBlobProperties'; readonly httpHeaders: BlobHttpHeaders }
export interface GetBlobMetadata extends OnBlob { readonly kind: 'GetBlobMetadata'; readonly snapshot?: SnapshotId }
export interface SetBlobMetadata extends OnBlob { readonly kind: 'SetBlobMetadata'; readonly metadata: Metadata }
export interface SetBlobTags extends OnBlob { readonly kind: 'SetBlobTags'; readonly contentLength: number; readonly versionId?: SnapshotId }
export interface GetBlobTags extends OnBlob { readonly kind: 'GetBlobTags'; readonly snapshot?: SnapshotId; readonly versionId?: SnapshotId }
export interface DeleteBlob extends OnBlob { readonly kind: 'DeleteBlob'; readonly snapshot?: SnapshotId; readonly deleteSnapshots?: 'include' | 'only' }
export interface SnapshotBlob extends OnBlob { readonly kind: 'SnapshotBlob'; readonly metadata: Metadata }
export interface LeaseBlob extends OnBlob { readonly kind: 'LeaseBlob'; readonly lease: LeaseAction }
export interface SetBlobTier extends OnBlob { readonly kind: 'SetBlobTier'; readonly tier: AccessTier; readonly snapshot?: SnapshotId; readonly rehydratePriority?: 'High' | 'Standard' }

/** A request Kura recognises but does not serve (page blobs, batch, queues, tables …): answered
 * with Azure's 501 NotImplemented naming the operation, never misrouted to another operation. */
export interface Unsupported extends Common {
  readonly kind: 'Unsupported';
  readonly service: 'blob' | 'queue' | 'table' | 'file' | 'dfs';
  readonly operationName: string;
}

export type ServiceOperation = GetBlobServiceProperties | SetBlobServiceProperties | GetServiceStats | ListContainers | GetAccountInformation | GetUserDelegationKey | FindBlobsByTags;
export type ContainerOperation = CreateContainer | GetContainerProperties | GetContainerMetadata | SetContainerMetadata | GetContainerACL | SetContainerACL | DeleteContainer | LeaseContainer | ListBlobs;
export type BlockBlobOperation = PutBlob | PutBlock | PutBlockList | GetBlockList | PutBlockFromURL | CopyBlob | CopyBlobFromURL | AbortCopyBlob;
export type AppendBlobOperation = CreateAppendBlob | AppendBlock | SealAppendBlob;
export type BlobOperation = GetBlob | GetBlobProperties | SetBlobProperties | GetBlobMetadata | SetBlobMetadata | SetBlobTags | GetBlobTags | DeleteBlob | SnapshotBlob | LeaseBlob | SetBlobTier;

export type Operation = ServiceOperation | ContainerOperation | BlockBlobOperation | AppendBlobOperation | BlobOperation | Unsupported;
export type OperationKind = Operation['kind'];

/** Operations whose body is an XML document (read whole, bounded by xmlBodyBytesMax). */
export type XmlBodyOperation = SetBlobServiceProperties | SetContainerACL | PutBlockList | SetBlobTags | GetUserDelegationKey;
/** Operations whose body is blob bytes, streamed to the backend. */
export type DataBodyOperation = PutBlob | PutBlock | AppendBlock;

export function hasXmlBody(op: Operation): op is XmlBodyOperation {
  return op.kind === 'SetBlobServiceProperties' || op.kind === 'SetContainerACL' || op.kind === 'PutBlockList' || op.kind === 'SetBlobTags' || op.kind === 'GetUserDelegationKey';
}

export function hasDataBody(op: Operation): op is DataBodyOperation {
  return op.kind === 'PutBlob' || op.kind === 'PutBlock' || op.kind === 'AppendBlock';
}

/** What the operation is addressed to, for authorisation (SAS signed resource, public access). */
export type ResourceRef =
  | { readonly kind: 'service' }
  | { readonly kind: 'container'; readonly container: ContainerName }
  | { readonly kind: 'blob'; readonly container: ContainerName; readonly blob: BlobName };

export function resourceOf(op: Operation): ResourceRef {
  if ('blob' in op) return { kind: 'blob', container: op.container, blob: op.blob };
  if (op.kind === 'FindBlobsByTags') return { kind: 'service' };
  if ('container' in op) return { kind: 'container', container: op.container };
  return { kind: 'service' };
}

/** Operations that only read: anonymous public access and read-only SAS may perform these. */
export function isReadOperation(op: Operation): boolean {
  switch (op.kind) {
    case 'GetBlobServiceProperties': case 'GetServiceStats': case 'ListContainers':
    case 'GetAccountInformation': case 'FindBlobsByTags': case 'GetContainerProperties':
    case 'GetContainerMetadata': case 'GetContainerACL': case 'ListBlobs': case 'GetBlockList':
    case 'GetBlob': case 'GetBlobProperties': case 'GetBlobMetadata': case 'GetBlobTags':
      return true;
    case 'SetBlobServiceProperties': case 'GetUserDelegationKey': case 'CreateContainer':
    case 'SetContainerMetadata': case 'SetContainerACL': case 'DeleteContainer':
    case 'LeaseContainer': case 'PutBlob': case 'PutBlock': case 'PutBlockList':
    case 'PutBlockFromURL': case 'CopyBlob': case 'CopyBlobFromURL': case 'AbortCopyBlob':
    case 'CreateAppendBlob': case 'AppendBlock': case 'SealAppendBlob': case 'SetBlobProperties':
    case 'SetBlobMetadata': case 'SetBlobTags': case 'DeleteBlob': case 'SnapshotBlob':
    case 'LeaseBlob': case 'SetBlobTier': case 'Unsupported':
      return false;
  }
}
