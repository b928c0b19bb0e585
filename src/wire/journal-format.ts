// The journal record format v1 (docs/formats/journal.md): self-describing records that group
// commit fsyncs before acknowledging appends, scannable after a crash. Pure: no I/O.
//
// Invariants:
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
import { decodeRecordHeader, encodeRecordHeader, recordHeaderBytes } from './record-header.ts';
import type { RecordFormat } from './record-header.ts';

export const journalFormatVersion = 1;
export const journalRecordHeaderBytes = recordHeaderBytes;
export const journalFileSuffix = '.jnl';

/** First four bytes of every journal record: what recovery searches for after a bad record. */
export const journalRecordMagic = Buffer.from('KJNL', 'ascii');
const journalFormat: RecordFormat = { magic: journalRecordMagic, version: journalFormatVersion, what: 'journal record' };
const kindCodes = { append: 1, remove: 2 } as const;

export type JournalRecordKind = 'append' | 'remove';

export interface JournalHeader {
  readonly kind: JournalRecordKind;
  readonly extentId: number;
  /** append: logical offset of the body in the extent; remove: 0. */
  readonly offset: number;
  readonly bodyBytes: number;
  readonly bodyCrc: number;
}

export type JournalRecord =
  | { readonly kind: 'append'; readonly extentId: number; readonly offset: number; readonly body: Buffer; readonly bodyCrc: number }
  | { readonly kind: 'remove'; readonly extentId: number };

/** Header of an append record for `body`; `bodyCrc` may be passed when already computed. */
export function encodeJournalAppendHeader(options: { extentId: number; offset: number; body: Uint8Array | BodyParts; bodyCrc?: number }): Buffer {
  const { extentId, offset, body } = options;
  assert(body.length >= 1 && body.length <= appendBytesMax, `journal append body must be 1..${appendBytesMax} bytes`);
  const bodyCrc = options.bodyCrc ?? bodyCrc32c(body);
  return encodeRecordHeader(journalFormat, { kindCode: kindCodes.append, bodyBytes: body.length, bodyCrc, extentId, offset });
}

export function encodeJournalAppend(options: { extentId: number; offset: number; body: Uint8Array; bodyCrc?: number }): Buffer {
  return Buffer.concat([encodeJournalAppendHeader(options), options.body]);
}

/** A tombstone: voids every earlier record of `extentId`. */
export function encodeJournalRemove(extentId: number): Buffer {
  return encodeRecordHeader(journalFormat, { kindCode: kindCodes.remove, bodyBytes: 0, bodyCrc: 0, extentId, offset: 0 });
}

/** Decodes and checks a journal record header (CRC, version, kind, length limit). */
export function decodeJournalHeader(bytes: Uint8Array): JournalHeader {
  const fields = decodeRecordHeader(journalFormat, bytes);
  const kind = fields.kindCode === kindCodes.append ? 'append' : fields.kindCode === kindCodes.remove ? 'remove' : null;
  if (kind === null) throw corrupt(`unknown kind ${fields.kindCode}`);
  if (kind === 'append' && (fields.bodyBytes < 1 || fields.bodyBytes > appendBytesMax)) {
    throw new StorageError('wire.too_large', `journal append body of ${fields.bodyBytes} bytes is outside 1..${appendBytesMax}`, { context: { bodyBytes: fields.bodyBytes } });
  }
  if (kind === 'remove' && (fields.bodyBytes !== 0 || fields.bodyCrc !== 0 || fields.offset !== 0)) {
    throw corrupt('tombstone with a body or offset');
  }
  return { kind, extentId: fields.extentId, offset: fields.offset, bodyBytes: fields.bodyBytes, bodyCrc: fields.bodyCrc };
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
