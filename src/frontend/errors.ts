// The front end's one error table (STYLE.md, errors rule 3). Every operating error that can
// reach an HTTP response — a StorageError from the layers below, or a FrontendError raised at
// the edge — maps here, and only here, to Azure's HTTP status, x-ms-error-code and message.
//
// Invariants: the table is exhaustive over KuraErrorCode (the `satisfies` clause fails to
// compile when a code is added without a row); Azure codes are spelled exactly as Azure spells
// them; anything that is not a typed error becomes 500 InternalError and is reported as
// `unexpected` so the server logs it with its stack.
// Fault model: the error values come from untrusted input (header values, names), so every
// detail is XML-escaped and bounded before it is echoed; no detail ever carries a secret (a
// computed signature or a key).

import { storageErrorCodes, isStorageError, type StorageErrorCode } from '../util/errors.ts';
import { escapeXml } from './xml.ts';

/** Front-end error codes: Azure's names, plus a few Kura names for Azure codes whose status
 * depends on context (ConditionNotMetRead is Azure's 304 ConditionNotMet on reads). */
export const frontendErrorCodes = [
  'AuthenticationFailed', 'AuthorizationFailure', 'AuthorizationPermissionMismatch',
  'AuthorizationProtocolMismatch', 'AuthorizationResourceTypeMismatch',
  'AuthorizationServiceMismatch', 'AuthorizationSourceIPMismatch', 'NoAuthenticationInformation',
  'InvalidAuthenticationInfo', 'PublicAccessNotPermitted', 'CorsPreflightFailure',
  'ConditionNotMet', 'ConditionNotMetRead', 'ConditionHeadersNotSupported',
  'MultipleConditionHeadersNotSupported', 'EmptyMetadataKey', 'InvalidMetadata', 'MetadataTooLarge',
  'InternalError', 'OperationTimedOut', 'ServerBusy',
  'InvalidHeaderValue', 'InvalidHttpVerb', 'UnsupportedHttpVerb', 'InvalidInput', 'InvalidMd5',
  'Md5Mismatch', 'Crc64Mismatch', 'BothCrc64AndMd5HeaderPresent', 'InvalidQueryParameterValue', 'InvalidRange',
  'InvalidResourceName', 'InvalidUri', 'InvalidXmlDocument', 'InvalidXmlNodeValue',
  'MissingContentLengthHeader', 'MissingRequiredHeader', 'MissingRequiredQueryParameter',
  'MissingRequiredXmlNode', 'OutOfRangeInput', 'OutOfRangeQueryParameterValue',
  'RequestBodyTooLarge', 'RequestUrlFailedToParse', 'ResourceNotFound', 'ResourceAlreadyExists',
  'ResourceTypeMismatch', 'UnsupportedHeader', 'UnsupportedQueryParameter', 'UnsupportedXmlNode',
  'NotImplemented', 'NotWired',
  'BlobNotFound', 'BlobAlreadyExists', 'ContainerNotFound', 'ContainerAlreadyExists',
  'ContainerBeingDeleted', 'InvalidBlobType', 'InvalidBlockId', 'InvalidBlockList',
  'BlockCountExceedsLimit', 'BlockListTooLong', 'InvalidBlobOrBlock', 'InvalidBlobTier',
  'BlobArchived', 'MaxBlobSizeConditionNotMet', 'AppendPositionConditionNotMet', 'CopyIdMismatch',
  'NoPendingCopyOperation', 'PendingCopyOperation', 'CannotVerifyCopySource', 'SnapshotsPresent',
  'SourceConditionNotMet', 'CopySourceBadRequest', 'CopySourceUnauthorized', 'CopySourceNotFound', 'CopySourceConflict',
  'CopySourceRangeNotSatisfiable', 'CopySourceUnavailable', 'CopySourceTooLarge',
  'InvalidOperation', 'InvalidTag', 'BlobIsSealed',
  'LeaseAlreadyPresent', 'LeaseIdMismatchWithBlobOperation', 'LeaseIdMismatchWithContainerOperation',
  'LeaseIdMismatchWithLeaseOperation', 'LeaseIdMissing', 'LeaseIsBreakingAndCannotBeAcquired',
  'LeaseIsBreakingAndCannotBeChanged', 'LeaseIsBrokenAndCannotBeRenewed', 'LeaseLost',
  'LeaseNotPresentWithBlobOperation', 'LeaseNotPresentWithContainerOperation',
  'LeaseNotPresentWithLeaseOperation',
] as const;

export type FrontendErrorCode = (typeof frontendErrorCodes)[number];
export type KuraErrorCode = StorageErrorCode | FrontendErrorCode;

export interface AzureErrorSpec {
  readonly status: number;
  readonly azureCode: string;
  readonly message: string;
}

/** Extra elements of Azure's error body, in order (HeaderName, QueryParameterName, Reason …). */
export type ErrorDetails = readonly (readonly [name: string, value: string])[];

export class FrontendError extends Error {
  override readonly name = 'FrontendError';
  readonly code: FrontendErrorCode;
  readonly details: ErrorDetails;

  constructor(code: FrontendErrorCode, message: string, details: ErrorDetails = []) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

export function isFrontendError(error: unknown, code?: FrontendErrorCode): error is FrontendError {
  return error instanceof FrontendError && (code === undefined || error.code === code);
}

/** Shorthands for the errors raised most often at the edge, with Azure's detail elements. */
export function invalidHeader(name: string, value: string, reason?: string): FrontendError {
  const details: [string, string][] = [['HeaderName', name], ['HeaderValue', value]];
  if (reason !== undefined) details.push(['Reason', reason]);
  return new FrontendError('InvalidHeaderValue', `invalid ${name}: ${reason ?? 'bad format'}`, details);
}

export function invalidQuery(name: string, value: string, reason: string): FrontendError {
  return new FrontendError('InvalidQueryParameterValue', `invalid query ${name}: ${reason}`, [
    ['QueryParameterName', name], ['QueryParameterValue', value], ['Reason', reason],
  ]);
}

export function missingHeader(name: string): FrontendError {
  return new FrontendError('MissingRequiredHeader', `missing header ${name}`, [['HeaderName', name]]);
}

const internal: AzureErrorSpec = { status: 500, azureCode: 'InternalError', message: 'The server encountered an internal error. Please retry the request.' };
const busy: AzureErrorSpec = { status: 503, azureCode: 'ServerBusy', message: 'The server is currently unable to receive requests. Please retry your request.' };
const timedOut: AzureErrorSpec = { status: 500, azureCode: 'OperationTimedOut', message: 'The operation could not be completed within the permitted time.' };

function spec(status: number, azureCode: string, message: string): AzureErrorSpec {
  return { status, azureCode, message };
}

/** Storage-layer codes: a failure below the front end is Azure's 500 or 503 (retryable); the
 * partition layer's conditions are the generic Azure condition and existence errors (the blob
 * backend raises the specific ones, BlobNotFound and so on, as FrontendErrors). */
const storageTable = {
  'io.eio': internal, 'io.enospc': internal, 'io.fsync_failed': internal, 'io.not_found': internal,
  'io.already_exists': internal, 'io.closed': busy,
  'wire.corrupt': internal, 'wire.too_large': internal, 'wire.unsupported_version': internal,
  'rpc.timeout': timedOut, 'rpc.unreachable': busy, 'rpc.overloaded': busy, 'rpc.remote': internal,
  'meta.conflict': busy, 'meta.lease_expired': busy, 'meta.unavailable': busy,
  'extent.not_found': internal, 'extent.exists': internal, 'extent.sealed': internal,
  'extent.stale_epoch': busy, 'extent.corrupt': internal, 'extent.out_of_range': internal,
  'extent.offset_mismatch': internal, 'extent.failed': busy, 'extent.too_large': internal,
  'stream.not_found': internal, 'stream.no_placement': busy, 'stream.unavailable': busy, 'stream.fenced': busy,
  'node.not_found': internal, 'node.protected': internal, 'token.invalid': internal, 'manager.not_leader': busy,
  'config.invalid': internal,
  'partition.condition_failed': spec(412, 'ConditionNotMet', 'The condition specified using HTTP conditional header(s) is not met.'),
  'partition.exists': spec(409, 'ResourceAlreadyExists', 'The specified resource already exists.'),
  'partition.row_not_found': spec(404, 'ResourceNotFound', 'The specified resource does not exist.'),
  'partition.too_large': spec(400, 'OutOfRangeInput', 'One of the request inputs is out of range.'),
  'partition.bad_continuation': spec(400, 'InvalidQueryParameterValue', 'Value for one of the query parameters specified in the request URI is invalid.'),
  'partition.unavailable': busy, 'partition.corrupt': internal, 'partition.fenced': busy,
  'partition.closed': busy, 'partition.busy': busy, 'partition.not_owner': busy,
} as const satisfies Record<StorageErrorCode, AzureErrorSpec>;

const authTable = {
  AuthenticationFailed: spec(403, 'AuthenticationFailed', 'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.'),
  AuthorizationFailure: spec(403, 'AuthorizationFailure', 'This request is not authorized to perform this operation.'),
  AuthorizationPermissionMismatch: spec(403, 'AuthorizationPermissionMismatch', 'This request is not authorized to perform this operation using this permission.'),
  AuthorizationProtocolMismatch: spec(403, 'AuthorizationProtocolMismatch', 'This request is not authorized to perform this operation using this protocol.'),
  AuthorizationResourceTypeMismatch: spec(403, 'AuthorizationResourceTypeMismatch', 'This request is not authorized to perform this operation using this resource type.'),
  AuthorizationServiceMismatch: spec(403, 'AuthorizationServiceMismatch', 'This request is not authorized to perform this operation using this service.'),
  AuthorizationSourceIPMismatch: spec(403, 'AuthorizationSourceIPMismatch', 'This request is not authorized to perform this operation using this source IP.'),
  NoAuthenticationInformation: spec(401, 'NoAuthenticationInformation', 'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.'),
  InvalidAuthenticationInfo: spec(400, 'InvalidAuthenticationInfo', 'Authentication information is not given in the correct format. Check the value of Authorization header.'),
  CorsPreflightFailure: spec(403, 'CorsPreflightFailure', 'CORS not enabled or no matching rule found for this request.'),
  PublicAccessNotPermitted: spec(409, 'PublicAccessNotPermitted', 'Public access is not permitted on this storage account.'),
} as const;

const requestTable = {
  ConditionNotMet: spec(412, 'ConditionNotMet', 'The condition specified using HTTP conditional header(s) is not met.'),
  ConditionNotMetRead: spec(304, 'ConditionNotMet', 'The condition specified using HTTP conditional header(s) is not met.'),
  ConditionHeadersNotSupported: spec(400, 'ConditionHeadersNotSupported', 'Condition headers are not supported.'),
  MultipleConditionHeadersNotSupported: spec(400, 'MultipleConditionHeadersNotSupported', 'Multiple condition headers are not supported.'),
  EmptyMetadataKey: spec(400, 'EmptyMetadataKey', 'The key for one of the metadata key-value pairs is empty.'),
  InvalidMetadata: spec(400, 'InvalidMetadata', 'The metadata specified is invalid. It has characters that are not permitted.'),
  MetadataTooLarge: spec(400, 'MetadataTooLarge', 'The size of the specified metadata exceeds the maximum size permitted.'),
  InternalError: internal,
  OperationTimedOut: timedOut,
  ServerBusy: busy,
  InvalidHeaderValue: spec(400, 'InvalidHeaderValue', 'The value for one of the HTTP headers is not in the correct format.'),
  InvalidHttpVerb: spec(400, 'InvalidHttpVerb', 'The HTTP verb specified was not recognized by the server.'),
  UnsupportedHttpVerb: spec(405, 'UnsupportedHttpVerb', 'The resource doesn\'t support specified Http Verb.'),
  InvalidInput: spec(400, 'InvalidInput', 'One of the request inputs is not valid.'),
  InvalidMd5: spec(400, 'InvalidMd5', 'The MD5 value specified in the request is invalid. MD5 value must be 128 bits and Base64 encoded.'),
  Md5Mismatch: spec(400, 'Md5Mismatch', 'The MD5 value specified in the request did not match with the MD5 value calculated by the server.'),
  Crc64Mismatch: spec(400, 'Crc64Mismatch', 'The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.'),
  BothCrc64AndMd5HeaderPresent: spec(400, 'BothCrc64AndMd5HeaderPresent', 'Both x-ms-content-crc64 header and Content-MD5 header are present.'),
  InvalidQueryParameterValue: spec(400, 'InvalidQueryParameterValue', 'Value for one of the query parameters specified in the request URI is invalid.'),
  InvalidRange: spec(416, 'InvalidRange', 'The range specified is invalid for the current size of the resource.'),
  InvalidResourceName: spec(400, 'InvalidResourceName', 'The specifed resource name contains invalid characters.'),
  InvalidUri: spec(400, 'InvalidUri', 'The requested URI does not represent any resource on the server.'),
  InvalidXmlDocument: spec(400, 'InvalidXmlDocument', 'XML specified is not syntactically valid.'),
  InvalidXmlNodeValue: spec(400, 'InvalidXmlNodeValue', 'The value for one of the XML nodes is not in the correct format.'),
  MissingContentLengthHeader: spec(411, 'MissingContentLengthHeader', 'The Content-Length header was not specified.'),
  MissingRequiredHeader: spec(400, 'MissingRequiredHeader', 'An HTTP header that\'s mandatory for this request is not specified.'),
  MissingRequiredQueryParameter: spec(400, 'MissingRequiredQueryParameter', 'A query parameter that\'s mandatory for this request is not specified.'),
  MissingRequiredXmlNode: spec(400, 'MissingRequiredXmlNode', 'An XML node that\'s mandatory for this request is not specified.'),
  OutOfRangeInput: spec(400, 'OutOfRangeInput', 'One of the request inputs is out of range.'),
  OutOfRangeQueryParameterValue: spec(400, 'OutOfRangeQueryParameterValue', 'One of the query parameters specified in the request URI is outside the permissible range.'),
  RequestBodyTooLarge: spec(413, 'RequestBodyTooLarge', 'The request body is too large and exceeds the maximum permissible limit.'),
  RequestUrlFailedToParse: spec(400, 'RequestUrlFailedToParse', 'The url in the request could not be parsed.'),
  ResourceNotFound: spec(404, 'ResourceNotFound', 'The specified resource does not exist.'),
  ResourceAlreadyExists: spec(409, 'ResourceAlreadyExists', 'The specified resource already exists.'),
  ResourceTypeMismatch: spec(409, 'ResourceTypeMismatch', 'The specified resource type does not match the type of the existing resource.'),
  UnsupportedHeader: spec(400, 'UnsupportedHeader', 'One of the HTTP headers specified in the request is not supported.'),
  UnsupportedQueryParameter: spec(400, 'UnsupportedQueryParameter', 'One of the query parameters specified in the request URI is not supported.'),
  UnsupportedXmlNode: spec(400, 'UnsupportedXmlNode', 'One of the XML nodes specified in the request body is not supported.'),
  NotImplemented: spec(501, 'NotImplemented', 'The requested operation is not implemented on the specified resource.'),
  // The front end is built before the storage behind it: an operation with no backend yet.
  NotWired: spec(501, 'NotImplemented', 'The requested operation is not implemented on the specified resource.'),
} as const;

const blobTable = {
  BlobNotFound: spec(404, 'BlobNotFound', 'The specified blob does not exist.'),
  BlobAlreadyExists: spec(409, 'BlobAlreadyExists', 'The specified blob already exists.'),
  ContainerNotFound: spec(404, 'ContainerNotFound', 'The specified container does not exist.'),
  ContainerAlreadyExists: spec(409, 'ContainerAlreadyExists', 'The specified container already exists.'),
  ContainerBeingDeleted: spec(409, 'ContainerBeingDeleted', 'The specified container is being deleted.'),
  InvalidBlobType: spec(409, 'InvalidBlobType', 'The blob type is invalid for this operation.'),
  InvalidBlockId: spec(400, 'InvalidBlockId', 'The specified block ID is invalid. The block ID must be Base64-encoded.'),
  InvalidBlockList: spec(400, 'InvalidBlockList', 'The specified block list is invalid.'),
  BlockCountExceedsLimit: spec(409, 'BlockCountExceedsLimit', 'The uncommitted block count cannot exceed the maximum limit of 100,000 blocks.'),
  BlockListTooLong: spec(400, 'BlockListTooLong', 'The block list may not contain more than 50,000 blocks.'),
  InvalidBlobOrBlock: spec(400, 'InvalidBlobOrBlock', 'The specified blob or block content is invalid.'),
  InvalidBlobTier: spec(400, 'InvalidBlobTier', 'The specified blob tier is invalid.'),
  BlobArchived: spec(409, 'BlobArchived', 'This operation is not permitted on an archived blob.'),
  MaxBlobSizeConditionNotMet: spec(412, 'MaxBlobSizeConditionNotMet', 'The max blob size condition specified was not met.'),
  AppendPositionConditionNotMet: spec(412, 'AppendPositionConditionNotMet', 'The append position condition specified was not met.'),
  CopyIdMismatch: spec(409, 'CopyIdMismatch', 'The specified copy ID did not match the copy ID for the pending copy operation.'),
  NoPendingCopyOperation: spec(409, 'NoPendingCopyOperation', 'There is currently no pending copy operation.'),
  PendingCopyOperation: spec(409, 'PendingCopyOperation', 'There is currently a pending copy operation.'),
  CannotVerifyCopySource: spec(403, 'CannotVerifyCopySource', 'Could not verify the copy source within the specified time.'),
  // A copy source outside Kura answered with an error: its status, Azure's code (docs/copy-sources.md).
  SourceConditionNotMet: spec(412, 'SourceConditionNotMet', 'The source condition specified using HTTP conditional header(s) is not met.'),
  CopySourceBadRequest: spec(400, 'CannotVerifyCopySource', 'The copy source refused the request.'),
  CopySourceUnauthorized: spec(401, 'CannotVerifyCopySource', 'The copy source requires authentication.'),
  CopySourceNotFound: spec(404, 'CannotVerifyCopySource', 'The specified resource does not exist.'),
  CopySourceConflict: spec(409, 'CannotVerifyCopySource', 'The copy source is in a state that does not allow reading it.'),
  CopySourceRangeNotSatisfiable: spec(416, 'CannotVerifyCopySource', 'The range specified is invalid for the current size of the resource.'),
  CopySourceUnavailable: spec(500, 'CannotVerifyCopySource', 'The copy source failed to answer the request.'),
  CopySourceTooLarge: spec(409, 'CannotVerifyCopySource', 'The copy source is larger than this operation accepts.'),
  SnapshotsPresent: spec(409, 'SnapshotsPresent', 'This operation is not permitted because the blob has snapshots.'),
  InvalidOperation: spec(400, 'InvalidOperation', 'Invalid operation against a blob snapshot.'),
  InvalidTag: spec(400, 'InvalidTag', 'The tags specified are invalid. It contains characters that are not permitted.'),
  BlobIsSealed: spec(409, 'BlobIsSealed', 'The blob is sealed and its contents cannot be modified.'),
  LeaseAlreadyPresent: spec(409, 'LeaseAlreadyPresent', 'There is already a lease present.'),
  LeaseIdMismatchWithBlobOperation: spec(412, 'LeaseIdMismatchWithBlobOperation', 'The lease ID specified did not match the lease ID for the blob.'),
  LeaseIdMismatchWithContainerOperation: spec(412, 'LeaseIdMismatchWithContainerOperation', 'The lease ID specified did not match the lease ID for the container.'),
  LeaseIdMismatchWithLeaseOperation: spec(409, 'LeaseIdMismatchWithLeaseOperation', 'The lease ID specified did not match the lease ID for the blob/container.'),
  LeaseIdMissing: spec(412, 'LeaseIdMissing', 'There is currently a lease on the blob/container and no lease ID was specified in the request.'),
  LeaseIsBreakingAndCannotBeAcquired: spec(409, 'LeaseIsBreakingAndCannotBeAcquired', 'There is currently a lease on the blob/container and no lease ID was specified in the request.'),
  LeaseIsBreakingAndCannotBeChanged: spec(409, 'LeaseIsBreakingAndCannotBeChanged', 'The lease ID matched, but the lease is currently in breaking state and cannot be changed.'),
  LeaseIsBrokenAndCannotBeRenewed: spec(409, 'LeaseIsBrokenAndCannotBeRenewed', 'The lease ID matched, but the lease has been broken explicitly and cannot be renewed.'),
  LeaseLost: spec(412, 'LeaseLost', 'A lease ID was specified, but the lease for the blob/container has expired.'),
  LeaseNotPresentWithBlobOperation: spec(412, 'LeaseNotPresentWithBlobOperation', 'There is currently no lease on the blob.'),
  LeaseNotPresentWithContainerOperation: spec(412, 'LeaseNotPresentWithContainerOperation', 'There is currently no lease on the container.'),
  LeaseNotPresentWithLeaseOperation: spec(409, 'LeaseNotPresentWithLeaseOperation', 'There is currently no lease on the blob/container.'),
} as const;

/** The table. Exhaustive over KuraErrorCode: adding a code anywhere without a row fails to compile. */
export const errorTable: Readonly<Record<KuraErrorCode, AzureErrorSpec>> = {
  ...storageTable, ...authTable, ...requestTable, ...blobTable,
} satisfies Record<KuraErrorCode, AzureErrorSpec>;

export interface MappedError {
  readonly kuraCode: KuraErrorCode;
  readonly spec: AzureErrorSpec;
  readonly details: ErrorDetails;
  /** Not a typed operating error: the server logs it with its stack. */
  readonly unexpected: boolean;
  readonly retryable: boolean;
}

/** Maps any thrown value to its table row; unknown values become InternalError. */
export function mapError(error: unknown): MappedError {
  if (isFrontendError(error)) {
    return { kuraCode: error.code, spec: errorTable[error.code], details: error.details, unexpected: false, retryable: false };
  }
  if (isStorageError(error)) {
    return { kuraCode: error.code, spec: errorTable[error.code], details: [], unexpected: false, retryable: error.retryable };
  }
  return { kuraCode: 'InternalError', spec: internal, details: [], unexpected: true, retryable: true };
}

/** Detail values echo client input: bounded so an error body cannot amplify a large header. */
const detailCharsMax = 1024;

/** Azure's error body: <Error><Code/><Message/>…details</Error>, the message ending with the
 * request id and time as Azure's does. */
export function errorBodyXml(mapped: MappedError, requestId: string, time: Date): string {
  const message = `${mapped.spec.message}\nRequestId:${requestId}\nTime:${time.toISOString()}`;
  const details = mapped.details
    .map(([name, value]) => `<${name}>${escapeXml(value.slice(0, detailCharsMax))}</${name}>`)
    .join('');
  return `<?xml version="1.0" encoding="utf-8"?><Error><Code>${mapped.spec.azureCode}</Code><Message>${escapeXml(message)}</Message>${details}</Error>`;
}

/** Every Kura code, for tests that walk the table. */
export const kuraErrorCodes: readonly KuraErrorCode[] = [...storageErrorCodes, ...frontendErrorCodes];
