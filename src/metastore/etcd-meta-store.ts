// EtcdMetaStore: the MetaStore on a real etcd cluster (Raft), for stamps that span processes or
// machines. Transactions are etcd transactions whose compares check mod revisions; leases are
// etcd leases. etcd's lock API is never used: safety comes from compares and epochs.
//
// Invariants:
// - every input is checked (meta-limits.ts) before a request is sent, so both MetaStore
//   implementations reject the same inputs with the same codes and write nothing.
// - compare { modRevision: 0 } is sent as "version == 0" (the key is absent); any other value as
//   "mod_revision == n".
// - lease ids are chosen here, at random below 2^53, so they fit a JS number exactly (etcd's own
//   ids use all 64 bits). A collision ("lease already exists") is retried with a new id.
// - every call has a deadline (callTimeoutMs), so no caller waits forever on a dead cluster.
//
// Fault model: connection loss, deadlines and a cluster without quorum become StorageError
// 'meta.unavailable' (retryable). The outcome of a txn that fails this way is unknown: it may
// have been applied. The etcd3 client itself retries a call that failed on a broken connection
// (up to 3 attempts), so a txn applied by an attempt whose answer was lost reports
// succeeded = false on the retry; callers always re-read after a failed compare, which
// resolves both cases. After an outage the client's circuit breaker fails calls fast for a few
// seconds (about 5 s) before it tries the cluster again. etcd's own request limit (1.5 MiB by
// default) is mapped to 'wire.too_large'.
// A member cut off without a reset (a host's link down) answers nothing: a call the client sends
// there waits out its deadline, and the client picks a member at random per call. Lease renewals
// must not wait that long: a holder whose renewal hangs past its lease loses it although two
// members would answer at once (found by cluster-netns-control: etcd's leader's host cut off, both
// controllers and the partition server lost their 2 s leases, writes stalled 13-29 s). With
// several endpoints, therefore: (1) a renewal of a lease granted here tries up to
// keepAliveAttemptsMax times, each attempt bounded by max(keepAliveAttemptMinMs, TTL / 8); (2) a
// member whose call failed as unreachable (deadline, unavailable) is skipped for
// silentMemberSkipMs (silentMemberPolicy, in place of the client's breaker, which skips one only
// after three failures in a row), so the next attempt goes to another member. With one endpoint
// there is nowhere else to go: one attempt with the whole call deadline, the client's own policy.
//
// Watches (watchKey): one etcd watch per key on the client's shared watch stream. The client
// reconnects a broken stream by itself and resumes from the revision after the last one it saw;
// every (re)connection is reported to the watcher as a change, so it re-reads. The stream has no
// deadline (a call's deadline cut it every 5 s: a reconnection and a re-read by every watcher each
// time, ~1.9 ms CPU/s of an idle watcher); a member gone silent leaves it silent, which the
// watchers' slow re-reads cover. When the revision to
// resume from was compacted meanwhile, etcd cancels the watch: it is then created afresh (from now,
// after metaWatchRestartMs) and its connection, again, makes the watcher re-read. close() ends
// every watch before the client, so no reconnection outlives the store.
//
// Leases: etcd counts TTLs in whole seconds and raises a TTL below its minimum (1.5 election
// timeouts); grantLease rounds ttlMs up to seconds, so a lease lives at least ttlMs. Expiry is
// decided by the etcd leader's clock, not by the injected Clock of the embedded store.
import { randomBytes } from 'node:crypto';
import { Etcd3, isRecoverableError, type ICompare, type IKeyValue, type IOptions, type IRequestOp, type Watcher } from 'etcd3';
import { metaWatchRestartMs } from '../constants.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { checkKey, checkLeaseId, checkRange, checkTtlMs, checkTxn } from './meta-limits.ts';
import type { Compare, KeyValue, KeyWatch, MetaStore, RangeOptions, Txn, TxnOperation, TxnResult } from './meta-store.ts';

/** Deadline of one etcd call; etcd answers in milliseconds when it has quorum. */
const callTimeoutMsDefault = 5_000;
/** Time to establish a connection before connect() gives up. */
const dialTimeoutMs = 3_000;
/** Largest gRPC message accepted from etcd: a full range page of maximal values would be larger,
 * but etcd itself caps responses well below this with its request limits. */
const grpcReceiveBytesMax = 64 * 1024 * 1024;
/** Attempts to find an unused random lease id (a collision is astronomically rare). */
const leaseGrantAttemptsMax = 5;
/** A renewal's attempts with several endpoints, each bounded by max(keepAliveAttemptMinMs, ttl / 8) (see the header). */
const keepAliveAttemptsMax = 3;
const keepAliveAttemptMinMs = 400;
/** How long a member that did not answer is skipped (then one call tries it again). */
const silentMemberSkipMs = 3_000;
const keepAliveTimerSlackMs = 100;

export interface EtcdMetaStoreOptions {
  readonly endpoints: readonly string[];
  readonly callTimeoutMs?: number;
}

export class EtcdMetaStore implements MetaStore {
  private readonly client: Etcd3;
  private readonly callTimeoutMs: number;
  /** Several endpoints: renewals in bounded attempts, silent members skipped (see the header). */
  private readonly severalMembers: boolean;
  /** TTL of each lease granted here and not revoked, for the renewal's deadline. */
  private readonly leaseTtlsMs = new Map<number, number>();
  private readonly watches = new Set<EtcdKeyWatch>();
  private closed = false;

  private constructor(client: Etcd3, callTimeoutMs: number, severalMembers: boolean) {
    this.severalMembers = severalMembers;
    this.client = client;
    this.callTimeoutMs = callTimeoutMs;
  }

  /** Connects and proves the cluster answers a linearizable read; meta.unavailable otherwise. */
  static async connect(options: EtcdMetaStoreOptions): Promise<EtcdMetaStore> {
    if (options.endpoints.length === 0) throw new StorageError('config.invalid', 'etcd endpoints must not be empty');
    const callTimeoutMs = options.callTimeoutMs ?? callTimeoutMsDefault;
    const client = new Etcd3({
      hosts: [...options.endpoints],
      dialTimeout: dialTimeoutMs,
      // Unary calls only: a deadline on the watch stream would cut it every callTimeoutMs (the lease
      // keep-alive streams carry their own).
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
      grpcOptions: { 'grpc.max_receive_message_length': grpcReceiveBytesMax },
      ...(options.endpoints.length > 1 ? { faultHandling: { host: silentMemberPolicies(options.endpoints.length) } } : {}),
    });
    const store = new EtcdMetaStore(client, callTimeoutMs, options.endpoints.length > 1);
    try {
      await store.get('kura/connect-probe');
    } catch (error) {
      client.close();
      throw error;
    }
    return store;
  }

  async get(key: string): Promise<KeyValue | null> {
    checkKey(key);
    const response = await this.call('get', () => this.client.kv.range({ key: keyBytes(key) }));
    const first = response.kvs[0];
    return first === undefined ? null : toKeyValue(first);
  }

  async range(start: string, options: RangeOptions): Promise<KeyValue[]> {
    const checked = checkRange(start, options);
    if (checked.end <= start) return [];
    const response = await this.call('range', () =>
      this.client.kv.range({ key: keyBytes(start), range_end: keyBytes(checked.end), limit: checked.limit }));
    return response.kvs.map(toKeyValue);
  }

  async txn(txn: Txn): Promise<TxnResult> {
    checkTxn(txn);
    const response = await this.call('txn', () =>
      this.client.kv.txn({ compare: txn.compare.map(toEtcdCompare), success: txn.success.map(toEtcdOperation), failure: [] }));
    return { succeeded: response.succeeded, revision: Number(response.header.revision) };
  }

  async grantLease(ttlMs: number): Promise<number> {
    checkTtlMs(ttlMs);
    const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    for (let attempt = 0; attempt < leaseGrantAttemptsMax; attempt++) {
      const id = randomLeaseId();
      try {
        await this.call('grantLease', () => this.client.leaseClient.leaseGrant({ ID: id, TTL: ttlSeconds }));
        this.leaseTtlsMs.set(id, ttlSeconds * 1000);
        return id;
      } catch (error) {
        if (!(error instanceof StorageError && error.context['etcdMessage'] === 'lease already exists')) throw error;
      }
    }
    throw new StorageError('meta.unavailable', 'could not find an unused etcd lease id', { retryable: true });
  }

  async keepAlive(lease: number): Promise<void> {
    checkLeaseId(lease);
    const ttlMs = this.severalMembers ? this.leaseTtlsMs.get(lease) : undefined;
    const attemptMs = ttlMs === undefined ? this.callTimeoutMs : Math.min(this.callTimeoutMs, Math.max(keepAliveAttemptMinMs, Math.floor(ttlMs / 8)));
    const attempts = ttlMs === undefined ? 1 : keepAliveAttemptsMax;
    let ttlSeconds = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        ttlSeconds = await this.call('keepAlive', () => this.keepAliveOnce(lease, attemptMs));
        break;
      } catch (error) {
        if (attempt >= attempts || !isStorageError(error, 'meta.unavailable')) throw error;
      }
    }
    if (ttlSeconds <= 0) this.leaseTtlsMs.delete(lease);
    if (ttlSeconds <= 0) throw new StorageError('meta.lease_expired', 'lease expired or was revoked', { context: { lease } });
  }

  async revokeLease(lease: number): Promise<void> {
    checkLeaseId(lease);
    this.leaseTtlsMs.delete(lease);
    await this.call('revokeLease', () => this.client.leaseClient.leaseRevoke({ ID: lease }));
  }

  watchKey(key: string, onChange: () => void): KeyWatch {
    checkKey(key);
    if (this.closed) throw new StorageError('io.closed', 'EtcdMetaStore is closed', { context: { operation: 'watchKey' } });
    const watch = new EtcdKeyWatch(this.client, key, onChange, () => this.watches.delete(watch));
    this.watches.add(watch);
    return watch;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const watch of [...this.watches]) watch.close();
      this.client.close();
    }
    return Promise.resolve();
  }

  /** One keepalive round trip on a short-lived stream; resolves to the new TTL (0 = expired). */
  private async keepAliveOnce(lease: number, deadlineMs: number): Promise<number> {
    // The stream's own deadline: a member that does not answer is marked failed by the client (its
    // error arrives before this timer, which only bounds a stream that never reports).
    const stream = await this.client.leaseClient.leaseKeepAlive({ deadline: Date.now() + deadlineMs });
    try {
      return await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new StorageError('meta.unavailable', 'etcd keepalive timed out', { retryable: true })), deadlineMs + keepAliveTimerSlackMs);
        stream.on('data', (response) => {
          clearTimeout(timer);
          resolve(Number(response.TTL));
        });
        stream.on('error', (error: unknown) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        });
        stream.write({ ID: lease });
      });
    } finally {
      stream.end();
    }
  }

  /** Runs one etcd call, turning every failure into a StorageError. */
  private async call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageError('io.closed', 'EtcdMetaStore is closed', { context: { operation } });
    try {
      return await fn();
    } catch (error) {
      throw toStorageError(error, operation);
    }
  }
}

/** One key's watch (see the header): every write, connection and reconnection calls onChange. */
class EtcdKeyWatch implements KeyWatch {
  private watcher: Watcher | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private open = true;
  private readonly client: Etcd3;
  private readonly key: string;
  private readonly onChange: () => void;
  private readonly onClose: () => void;

  constructor(client: Etcd3, key: string, onChange: () => void, onClose: () => void) {
    this.client = client;
    this.key = key;
    this.onChange = onChange;
    this.onClose = onClose;
    this.start();
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.stopWatcher();
    this.onClose();
  }

  private start(): void {
    this.restartTimer = null;
    const watcher = this.client.watch().key(keyBytes(this.key)).watcher();
    const notify = (): void => {
      if (this.open && this.watcher === watcher) this.onChange();
    };
    watcher.on('connected', notify).on('put', notify).on('delete', notify);
    // A cancelled watch (its resume revision compacted): start over from now.
    watcher.on('error', () => {
      if (!this.open || this.watcher !== watcher) return;
      this.stopWatcher();
      this.restartTimer = setTimeout(() => this.start(), metaWatchRestartMs);
    });
    this.watcher = watcher;
  }

  private stopWatcher(): void {
    const watcher = this.watcher;
    this.watcher = null;
    // A cancel that fails (the stream already gone) leaves nothing behind to stop.
    watcher?.cancel().catch(() => undefined);
  }
}

/** Keys are ASCII (checked), so latin1 maps each character to its byte exactly. */
function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

function toKeyValue(kv: IKeyValue): KeyValue {
  return { key: kv.key.toString('latin1'), value: kv.value.toString('utf8'), modRevision: Number(kv.mod_revision), lease: Number(kv.lease) };
}

function toEtcdCompare(compare: Compare): ICompare {
  if (compare.modRevision === 0) return { key: keyBytes(compare.key), target: 'Version', result: 'Equal', version: 0 };
  return { key: keyBytes(compare.key), target: 'Mod', result: 'Equal', mod_revision: compare.modRevision };
}

function toEtcdOperation(operation: TxnOperation): IRequestOp {
  switch (operation.kind) {
    case 'put':
      return { request_put: { key: keyBytes(operation.key), value: Buffer.from(operation.value, 'utf8'), lease: operation.lease ?? 0 } };
    case 'delete':
      return { request_delete_range: { key: keyBytes(operation.key) } };
  }
}

function randomLeaseId(): number {
  // 53 random bits, never 0.
  const id = Number(randomBytes(8).readBigUInt64BE() >> 11n);
  return id === 0 ? 1 : id;
}

/** etcd server messages that are not outages, by the StorageError they become. */
const etcdMessageCodes: ReadonlyArray<readonly [string, 'meta.lease_expired' | 'wire.too_large' | 'config.invalid']> = [
  ['requested lease not found', 'meta.lease_expired'],
  ['request is too large', 'wire.too_large'],
  ['too many operations in txn request', 'wire.too_large'],
  ['duplicate key given in txn request', 'config.invalid'],
  ['lease already exists', 'config.invalid'],
];

function toStorageError(error: unknown, operation: string): StorageError {
  if (isStorageError(error)) return error.withContext({ operation });
  const message = error instanceof Error ? error.message : String(error);
  for (const [text, code] of etcdMessageCodes) {
    if (message.includes(text)) {
      return new StorageError(code, `etcd rejected ${operation}: ${text}`, { cause: error, context: { operation, etcdMessage: text } });
    }
  }
  // Everything else (unavailable, deadline exceeded, no leader, broken circuit, closed channel)
  // means the cluster could not answer: retryable, outcome of a write unknown.
  return new StorageError('meta.unavailable', `etcd ${operation} failed: ${message}`, { retryable: true, cause: error, context: { operation } });
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** Each member's fault handling (see the header): after a call to it failed as unreachable it is
 * skipped for silentMemberSkipMs, and the client tries the next member of its shuffle; unless
 * every member is skipped (this process was cut off itself, say): then it is tried, since a skip
 * only helps when another member may answer. The client calls only execute (markFailed runs a
 * throwing function through it). */
function silentMemberPolicies(memberCount: number): (hostname: string) => HostPolicy {
  const skipUntilMs = new Map<string, number>();
  const skipped = (hostname: string, nowMs: number): boolean => (skipUntilMs.get(hostname) ?? 0) > nowMs;
  return (hostname) => {
    const policy = {
      execute: async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> => {
        const nowMs = Date.now();
        const allSkipped = [...skipUntilMs.keys()].filter((host) => skipped(host, nowMs)).length >= memberCount;
        if (skipped(hostname, nowMs) && !allSkipped) throw new Error('etcd member skipped: it did not answer a moment ago');
        try {
          const result = await fn({ signal: new AbortController().signal });
          skipUntilMs.delete(hostname);
          return result;
        } catch (error) {
          if (error instanceof Error && isRecoverableError(error)) skipUntilMs.set(hostname, Date.now() + silentMemberSkipMs);
          throw error;
        }
      },
    };
    return policy as unknown as HostPolicy;
  };
}
