// Partition checkpoint formats v1 (docs/formats/partition-checkpoint.md): the records of a sorted
// run (data blocks, sparse index, bloom filter, footer) and the manifest that names a partition's
// live runs and where its log replay starts. Pure: no I/O.
//
// Invariants:
// - every record has the 32-byte KPCK header; header and body CRCs are checked before any field
//   is trusted, and every length against its limit;
// - keys within a data block and across an index are strictly increasing (unsigned byte order);
// - a bloom filter answers "maybe" for every key it was built with (no false negatives).
//
// Fault model: as the log codec's; a damaged, truncated or misplaced record throws wire.corrupt,
// wire.too_large or wire.unsupported_version, never returns partial data.
import { appendBytesMax, manifestBytesMax, partitionKeyBytesMax, partitionRowBytesMax, runsMax } from '../constants.ts';
import { assert, assertByteCount } from '../util/assert.ts';
import { crc32c, crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import { ByteReader, ByteWriter, compareKeys, decodeRow, encodeRow, encodedRowKeyLatin1 } from './partition-row.ts';
import type { RowRecord } from './partition-row.ts';

export const partitionCheckpointVersion = 1;
export const checkpointHeaderBytes = 32;
export const checkpointBodyBytesMax = appendBytesMax - checkpointHeaderBytes;
export const runFooterBodyBytes = 128;

const magic = Buffer.from('KPCK', 'ascii');
const kindCodes = { block: 1, index: 2, bloom: 3, footer: 4, manifest: 5 } as const;
const kindNames = [null, 'block', 'index', 'bloom', 'footer', 'manifest'] as const;

export type CheckpointRecordKind = keyof typeof kindCodes;

export interface CheckpointHeader {
  readonly kind: CheckpointRecordKind;
  /** runId, or the partitionId for a manifest. */
  readonly ownerId: number;
  readonly itemCount: number;
  readonly bodyBytes: number;
  readonly bodyCrc: number;
}

/** Where a record lies in its stream: header + body. */
export interface RecordLocation {
  readonly extentId: number;
  readonly offset: number;
  readonly length: number;
}

// ---- the common record header -------------------------------------------------------------------

export function encodeCheckpointRecord(kind: CheckpointRecordKind, ownerId: number, itemCount: number, body: Buffer): Buffer {
  assert(body.length >= 1 && body.length <= checkpointBodyBytesMax, `checkpoint record body must be 1..${checkpointBodyBytesMax} bytes`);
  assertByteCount(ownerId, 'ownerId');
  assert(Number.isInteger(itemCount) && itemCount >= 0 && itemCount <= 0xffff_ffff, 'itemCount is a u32');
  const header = Buffer.alloc(checkpointHeaderBytes);
  magic.copy(header, 0);
  header.writeUInt8(partitionCheckpointVersion, 4);
  header.writeUInt8(kindCodes[kind], 5);
  header.writeUInt32BE(body.length, 8);
  header.writeUInt32BE(crc32c(body), 12);
  header.writeBigUInt64BE(BigInt(ownerId), 16);
  header.writeUInt32BE(itemCount, 24);
  header.writeUInt32BE(crc32c(header.subarray(0, 28)), 28);
  return Buffer.concat([header, body]);
}

export function decodeCheckpointHeader(bytes: Uint8Array): CheckpointHeader {
  if (bytes.length < checkpointHeaderBytes) throw corrupt(`truncated header (${bytes.length} bytes)`);
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, checkpointHeaderBytes);
  if (!header.subarray(0, 4).equals(magic)) throw corrupt('bad magic');
  if (!crcMatches(header.subarray(0, 28), header.readUInt32BE(28))) throw corrupt('header CRC mismatch');
  const version = header.readUInt8(4);
  if (version !== partitionCheckpointVersion) {
    throw new StorageError('wire.unsupported_version', `checkpoint record version ${version} is not supported`, { context: { version } });
  }
  const kind = kindNames[header.readUInt8(5)] ?? null;
  if (kind === null) throw corrupt(`unknown kind ${header.readUInt8(5)}`);
  if (header.readUInt16BE(6) !== 0) throw corrupt('reserved field not zero');
  const reader = new ByteReader(header.subarray(8, 28), 'checkpoint record');
  const bodyBytes = reader.length(reader.u32(), checkpointBodyBytesMax, 'bodyBytes');
  if (bodyBytes === 0) throw corrupt('empty body');
  return { kind, bodyBytes, bodyCrc: reader.u32(), ownerId: reader.u64(), itemCount: reader.u32() };
}

/** Total length of the record starting at `bytes[0]`, or null when fewer than 32 bytes are there. */
export function checkpointRecordLength(bytes: Uint8Array): number | null {
  if (bytes.length < checkpointHeaderBytes) return null;
  return checkpointHeaderBytes + decodeCheckpointHeader(bytes).bodyBytes;
}

/** Checks one whole record of the expected kind; returns its header and a view of its body. */
export function openCheckpointRecord(bytes: Uint8Array, kind: CheckpointRecordKind): { header: CheckpointHeader; body: Buffer } {
  const header = decodeCheckpointHeader(bytes);
  if (header.kind !== kind) throw corrupt(`expected a ${kind} record, found a ${header.kind}`);
  if (bytes.length !== checkpointHeaderBytes + header.bodyBytes) throw corrupt(`record is ${bytes.length} bytes, header says ${checkpointHeaderBytes + header.bodyBytes}`);
  const body = Buffer.from(bytes.buffer, bytes.byteOffset + checkpointHeaderBytes, header.bodyBytes);
  if (!crcMatches(body, header.bodyCrc)) throw corrupt('body CRC mismatch');
  return { header, body };
}

// ---- data blocks ------------------------------------------------------------------------------

export function encodeBlock(runId: number, rows: readonly RowRecord[]): Buffer {
  assert(rows.length >= 1, 'a block holds at least one row');
  for (let index = 1; index < rows.length; index++) {
    assert(compareKeys(rows[index - 1]?.key ?? Buffer.alloc(0), rows[index]?.key ?? Buffer.alloc(0)) < 0, 'block rows are in strictly increasing key order');
  }
  return encodeBlockRows(runId, rows.map(encodeRow));
}

/** A block of rows already encoded (by encodeRow), in strictly increasing key order (caller's duty). */
export function encodeBlockRows(runId: number, encodedRows: readonly Buffer[]): Buffer {
  assert(encodedRows.length >= 1, 'a block holds at least one row');
  const body = new ByteWriter();
  for (const bytes of encodedRows) {
    body.u32(bytes.length);
    body.bytes(bytes);
  }
  return encodeCheckpointRecord('block', runId, encodedRows.length, body.finish());
}

/** Encoded size of a row inside a block (length prefix + row). */
export function blockRowBytes(encodedRowLength: number): number {
  return 4 + encodedRowLength;
}

export function decodeBlock(bytes: Uint8Array, runId: number): RowRecord[] {
  const block = splitBlock(bytes, runId);
  return block.keys.map((_key, index) => decodeRow(block.body.subarray(block.rowBounds[index * 2], block.rowBounds[index * 2 + 1])));
}

/** A checked block with its rows left encoded: latin1 keys, and where row i lies in `body`. */
export interface SplitBlock {
  readonly body: Buffer;
  readonly keys: readonly string[];
  /** Row i is body[rowBounds[2i], rowBounds[2i + 1]). */
  readonly rowBounds: Uint32Array;
}

/**
 * A block checked (CRC, run, framing, keys strictly increasing) but its rows left encoded: the
 * reader decodes a row (decodeRow) only when it is asked for, so a point read decodes one row
 * of the ~200 in a block. Keys are made as latin1 strings straight from the bytes (their order
 * is byte order), rows are offsets into `body`: no view object per key or row.
 */
export function splitBlock(bytes: Uint8Array, runId: number): SplitBlock {
  const { header, body } = openCheckpointRecord(bytes, 'block');
  if (header.ownerId !== runId) throw corrupt(`block of run ${header.ownerId}, expected run ${runId}`);
  // Each row takes at least its 4-byte length: bounds the allocation below by the bytes read.
  if (header.itemCount * 4 > body.length) throw corrupt(`${header.itemCount} rows cannot fit in ${body.length} bytes`);
  const reader = new ByteReader(body, 'run block');
  const keys: string[] = [];
  const rowBounds = new Uint32Array(header.itemCount * 2);
  let last: string | null = null;
  for (let index = 0; index < header.itemCount; index++) {
    const length = reader.length(reader.u32(), partitionRowBytesMax, 'rowBytes');
    const start = reader.skip(length);
    const key = encodedRowKeyLatin1(body, start, length);
    if (last !== null && last >= key) throw corrupt('block keys are not strictly increasing');
    keys.push(key);
    rowBounds[index * 2] = start;
    rowBounds[index * 2 + 1] = start + length;
    last = key;
  }
  reader.end();
  return { body, keys, rowBounds };
}

// ---- sparse index -----------------------------------------------------------------------------

export interface IndexEntry {
  readonly firstKey: Buffer;
  readonly location: RecordLocation;
  readonly rowCount: number;
}

/** Encoded size of one index entry. */
export function indexEntryBytes(firstKeyLength: number): number {
  return 2 + firstKeyLength + 8 + 8 + 4 + 4;
}

export function encodeIndex(runId: number, entries: readonly IndexEntry[]): Buffer {
  assert(entries.length >= 1, 'an index has at least one entry');
  const body = new ByteWriter();
  for (const entry of entries) {
    body.u16(entry.firstKey.length);
    body.bytes(entry.firstKey);
    body.u64(entry.location.extentId);
    body.u64(entry.location.offset);
    body.u32(entry.location.length);
    body.u32(entry.rowCount);
  }
  return encodeCheckpointRecord('index', runId, entries.length, body.finish());
}

export function decodeIndex(bytes: Uint8Array, runId: number): IndexEntry[] {
  const { header, body } = openCheckpointRecord(bytes, 'index');
  if (header.ownerId !== runId) throw corrupt(`index of run ${header.ownerId}, expected run ${runId}`);
  const reader = new ByteReader(body, 'run index');
  const entries: IndexEntry[] = [];
  for (let index = 0; index < header.itemCount; index++) {
    const keyBytes = reader.length(reader.u16(), partitionKeyBytesMax, 'keyBytes');
    if (keyBytes === 0) throw corrupt('empty index key');
    const firstKey = Buffer.from(reader.take(keyBytes));
    const location = { extentId: reader.u64(), offset: reader.u64(), length: reader.length(reader.u32(), appendBytesMax, 'block length') };
    const entry = { firstKey, location, rowCount: reader.u32() };
    const last = entries.at(-1);
    if (last !== undefined && compareKeys(last.firstKey, firstKey) >= 0) throw corrupt('index keys are not strictly increasing');
    entries.push(entry);
  }
  reader.end();
  return entries;
}

// ---- bloom filter -----------------------------------------------------------------------------

const bloomSeed = 0x9e3779b9;

/** A bloom filter with double hashing over CRC32C (format in partition-checkpoint.md). */
export class BloomFilter {
  readonly bits: Buffer;
  readonly bitCount: number;
  readonly hashCount: number;

  constructor(bits: Buffer, hashCount: number) {
    assert(bits.length >= 8 && hashCount >= 1 && hashCount <= 32, 'bloom filter of at least 64 bits and 1..32 hashes');
    this.bits = bits;
    this.bitCount = bits.length * 8;
    this.hashCount = hashCount;
  }

  /** An empty filter sized for `keyCount` keys at `bitsPerKey`. */
  static sized(keyCount: number, bitsPerKey: number, hashCount: number): BloomFilter {
    const bytes = Math.max(8, Math.ceil((keyCount * bitsPerKey) / 8));
    return new BloomFilter(Buffer.alloc(bytes), hashCount);
  }

  add(key: Uint8Array): void {
    const [h1, h2] = bloomHashes(key);
    this.addHashes(h1, h2);
  }

  /** Adds a key by its two hashes (bloomHashes), so writers can keep 8 bytes per key, not the key. */
  addHashes(h1: number, h2: number): void {
    for (let i = 0; i < this.hashCount; i++) {
      const bit = (h1 + i * h2) % this.bitCount;
      this.bits[bit >> 3]! |= 1 << (bit & 7);
    }
  }

  mayContain(key: Uint8Array): boolean {
    const [h1, h2] = bloomHashes(key);
    for (let i = 0; i < this.hashCount; i++) {
      const bit = (h1 + i * h2) % this.bitCount;
      if (((this.bits[bit >> 3] ?? 0) & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }
}

/** The two base hashes of a key: probe i is (h1 + i * h2) mod bitCount. */
export function bloomHashes(key: Uint8Array): readonly [number, number] {
  return [crc32c(key), (crc32c(key, bloomSeed) | 1) >>> 0];
}

export function encodeBloom(runId: number, filter: BloomFilter): Buffer {
  const body = new ByteWriter();
  body.u32(filter.bitCount);
  body.bytes(filter.bits);
  return encodeCheckpointRecord('bloom', runId, filter.hashCount, body.finish());
}

export function decodeBloom(bytes: Uint8Array, runId: number): BloomFilter {
  const { header, body } = openCheckpointRecord(bytes, 'bloom');
  if (header.ownerId !== runId) throw corrupt(`bloom filter of run ${header.ownerId}, expected run ${runId}`);
  const reader = new ByteReader(body, 'bloom filter');
  const bitCount = reader.u32();
  if (bitCount < 64 || bitCount % 8 !== 0 || bitCount / 8 !== reader.remaining) throw corrupt(`bloom bitCount ${bitCount} does not match its body`);
  if (header.itemCount < 1 || header.itemCount > 32) throw corrupt(`bloom hash count ${header.itemCount}`);
  return new BloomFilter(Buffer.from(reader.take(bitCount / 8)), header.itemCount);
}

// ---- run footer -------------------------------------------------------------------------------

export interface LogPosition {
  readonly extentId: number;
  readonly offset: number;
}

export interface RunFooter {
  readonly partitionId: number;
  readonly runId: number;
  readonly rowCount: number;
  readonly tombstoneCount: number;
  readonly minSequence: number;
  readonly maxSequence: number;
  readonly coveredSequence: number;
  readonly logStart: LogPosition;
  readonly index: RecordLocation;
  readonly bloom: RecordLocation;
  readonly dataBytes: number;
  readonly createdAtMs: number;
}

export function encodeFooter(footer: RunFooter): Buffer {
  const body = new ByteWriter();
  for (const value of [footer.partitionId, footer.runId, footer.rowCount, footer.tombstoneCount, footer.minSequence, footer.maxSequence, footer.coveredSequence, footer.logStart.extentId, footer.logStart.offset]) {
    body.u64(value);
  }
  writeLocation(body, footer.index);
  writeLocation(body, footer.bloom);
  body.u64(footer.dataBytes);
  body.u64(footer.createdAtMs);
  assert(body.length === runFooterBodyBytes, 'footer body is 128 bytes');
  return encodeCheckpointRecord('footer', footer.runId, 0, body.finish());
}

export function decodeFooter(bytes: Uint8Array, runId: number): RunFooter {
  const { header, body } = openCheckpointRecord(bytes, 'footer');
  if (header.ownerId !== runId || body.length !== runFooterBodyBytes) throw corrupt(`footer of run ${header.ownerId} (${body.length} bytes), expected run ${runId}`);
  const reader = new ByteReader(body, 'run footer');
  const footer: RunFooter = {
    partitionId: reader.u64(), runId: reader.u64(), rowCount: reader.u64(), tombstoneCount: reader.u64(),
    minSequence: reader.u64(), maxSequence: reader.u64(), coveredSequence: reader.u64(),
    logStart: { extentId: reader.u64(), offset: reader.u64() },
    index: readLocation(reader), bloom: readLocation(reader), dataBytes: reader.u64(), createdAtMs: reader.u64(),
  };
  if (footer.runId !== runId || footer.minSequence > footer.maxSequence) throw corrupt('footer fields disagree');
  return footer;
}

function writeLocation(writer: ByteWriter, location: RecordLocation): void {
  writer.u64(location.extentId);
  writer.u64(location.offset);
  writer.u32(location.length);
}

function readLocation(reader: ByteReader): RecordLocation {
  return { extentId: reader.u64(), offset: reader.u64(), length: reader.length(reader.u32(), appendBytesMax, 'record length') };
}

// ---- manifest ---------------------------------------------------------------------------------

export interface ManifestRun {
  readonly runId: number;
  readonly footer: RecordLocation;
}

export interface Manifest {
  readonly partitionId: number;
  readonly manifestSequence: number;
  readonly coveredSequence: number;
  readonly logStart: LogPosition;
  readonly nextRunId: number;
  readonly createdAtMs: number;
  readonly lowKey: Buffer;
  /** null = +infinity. */
  readonly highKey: Buffer | null;
  /** Newest first. */
  readonly runs: readonly ManifestRun[];
}

export function encodeManifest(manifest: Manifest): Buffer {
  assert(manifest.runs.length <= runsMax, `a manifest names at most ${runsMax} runs`);
  assert(manifest.lowKey.length <= partitionKeyBytesMax && (manifest.highKey?.length ?? 1) >= 1, 'manifest key range within limits');
  const body = new ByteWriter();
  for (const value of [manifest.partitionId, manifest.manifestSequence, manifest.coveredSequence, manifest.logStart.extentId, manifest.logStart.offset, manifest.nextRunId, manifest.createdAtMs]) {
    body.u64(value);
  }
  body.u16(manifest.lowKey.length);
  body.bytes(manifest.lowKey);
  const high = manifest.highKey ?? Buffer.alloc(0);
  assert(high.length <= partitionKeyBytesMax, 'high key within limits');
  body.u16(high.length);
  body.bytes(high);
  body.u16(manifest.runs.length);
  for (const run of manifest.runs) {
    body.u64(run.runId);
    writeLocation(body, run.footer);
  }
  assert(body.length <= manifestBytesMax, 'manifest within manifestBytesMax');
  return encodeCheckpointRecord('manifest', manifest.partitionId, 0, body.finish());
}

export function decodeManifest(bytes: Uint8Array): Manifest {
  const { header, body } = openCheckpointRecord(bytes, 'manifest');
  if (body.length > manifestBytesMax) throw new StorageError('wire.too_large', `manifest of ${body.length} bytes exceeds ${manifestBytesMax}`);
  const reader = new ByteReader(body, 'manifest');
  const [partitionId, manifestSequence, coveredSequence, logExtentId, logOffset, nextRunId, createdAtMs] = Array.from({ length: 7 }, () => reader.u64()) as [number, number, number, number, number, number, number];
  const lowKey = Buffer.from(reader.take(reader.length(reader.u16(), partitionKeyBytesMax, 'lowKeyBytes')));
  const highBytes = reader.length(reader.u16(), partitionKeyBytesMax, 'highKeyBytes');
  const highKey = highBytes === 0 ? null : Buffer.from(reader.take(highBytes));
  const runCount = reader.length(reader.u16(), runsMax, 'runCount');
  const runs: ManifestRun[] = [];
  for (let index = 0; index < runCount; index++) runs.push({ runId: reader.u64(), footer: readLocation(reader) });
  reader.end();
  if (partitionId !== header.ownerId) throw corrupt('manifest partition id disagrees with its header');
  return { partitionId, manifestSequence, coveredSequence, logStart: { extentId: logExtentId, offset: logOffset }, nextRunId, createdAtMs, lowKey, highKey, runs };
}

function corrupt(reason: string): StorageError {
  return new StorageError('wire.corrupt', `checkpoint record: ${reason}`, { context: { reason } });
}
