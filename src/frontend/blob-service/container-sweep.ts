// ContainerSweeper: removes the rows of deleted containers in the background (docs/blob-schema.md,
// "Deleted containers"), so their bytes become garbage for the partition's data GC.
//
// Delete Container removes the container row and, in the same transaction, writes a *graveyard*
// row `C <account> \0 <container> \0 <inc>` naming the incarnation it ended (the split boundary
// keeps a container row and its graveyard rows in one partition). An incarnation id is random and
// never reused, so every row under `B <account> \0 <container> \0 <inc> \0` is dead from that commit
// on: nothing reads it (readers go through the current incarnation) and nothing writes it (writers
// load the container first and write under its current incarnation; a write that loaded the old
// incarnation just before the delete can still land a row after it — the sweep of that
// incarnation then finds it, because the graveyard row stays until a scan finds the range empty).
//
// One tick does bounded work: it finds graveyard rows with a scan of the `C` rows (resumed from a
// cursor across ticks), and for the first one deletes at most containerSweepRowsPerTick rows of
// its range — per blob, the tag index rows of its tags first (their keys carry the dead
// incarnation, so no live blob can need them), then the blob's rows in one transaction (all rows
// of one blob are in one partition). When a scan finds the range empty the graveyard row is
// deleted (If-Match). Fault model: any partition call may fail; the tick stops and the next one
// starts over (deleting a row twice is a no-op); a crash loses only the in-memory cursor.
import { blobCleanupBatchRows, blobScanRowsPerCall, containerSweepIntervalMs, containerSweepRowsPerTick } from '../../constants.ts';
import type { LiveRow, PartitionOp } from '../../partition/partition.ts';
import { AssertionFailure } from '../../util/assert.ts';
import type { Clock, TimerHandle } from '../../util/clock.ts';
import type { BlobServiceContext } from './context.ts';
import { blobPrefix, nameAfter, parseGraveyardKey } from './keys.ts';
import { decodeBlob } from './records.ts';
import { tagIndexKey } from './tag-index.ts';

export interface SweepTick {
  readonly graveyards: number;
  readonly rowsDeleted: number;
  readonly indexRowsDeleted: number;
  readonly incarnationsFinished: number;
}

export interface SweepTotals {
  ticks: number;
  rowsDeleted: number;
  indexRowsDeleted: number;
  incarnationsFinished: number;
  failures: number;
}

export class ContainerSweeper {
  readonly totals: SweepTotals = { ticks: 0, rowsDeleted: 0, indexRowsDeleted: 0, incarnationsFinished: 0, failures: 0 };
  readonly #ctx: BlobServiceContext;
  #timer: TimerHandle | null = null;
  /** Where the next graveyard scan resumes (null: from the first C row). */
  #cursor: Buffer | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(ctx: BlobServiceContext) {
    this.#ctx = ctx;
  }

  /** Ticks every intervalMs until stop(); a failed tick is counted and the next one retries. */
  start(intervalMs = containerSweepIntervalMs): void {
    this.#stopped = false;
    this.#schedule(this.#ctx.clock, intervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = null;
    await this.#running;
  }

  #schedule(clock: Clock, intervalMs: number): void {
    if (this.#stopped) return;
    this.#timer = clock.setTimer(intervalMs, () => {
      this.#running = this.tick().then(() => undefined, (error: unknown) => {
        if (error instanceof AssertionFailure) throw error;
        this.totals.failures += 1;
      }).finally(() => {
        this.#running = null;
        this.#schedule(clock, intervalMs);
      });
    });
  }

  /** One bounded pass: the first graveyard's next rows (tests call it directly). */
  async tick(): Promise<SweepTick> {
    this.totals.ticks += 1;
    const graveyards = await this.#graveyards();
    let rowsDeleted = 0;
    let indexRowsDeleted = 0;
    let incarnationsFinished = 0;
    for (const graveyard of graveyards) {
      if (rowsDeleted >= containerSweepRowsPerTick) break;
      const swept = await this.#sweep(graveyard, containerSweepRowsPerTick - rowsDeleted);
      rowsDeleted += swept.rows;
      indexRowsDeleted += swept.indexRows;
      if (swept.finished) incarnationsFinished += 1;
    }
    this.totals.rowsDeleted += rowsDeleted;
    this.totals.indexRowsDeleted += indexRowsDeleted;
    this.totals.incarnationsFinished += incarnationsFinished;
    return { graveyards: graveyards.length, rowsDeleted, indexRowsDeleted, incarnationsFinished };
  }

  /** Graveyard rows among the next C rows (at most containerSweepRowsPerTick examined; the scan
   * resumes there next tick and starts over after the last C row). */
  async #graveyards(): Promise<LiveRow[]> {
    const found: LiveRow[] = [];
    const prefix = Buffer.from('C');
    let start = this.#cursor ?? prefix;
    for (let pages = 0; pages < containerSweepRowsPerTick / blobScanRowsPerCall; pages++) {
      const page = await this.#ctx.tables.scan({ prefix, start, limit: blobScanRowsPerCall });
      const rows = page.items.flatMap((item) => (item.kind === 'row' ? [item.row] : []));
      for (const row of rows) if (parseGraveyardKey(row.key) !== null) found.push(row);
      const last = rows.at(-1);
      if (page.continuation === null || last === undefined) {
        this.#cursor = null;
        return found;
      }
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
    this.#cursor = start;
    return found;
  }

  /** Deletes up to `budget` rows of a graveyard's range; finished when it found the range empty. */
  async #sweep(graveyard: LiveRow, budget: number): Promise<{ rows: number; indexRows: number; finished: boolean }> {
    const parsed = parseGraveyardKey(graveyard.key);
    if (parsed === null) return { rows: 0, indexRows: 0, finished: false };
    const prefix = blobPrefix(parsed.account, parsed.container, parsed.inc);
    const page = await this.#ctx.tables.scan({ prefix, limit: Math.min(budget, containerSweepRowsPerTick) });
    const rows = page.items.flatMap((item) => (item.kind === 'row' ? [item.row] : []));
    if (rows.length === 0) {
      await this.#ctx.tables.transact([{ kind: 'delete', key: graveyard.key, ifMatch: graveyard.etag }]);
      return { rows: 0, indexRows: 0, finished: true };
    }
    const byBlob = new Map<string, LiveRow[]>();
    for (const row of rows) {
      const name = nameAfter(prefix, row.key)?.name ?? '';
      byBlob.set(name, [...(byBlob.get(name) ?? []), row]);
    }
    let indexRows = 0;
    for (const blobRows of byBlob.values()) {
      // Index rows first: once the blob's own row is gone nothing would name them.
      const own = blobRows.find((row) => nameAfter(prefix, row.key)?.own === true);
      const tags = own === undefined ? [] : decodeBlob(own).tags;
      for (const tag of tags) await this.#ctx.tables.transact([{ kind: 'delete', key: tagIndexKey(own?.key ?? Buffer.alloc(0), tag) }]);
      indexRows += tags.length;
      for (let at = 0; at < blobRows.length; at += blobCleanupBatchRows) {
        const batch: PartitionOp[] = blobRows.slice(at, at + blobCleanupBatchRows).map((row) => ({ kind: 'delete', key: row.key }));
        await this.#ctx.tables.transact(batch);
      }
    }
    return { rows: rows.length, indexRows, finished: false };
  }
}
