// Reading one extent file at recovery (docs/formats/extent-file.md, "Recovery"), and reading one
// block back verified. Shared by ExtentStore.open, read, verify and readBlocks.
//
// Invariants:
// - The returned block index is contiguous: block k+1 starts at offset(k) + length(k) in the
//   logical data and at filePosition(k) + 40 + length(k) in the file.
// - A block is indexed as sound only if its header checked; a block whose header is damaged
//   but whose extent is bracketed by a sound header after it (resync) is indexed as corrupt.
// - The index never ends in a damaged block of an open extent: damaged tail blocks are left out
//   of the index but not judged here. The caller (ExtentStore.open) replays the journal first,
//   then judges what is left past the index with tailRecordAt: only a record the file ends
//   inside is a torn write (bit flips never change a file's length); a whole record that fails
//   its check is damage (docs/formats/extent-file.md, "Recovery").
//
// Fault model: torn tails after power loss, bit flips anywhere, misdirected blocks (another
// extent's id or a wrong offset in a sound header count as damage). Bad headers or names make
// the file unreadable: it is reported and left untouched, never deleted.
import { dataAppendBytesMax } from '../constants.ts';
import type { DiskFile } from '../io/disk.ts';
import { isStorageError } from '../util/errors.ts';
import {
  blockHeaderBytes, blockRecordMagic, checkBlockBody, decodeBlockHeader, decodeExtentHeader, extentHeaderBytes, sealBodyBytes,
} from '../wire/extent-format.ts';
import type { BlockHeader, DecodedExtentHeader } from '../wire/extent-format.ts';

export interface BlockEntry {
  readonly offset: number;
  readonly length: number;
  readonly filePosition: number;
  /** null when the header was unreadable (a resynced block). */
  bodyCrc: number | null;
  /** Known damaged: reads fail with extent.corrupt until a journal record repairs it. */
  corrupt: boolean;
}

export interface ScannedExtentFile {
  readonly header: DecodedExtentHeader;
  readonly blocks: BlockEntry[];
  readonly sealedLength: number | null;
  /** File position where valid content ends (after the seal trailer if sealed). */
  readonly validEnd: number;
  readonly fileBytes: number;
}

type RecordAt =
  | { readonly kind: 'block'; readonly header: BlockHeader }
  | { readonly kind: 'resynced'; readonly length: number }
  | { readonly kind: 'end' };

/** Scans an extent file; throws wire.* if its header is unreadable. */
export async function scanExtentFile(handle: DiskFile): Promise<ScannedExtentFile> {
  const fileBytes = await handle.size();
  const header = decodeExtentHeader(await handle.read(0, extentHeaderBytes));
  const blocks: BlockEntry[] = [];
  let position = extentHeaderBytes;
  let offset = 0;
  let sealedLength: number | null = null;
  for (;;) {
    const record = await recordAt({ handle, fileBytes, extentId: header.extentId, position, offset });
    if (record.kind === 'end') break;
    if (record.kind === 'resynced') {
      blocks.push({ offset, length: record.length, filePosition: position, bodyCrc: null, corrupt: true });
      position += blockHeaderBytes + record.length;
      offset += record.length;
      continue;
    }
    if (record.header.kind === 'seal') {
      if (await sealTrailerChecks(handle, position, record.header)) sealedLength = offset;
      break;
    }
    blocks.push({ offset, length: record.header.bodyBytes, filePosition: position, bodyCrc: record.header.bodyCrc, corrupt: false });
    position += blockHeaderBytes + record.header.bodyBytes;
    offset += record.header.bodyBytes;
  }
  if (sealedLength === null) await dropDamagedTail(handle, header.extentId, blocks);
  const last = blocks.at(-1);
  const dataEnd = last === undefined ? extentHeaderBytes : last.filePosition + blockHeaderBytes + last.length;
  const validEnd = sealedLength === null ? dataEnd : dataEnd + blockHeaderBytes + sealBodyBytes;
  return { header, blocks, sealedLength, validEnd, fileBytes };
}

interface RecordQuery {
  readonly handle: DiskFile;
  readonly fileBytes: number;
  readonly extentId: number;
  readonly position: number;
  readonly offset: number;
}

async function recordAt(query: RecordQuery): Promise<RecordAt> {
  const { handle, fileBytes, position } = query;
  if (fileBytes - position < blockHeaderBytes) return { kind: 'end' };
  const header = await headerAt(handle, position);
  if (header !== null && fitsAt(header, query)) {
    return position + blockHeaderBytes + header.bodyBytes <= fileBytes ? { kind: 'block', header } : { kind: 'end' };
  }
  const length = await resync(query);
  return length === null ? { kind: 'end' } : { kind: 'resynced', length };
}

/** A sound header belongs here: this extent, this offset (a seal trailer's offset is the length). */
function fitsAt(header: BlockHeader, query: RecordQuery): boolean {
  return header.extentId === query.extentId && header.offset === query.offset;
}

async function headerAt(handle: DiskFile, position: number): Promise<BlockHeader | null> {
  try {
    return decodeBlockHeader(await handle.read(position, blockHeaderBytes));
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) return null;
    throw error;
  }
}

/**
 * After a damaged header at `position`: looks for the next sound header of this extent whose
 * offset says exactly one data block of 1..dataAppendBytesMax bytes lies in between. Returns that
 * block's length, or null (a torn tail).
 */
async function resync(query: RecordQuery): Promise<number | null> {
  const { handle, fileBytes, position, offset } = query;
  const windowBytes = Math.min(fileBytes - position, 2 * blockHeaderBytes + dataAppendBytesMax);
  const window = await handle.read(position, windowBytes);
  for (let at = window.indexOf(blockRecordMagic, 1); at !== -1; at = window.indexOf(blockRecordMagic, at + 1)) {
    const length = at - blockHeaderBytes;
    if (length < 1 || at + blockHeaderBytes > window.length) continue;
    const header = await headerAt(handle, position + at);
    if (header !== null && header.extentId === query.extentId && header.offset === offset + length) return length;
  }
  return null;
}

async function sealTrailerChecks(handle: DiskFile, position: number, header: BlockHeader): Promise<boolean> {
  const body = await handle.read(position + blockHeaderBytes, sealBodyBytes);
  try {
    checkBlockBody(header, body);
    return true;
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) return false;
    throw error;
  }
}

/** Leaves damaged blocks at the end out of the index (the caller judges them after the replay). */
async function dropDamagedTail(handle: DiskFile, extentId: number, blocks: BlockEntry[]): Promise<void> {
  for (let last = blocks.at(-1); last !== undefined; last = blocks.at(-1)) {
    if (!last.corrupt && (await readBlockBody(handle, extentId, last)) !== null) return;
    blocks.pop();
  }
}

/** What lies past the index of an open extent's file, after the journal replay. */
export type TailRecord =
  /** The file ends inside it: a write cut short by a crash (never acknowledged). */
  | { readonly kind: 'torn' }
  /** A whole, sound data block of this extent at this offset: kept. */
  | { readonly kind: 'block'; readonly block: BlockEntry }
  /** A seal trailer at this offset whose body failed: no data lies past it. */
  | { readonly kind: 'seal' }
  /** A whole record that fails its check: rot of synced bytes, maybe acknowledged. */
  | { readonly kind: 'damaged' };

/** Judges the record at `position` (logical `offset`) of a file that is `fileBytes` long. */
export async function tailRecordAt(handle: DiskFile, at: { readonly extentId: number; readonly position: number; readonly offset: number; readonly fileBytes: number }): Promise<TailRecord> {
  const { extentId, position, offset, fileBytes } = at;
  if (fileBytes - position < blockHeaderBytes) return { kind: 'torn' };
  const header = await headerAt(handle, position);
  if (header === null || header.extentId !== extentId || header.offset !== offset) return { kind: 'damaged' };
  if (header.kind === 'seal') return { kind: 'seal' };
  if (position + blockHeaderBytes + header.bodyBytes > fileBytes) return { kind: 'torn' };
  const block: BlockEntry = { offset, length: header.bodyBytes, filePosition: position, bodyCrc: header.bodyCrc, corrupt: false };
  return (await readBlockBody(handle, extentId, block)) === null ? { kind: 'damaged' } : { kind: 'block', block };
}

/**
 * Reads one block and checks it against its index entry and its CRCs; returns the body, or
 * null if anything disagrees. I/O errors are thrown.
 */
export async function readBlockBody(handle: DiskFile, extentId: number, block: BlockEntry): Promise<Buffer | null> {
  if (block.corrupt) return null;
  const bytes = await handle.read(block.filePosition, blockHeaderBytes + block.length);
  if (bytes.length !== blockHeaderBytes + block.length) return null;
  try {
    const header = decodeBlockHeader(bytes);
    const body = bytes.subarray(blockHeaderBytes);
    const matches = header.kind === 'data' && header.offset === block.offset && header.bodyBytes === block.length
      && (block.bodyCrc === null || header.bodyCrc === block.bodyCrc) && header.extentId === extentId;
    if (!matches) return null;
    checkBlockBody(header, body);
    return body;
  } catch (error) {
    if (isStorageError(error) && error.code.startsWith('wire.')) return null;
    throw error;
  }
}
