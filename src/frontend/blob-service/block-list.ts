// The committed block list of a block blob (docs/blob-schema.md, "Committed block list", v2): the
// list is an *index* (ids, sizes, ref counts; no refs) plus the blocks' refs in list order, kept
// only in dataRefs columns so that partition data GC sees every one of them:
//
//   inline:  blob row  blockIndex (bytes) + blockRefs (dataRefs)
//   paged:   blob row  blockIndexDoc (dataRefs: the index in the data stream), blockListId, pages
//            page rows K\0l<listId>\0<i>  data (dataRefs, ≤ blockListPageRefs each), written in
//            the blob row's commit transaction
//   v1:      blocks (bytes, refs inside) / blockListRefs (that encoding in the data stream): read
//            only; opaque to GC (blob-table-schema.ts)
//   body:    blob row  body (bytes): a small Put Blob's content inline (docs/blob-schema.md,
//            "Inline bodies"): one unnamed block whose bytes are in the row, no refs; a checkpoint
//            rewrites it to the inline form above (blob-table-schema.ts, blobInlineData)
//
// Invariants: at most blockListEntriesMax blocks; block ids are 0..blockIdBytesMax bytes (0 = the
// unnamed block of Put Blob / Copy Blob); block i's refs are the refCount(i) refs after those of
// blocks 0..i−1 and their lengths sum to its size (checked on decode), so a GC copy-forward that
// replaces a ref in place by one of the same length never changes the list; decode checks every
// length against the bytes that remain and its limit.
// Fault model: the index and refs are read from CRC-checked rows and data records; a structural
// error or a missing page row is partition.corrupt.

import { randomBytes } from 'node:crypto';
import {
  appendBytesMax, blockIdBytesMax, blockListDocumentBytesMax, blockListEntriesMax, blockListIndexBytesMax, blockListInlineBytesMax,
  blockListPageRefs, blockListPagesMax,
} from '../../constants.ts';
import type { LiveRow, PartitionOp } from '../../partition/partition.ts';
import { StorageError } from '../../util/errors.ts';
import { ByteReader, ByteWriter, dataRefsMax } from '../../wire/partition-row.ts';
import type { DataRef } from '../../wire/partition-row.ts';
import type { BlobTables } from './blob-tables.ts';
import { listPageKey, listPagePrefix } from './keys.ts';

export interface CommittedBlock {
  /** Decoded block id bytes; empty for the unnamed block. */
  readonly id: Buffer;
  readonly size: number;
  readonly refs: readonly DataRef[];
}

export type StoredBlockList =
  | { readonly kind: 'inline'; readonly index: Buffer; readonly refs: readonly DataRef[] }
  | { readonly kind: 'paged'; readonly indexDoc: readonly DataRef[]; readonly listId: string; readonly pages: number }
  | { readonly kind: 'v1-inline'; readonly bytes: Buffer }
  | { readonly kind: 'v1-document'; readonly refs: readonly DataRef[] }
  | { readonly kind: 'body'; readonly bytes: Buffer };

/** Bytes of one ref in a dataRefs column (extentId, offset, length as u64). */
const refBytes = 24;

export function encodeBlockIndex(blocks: readonly CommittedBlock[]): Buffer {
  const writer = new ByteWriter();
  writer.u32(blocks.length);
  for (const block of blocks) {
    writer.u8(block.id.length);
    writer.bytes(block.id);
    writer.u64(block.size);
    writer.u32(block.refs.length);
  }
  return writer.finish();
}

/** The blocks of an index, each taking its refs from `refs` in order (all must be used). */
export function decodeBlockIndex(bytes: Uint8Array, refs: readonly DataRef[]): CommittedBlock[] {
  try {
    const reader = new ByteReader(bytes, 'block list index');
    const count = reader.length(reader.u32(), blockListEntriesMax, 'block count');
    const blocks: CommittedBlock[] = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      const id = Buffer.from(reader.take(reader.length(reader.u8(), blockIdBytesMax, 'block id length')));
      const size = reader.u64();
      const refCount = reader.length(reader.u32(), refs.length - at, 'ref count');
      const own = refs.slice(at, at + refCount);
      at += refCount;
      if (own.reduce((sum, ref) => sum + ref.length, 0) !== size) throw new Error(`block ${i}: refs do not add up to its size ${size}`);
      blocks.push({ id, size, refs: own });
    }
    reader.end();
    if (at !== refs.length) throw new Error(`${refs.length - at} refs belong to no block`);
    return blocks;
  } catch (error) {
    throw new StorageError('partition.corrupt', 'a committed block list does not decode', { cause: error });
  }
}

/** The v1 encoding (refs inside): still read, never written (docs/blob-schema.md, "v1 rows"). */
export function decodeBlockListV1(bytes: Uint8Array): CommittedBlock[] {
  try {
    const reader = new ByteReader(bytes, 'committed block list');
    const count = reader.length(reader.u32(), blockListEntriesMax, 'block count');
    const blocks: CommittedBlock[] = [];
    for (let i = 0; i < count; i++) {
      const id = Buffer.from(reader.take(reader.length(reader.u8(), blockIdBytesMax, 'block id length')));
      const size = reader.u64();
      const refCount = reader.length(reader.u32(), dataRefsMax, 'ref count');
      const refs: DataRef[] = [];
      for (let r = 0; r < refCount; r++) refs.push({ extentId: reader.u64(), offset: reader.u64(), length: reader.u64() });
      blocks.push({ id, size, refs });
    }
    reader.end();
    return blocks;
  } catch (error) {
    throw new StorageError('partition.corrupt', 'a committed block list does not decode', { cause: error });
  }
}

/** Writes the v1 encoding (fixtures and compatibility tests only). */
export function encodeBlockListV1(blocks: readonly CommittedBlock[]): Buffer {
  const writer = new ByteWriter();
  writer.u32(blocks.length);
  for (const block of blocks) {
    writer.u8(block.id.length);
    writer.bytes(block.id);
    writer.u64(block.size);
    writer.u32(block.refs.length);
    for (const ref of block.refs) {
      writer.u64(ref.extentId);
      writer.u64(ref.offset);
      writer.u64(ref.length);
    }
  }
  return writer.finish();
}

/** A list ready to commit: its columns' content and the page rows to write in the same transaction. */
export interface PreparedBlockList {
  readonly stored: StoredBlockList | null;
  readonly pages: readonly PartitionOp[];
}

/**
 * Prepares a list: inline when index and refs fit blockListInlineBytesMax; else the index goes to
 * the data stream now (durable before any row names it) and the refs to page rows under a new
 * random listId, which the caller writes in the blob row's transaction.
 */
export async function storeBlockList(tables: BlobTables, key: Buffer, blocks: readonly CommittedBlock[]): Promise<PreparedBlockList> {
  if (blocks.length === 0) return { stored: null, pages: [] };
  const index = encodeBlockIndex(blocks);
  const refs = blocks.flatMap((block) => block.refs);
  if (index.length + refs.length * refBytes <= blockListInlineBytesMax && refs.length <= dataRefsMax) return { stored: { kind: 'inline', index, refs }, pages: [] };
  const pageCount = Math.ceil(refs.length / blockListPageRefs);
  if (index.length > blockListIndexBytesMax || pageCount > blockListPagesMax) {
    throw new StorageError('partition.too_large', `a block list of ${blocks.length} blocks and ${refs.length} refs (max ${blockListPagesMax * blockListPageRefs} refs)`);
  }
  const indexDoc: DataRef[] = [];
  for (let offset = 0; offset < index.length; offset += appendBytesMax) indexDoc.push(await tables.appendData(key, index.subarray(offset, offset + appendBytesMax)));
  const listId = randomBytes(8).toString('hex');
  const pages: PartitionOp[] = [];
  for (let page = 0; page < pageCount; page++) {
    const value = refs.slice(page * blockListPageRefs, (page + 1) * blockListPageRefs);
    pages.push({ kind: 'put', key: listPageKey(key, listId, page), columns: [{ name: 'data', value: { kind: 'dataRefs', value } }], ifNoneMatch: '*' });
  }
  return { stored: { kind: 'paged', indexDoc, listId, pages: pageCount }, pages };
}

export async function loadBlockList(tables: BlobTables, key: Buffer, stored: StoredBlockList | null): Promise<CommittedBlock[]> {
  if (stored === null) return [];
  switch (stored.kind) {
    case 'inline':
      return decodeBlockIndex(stored.index, stored.refs);
    case 'paged':
      return decodeBlockIndex(await readDocument(tables, key, stored.indexDoc, blockListIndexBytesMax), await readPages(tables, key, stored.listId, stored.pages));
    case 'v1-inline':
      return decodeBlockListV1(stored.bytes);
    case 'v1-document':
      return decodeBlockListV1(await readDocument(tables, key, stored.refs, blockListDocumentBytesMax));
    case 'body':
      // The single unnamed block of an inline body: no committed block to list or reuse (as any
      // Put Blob's); its bytes are read through content.ts, never through refs.
      return [];
  }
}

async function readDocument(tables: BlobTables, key: Buffer, refs: readonly DataRef[], bytesMax: number): Promise<Buffer> {
  const length = refs.reduce((sum, ref) => sum + ref.length, 0);
  if (length > bytesMax) throw new StorageError('partition.corrupt', `a block list document of ${length} bytes (max ${bytesMax})`);
  const parts: Buffer[] = [];
  for (const ref of refs) parts.push(await tables.readData(key, ref));
  return Buffer.concat(parts);
}

/** The refs of a paged list: every page row, in order (pages ≤ blockListPagesMax: one scan call). */
async function readPages(tables: BlobTables, key: Buffer, listId: string, pages: number): Promise<DataRef[]> {
  if (pages > blockListPagesMax) throw new StorageError('partition.corrupt', `a block list of ${pages} pages`);
  const rows: LiveRow[] = [];
  let continuation: string | null = null;
  do {
    const page = await tables.scan({ prefix: listPagePrefix(key, listId), limit: blockListPagesMax + 1, ...(continuation === null ? {} : { continuation }) });
    for (const item of page.items) if (item.kind === 'row') rows.push(item.row);
    continuation = page.continuation;
  } while (continuation !== null && rows.length <= pages);
  if (rows.length !== pages) throw new StorageError('partition.corrupt', `block list ${listId} has ${rows.length} of its ${pages} page rows`);
  const refs: DataRef[] = [];
  for (const [index, row] of rows.entries()) {
    const data = row.columns.find((column) => column.name === 'data')?.value;
    if (!row.key.equals(listPageKey(key, listId, index)) || data?.kind !== 'dataRefs') throw new StorageError('partition.corrupt', `block list ${listId} page ${index} is malformed`);
    refs.push(...data.value);
  }
  return refs;
}
