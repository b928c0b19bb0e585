// ResumableScan: a background sweeper's walk over one key prefix, a bounded number of rows per
// call, resumed where the last call stopped and started over after the last row.
//
// Invariants: each call examines at most `rowsMax` rows (whole scan pages of blobScanRowsPerCall);
// every row under the prefix is returned by some call of every full pass.
// Fault model: a failed scan throws and keeps the cursor; a crash loses only the cursor.
import { blobScanRowsPerCall } from '../../constants.ts';
import type { LiveRow } from '../../partition/partition.ts';
import type { BlobTables } from './blob-tables.ts';

export class ResumableScan {
  readonly #prefix: Buffer;
  /** Where the next call resumes (null: at the first row of the prefix). */
  #cursor: Buffer | null = null;

  constructor(prefix: Buffer) {
    this.#prefix = prefix;
  }

  /** True when the last call reached the end of the prefix: the next one starts a new pass. */
  get passEnded(): boolean {
    return this.#cursor === null;
  }

  /** The next rows under the prefix (at most rowsMax examined). */
  async next(tables: BlobTables, rowsMax: number): Promise<LiveRow[]> {
    const found: LiveRow[] = [];
    let start = this.#cursor ?? this.#prefix;
    for (let pages = 0; pages < Math.max(1, rowsMax / blobScanRowsPerCall); pages++) {
      const page = await tables.scan({ prefix: this.#prefix, start, limit: blobScanRowsPerCall });
      const rows = page.items.flatMap((item) => (item.kind === 'row' ? [item.row] : []));
      found.push(...rows);
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
}
