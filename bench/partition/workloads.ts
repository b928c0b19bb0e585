// Workloads of the partition benchmark, over either front of the partition layer (the engine,
// `Partition`, or the front end's `PartitionClient` through a `PartitionServer`): point writes,
// a bulk load, point reads and a full listing in pages with continuation, plus a resident-memory
// sampler. Every loop is bounded in count and in time.
import type { CommitResult, LiveRow, PartitionOp, ScanItem } from '../../src/partition/partition.ts';
import type { Column } from '../../src/wire/partition-row.ts';
import { LatencyRecorder, runClosedLoop } from '../lib/stats.ts';
import type { LatencySummary, ThroughputResult } from '../lib/stats.ts';
import { blobColumnCount, blobColumns, blobKey, containerPrefix } from './rows.ts';

/** What both fronts offer (Partition and PartitionClient satisfy it structurally). */
export interface PartitionFront {
  get(key: Buffer): Promise<LiveRow | null>;
  put(key: Buffer, columns: readonly Column[]): Promise<unknown>;
  transact(ops: readonly PartitionOp[]): Promise<CommitResult>;
  scan(options: { readonly prefix?: Buffer; readonly limit: number; readonly continuation?: string }): Promise<{ readonly items: readonly ScanItem[]; readonly continuation: string | null }>;
}

export interface Bounds {
  readonly durationMs: number;
  readonly operationsMax: number;
}

/** Closed-loop puts of fresh ~300-byte rows into `container`. */
export function measurePuts(front: PartitionFront, options: { readonly container: string; readonly concurrency: number; readonly rowBytes: number } & Bounds): Promise<ThroughputResult> {
  return runClosedLoop({
    concurrency: options.concurrency, durationMs: options.durationMs, operationsMax: options.operationsMax, bytesPerOperation: options.rowBytes,
    operation: async (_worker, sequence) => {
      await front.put(blobKey(options.container, sequence), blobColumns(sequence));
    },
  });
}

export interface LoadResult {
  readonly rows: number;
  readonly seconds: number;
  readonly rowsPerSecond: number;
}

/** Writes rows 0..count-1 of `container` in transactions of `batchRows`, `inFlight` at a time. */
export async function loadRows(front: PartitionFront, options: { readonly container: string; readonly count: number; readonly batchRows: number; readonly inFlight: number; readonly onProgress?: (rows: number) => void }): Promise<LoadResult> {
  const startMs = performance.now();
  let next = 0;
  let written = 0;
  const worker = async (): Promise<void> => {
    while (next < options.count) {
      const first = next;
      next = Math.min(options.count, next + options.batchRows);
      const ops: PartitionOp[] = [];
      for (let index = first; index < next; index++) ops.push({ kind: 'put', key: blobKey(options.container, index), columns: blobColumns(index) });
      await front.transact(ops);
      written += ops.length;
      options.onProgress?.(written);
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, () => worker()));
  const seconds = (performance.now() - startMs) / 1000;
  return { rows: written, seconds, rowsPerSecond: written / seconds };
}

/** Closed-loop gets of existing keys: `pick` names the row index each read asks for. */
export async function measureGets(front: PartitionFront, options: { readonly container: string; readonly concurrency: number; readonly pick: (sequence: number) => number } & Bounds): Promise<ThroughputResult> {
  let missing = 0;
  const result = await runClosedLoop({
    concurrency: options.concurrency, durationMs: options.durationMs, operationsMax: options.operationsMax, bytesPerOperation: 0,
    operation: async (_worker, sequence) => {
      if ((await front.get(blobKey(options.container, options.pick(sequence)))) === null) missing += 1;
    },
  });
  if (missing > 0) throw new Error(`${missing} reads of existing rows found nothing`);
  return result;
}

export interface ListResult {
  readonly rows: number;
  /** Column values read (0 unless readColumns). */
  readonly columnsRead: number;
  readonly pages: number;
  readonly seconds: number;
  readonly rowsPerSecond: number;
  readonly page: LatencySummary;
}

/**
 * Lists every row of `container` in pages of `pageRows` with continuation; checks count and order.
 * With `readColumns`, also reads every column value of every row, as ListBlobs does (rows from a
 * PartitionClient materialise their columns only when read).
 */
export async function listAll(front: PartitionFront, options: { readonly container: string; readonly pageRows: number; readonly expectedRows: number; readonly pagesMax: number; readonly readColumns: boolean; readonly onPage?: () => void }): Promise<ListResult> {
  const pageLatency = new LatencyRecorder();
  const prefix = containerPrefix(options.container);
  const startMs = performance.now();
  let rows = 0;
  let pages = 0;
  let previous: Buffer | null = null;
  let columnsRead = 0;
  let continuation: string | null = null;
  do {
    const t0 = performance.now();
    const page: Awaited<ReturnType<PartitionFront['scan']>> = await front.scan({ prefix, limit: options.pageRows, ...(continuation === null ? {} : { continuation }) });
    pageLatency.record(performance.now() - t0);
    for (const item of page.items) {
      if (item.kind !== 'row') throw new Error('a listing without delimiter returned a prefix');
      if (previous !== null && Buffer.compare(previous, item.row.key) >= 0) throw new Error('listing out of order');
      previous = item.row.key;
      if (options.readColumns) columnsRead += readEveryColumn(item.row.columns);
    }
    rows += page.items.length;
    pages += 1;
    continuation = page.continuation;
    options.onPage?.();
  } while (continuation !== null && pages < options.pagesMax);
  const seconds = (performance.now() - startMs) / 1000;
  if (rows !== options.expectedRows) throw new Error(`listed ${rows} rows, expected ${options.expectedRows}`);
  if (options.readColumns && columnsRead !== rows * blobColumnCount) throw new Error(`read ${columnsRead} columns of ${rows} rows`);
  return { rows, pages, columnsRead, seconds, rowsPerSecond: rows / seconds, page: pageLatency.summary() };
}

/** Touches every column's value as a consumer would (strings, bigints, bytes); returns the count. */
function readEveryColumn(columns: readonly Column[]): number {
  let count = 0;
  for (const column of columns) {
    const value = column.value;
    if (value.kind !== 'null' && column.name.length > 0) count += 1;
  }
  return count;
}

/** Samples process.memoryUsage() every `intervalMs` while running; peaks since the last reset. */
export class MemorySampler {
  private timer: ReturnType<typeof setInterval> | null = null;
  peakRssBytes = 0;
  peakHeapUsedBytes = 0;
  /** Buffers and other memory V8 tracks outside its heap (block reads, journal batches, …). */
  peakExternalBytes = 0;
  samples = 0;

  start(intervalMs = 25): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  reset(): void {
    this.peakRssBytes = 0;
    this.peakHeapUsedBytes = 0;
    this.peakExternalBytes = 0;
    this.samples = 0;
    this.sample();
  }

  sample(): void {
    const usage = process.memoryUsage();
    this.peakRssBytes = Math.max(this.peakRssBytes, usage.rss);
    this.peakHeapUsedBytes = Math.max(this.peakHeapUsedBytes, usage.heapUsed);
    this.peakExternalBytes = Math.max(this.peakExternalBytes, usage.external);
    this.samples += 1;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
