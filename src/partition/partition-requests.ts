// Runs one parsed partition.* request against a Partition the server owns, and encodes the answer
// (docs/partition-protocol.md, "Server RPCs"). Ownership checks are the server's; this module is
// the straight-line translation between wire messages and the engine's calls.
//
// Invariants: every header is parsed with its schema before use; a body that does not match the
// header (row count, keys) is config.invalid and nothing is applied; a transaction's rows must
// name its routing key's partition (the engine refuses keys outside its range).
import { scanPageBytesMax } from '../constants.ts';
import type { RpcHeader, RpcResponse } from '../rpc/network.ts';
import { parseHeader } from '../stream/protocol.ts';
import { bodyBytes, type Body } from '../util/body-parts.ts';
import { StorageError } from '../util/errors.ts';
import type { Partition, PartitionOp } from './partition.ts';
import { decodeKey, decodeKeyList, decodeRows, encodeScanItems, getManyHeaderRowsBytesMax, partitionRequests } from './partition-rpc.ts';
import type { ManagerMethod, PartitionMethod } from './partition-rpc.ts';
import type { LiveRow } from './partition-scan.ts';

export interface ServedRequest {
  readonly method: Exclude<PartitionMethod, ManagerMethod>;
  readonly header: RpcHeader;
  readonly body: Body;
  /** High bound (hex, null = +inf) of the serving partition, returned with scans. */
  readonly high: string | null;
  /**
   * For a getMany's keys after the first (the routing key, already counted): true if the serving
   * partition's range holds `key` (getMany answers only those), which is then counted in the
   * partition's request load as a request of its own, as a get of it would be (hot-range splits
   * choose their key from those samples).
   */
  readonly admit: (key: Buffer) => boolean;
}

const empty = Buffer.alloc(0);

/** Not async itself: a transaction (every write) gets transact's own promise, with no async frame
 * of this dispatcher around it (a promise and two ticks per write). */
export function performPartitionRequest(partition: Partition, request: ServedRequest): Promise<RpcResponse> {
  return request.method === 'partition.transact' ? transact(partition, request) : performRequest(partition, request);
}

async function performRequest(partition: Partition, request: ServedRequest): Promise<RpcResponse> {
  const { method, header, body } = request;
  switch (method) {
    case 'partition.get': {
      // The row as the engine holds it encoded (no decode + encode of a 64 KiB inline body).
      const framed = await partition.getFramed(decodeKey(parseHeader(partitionRequests[method], header, method).key, 'key'));
      return { header: { found: framed !== null }, body: framed ?? empty };
    }
    case 'partition.getMany':
      return getMany(partition, request);
    case 'partition.put': {
      const parsed = parseHeader(partitionRequests[method], header, method);
      const row = singleRow(bodyBytes(body), parsed.key);
      if (row.kind !== 'live') throw new StorageError('config.invalid', 'partition.put carries a live row');
      const result = await partition.put(row.key, row.columns, conditions(parsed));
      return { header: { ...result, etags: [result.etag] }, body: empty };
    }
    case 'partition.delete': {
      const parsed = parseHeader(partitionRequests[method], header, method);
      const result = await partition.delete(decodeKey(parsed.key, 'key'), parsed.ifMatch === undefined ? {} : { ifMatch: parsed.ifMatch });
      return { header: { sequence: result.sequence, lastModifiedMs: 0, etags: [null] }, body: empty };
    }
    case 'partition.transact':
      return transact(partition, request);
    case 'partition.scan':
      return scan(partition, request);
    case 'partition.appendData': {
      parseHeader(partitionRequests[method], header, method);
      const ref = await partition.appendData(body);
      return { header: { ...ref }, body: empty };
    }
    case 'partition.readData': {
      const parsed = parseHeader(partitionRequests[method], header, method);
      const bytes = await partition.readData({ extentId: parsed.extentId, offset: parsed.offset, length: parsed.length });
      return { header: {}, body: bytes };
    }
  }
}

/**
 * Several point reads in one call, each as partition.get answers it, in key order (the answer's
 * shape: getManyAnswer). A key outside the partition, or a row that would take the answer past
 * scanPageBytesMax (after the first row), is answered '-': the client reads it alone.
 */
async function getMany(partition: Partition, request: ServedRequest): Promise<RpcResponse> {
  const parsed = parseHeader(partitionRequests['partition.getMany'], request.header, 'partition.getMany');
  let found = '';
  const frames: Buffer[] = [];
  let bytes = 0;
  // The first key of the list is the routing key (compared as text: both are canonical base64).
  if (!parsed.keys.startsWith(parsed.key) || (parsed.keys.length > parsed.key.length && parsed.keys[parsed.key.length] !== ',')) {
    throw new StorageError('config.invalid', 'getMany routes by its first key');
  }
  for (const [index, key] of decodeKeyList(parsed.keys).entries()) {
    const framed = index === 0 || request.admit(key) ? await partition.getFramed(key) : undefined;
    if (framed === undefined || (framed !== null && frames.length > 0 && bytes + framed.length > scanPageBytesMax)) {
      found += '-';
      continue;
    }
    found += framed === null ? '0' : '1';
    if (framed === null) continue;
    frames.push(framed);
    bytes += framed.length;
  }
  const last = frames.pop() ?? empty;
  if (bytes - last.length <= getManyHeaderRowsBytesMax) {
    return { header: { found, ...(frames.length === 0 ? {} : { rows: Buffer.concat(frames).toString('base64') }) }, body: last };
  }
  return { header: { found }, body: Buffer.concat([...frames, last], bytes) };
}

function conditions(parsed: { readonly ifMatch?: string | undefined; readonly ifNoneMatch?: '*' | undefined }): { ifMatch?: string; ifNoneMatch?: '*' } {
  return { ...(parsed.ifMatch === undefined ? {} : { ifMatch: parsed.ifMatch }), ...(parsed.ifNoneMatch === undefined ? {} : { ifNoneMatch: parsed.ifNoneMatch }) };
}

function singleRow(body: Buffer, keyText: string): ReturnType<typeof decodeRows>[number] {
  const rows = decodeRows(body, 1, { keepBody: true });
  const row = rows[0];
  if (row === undefined || !row.key.equals(decodeKey(keyText, 'key'))) throw new StorageError('config.invalid', 'the body row does not match the routing key');
  return row;
}

async function transact(partition: Partition, request: ServedRequest): Promise<RpcResponse> {
  const parsed = parseHeader(partitionRequests['partition.transact'], request.header, 'partition.transact');
  const rows = decodeRows(bodyBytes(request.body), parsed.ops.length, { keepBody: true });
  if (rows.length !== parsed.ops.length) throw new StorageError('config.invalid', `${parsed.ops.length} ops but ${rows.length} rows`);
  const ops: PartitionOp[] = parsed.ops.map((op, index) => {
    const row = rows[index];
    if (row === undefined || (op.kind === 'put') !== (row.kind === 'live')) throw new StorageError('config.invalid', `op ${index} does not match its row`);
    if (row.kind === 'live') return putOp(row, op);
    // A check travels as a tombstone of its key (a key alone); it names the ETag it expects.
    if (op.kind === 'check') {
      if (op.ifMatch === undefined || op.ifNoneMatch !== undefined) throw new StorageError('config.invalid', `check op ${index} names no ETag`);
      return { kind: 'check', key: row.key, ifMatch: op.ifMatch };
    }
    return { kind: 'delete', key: row.key, ...(op.ifMatch === undefined ? {} : { ifMatch: op.ifMatch }) };
  });
  const result = await partition.transact(ops);
  return { header: { sequence: result.sequence, lastModifiedMs: result.lastModifiedMs, etags: [...result.etags] }, body: empty };
}

/** A put op of a transact (its conditions set one by one: no spread objects per write). */
function putOp(row: LiveRow, op: { readonly ifMatch?: string | undefined; readonly ifNoneMatch?: '*' | undefined }): PartitionOp {
  const put: { kind: 'put'; key: Buffer; columns: LiveRow['columns']; ifMatch?: string; ifNoneMatch?: '*' } = { kind: 'put', key: row.key, columns: row.columns };
  if (op.ifMatch !== undefined) put.ifMatch = op.ifMatch;
  if (op.ifNoneMatch !== undefined) put.ifNoneMatch = op.ifNoneMatch;
  return put;
}

async function scan(partition: Partition, request: ServedRequest): Promise<RpcResponse> {
  const parsed = parseHeader(partitionRequests['partition.scan'], request.header, 'partition.scan');
  const bound = (text: string | undefined, what: string): { [name: string]: Buffer } => (text === undefined ? {} : { [what]: decodeKey(text, what) });
  const page = await partition.scanEncoded({
    limit: parsed.limit,
    ...bound(parsed.start, 'start'), ...bound(parsed.end, 'end'), ...bound(parsed.prefix, 'prefix'), ...bound(parsed.delimiter, 'delimiter'),
    ...(parsed.continuation === undefined ? {} : { continuation: parsed.continuation }),
  });
  return { header: { continuation: page.continuation, high: request.high }, body: encodeScanItems(page.items) };
}
