// The front end's side of the partition layer (docs/partition-protocol.md, "Roles"): caches the
// partition map, routes each request by key to the owning server, and on "not mine" re-reads the
// map and tries again, with bounded attempts and a doubling back-off on the injected clock. A map
// older than partitionClientMapMaxAgeMs is re-read before routing (one read shared by concurrent
// requests, waited for at most partitionClientMapWaitMs), so requests leave an owner that went
// silent soon after the map moved its partition, and a slow MetaStore does not stall them.
//
// Retry rules (a request must never apply twice because of this client):
// - partition.not_owner, partition.busy, rpc.overloaded: nothing was applied → refresh (not_owner)
//   and retry, reads and writes alike;
// - rpc.unreachable, rpc.timeout, partition.unavailable: a read is retried (after a refresh); a
//   write's outcome is unknown, so it is returned to the caller as is (the front end answers 500 /
//   503 and the Azure client decides, with its ETag conditions);
// - anything else is the answer.
// Admission (so one front end never overruns a server's in-flight limit, whose answer is
// "overloaded", not a queue): request bodies in flight from this client are bounded by
// partitionClientBodyBytesMax, below a server's rpcInFlightBytesMax; calls past it wait FIFO for
// their bytes (bounded: at most partitionClientBodyWaitersMax waiters, then rpc.overloaded).
// The bytes are already in memory (the front end's body budget holds them), so waiting costs none.
// An rpc.overloaded answer (several clients on one server) is retried with the back-off until
// partitionRpcDeadlineMs has passed since the first attempt, without spending attempts.
// Invariants: at most partitionClientAttemptsMax attempts per call, overloaded answers aside;
// the map is only replaced by a newer version; every answer is parsed with a schema before use.
// Fault model: servers die, move partitions, answer late or not at all; the map may be stale.
// followMap() (the cluster front end) also re-reads the map each time its MetaStore watch reports a
// write, so a move reaches requests before any of them meets the old owner; the aged re-read above
// stays as the safety net of a watch gone silent.
import {
  partitionClientAttemptsMax, partitionClientBackoffMsMax, partitionClientBackoffMsMin, partitionClientBodyBytesMax, partitionClientBodyWaitersMax,
  partitionClientMapMaxAgeMs, partitionClientMapWaitMs, partitionGetManyKeysMax, partitionRpcDeadlineMs, scanLimitMax,
} from '../constants.ts';
import type { KeyWatch, MetaStore } from '../metastore/meta-store.ts';
import type { Network, RpcHeader, RpcResponse } from '../rpc/network.ts';
import { ByteSemaphore } from '../util/byte-semaphore.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import type { Column, DataRef } from '../wire/partition-row.ts';
import type { CommitResult, LiveRow, PartitionOp, ScanItem } from './partition.ts';
import { continuationKey } from './continuation-token.ts';
import { keyFromHex, keyHex, mapKey, parseJson, readMap, routeKey, serverKey, serverRecordSchema } from './partition-map.ts';
import type { PartitionMap } from './partition-map.ts';
import {
  commitAnswer, dataRefAnswer, decodeGetManyRows, decodeRows, decodeScanItems, deleteRow, encodeKey, encodeKeyList, encodeRows, getManyAnswer, putRow, scanAnswer,
} from './partition-rpc.ts';
import { z } from 'zod';
import { plainObject, safeParseFast, withFastPath } from '../util/fast-parse.ts';
import type { Body } from '../util/body-parts.ts';

export interface PartitionClientOptions {
  readonly metaStore: MetaStore;
  readonly network: Network;
  readonly clock: Clock;
  readonly attemptsMax?: number;
  /** Request body bytes in flight from this client (default partitionClientBodyBytesMax). */
  readonly bodyBytesMax?: number;
}

export interface ClientScanOptions {
  readonly start?: Buffer;
  readonly end?: Buffer;
  readonly prefix?: Buffer;
  readonly delimiter?: Buffer;
  readonly limit: number;
  readonly continuation?: string;
}

export interface PartitionClientStats {
  readonly requests: number;
  readonly retries: number;
  readonly mapRefreshes: number;
  readonly notOwnerAnswers: number;
  /** Calls that waited for body bytes (admission), and overloaded answers retried. */
  readonly admissionWaits: number;
  readonly overloadedAnswers: number;
}

/** One partition RPC as PartitionClient sends it (tried again on retryable answers). */
interface PartitionCall {
  readonly key: Buffer;
  readonly method: string;
  readonly header: RpcHeader;
  readonly body: Body;
  /** A read: also tried again where a write may not be (it may have applied). */
  readonly read: boolean;
}

const retryAlways = new Set(['partition.not_owner', 'partition.busy', 'rpc.overloaded']);
const retryReads = new Set(['rpc.unreachable', 'rpc.timeout', 'partition.unavailable', 'partition.closed']);
const ownerMayHaveChanged = new Set(['partition.not_owner', ...retryReads]);
const foundAnswer = withFastPath(z.object({ found: z.boolean() }), (value) => {
  const found = plainObject(value)?.['found'];
  return typeof found === 'boolean' ? { found } : undefined;
});
const scanHigh = z.object({ high: z.string().nullable() });
/** k: routing key (hex), s: the start the partition's token was made for (hex), t: that token. */
const clientContinuation = z.object({ k: z.string().max(16_384), s: z.string().max(16_384).nullable(), t: z.string().max(16_384).nullable() });

export class PartitionClient {
  private readonly options: PartitionClientOptions;
  private map: PartitionMap | null = null;
  /** Set by any failure that may mean the owner changed: the next call re-reads the map first. */
  private stale = false;
  /** When the map was last read (monotonic ms): older than partitionClientMapMaxAgeMs, it is re-read. */
  private mapReadAtMs = 0;
  /** The re-read in progress, shared by concurrent requests, and when it started. */
  private refreshing: Promise<void> | null = null;
  private refreshStartedMs = 0;
  private mapWatch: KeyWatch | null = null;
  private readonly addresses = new Map<string, string>();
  private readonly counters = { requests: 0, retries: 0, mapRefreshes: 0, notOwnerAnswers: 0, admissionWaits: 0, overloadedAnswers: 0 };
  private readonly bodyBudget: ByteSemaphore;

  constructor(options: PartitionClientOptions) {
    this.options = options;
    this.bodyBudget = new ByteSemaphore({ capacityBytes: options.bodyBytesMax ?? partitionClientBodyBytesMax, waitersMax: partitionClientBodyWaitersMax });
  }

  stats(): PartitionClientStats {
    return { ...this.counters };
  }

  /** Re-reads the map whenever the MetaStore reports a write of it (see the header), until close(). */
  followMap(): void {
    this.mapWatch ??= this.options.metaStore.watchKey(mapKey, () => {
      this.stale = true;
      // A failed read leaves the map stale: the next request reads it again.
      this.refresh().catch(() => undefined);
    });
  }

  /** Stops following the map. */
  close(): void {
    this.mapWatch?.close();
    this.mapWatch = null;
  }

  /** The cached map's version (0 before the first read). */
  get mapVersion(): number {
    return this.map?.version ?? 0;
  }

  async get(key: Buffer): Promise<LiveRow | null> {
    const response = await this.call(key, 'partition.get', { key: encodeKey(key) }, Buffer.alloc(0), true);
    if (!parse(foundAnswer, response.header).found) return null;
    // Views of the answer body (a received body is the receiver's to keep): no copy of an inline body.
    const row = decodeRows(response.body, 1, { deferred: true })[0];
    if (row?.kind !== 'live') throw new StorageError('rpc.remote', 'get answered a row that is not live');
    return row;
  }

  /**
   * Point reads of up to partitionGetManyKeysMax keys, each row as get() returns it: one
   * partition.getMany to the owner of the first key, then a get() of each key it did not answer
   * (outside its partition, or past the answer's byte bound). Each read is a read of the partition
   * holding the key at that moment, as get() is; the rows are not one snapshot across keys.
   */
  async getMany(keys: readonly Buffer[]): Promise<(LiveRow | null)[]> {
    const first = keys[0];
    if (first === undefined) return [];
    if (keys.length > partitionGetManyKeysMax) throw new StorageError('config.invalid', `getMany of more than ${partitionGetManyKeysMax} keys`);
    const response = await this.call(first, 'partition.getMany', { key: encodeKey(first), keys: encodeKeyList(keys) }, Buffer.alloc(0), true);
    const answer = parse(getManyAnswer, response.header);
    const found = answer.found;
    const rows = decodeGetManyRows(answer, response.body, keys.length);
    if (found.length !== keys.length || rows.length !== found.replaceAll(/[^1]/g, '').length) throw new StorageError('rpc.remote', 'getMany answered rows that do not match its keys');
    // In a loop, not an async callback per key: the common answer has every key ('1' / '0'), and
    // only keys answered '-' wait for a get of their own (in parallel).
    // Every answered row is checked before any get starts (a refused answer leaves none running).
    const result: (LiveRow | null)[] = [];
    const alone: number[] = [];
    let next = 0;
    for (const [index, key] of keys.entries()) {
      const answered = found[index];
      result.push(null);
      if (answered === '-') alone.push(index);
      if (answered !== '1') continue;
      const row = rows[next++];
      if (row?.kind !== 'live' || !row.key.equals(key)) throw new StorageError('rpc.remote', 'getMany answered a row that is not live or not its key');
      result[index] = row;
    }
    if (alone.length > 0) {
      await Promise.all(alone.map(async (index) => { result[index] = await this.get(keys[index] ?? first); }));
    }
    return result;
  }

  async put(key: Buffer, columns: readonly Column[], conditions: { readonly ifMatch?: string; readonly ifNoneMatch?: '*' } = {}): Promise<{ etag: string; sequence: number }> {
    const response = await this.call(key, 'partition.put', { key: encodeKey(key), ...conditions }, encodeRows([putRow(key, columns)]), false);
    const answer = parse(commitAnswer, response.header);
    const etag = answer.etags[0];
    if (typeof etag !== 'string') throw new StorageError('rpc.remote', 'put answered no etag');
    return { etag, sequence: answer.sequence };
  }

  async delete(key: Buffer, conditions: { readonly ifMatch?: string } = {}): Promise<{ sequence: number }> {
    const response = await this.call(key, 'partition.delete', { key: encodeKey(key), ...conditions }, Buffer.alloc(0), false);
    return { sequence: parse(commitAnswer, response.header).sequence };
  }

  /** An atomic batch; every key must lie in one partition (an entity group shares a partition key). */
  async transact(ops: readonly PartitionOp[]): Promise<CommitResult> {
    const first = ops[0];
    if (first === undefined) throw new StorageError('config.invalid', 'an empty transaction');
    const header = { key: encodeKey(first.key), ops: ops.map((op) => conditionsOf(op)) };
    // A check travels as a tombstone row of its key (docs/partition-protocol.md).
    const rows = ops.map((op) => (op.kind === 'put' ? putRow(op.key, op.columns) : deleteRow(op.key)));
    const response = await this.call(first.key, 'partition.transact', header, encodeRows(rows), false);
    return parse(commitAnswer, response.header);
  }

  async appendData(key: Buffer, bytes: Body): Promise<DataRef> {
    const response = await this.call(key, 'partition.appendData', { key: encodeKey(key) }, bytes, false);
    return parse(dataRefAnswer, response.header);
  }

  async readData(key: Buffer, ref: DataRef): Promise<Buffer> {
    const response = await this.call(key, 'partition.readData', { key: encodeKey(key), ...ref }, Buffer.alloc(0), true);
    return response.body;
  }

  /**
   * One page of a scan that may cross partitions: rows of the partition holding the current
   * position; when that partition's range ends before the scan's, the continuation names the next
   * partition's low key.
   */
  async scan(options: ClientScanOptions): Promise<{ items: ScanItem[]; continuation: string | null }> {
    if (options.limit < 1 || options.limit > scanLimitMax) throw new StorageError('config.invalid', `scan limit must be 1..${scanLimitMax}`);
    const resume = options.continuation === undefined ? null : decodeClientContinuation(options.continuation);
    const startHexValue = resume === null ? (options.start?.toString('hex') ?? null) : resume.s;
    const start = startHexValue === null ? undefined : keyFromHex(startHexValue);
    const routeHex = resume?.k ?? maxHex(startHexValue ?? '', options.prefix?.toString('hex') ?? '');
    // A continued page goes to the partition holding the token's key: after a split or merge it
    // may not be the one that answered the previous page.
    const routeAt = resume !== null && resume.t !== null ? continuationKey(resume.t) : routeHex === '' ? Buffer.from([0]) : keyFromHex(routeHex);
    const header: RpcHeader = {
      key: encodeKey(routeAt), limit: options.limit,
      ...optionalKey('start', start), ...optionalKey('end', options.end), ...optionalKey('prefix', options.prefix), ...optionalKey('delimiter', options.delimiter),
      ...(resume === null || resume.t === null ? {} : { continuation: resume.t }),
    };
    const response = await this.call(routeAt, 'partition.scan', header, Buffer.alloc(0), true);
    const page = parse(scanAnswer, response.header);
    const high = parse(scanHigh, response.header).high;
    const items = decodeScanItems(response.body);
    if (page.continuation !== null) return { items, continuation: encodeClientContinuation({ k: keyHex(routeAt), s: startHexValue, t: page.continuation }) };
    const endHex = options.end?.toString('hex') ?? null;
    const prefixHex = options.prefix?.toString('hex') ?? null;
    const beyondPrefix = prefixHex !== null && high !== null && !high.startsWith(prefixHex) && high > prefixHex;
    if (high === null || (endHex !== null && endHex <= high) || beyondPrefix) return { items, continuation: null };
    return { items, continuation: encodeClientContinuation({ k: high, s: high, t: null }) };
  }

  // ---- routing ----------------------------------------------------------------------------------

  /** Not async itself: a body admitted at once goes straight to attempts(), which releases it
   * (one async frame per call, not two: a promise and its ticks per partition call). */
  private call(key: Buffer, method: string, header: RpcHeader, body: Body, read: boolean): Promise<RpcResponse> {
    this.counters.requests += 1;
    if (body.length === 0 || this.bodyBudget.tryAcquire(body.length)) return this.attempts({ key, method, header, body, read });
    return this.callAfterAdmission({ key, method, header, body, read });
  }

  private async callAfterAdmission(call: PartitionCall): Promise<RpcResponse> {
    this.counters.admissionWaits += 1;
    await this.bodyBudget.acquire(call.body.length);
    return this.attempts(call);
  }

  /** Tries `call` until an answer or a final error; releases its body's admission (held since call()). */
  private async attempts(call: PartitionCall): Promise<RpcResponse> {
    const { key, method, header, body, read } = call;
    try {
      const attemptsMax = this.options.attemptsMax ?? partitionClientAttemptsMax;
      const startMs = this.options.clock.monotonicMs();
      let lastError: unknown = null;
      let backoffs = 0;
      for (let attempt = 0; attempt < attemptsMax; attempt++) {
        if (lastError !== null) {
          this.counters.retries += 1;
          await this.options.clock.sleep(Math.min(partitionClientBackoffMsMax, partitionClientBackoffMsMin * 2 ** backoffs));
          backoffs += 1;
        }
        try {
          const address = this.knownOwnerAddress(key) ?? await this.ownerAddress(key, this.stale);
          if (address === null) throw new StorageError('partition.not_owner', 'the partition has no live owner yet', { retryable: true });
          return await this.options.network.call(address, { method, header, body }, { deadlineMs: partitionRpcDeadlineMs });
        } catch (error) {
          if (!isStorageError(error)) throw error;
          if (error.code === 'partition.not_owner') this.counters.notOwnerAnswers += 1;
          if (ownerMayHaveChanged.has(error.code)) this.stale = true;
          const retry = retryAlways.has(error.code) || (read && retryReads.has(error.code));
          if (!retry) throw error;
          lastError = error;
          // Overloaded: nothing ran; the server is busy, not gone. Wait it out (bounded in time).
          if (error.code === 'rpc.overloaded' && this.options.clock.monotonicMs() - startMs < partitionRpcDeadlineMs) {
            this.counters.overloadedAnswers += 1;
            attempt -= 1;
          }
        }
      }
      throw new StorageError('partition.unavailable', `${method}: no owner answered after ${attemptsMax} attempts`, { retryable: true, cause: lastError });
  
    } finally {
      if (body.length > 0) this.bodyBudget.release(body.length);
    }
  }

  /** ownerAddress's answer when it needs no read (a fresh map, a known address): no promise per call. */
  private knownOwnerAddress(key: Buffer): string | undefined {
    const map = this.map;
    if (map === null || this.stale || this.options.clock.monotonicMs() - this.mapReadAtMs >= partitionClientMapMaxAgeMs) return undefined;
    const owner = routeKey(map, key).owner;
    return owner === null ? undefined : this.addresses.get(`${owner.serverId}/${owner.lease}`);
  }

  /** The address of the server owning `key`'s partition, re-reading the map when asked. */
  private async ownerAddress(key: Buffer, refresh: boolean): Promise<string | null> {
    if (this.map === null || refresh) await this.refresh();
    else if (this.options.clock.monotonicMs() - this.mapReadAtMs >= partitionClientMapMaxAgeMs) await this.refreshAged();
    const map = this.map;
    if (map === null) return null;
    const owner = routeKey(map, key).owner;
    if (owner === null) return null;
    const cached = this.addresses.get(`${owner.serverId}/${owner.lease}`);
    if (cached !== undefined) return cached;
    const kv = await this.options.metaStore.get(serverKey(owner.serverId));
    if (kv === null) return null;
    const record = parseJson(serverRecordSchema, kv);
    if (record.lease !== owner.lease) return null;
    this.addresses.set(`${owner.serverId}/${owner.lease}`, record.address);
    return record.address;
  }

  private async refresh(): Promise<void> {
    if (this.refreshing === null) {
      this.refreshStartedMs = this.options.clock.monotonicMs();
      this.refreshing = this.readMapNow().finally(() => {
        this.refreshing = null;
      });
    }
    await this.refreshing;
  }

  /**
   * Re-reads a map that is merely old, waiting until at most partitionClientMapWaitMs after the read
   * started: when the MetaStore is slow or unreachable the request goes by the cached map (as it
   * would without this), and the read finishes or fails in the background; a failed read is tried
   * again a max age after it failed.
   */
  private async refreshAged(): Promise<void> {
    const refreshed = this.refresh().catch(() => undefined);
    const waitMs = this.refreshStartedMs + partitionClientMapWaitMs - this.options.clock.monotonicMs();
    if (waitMs <= 0) return;
    let cancel = (): void => undefined;
    const waited = new Promise<void>((resolve) => {
      const timer = this.options.clock.setTimer(waitMs, resolve);
      cancel = () => timer.cancel();
    });
    await Promise.race([refreshed, waited]);
    cancel();
  }

  private async readMapNow(): Promise<void> {
    this.counters.mapRefreshes += 1;
    this.stale = false;
    const readAtMs = this.options.clock.monotonicMs();
    try {
      const current = await readMap(this.options.metaStore);
      if (current !== null && (this.map === null || current.map.version >= this.map.version)) this.map = current.map;
      this.mapReadAtMs = readAtMs;
    } catch (error) {
      this.mapReadAtMs = this.options.clock.monotonicMs();
      throw error;
    }
  }
}

/** An op's header entry: absent conditions stay absent (set one by one, not spread from literals:
 * each spread is an object of its own and a copy, per op of every write). */
function conditionsOf(op: PartitionOp): { kind: PartitionOp['kind']; ifMatch?: string; ifNoneMatch?: '*' } {
  const entry: { kind: PartitionOp['kind']; ifMatch?: string; ifNoneMatch?: '*' } = { kind: op.kind };
  if (op.ifMatch !== undefined) entry.ifMatch = op.ifMatch;
  if (op.kind === 'put' && op.ifNoneMatch !== undefined) entry.ifNoneMatch = op.ifNoneMatch;
  return entry;
}

function optionalKey(name: string, value: Buffer | undefined): RpcHeader {
  return value === undefined ? {} : { [name]: encodeKey(value) };
}

function maxHex(left: string, right: string): string {
  return left > right ? left : right;
}

function encodeClientContinuation(value: z.infer<typeof clientContinuation>): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function decodeClientContinuation(text: string): z.infer<typeof clientContinuation> {
  try {
    return clientContinuation.parse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
  } catch (error) {
    throw new StorageError('partition.bad_continuation', 'a continuation token that does not decode', { cause: error });
  }
}

function parse<T>(schema: z.ZodType<T>, header: RpcHeader): T {
  const parsed = safeParseFast(schema, header);
  if (!parsed.success) throw new StorageError('rpc.remote', `malformed partition answer: ${parsed.error.message}`);
  return parsed.data;
}
