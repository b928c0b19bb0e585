// The journal record format v2 (docs/formats/journal.md): self-describing records that group
// commit fsyncs before acknowledging appends, scannable after a crash. Pure: no I/O. Version 2
// adds, in the header's reserved fields, the record's batch number in its file (u32 at 32, >= 1)
// and lastOfBatch (bit 0 of the u16 at 6), which recovery's torn-window rule needs; version 1
// records (both zero) still decode, with batch null.
//
// Invariants:
// - A v2 record's batch is >= 1 and no flag but lastOfBatch is set.
// - A record's body length is trusted only after its header CRC matched, and only if it is
//   within the limit of its kind (append: 1..appendBytesMax; remove tombstone: 0).
// - An append record carries the same extentId, offset and bodyCrc as the extent block it
//   mirrors, so replay compares headers to tell "applied" from "conflict".
//
// Fault model: a journal file may end in a torn record or hold flipped bits anywhere; decoders
// throw StorageError (wire.corrupt, wire.too_large, wire.unsupported_version) and the scanner
// stops at the first record that does not decode.
import { appendBytesMax } from '../constants.ts';
import { assert, assertByteCount } from '../util/assert.ts';
import { type BodyParts, bodyCrc32c } from '../util/body-parts.ts';
import { crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import { decodeRecordHeader, encodeRecordHeader, recordHeaderBytes, restampRecordHeader } from './record-header.ts';
import type { RecordFormat } from './record-header.ts';

export const journalFormatVersion = 2;
export const journalRecordHeaderBytes = recordHeaderBytes;
export const journalFileSuffix = '.jnl';

/** First four bytes of every journal record: what recovery searches for after a bad record. */
export const journalRecordMagic = Buffer.from('KJNL', 'ascii');
const journalFormat: RecordFormat = { magic: journalRecordMagic, version: journalFormatVersion, what: 'journal record', usesFlagsAndTag: true };
const journalFormatV1: RecordFormat = { magic: journalRecordMagic, version: 1, what: 'journal record' };
const lastOfBatchFlag = 1;

/** Where a v2 record sits in its file's batches (the journal stamps it when it takes the batch). */
export interface JournalBatchPosition {
  /** The batch number in its file, from 1. */
  readonly batch: number;
  readonly lastOfBatch: boolean;
}

/** A record encoded outside a journal is the whole of batch 1 until the journal stamps it. */
const loneBatch: JournalBatchPosition = { batch: 1, lastOfBatch: true };
const kindCodes = { append: 1, remove: 2 } as const;

export type JournalRecordKind = 'append' | 'remove';

export interface JournalHeader {
  readonly kind: JournalRecordKind;
  readonly extentId: number;
  /** append: logical offset of the body in the extent; remove: 0. */
  readonly offset: number;
  readonly bodyBytes: number;
  readonly bodyCrc: number;
  /** Version 2: its batch; null for a version 1 record (one batch at a time, no number). */
  readonly batch: JournalBatchPosition | null;
}

export type JournalRecord =
  | { readonly kind: 'append'; readonly extentId: number; readonly offset: number; readonly body: Buffer; readonly bodyCrc: number }
  | { readonly kind: 'remove'; readonly extentId: number };

/** How a record is encoded: version 2 (default, batch 1 whole until stamped) or 1 (fixtures, tests of old files). */
export interface JournalEncoding {
  readonly version?: 1 | 2;
  readonly batch?: JournalBatchPosition;
}

/** Header of an append record for `body`; `bodyCrc` may be passed when already computed. */
export function encodeJournalAppendHeader(options: { extentId: number; offset: number; body: Uint8Array | BodyParts; bodyCrc?: number } & JournalEncoding): Buffer {
  const { extentId, offset, body } = options;
  assert(body.length >= 1 && body.length <= appendBytesMax, `journal append body must be 1..${appendBytesMax} bytes`);
  const bodyCrc = options.bodyCrc ?? bodyCrc32c(body);
  return encodeRecordHeader(formatOf(options), { kindCode: kindCodes.append, bodyBytes: body.length, bodyCrc, extentId, offset, ...batchFields(options) });
}

export function encodeJournalAppend(options: { extentId: number; offset: number; body: Uint8Array; bodyCrc?: number } & JournalEncoding): Buffer {
  return Buffer.concat([encodeJournalAppendHeader(options), options.body]);
}

/** A tombstone: voids every earlier record of `extentId`. */
export function encodeJournalRemove(extentId: number, encoding: JournalEncoding = {}): Buffer {
  return encodeRecordHeader(formatOf(encoding), { kindCode: kindCodes.remove, bodyBytes: 0, bodyCrc: 0, extentId, offset: 0, ...batchFields(encoding) });
}

/** Stamps a v2 header (encoded before its batch was known) with its batch; recomputes its CRC. */
export function stampJournalBatch(header: Uint8Array, position: JournalBatchPosition): void {
  assert(header.length === journalRecordHeaderBytes && header[4] === journalFormatVersion, 'only a version 2 journal header carries its batch');
  assertBatchNumber(position.batch);
  restampRecordHeader(Buffer.from(header.buffer, header.byteOffset, header.length), position.lastOfBatch ? lastOfBatchFlag : 0, position.batch);
}

function formatOf(encoding: JournalEncoding): RecordFormat {
  return encoding.version === 1 ? journalFormatV1 : journalFormat;
}

function batchFields(encoding: JournalEncoding): { flags: number; tag: number } {
  if (encoding.version === 1) return { flags: 0, tag: 0 };
  const position = encoding.batch ?? loneBatch;
  assertBatchNumber(position.batch);
  return { flags: position.lastOfBatch ? lastOfBatchFlag : 0, tag: position.batch };
}

function assertBatchNumber(batch: number): void {
  assert(Number.isInteger(batch) && batch >= 1 && batch <= 0xffff_ffff, 'a journal batch number is a u32 >= 1');
}

/** Decodes and checks a journal record header (CRC, version, kind, length limit). */
export function decodeJournalHeader(bytes: Uint8Array): JournalHeader {
  const v1 = bytes.length > 4 && bytes[4] === 1;
  const fields = decodeRecordHeader(v1 ? journalFormatV1 : journalFormat, bytes);
  const batch = v1 ? null : decodeBatchPosition(fields.flags ?? 0, fields.tag ?? 0);
  const kind = fields.kindCode === kindCodes.append ? 'append' : fields.kindCode === kindCodes.remove ? 'remove' : null;
  if (kind === null) throw corrupt(`unknown kind ${fields.kindCode}`);
  if (kind === 'append' && (fields.bodyBytes < 1 || fields.bodyBytes > appendBytesMax)) {
    throw new StorageError('wire.too_large', `journal append body of ${fields.bodyBytes} bytes is outside 1..${appendBytesMax}`, { context: { bodyBytes: fields.bodyBytes } });
  }
  if (kind === 'remove' && (fields.bodyBytes !== 0 || fields.bodyCrc !== 0 || fields.offset !== 0)) {
    throw corrupt('tombstone with a body or offset');
  }
  return { kind, extentId: fields.extentId, offset: fields.offset, bodyBytes: fields.bodyBytes, bodyCrc: fields.bodyCrc, batch };
}

function decodeBatchPosition(flags: number, tag: number): JournalBatchPosition {
  if ((flags & ~lastOfBatchFlag) !== 0) throw corrupt(`unknown flags ${flags}`);
  if (tag === 0) throw corrupt('version 2 record without a batch number');
  return { batch: tag, lastOfBatch: (flags & lastOfBatchFlag) !== 0 };
}

/** Throws wire.corrupt unless `body` is the body `header` announces. */
export function checkJournalBody(header: JournalHeader, body: Uint8Array): void {
  if (body.length !== header.bodyBytes) throw corrupt(`body is ${body.length} bytes, header says ${header.bodyBytes}`);
  if (!crcMatches(body, header.bodyCrc)) throw corrupt('body CRC mismatch');
}

/** Decodes exactly one whole record (header ++ body, nothing more). */
export function decodeJournalRecord(bytes: Uint8Array): JournalRecord {
  const header = decodeJournalHeader(bytes);
  if (bytes.length !== journalRecordHeaderBytes + header.bodyBytes) {
    throw corrupt(`record is ${bytes.length} bytes, header says ${journalRecordHeaderBytes + header.bodyBytes}`);
  }
  const body = Buffer.from(bytes.buffer, bytes.byteOffset + journalRecordHeaderBytes, header.bodyBytes);
  checkJournalBody(header, body);
  return journalRecordOf(header, body);
}

export function journalRecordOf(header: JournalHeader, body: Buffer): JournalRecord {
  if (header.kind === 'remove') return { kind: 'remove', extentId: header.extentId };
  return { kind: 'append', extentId: header.extentId, offset: header.offset, body, bodyCrc: header.bodyCrc };
}

/**
 * Decodes the valid prefix of a journal file image: records up to (not including) the first
 * one that does not decode. `validBytes` is where that prefix ends.
 */
export function scanJournalBytes(bytes: Uint8Array): { records: JournalRecord[]; validBytes: number } {
  const records: JournalRecord[] = [];
  let position = 0;
  while (bytes.length - position >= journalRecordHeaderBytes) {
    let header: JournalHeader;
    try {
      header = decodeJournalHeader(bytes.subarray(position));
    } catch {
      break;
    }
    const end = position + journalRecordHeaderBytes + header.bodyBytes;
    if (end > bytes.length) break;
    const body = Buffer.from(bytes.buffer, bytes.byteOffset + position + journalRecordHeaderBytes, header.bodyBytes);
    if (!crcMatches(body, header.bodyCrc)) break;
    records.push(journalRecordOf(header, body));
    position = end;
  }
  return { records, validBytes: position };
}

/** `<sequence 16 hex>.jnl` */
export function journalFileName(sequence: number): string {
  assertByteCount(sequence, 'journal sequence');
  return `${sequence.toString(16).padStart(16, '0')}${journalFileSuffix}`;
}

const fileNamePattern = /^([0-9a-f]{16})\.jnl$/;

/** Parses a journal file name into its sequence; null if the name is not one. */
export function parseJournalFileName(name: string): number | null {
  const match = fileNamePattern.exec(name);
  if (match === null) return null;
  const sequence = Number.parseInt(match[1] ?? '', 16);
  return Number.isSafeInteger(sequence) ? sequence : null;
}

function corrupt(reason: string): StorageError {
  return new StorageError('wire.corrupt', `journal record: ${reason}`, { context: { reason } });
}
