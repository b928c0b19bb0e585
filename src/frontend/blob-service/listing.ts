// List Blobs, List Containers and Find Blobs by Tags as range scans with continuation
// (docs/blob-schema.md, "Listing").
//
// Invariants: items come in key order = Azure's name order; an item is never returned on two
// pages (NextMarker is the Base64url key suffix where the next page starts, at or after the
// first item not returned); aux rows (snapshots, staging, blocks, segments) are never listed as
// blobs, and delimiter groups that only an aux suffix formed are dropped (or expanded when the
// caller asked for snapshots or uncommitted blobs); a request reads at most listBlobsScanPagesMax
// scan pages / findBlobsScannedRowsMax rows before answering with a marker.
// Fault model: markers are client input: one that does not decode is InvalidQueryParameterValue.

import { listBlobsScanPagesMax, blobScanRowsPerCall } from '../../constants.ts';
import type { LiveRow, ScanItem } from '../../partition/partition.ts';
import { FrontendError, invalidQuery } from '../errors.ts';
import type { BlobItem, BlobName, ContainerItem, ContainerName, ListBlobsPage, ListContainersPage, SnapshotId } from '../model.ts';
import type * as Op from '../operation.ts';
import { quotedEtag } from './conditions.ts';
import { blobProperties, containerProperties, loadContainer, loadedBlob, type BlobServiceContext } from './context.ts';
import { containerKey, containerPrefix, keySuccessor, nameAfter } from './keys.ts';
import { leaseProperties } from './lease.ts';
import { hiddenBy, horizonOfRow, readSnapshotHorizon, type SnapshotHorizon } from './snapshot-horizon.ts';
import { decodeContainer, decodeStaging } from './records.ts';
import { uncommittedBlockExpiryMs } from '../../constants.ts';

function encodeMarker(suffix: Buffer): string {
  return suffix.toString('base64url');
}

function decodeMarker(marker: string): Buffer {
  const bytes = Buffer.from(marker, 'base64url');
  if (bytes.toString('base64url') !== marker) throw invalidQuery('marker', marker, 'not a marker Kura issued');
  return bytes;
}

interface Listing {
  readonly ctx: BlobServiceContext;
  readonly op: Op.ListBlobs;
  readonly base: Buffer;
  readonly nowMs: number;
  readonly blobs: BlobItem[];
  readonly prefixes: string[];
  lastOwn: string | null;
  /** Snapshot horizons read so far, by blob key (latin1). */
  readonly horizons: Map<string, SnapshotHorizon>;
}

type Entry = { readonly items: readonly (BlobItem | string)[]; readonly start: Buffer; readonly after: Buffer };

export async function listBlobs(ctx: BlobServiceContext, op: Op.ListBlobs): Promise<ListBlobsPage> {
  const container = await loadContainer(ctx, op.account, op.container);
  const base = container.blobs;
  const scanPrefix = Buffer.concat([base, Buffer.from(op.prefix ?? '', 'utf8')]);
  const listing: Listing = { ctx, op, base, nowMs: ctx.clock.nowMs(), blobs: [], prefixes: [], lastOwn: null, horizons: new Map() };
  let start: Buffer = op.marker === undefined ? scanPrefix : Buffer.concat([base, decodeMarker(op.marker)]);
  let continuation: string | undefined;
  for (let pages = 0; pages < listBlobsScanPagesMax; pages++) {
    const page = await ctx.tables.scan({
      start, prefix: scanPrefix, limit: Math.min(blobScanRowsPerCall, op.maxResults + 1),
      ...(op.delimiter === undefined ? {} : { delimiter: Buffer.from(op.delimiter, 'utf8') }), ...(continuation === undefined ? {} : { continuation }),
    });
    for (const item of page.items) {
      const entry = await classify(listing, item);
      if (entry.items.length > 0 && listing.blobs.length + listing.prefixes.length >= op.maxResults) return pageOf(listing, entry.start);
      for (const output of entry.items) if (typeof output === 'string') listing.prefixes.push(output); else listing.blobs.push(output);
      start = entry.after;
    }
    if (page.continuation === null) return pageOf(listing, null);
    continuation = page.continuation;
  }
  return pageOf(listing, start);
}

function pageOf(listing: Listing, next: Buffer | null): ListBlobsPage {
  return { blobs: listing.blobs, blobPrefixes: listing.prefixes, nextMarker: next === null ? null : encodeMarker(next.subarray(listing.base.length)) };
}

async function classify(listing: Listing, item: ScanItem): Promise<Entry> {
  if (item.kind === 'prefix') {
    const after = keySuccessor(item.prefix) ?? item.prefix;
    const suffix = item.prefix.subarray(listing.base.length);
    if (!suffix.includes(0)) return { items: [suffix.toString('utf8')], start: item.prefix, after };
    return { items: await expandAuxGroup(listing, item.prefix), start: item.prefix, after };
  }
  const row = item.row;
  const after = Buffer.concat([row.key, Buffer.from([0])]);
  const parts = nameAfter(listing.base, row.key);
  if (parts === null) return { items: [], start: row.key, after };
  if (parts.own) {
    listing.lastOwn = parts.name;
    return { items: [blobItem(listing, row, parts.name)], start: row.key, after };
  }
  return { items: await auxItem(listing, row, parts.name), start: row.key, after };
}

function blobItem(listing: Listing, row: LiveRow, name: string, snapshot?: SnapshotId): BlobItem {
  const blobKey = Buffer.concat([listing.base, Buffer.from(name, 'utf8')]);
  const loaded = loadedBlob(row, blobKey, snapshot);
  const tags = listing.op.include.has('tags') ? { tags: loaded.record.tags } : {};
  return { name: name as BlobName, properties: blobProperties(loaded, listing.nowMs), ...tags };
}

/** An aux row met in the scan: a snapshot or a staging row, when the caller asked for them. */
async function auxItem(listing: Listing, row: LiveRow, name: string): Promise<BlobItem[]> {
  const tagAt = listing.base.length + Buffer.byteLength(name, 'utf8') + 1;
  const tag = String.fromCharCode(row.key[tagAt] ?? 0);
  if (tag === 'h') listing.horizons.set(row.key.subarray(0, tagAt - 1).toString('latin1'), horizonOfRow(row));
  if (tag === 's' && listing.op.include.has('snapshots')) {
    const snapshot = row.key.subarray(tagAt + 1).toString('utf8') as SnapshotId;
    return hiddenBy(await horizonOf(listing, row.key.subarray(0, tagAt - 1), name), snapshot) ? [] : [blobItem(listing, row, name, snapshot)];
  }
  if (tag === 'g' && listing.op.include.has('uncommittedblobs') && listing.lastOwn !== name) return uncommittedItem(listing, row, name);
  return [];
}

/** The blob's snapshot horizon: met by the scan, else none when the scan met the blob's own row
 * (its horizon row lies between that and the snapshots; no delimiter grouped rows away), else read
 * once per blob per request. */
async function horizonOf(listing: Listing, blob: Buffer, name: string): Promise<SnapshotHorizon> {
  const id = blob.toString('latin1');
  let horizon = listing.horizons.get(id);
  if (horizon === undefined && listing.op.delimiter === undefined && listing.lastOwn === name) return horizonOfRow(null);
  if (horizon === undefined) {
    horizon = await readSnapshotHorizon(listing.ctx, blob);
    listing.horizons.set(id, horizon);
  }
  return horizon;
}

function uncommittedItem(listing: Listing, row: LiveRow, name: string): BlobItem[] {
  const staging = decodeStaging(row);
  if (listing.nowMs - staging.sinceMs > uncommittedBlockExpiryMs) return [];
  const time = new Date(row.lastModifiedMs);
  return [{
    name: name as BlobName,
    properties: {
      etag: quotedEtag(row.etag), lastModified: time, createdOn: time, contentLength: 0, blobType: 'BlockBlob', httpHeaders: {},
      lease: leaseProperties(null, listing.nowMs), metadata: new Map(),
    },
  }];
}

/** A delimiter group formed inside one blob's aux rows: its snapshots or staging row, if asked. */
async function expandAuxGroup(listing: Listing, group: Buffer): Promise<BlobItem[]> {
  const suffix = group.subarray(listing.base.length);
  const name = suffix.subarray(0, suffix.indexOf(0)).toString('utf8');
  const items: BlobItem[] = [];
  if (!listing.op.include.has('snapshots') && !listing.op.include.has('uncommittedblobs')) return items;
  let continuation: string | undefined;
  do {
    const page = await listing.ctx.tables.scan({ prefix: group, limit: blobScanRowsPerCall, ...(continuation === undefined ? {} : { continuation }) });
    for (const item of page.items) if (item.kind === 'row') items.push(...await auxItem(listing, item.row, name));
    continuation = page.continuation ?? undefined;
  } while (continuation !== undefined);
  return items;
}

export async function listContainers(ctx: BlobServiceContext, op: Op.ListContainers): Promise<ListContainersPage> {
  const base = containerPrefix(op.account);
  const prefix = Buffer.concat([base, Buffer.from(op.prefix ?? '', 'utf8')]);
  const start = op.marker === undefined ? prefix : containerKey(op.account, op.marker);
  const containers: ContainerItem[] = [];
  const nowMs = ctx.clock.nowMs();
  let continuation: string | undefined;
  for (let pages = 0; pages < listBlobsScanPagesMax; pages++) {
    const page = await ctx.tables.scan({ start, prefix, limit: Math.min(blobScanRowsPerCall, op.maxResults + 1), ...(continuation === undefined ? {} : { continuation }) });
    for (const item of page.items) {
      if (item.kind !== 'row') continue;
      if (item.row.key.indexOf(0, base.length) !== -1) continue; // a deleted container's graveyard row
      const name = item.row.key.subarray(base.length).toString('utf8');
      if (containers.length >= op.maxResults) return { containers, nextMarker: name };
      const record = decodeContainer(item.row);
      const loaded = { record, etag: record.etag ?? item.row.etag, modifiedMs: record.modifiedMs ?? item.row.lastModifiedMs };
      containers.push({ name: name as ContainerName, properties: containerProperties(loaded, nowMs) });
    }
    if (page.continuation === null) return { containers, nextMarker: null };
    continuation = page.continuation;
  }
  throw new FrontendError('ServerBusy', 'too many deleted containers to skip; retry');
}

