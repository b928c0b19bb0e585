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
  /** Where the next call resumes: after a row (its successor key), or at a partition the last page
   * pointed to without a row in it (the scan's continuation); null: at the first row of the prefix. */
  #cursor: { readonly start: Buffer } | { readonly continuation: string } | null = null;

  constructor(prefix: Buffer) {
    this.#prefix = prefix;
  }

  /** True when the last call reached the end of the prefix: the next one starts a new pass. */
  get passEnded(): boolean {
    return this.#cursor === null;
  }

  /** The next rows under the prefix (at most rowsMax examined). A page may hold no row yet not end
   * the scan (the partition at the position holds none of the prefix; its continuation names the
   * next one): the walk follows it rather than ending the pass short of the later partitions. */
  async next(tables: BlobTables, rowsMax: number): Promise<LiveRow[]> {
    const found: LiveRow[] = [];
    let at = this.#cursor ?? { start: this.#prefix };
    for (let pages = 0; pages < Math.max(1, rowsMax / blobScanRowsPerCall); pages++) {
      const page = await tables.scan({ prefix: this.#prefix, limit: blobScanRowsPerCall, ...at });
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
}
