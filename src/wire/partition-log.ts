// Partition commit-log record format v1 (docs/formats/partition-log.md): one atomic batch of row
// results per record, with the partition id, sequence number and owner epoch that replay needs
// to dedupe and fence. Pure: no I/O.
//
// Invariants:
// - a decoded record's header and body CRCs matched, its version is 1, its lengths are within
//   their limits, every row's sequence equals the record's, and no key appears twice;
// - bodyBytes is trusted (to slice or wait for more bytes) only after the header CRC matched.
//
// Fault model: bytes come from CRC-verified stream reads, but a scan may start at a wrong offset,
// a record may be cut by a read chunk, and bugs happen: recordLength returns null for "need more
// bytes" and every decoder throws wire.corrupt / wire.too_large / wire.unsupported_version.
import { appendBytesMax, partitionBatchMutationsMax, partitionRowBytesMax } from '../constants.ts';
import { assert, assertByteCount } from '../util/assert.ts';
import { crc32c, crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import { ByteReader, decodeRow, encodeFramedRows, framedRowsBytes } from './partition-row.ts';
import type { RowRecord } from './partition-row.ts';

export const partitionLogVersion = 1;
export const logHeaderBytes = 48;
export const logBodyBytesMax = appendBytesMax - logHeaderBytes;

const magic = Buffer.from('KPLG', 'ascii');
const batchKind = 1;

export interface LogRecordHeader {
  readonly partitionId: number;
  readonly sequence: number;
  readonly ownerEpoch: number;
  readonly mutationCount: number;
  readonly bodyBytes: number;
  readonly bodyCrc: number;
}

export interface LogRecord {
  readonly partitionId: number;
  readonly sequence: number;
  readonly ownerEpoch: number;
  readonly rows: readonly RowRecord[];
}

/** The exact size encodeLogRecord gives a record of `rows` (arithmetic, nothing encoded). */
export function logRecordBytes(rows: readonly RowRecord[]): number {
  return framedRowsBytes(rows, logHeaderBytes);
}

/**
 * Encodes a batch; rows must already carry the record's sequence. With `into` (exactly
 * logRecordBytes long, e.g. a slice of a log group's one buffer) the record is written there.
 */
export function encodeLogRecord(record: LogRecord, into?: Buffer): Buffer {
  assert(record.rows.length >= 1 && record.rows.length <= partitionBatchMutationsMax, `a batch holds 1..${partitionBatchMutationsMax} rows`);
  assert(record.sequence >= 1 && record.ownerEpoch >= 1, 'sequence and ownerEpoch start at 1');
  assertByteCount(record.partitionId, 'partitionId');
  for (const row of record.rows) assert(row.sequence === record.sequence, 'every row of a batch carries its sequence');
  // One exact-size buffer, header then body (a 64 KiB inline body is copied once, not regrown).
  const out = encodeFramedRows(record.rows, logHeaderBytes, into);
  assert(out.length - logHeaderBytes <= logBodyBytesMax, `log record body of ${out.length - logHeaderBytes} bytes exceeds ${logBodyBytesMax}`);
  const bodyBytes = out.subarray(logHeaderBytes);
  const header = out.subarray(0, logHeaderBytes);
  magic.copy(header, 0);
  header.writeUInt8(partitionLogVersion, 4);
  header.writeUInt8(batchKind, 5);
  header.writeUInt32BE(bodyBytes.length, 8);
  header.writeUInt32BE(crc32c(bodyBytes), 12);
  header.writeBigUInt64BE(BigInt(record.partitionId), 16);
  header.writeBigUInt64BE(BigInt(record.sequence), 24);
  header.writeBigUInt64BE(BigInt(record.ownerEpoch), 32);
  header.writeUInt32BE(record.rows.length, 40);
  header.writeUInt32BE(crc32c(header.subarray(0, 44)), 44);
  return out;
}

/** Decodes and checks the first 48 bytes of `bytes`. */
export function decodeLogHeader(bytes: Uint8Array): LogRecordHeader {
  if (bytes.length < logHeaderBytes) throw corrupt(`truncated header (${bytes.length} bytes)`);
  const reader = new ByteReader(bytes.subarray(0, logHeaderBytes), 'log record');
  const header = reader.take(logHeaderBytes);
  if (!header.subarray(0, 4).equals(magic)) throw corrupt('bad magic');
  if (!crcMatches(header.subarray(0, 44), header.readUInt32BE(44))) throw corrupt('header CRC mismatch');
  const version = header.readUInt8(4);
  if (version !== partitionLogVersion) {
    throw new StorageError('wire.unsupported_version', `log record version ${version} is not supported`, { context: { version } });
  }
  if (header.readUInt8(5) !== batchKind) throw corrupt(`unknown kind ${header.readUInt8(5)}`);
  if (header.readUInt16BE(6) !== 0) throw corrupt('reserved field not zero');
  const fields = new ByteReader(header.subarray(8), 'log record');
  const bodyBytes = fields.length(fields.u32(), logBodyBytesMax, 'bodyBytes');
  const bodyCrc = fields.u32();
  const partitionId = fields.u64();
  const sequence = fields.u64();
  const ownerEpoch = fields.u64();
  const mutationCount = fields.length(fields.u32(), partitionBatchMutationsMax, 'mutationCount');
  if (bodyBytes === 0 || mutationCount === 0 || sequence === 0 || ownerEpoch === 0) throw corrupt('empty batch or zero sequence/epoch');
  return { partitionId, sequence, ownerEpoch, mutationCount, bodyBytes, bodyCrc };
}

/** Total length of the record starting at `bytes[0]`, or null when fewer than 48 bytes are there. */
export function logRecordLength(bytes: Uint8Array): number | null {
  if (bytes.length < logHeaderBytes) return null;
  return logHeaderBytes + decodeLogHeader(bytes).bodyBytes;
}

/** Decodes exactly one whole record (header ++ body, nothing more). */
export function decodeLogRecord(bytes: Uint8Array): LogRecord & { readonly bodyBytes: number } {
  const header = decodeLogHeader(bytes);
  if (bytes.length !== logHeaderBytes + header.bodyBytes) throw corrupt(`record is ${bytes.length} bytes, header says ${logHeaderBytes + header.bodyBytes}`);
  const body = bytes.subarray(logHeaderBytes);
  if (!crcMatches(body, header.bodyCrc)) throw corrupt('body CRC mismatch');
  const reader = new ByteReader(body, 'log record');
  const rows: RowRecord[] = [];
  const keys = new Set<string>();
  for (let index = 0; index < header.mutationCount; index++) {
    const row = decodeRow(reader.take(reader.length(reader.u32(), partitionRowBytesMax, 'rowBytes')));
    if (row.sequence !== header.sequence) throw corrupt(`row sequence ${row.sequence} in record ${header.sequence}`);
    const key = row.key.toString('latin1');
    if (keys.has(key)) throw corrupt('a key appears twice in one batch');
    keys.add(key);
    rows.push(row);
  }
  reader.end();
  return { partitionId: header.partitionId, sequence: header.sequence, ownerEpoch: header.ownerEpoch, rows, bodyBytes: header.bodyBytes };
}

/**
 * The rows of a record that encodeLogRecord wrote or decodeLogRecord checked, each as the record
 * frames it (u32 rowBytes, then the row): views of `record`, in order.
 */
export function logRecordFramedRows(record: Buffer): Buffer[] {
  const framed: Buffer[] = [];
  let at = logHeaderBytes;
  while (at < record.length) {
    const end = at + 4 + record.readUInt32BE(at);
    framed.push(record.subarray(at, end));
    at = end;
  }
  assert(at === record.length, 'a record is its header and its framed rows');
  return framed;
}

function corrupt(reason: string): StorageError {
  return new StorageError('wire.corrupt', `log record: ${reason}`, { context: { reason } });
}
