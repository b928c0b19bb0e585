// Exhaustive dispatch: one typed Operation → one BlobBackend call → one Reply (status, headers,
// body) in Azure's response shape. The switch over `kind` has a case per operation and no
// default, so adding an operation fails lint (switch-exhaustiveness-check) until it is served.
//
// Invariants: the backend is called only with a fully parsed operation and, for XML bodies,
// the typed document; replies never include secrets; a HEAD reply has no body.
// Fault model: backend calls fail with typed errors, which propagate to the error table.

import type { BlobBackend, CallContext, LeaseResult, RequestBody, WriteResult } from './blob-backend.ts';
import { FrontendError } from './errors.ts';
import { httpDate } from './fields.ts';
import type { BlobProperties, ContainerProperties, Metadata } from './model.ts';
import type {
  AppendBlobOperation, BlobOperation, BlockBlobOperation, ContainerOperation, Operation, ServiceOperation, Unsupported,
} from './operation.ts';
import { parseBlockListXml, parseServicePropertiesXml, parseSignedIdentifiersXml, parseTagsXml } from './xml.ts';
import {
  blockListXml, findBlobsXml, listBlobsXml, listContainersXml, servicePropertiesXml, serviceStatsXml,
  signedIdentifiersXml, tagsXml,
} from './xml-responses.ts';

export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | Uint8Array | AsyncIterable<Uint8Array> | null;
}

/** What the server hands dispatch for the operation's body: nothing, a parsed-later XML
 * document (bytes, already bounded), or the streamed data body. */
export type BodyInput = { readonly kind: 'none' } | { readonly kind: 'xml'; readonly bytes: Uint8Array } | { readonly kind: 'data'; readonly body: RequestBody };

const xmlType = { 'content-type': 'application/xml' };

function xml(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return { status, headers: { ...xmlType, ...headers }, body };
}

function empty(status: number, headers: Record<string, string> = {}): Reply {
  return { status, headers, body: null };
}

/** A write's answer headers (set one by one, not spread from literals: every write answers these). */
function writeHeaders(result: WriteResult): Record<string, string> {
  const headers: Record<string, string> = { etag: result.etag, 'last-modified': httpDate(result.lastModified.getTime()), 'x-ms-request-server-encrypted': 'true' };
  if (result.contentMd5 !== undefined) headers['content-md5'] = Buffer.from(result.contentMd5).toString('base64');
  if (result.versionId !== undefined) headers['x-ms-version-id'] = result.versionId;
  return headers;
}

function metadataHeaders(metadata: Metadata): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of metadata) headers[`x-ms-meta-${name}`] = value;
  return headers;
}

function containerHeaders(p: ContainerProperties): Record<string, string> {
  return {
    etag: p.etag, 'last-modified': p.lastModified.toUTCString(), 'x-ms-lease-status': p.lease.status, 'x-ms-lease-state': p.lease.state,
    ...(p.lease.duration === undefined ? {} : { 'x-ms-lease-duration': p.lease.duration }),
    ...(p.publicAccess === null ? {} : { 'x-ms-blob-public-access': p.publicAccess }),
    'x-ms-has-immutability-policy': 'false', 'x-ms-has-legal-hold': 'false', ...metadataHeaders(p.metadata),
  };
}

export function blobHeaders(p: BlobProperties): Record<string, string> {
  const h = p.httpHeaders;
  const headers: Record<string, string> = {
    etag: p.etag, 'last-modified': httpDate(p.lastModified.getTime()), 'x-ms-creation-time': httpDate(p.createdOn.getTime()),
    'x-ms-blob-type': p.blobType, 'x-ms-lease-status': p.lease.status, 'x-ms-lease-state': p.lease.state,
    'x-ms-server-encrypted': 'true', 'accept-ranges': 'bytes',
  };
  for (const [name, value] of p.metadata) headers[`x-ms-meta-${name}`] = value;
  // Assigned one by one (no list of optional pairs built per response: this runs for every Get).
  headers['content-type'] = h.contentType ?? 'application/octet-stream';
  if (h.contentEncoding !== undefined) headers['content-encoding'] = h.contentEncoding;
  if (h.contentLanguage !== undefined) headers['content-language'] = h.contentLanguage;
  if (h.cacheControl !== undefined) headers['cache-control'] = h.cacheControl;
  if (h.contentDisposition !== undefined) headers['content-disposition'] = h.contentDisposition;
  if (h.contentMd5 !== undefined) headers['content-md5'] = Buffer.from(h.contentMd5).toString('base64');
  if (p.lease.duration !== undefined) headers['x-ms-lease-duration'] = p.lease.duration;
  if (p.accessTier !== undefined) headers['x-ms-access-tier'] = p.accessTier;
  if (p.committedBlockCount !== undefined) headers['x-ms-blob-committed-block-count'] = p.committedBlockCount.toString();
  if (p.sealed !== undefined) headers['x-ms-blob-sealed'] = p.sealed.toString();
  if (p.tagCount !== undefined) headers['x-ms-tag-count'] = p.tagCount.toString();
  if (p.copy !== undefined) Object.assign(headers, copyHeaders(p.copy));
  return headers;
}

function copyHeaders(copy: NonNullable<BlobProperties['copy']>): Record<string, string> {
  const optional: [string, string | undefined][] = [
    ['x-ms-copy-id', copy.id], ['x-ms-copy-status', copy.status], ['x-ms-copy-source', copy.source], ['x-ms-copy-progress', copy.progress],
    ['x-ms-copy-completion-time', copy.completedOn?.toUTCString()],
    // Header values cannot carry line breaks; the description is Kura's own text (bounded when stored).
    ['x-ms-copy-status-description', copy.statusDescription?.replace(/[^\x20-\x7e]/g, ' ')],
  ];
  const headers: Record<string, string> = {};
  for (const [name, value] of optional) if (value !== undefined) headers[name] = value;
  return headers;
}

function leaseHeaders(result: LeaseResult): Record<string, string> {
  return {
    etag: result.etag, 'last-modified': result.lastModified.toUTCString(),
    ...(result.leaseId === undefined ? {} : { 'x-ms-lease-id': result.leaseId }),
    ...(result.leaseTimeSeconds === undefined ? {} : { 'x-ms-lease-time': String(result.leaseTimeSeconds) }),
  };
}

function leaseStatus(action: string): number {
  return action === 'acquire' ? 201 : action === 'break' ? 202 : 200;
}

function xmlBytes(body: BodyInput): Uint8Array {
  if (body.kind !== 'xml') throw new FrontendError('InternalError', 'operation needs its XML body');
  return body.bytes;
}

function dataBody(body: BodyInput): RequestBody {
  if (body.kind !== 'data') throw new FrontendError('InternalError', 'operation needs its data body');
  return body.body;
}

export interface DispatchInput {
  readonly operation: Operation;
  readonly body: BodyInput;
  readonly ctx: CallContext;
  /** Base URL of the account for list documents' ServiceEndpoint. */
  readonly endpoint: string;
}

/** Not async itself: it hands on the promise of the group's dispatcher (no promise and tick of its own per request). */
export function dispatch(backend: BlobBackend, input: DispatchInput): Promise<Reply> {
  const op = input.operation;
  switch (op.kind) {
    case 'GetBlobServiceProperties': case 'SetBlobServiceProperties': case 'GetServiceStats': case 'ListContainers':
    case 'GetAccountInformation': case 'GetUserDelegationKey': case 'FindBlobsByTags': case 'Unsupported':
      return dispatchService(backend, op, input);
    case 'CreateContainer': case 'GetContainerProperties': case 'GetContainerMetadata': case 'SetContainerMetadata':
    case 'GetContainerACL': case 'SetContainerACL': case 'DeleteContainer': case 'LeaseContainer': case 'ListBlobs':
      return dispatchContainer(backend, op, input);
    case 'PutBlob': case 'PutBlock': case 'PutBlockFromURL': case 'PutBlockList': case 'GetBlockList': case 'CopyBlob':
    case 'CopyBlobFromURL': case 'AbortCopyBlob': case 'CreateAppendBlob': case 'AppendBlock': case 'SealAppendBlob':
      return dispatchBlockBlob(backend, op, input);
    case 'GetBlob': case 'GetBlobProperties': case 'GetBlobMetadata': case 'SetBlobProperties': case 'SetBlobMetadata':
    case 'SetBlobTags': case 'GetBlobTags': case 'DeleteBlob': case 'SnapshotBlob': case 'LeaseBlob': case 'SetBlobTier':
      return dispatchBlob(backend, op, input);
  }
}

async function dispatchService(backend: BlobBackend, op: ServiceOperation | Unsupported, input: DispatchInput): Promise<Reply> {
  const { ctx } = input;
  switch (op.kind) {
    case 'GetBlobServiceProperties': return xml(200, servicePropertiesXml(await backend.service.getBlobServiceProperties(op, ctx)));
    case 'SetBlobServiceProperties': await backend.service.setBlobServiceProperties(op, parseServicePropertiesXml(xmlBytes(input.body)), ctx); return empty(202);
    case 'GetServiceStats': return xml(200, serviceStatsXml(await backend.service.getServiceStats(op, ctx)));
    case 'ListContainers': return xml(200, listContainersXml(input.endpoint, op, await backend.service.listContainers(op, ctx)));
    case 'GetAccountInformation': {
      const info = await backend.service.getAccountInformation(op, ctx);
      return empty(200, { 'x-ms-sku-name': info.skuName, 'x-ms-account-kind': info.accountKind, 'x-ms-is-hns-enabled': String(info.isHierarchicalNamespaceEnabled) });
    }
    case 'GetUserDelegationKey': throw new FrontendError('NotImplemented', 'user delegation keys need Microsoft Entra ID, which Kura does not have', [['OperationName', 'GetUserDelegationKey']]);
    case 'FindBlobsByTags': return xml(200, findBlobsXml(input.endpoint, op, await backend.service.findBlobsByTags(op, ctx)));
    case 'Unsupported': throw new FrontendError('NotImplemented', `${op.operationName} is not supported by Kura`, [['OperationName', op.operationName]]);
  }
}

async function dispatchContainer(backend: BlobBackend, op: ContainerOperation, input: DispatchInput): Promise<Reply> {
  const { ctx } = input;
  switch (op.kind) {
    case 'CreateContainer': return empty(201, writeHeaders(await backend.container.createContainer(op, ctx)));
    case 'GetContainerProperties': case 'GetContainerMetadata': return empty(200, containerHeaders(await backend.container.getContainerProperties(op, ctx)));
    case 'SetContainerMetadata': return empty(200, writeHeaders(await backend.container.setContainerMetadata(op, ctx)));
    case 'GetContainerACL': {
      const { properties, acl } = await backend.container.getContainerAcl(op, ctx);
      return xml(200, signedIdentifiersXml(acl), { etag: properties.etag, 'last-modified': properties.lastModified.toUTCString(), ...(acl.publicAccess === null ? {} : { 'x-ms-blob-public-access': acl.publicAccess }) });
    }
    case 'SetContainerACL': return empty(200, writeHeaders(await backend.container.setContainerAcl(op, parseSignedIdentifiersXml(xmlBytes(input.body)), ctx)));
    case 'DeleteContainer': await backend.container.deleteContainer(op, ctx); return empty(202);
    case 'LeaseContainer': return empty(leaseStatus(op.lease.action), leaseHeaders(await backend.container.leaseContainer(op, ctx)));
    case 'ListBlobs': return xml(200, listBlobsXml(input.endpoint, op, await backend.container.listBlobs(op, ctx)));
  }
}

/** The x-ms-content-crc64 a body was checked against (the body throws Crc64Mismatch otherwise): echoed. */
function crc64Echo(op: { readonly contentCrc64?: Uint8Array }): Record<string, string> {
  return withCrc64Echo({}, op);
}

/** `headers` with the request's x-ms-content-crc64 echoed, if it had one. */
function withCrc64Echo(headers: Record<string, string>, op: { readonly contentCrc64?: Uint8Array }): Record<string, string> {
  if (op.contentCrc64 !== undefined) headers['x-ms-content-crc64'] = Buffer.from(op.contentCrc64).toString('base64');
  return headers;
}

async function dispatchBlockBlob(backend: BlobBackend, op: BlockBlobOperation | AppendBlobOperation, input: DispatchInput): Promise<Reply> {
  const { ctx } = input;
  switch (op.kind) {
    case 'PutBlob': return empty(201, withCrc64Echo(writeHeaders(await backend.blockBlob.putBlob(op, dataBody(input.body), ctx)), op));
    case 'PutBlock': case 'PutBlockFromURL': {
      const result = op.kind === 'PutBlock' ? await backend.blockBlob.putBlock(op, dataBody(input.body), ctx) : await backend.blockBlob.putBlockFromUrl(op, ctx);
      return empty(201, {
        'x-ms-request-server-encrypted': 'true', ...(result.contentMd5 === undefined ? {} : { 'content-md5': Buffer.from(result.contentMd5).toString('base64') }),
        ...(op.kind === 'PutBlock' ? crc64Echo(op) : {}),
      });
    }
    case 'PutBlockList': return empty(201, writeHeaders(await backend.blockBlob.putBlockList(op, parseBlockListXml(xmlBytes(input.body)), ctx)));
    case 'GetBlockList': {
      const list = await backend.blockBlob.getBlockList(op, ctx);
      return xml(200, blockListXml(list, op.listType), {
        ...(list.etag === undefined ? {} : { etag: list.etag }), ...(list.lastModified === undefined ? {} : { 'last-modified': list.lastModified.toUTCString() }),
        ...(list.contentLength === undefined ? {} : { 'x-ms-blob-content-length': String(list.contentLength) }),
      });
    }
    case 'CopyBlob': case 'CopyBlobFromURL': {
      const result = op.kind === 'CopyBlob' ? await backend.blockBlob.copyBlob(op, ctx) : await backend.blockBlob.copyBlobFromUrl(op, ctx);
      return empty(202, { ...writeHeaders(result), 'x-ms-copy-id': result.copyId, 'x-ms-copy-status': result.copyStatus });
    }
    case 'AbortCopyBlob': await backend.blockBlob.abortCopyBlob(op, ctx); return empty(204);
    case 'CreateAppendBlob': return empty(201, writeHeaders(await backend.appendBlob.createAppendBlob(op, ctx)));
    case 'AppendBlock': {
      const result = await backend.appendBlob.appendBlock(op, dataBody(input.body), ctx);
      return empty(201, { ...writeHeaders(result), ...crc64Echo(op), 'x-ms-blob-append-offset': String(result.appendOffset), 'x-ms-blob-committed-block-count': String(result.committedBlockCount) });
    }
    case 'SealAppendBlob': return empty(200, { ...writeHeaders(await backend.appendBlob.sealAppendBlob(op, ctx)), 'x-ms-blob-sealed': 'true' });
  }
}

async function dispatchBlob(backend: BlobBackend, op: BlobOperation, input: DispatchInput): Promise<Reply> {
  const { ctx } = input;
  switch (op.kind) {
    case 'GetBlob': {
      const content = await backend.blob.getBlob(op, ctx);
      const headers = blobHeaders(content.properties);
      if (content.range === null) {
        headers['content-length'] = String(content.properties.contentLength);
        return { status: 200, headers, body: content.body };
      }
      const { start, end } = content.range;
      delete headers['content-md5'];
      return {
        status: 206, body: content.body,
        headers: {
          ...headers, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${content.properties.contentLength}`,
          ...(content.rangeContentMd5 === undefined ? {} : { 'content-md5': Buffer.from(content.rangeContentMd5).toString('base64') }),
          ...(content.rangeContentCrc64 === undefined ? {} : { 'x-ms-content-crc64': Buffer.from(content.rangeContentCrc64).toString('base64') }),
          ...(content.properties.httpHeaders.contentMd5 === undefined ? {} : { 'x-ms-blob-content-md5': Buffer.from(content.properties.httpHeaders.contentMd5).toString('base64') }),
        },
      };
    }
    case 'GetBlobProperties': {
      const properties = await backend.blob.getBlobProperties(op, ctx);
      const headers = blobHeaders(properties);
      headers['content-length'] = String(properties.contentLength);
      return empty(200, headers);
    }
    case 'GetBlobMetadata': {
      const p = await backend.blob.getBlobProperties(op, ctx);
      return empty(200, { etag: p.etag, 'last-modified': p.lastModified.toUTCString(), ...metadataHeaders(p.metadata) });
    }
    case 'SetBlobProperties': return empty(200, writeHeaders(await backend.blob.setBlobProperties(op, ctx)));
    case 'SetBlobMetadata': return empty(200, writeHeaders(await backend.blob.setBlobMetadata(op, ctx)));
    case 'SetBlobTags': await backend.blob.setBlobTags(op, parseTagsXml(xmlBytes(input.body)), ctx); return empty(204);
    case 'GetBlobTags': return xml(200, tagsXml(await backend.blob.getBlobTags(op, ctx)));
    case 'DeleteBlob': await backend.blob.deleteBlob(op, ctx); return empty(202, { 'x-ms-delete-type-permanent': 'true' });
    case 'SnapshotBlob': {
      const result = await backend.blob.snapshotBlob(op, ctx);
      return empty(201, { ...writeHeaders(result), 'x-ms-snapshot': result.snapshot });
    }
    case 'LeaseBlob': return empty(leaseStatus(op.lease.action), leaseHeaders(await backend.blob.leaseBlob(op, ctx)));
    case 'SetBlobTier': await backend.blob.setBlobTier(op, ctx); return empty(200);
  }
}
