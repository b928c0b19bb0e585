// ContainerSweeper: removes the rows of deleted containers in the background (docs/blob-schema.md,
// "Deleted containers"), so their bytes become garbage for the partition's data GC. Each tick also
// resolves the sweep intents dead writers left (sweep-intents.ts): one background loop for both.
//
// Delete Container removes the container row and, in the same transaction, writes a *graveyard*
// row `C <account> \0 <container> \0 <inc>` naming the incarnation it ended (the split boundary
// keeps a container row and its graveyard rows in one partition). An incarnation id is random and
// never reused, so every row under `B <account> \0 <container> \0 <inc> \0` is dead from that commit
// on: nothing reads it (readers go through the current incarnation) and nothing writes it (writers
// load the container first and write under its current incarnation; a write that loaded the old
// incarnation just before the delete can still land a row after it — the sweep of that
// incarnation then finds it, because the graveyard row stays until a scan finds the range empty
// and that scan started at least containerSweepGraceMs after this sweeper first saw the graveyard:
// the container fence, container-fence.ts, bounds how late such a write can commit unseen).
//
// One tick does bounded work: it finds graveyard rows with a scan of the `C` rows (resumed from a
// cursor across ticks), and for the first one deletes at most containerSweepRowsPerTick rows of
// its range — the tag index rows of the page's blobs first (their keys carry the dead
// incarnation, so no live blob can need them), then the page's rows, blobCleanupBatchRows to a
// transaction whatever blob they belong to (a scan page holds rows of one partition; a split in
// between refuses the batch, applying nothing, and the next tick scans again). When a scan finds the range empty the graveyard row is
// deleted (If-Match). Fault model: any partition call may fail; the tick stops and the next one
// starts over (deleting a row twice is a no-op); a crash loses only the in-memory cursor.
//
// Several sweepers (every `kura frontend` runs one) may work at once. Safety does not depend on
// who sweeps: every row under a graveyard's incarnation is dead, its deletes are unconditional
// (a second delete is a no-op), index rows carry the dead incarnation, and the graveyard row is
// deleted only If-Match (a sweeper that loses that race, or finds it gone, moves on). To keep
// them from doing the same work twice, a sweeper first *claims* a graveyard: it rewrites the row
// with its id and claimUntil = now + containerSweepClaimMs (If-Match the row read), renews the claim
// each tick it works there, and skips graveyards claimed by another sweeper until the claim
// expires (a sweeper that stopped or died is replaced after at most that long). Claims compare
// front ends' clocks, so skew only costs duplicate work, never correctness.
import {
  blobCleanupBatchRows, containerSweepClaimMs, containerSweepIdleIntervalMaxMs, sweepIntentGraceMs, containerSweepGraceMs, containerSweepIntervalMs, containerSweepRowsPerTick, containerSweepTrackedMax,
} from '../../constants.ts';
import type { Logger } from 'pino';
import type { LiveRow, PartitionOp } from '../../partition/partition.ts';
import { AssertionFailure } from '../../util/assert.ts';
import type { Clock, TimerHandle } from '../../util/clock.ts';
import { isStorageError } from '../../util/errors.ts';
import type { Column } from '../../wire/partition-row.ts';
import { randomHex, type BlobServiceContext } from './context.ts';
import { blobPrefix, nameAfter, parseGraveyardKey } from './keys.ts';
import { decodeBlob } from './records.ts';
import { FirstSeen } from './first-seen.ts';
import { ResumableScan } from './resumable-scan.ts';
import { SweepIntents, type IntentTick } from './sweep-intents.ts';
import { tagIndexKey } from './tag-index.ts';

export interface SweepTick {
  readonly graveyards: number;
  /** Graveyards skipped because another sweeper's claim on them had not expired. */
  readonly skipped: number;
  readonly rowsDeleted: number;
  readonly indexRowsDeleted: number;
  readonly incarnationsFinished: number;
  /** Graveyards whose range was empty but which this sweeper first saw less than graceMs ago (kept). */
  readonly inGrace: number;
  /** The sweep intents of the same tick (sweep-intents.ts), with the row budget the graveyards left. */
  readonly intents: IntentTick;
}

export interface SweepTotals {
  ticks: number;
  rowsDeleted: number;
  indexRowsDeleted: number;
  incarnationsFinished: number;
  failures: number;
  /** Claims or graveyard deletes lost to another sweeper (benign). */
  racesLost: number;
  /** Sweep intents resolved (sweep-intents.ts), of them those whose commit was fenced out (fence row
   * rewritten, nothing to sweep), and the dead rows their sweeps deleted. */
  intentsResolved: number;
  intentsFenced: number;
  intentRowsDeleted: number;
}

export class ContainerSweeper {
  readonly totals: SweepTotals = { ticks: 0, rowsDeleted: 0, indexRowsDeleted: 0, incarnationsFinished: 0, failures: 0, racesLost: 0, intentsResolved: 0, intentsFenced: 0, intentRowsDeleted: 0 };
  /** This sweeper's name in claims (random unless given). */
  readonly sweeperId: string;
  readonly #ctx: BlobServiceContext;
  readonly #graceMs: number;
  /** Monotonic time this sweeper first saw each graveyard row (key and `since`: a row put back is new). */
  readonly #firstSeenMs = new FirstSeen(containerSweepTrackedMax);
  #timer: TimerHandle | null = null;
  /** The wait before the next tick: intervalMs, doubled after each tick that found nothing (up to
   * containerSweepIdleIntervalMaxMs), back to intervalMs once one finds work or a writer wakes it. */
  #pace = { intervalMs: containerSweepIntervalMs, delayMs: containerSweepIntervalMs, dueMs: 0, woken: false };
  /** The C rows, a bounded part per tick (graveyards are among them). */
  readonly #containerRows = new ResumableScan(Buffer.from('C'));
  /** Pending sweeps of writers that died (or stall) after a commit discarding rows. */
  readonly #intents: SweepIntents;
  #running: Promise<void> | null = null;
  #stopped = false;
  /** Where a dropped scan cursor is reported (the first only: the metric counts every one). */
  readonly #logger: Pick<Logger, 'warn'> | null;
  #cursorDropLogged = false;

  /** graceMs: the graveyards' and the intents' grace, containerSweepGraceMs and sweepIntentGraceMs
   * unless given (tests of other things pass 0). */
  constructor(ctx: BlobServiceContext, options: { readonly sweeperId?: string; readonly graceMs?: number; readonly logger?: Pick<Logger, 'warn'> } = {}) {
    this.#ctx = ctx;
    this.#logger = options.logger ?? null;
    this.#graceMs = options.graceMs ?? containerSweepGraceMs;
    this.sweeperId = options.sweeperId ?? randomHex(8, ctx.random);
    this.#intents = new SweepIntents(ctx, { graceMs: options.graceMs ?? sweepIntentGraceMs });
  }

  /** Ticks every intervalMs until stop() (less often while idle: #pace); a failed tick is counted and
   * the next one retries. */
  start(intervalMs = containerSweepIntervalMs): void {
    this.#stopped = false;
    this.#pace = { intervalMs, delayMs: intervalMs, dueMs: 0, woken: false };
    this.#ctx.sweepWake?.listen(() => { this.#wake(); });
    this.#schedule(this.#ctx.clock);
  }

  /** The wait before the next tick, in ms (tests and the idle figures read it). */
  get nextDelayMs(): number {
    return this.#pace.delayMs;
  }

  /** What the sweeper and this front end's writers did with graveyards and sweep intents (the
   * metrics read it: BlobSweepCounts in src/observability). Intents resolved by a sweep of the blob
   * (the commit applied) or by a fence rewrite (it never will); pending: SweepIntents.pending. */
  counts() {
    const { totals } = this;
    return {
      ticks: totals.ticks, tickFailures: totals.failures, rowsDeleted: totals.rowsDeleted, incarnationsFinished: totals.incarnationsFinished,
      intentsWritten: this.#ctx.stats.sweepIntentsWritten ?? 0, intentsDischarged: this.#ctx.stats.sweepIntentsDischarged ?? 0,
      intentsSwept: totals.intentsResolved - totals.intentsFenced, intentsFenced: totals.intentsFenced, intentsPending: this.#intents.pending,
      cursorsDropped: this.#cursorsDropped(),
    };
  }

  /** Scan cursors the partition refused, dropped so the pass starts over (ResumableScan). */
  #cursorsDropped(): number {
    return this.#containerRows.cursorsDropped + this.#intents.cursorsDropped;
  }

  /** Reports the first dropped cursor (a token the partition refuses: a bug or a version change). */
  #logFirstCursorDrop(): void {
    const dropped = this.#cursorsDropped();
    if (dropped === 0 || this.#cursorDropLogged) return;
    this.#cursorDropLogged = true;
    this.#logger?.warn({ cursorsDropped: dropped }, 'sweep scan cursor refused by the partition: dropped, the pass starts over');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = null;
    await this.#running;
  }

  #schedule(clock: Clock): void {
    if (this.#stopped) return;
    this.#pace.dueMs = clock.monotonicMs() + this.#pace.delayMs;
    this.#timer = clock.setTimer(this.#pace.delayMs, () => {
      this.#timer = null;
      this.#pace.woken = false;
      this.#running = this.tick().then((tick) => this.#paceAfter(tick), (error: unknown) => {
        if (error instanceof AssertionFailure) throw error;
        this.totals.failures += 1;
        this.#paceAfter(null);
      }).finally(() => {
        this.#running = null;
        this.#schedule(clock);
      });
    });
  }

  /** Idle (the tick found no graveyard and no intent, and no writer woke the sweeper meanwhile): wait
   * twice as long next time, up to the bound; else (work, or a failed tick) the normal interval. */
  #paceAfter(tick: SweepTick | null): void {
    const idle = tick !== null && tick.graveyards === 0 && tick.intents.intents === 0 && !this.#pace.woken;
    this.#pace.delayMs = idle ? Math.min(this.#pace.delayMs * 2, Math.max(containerSweepIdleIntervalMaxMs, this.#pace.intervalMs)) : this.#pace.intervalMs;
  }

  /** A writer of this process left work: back to the normal interval, the pending wait cut to it. */
  #wake(): void {
    this.#pace.woken = true;
    this.#pace.delayMs = this.#pace.intervalMs;
    const clock = this.#ctx.clock;
    if (this.#timer === null || this.#pace.dueMs - clock.monotonicMs() <= this.#pace.intervalMs) return;
    this.#timer.cancel();
    this.#schedule(clock);
  }

  /** One bounded pass: the first graveyards' next rows, then the next sweep intents (tests call it directly). */
  async tick(): Promise<SweepTick> {
    this.totals.ticks += 1;
    const graveyards = (await this.#containerRows.next(this.#ctx.tables, containerSweepRowsPerTick)).filter((row) => parseGraveyardKey(row.key) !== null);
    let rowsDeleted = 0;
    let indexRowsDeleted = 0;
    let incarnationsFinished = 0;
    let skipped = 0;
    let inGrace = 0;
    for (const found of graveyards) {
      if (rowsDeleted >= containerSweepRowsPerTick) break;
      const graveyard = await this.#claim(found);
      if (graveyard === null) {
        skipped += 1;
        continue;
      }
      const swept = await this.#sweep(graveyard, containerSweepRowsPerTick - rowsDeleted);
      rowsDeleted += swept.rows;
      indexRowsDeleted += swept.indexRows;
      if (swept.finished) incarnationsFinished += 1;
      if (swept.inGrace) inGrace += 1;
    }
    this.totals.rowsDeleted += rowsDeleted;
    this.totals.indexRowsDeleted += indexRowsDeleted;
    this.totals.incarnationsFinished += incarnationsFinished;
    const intents = await this.#intents.tick(containerSweepRowsPerTick, containerSweepRowsPerTick - rowsDeleted);
    this.totals.intentsResolved += intents.resolved;
    this.totals.intentsFenced += intents.fencesRewritten;
    this.totals.intentRowsDeleted += intents.rowsDeleted;
    this.#logFirstCursorDrop();
    return { graveyards: graveyards.length, skipped, rowsDeleted, indexRowsDeleted, incarnationsFinished, inGrace, intents };
  }

  /** Claims (or renews this sweeper's claim on) a graveyard; null when another sweeper holds it or
   * the row changed under the claim (someone else claimed or finished it). */
  async #claim(graveyard: LiveRow): Promise<LiveRow | null> {
    const nowMs = this.#ctx.clock.nowMs();
    const columns = new Map(graveyard.columns.map((column) => [column.name, column.value]));
    const holder = columns.get('claimedBy');
    const until = columns.get('claimUntil');
    const heldByOther = holder?.kind === 'string' && holder.value !== this.sweeperId && until?.kind === 'int64' && Number(until.value) > nowMs;
    if (heldByOther) return null;
    const claimed: Column[] = [
      ...graveyard.columns.filter((column) => column.name !== 'claimedBy' && column.name !== 'claimUntil'),
      { name: 'claimedBy', value: { kind: 'string', value: this.sweeperId } },
      { name: 'claimUntil', value: { kind: 'int64', value: BigInt(nowMs + containerSweepClaimMs) } },
    ];
    try {
      const result = await this.#ctx.tables.transact([{ kind: 'put', key: graveyard.key, columns: claimed, ifMatch: graveyard.etag }]);
      return { ...graveyard, columns: claimed, etag: result.etags[0] ?? graveyard.etag };
    } catch (error) {
      if (!lostRace(error)) throw error;
      this.totals.racesLost += 1;
      return null;
    }
  }

  /** When this sweeper first saw the graveyard row (now if never): by key and `since` (a row put back is new). */
  #firstSeen(graveyard: LiveRow, nowMs: number): { id: string; atMs: number } {
    const since = graveyard.columns.find((column) => column.name === 'since')?.value;
    const id = `${graveyard.key.toString('hex')}/${since?.kind === 'int64' ? since.value : ''}`;
    return { id, atMs: this.#firstSeenMs.at(id, nowMs) };
  }

  /** Deletes up to `budget` rows of a graveyard's range; finished when a scan that started graceMs
   * after this sweeper first saw the graveyard found the range empty. */
  async #sweep(graveyard: LiveRow, budget: number): Promise<{ rows: number; indexRows: number; finished: boolean; inGrace: boolean }> {
    const parsed = parseGraveyardKey(graveyard.key);
    if (parsed === null) return { rows: 0, indexRows: 0, finished: false, inGrace: false };
    const prefix = blobPrefix(parsed.account, parsed.container, parsed.inc);
    const scanStartMs = this.#ctx.clock.monotonicMs();
    const seen = this.#firstSeen(graveyard, scanStartMs);
    const page = await this.#ctx.tables.scan({ prefix, limit: Math.min(budget, containerSweepRowsPerTick) });
    const rows = page.items.flatMap((item) => (item.kind === 'row' ? [item.row] : []));
    if (rows.length === 0) {
      // A write that saw the container alive may still commit a row here unseen until the grace is over.
      if (scanStartMs - seen.atMs < this.#graceMs) return { rows: 0, indexRows: 0, finished: false, inGrace: true };
      try {
        await this.#ctx.tables.transact([{ kind: 'delete', key: graveyard.key, ifMatch: graveyard.etag }]);
      } catch (error) {
        if (!lostRace(error)) throw error;
        this.totals.racesLost += 1;
        return { rows: 0, indexRows: 0, finished: false, inGrace: false };
      }
      this.#firstSeenMs.forget(seen.id);
      return { rows: 0, indexRows: 0, finished: true, inGrace: false };
    }
    // Index rows first: once a blob's own row is gone nothing would name them.
    let indexRows = 0;
    for (const own of rows.filter((row) => nameAfter(prefix, row.key)?.own === true)) {
      const tags = decodeBlob(own).tags;
      for (const tag of tags) await this.#ctx.tables.transact([{ kind: 'delete', key: tagIndexKey(own.key, tag) }]);
      indexRows += tags.length;
    }
    // Then the rows, many blobs' per transaction: a scan page holds rows of one partition only.
    for (let at = 0; at < rows.length; at += blobCleanupBatchRows) {
      const batch: PartitionOp[] = rows.slice(at, at + blobCleanupBatchRows).map((row) => ({ kind: 'delete', key: row.key }));
      await this.#ctx.tables.transact(batch);
    }
    return { rows: rows.length, indexRows, finished: false, inGrace: false };
  }
}

/** Another sweeper claimed, renewed or deleted the graveyard row first: nothing was applied. */
function lostRace(error: unknown): boolean {
  if (error instanceof AssertionFailure) return false;
  return isStorageError(error) && (error.code === 'partition.condition_failed' || error.code === 'partition.row_not_found');
}
