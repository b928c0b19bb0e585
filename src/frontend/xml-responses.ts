// Serialisers of the Blob API's response documents (Azure's element names and order): list
// pages, service properties and stats, container ACLs, block lists, tags.
//
// Invariants: every text value passes through escapeXml; element names are constants or
// validated metadata names (C# identifiers), so output is always well-formed; sizes are
// bounded by the bounded inputs (list pages at most listResultsMax entries).
// Fault model: values stored by clients (names, metadata, tags) may contain any characters.

import type {
  BlobItem, BlobProperties, BlobServiceProperties, BlobTag, BlockInfo, BlockList, ContainerAcl,
  ContainerItem, CorsRule, FindBlobsPage, ListBlobsPage, ListContainersPage, Metadata,
  MetricsSettings, RetentionPolicy, ServiceStats,
} from './model.ts';
import type { FindBlobsByTags, ListBlobs, ListContainers } from './operation.ts';
import { escapeXml } from './xml.ts';

const declaration = '<?xml version="1.0" encoding="utf-8"?>';

function el(name: string, content: string | number | boolean | undefined | null): string {
  if (content === undefined || content === null) return '';
  return `<${name}>${typeof content === 'string' ? escapeXml(content) : String(content)}</${name}>`;
}

/** An element whose content is already-serialised XML. */
function raw(name: string, inner: string): string {
  return `<${name}>${inner}</${name}>`;
}

function metadataXml(metadata: Metadata): string {
  let inner = '';
  for (const [name, value] of metadata) inner += el(name, value);
  return raw('Metadata', inner);
}

function tagSetXml(tags: readonly BlobTag[]): string {
  return raw('Tags', raw('TagSet', tags.map((tag) => raw('Tag', el('Key', tag.key) + el('Value', tag.value))).join('')));
}

export function tagsXml(tags: readonly BlobTag[]): string {
  return declaration + tagSetXml(tags);
}

function containerXml(item: ContainerItem, withMetadata: boolean): string {
  const p = item.properties;
  const properties = el('Last-Modified', p.lastModified.toUTCString()) + el('Etag', p.etag) +
    el('LeaseStatus', p.lease.status) + el('LeaseState', p.lease.state) + el('LeaseDuration', p.lease.duration) +
    el('PublicAccess', p.publicAccess) + el('HasImmutabilityPolicy', false) + el('HasLegalHold', false);
  return raw('Container', el('Name', item.name) + raw('Properties', properties) + (withMetadata ? metadataXml(p.metadata) : ''));
}

export function listContainersXml(endpoint: string, op: ListContainers, page: ListContainersPage): string {
  return `${declaration}<EnumerationResults ServiceEndpoint="${escapeXml(endpoint)}">` +
    el('Prefix', op.prefix) + el('Marker', op.marker) + el('MaxResults', op.maxResults) +
    raw('Containers', page.containers.map((c) => containerXml(c, op.include.has('metadata'))).join('')) +
    `<NextMarker>${escapeXml(page.nextMarker ?? '')}</NextMarker></EnumerationResults>`;
}

function blobPropertiesXml(p: BlobProperties): string {
  const h = p.httpHeaders;
  return el('Creation-Time', p.createdOn.toUTCString()) + el('Last-Modified', p.lastModified.toUTCString()) +
    el('Etag', p.etag) + el('Content-Length', p.contentLength) + el('Content-Type', h.contentType ?? '') +
    el('Content-Encoding', h.contentEncoding ?? '') + el('Content-Language', h.contentLanguage ?? '') +
    el('Content-MD5', h.contentMd5 === undefined ? '' : Buffer.from(h.contentMd5).toString('base64')) +
    el('Cache-Control', h.cacheControl ?? '') + el('Content-Disposition', h.contentDisposition ?? '') +
    el('BlobType', p.blobType) + el('AccessTier', p.accessTier) + el('LeaseStatus', p.lease.status) +
    el('LeaseState', p.lease.state) + el('LeaseDuration', p.lease.duration) +
    (p.copy === undefined ? '' : el('CopyId', p.copy.id) + el('CopyStatus', p.copy.status) + el('CopySource', p.copy.source) +
      el('CopyProgress', p.copy.progress) + el('CopyCompletionTime', p.copy.completedOn?.toUTCString())) +
    el('ServerEncrypted', true) + el('TagCount', p.tagCount) + el('Sealed', p.sealed);
}

function blobXml(item: BlobItem, op: ListBlobs): string {
  return raw('Blob', el('Name', item.name) + el('Snapshot', item.properties.snapshot) +
    raw('Properties', blobPropertiesXml(item.properties)) +
    (op.include.has('metadata') ? metadataXml(item.properties.metadata) : '') +
    (op.include.has('tags') && item.tags !== undefined && item.tags.length > 0 ? tagSetXml(item.tags) : ''));
}

export function listBlobsXml(endpoint: string, op: ListBlobs, page: ListBlobsPage): string {
  const blobs = page.blobs.map((b) => blobXml(b, op)).join('') + page.blobPrefixes.map((p) => raw('BlobPrefix', el('Name', p))).join('');
  return `${declaration}<EnumerationResults ServiceEndpoint="${escapeXml(endpoint)}" ContainerName="${escapeXml(op.container)}">` +
    el('Prefix', op.prefix) + el('Marker', op.marker) + el('MaxResults', op.maxResults) + el('Delimiter', op.delimiter) +
    raw('Blobs', blobs) + `<NextMarker>${escapeXml(page.nextMarker ?? '')}</NextMarker></EnumerationResults>`;
}

export function findBlobsXml(endpoint: string, op: FindBlobsByTags, page: FindBlobsPage): string {
  const blobs = page.blobs.map((b) => raw('Blob', el('Name', b.name) + el('ContainerName', b.container) + tagSetXml(b.tags))).join('');
  return `${declaration}<EnumerationResults ServiceEndpoint="${escapeXml(endpoint)}">` + el('Where', op.where) +
    raw('Blobs', blobs) + `<NextMarker>${escapeXml(page.nextMarker ?? '')}</NextMarker></EnumerationResults>`;
}

function blocksXml(name: string, blocks: readonly BlockInfo[]): string {
  return raw(name, blocks.map((b) => raw('Block', el('Name', b.id) + el('Size', b.size))).join(''));
}

export function blockListXml(list: BlockList, listType: 'committed' | 'uncommitted' | 'all'): string {
  const committed = listType === 'uncommitted' ? '' : blocksXml('CommittedBlocks', list.committed);
  const uncommitted = listType === 'committed' ? '' : blocksXml('UncommittedBlocks', list.uncommitted);
  return declaration + raw('BlockList', committed + uncommitted);
}

export function signedIdentifiersXml(acl: ContainerAcl): string {
  const items = acl.identifiers.map((s) => raw('SignedIdentifier', el('Id', s.id) +
    raw('AccessPolicy', el('Start', s.start) + el('Expiry', s.expiry) + el('Permission', s.permission)))).join('');
  return declaration + raw('SignedIdentifiers', items);
}

function retentionXml(policy: RetentionPolicy): string {
  return raw('RetentionPolicy', el('Enabled', policy.enabled) + (policy.enabled ? el('Days', policy.days) : ''));
}

function metricsXml(name: string, m: MetricsSettings): string {
  return raw(name, el('Version', m.version) + el('Enabled', m.enabled) + (m.enabled ? el('IncludeAPIs', m.includeApis ?? false) : '') + retentionXml(m.retentionPolicy));
}

function corsRuleXml(rule: CorsRule): string {
  return raw('CorsRule', el('AllowedOrigins', rule.allowedOrigins.join(',')) + el('AllowedMethods', rule.allowedMethods.join(',')) +
    el('MaxAgeInSeconds', rule.maxAgeInSeconds) + el('ExposedHeaders', rule.exposedHeaders.join(',')) + el('AllowedHeaders', rule.allowedHeaders.join(',')));
}

export function servicePropertiesXml(p: BlobServiceProperties): string {
  const logging = p.logging === undefined ? '' : raw('Logging', el('Version', p.logging.version) + el('Delete', p.logging.delete) +
    el('Read', p.logging.read) + el('Write', p.logging.write) + retentionXml(p.logging.retentionPolicy));
  const website = p.staticWebsite === undefined ? '' : raw('StaticWebsite', el('Enabled', p.staticWebsite.enabled) +
    el('IndexDocument', p.staticWebsite.indexDocument) + el('ErrorDocument404Path', p.staticWebsite.errorDocument404Path) +
    el('DefaultIndexDocumentPath', p.staticWebsite.defaultIndexDocumentPath));
  return declaration + raw('StorageServiceProperties', logging +
    (p.hourMetrics === undefined ? '' : metricsXml('HourMetrics', p.hourMetrics)) +
    (p.minuteMetrics === undefined ? '' : metricsXml('MinuteMetrics', p.minuteMetrics)) +
    (p.cors === undefined ? '' : raw('Cors', p.cors.map(corsRuleXml).join(''))) +
    el('DefaultServiceVersion', p.defaultServiceVersion) +
    (p.deleteRetentionPolicy === undefined ? '' : raw('DeleteRetentionPolicy', el('Enabled', p.deleteRetentionPolicy.enabled) + el('Days', p.deleteRetentionPolicy.days))) +
    website);
}

export function serviceStatsXml(stats: ServiceStats): string {
  return declaration + raw('StorageServiceStats', raw('GeoReplication', el('Status', stats.geoReplication.status) +
    el('LastSyncTime', stats.geoReplication.lastSyncTime?.toUTCString())));
}
