// The partition server's RPC messages (docs/partition-protocol.md, "Server RPCs"): zod schemas
// for every request header (parsed at the edge), and the body codec for rows and scan items,
// shared by PartitionServer and PartitionClient.
//
// Bodies reuse the row codec (docs/formats/partition-rows.md) framed as u32 length + row: a put
// is sent as a live row whose engine fields (sequence, time, ETag) are placeholders the server
// ignores; a delete as a tombstone. Scan items are u8 kind (1 row, 2 prefix) + u32 length + bytes.
//
// Invariants: every length read from a body is checked against what remains and against its
// limit before use; a body that does not frame is config.invalid (the caller's bug or an attack).
import { z } from 'zod';
import { partitionBatchMutationsMax, partitionGetManyKeysMax, partitionKeyBytesMax, partitionRowBytesMax, scanLimitMax } from '../constants.ts';
import { StorageError } from '../util/errors.ts';
import { isCount, isText, plainObject, withFastPath } from '../util/fast-parse.ts';
import { decodeRow, decodeRowDeferred, encodeFramedRows, encodeRow, quickDeferredRowAt } from '../wire/partition-row.ts';
import type { Column, RowRecord } from '../wire/partition-row.ts';
import type { EncodedScanItem, LiveRow, ScanItem } from './partition-scan.ts';

const base64KeyLengthMax = Math.ceil(partitionKeyBytesMax / 3) * 4 + 4;
const base64Key = z.string().min(1).max(base64KeyLengthMax);
/** The routing key every partition.* request header carries (the server routes by it before the
 * method's own schema is parsed, by performPartitionRequest). */
export const routingKeyHeader = withFastPath(z.object({ key: base64Key }), fastKeyHeader);
const getManyKeysLengthMax = partitionGetManyKeysMax * (base64KeyLengthMax + 1);

/** The routing key alone (fast-parse.ts: the same value z.object({ key: base64Key }) gives). */
function fastKeyHeader(value: unknown): { key: string } | undefined {
  const key = plainObject(value)?.['key'];
  return isText(key, 1, base64KeyLengthMax) ? { key } : undefined;
}

type TransactOp = { kind: 'put' | 'delete' | 'check'; ifMatch?: string; ifNoneMatch?: '*' };

function fastTransactHeader(value: unknown): { key: string; ops: TransactOp[] } | undefined {
  const header = fastKeyHeader(value);
  const list = plainObject(value)?.['ops'];
  if (header === undefined || !Array.isArray(list) || list.length < 1 || list.length > partitionBatchMutationsMax) return undefined;
  const ops: TransactOp[] = [];
  for (const item of list as unknown[]) {
    const op = plainObject(item);
    const kind = op?.['kind'];
    const ifMatch = op?.['ifMatch'];
    const ifNoneMatch = op?.['ifNoneMatch'];
    if ((kind !== 'put' && kind !== 'delete' && kind !== 'check') || (ifMatch !== undefined && !isText(ifMatch, 1, 128)) || (ifNoneMatch !== undefined && ifNoneMatch !== '*')) return undefined;
    // An optional field absent stays absent (a present undefined never comes out of a JSON header).
    if (op !== undefined && ((Object.hasOwn(op, 'ifMatch') && ifMatch === undefined) || (Object.hasOwn(op, 'ifNoneMatch') && ifNoneMatch === undefined))) return undefined;
    const parsed: TransactOp = { kind };
    if (ifMatch !== undefined) parsed.ifMatch = ifMatch;
    if (ifNoneMatch !== undefined) parsed.ifNoneMatch = ifNoneMatch;
    ops.push(parsed);
  }
  return { key: header.key, ops };
}

const base64Bound = z.string().max(Math.ceil(partitionKeyBytesMax / 3) * 4 + 4);
const etag = z.string().min(1).max(128);
const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const partitionRequests = {
  'partition.get': withFastPath(z.object({ key: base64Key }), fastKeyHeader),
  // Flat header values (strings), so an in-process call copies the header without a JSON round trip.
  'partition.getMany': withFastPath(z.object({ key: base64Key, keys: z.string().min(1).max(getManyKeysLengthMax) }), (value) => {
    const header = fastKeyHeader(value);
    const keys = plainObject(value)?.['keys'];
    return header !== undefined && isText(keys, 1, getManyKeysLengthMax) ? { key: header.key, keys } : undefined;
  }),
  'partition.put': z.object({ key: base64Key, ifMatch: etag.optional(), ifNoneMatch: z.literal('*').optional() }),
  'partition.delete': z.object({ key: base64Key, ifMatch: etag.optional() }),
  'partition.transact': withFastPath(z.object({
    key: base64Key,
    ops: z.array(z.object({ kind: z.enum(['put', 'delete', 'check']), ifMatch: etag.optional(), ifNoneMatch: z.literal('*').optional() })).min(1).max(partitionBatchMutationsMax),
  }), fastTransactHeader),
  'partition.scan': z.object({
    key: base64Key,
    start: base64Bound.optional(),
    end: base64Bound.optional(),
    prefix: base64Bound.optional(),
    delimiter: base64Bound.optional(),
    limit: z.number().int().min(1).max(scanLimitMax),
    continuation: z.string().min(1).max(16_384).optional(),
  }),
  'partition.appendData': z.object({ key: base64Key }),
  'partition.readData': z.object({ key: base64Key, extentId: id, offset: id, length: id }),
  'partition.split': z.object({ partitionId: id, ownerEpoch: id, childIds: z.tuple([id, id]), reason: z.enum(['size', 'load']).optional() }),
  'partition.merge': z.object({ left: z.object({ partitionId: id, ownerEpoch: id }), right: z.object({ partitionId: id, ownerEpoch: id }), mergedId: id }),
  'partition.release': z.object({ partitionId: id, ownerEpoch: id }),
  'server.status': z.object({}),
} as const;

export type PartitionMethod = keyof typeof partitionRequests;
/** Methods only the partition manager calls (not routed by key). */
export type ManagerMethod = 'server.status' | 'partition.split' | 'partition.merge' | 'partition.release';
export const releaseAnswer = z.object({ lastSequence: id });

export function isPartitionMethod(method: string): method is PartitionMethod {
  return Object.hasOwn(partitionRequests, method);
}

/** Bytes of row frames a getMany answer carries in its header (see getManyAnswer). */
export const getManyHeaderRowsBytesMax = 4096;

/**
 * A getMany answer: `found` has one character per key, in order: '1' (its row is in the answer),
 * '0' (no live row), '-' (not answered here: outside the serving partition, or past the answer's
 * byte bound; the client reads it alone). The found rows are framed in key order; when every one
 * before the last takes at most getManyHeaderRowsBytesMax, those go base64 in `rows` and the body
 * is the last one's frame as the engine holds it (no 64 KiB copy to join a container row to it).
 */
const getManyRowsLengthMax = Math.ceil(getManyHeaderRowsBytesMax / 3) * 4 + 4;
const foundPattern = /^[01-]+$/;
export const getManyAnswer = withFastPath(z.object({ found: z.string().regex(foundPattern).max(partitionGetManyKeysMax), rows: z.string().max(getManyRowsLengthMax).optional() }), (value) => {
  const header = plainObject(value);
  const found = header?.['found'];
  const rows = header?.['rows'];
  if (header === undefined || !isText(found, 1, partitionGetManyKeysMax) || !foundPattern.test(found)) return undefined;
  if (rows === undefined) return Object.hasOwn(header, 'rows') ? undefined : { found };
  return isText(rows, 0, getManyRowsLengthMax) ? { found, rows } : undefined;
});

/** The keys of a getMany request header (base64, comma-separated: ',' is not base64). */
export function encodeKeyList(keys: readonly Buffer[]): string {
  return keys.map(encodeKey).join(',');
}

export function decodeKeyList(text: string): Buffer[] {
  const parts = text.split(',');
  if (parts.length > partitionGetManyKeysMax) throw new StorageError('config.invalid', `more than ${partitionGetManyKeysMax} keys`);
  return parts.map((part) => {
    // base64Key's bounds, checked directly (a schema parse per key was most of this function's cost).
    if (part.length < 1 || part.length > base64KeyLengthMax) throw new StorageError('config.invalid', 'a key of the list is not base64 of 1..partitionKeyBytesMax bytes');
    return decodeKey(part, 'key');
  });
}

/** The found rows of a getMany answer, in key order: those framed in `rows` (header), then the
 * body's; decoded as views (the caller keeps them no longer than the answer). */
export function decodeGetManyRows(answer: { readonly rows?: string | undefined }, body: Buffer, countMax: number): RowRecord[] {
  const rows = decodeRows(body, countMax, { deferred: true });
  if (answer.rows === undefined) return rows;
  return decodeRows(Buffer.from(answer.rows, 'base64'), countMax, { deferred: true }).concat(rows);
}

export const commitAnswer = withFastPath(z.object({ sequence: id, lastModifiedMs: id, etags: z.array(z.string().nullable()) }), (value) => {
  const header = plainObject(value);
  const sequence = header?.['sequence'];
  const lastModifiedMs = header?.['lastModifiedMs'];
  const list = header?.['etags'];
  if (!isCount(sequence) || !isCount(lastModifiedMs) || !Array.isArray(list)) return undefined;
  const etags: (string | null)[] = [];
  for (const item of list as unknown[]) {
    if (typeof item !== 'string' && item !== null) return undefined;
    etags.push(item);
  }
  return { sequence, lastModifiedMs, etags };
});
export const scanAnswer = z.object({ continuation: z.string().nullable() });
export const dataRefAnswer = z.object({ extentId: id, offset: id, length: id });

export const partitionStatusSchema = z.object({
  partitionId: id,
  ownerEpoch: id,
  state: z.enum(['loading', 'serving', 'failed', 'split', 'merged', 'released']),
  approximateBytes: id,
  lastSequence: id,
  /** Requests served per second over the load window (docs/partition-protocol.md, "Load"). */
  requestsPerSecond: z.number().nonnegative().default(0),
  /** How long the partition has been held at this epoch. */
  servedMs: id.default(0),
  /** No live row references an inherited data stream, fenced (docs/partition-gc.md). */
  inheritedFree: z.boolean().default(false),
});
export type PartitionStatus = z.infer<typeof partitionStatusSchema>;
export const serverStatusAnswer = z.object({ serverId: z.string(), leaseValid: z.boolean(), partitions: z.array(partitionStatusSchema) });
export type ServerStatus = z.infer<typeof serverStatusAnswer>;

export function encodeKey(key: Buffer): string {
  return key.toString('base64');
}

export function decodeKey(text: string, what: string): Buffer {
  const key = Buffer.from(text, 'base64');
  if (key.toString('base64') !== text) throw new StorageError('config.invalid', `${what} is not canonical base64`);
  return key;
}

/** A put's columns travel as a live row with placeholder engine fields. */
export function putRow(key: Buffer, columns: readonly Column[]): RowRecord {
  return { kind: 'live', key, sequence: 0, lastModifiedMs: 0, etag: '-', columns };
}

export function deleteRow(key: Buffer): RowRecord {
  return { kind: 'tombstone', key, sequence: 0, lastModifiedMs: 0 };
}

/** Below this a byte value is copied even when the body may be kept: a copy that small is cheap. */
const rowViewBytesMin = 4096;

export function encodeRows(rows: readonly RowRecord[]): Buffer {
  return encodeFramedRows(rows, 0);
}

/**
 * The rows of a request or answer body. `keepBody`: the rows may keep views of `body` (which the
 * receiver may keep: Network's ownership rule) for a byte value that is at least half of it, e.g.
 * the inline body of a transact that carries one Put Blob row: the partition then keeps the RPC
 * body's bytes rather than a copy of them (at most twice the value's size is held).
 *
 * `deferred`: every row is decoded with decodeRowDeferred (all byte values are views of `body`),
 * for a caller that keeps the rows no longer than it may keep the body.
 */
export function decodeRows(body: Buffer, countMax: number, options: { readonly keepBody?: boolean; readonly deferred?: boolean } = {}): RowRecord[] {
  const rows: RowRecord[] = [];
  const viewBytesMin = options.keepBody === true ? Math.max(rowViewBytesMin, Math.ceil(body.length / 2)) : Number.POSITIVE_INFINITY;
  for (let offset = 0; offset < body.length;) {
    if (rows.length >= countMax) throw new StorageError('config.invalid', `body holds more than ${countMax} rows`);
    const bytes = frame(body, offset, partitionRowBytesMax);
    rows.push(decodeRowOrInvalid(bytes, options.deferred === true ? decodeRowDeferred : (row) => decodeRow(row, viewBytesMin)));
    offset += 4 + bytes.length;
  }
  return rows;
}

/** Scan items into one body: a row goes as its row codec bytes (an encoded item as it is). */
export function encodeScanItems(items: readonly (ScanItem | EncodedScanItem)[]): Buffer {
  const encoded: Buffer[] = [];
  let bodyBytes = 0;
  for (const item of items) {
    const bytes = item.kind === 'row' ? encodeRow(item.row) : item.kind === 'encoded' ? item.bytes : item.prefix;
    encoded.push(bytes);
    bodyBytes += 5 + bytes.length;
  }
  const body = Buffer.allocUnsafe(bodyBytes);
  let offset = 0;
  for (let index = 0; index < encoded.length; index++) {
    const bytes = encoded[index] ?? Buffer.alloc(0);
    body[offset] = items[index]?.kind === 'prefix' ? 2 : 1;
    body.writeUInt32BE(bytes.length, offset + 1);
    body.set(bytes, offset + 5);
    offset += 5 + bytes.length;
  }
  return body;
}

export function decodeScanItems(body: Buffer): ScanItem[] {
  const items: ScanItem[] = [];
  for (let offset = 0; offset < body.length;) {
    if (items.length >= scanLimitMax) throw new StorageError('rpc.remote', `scan answer holds more than ${scanLimitMax} items`);
    const kind = body.readUInt8(offset);
    if (kind === 1 && offset + 5 <= body.length) {
      // The common row, checked in place (no view of it): anything it does not take goes the checked way below.
      const end = offset + 5 + body.readUInt32BE(offset + 1);
      const row = end <= body.length ? quickDeferredRowAt(body, offset + 5, end) : null;
      if (row?.kind === 'live') {
        items.push({ kind: 'row', row });
        offset = end;
        continue;
      }
    }
    const bytes = frame(body, offset + 1, partitionRowBytesMax);
    offset += 5 + bytes.length;
    if (kind === 2) {
      items.push({ kind: 'prefix', prefix: Buffer.from(bytes) });
      continue;
    }
    // Checked whole now, columns materialised when a caller reads them (a listing may not).
    const row = decodeRowOrInvalid(bytes, decodeRowDeferred);
    if (kind !== 1 || row.kind !== 'live') throw new StorageError('rpc.remote', 'scan answer holds a malformed item');
    items.push({ kind: 'row', row: row satisfies LiveRow });
  }
  return items;
}

function frame(body: Buffer, offset: number, bytesMax: number): Buffer {
  if (offset + 4 > body.length) throw new StorageError('config.invalid', 'body ends inside a length');
  const length = body.readUInt32BE(offset);
  if (length > bytesMax || offset + 4 + length > body.length) throw new StorageError('config.invalid', `body frame of ${length} bytes does not fit`);
  return body.subarray(offset + 4, offset + 4 + length);
}

function decodeRowOrInvalid(bytes: Buffer, decode: (bytes: Buffer) => RowRecord = decodeRow): RowRecord {
  try {
    return decode(bytes);
  } catch (error) {
    throw new StorageError('config.invalid', 'body holds a row that does not decode', { cause: error });
  }
}
