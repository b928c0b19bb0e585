// ResumableScan: a background sweeper's walk over one key prefix, a bounded number of rows per
// call, resumed where the last call stopped and started over after the last row.
//
// Invariants: each call examines at most `rowsMax` rows (whole scan pages of blobScanRowsPerCall);
// every row under the prefix is returned by some call of every full pass.
// Fault model: a failed scan throws and keeps the cursor; a crash loses only the cursor. A cursor
// the partition refuses (partition.bad_continuation: no such token is known to arise, but a token
// of another version or a damaged one would fail every later call, so the sweeper would never run
// again) is dropped: the call ends its pass there, counted in `cursorsDropped`, and the next call
// starts over at the prefix (the rows past it wait one pass, never skipped for good).
import { blobScanRowsPerCall } from '../../constants.ts';
import type { LiveRow } from '../../partition/partition.ts';
import { isStorageError } from '../../util/errors.ts';
import type { BlobTables } from './blob-tables.ts';

type Cursor = { readonly start: Buffer } | { readonly continuation: string };

export class ResumableScan {
  readonly #prefix: Buffer;
  /** Where the next call resumes: after a row (its successor key), or at a partition the last page
   * pointed to without a row in it (the scan's continuation); null: at the first row of the prefix. */
  #cursor: Cursor | null = null;
  #cursorsDropped = 0;
  #lastCallDropped = false;

  constructor(prefix: Buffer) {
    this.#prefix = prefix;
  }

  /** True when the last call reached the end of the prefix: the next one starts a new pass. */
  get passEnded(): boolean {
    return this.#cursor === null;
  }

  /** Cursors the partition refused and this walk dropped (each restarted the pass). */
  get cursorsDropped(): number {
    return this.#cursorsDropped;
  }

  /** True when the last call ended its pass by dropping a refused cursor (a pass cut short, not a whole one). */
  get passCutShort(): boolean {
    return this.#lastCallDropped;
  }

  /** The next rows under the prefix (at most rowsMax examined). A page may hold no row yet not end
   * the scan (the partition at the position holds none of the prefix; its continuation names the
   * next one): the walk follows it rather than ending the pass short of the later partitions. */
  async next(tables: BlobTables, rowsMax: number): Promise<LiveRow[]> {
    const found: LiveRow[] = [];
    this.#lastCallDropped = false;
    let at = this.#cursor ?? { start: this.#prefix };
    for (let pages = 0; pages < Math.max(1, rowsMax / blobScanRowsPerCall); pages++) {
      const page = await this.#page(tables, at);
      if (page === null) return found;
      const rows = page.items.flatMap((item) => (item.kind === 'row' ? [item.row] : []));
      found.push(...rows);
      if (page.continuation === null) {
        this.#cursor = null;
        return found;
      }
      const last = rows.at(-1);
      at = last === undefined ? { continuation: page.continuation } : { start: Buffer.concat([last.key, Buffer.from([0])]) };
    }
    this.#cursor = at;
    return found;
  }

  /** One scan page at `at`; null when the partition refused the cursor (dropped: the pass starts over). */
  async #page(tables: BlobTables, at: Cursor): Promise<Awaited<ReturnType<BlobTables['scan']>> | null> {
    try {
      return await tables.scan({ prefix: this.#prefix, limit: blobScanRowsPerCall, ...at });
    } catch (error) {
      if (!isStorageError(error, 'partition.bad_continuation')) throw error;
      this.#cursor = null;
      this.#cursorsDropped += 1;
      this.#lastCallDropped = true;
      return null;
    }
  }
}
