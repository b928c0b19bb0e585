// The Blob service's data model as the front end sees it: the typed values that requests carry
// in (service properties, ACLs, block lists, tags) and that the backend returns (properties,
// list pages). Azure's vocabulary throughout; no behaviour here, only shapes.
//
// Invariants: every value here was validated when it was built (by request-parser.ts or xml.ts
// on the way in, by the backend on the way out); arrays are bounded by the limits in
// src/constants.ts. Fault model: none (plain data).

/** Branded strings: a value of these types has passed its validator in fields.ts. */
export type AccountName = string & { readonly __brand: 'AccountName' };
export type ContainerName = string & { readonly __brand: 'ContainerName' };
export type BlobName = string & { readonly __brand: 'BlobName' };
/** A block id as sent (Base64 text); its decoded length is 1..blockIdBytesMax bytes. */
export type BlockId = string & { readonly __brand: 'BlockId' };
export type LeaseId = string & { readonly __brand: 'LeaseId' };
/** An entity tag exactly as it appears on the wire, quotes included when the client sent them. */
export type ETag = string & { readonly __brand: 'ETag' };
/** A snapshot or version timestamp as Azure formats it (ISO 8601 with 7 fractional digits). */
export type SnapshotId = string & { readonly __brand: 'SnapshotId' };

/** Metadata: names as the client cased them (unique ignoring case) to printable ASCII values. */
export type Metadata = ReadonlyMap<string, string>;

export type PublicAccess = 'container' | 'blob';
export type AccessTier = 'Hot' | 'Cool' | 'Cold' | 'Archive';
export type BlobType = 'BlockBlob' | 'AppendBlob' | 'PageBlob';

export interface BlobHttpHeaders {
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly contentLanguage?: string;
  readonly contentMd5?: Uint8Array;
  readonly cacheControl?: string;
  readonly contentDisposition?: string;
}

export interface BlobTag {
  readonly key: string;
  readonly value: string;
}

export interface SignedIdentifier {
  readonly id: string;
  readonly start?: string;
  readonly expiry?: string;
  readonly permission?: string;
}

export interface ContainerAcl {
  readonly publicAccess: PublicAccess | null;
  readonly identifiers: readonly SignedIdentifier[];
}

export type BlockListKind = 'Committed' | 'Uncommitted' | 'Latest';
export interface BlockListEntry {
  readonly kind: BlockListKind;
  readonly id: BlockId;
}

export interface RetentionPolicy {
  readonly enabled: boolean;
  readonly days?: number;
}

export interface LoggingSettings {
  readonly version: string;
  readonly read: boolean;
  readonly write: boolean;
  readonly delete: boolean;
  readonly retentionPolicy: RetentionPolicy;
}

export interface MetricsSettings {
  readonly version: string;
  readonly enabled: boolean;
  readonly includeApis?: boolean;
  readonly retentionPolicy: RetentionPolicy;
}

export interface CorsRule {
  readonly allowedOrigins: readonly string[];
  readonly allowedMethods: readonly string[];
  readonly allowedHeaders: readonly string[];
  readonly exposedHeaders: readonly string[];
  readonly maxAgeInSeconds: number;
}

export interface StaticWebsite {
  readonly enabled: boolean;
  readonly indexDocument?: string;
  readonly errorDocument404Path?: string;
  readonly defaultIndexDocumentPath?: string;
}

/** Set Blob Service Properties replaces only the elements present, so each is optional. */
export interface BlobServiceProperties {
  readonly logging?: LoggingSettings;
  readonly hourMetrics?: MetricsSettings;
  readonly minuteMetrics?: MetricsSettings;
  readonly cors?: readonly CorsRule[];
  readonly defaultServiceVersion?: string;
  readonly deleteRetentionPolicy?: RetentionPolicy;
  readonly staticWebsite?: StaticWebsite;
}

export interface ServiceStats {
  readonly geoReplication: { readonly status: 'live' | 'bootstrap' | 'unavailable'; readonly lastSyncTime?: Date };
}

export interface AccountInformation {
  readonly skuName: string;
  readonly accountKind: string;
  readonly isHierarchicalNamespaceEnabled: boolean;
}

export type LeaseStatus = 'locked' | 'unlocked';
export type LeaseState = 'available' | 'leased' | 'expired' | 'breaking' | 'broken';

export interface LeaseProperties {
  readonly status: LeaseStatus;
  readonly state: LeaseState;
  readonly duration?: 'infinite' | 'fixed';
}

export interface ContainerProperties {
  readonly etag: ETag;
  readonly lastModified: Date;
  readonly lease: LeaseProperties;
  readonly publicAccess: PublicAccess | null;
  readonly metadata: Metadata;
}

export interface CopyProperties {
  readonly id: string;
  readonly status: 'pending' | 'success' | 'aborted' | 'failed';
  readonly source: string;
  readonly progress: string;
  readonly completedOn?: Date;
  readonly statusDescription?: string;
}

export interface BlobProperties {
  readonly etag: ETag;
  readonly lastModified: Date;
  readonly createdOn: Date;
  readonly contentLength: number;
  readonly blobType: BlobType;
  readonly httpHeaders: BlobHttpHeaders;
  readonly lease: LeaseProperties;
  readonly metadata: Metadata;
  readonly accessTier?: AccessTier;
  readonly copy?: CopyProperties;
  readonly committedBlockCount?: number;
  readonly sealed?: boolean;
  readonly tagCount?: number;
  readonly snapshot?: SnapshotId;
}

export interface ContainerItem {
  readonly name: ContainerName;
  readonly properties: ContainerProperties;
}

export interface BlobItem {
  readonly name: BlobName;
  readonly properties: BlobProperties;
  readonly tags?: readonly BlobTag[];
}

export interface ListContainersPage {
  readonly containers: readonly ContainerItem[];
  readonly nextMarker: string | null;
}

export interface ListBlobsPage {
  readonly blobs: readonly BlobItem[];
  readonly blobPrefixes: readonly string[];
  readonly nextMarker: string | null;
}

export interface BlockInfo {
  readonly id: BlockId;
  readonly size: number;
}

export interface BlockList {
  readonly committed: readonly BlockInfo[];
  readonly uncommitted: readonly BlockInfo[];
  readonly etag?: ETag;
  readonly lastModified?: Date;
  readonly contentLength?: number;
}

export interface TaggedBlob {
  readonly container: ContainerName;
  readonly name: BlobName;
  readonly tags: readonly BlobTag[];
}

export interface FindBlobsPage {
  readonly blobs: readonly TaggedBlob[];
  readonly nextMarker: string | null;
}
