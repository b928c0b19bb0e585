// The stream manager's typed, fenced access to its MetaStore keys (docs/stream-protocol.md,
// "Metadata" and "Epoch fencing").
//
// Leadership: acquire() increments sm/epoch with a txn that compares the modRevision it read, so
// of two managers starting at once exactly one gets each epoch. It also creates sm/secret (the
// HMAC key of release tokens) if absent, in the same txn.
//
// Invariants:
// - every write txn compares sm/epoch's modRevision with the one this manager wrote, plus the
//   modRevisions of every record the decision read; so a manager whose epoch was superseded
//   can never write again, and no decision is applied on top of state it did not see;
// - once a txn fails because sm/epoch moved, the store is fenced for good: every later call
//   throws extent.stale_epoch and the manager stops (it never retries past a newer leader);
// - commits run one at a time (a serial lock), each re-reading what it decides on, so within
//   one manager compares fail only because of another writer;
// - records read are parsed with their zod schema; a record that does not parse is wire.corrupt;
// - a decision that finds a record changed by another writer ends in conflict(): extent.stale_epoch
//   if sm/epoch moved (a stale manager meeting a newer leader is an operating condition, never an
//   assertion), meta.conflict (retryable) otherwise.
//
// Fault model: the MetaStore may be unavailable (meta.unavailable, propagated) or written by a
// newer leader at any time (fencing). A txn that times out may or may not have applied; callers
// re-read before deciding again.
import { z } from 'zod';
import { metaRangeLimitMax } from '../constants.ts';
import type { Compare, KeyValue, MetaStore, TxnOperation } from '../metastore/meta-store.ts';
import { prefixEnd } from '../metastore/meta-store.ts';
import { assert } from '../util/assert.ts';
import { StorageError } from '../util/errors.ts';
import { extentKey, extentRecord, nodeKey, nodeRecord, removalKey, removalRecord, streamKey, streamRecord } from './protocol.ts';
import type { ExtentRecord, NodeRecord, RemovalRecord, StreamRecord } from './protocol.ts';
import { SerialLock } from './serial-lock.ts';
import { releaseTokenSecretBytes } from './release-token.ts';

export const epochKey = 'sm/epoch';
export const secretKey = 'sm/secret';
export const counterKeys = { stream: 'sm/counters/stream', extent: 'sm/counters/extent' } as const;
const extentPrefix = 'sm/extents/';
const nodePrefix = 'sm/nodes/';
const removalPrefix = 'sm/removals/';

/** Commit attempts when a compare fails for a reason other than fencing. */
const commitAttemptsMax = 5;

const epochValue = z.object({ epoch: z.number().int().nonnegative() });
const secretValue = z.object({ secret: z.string().min(1) });
const counterValue = z.object({ next: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) });

export interface Versioned<T> {
  readonly value: T;
  /** modRevision read; 0 if the key was absent. */
  readonly modRevision: number;
}

/** What a decision writes: the compares of what it read, and the records it puts. */
export interface CommitPlan<R> {
  readonly compare: readonly Compare[];
  readonly puts: readonly { readonly key: string; readonly value: unknown }[];
  /** Keys the decision deletes (compare them too, so the delete applies to what was read). */
  readonly deletes?: readonly string[];
  readonly result: R;
}

export class ManagerStore {
  private readonly metaStore: MetaStore;
  private readonly lock = new SerialLock();
  private epochValueRead = -1;
  private epochRevision = -1;
  private fencedBy: number | null = null;

  constructor(metaStore: MetaStore) {
    this.metaStore = metaStore;
  }

  get epoch(): number {
    assert(this.epochValueRead > 0, 'manager store used before acquire()');
    return this.epochValueRead;
  }

  get fenced(): boolean {
    return this.fencedBy !== null;
  }

  /** Becomes leader: epoch + 1, compared on the read modRevision. Returns the epoch and secret. */
  async acquire(newSecret: () => Buffer): Promise<{ epoch: number; secret: Buffer }> {
    const current = await this.metaStore.get(epochKey);
    const previous = current === null ? 0 : parseValue(epochValue, current, epochKey).epoch;
    const secretKv = await this.metaStore.get(secretKey);
    const secret = secretKv === null ? newSecret() : Buffer.from(parseValue(secretValue, secretKv, secretKey).secret, 'base64');
    assert(secret.length >= releaseTokenSecretBytes, 'release token secret too short');
    const epoch = previous + 1;
    const success: TxnOperation[] = [{ kind: 'put', key: epochKey, value: JSON.stringify({ epoch }) }];
    if (secretKv === null) success.push({ kind: 'put', key: secretKey, value: JSON.stringify({ secret: secret.toString('base64') }) });
    const compare = [{ key: epochKey, modRevision: current?.modRevision ?? 0 }, { key: secretKey, modRevision: secretKv?.modRevision ?? 0 }];
    const result = await this.metaStore.txn({ compare, success });
    if (!result.succeeded) {
      throw new StorageError('meta.conflict', `another stream manager took epoch ${epoch}`, { retryable: true, context: { epoch } });
    }
    this.epochValueRead = epoch;
    this.epochRevision = result.revision;
    return { epoch, secret };
  }

  /** Throws extent.stale_epoch once a newer leader has been seen. */
  checkNotFenced(): void {
    if (this.fencedBy !== null) throw this.staleError();
  }

  /**
   * Runs a decision under the commit lock: `decide` reads what it needs (fresh), returns the
   * plan, and the plan is committed with the epoch compare added. A compare failure re-runs
   * `decide` (bounded); a moved epoch fences the store.
   */
  async commit<R>(what: string, decide: () => Promise<CommitPlan<R>>): Promise<R> {
    return this.lock.run(async () => {
      for (let attempt = 1; ; attempt++) {
        this.checkNotFenced();
        const plan = await decide();
        if (plan.puts.length === 0 && (plan.deletes ?? []).length === 0) return plan.result;
        const success = plan.puts.map((put): TxnOperation => ({ kind: 'put', key: put.key, value: JSON.stringify(put.value) }));
        for (const key of plan.deletes ?? []) success.push({ kind: 'delete', key });
        const compare = [{ key: epochKey, modRevision: this.epochRevision }, ...plan.compare];
        const outcome = await this.metaStore.txn({ compare, success });
        if (outcome.succeeded) return plan.result;
        await this.detectFencing();
        if (attempt >= commitAttemptsMax) {
          throw new StorageError('meta.conflict', `${what}: records kept changing under the stream manager`, { retryable: true });
        }
      }
    });
  }

  /**
   * A decision found that another writer changed what it decides on (e.g. a newer leader extended
   * the stream). Throws extent.stale_epoch (and fences the store) if sm/epoch moved, else a
   * retryable meta.conflict: the caller re-reads and decides again.
   */
  async conflict(message: string, context: Readonly<Record<string, unknown>>): Promise<never> {
    await this.detectFencing();
    this.checkNotFenced();
    throw new StorageError('meta.conflict', message, { retryable: true, context });
  }

  /** Reserves the next id of a counter in its own txn, so an id is never handed out twice. */
  async allocateId(kind: keyof typeof counterKeys): Promise<number> {
    const key = counterKeys[kind];
    return this.commit(`allocate ${kind} id`, async () => {
      const kv = await this.metaStore.get(key);
      const next = kv === null ? 1 : parseValue(counterValue, kv, key).next;
      assert(next < Number.MAX_SAFE_INTEGER, `${kind} ids exhausted`);
      return { compare: [{ key, modRevision: kv?.modRevision ?? 0 }], puts: [{ key, value: { next: next + 1 } }], result: next };
    });
  }

  async readNode(nodeIdValue: string): Promise<Versioned<NodeRecord> | null> {
    return this.readRecord(nodeRecord, nodeKey(nodeIdValue));
  }

  async readStream(streamId: number): Promise<Versioned<StreamRecord> | null> {
    return this.readRecord(streamRecord, streamKey(streamId));
  }

  async readExtent(extentId: number): Promise<Versioned<ExtentRecord> | null> {
    return this.readRecord(extentRecord, extentKey(extentId));
  }

  async readRemoval(extentId: number): Promise<Versioned<RemovalRecord> | null> {
    return this.readRecord(removalRecord, removalKey(extentId));
  }

  /** Dropped extents whose replicas have not all confirmed extent.remove. */
  async readRemovals(): Promise<Versioned<RemovalRecord>[]> {
    return (await this.scan(removalPrefix)).map((kv) => ({ value: parseValue(removalRecord, kv, kv.key), modRevision: kv.modRevision }));
  }

  async readNodes(): Promise<Versioned<NodeRecord>[]> {
    return (await this.scan(nodePrefix)).map((kv) => ({ value: parseValue(nodeRecord, kv, kv.key), modRevision: kv.modRevision }));
  }

  async readExtents(): Promise<Versioned<ExtentRecord>[]> {
    return (await this.scan(extentPrefix)).map((kv) => ({ value: parseValue(extentRecord, kv, kv.key), modRevision: kv.modRevision }));
  }

  /** Reads sm/epoch; if it moved past ours, fences the store. */
  async detectFencing(): Promise<void> {
    if (this.fencedBy !== null) return;
    const kv = await this.metaStore.get(epochKey);
    if (kv !== null && kv.modRevision !== this.epochRevision) {
      this.fencedBy = parseValue(epochValue, kv, epochKey).epoch;
    }
  }

  private staleError(): StorageError {
    return new StorageError('extent.stale_epoch', `stream manager epoch ${this.epochValueRead} was superseded by ${this.fencedBy}`, {
      context: { epoch: this.epochValueRead, newerEpoch: this.fencedBy },
    });
  }

  private async readRecord<T>(schema: z.ZodType<T>, key: string): Promise<Versioned<T> | null> {
    const kv = await this.metaStore.get(key);
    return kv === null ? null : { value: parseValue(schema, kv, key), modRevision: kv.modRevision };
  }

  /** Every key under a prefix, page by page (each page bounded by metaRangeLimitMax). */
  private async scan(prefix: string): Promise<KeyValue[]> {
    const all: KeyValue[] = [];
    let start = prefix;
    for (;;) {
      const page = await this.metaStore.range(start, { end: prefixEnd(prefix), limit: metaRangeLimitMax });
      all.push(...page);
      const last = page.at(-1);
      if (page.length < metaRangeLimitMax || last === undefined) return all;
      start = `${last.key}!`; // the smallest printable key after `last`
    }
  }
}

function parseValue<T>(schema: z.ZodType<T>, kv: KeyValue, key: string): T {
  let value: unknown;
  try {
    value = JSON.parse(kv.value);
  } catch (error) {
    throw new StorageError('wire.corrupt', `MetaStore value of ${key} is not JSON`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new StorageError('wire.corrupt', `MetaStore value of ${key} is malformed: ${parsed.error.message}`);
  return parsed.data;
}
