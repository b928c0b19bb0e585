// The committed block list of a block blob (docs/blob-schema.md, "Committed block list"): its
// byte encoding, and where it is stored (inline in the blob row, or in the data stream when
// large). A blob's bytes are its blocks' refs in order.
//
// Invariants: at most blockListEntriesMax blocks; block ids are 0..blockIdBytesMax bytes (0 = the
// unnamed block of Put Blob / Copy Blob); each block's size equals the sum of its refs' lengths;
// decode checks every length against the bytes that remain and its limit.
// Fault model: the encoding is read from a CRC-checked row or data record; a structural error is
// partition.corrupt.

import { appendBytesMax, blockIdBytesMax, blockListDocumentBytesMax, blockListEntriesMax, blockListInlineBytesMax } from '../../constants.ts';
import { StorageError } from '../../util/errors.ts';
import { ByteReader, ByteWriter, dataRefsMax } from '../../wire/partition-row.ts';
import type { DataRef } from '../../wire/partition-row.ts';
import type { BlobTables } from './blob-tables.ts';
import type { StoredBlockList } from './records.ts';

export interface CommittedBlock {
  /** Decoded block id bytes; empty for the unnamed block. */
  readonly id: Buffer;
  readonly size: number;
  readonly refs: readonly DataRef[];
}

export function encodeBlockList(blocks: readonly CommittedBlock[]): Buffer {
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

export function decodeBlockList(bytes: Uint8Array): CommittedBlock[] {
  try {
    const reader = new ByteReader(bytes, 'committed block list');
    const count = reader.length(() => reader.u32(), blockListEntriesMax, 'block count');
    const blocks: CommittedBlock[] = [];
    for (let i = 0; i < count; i++) {
      const id = Buffer.from(reader.take(reader.length(() => reader.u8(), blockIdBytesMax, 'block id length')));
      const size = reader.u64();
      const refCount = reader.length(() => reader.u32(), dataRefsMax, 'ref count');
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

/** Stores an encoded list: inline when small, else appended to the blob's data stream. */
export async function storeBlockList(tables: BlobTables, key: Buffer, blocks: readonly CommittedBlock[]): Promise<StoredBlockList> {
  const bytes = encodeBlockList(blocks);
  if (bytes.length <= blockListInlineBytesMax) return { kind: 'inline', bytes };
  if (bytes.length > blockListDocumentBytesMax) throw new StorageError('partition.too_large', `a block list of ${bytes.length} bytes`);
  const refs: DataRef[] = [];
  for (let offset = 0; offset < bytes.length; offset += appendBytesMax) {
    refs.push(await tables.appendData(key, bytes.subarray(offset, offset + appendBytesMax)));
  }
  return { kind: 'refs', refs };
}

export async function loadBlockList(tables: BlobTables, key: Buffer, stored: StoredBlockList | null): Promise<CommittedBlock[]> {
  if (stored === null) return [];
  if (stored.kind === 'inline') return decodeBlockList(stored.bytes);
  const parts: Buffer[] = [];
  for (const ref of stored.refs) parts.push(await tables.readData(key, ref));
  return decodeBlockList(Buffer.concat(parts));
}
