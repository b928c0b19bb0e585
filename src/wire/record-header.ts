// The 40-byte record header shared by extent block records (docs/formats/extent-file.md) and
// journal records (docs/formats/journal.md). Pure: no I/O.
//
//   0 magic[4] | 4 version u8 | 5 kind u8 | 6 flags u16 | 8 bodyBytes u32 | 12 bodyCrc u32
//  16 extentId u64 | 24 offset u64 | 32 tag u32 | 36 headerCrc u32 (CRC32C of bytes 0..35)
//
// flags and tag are reserved (zero) unless the format gives them a meaning (journal v2: bit 0
// of flags = lastOfBatch, tag = batch number).
//
// Invariants: a decoded header's CRC matched, its magic and version are the caller's, its
// reserved fields are zero and its u64 fields are safe integers. Lengths are NOT checked
// here against a limit: each format does that (per kind) before anything trusts bodyBytes.
//
// Fault model: the 40 bytes may be torn, bit-flipped or written for another file (misdirected);
// decoding then throws StorageError wire.corrupt or wire.unsupported_version, never returns.
import { assert, assertByteCount } from '../util/assert.ts';
import { crc32c, crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';

export const recordHeaderBytes = 40;

export interface RecordHeaderFields {
  readonly kindCode: number;
  readonly bodyBytes: number;
  readonly bodyCrc: number;
  readonly extentId: number;
  readonly offset: number;
  /** u16 at 6; 0 unless the format uses it (RecordFormat.usesFlagsAndTag). */
  readonly flags?: number;
  /** u32 at 32; 0 unless the format uses it. */
  readonly tag?: number;
}

export interface RecordFormat {
  /** Four ASCII bytes. */
  readonly magic: Buffer;
  readonly version: number;
  /** For error messages: "extent block", "journal record". */
  readonly what: string;
  /** True when flags and tag carry fields of this format (decoded as they are); else they must be 0. */
  readonly usesFlagsAndTag?: boolean;
}

export function encodeRecordHeader(format: RecordFormat, fields: RecordHeaderFields): Buffer {
  assert(format.magic.length === 4, 'record magic is four bytes');
  assert(Number.isInteger(fields.kindCode) && fields.kindCode > 0 && fields.kindCode < 256, 'kind is a u8');
  assert(Number.isInteger(fields.bodyBytes) && fields.bodyBytes >= 0 && fields.bodyBytes <= 0xffff_ffff, 'bodyBytes is a u32');
  assert(Number.isInteger(fields.bodyCrc) && fields.bodyCrc >= 0 && fields.bodyCrc <= 0xffff_ffff, 'bodyCrc is a u32');
  assertByteCount(fields.extentId, 'extentId');
  assertByteCount(fields.offset, 'offset');
  const flags = fields.flags ?? 0;
  const tag = fields.tag ?? 0;
  assert(format.usesFlagsAndTag === true || (flags === 0 && tag === 0), `${format.what}: flags and tag are reserved`);
  assert(Number.isInteger(flags) && flags >= 0 && flags <= 0xffff, 'flags is a u16');
  assert(Number.isInteger(tag) && tag >= 0 && tag <= 0xffff_ffff, 'tag is a u32');
  const header = Buffer.alloc(recordHeaderBytes);
  format.magic.copy(header, 0);
  header.writeUInt8(format.version, 4);
  header.writeUInt8(fields.kindCode, 5);
  header.writeUInt16BE(flags, 6);
  header.writeUInt32BE(fields.bodyBytes, 8);
  header.writeUInt32BE(fields.bodyCrc, 12);
  header.writeBigUInt64BE(BigInt(fields.extentId), 16);
  header.writeBigUInt64BE(BigInt(fields.offset), 24);
  header.writeUInt32BE(tag, 32);
  header.writeUInt32BE(crc32c(header.subarray(0, 36)), 36);
  return header;
}

/** Decodes and checks the first 40 bytes of `bytes`; throws wire.corrupt / wire.unsupported_version. */
export function decodeRecordHeader(format: RecordFormat, bytes: Uint8Array): RecordHeaderFields {
  if (bytes.length < recordHeaderBytes) throw corrupt(format, `truncated header (${bytes.length} bytes)`);
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, recordHeaderBytes);
  if (!header.subarray(0, 4).equals(format.magic)) throw corrupt(format, 'bad magic');
  if (!crcMatches(header.subarray(0, 36), header.readUInt32BE(36))) throw corrupt(format, 'header CRC mismatch');
  const version = header.readUInt8(4);
  if (version !== format.version) {
    throw new StorageError('wire.unsupported_version', `${format.what} version ${version} is not supported`, { context: { version } });
  }
  const flags = header.readUInt16BE(6);
  const tag = header.readUInt32BE(32);
  if (format.usesFlagsAndTag !== true && (flags !== 0 || tag !== 0)) throw corrupt(format, 'reserved field not zero');
  return {
    flags,
    tag,
    kindCode: header.readUInt8(5),
    bodyBytes: header.readUInt32BE(8),
    bodyCrc: header.readUInt32BE(12),
    extentId: readSafeU64(header, 16, format.what),
    offset: readSafeU64(header, 24, format.what),
  };
}

/** Rewrites the flags and tag of an encoded header in place, and its header CRC. */
export function restampRecordHeader(header: Buffer, flags: number, tag: number): void {
  header.writeUInt16BE(flags, 6);
  header.writeUInt32BE(tag, 32);
  header.writeUInt32BE(crc32c(header.subarray(0, 36)), 36);
}

/** Reads a big-endian u64 that must be a safe integer (ids, offsets). */
export function readSafeU64(bytes: Buffer, position: number, what: string): number {
  const value = bytes.readBigUInt64BE(position);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new StorageError('wire.corrupt', `${what}: u64 at ${position} is not a safe integer`, { context: { position } });
  }
  return Number(value);
}

function corrupt(format: RecordFormat, reason: string): StorageError {
  return new StorageError('wire.corrupt', `${format.what}: ${reason}`, { context: { reason } });
}
