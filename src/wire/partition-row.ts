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

// ---- encoding ---------------------------------------------------------------------------------

/** Appends big-endian fields to a list of buffers; one concat at the end. */
export class ByteWriter {
  private readonly parts: Buffer[] = [];
  private total = 0;

  get length(): number {
    return this.total;
  }

  bytes(data: Uint8Array): void {
    this.parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.total += data.byteLength;
  }

  u8(value: number): void {
    this.fixed(1, (b) => b.writeUInt8(value, 0));
  }

  u16(value: number): void {
    this.fixed(2, (b) => b.writeUInt16BE(value, 0));
  }

  u32(value: number): void {
    this.fixed(4, (b) => b.writeUInt32BE(value, 0));
  }

  u64(value: number): void {
    assertByteCount(value, 'u64 field');
    this.fixed(8, (b) => b.writeBigUInt64BE(BigInt(value), 0));
  }

  i64(value: bigint): void {
    this.fixed(8, (b) => b.writeBigInt64BE(value, 0));
  }

  f64(value: number): void {
    this.fixed(8, (b) => {
      if (Number.isNaN(value)) b.writeBigUInt64BE(0x7ff8000000000000n, 0);
      else b.writeDoubleBE(value, 0);
    });
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.total);
  }

  private fixed(size: number, write: (buffer: Buffer) => void): void {
    const buffer = Buffer.alloc(size);
    write(buffer);
    this.parts.push(buffer);
    this.total += size;
  }
}

/** Encodes one row; asserts the caller respected every limit (the partition checks before). */
export function encodeRow(row: RowRecord): Buffer {
  assert(row.key.length >= 1 && row.key.length <= partitionKeyBytesMax, `row key must be 1..${partitionKeyBytesMax} bytes`);
  const writer = new ByteWriter();
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
    writer.bytes(Buffer.from(row.etag, 'latin1'));
    assert(row.columns.length <= partitionColumnsMax, `at most ${partitionColumnsMax} columns`);
    writer.u16(row.columns.length);
    const names = new Set<string>();
    for (const column of row.columns) {
      assert(!names.has(column.name), `duplicate column ${column.name}`);
      names.add(column.name);
      encodeColumn(writer, column);
    }
  }
  assert(writer.length <= partitionRowBytesMax, `row of ${writer.length} bytes exceeds ${partitionRowBytesMax}`);
  return writer.finish();
}

function encodeColumn(writer: ByteWriter, column: Column): void {
  const name = Buffer.from(column.name, 'utf8');
  assert(column.name.isWellFormed() && name.length >= 1 && name.length <= 255, 'column name must be 1..255 bytes of UTF-8');
  writer.u8(name.length);
  writer.bytes(name);
  const value = column.value;
  writer.u8(typeCodes[value.kind]);
  switch (value.kind) {
    case 'null': return;
    case 'bool': writer.u8(value.value ? 1 : 0); return;
    case 'int64':
      assert(BigInt.asIntN(64, value.value) === value.value, 'int64 column value must fit in signed 64 bits');
      writer.i64(value.value);
      return;
    case 'float64': writer.f64(value.value); return;
    case 'string': {
      assert(value.value.isWellFormed(), 'string column must be well-formed UTF-16');
      const bytes = Buffer.from(value.value, 'utf8');
      writer.u32(bytes.length);
      writer.bytes(bytes);
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
    this.buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.what = what;
  }

  get remaining(): number {
    return this.buffer.length - this.position;
  }

  get offset(): number {
    return this.position;
  }

  u8(): number {
    return this.take(1).readUInt8(0);
  }

  u16(): number {
    return this.take(2).readUInt16BE(0);
  }

  u32(): number {
    return this.take(4).readUInt32BE(0);
  }

  u64(): number {
    const value = this.take(8).readBigUInt64BE(0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.corrupt('u64 field is not a safe integer');
    return Number(value);
  }

  i64(): bigint {
    return this.take(8).readBigInt64BE(0);
  }

  f64(): number {
    return this.take(8).readDoubleBE(0);
  }

  /** `length` bytes (a view, not a copy); length must already be checked against its limit. */
  take(length: number): Buffer {
    if (length > this.remaining) throw this.corrupt(`needs ${length} bytes, ${this.remaining} remain`);
    const view = this.buffer.subarray(this.position, this.position + length);
    this.position += length;
    return view;
  }

  /** A length field, checked against `max` (wire.too_large) and the bytes remaining. */
  length(read: () => number, max: number, field: string): number {
    const value = read();
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

/** Decodes exactly one row occupying all of `bytes`. */
export function decodeRow(bytes: Uint8Array): RowRecord {
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
  const keyBytes = reader.length(() => reader.u16(), partitionKeyBytesMax, 'keyBytes');
  if (keyBytes === 0) throw reader.corrupt('empty key');
  const key = Buffer.from(reader.take(keyBytes));
  const sequence = reader.u64();
  const lastModifiedMs = reader.u64();
  const etagBytes = reader.length(() => reader.u8(), partitionEtagBytesMax, 'etagBytes');
  const etag = reader.take(etagBytes).toString('latin1');
  const columnCount = reader.length(() => reader.u16(), partitionColumnsMax, 'columnCount');
  if ((flags & 1) === 1) {
    if (etagBytes !== 0 || columnCount !== 0) throw reader.corrupt('tombstone with an etag or columns');
    reader.end();
    return { kind: 'tombstone', key, sequence, lastModifiedMs };
  }
  if (!etagPattern.test(etag)) throw reader.corrupt('etag is not 1..64 printable ASCII');
  const columns = decodeColumns(reader, columnCount);
  reader.end();
  return { kind: 'live', key, sequence, lastModifiedMs, etag, columns };
}

function decodeColumns(reader: ByteReader, count: number): Column[] {
  const columns: Column[] = [];
  const names = new Set<string>();
  for (let index = 0; index < count; index++) {
    const nameBytes = reader.u8();
    if (nameBytes === 0) throw reader.corrupt('empty column name');
    const name = decodeUtf8(reader, reader.take(nameBytes));
    if (names.has(name)) throw reader.corrupt(`duplicate column ${name}`);
    names.add(name);
    columns.push({ name, value: decodeValue(reader) });
  }
  return columns;
}

function decodeValue(reader: ByteReader): ColumnValue {
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
    case 'string': return { kind, value: decodeUtf8(reader, reader.take(reader.length(() => reader.u32(), partitionRowBytesMax, 'string bytes'))) };
    case 'bytes': return { kind, value: Buffer.from(reader.take(reader.length(() => reader.u32(), partitionRowBytesMax, 'bytes length'))) };
    case 'dataRefs': {
      const count = reader.length(() => reader.u32(), dataRefsMax, 'dataRefs count');
      if (count * 24 > reader.remaining) throw reader.corrupt(`dataRefs count ${count} exceeds the bytes remaining`);
      const refs: DataRef[] = [];
      for (let index = 0; index < count; index++) refs.push({ extentId: reader.u64(), offset: reader.u64(), length: reader.u64() });
      return { kind, value: refs };
    }
  }
}

function decodeUtf8(reader: ByteReader, bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw reader.corrupt('malformed UTF-8');
  }
}

/** Unsigned byte order of keys (memcmp), the order of every partition structure. */
export function compareKeys(left: Uint8Array, right: Uint8Array): number {
  return Buffer.compare(left, right);
}
