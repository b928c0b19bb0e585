// Partition row format v1 (docs/formats/partition-rows.md): the one encoding of a table row, used
// inside commit-log records and run data blocks. Pure: no I/O. Also exports the bounded byte
// reader the other partition codecs share.
//
// Invariants:
// - encode(decode(x)) is byte-identical for every x decode accepts, and decode(encode(row))
//   deep-equals row (NaN is written canonically);
// - a length read from bytes is trusted only after it was checked against its limit and against
//   the bytes that remain, so decoding never allocates from a hostile length;
// - column names are unique within a row; strings are well-formed UTF-8.
//
// Fault model: rows are decoded only from bytes whose enclosing record CRC matched; damage that
// slips through (a bug, a CRC collision) throws wire.corrupt or wire.too_large, never a partial row.
import {
  partitionColumnsMax, partitionEtagBytesMax, partitionKeyBytesMax, partitionRowBytesMax,
} from '../constants.ts';
import { isUtf8 } from 'node:buffer';
import { assert, assertByteCount } from '../util/assert.ts';
import { StorageError } from '../util/errors.ts';

export const partitionRowVersion = 1;

/** Largest count of data refs in one dataRefs value. */
export const dataRefsMax = 65_536;

/** A byte range of the partition's data stream. */
export interface DataRef {
  readonly extentId: number;
  readonly offset: number;
  readonly length: number;
}

export type ColumnValue =
  | { readonly kind: 'null' }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'int64'; readonly value: bigint }
  | { readonly kind: 'float64'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'bytes'; readonly value: Buffer }
  | { readonly kind: 'dataRefs'; readonly value: readonly DataRef[] };

export interface Column {
  readonly name: string;
  readonly value: ColumnValue;
}

/** One version of one key: a live row or a tombstone (a deletion). */
export type RowRecord =
  | {
    readonly kind: 'live';
    readonly key: Buffer;
    readonly sequence: number;
    readonly lastModifiedMs: number;
    readonly etag: string;
    readonly columns: readonly Column[];
  }
  | { readonly kind: 'tombstone'; readonly key: Buffer; readonly sequence: number; readonly lastModifiedMs: number };

const typeCodes = { null: 0, bool: 1, int64: 2, float64: 3, string: 4, bytes: 5, dataRefs: 6 } as const;
const typeNames = ['null', 'bool', 'int64', 'float64', 'string', 'bytes', 'dataRefs'] as const;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const etagPattern = /^[\x21-\x7e]+$/;
/** ByteWriter.utf8 copies an ASCII string up to this long itself. */
const shortAsciiBytesMax = 64;
const safeBigIntMax = BigInt(Number.MAX_SAFE_INTEGER);

function writeUint32(buffer: Buffer, at: number, value: number): void {
  buffer[at] = value >>> 24;
  buffer[at + 1] = (value >>> 16) & 0xff;
  buffer[at + 2] = (value >>> 8) & 0xff;
  buffer[at + 3] = value & 0xff;
}

// ---- encoding ---------------------------------------------------------------------------------

/**
 * Writes big-endian fields into one growing buffer (doubling), in place: no buffer per field.
 * finish() returns the bytes written (a view when the buffer is at least half full, else a copy,
 * so a small result never pins a large buffer).
 */
export class ByteWriter {
  private buffer: Buffer;
  private total = 0;

  /** A capacity to allocate, or a buffer to write into (written in place while it has room). */
  constructor(capacity: number | Buffer = 512) {
    this.buffer = typeof capacity === 'number' ? Buffer.allocUnsafe(capacity) : capacity;
  }

  get length(): number {
    return this.total;
  }

  bytes(data: Uint8Array): void {
    const at = this.reserve(data.byteLength);
    this.buffer.set(data, at);
  }

  /** `count` zero bytes (no buffer of zeros to copy from). */
  zeros(count: number): void {
    const at = this.reserve(count);
    this.buffer.fill(0, at, at + count);
  }

  /** `text` as UTF-8 of exactly `byteLength` bytes (the caller measured it with utf8Bytes). */
  utf8(text: string, byteLength: number): void {
    const at = this.reserve(byteLength);
    if (byteLength === text.length && byteLength <= shortAsciiBytesMax) {
      // ASCII (as many UTF-8 bytes as UTF-16 units), short: copied here, no native call (the
      // column names and most values of a row; a call to Buffer.write cost more than the copy).
      const buffer = this.buffer;
      for (let index = 0; index < byteLength; index++) buffer[at + index] = text.charCodeAt(index);
      return;
    }
    const written = this.buffer.write(text, at, byteLength, 'utf8');
    assert(written === byteLength, 'utf8 byte length as measured');
  }

  // reserve() first, then this.buffer: reserve may replace the buffer, and `this.buffer.write…(v,
  // this.reserve(n))` would evaluate the old buffer before the call.
  // Fixed-width fields are written by index after a range check of our own (Buffer's
  // writeUInt*BE check offset and range again, per field).
  u8(value: number): void {
    assert(value >= 0 && value <= 0xff && Number.isInteger(value), 'u8 field in range');
    const at = this.reserve(1);
    this.buffer[at] = value;
  }

  u16(value: number): void {
    assert(value >= 0 && value <= 0xffff && Number.isInteger(value), 'u16 field in range');
    const at = this.reserve(2);
    const buffer = this.buffer;
    buffer[at] = value >>> 8;
    buffer[at + 1] = value & 0xff;
  }

  u32(value: number): void {
    assert(value >= 0 && value <= 0xffff_ffff && Number.isInteger(value), 'u32 field in range');
    const at = this.reserve(4);
    writeUint32(this.buffer, at, value);
  }

  u64(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) assertByteCount(value, 'u64 field');
    const at = this.reserve(8);
    writeUint32(this.buffer, at, Math.floor(value / 0x1_0000_0000));
    writeUint32(this.buffer, at + 4, value >>> 0);
  }

  i64(value: bigint): void {
    const at = this.reserve(8);
    if (value >= -safeBigIntMax && value <= safeBigIntMax) {
      // The common value (a time, a size) as a number: no bigint arithmetic.
      const number = Number(value);
      const high = Math.floor(number / 0x1_0000_0000);
      writeUint32(this.buffer, at, high >>> 0);
      writeUint32(this.buffer, at + 4, (number - high * 0x1_0000_0000) >>> 0);
      return;
    }
    this.buffer.writeBigInt64BE(value, at);
  }

  f64(value: number): void {
    const at = this.reserve(8);
    if (Number.isNaN(value)) this.buffer.writeBigUInt64BE(0x7ff8000000000000n, at);
    else this.buffer.writeDoubleBE(value, at);
  }

  finish(): Buffer {
    const written = this.buffer.subarray(0, this.total);
    return this.total * 2 >= this.buffer.length ? written : Buffer.from(written);
  }

  /** Makes room for `size` more bytes; returns where they go. */
  private reserve(size: number): number {
    const at = this.total;
    if (at + size > this.buffer.length) {
      const larger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, at + size));
      this.buffer.copy(larger, 0, 0, at);
      this.buffer = larger;
    }
    this.total = at + size;
    return at;
  }
}

/**
 * Buffer.byteLength(text, 'utf8'), counted here for short ASCII text (every column name and most
 * values of a row: as many bytes as UTF-16 units): the native call per name and value, twice per
 * column (size, then encode) and three encodes per Put Blob (RPC body, log record, run), cost more
 * than the count.
 */
export function utf8Bytes(text: string): number {
  if (text.length <= shortAsciiBytesMax) {
    let index = 0;
    while (index < text.length && text.charCodeAt(index) < 0x80) index++;
    if (index === text.length) return index;
  }
  return Buffer.byteLength(text, 'utf8');
}

/** The exact size encodeRow gives `row` (arithmetic, no copy): what a log record's size is judged
 * by before it is built, and the writer's one allocation (a row with a 64 KiB inline body is not
 * grown by doubling). */
export function encodedRowBytes(row: RowRecord): number {
  let total = 23 + row.key.length + (row.kind === 'live' ? row.etag.length : 0);
  if (row.kind === 'tombstone') return total;
  for (const column of row.columns) total += encodedColumnBytes(column);
  return total;
}

/** The size of one column's encoding (name, type, value). */
function encodedColumnBytes(column: Column): number {
  const value = column.value;
  const head = 2 + utf8Bytes(column.name);
  switch (value.kind) {
    case 'null': return head;
    case 'bool': return head + 1;
    case 'int64': case 'float64': return head + 8;
    case 'string': return head + 4 + utf8Bytes(value.value);
    case 'bytes': return head + 4 + value.value.length;
    case 'dataRefs': return head + 4 + 24 * value.value.length;
  }
}

/** Encodes one row; asserts the caller respected every limit (the partition checks before). */
export function encodeRow(row: RowRecord): Buffer {
  const writer = new ByteWriter(encodedRowBytes(row));
  writeRow(writer, row);
  return writer.finish();
}

// ---- encoded rows, edited without decoding --------------------------------------------------
// For rows encodeRow wrote (a memtable's, a run block's: checked when they were read), so only
// programmer errors are asserted. The results are exactly encodeRow's bytes for the edited row
// (test/unit/wire/partition-row-edit.test.ts): a run written from them is the run written from
// the decoded rows.

/** A column of an encoded live row: its whole entry [start, end) and, for a bytes column, its value (a view). */
export interface EncodedColumn {
  readonly start: number;
  readonly end: number;
  readonly bytes: Buffer | null;
}

/** The key of an encoded row (a view). */
export function encodedRowKey(row: Buffer): Buffer {
  return row.subarray(4, 4 + row.readUInt16BE(2));
}

/** The sequence of an encoded row. */
export function encodedRowSequence(row: Buffer): number {
  const at = 4 + row.readUInt16BE(2);
  return uint32At(row, at) * 0x1_0000_0000 + uint32At(row, at + 4);
}

/** Where the u16 column count of an encoded live row is (after key, sequence, time and ETag). */
function encodedColumnCountAt(row: Buffer): number {
  const etagAt = 4 + row.readUInt16BE(2) + 16;
  return etagAt + 1 + (row[etagAt] ?? 0);
}

/** Value bytes of the fixed-size column types, by type code (null, bool, int64, float64). */
const fixedValueBytes: readonly number[] = [0, 1, 8, 8];

/** The end of the column entry starting at `at`. */
function encodedColumnEnd(row: Buffer, at: number): number {
  const valueAt = at + 2 + (row[at] ?? 0);
  const type = row[valueAt - 1] ?? -1;
  if (type === typeCodes.string || type === typeCodes.bytes) return valueAt + 4 + uint32At(row, valueAt);
  if (type === typeCodes.dataRefs) return valueAt + 4 + 24 * uint32At(row, valueAt);
  const fixed = fixedValueBytes[type];
  assert(fixed !== undefined, 'an encoded row holds known column types');
  return valueAt + fixed;
}

/** True if the column entry at `at` is named `name`. */
function encodedColumnNamed(row: Buffer, at: number, name: string): boolean {
  const nameBytes = utf8Bytes(name);
  if (row[at] !== nameBytes) return false;
  if (nameBytes !== name.length) return row.toString('utf8', at + 1, at + 1 + nameBytes) === name;
  for (let index = 0; index < nameBytes; index++) if (row[at + 1 + index] !== name.charCodeAt(index)) return false;
  return true;
}

/** Column `name` of an encoded row, or null (absent, or the row is a tombstone). */
export function findEncodedColumn(row: Buffer, name: string): EncodedColumn | null {
  if (encodedRowIsTombstone(row)) return null;
  const countAt = encodedColumnCountAt(row);
  const count = row.readUInt16BE(countAt);
  let at = countAt + 2;
  for (let index = 0; index < count; index++) {
    const end = encodedColumnEnd(row, at);
    if (encodedColumnNamed(row, at, name)) {
      const valueAt = at + 2 + (row[at] ?? 0);
      return { start: at, end, bytes: row[valueAt - 1] === typeCodes.bytes ? row.subarray(valueAt + 4, end) : null };
    }
    at = end;
  }
  assert(at === row.length, 'an encoded row ends with its last column');
  return null;
}

/**
 * encodeRow's bytes for the live row `row` encodes with column `replaced` taken out and `columns`
 * added after the others (a spill: the row's inline bytes named by a data ref instead).
 */
export function replaceEncodedColumn(row: Buffer, replaced: EncodedColumn, columns: readonly Column[]): Buffer {
  const countAt = encodedColumnCountAt(row);
  const count = row.readUInt16BE(countAt) - 1 + columns.length;
  if (count > partitionColumnsMax) assert(false, `at most ${partitionColumnsMax} columns`);
  assertDistinctNames(columns);
  for (const column of columns) if (findEncodedColumn(row, column.name) !== null) assert(false, `duplicate column ${column.name}`);
  const size = columns.reduce((sum, column) => sum + encodedColumnBytes(column), row.length - (replaced.end - replaced.start));
  if (size > partitionRowBytesMax) assert(false, `row of ${size} bytes exceeds ${partitionRowBytesMax}`);
  const writer = new ByteWriter(size);
  writer.bytes(row.subarray(0, countAt));
  writer.u16(count);
  writer.bytes(row.subarray(countAt + 2, replaced.start));
  writer.bytes(row.subarray(replaced.end));
  for (const column of columns) encodeColumn(writer, column);
  assert(writer.length === size, 'encodedColumnBytes is exact');
  return writer.finish();
}

/** The exact size encodeFramedRows gives `rows` after `headerBytes`. */
export function framedRowsBytes(rows: readonly RowRecord[], headerBytes: number): number {
  return rows.reduce((sum, row) => sum + 4 + encodedRowBytes(row), headerBytes);
}

/**
 * `headerBytes` zero bytes (for the caller to fill), then each row as (u32 rowBytes, row), in one
 * exact-size buffer: a log record body and a transact RPC body copy each inline body once. With
 * `into` (exactly framedRowsBytes long) the rows are written there: a partition's log group is
 * one buffer holding each record in place, not records concatenated afterwards.
 */
export function encodeFramedRows(rows: readonly RowRecord[], headerBytes: number, into?: Buffer): Buffer {
  const sizes = rows.map((row) => encodedRowBytes(row));
  const total = sizes.reduce((sum, size) => sum + 4 + size, headerBytes);
  assert(into === undefined || into.length === total, 'a target buffer is exactly the framed rows long');
  const writer = new ByteWriter(into ?? total);
  writer.zeros(headerBytes);
  // Indexed, not rows.entries(): no [index, row] pair and iterator result per row on a hot path.
  for (let index = 0; index < rows.length; index++) {
    const before = writer.length;
    writer.u32(sizes[index] ?? 0);
    writeRow(writer, rows[index] as RowRecord);
    assert(writer.length - before - 4 === sizes[index], 'encodedRowBytes is exact');
  }
  const out = writer.finish();
  assert(into === undefined || (out.buffer === into.buffer && out.byteOffset === into.byteOffset && out.length === into.length), 'framed rows written in place');
  return out;
}

// The asserts below build their messages only when they fail: a template literal per column was
// a visible part of encoding a blob row.
function writeRow(writer: ByteWriter, row: RowRecord): void {
  if (row.key.length < 1 || row.key.length > partitionKeyBytesMax) assert(false, `row key must be 1..${partitionKeyBytesMax} bytes`);
  const start = writer.length;
  writer.u8(partitionRowVersion);
  writer.u8(row.kind === 'tombstone' ? 1 : 0);
  writer.u16(row.key.length);
  writer.bytes(row.key);
  writer.u64(row.sequence);
  writer.u64(row.lastModifiedMs);
  if (row.kind === 'tombstone') {
    writer.u8(0);
    writer.u16(0);
  } else {
    assert(row.etag.length >= 1 && row.etag.length <= partitionEtagBytesMax && etagPattern.test(row.etag), 'etag must be 1..64 printable ASCII');
    writer.u8(row.etag.length);
    writer.utf8(row.etag, row.etag.length);
    if (row.columns.length > partitionColumnsMax) assert(false, `at most ${partitionColumnsMax} columns`);
    writer.u16(row.columns.length);
    assertDistinctNames(row.columns);
    for (const column of row.columns) encodeColumn(writer, column);
  }
  if (writer.length - start > partitionRowBytesMax) assert(false, `row of ${writer.length - start} bytes exceeds ${partitionRowBytesMax}`);
}

/** Below this many columns names are compared pairwise (no Set per row encoded). */
const pairwiseNamesMax = 24;

function assertDistinctNames(columns: readonly Column[]): void {
  if (columns.length > pairwiseNamesMax) {
    const names = new Set<string>();
    for (const column of columns) {
      if (names.has(column.name)) assert(false, `duplicate column ${column.name}`);
      names.add(column.name);
    }
    return;
  }
  for (let index = 1; index < columns.length; index++) {
    const name = columns[index]?.name;
    for (let other = 0; other < index; other++) if (columns[other]?.name === name) assert(false, `duplicate column ${name}`);
  }
}

function encodeColumn(writer: ByteWriter, column: Column): void {
  const nameBytes = utf8Bytes(column.name);
  // As many bytes as UTF-16 units: ASCII, so well-formed (no isWellFormed scan).
  assert((nameBytes === column.name.length || column.name.isWellFormed()) && nameBytes >= 1 && nameBytes <= 255, 'column name must be 1..255 bytes of UTF-8');
  writer.u8(nameBytes);
  writer.utf8(column.name, nameBytes);
  const value = column.value;
  writer.u8(typeCodes[value.kind]);
  switch (value.kind) {
    case 'null': return;
    case 'bool': writer.u8(value.value ? 1 : 0); return;
    case 'int64':
      if (value.value < -safeBigIntMax || value.value > safeBigIntMax) assert(BigInt.asIntN(64, value.value) === value.value, 'int64 column value must fit in signed 64 bits');
      writer.i64(value.value);
      return;
    case 'float64': writer.f64(value.value); return;
    case 'string': {
      const byteLength = utf8Bytes(value.value);
      assert(byteLength === value.value.length || value.value.isWellFormed(), 'string column must be well-formed UTF-16');
      writer.u32(byteLength);
      writer.utf8(value.value, byteLength);
      return;
    }
    case 'bytes': writer.u32(value.value.length); writer.bytes(value.value); return;
    case 'dataRefs':
      assert(value.value.length <= dataRefsMax, `at most ${dataRefsMax} data refs`);
      writer.u32(value.value.length);
      for (const ref of value.value) {
        writer.u64(ref.extentId);
        writer.u64(ref.offset);
        writer.u64(ref.length);
      }
  }
}

// ---- decoding ---------------------------------------------------------------------------------

/** A bounded cursor over bytes: every read checks what remains and throws wire.corrupt past it. */
export class ByteReader {
  private readonly buffer: Buffer;
  private position = 0;
  private readonly what: string;

  constructor(bytes: Uint8Array, what: string) {
    // A Buffer is used as it is: no view object per reader (one per row decoded).
    this.buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.what = what;
  }

  /** The bytes read (offsets such as skip() returns are into these). */
  get source(): Buffer {
    return this.buffer;
  }

  get remaining(): number {
    return this.buffer.length - this.position;
  }

  get offset(): number {
    return this.position;
  }

  // Fixed-width fields are read in place (no view per field: decoding a block of rows made one
  // Buffer object per byte field read, and that allocation was the hottest part of a listing).
  // Bytes are indexed directly: advance() has checked the range, and Buffer's readUInt*BE
  // would validate the offset and the range again on every field.
  u8(): number {
    return this.buffer[this.advance(1)] ?? 0;
  }

  u16(): number {
    const at = this.advance(2);
    const bytes = this.buffer;
    return ((bytes[at] ?? 0) << 8) | (bytes[at + 1] ?? 0);
  }

  u32(): number {
    return uint32At(this.buffer, this.advance(4));
  }

  u64(): number {
    const at = this.advance(8);
    const high = uint32At(this.buffer, at);
    if (high > 0x1f_ffff) throw this.corrupt('u64 field is not a safe integer');
    return high * 0x1_0000_0000 + uint32At(this.buffer, at + 4);
  }

  /** A signed 64-bit value: made from one number when it is a safe integer (most are), else read as a bigint. */
  i64(): bigint {
    const at = this.advance(8);
    const high = this.buffer.readInt32BE(at);
    if (high >= -0x20_0000 && high < 0x20_0000) return BigInt(high * 0x1_0000_0000 + uint32At(this.buffer, at + 4));
    return this.buffer.readBigInt64BE(at);
  }

  f64(): number {
    return this.buffer.readDoubleBE(this.advance(8));
  }

  /** Checks that `length` bytes remain, moves past them, and returns where they start. */
  private advance(length: number): number {
    if (length > this.remaining) throw this.corrupt(`needs ${length} bytes, ${this.remaining} remain`);
    const at = this.position;
    this.position += length;
    return at;
  }

  /**
   * A UTF-8 string of `length` bytes (checked against its limit by the caller); wire.corrupt if
   * malformed. With a `slot`, the string decoded there last time is reused when the bytes are the
   * same (column names and many values repeat from row to row: no new string, no decoder call).
   */
  text(length: number, slot: TextSlot | null): string {
    const start = this.advance(length);
    const buffer = this.buffer;
    if (slot !== null && slot.bytes.length === length && bytesEqual(buffer, start, slot.bytes)) return slot.text;
    const text = this.decodeText(start, length);
    if (slot !== null && length <= textSlotBytesMax) {
      slot.bytes = Buffer.from(buffer.subarray(start, start + length));
      slot.text = text;
    }
    return text;
  }

  private decodeText(start: number, length: number): string {
    const buffer = this.buffer;
    let ascii = true;
    for (let at = start; at < start + length && ascii; at++) ascii = (buffer[at] ?? 0) < 0x80;
    // ASCII is valid UTF-8 and decodes byte for byte: no decoder needed.
    if (ascii) return buffer.toString('latin1', start, start + length);
    try {
      return utf8.decode(buffer.subarray(start, start + length));
    } catch {
      throw this.corrupt('malformed UTF-8');
    }
  }

  /** Moves past `length` bytes (checked against what remains); returns where they start. */
  skip(length: number): number {
    return this.advance(length);
  }

  /** Moves back to `offset` (a position already read past). */
  rewind(offset: number): void {
    assert(offset >= 0 && offset <= this.position, 'rewind to a position already read');
    this.position = offset;
  }

  /** `length` bytes as a latin1 string (no view made). */
  latin1(length: number): string {
    const at = this.advance(length);
    return this.buffer.toString('latin1', at, at + length);
  }

  /** `length` bytes (a view, not a copy); length must already be checked against its limit. */
  take(length: number): Buffer {
    if (length > this.remaining) throw this.corrupt(`needs ${length} bytes, ${this.remaining} remain`);
    const view = this.buffer.subarray(this.position, this.position + length);
    this.position += length;
    return view;
  }

  /** A length field, checked against `max` (wire.too_large) and the bytes remaining. */
  length(value: number, max: number, field: string): number {
    if (value > max) {
      throw new StorageError('wire.too_large', `${this.what}: ${field} ${value} exceeds ${max}`, { context: { field, value, max } });
    }
    return value;
  }

  end(): void {
    if (this.remaining !== 0) throw this.corrupt(`${this.remaining} trailing bytes`);
  }

  corrupt(reason: string): StorageError {
    return new StorageError('wire.corrupt', `${this.what}: ${reason}`, { context: { reason, position: this.position } });
  }
}

/** Big-endian u32 at `at` (the caller checked the range). */
function uint32At(bytes: Buffer, at: number): number {
  return (bytes[at] ?? 0) * 0x100_0000 + (((bytes[at + 1] ?? 0) << 16) | ((bytes[at + 2] ?? 0) << 8) | (bytes[at + 3] ?? 0));
}

/**
 * The key of the encoded row at body[start, start + length) as a latin1 string (no view made),
 * checking only the fields before it (version, key length).
 */
export function encodedRowKeyLatin1(body: Buffer, start: number, length: number): string {
  const version = length < 1 ? -1 : (body[start] ?? 0);
  if (version !== partitionRowVersion) {
    if (version === -1) throw new StorageError('wire.corrupt', 'partition row: empty row', { context: { reason: 'empty row', position: 0 } });
    throw new StorageError('wire.unsupported_version', `partition row version ${version} is not supported`, { context: { version } });
  }
  if (length < 4) throw new StorageError('wire.corrupt', `partition row: needs 4 bytes, ${length} remain`, { context: { reason: 'truncated', position: 1 } });
  const keyBytes = (((body[start + 2] ?? 0) << 8) | (body[start + 3] ?? 0));
  if (keyBytes > partitionKeyBytesMax) {
    throw new StorageError('wire.too_large', `partition row: keyBytes ${keyBytes} exceeds ${partitionKeyBytesMax}`, { context: { field: 'keyBytes', value: keyBytes, max: partitionKeyBytesMax } });
  }
  if (keyBytes === 0 || 4 + keyBytes > length) throw new StorageError('wire.corrupt', `partition row: key of ${keyBytes} bytes does not fit`, { context: { reason: 'key', position: 4 } });
  return body.toString('latin1', start + 4, start + 4 + keyBytes);
}

/** True if an encoded row (checked when it was read: a block's CRC and framing) is a tombstone. */
export function encodedRowIsTombstone(bytes: Uint8Array): boolean {
  return ((bytes[1] ?? 0) & 1) === 1;
}

/**
 * Decodes exactly one row occupying all of `bytes`. Byte values are copies (a row outlives the
 * buffer it came in), except those of at least `viewBytesMin` bytes, which are views of `bytes`:
 * for a caller whose buffer holds little else (a transact RPC body that is mostly one inline
 * body), so keeping the view keeps little more than the value itself.
 */
export function decodeRow(bytes: Uint8Array, viewBytesMin = Number.POSITIVE_INFINITY): RowRecord {
  const head = decodeHead(bytes, (reader, length) => Buffer.from(reader.take(length)));
  if (head.kind === 'tombstone') return head.row;
  const { reader, key, sequence, lastModifiedMs, etag, columnCount } = head;
  const columns = decodeColumns(reader, columnCount, false, viewBytesMin);
  reader.end();
  return { kind: 'live', key, sequence, lastModifiedMs, etag, columns };
}

/**
 * Decodes one row occupying all of `bytes` as decodeRow does, but a live row's columns are
 * materialised (Column objects, strings, bigints, byte copies) only when `columns` is first read,
 * then kept. Every structural check decodeRow makes is made now, without allocating (checkColumns),
 * so a malformed row still throws here and never yields a partly decoded row. The row keeps
 * `bytes` (no copy): its key and byte values are views into them, so it pins the buffer they
 * lie in (a scan page's body) for as long as it lives; callers hold such rows for one request.
 * For callers that may read only a row's key and engine fields (a listing page, docs/formats/partition-rows.md).
 */
export function decodeRowDeferred(bytes: Uint8Array): RowRecord {
  const quick = Buffer.isBuffer(bytes) ? quickDeferredRow(bytes) : null;
  if (quick !== null) return quick;
  const head = decodeHead(bytes, (reader, length) => reader.take(length));
  if (head.kind === 'tombstone') return head.row;
  const { reader, key, sequence, lastModifiedMs, etag, columnCount } = head;
  const columnsAt = reader.offset;
  checkColumns(reader, reader.source, columnCount);
  reader.end();
  return new DeferredLiveRow({ key, sequence, lastModifiedMs, etag }, reader.source, columnsAt, columnCount);
}

/**
 * decodeRowDeferred's common case checked in one pass over raw offsets (no reader, no exception
 * path): a live row of at most checkedNamesMax columns. Anything else, or anything that does not
 * check, gives null and goes to the reader-based path, which decides and names the error: this
 * accepts only rows that path accepts (each test below is one it makes, or a stricter one), and
 * builds the same row. Exported for the property test that holds it to that.
 */
export function quickDeferredRow(bytes: Buffer): RowRecord | null {
  return quickDeferredRowAt(bytes, 0, bytes.length);
}

/**
 * quickDeferredRow of the row at body[start, end) without a view of it (a scan page decodes
 * 5,000 rows: one Buffer object fewer per row); the row keeps `body`.
 */
export function quickDeferredRowAt(body: Buffer, start: number, end: number): RowRecord | null {
  if (end - start > partitionRowBytesMax || end - start < 4 || body[start] !== partitionRowVersion || body[start + 1] !== 0) return null;
  const keyBytes = ((body[start + 2] ?? 0) << 8) | (body[start + 3] ?? 0);
  const fieldsAt = start + 4 + keyBytes;
  if (keyBytes === 0 || keyBytes > partitionKeyBytesMax || fieldsAt + 19 > end) return null;
  const sequence = safeU64At(body, fieldsAt);
  const lastModifiedMs = safeU64At(body, fieldsAt + 8);
  const etagBytes = body[fieldsAt + 16] ?? 0;
  const etagAt = fieldsAt + 17;
  const columnsAt = etagAt + etagBytes + 2;
  if (sequence < 0 || lastModifiedMs < 0 || etagBytes === 0 || etagBytes > partitionEtagBytesMax || columnsAt > end) return null;
  for (let at = etagAt; at < etagAt + etagBytes; at++) {
    const byte = body[at] ?? 0;
    if (byte < 0x21 || byte > 0x7e) return null;
  }
  const columnCount = ((body[columnsAt - 2] ?? 0) << 8) | (body[columnsAt - 1] ?? 0);
  if (columnCount > checkedNamesMax || columnsEnd(body, columnsAt, columnCount, end) !== end) return null;
  const head = { key: body.subarray(start + 4, fieldsAt), sequence, lastModifiedMs, etag: body.toString('latin1', etagAt, etagAt + etagBytes) };
  return new DeferredLiveRow(head, body, columnsAt, columnCount);
}

/** A u64 at `at` (in range: the caller checked) if it is a safe integer, else -1. */
function safeU64At(bytes: Buffer, at: number): number {
  const high = uint32At(bytes, at);
  return high > 0x1f_ffff ? -1 : high * 0x1_0000_0000 + uint32At(bytes, at + 4);
}

/**
 * Where `count` columns starting at `start` end (≤ `end`) if every one checks as checkColumns would check it
 * (names 1..255 bytes, UTF-8, unique; known types; values within the bytes and their limits;
 * bools 0 or 1; safe-integer data refs), else -1. count ≤ checkedNamesMax.
 */
function columnsEnd(bytes: Buffer, start: number, count: number, end: number): number {
  let at = start;
  for (let index = 0; index < count; index++) {
    const nameBytes = bytes[at] ?? 0;
    const nameAt = at + 1;
    at = nameAt + nameBytes;
    if (nameBytes === 0 || at >= end || !isUtf8At(bytes, nameAt, nameBytes)) return -1;
    for (let earlier = 0; earlier < index; earlier++) {
      if (checkedNames[earlier * 2 + 1] === nameBytes && rangesEqual(bytes, checkedNames[earlier * 2] ?? 0, nameAt, nameBytes)) return -1;
    }
    checkedNames[index * 2] = nameAt;
    checkedNames[index * 2 + 1] = nameBytes;
    at = valueEnd(bytes, at + 1, bytes[at] ?? 0xff, end);
    if (at < 0) return -1;
  }
  return at;
}

/** Where a value of type `code` starting at `at` ends if it checks (within `end`), else -1. */
function valueEnd(bytes: Buffer, at: number, code: number, end: number): number {
  switch (code) {
    case 0: return at;
    case 1: return at < end && (bytes[at] ?? 2) <= 1 ? at + 1 : -1;
    case 2:
    case 3: return at + 8 <= end ? at + 8 : -1;
    case 4:
    case 5: {
      if (at + 4 > end) return -1;
      const length = uint32At(bytes, at);
      const valueAt = at + 4;
      if (length > partitionRowBytesMax || valueAt + length > end) return -1;
      return code === 5 || isUtf8At(bytes, valueAt, length) ? valueAt + length : -1;
    }
    case 6: {
      if (at + 4 > end) return -1;
      const refs = uint32At(bytes, at);
      const refsAt = at + 4;
      if (refs > dataRefsMax || refsAt + refs * 24 > end) return -1;
      for (let field = refsAt; field < refsAt + refs * 24; field += 8) if (uint32At(bytes, field) > 0x1f_ffff) return -1;
      return refsAt + refs * 24;
    }
    default: return -1;
  }
}

class DeferredLiveRow {
  readonly kind = 'live';
  readonly key: Buffer;
  readonly sequence: number;
  readonly lastModifiedMs: number;
  readonly etag: string;
  #bytes: Buffer | null;
  readonly #columnsAt: number;
  readonly #columnCount: number;
  #columns: readonly Column[] | null = null;

  constructor(head: { key: Buffer; sequence: number; lastModifiedMs: number; etag: string }, bytes: Buffer, columnsAt: number, columnCount: number) {
    this.key = head.key;
    this.sequence = head.sequence;
    this.lastModifiedMs = head.lastModifiedMs;
    this.etag = head.etag;
    this.#bytes = bytes;
    this.#columnsAt = columnsAt;
    this.#columnCount = columnCount;
  }

  get columns(): readonly Column[] {
    if (this.#columns === null) {
      const bytes = this.#bytes;
      assert(bytes !== null, 'columns decoded once');
      const reader = new ByteReader(bytes, 'partition row');
      reader.skip(this.#columnsAt);
      this.#columns = decodeColumns(reader, this.#columnCount, true);
      this.#bytes = null;
    }
    return this.#columns;
  }
}

type RowHead =
  | { readonly kind: 'tombstone'; readonly row: RowRecord }
  | { readonly kind: 'live'; readonly reader: ByteReader; readonly key: Buffer; readonly sequence: number; readonly lastModifiedMs: number; readonly etag: string; readonly columnCount: number };

/** Version, flags, key, engine fields and column count, checked; a tombstone is decoded whole. */
function decodeHead(bytes: Uint8Array, keyOf: (reader: ByteReader, length: number) => Buffer): RowHead {
  if (bytes.length > partitionRowBytesMax) {
    throw new StorageError('wire.too_large', `row of ${bytes.length} bytes exceeds ${partitionRowBytesMax}`);
  }
  const reader = new ByteReader(bytes, 'partition row');
  const version = reader.u8();
  if (version !== partitionRowVersion) {
    throw new StorageError('wire.unsupported_version', `partition row version ${version} is not supported`, { context: { version } });
  }
  const flags = reader.u8();
  if ((flags & ~1) !== 0) throw reader.corrupt('reserved flag bits set');
  const keyBytes = reader.length(reader.u16(), partitionKeyBytesMax, 'keyBytes');
  if (keyBytes === 0) throw reader.corrupt('empty key');
  const key = keyOf(reader, keyBytes);
  const sequence = reader.u64();
  const lastModifiedMs = reader.u64();
  const etagBytes = reader.length(reader.u8(), partitionEtagBytesMax, 'etagBytes');
  const etag = reader.latin1(etagBytes);
  const columnCount = reader.length(reader.u16(), partitionColumnsMax, 'columnCount');
  if ((flags & 1) === 1) {
    if (etagBytes !== 0 || columnCount !== 0) throw reader.corrupt('tombstone with an etag or columns');
    reader.end();
    return { kind: 'tombstone', row: { kind: 'tombstone', key, sequence, lastModifiedMs } };
  }
  if (!etagPattern.test(etag)) throw reader.corrupt('etag is not 1..64 printable ASCII');
  return { kind: 'live', reader, key, sequence, lastModifiedMs, etag, columnCount };
}

/** Column names held for the duplicate check of checkColumns: (start, length) pairs. */
const checkedNamesMax = 16;
const checkedNames = new Int32Array(checkedNamesMax * 2);

/**
 * Checks `count` columns as decodeColumns would (name lengths, UTF-8, unique names, types, value
 * lengths and limits, bool values, safe-integer data refs) without materialising any value.
 */
function checkColumns(reader: ByteReader, bytes: Buffer, count: number): void {
  if (count > checkedNamesMax) {
    // Rare (blob rows have ~8-20 columns): the allocating decoder checks the same things.
    decodeColumns(reader, count);
    return;
  }
  for (let index = 0; index < count; index++) {
    const nameBytes = reader.u8();
    if (nameBytes === 0) throw reader.corrupt('empty column name');
    const nameAt = reader.skip(nameBytes);
    if (!isUtf8At(bytes, nameAt, nameBytes)) throw reader.corrupt('malformed UTF-8');
    for (let earlier = 0; earlier < index; earlier++) {
      const earlierAt = checkedNames[earlier * 2] ?? 0;
      const earlierBytes = checkedNames[earlier * 2 + 1] ?? 0;
      if (earlierBytes === nameBytes && rangesEqual(bytes, earlierAt, nameAt, nameBytes)) {
        throw reader.corrupt(`duplicate column ${bytes.toString('utf8', nameAt, nameAt + nameBytes)}`);
      }
    }
    checkedNames[index * 2] = nameAt;
    checkedNames[index * 2 + 1] = nameBytes;
    checkValue(reader, bytes);
  }
}

function checkValue(reader: ByteReader, bytes: Buffer): void {
  const code = reader.u8();
  const kind = typeNames[code];
  if (kind === undefined) throw reader.corrupt(`unknown column type ${code}`);
  switch (kind) {
    case 'null': return;
    case 'bool':
      if (reader.u8() > 1) throw reader.corrupt('bool is not 0 or 1');
      return;
    case 'int64':
    case 'float64':
      reader.skip(8);
      return;
    case 'string': {
      const length = reader.length(reader.u32(), partitionRowBytesMax, 'string bytes');
      if (!isUtf8At(bytes, reader.skip(length), length)) throw reader.corrupt('malformed UTF-8');
      return;
    }
    case 'bytes':
      reader.skip(reader.length(reader.u32(), partitionRowBytesMax, 'bytes length'));
      return;
    case 'dataRefs': {
      const count = reader.length(reader.u32(), dataRefsMax, 'dataRefs count');
      if (count * 24 > reader.remaining) throw reader.corrupt(`dataRefs count ${count} exceeds the bytes remaining`);
      for (let index = 0; index < count * 3; index++) reader.u64();
    }
  }
}

/** True if `length` bytes at `start` are well-formed UTF-8 (ASCII checked in place, the rest natively). */
function isUtf8At(bytes: Buffer, start: number, length: number): boolean {
  for (let at = start; at < start + length; at++) {
    if ((bytes[at] ?? 0) >= 0x80) return isUtf8(bytes.subarray(start, start + length));
  }
  return true;
}

/**
 * Columns as decodeRow returns them. `checked`: checkColumns already passed these bytes, so names
 * are known unique, and byte values may be views (a deferred row holds its bytes anyway).
 */
function decodeColumns(reader: ByteReader, count: number, checked = false, viewBytesMin = Number.POSITIVE_INFINITY): Column[] {
  const columns: Column[] = [];
  // Few columns (the usual case): a linear duplicate check, no Set per row.
  const names = checked ? null : count > 16 ? new Set<string>() : null;
  for (let index = 0; index < count; index++) {
    const nameBytes = reader.u8();
    if (nameBytes === 0) throw reader.corrupt('empty column name');
    const name = reader.text(nameBytes, textSlot(nameSlots, index));
    if (!checked && (names === null ? columns.some((column) => column.name === name) : names.has(name))) throw reader.corrupt(`duplicate column ${name}`);
    names?.add(name);
    columns.push({ name, value: decodeValue(reader, index, checked ? 0 : viewBytesMin) });
  }
  return columns;
}

/** The last text decoded at one place of a row (a column's name or string value), for reuse. */
export interface TextSlot {
  bytes: Buffer;
  text: string;
}

/** Texts up to this size are remembered, in the first textSlotsMax columns of a row: bounded memory. */
const textSlotBytesMax = 64;
const textSlotsMax = 64;
const nameSlots: TextSlot[] = [];
const valueSlots: TextSlot[] = [];

function textSlot(slots: TextSlot[], index: number): TextSlot | null {
  if (index >= textSlotsMax) return null;
  let slot = slots[index];
  if (slot === undefined) {
    slot = { bytes: Buffer.alloc(0), text: '' };
    slots[index] = slot;
  }
  return slot;
}

/** Compares two ranges of one buffer in JavaScript (names are short: a native call costs more). */
function rangesEqual(bytes: Buffer, left: number, right: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (bytes[left + i] !== bytes[right + i]) return false;
  return true;
}

function bytesEqual(buffer: Buffer, start: number, expected: Buffer): boolean {
  for (let i = 0; i < expected.length; i++) if (buffer[start + i] !== expected[i]) return false;
  return true;
}

/** Byte values of at least `viewBytesMin` bytes are views of the reader's buffer, others copies. */
function decodeValue(reader: ByteReader, columnIndex: number, viewBytesMin: number): ColumnValue {
  const code = reader.u8();
  const kind = typeNames[code];
  if (kind === undefined) throw reader.corrupt(`unknown column type ${code}`);
  switch (kind) {
    case 'null': return { kind };
    case 'bool': {
      const value = reader.u8();
      if (value > 1) throw reader.corrupt('bool is not 0 or 1');
      return { kind, value: value === 1 };
    }
    case 'int64': return { kind, value: reader.i64() };
    case 'float64': return { kind, value: reader.f64() };
    case 'string': return { kind, value: reader.text(reader.length(reader.u32(), partitionRowBytesMax, 'string bytes'), textSlot(valueSlots, columnIndex)) };
    case 'bytes': {
      const value = reader.take(reader.length(reader.u32(), partitionRowBytesMax, 'bytes length'));
      return { kind, value: value.length >= viewBytesMin ? value : Buffer.from(value) };
    }
    case 'dataRefs': {
      const count = reader.length(reader.u32(), dataRefsMax, 'dataRefs count');
      if (count * 24 > reader.remaining) throw reader.corrupt(`dataRefs count ${count} exceeds the bytes remaining`);
      const refs: DataRef[] = [];
      for (let index = 0; index < count; index++) refs.push({ extentId: reader.u64(), offset: reader.u64(), length: reader.u64() });
      return { kind, value: refs };
    }
  }
}

/** Unsigned byte order of keys (memcmp), the order of every partition structure. */
export function compareKeys(left: Uint8Array, right: Uint8Array): number {
  return Buffer.compare(left, right);
}
