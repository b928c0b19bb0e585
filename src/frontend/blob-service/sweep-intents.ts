// Sweep intents (docs/blob-schema.md, "Sweep intents"): a commit that discards more of a blob's rows
// than its own transaction deletes (a Put Block List of hundreds of blocks, the replacement of a
// paged list or an append incarnation, Delete Snapshot, …) leaves them to a sweep after it. So that
// a front end dying in between cannot leave them dead for the blob's lifetime, the writer first
// puts a durable intent row `S K(blob) 0x00 <id>` naming a *fence*: a row the commit changes
// If-Match (the blob row, a snapshot row, the staging row) and that ETag. The writer deletes the
// intent after its own cleanup finished; else the background sweeper (ContainerSweeper's tick)
// does, once the fence decides:
//
//   fence ETag changed or row gone  → the commit applied (before this read) or never will: sweep the
//                                     blob's range, then delete the intent (If-Match)
//   fence ETag unchanged            → the commit has not applied: rewrite the fence row (If-Match,
//                                     unchanged for clients) so it never will, then delete the intent
//
// Invariants: an intent is durable before its commit is sent, and deleted only after a finished
// sweep that started after the commit applied, or once the commit can never apply (ETags are
// never repeated); the background waits `graceMs` after the intent was put (its `since`) or first
// seen here, whichever is longer ago, so live writers finish their own (not needed for safety). Writes whose discards fit their transaction put none.
// Fault model: any call may fail or the process die at any point; every step is idempotent
// (dead-row deletes are unconditional, intent deletes and fence rewrites If-Match), so the next
// tick or another sweeper starts over; two sweepers on one intent duplicate work, never a wrong delete.
import { containerSweepTrackedMax } from '../../constants.ts';
import type { LiveRow } from '../../partition/partition.ts';
import { AssertionFailure, assert } from '../../util/assert.ts';
import { isStorageError } from '../../util/errors.ts';
import { failpoint } from '../../util/failpoints.ts';
import type { Column } from '../../wire/partition-row.ts';
import { sweepBlob } from './blob-sweep.ts';
import { conditionRefusedCodes, keepVersion, loadedBlob, randomHex, type BlobServiceContext } from './context.ts';
import { FirstSeen } from './first-seen.ts';
import { auxRow, parseSweepIntentKey, sweepIntentKey, sweepIntentPrefix } from './keys.ts';
import { encodeBlob } from './records.ts';
import { ResumableScan } from './resumable-scan.ts';

/** An intent a writer put: deleted If-Match this ETag once its own cleanup finished. */
export interface SweepIntent {
  readonly key: Buffer;
  readonly etag: string;
}

const intentIdBytes = 8;

/** Runs `commit` under a durable sweep intent for `blob` fenced by `fence` (a row the commit
 * changes If-Match its ETag); a refused commit (nothing applied) deletes the intent again. */
async function commitUnderIntent<T>(ctx: BlobServiceContext, at: { readonly blob: Buffer; readonly fence: LiveRow }, commit: () => Promise<T>): Promise<{ value: T; intent: SweepIntent }> {
  const key = sweepIntentKey(at.blob, randomHex(intentIdBytes, ctx.random));
  const columns: Column[] = [
    { name: 'fence', value: { kind: 'bytes', value: at.fence.key } },
    { name: 'fenceEtag', value: { kind: 'string', value: at.fence.etag } },
    { name: 'since', value: { kind: 'int64', value: BigInt(ctx.clock.nowMs()) } },
  ];
  ctx.stats.sweepIntentsWritten = (ctx.stats.sweepIntentsWritten ?? 0) + 1;
  const etag = (await ctx.tables.transact([{ kind: 'put', key, columns, ifNoneMatch: '*' }])).etags[0];
  assert(typeof etag === 'string', 'a put answers its ETag');
  ctx.sweepWake?.notify();
  const intent = { key, etag };
  await failpoint('blob.sweep-intent.after-put');
  try {
    const value = await commit();
    await failpoint('blob.sweep-intent.after-commit');
    return { value, intent };
  } catch (error) {
    if (isStorageError(error) && conditionRefusedCodes.has(error.code)) await dischargeIntent(ctx, intent);
    throw error;
  }
}

/** The writer's cleanup after its commit finished: its intent goes (best effort: a failure leaves it to the background). */
export async function dischargeIntent(ctx: BlobServiceContext, intent: SweepIntent | null): Promise<void> {
  if (intent === null) return;
  try {
    await ctx.tables.transact([{ kind: 'delete', key: intent.key, ifMatch: intent.etag }]);
    ctx.stats.sweepIntentsDischarged = (ctx.stats.sweepIntentsDischarged ?? 0) + 1;
  } catch (error) {
    if (error instanceof AssertionFailure) throw error;
  }
}

/** After a commit whose discarded rows only a sweep removes: the sweep, then (finished) the intent. */
export async function sweepThenDischarge(ctx: BlobServiceContext, blob: Buffer, intent: SweepIntent | null): Promise<void> {
  if ((await sweepBlob(ctx, blob)).finished) await dischargeIntent(ctx, intent);
}

/** Runs `commit` under a sweep intent fenced by `fence`, or without one when `fence` is null (the
 * commit discards nothing it leaves to a sweep). */
export async function commitMaybeUnderIntent<T>(ctx: BlobServiceContext, at: { readonly blob: Buffer; readonly fence: LiveRow | null }, commit: () => Promise<T>): Promise<{ value: T; intent: SweepIntent | null }> {
  if (at.fence === null) return { value: await commit(), intent: null };
  return commitUnderIntent(ctx, { blob: at.blob, fence: at.fence }, commit);
}

export interface IntentTick {
  /** Intent rows examined this tick. */
  readonly intents: number;
  /** Intents deleted (their blob swept, or their commit fenced out). */
  readonly resolved: number;
  /** Fence rows rewritten: a commit that had not applied, never will. */
  readonly fencesRewritten: number;
  /** Dead rows the intents' sweeps deleted. */
  readonly rowsDeleted: number;
  /** Intents first seen less than graceMs ago (left to their writers). */
  readonly inGrace: number;
}

type Outcome = { readonly kind: 'grace' | 'unfinished' | 'lost' | 'unreadable' } | { readonly kind: 'resolved'; readonly rows: number; readonly fenced: boolean };

/** The background half: resolves the intents of dead or stalled writers, a bounded part per tick. */
export class SweepIntents {
  readonly #ctx: BlobServiceContext;
  readonly #graceMs: number;
  readonly #scan = new ResumableScan(sweepIntentPrefix);
  readonly #firstSeen = new FirstSeen(containerSweepTrackedMax);
  /** Intents left in place so far in the scan's current pass; published as `pending` when it ends. */
  #leftThisPass = 0;
  #pending = 0;

  constructor(ctx: BlobServiceContext, options: { readonly graceMs: number }) {
    this.#ctx = ctx;
    this.#graceMs = options.graceMs;
  }

  /** Intents the last full pass over the intent rows left in place (in grace, unfinished, or
   * skipped for the tick's budget): sweeps still owed. 0 before the first pass ends. */
  get pending(): number {
    return this.#pending;
  }

  /** The next intent rows (at most rowsMax examined), each resolved while `budget` dead rows are
   * not yet deleted (the first always). Throws on a failed scan; a failed intent waits for the next tick. */
  async tick(rowsMax: number, budget: number): Promise<IntentTick> {
    const rows = await this.#scan.next(this.#ctx.tables, rowsMax);
    const tick = { intents: rows.length, resolved: 0, fencesRewritten: 0, rowsDeleted: 0, inGrace: 0 };
    for (const row of rows) {
      if (tick.resolved > 0 && tick.rowsDeleted >= budget) break;
      const outcome = await this.#resolve(row);
      if (outcome.kind === 'grace') tick.inGrace += 1;
      if (outcome.kind !== 'resolved') continue;
      tick.resolved += 1;
      tick.rowsDeleted += outcome.rows;
      if (outcome.fenced) tick.fencesRewritten += 1;
    }
    this.#countPending(rows.length - tick.resolved);
    return tick;
  }

  /** Cursors the intent scan dropped (ResumableScan: refused by the partition, the pass restarted). */
  get cursorsDropped(): number {
    return this.#scan.cursorsDropped;
  }

  #countPending(left: number): void {
    if (this.#scan.passCutShort) {
      this.#leftThisPass = 0;
      return;
    }
    this.#leftThisPass += left;
    if (!this.#scan.passEnded) return;
    this.#pending = this.#leftThisPass;
    this.#leftThisPass = 0;
  }

  /** Still left to its writer: put (by the writer's clock, `since`) and first seen here (this
   * process's monotonic clock, which a restart resets) both less than graceMs ago. A writer's
   * clock behind this one only shortens the wait (duplicate work, or a stalled commit fenced out and
   * retried); ahead, the first sight still bounds it. */
  #inGrace(id: string, since: Column['value'] | undefined): boolean {
    const nowMs = this.#ctx.clock.monotonicMs();
    const seenMs = nowMs - this.#firstSeen.at(id, nowMs);
    const putMs = since?.kind === 'int64' ? this.#ctx.clock.nowMs() - Number(since.value) : 0;
    return Math.max(seenMs, putMs) < this.#graceMs;
  }

  async #resolve(row: LiveRow): Promise<Outcome> {
    const blob = parseSweepIntentKey(row.key);
    const fenceKey = column(row, 'fence');
    const fenceEtag = column(row, 'fenceEtag');
    // A row this version cannot read (a later version's) is left alone, never guessed at.
    if (blob === null || fenceKey?.kind !== 'bytes' || fenceEtag?.kind !== 'string') return { kind: 'unreadable' };
    const id = row.key.toString('hex');
    if (this.#inGrace(id, column(row, 'since'))) return { kind: 'grace' };
    const fence = await this.#ctx.tables.get(fenceKey.value);
    const pending = fence !== null && fence.etag === fenceEtag.value;
    if (pending && !await applied(this.#ctx.tables.transact([{ kind: 'put', key: fence.key, columns: unchangedColumns(blob, fence), ifMatch: fence.etag }]))) return { kind: 'lost' };
    // Fenced out: the commit never applied, so it discarded nothing; else it applied before the fence read, before the sweep's scan.
    const swept = pending ? { dropped: 0, finished: true } : await sweepBlob(this.#ctx, blob);
    if (!swept.finished) return { kind: 'unfinished' };
    if (!await applied(this.#ctx.tables.transact([{ kind: 'delete', key: row.key, ifMatch: row.etag }]))) return { kind: 'lost' };
    this.#firstSeen.forget(id);
    return { kind: 'resolved', rows: swept.dropped, fenced: pending };
  }
}

function column(row: LiveRow, name: string): Column['value'] | undefined {
  return row.columns.find((candidate) => candidate.name === name)?.value;
}

/** The fence row's columns rewritten as a client sees them unchanged: a staging row as it is; a blob
 * or snapshot row with its Azure ETag and Last-Modified pinned (as Lease Blob rewrites it). */
function unchangedColumns(blob: Buffer, fence: LiveRow): readonly Column[] {
  if (auxRow(blob, fence.key)?.kind === 'staging') return fence.columns;
  const loaded = loadedBlob(fence, blob);
  return encodeBlob(keepVersion(loaded, loaded.record));
}

/** True when the If-Match write applied; false when another writer or sweeper changed the row first. */
async function applied(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (isStorageError(error) && conditionRefusedCodes.has(error.code)) return false;
    throw error;
  }
}
