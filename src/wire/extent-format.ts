// The extent file format v2 (docs/formats/extent-file.md; v1 files are read as well): the 64-byte extent header, block
// records (one per append) and the seal trailer, plus the self-describing file name. Pure
// encode/decode: no I/O, so the same code serves the store, recovery tools and fuzzing.
//
// Invariants:
// - Nothing is decoded from a header whose CRC does not match; a body length is checked against
//   dataAppendBytesMax (data) or the exact seal body size before anyone reads or allocates for it.
// - Ids, epochs, offsets and times are non-negative safe integers, stored as u64.
// - A data block's body is 1..dataAppendBytesMax bytes (8 MiB; v1 wrote at most 4 MiB, within it); a seal trailer's body is its sealed length.
//
// Fault model: any byte may be torn, flipped or misdirected. Decoders then throw StorageError
// (wire.corrupt, wire.too_large, wire.unsupported_version); they never return damaged values.
import { appendBytesMax, dataAppendBytesMax } from '../constants.ts';
import { assert, assertByteCount } from '../util/assert.ts';
import { crc32c, crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import { decodeRecordHeader, encodeRecordHeader, readSafeU64, recordHeaderBytes } from './record-header.ts';
import type { RecordFormat } from './record-header.ts';
import { bodyCrc32c, type BodyParts } from '../util/body-parts.ts';

/** The version written. v2 = v1 with data blocks up to 8 MiB (was 4 MiB): a v1 reader refuses a v2
 * header (wire.unsupported_version: the file is reported and left untouched) instead of taking an
 * 8 MiB block for a damaged header and cutting it as a torn tail. */
export const extentFormatVersion = 2;
/** Versions read: a v1 file's blocks (at most 4 MiB) are within v2's limit, so both decode alike. */
const extentFormatVersionsRead: readonly number[] = [1, 2];
export const extentHeaderBytes = 64;
export const blockHeaderBytes = recordHeaderBytes;
export const sealBodyBytes = 8;
export const extentFileMagic = Buffer.from('KURAEXTF', 'ascii');
export const extentFileSuffix = '.ext';

/** First four bytes of every block record: what a resync after a damaged header looks for. */
export const blockRecordMagic = Buffer.from('KBLK', 'ascii');
// The record header's own version stays 1 in both file versions (only the body limit moved).
const blockFormat: RecordFormat = { magic: blockRecordMagic, version: 1, what: 'extent block' };
const kindCodes = { data: 1, seal: 2 } as const;

export interface ExtentFileHeader {
  readonly streamId: number;
  readonly extentId: number;
  readonly epoch: number;
  readonly createdAtMs: number;
}

/** A header as read: which format version wrote the file, too. */
export interface DecodedExtentHeader extends ExtentFileHeader {
  readonly formatVersion: number;
}

/**
 * The largest data block a writer may add to a file of `formatVersion`: a v1 file (an open extent
 * created before the upgrade) keeps v1's 4 MiB, so a v1 reader after a rollback still reads every
 * block in it; v2's 8 MiB needs the v2 header that makes a v1 reader refuse the file.
 */
export function extentBlockBytesMax(formatVersion: number): number {
  assert(extentFormatVersionsRead.includes(formatVersion), `extent format version ${formatVersion} is not read`);
  return formatVersion === 1 ? appendBytesMax : dataAppendBytesMax;
}

export type BlockKind = 'data' | 'seal';

/** A verified block record header. For a seal trailer, `offset` is the sealed length. */
export interface BlockHeader {
  readonly kind: BlockKind;
  readonly extentId: number;
  readonly offset: number;
  readonly bodyBytes: number;
  readonly bodyCrc: number;
}

export function encodeExtentHeader(header: ExtentFileHeader): Buffer {
  assertByteCount(header.streamId, 'streamId');
  assertByteCount(header.extentId, 'extentId');
  assertByteCount(header.epoch, 'epoch');
  assertByteCount(header.createdAtMs, 'createdAtMs');
  const bytes = Buffer.alloc(extentHeaderBytes);
  extentFileMagic.copy(bytes, 0);
  bytes.writeUInt16BE(extentFormatVersion, 8);
  bytes.writeUInt16BE(extentHeaderBytes, 10);
  bytes.writeBigUInt64BE(BigInt(header.streamId), 16);
  bytes.writeBigUInt64BE(BigInt(header.extentId), 24);
  bytes.writeBigUInt64BE(BigInt(header.epoch), 32);
  bytes.writeBigUInt64BE(BigInt(header.createdAtMs), 40);
  bytes.writeUInt32BE(crc32c(bytes.subarray(0, 60)), 60);
  return bytes;
}

export function decodeExtentHeader(input: Uint8Array): DecodedExtentHeader {
  if (input.length < extentHeaderBytes) throw corrupt('extent header', `truncated (${input.length} bytes)`);
  const bytes = Buffer.from(input.buffer, input.byteOffset, extentHeaderBytes);
  if (!bytes.subarray(0, 8).equals(extentFileMagic)) throw corrupt('extent header', 'bad magic');
  if (!crcMatches(bytes.subarray(0, 60), bytes.readUInt32BE(60))) throw corrupt('extent header', 'header CRC mismatch');
  const version = bytes.readUInt16BE(8);
  if (!extentFormatVersionsRead.includes(version)) {
    throw new StorageError('wire.unsupported_version', `extent file version ${version} is not supported`, { context: { version } });
  }
  if (bytes.readUInt16BE(10) !== extentHeaderBytes || bytes.readUInt32BE(12) !== 0 || !isZero(bytes.subarray(48, 60))) {
    throw corrupt('extent header', 'reserved field or header size not as in v1/v2');
  }
  return {
    streamId: readSafeU64(bytes, 16, 'extent header'),
    extentId: readSafeU64(bytes, 24, 'extent header'),
    epoch: readSafeU64(bytes, 32, 'extent header'),
    createdAtMs: readSafeU64(bytes, 40, 'extent header'),
    formatVersion: version,
  };
}

/** Header of a data block for `body`; `bodyCrc` may be passed when already computed. */
export function encodeDataBlockHeader(options: { extentId: number; offset: number; body: Uint8Array | BodyParts; bodyCrc?: number }): Buffer {
  const { extentId, offset, body } = options;
  assert(body.length >= 1 && body.length <= dataAppendBytesMax, `data block body must be 1..${dataAppendBytesMax} bytes`);
  const bodyCrc = options.bodyCrc ?? bodyCrc32c(body);
  return encodeRecordHeader(blockFormat, { kindCode: kindCodes.data, bodyBytes: body.length, bodyCrc, extentId, offset });
}

/** A whole data block record: header ++ body. */
export function encodeDataBlock(options: { extentId: number; offset: number; body: Uint8Array; bodyCrc?: number }): Buffer {
  return Buffer.concat([encodeDataBlockHeader(options), options.body]);
}

/** The seal trailer: the last record of a sealed extent file. */
export function encodeSealTrailer(extentId: number, sealedLength: number): Buffer {
  assertByteCount(sealedLength, 'sealedLength');
  const body = Buffer.alloc(sealBodyBytes);
  body.writeBigUInt64BE(BigInt(sealedLength), 0);
  const header = encodeRecordHeader(blockFormat, { kindCode: kindCodes.seal, bodyBytes: sealBodyBytes, bodyCrc: crc32c(body), extentId, offset: sealedLength });
  return Buffer.concat([header, body]);
}

/** Decodes and checks a block record header (CRC, version, kind, body length limit). */
export function decodeBlockHeader(bytes: Uint8Array): BlockHeader {
  const fields = decodeRecordHeader(blockFormat, bytes);
  const kind = fields.kindCode === kindCodes.data ? 'data' : fields.kindCode === kindCodes.seal ? 'seal' : null;
  if (kind === null) throw corrupt('extent block', `unknown kind ${fields.kindCode}`);
  if (kind === 'data' && (fields.bodyBytes < 1 || fields.bodyBytes > dataAppendBytesMax)) {
    throw new StorageError('wire.too_large', `extent block body of ${fields.bodyBytes} bytes is outside 1..${dataAppendBytesMax}`, { context: { bodyBytes: fields.bodyBytes } });
  }
  if (kind === 'seal' && fields.bodyBytes !== sealBodyBytes) throw corrupt('extent block', 'seal trailer body is not 8 bytes');
  return { kind, extentId: fields.extentId, offset: fields.offset, bodyBytes: fields.bodyBytes, bodyCrc: fields.bodyCrc };
}

/** Throws wire.corrupt unless `body` is the body `header` announces. */
export function checkBlockBody(header: BlockHeader, body: Uint8Array): void {
  if (body.length !== header.bodyBytes) throw corrupt('extent block', `body is ${body.length} bytes, header says ${header.bodyBytes}`);
  if (!crcMatches(body, header.bodyCrc)) throw corrupt('extent block', 'body CRC mismatch');
  if (header.kind === 'seal') {
    const sealed = readSafeU64(Buffer.from(body.buffer, body.byteOffset, body.length), 0, 'seal trailer');
    if (sealed !== header.offset) throw corrupt('extent block', 'seal trailer length disagrees with its header');
  }
}

/** Decodes exactly one whole record (header ++ body, nothing more). */
export function decodeBlockRecord(bytes: Uint8Array): { header: BlockHeader; body: Buffer } {
  const header = decodeBlockHeader(bytes);
  if (bytes.length !== blockHeaderBytes + header.bodyBytes) {
    throw corrupt('extent block', `record is ${bytes.length} bytes, header says ${blockHeaderBytes + header.bodyBytes}`);
  }
  const body = Buffer.from(bytes.buffer, bytes.byteOffset + blockHeaderBytes, header.bodyBytes);
  checkBlockBody(header, body);
  return { header, body };
}

export interface ExtentNameIdentity {
  readonly streamId: number;
  readonly extentId: number;
  readonly epoch: number;
}

/** CRC32C of streamId ++ extentId ++ epoch (u64 big-endian each): the checksum in the file name. */
export function identityCrc(identity: ExtentNameIdentity): number {
  const bytes = Buffer.alloc(24);
  bytes.writeBigUInt64BE(BigInt(identity.streamId), 0);
  bytes.writeBigUInt64BE(BigInt(identity.extentId), 8);
  bytes.writeBigUInt64BE(BigInt(identity.epoch), 16);
  return crc32c(bytes);
}

/** `<extentId 16 hex>-<identityCrc 8 hex>.ext` */
export function extentFileName(identity: ExtentNameIdentity): string {
  assertByteCount(identity.extentId, 'extentId');
  const id = identity.extentId.toString(16).padStart(16, '0');
  const check = identityCrc(identity).toString(16).padStart(8, '0');
  return `${id}-${check}${extentFileSuffix}`;
}

const fileNamePattern = /^([0-9a-f]{16})-([0-9a-f]{8})\.ext$/;

/** Parses an extent file name; null if the name is not one. */
export function parseExtentFileName(name: string): { extentId: number; identityCrc: number } | null {
  const match = fileNamePattern.exec(name);
  if (match === null) return null;
  const extentId = Number.parseInt(match[1] ?? '', 16);
  if (!Number.isSafeInteger(extentId)) return null;
  return { extentId, identityCrc: Number.parseInt(match[2] ?? '', 16) };
}

function isZero(bytes: Buffer): boolean {
  return bytes.every((byte) => byte === 0);
}

function corrupt(what: string, reason: string): StorageError {
  return new StorageError('wire.corrupt', `${what}: ${reason}`, { context: { reason } });
}
