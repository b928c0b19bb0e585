// Record codec of the EmbeddedMetaStore's log and snapshot (docs/formats/metastore-log.md):
//
//  0        4        6        8             12            16
//  +--------+--------+--------+-------------+-------------+---------------------+
//  | magic  | version| flags  | body length | CRC32C      | body: JSON (UTF-8)  |
//  +--------+--------+--------+-------------+-------------+---------------------+
//  all integers big-endian; CRC32C over header bytes 0..11, then the body.
//
// Invariants: encode checks the body against its limit before anything is written; decode checks
// magic, version, flags and the length against its limit before reading the body, and the CRC
// before parsing it. A CRC-valid body that does not have the documented shape is corruption
// (wire.corrupt), never silently skipped.
//
// Fault model: a read may hit a torn or bit-flipped record or the end of the file; readRecord
// reports that as { kind: 'bad' } or { kind: 'end' } and the caller decides (the log truncates).
import { metaKeyBytesMax, metaTxnOperationsMax, metaValueBytesMax } from '../constants.ts';
import type { DiskFile } from '../io/disk.ts';
import { assert } from '../util/assert.ts';
import { canary, crc32c } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';

export const logRecordMagic = 0x4b4d4c47; // "KMLG"
export const snapshotMagic = 0x4b4d534e; // "KMSN"
export const metaFormatVersion = 1;
export const recordHeaderBytes = 16;

/** Largest log record body: a full transaction of maximal puts, each string JSON-escaped at
 * worst 6 bytes per byte ("\u0001"), plus field names and numbers. */
export const recordBodyBytesMax = metaTxnOperationsMax * (6 * (metaKeyBytesMax + metaValueBytesMax) + 128) + 128;

export type LogWrite =
  | { readonly key: string; readonly value: string; readonly lease: number }
  | { readonly key: string; readonly delete: true };

export interface LogRecordBody {
  readonly revision: number;
  readonly writes: readonly LogWrite[];
}

/** [key, value, modRevision, lease] */
export type SnapshotEntry = readonly [string, string, number, number];

export interface SnapshotBody {
  readonly generation: number;
  readonly revision: number;
  readonly leaseIdMax: number;
  readonly entries: readonly SnapshotEntry[];
}

export type ReadOutcome =
  | { readonly kind: 'record'; readonly body: unknown; readonly bytes: number }
  | { readonly kind: 'end' }
  | { readonly kind: 'bad'; readonly reason: string };

export function encodeRecord(magic: number, body: unknown, bodyBytesMax: number): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  assert(json.length <= bodyBytesMax, `meta record body of ${json.length} bytes exceeds ${bodyBytesMax}`);
  const record = Buffer.allocUnsafe(recordHeaderBytes + json.length);
  record.writeUInt32BE(magic, 0);
  record.writeUInt16BE(metaFormatVersion, 4);
  record.writeUInt16BE(0, 6);
  record.writeUInt32BE(json.length, 8);
  record.writeUInt32BE(crc32c(json, crc32c(record.subarray(0, 12))), 12);
  json.copy(record, recordHeaderBytes);
  return record;
}

/** Reads the record at `position`; never allocates more than `bodyBytesMax` for a body. */
export async function readRecord(file: DiskFile, position: number, fileBytes: number, magic: number, bodyBytesMax: number): Promise<ReadOutcome> {
  if (position === fileBytes) return { kind: 'end' };
  if (fileBytes - position < recordHeaderBytes) return { kind: 'bad', reason: 'short header' };
  const header = await file.read(position, recordHeaderBytes);
  if (header.length < recordHeaderBytes) return { kind: 'bad', reason: 'short header' };
  if (header.readUInt32BE(0) !== magic) return { kind: 'bad', reason: 'bad magic' };
  if (header.readUInt16BE(4) !== metaFormatVersion || header.readUInt16BE(6) !== 0) return { kind: 'bad', reason: 'bad version or flags' };
  const bodyBytes = header.readUInt32BE(8);
  if (bodyBytes > bodyBytesMax || bodyBytes > fileBytes - position - recordHeaderBytes) return { kind: 'bad', reason: 'bad length' };
  const body = await file.read(position + recordHeaderBytes, bodyBytes);
  if (body.length !== bodyBytes) return { kind: 'bad', reason: 'short body' };
  if (!crcOk(header, body)) return { kind: 'bad', reason: 'bad crc' };
  return { kind: 'record', body: parseJson(body), bytes: recordHeaderBytes + bodyBytes };
}

/** CRC of header bytes 0..11 continued over the body, without copying the body. */
function crcOk(header: Buffer, body: Buffer): boolean {
  return canary.skipCrcVerification || crc32c(body, crc32c(header.subarray(0, 12))) === header.readUInt32BE(12);
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new StorageError('wire.corrupt', 'meta record passed its CRC but is not JSON', { cause: error });
  }
}

function corrupt(what: string): StorageError {
  return new StorageError('wire.corrupt', `meta record passed its CRC but has a bad ${what}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function parseWrite(value: unknown): LogWrite {
  if (!isRecord(value) || typeof value['key'] !== 'string') throw corrupt('write');
  if (value['delete'] === true) return { key: value['key'], delete: true };
  if (typeof value['value'] !== 'string' || !isCount(value['lease'])) throw corrupt('write');
  return { key: value['key'], value: value['value'], lease: value['lease'] };
}

export function parseLogBody(body: unknown): LogRecordBody {
  if (!isRecord(body) || !isCount(body['revision']) || !Array.isArray(body['writes'])) throw corrupt('log body');
  const writes: unknown[] = body['writes'];
  return { revision: body['revision'], writes: writes.map(parseWrite) };
}

function parseEntry(value: unknown): SnapshotEntry {
  if (!Array.isArray(value) || value.length !== 4) throw corrupt('snapshot entry');
  const [key, entryValue, modRevision, lease] = value as unknown[];
  if (typeof key !== 'string' || typeof entryValue !== 'string' || !isCount(modRevision) || !isCount(lease)) throw corrupt('snapshot entry');
  return [key, entryValue, modRevision, lease];
}

export function parseSnapshotBody(body: unknown): SnapshotBody {
  if (!isRecord(body) || !isCount(body['generation']) || !isCount(body['revision']) || !isCount(body['leaseIdMax']) || !Array.isArray(body['entries'])) {
    throw corrupt('snapshot body');
  }
  const entries: unknown[] = body['entries'];
  return { generation: body['generation'], revision: body['revision'], leaseIdMax: body['leaseIdMax'], entries: entries.map(parseEntry) };
}
