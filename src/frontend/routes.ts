// Azure's routing of Blob requests: (resource level, method, restype, comp, a few headers) →
// which operation. One function per resource level, each a table-like switch; every branch
// builds its operation from validated fields. Called only by request-parser.ts.
//
// Invariants: every (method, comp) pair Azure defines at a level maps to exactly one
// operation or to Unsupported with Azure's operation name; an unknown comp is Azure's
// InvalidQueryParameterValue and a known comp with the wrong verb is UnsupportedHttpVerb.
// Fault model: as request-parser.ts (hostile input, total functions).

import { FrontendError, invalidHeader, invalidQuery } from './errors.ts';
import { parseAccessTier, parseBlockIdQuery, parseMetadata, parseSnapshotId } from './fields.ts';
import {
  bodyHashes, optionalBoolean, optionalInteger, optionalLeaseId, optionalMd5, parseBlobHttpHeaders,
  parseConditions, parseCopySource, parseLeaseAction, parseRange, parseTagPredicate,
  parseTagsHeader, parseRangeValue,
} from './header-fields.ts';
import type { BlobName, ContainerName, LeaseId, PublicAccess } from './model.ts';
import type {
  BodyMd5, ListBlobsInclude, ListContainersInclude, Operation, Unsupported,
} from './operation.ts';
import {
  bodyLength, listText, maxResults, noBody, requireHeader, single, type QueryMap, type RouteInput,
} from './request-parser.ts';
import { rangeContentHashBytesMax } from '../constants.ts';

function verbNotAllowed(): FrontendError {
  return new FrontendError('UnsupportedHttpVerb', 'this resource does not support the HTTP verb');
}

function unsupported(input: RouteInput, operationName: string): Unsupported {
  return { kind: 'Unsupported', account: input.account, service: 'blob', operationName };
}

function includeSet<T extends string>(query: QueryMap, allowed: readonly T[]): ReadonlySet<T> {
  const raw = single(query, 'include');
  if (raw === undefined || raw === '') return new Set();
  const items = raw.split(',');
  const result = new Set<T>();
  for (const item of items) {
    const found = allowed.find((candidate) => candidate.toLowerCase() === item.trim().toLowerCase());
    if (found === undefined) throw invalidQuery('include', raw.slice(0, 128), 'unknown include item');
    result.add(found);
  }
  return result;
}

const containerIncludes: readonly ListContainersInclude[] = ['metadata', 'deleted', 'system'];
const blobIncludes: readonly ListBlobsInclude[] = ['copy', 'deleted', 'metadata', 'snapshots', 'uncommittedblobs', 'tags', 'versions', 'immutabilitypolicy', 'legalhold', 'deletedwithversions'];

/** Requests addressed to the account itself (path "/"). */
export function routeService(input: RouteInput): Operation {
  const { method, query, account } = input;
  const restype = single(query, 'restype');
  const comp = single(query, 'comp');
  const key = `${restype ?? ''}/${comp ?? ''}`;
  switch (key) {
    case 'service/properties':
      if (method === 'GET') return noBodyThen(input, { kind: 'GetBlobServiceProperties', account });
      if (method === 'PUT') return { kind: 'SetBlobServiceProperties', account, contentLength: bodyLength(input.headers, 'xml') };
      throw verbNotAllowed();
    case 'service/stats':
      if (method === 'GET') return noBodyThen(input, { kind: 'GetServiceStats', account });
      throw verbNotAllowed();
    case 'account/properties':
      if (method === 'GET' || method === 'HEAD') return noBodyThen(input, { kind: 'GetAccountInformation', account });
      throw verbNotAllowed();
    case 'service/userdelegationkey':
      if (method === 'POST') return { kind: 'GetUserDelegationKey', account, contentLength: bodyLength(input.headers, 'xml') };
      throw verbNotAllowed();
    case '/list':
      if (method !== 'GET') throw verbNotAllowed();
      return noBodyThen(input, {
        kind: 'ListContainers', account, ...listText(query, 'prefix'), ...listText(query, 'marker'),
        maxResults: maxResults(query), include: includeSet(query, containerIncludes),
      });
    case '/blobs':
      if (method !== 'GET') throw verbNotAllowed();
      return noBodyThen(input, findBlobsByTags(input, undefined));
    case '/batch': case 'service/batch':
      return unsupported(input, 'BlobBatch');
    default:
      if (comp !== undefined && !['properties', 'stats', 'userdelegationkey', 'list', 'blobs', 'batch'].includes(comp)) {
        throw invalidQuery('comp', comp, 'unknown comp');
      }
      throw invalidQuery(restype === undefined ? 'comp' : 'restype', restype ?? comp ?? '', 'no such service operation');
  }
}

function findBlobsByTags(input: RouteInput, container: ContainerName | undefined): Operation {
  const where = single(input.query, 'where');
  if (where === undefined || where === '') {
    throw new FrontendError('MissingRequiredQueryParameter', 'where is required', [['QueryParameterName', 'where']]);
  }
  return {
    kind: 'FindBlobsByTags', account: input.account, ...(container === undefined ? {} : { container }),
    where: parseTagPredicate(where), ...listText(input.query, 'marker'), maxResults: maxResults(input.query),
  };
}

function noBodyThen<T extends Operation>(input: RouteInput, op: T): T {
  noBody(input.headers);
  return op;
}

function publicAccess(input: RouteInput): PublicAccess | null {
  const raw = input.headers.get('x-ms-blob-public-access');
  if (raw === undefined) return null;
  if (raw === 'container' || raw === 'blob') return raw;
  throw invalidHeader('x-ms-blob-public-access', raw, 'not container or blob');
}

/** Requests addressed to a container (restype=container, or restype=account there). */
export function routeContainer(input: RouteInput, container: ContainerName): Operation {
  const { method, query, account, headers } = input;
  const comp = single(query, 'comp');
  if (single(query, 'restype') === 'account') {
    if (comp === 'properties' && (method === 'GET' || method === 'HEAD')) return noBodyThen(input, { kind: 'GetAccountInformation', account });
    throw invalidQuery('restype', 'account', 'only comp=properties');
  }
  const base = { account, container };
  const lease = optionalLeaseId(headers);
  switch (comp ?? '') {
    case '':
      if (method === 'PUT') return noBodyThen(input, { kind: 'CreateContainer', ...base, metadata: parseMetadata(input.rawHeaders), publicAccess: publicAccess(input) });
      if (method === 'GET' || method === 'HEAD') return noBodyThen(input, { kind: 'GetContainerProperties', ...base, ...lease });
      if (method === 'DELETE') return noBodyThen(input, { kind: 'DeleteContainer', ...base, ...lease, conditions: parseConditions(headers) });
      throw verbNotAllowed();
    case 'metadata':
      if (method === 'GET' || method === 'HEAD') return noBodyThen(input, { kind: 'GetContainerMetadata', ...base, ...lease });
      if (method === 'PUT') return noBodyThen(input, { kind: 'SetContainerMetadata', ...base, ...lease, metadata: parseMetadata(input.rawHeaders), conditions: parseConditions(headers) });
      throw verbNotAllowed();
    case 'acl':
      if (method === 'GET' || method === 'HEAD') return noBodyThen(input, { kind: 'GetContainerACL', ...base, ...lease });
      if (method === 'PUT') return { kind: 'SetContainerACL', ...base, ...lease, publicAccess: publicAccess(input), conditions: parseConditions(headers), contentLength: bodyLength(headers, 'xml') };
      throw verbNotAllowed();
    case 'lease':
      if (method === 'PUT') return noBodyThen(input, { kind: 'LeaseContainer', ...base, lease: parseLeaseAction(headers), conditions: parseConditions(headers) });
      throw verbNotAllowed();
    case 'list':
      if (method !== 'GET') throw verbNotAllowed();
      return noBodyThen(input, {
        kind: 'ListBlobs', ...base, ...listText(query, 'prefix'), ...listText(query, 'delimiter'), ...listText(query, 'marker'),
        maxResults: maxResults(query), include: includeSet(query, blobIncludes),
      });
    case 'blobs':
      if (method !== 'GET') throw verbNotAllowed();
      return noBodyThen(input, findBlobsByTags(input, container));
    case 'undelete': return unsupported(input, 'RestoreContainer');
    case 'rename': return unsupported(input, 'RenameContainer');
    case 'batch': return unsupported(input, 'BlobBatch');
    case 'immutableStorageWithVersioning': return unsupported(input, 'MigrateContainer');
    default: throw invalidQuery('comp', comp ?? '', 'unknown comp for a container');
  }
}

function snapshotOf(query: QueryMap): { snapshot?: ReturnType<typeof parseSnapshotId> } {
  const raw = single(query, 'snapshot');
  return raw === undefined ? {} : { snapshot: parseSnapshotId('snapshot', raw) };
}

function versionOf(query: QueryMap): { versionId?: ReturnType<typeof parseSnapshotId> } {
  const raw = single(query, 'versionid');
  return raw === undefined ? {} : { versionId: parseSnapshotId('versionid', raw) };
}

function tierOf(input: RouteInput): { tier?: ReturnType<typeof parseAccessTier> } {
  const raw = input.headers.get('x-ms-access-tier');
  return raw === undefined ? {} : { tier: parseAccessTier('x-ms-access-tier', raw) };
}

/** Requests addressed to a blob. */
export function routeBlob(input: RouteInput, container: ContainerName, blob: BlobName): Operation {
  const comp = single(input.query, 'comp') ?? '';
  if (single(input.query, 'restype') === 'account' && comp === 'properties' && (input.method === 'GET' || input.method === 'HEAD')) {
    return noBodyThen(input, { kind: 'GetAccountInformation', account: input.account });
  }
  const base = { account: input.account, container, blob, ...optionalLeaseId(input.headers), conditions: parseConditions(input.headers) };
  switch (comp) {
    case '': return routeBlobNoComp(input, base);
    case 'block': return routeBlock(input, base);
    case 'blocklist': return routeBlockList(input, base);
    case 'appendblock':
      if (input.method !== 'PUT') throw verbNotAllowed();
      if (input.headers.has('x-ms-copy-source')) return unsupported(input, 'AppendBlockFromUrl');
      return {
        kind: 'AppendBlock', ...base, contentLength: bodyLength(input.headers, 'append'), ...bodyMd5(input),
        ...defined('maxSize', optionalInteger(input.headers, 'x-ms-blob-condition-maxsize', 0, Number.MAX_SAFE_INTEGER)),
        ...defined('appendPosition', optionalInteger(input.headers, 'x-ms-blob-condition-appendpos', 0, Number.MAX_SAFE_INTEGER)),
      };
    case 'seal':
      if (input.method !== 'PUT') throw verbNotAllowed();
      return noBodyThen(input, { kind: 'SealAppendBlob', ...base, ...defined('appendPosition', optionalInteger(input.headers, 'x-ms-blob-condition-appendpos', 0, Number.MAX_SAFE_INTEGER)) });
    default: return routeBlobComp(input, base, comp);
  }
}

function defined<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

type BlobBase = {
  readonly account: RouteInput['account'];
  readonly container: ContainerName;
  readonly blob: BlobName;
  readonly leaseId?: LeaseId;
  readonly conditions: ReturnType<typeof parseConditions>;
};

function routeBlobNoComp(input: RouteInput, base: BlobBase): Operation {
  const { method, headers, query } = input;
  switch (method) {
    case 'GET': {
      const range = parseRange(headers);
      const rangeGetContentMd5 = optionalBoolean(headers, 'x-ms-range-get-content-md5');
      const rangeGetContentCrc64 = optionalBoolean(headers, 'x-ms-range-get-content-crc64');
      if (rangeGetContentMd5 && rangeGetContentCrc64) throw invalidHeader('x-ms-range-get-content-crc64', 'true', 'not with x-ms-range-get-content-md5');
      for (const [name, asked] of [['x-ms-range-get-content-md5', rangeGetContentMd5], ['x-ms-range-get-content-crc64', rangeGetContentCrc64]] as const) {
        if (asked && (range === undefined || range.end === null || range.end - range.start + 1 > rangeContentHashBytesMax)) {
          throw new FrontendError('OutOfRangeInput', `${name} needs a range of at most 4 MiB`, [['HeaderName', name]]);
        }
      }
      return noBodyThen(input, {
        kind: 'GetBlob', ...base, ...(range === undefined ? {} : { range }), rangeGetContentMd5, ...(rangeGetContentCrc64 ? { rangeGetContentCrc64 } : {}), ...snapshotOf(query), ...versionOf(query),
      });
    }
    case 'HEAD': return noBodyThen(input, { kind: 'GetBlobProperties', ...base, ...snapshotOf(query), ...versionOf(query) });
    case 'DELETE': {
      const raw = headers.get('x-ms-delete-snapshots');
      if (raw !== undefined && raw !== 'include' && raw !== 'only') throw invalidHeader('x-ms-delete-snapshots', raw, 'not include or only');
      return noBodyThen(input, { kind: 'DeleteBlob', ...base, ...snapshotOf(query), ...(raw === undefined ? {} : { deleteSnapshots: raw }) });
    }
    case 'PUT': return routePut(input, base);
    default: throw verbNotAllowed();
  }
}

/** PUT without comp: Put Blob, Create Append Blob, Copy Blob (From URL) — chosen by
 * x-ms-blob-type and x-ms-copy-source, as Azure does. */
function routePut(input: RouteInput, base: BlobBase): Operation {
  const { headers } = input;
  const blobType = headers.get('x-ms-blob-type');
  if (headers.has('x-ms-copy-source')) {
    if (blobType !== undefined) return unsupported(input, 'PutBlobFromUrl');
    const common = {
      ...base, source: parseCopySource(headers), metadata: parseMetadata(input.rawHeaders), ...tierOf(input),
      sourceConditions: parseConditions(headers, 'x-ms-source-'), tags: parseTagsHeader(headers),
    };
    if (optionalBoolean(headers, 'x-ms-requires-sync')) {
      const sourceMd5 = optionalMd5(headers, 'x-ms-source-content-md5').contentMd5;
      return noBodyThen(input, { kind: 'CopyBlobFromURL', ...common, ...(sourceMd5 === undefined ? {} : { sourceContentMd5: sourceMd5 }) });
    }
    const sourceLease = optionalLeaseId(headers, 'x-ms-source-lease-id');
    return noBodyThen(input, { kind: 'CopyBlob', ...common, ...(sourceLease.leaseId === undefined ? {} : { sourceLeaseId: sourceLease.leaseId }) });
  }
  if (blobType === undefined) throw new FrontendError('MissingRequiredHeader', 'x-ms-blob-type required', [['HeaderName', 'x-ms-blob-type']]);
  switch (blobType) {
    case 'BlockBlob':
      return {
        kind: 'PutBlob', ...base, contentLength: bodyLength(headers, 'blob'), ...bodyHashes(headers),
        httpHeaders: parseBlobHttpHeaders(headers, true), metadata: parseMetadata(input.rawHeaders), tags: parseTagsHeader(headers), ...tierOf(input),
      };
    case 'AppendBlob':
      return noBodyThen(input, { kind: 'CreateAppendBlob', ...base, httpHeaders: parseBlobHttpHeaders(headers, false), metadata: parseMetadata(input.rawHeaders), tags: parseTagsHeader(headers) });
    case 'PageBlob': return unsupported(input, 'PutBlob (PageBlob)');
    default: throw invalidHeader('x-ms-blob-type', blobType, 'not BlockBlob, AppendBlob or PageBlob');
  }
}

/** Azure answers Put Block / Append Block without Content-MD5 with the MD5 it computed up to
 * x-ms-version 2018-11-09, and with none from 2019-02-02 on (those answer x-ms-content-crc64). */
const md5AnsweredBefore = '2019-02-02';

function bodyMd5(input: RouteInput): BodyMd5 {
  const sent = bodyHashes(input.headers);
  return { ...sent, computeMd5: sent.contentMd5 === undefined && sent.contentCrc64 === undefined && input.version !== null && input.version < md5AnsweredBefore };
}

function routeBlock(input: RouteInput, base: BlobBase): Operation {
  if (input.method !== 'PUT') throw verbNotAllowed();
  const raw = single(input.query, 'blockid');
  if (raw === undefined) throw new FrontendError('MissingRequiredQueryParameter', 'blockid required', [['QueryParameterName', 'blockid']]);
  const blockId = parseBlockIdQuery(raw);
  if (!input.headers.has('x-ms-copy-source')) {
    return { kind: 'PutBlock', ...base, blockId, contentLength: bodyLength(input.headers, 'block'), ...bodyMd5(input) };
  }
  const sourceRange = input.headers.get('x-ms-source-range');
  return noBodyThen(input, {
    kind: 'PutBlockFromURL', ...base, blockId, source: parseCopySource(input.headers),
    ...(sourceRange === undefined ? {} : { sourceRange: parseRangeValue('x-ms-source-range', sourceRange) }),
    ...(input.headers.has('x-ms-source-content-md5') ? { sourceContentMd5: optionalMd5(input.headers, 'x-ms-source-content-md5').contentMd5 ?? new Uint8Array() } : {}),
    sourceConditions: parseConditions(input.headers, 'x-ms-source-'),
  });
}

function routeBlockList(input: RouteInput, base: BlobBase): Operation {
  if (input.method === 'PUT') {
    return {
      kind: 'PutBlockList', ...base, contentLength: bodyLength(input.headers, 'xml'), httpHeaders: parseBlobHttpHeaders(input.headers, false),
      metadata: parseMetadata(input.rawHeaders), tags: parseTagsHeader(input.headers), ...tierOf(input),
    };
  }
  if (input.method !== 'GET') throw verbNotAllowed();
  const listType = single(input.query, 'blocklisttype') ?? 'committed';
  if (listType !== 'committed' && listType !== 'uncommitted' && listType !== 'all') throw invalidQuery('blocklisttype', listType, 'not committed, uncommitted or all');
  return noBodyThen(input, { kind: 'GetBlockList', ...base, listType, ...snapshotOf(input.query) });
}

const unsupportedBlobComps: Readonly<Record<string, string>> = {
  page: 'PutPage', pagelist: 'GetPageRanges', incrementalcopy: 'IncrementalCopyBlob', undelete: 'UndeleteBlob',
  expiry: 'SetBlobExpiry', immutabilityPolicies: 'SetBlobImmutabilityPolicy', legalhold: 'SetBlobLegalHold', query: 'QueryBlobContents',
};

function routeBlobComp(input: RouteInput, base: BlobBase, comp: string): Operation {
  const { method, headers, query } = input;
  const known = unsupportedBlobComps[comp];
  if (known !== undefined) return unsupported(input, known);
  switch (comp) {
    case 'properties':
      if (method === 'PUT') return noBodyThen(input, { kind: 'SetBlobProperties', ...base, httpHeaders: parseBlobHttpHeaders(headers, false) });
      throw verbNotAllowed();
    case 'metadata':
      if (method === 'GET' || method === 'HEAD') return noBodyThen(input, { kind: 'GetBlobMetadata', ...base, ...snapshotOf(query) });
      if (method === 'PUT') return noBodyThen(input, { kind: 'SetBlobMetadata', ...base, metadata: parseMetadata(input.rawHeaders) });
      throw verbNotAllowed();
    case 'tags':
      if (method === 'GET') return noBodyThen(input, { kind: 'GetBlobTags', ...base, ...snapshotOf(query), ...versionOf(query) });
      if (method === 'PUT') return { kind: 'SetBlobTags', ...base, contentLength: bodyLength(headers, 'xml'), ...versionOf(query) };
      throw verbNotAllowed();
    case 'snapshot':
      if (method === 'PUT') return noBodyThen(input, { kind: 'SnapshotBlob', ...base, metadata: parseMetadata(input.rawHeaders) });
      throw verbNotAllowed();
    case 'lease':
      if (method === 'PUT') return noBodyThen(input, { kind: 'LeaseBlob', ...base, lease: parseLeaseAction(headers) });
      throw verbNotAllowed();
    case 'tier': return routeTier(input, base);
    case 'copy': {
      if (method !== 'PUT') throw verbNotAllowed();
      if (requireHeader(headers, 'x-ms-copy-action') !== 'abort') throw invalidHeader('x-ms-copy-action', headers.get('x-ms-copy-action') ?? '', 'only abort');
      const copyId = single(query, 'copyid');
      if (copyId === undefined) throw new FrontendError('MissingRequiredQueryParameter', 'copyid required', [['QueryParameterName', 'copyid']]);
      if (!/^[0-9a-fA-F-]{1,64}$/.test(copyId)) throw invalidQuery('copyid', copyId.slice(0, 64), 'not a copy id');
      return noBodyThen(input, { kind: 'AbortCopyBlob', ...base, copyId });
    }
    default: throw invalidQuery('comp', comp, 'unknown comp for a blob');
  }
}

function routeTier(input: RouteInput, base: BlobBase): Operation {
  if (input.method !== 'PUT') throw verbNotAllowed();
  const tier = parseAccessTier('x-ms-access-tier', requireHeader(input.headers, 'x-ms-access-tier'));
  const priority = input.headers.get('x-ms-rehydrate-priority');
  if (priority !== undefined && priority !== 'High' && priority !== 'Standard') throw invalidHeader('x-ms-rehydrate-priority', priority, 'not High or Standard');
  return noBodyThen(input, { kind: 'SetBlobTier', ...base, tier, ...snapshotOf(input.query), ...(priority === undefined ? {} : { rehydratePriority: priority }) });
}
