// Durable append throughput of the stream layer's local replica storage (ExtentStore on a real
// disk), against the machine's raw durable-append limit measured in the same run
// (issue 2, "Performance"). One extent, appends pipelined from `concurrency` writers, group
// commit on and off (P4's switch), sizes 4 KiB / 64 KiB / 1 MiB.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extentBytesMax } from '../src/constants.ts';
import { RealDisk } from '../src/io/real-disk.ts';
import { ExtentStore, type ExtentStoreStats } from '../src/stream/extent-store.ts';
import { SystemClock } from '../src/util/clock.ts';
import { measureRawDurableAppend } from './lib/raw-limit.ts';
import { runClosedLoop, type ThroughputResult } from './lib/stats.ts';

export interface AppendCase {
  readonly recordBytes: number;
  readonly concurrency: number;
  readonly groupCommit: boolean;
}

export interface AppendCaseResult extends AppendCase {
  readonly kura: ThroughputResult;
  /** Where the fsyncs went: journal fsyncs and extent-file fsyncs per append, records per batch. */
  readonly fsyncs: FsyncFigures;
  readonly raw: ThroughputResult;
  /** Kura bytes/s ÷ raw bytes/s. */
  readonly bytesRatio: number;
  /** Kura appends/s ÷ raw fsyncs/s. */
  readonly opsRatio: number;
}

export interface Bounds {
  readonly durationMs: number;
  readonly operationsMax: number;
}

export interface FsyncFigures {
  readonly journalFsyncsPerAppend: number;
  readonly extentFsyncsPerAppend: number;
  readonly recordsPerJournalBatch: number;
}

export function fsyncFigures(stats: ExtentStoreStats): FsyncFigures {
  const appends = Math.max(1, stats.appends);
  return {
    journalFsyncsPerAppend: stats.journal.fsyncs / appends,
    extentFsyncsPerAppend: (stats.appendFsyncs + stats.extentSyncs) / appends,
    recordsPerJournalBatch: stats.journal.records / Math.max(1, stats.journal.batches),
  };
}

/** One case on a fresh store in a temporary directory; the store's counters come back with it. */
export async function measureExtentStoreAppend(appendCase: AppendCase, bounds: Bounds): Promise<{ result: ThroughputResult; stats: ExtentStoreStats }> {
  const root = await mkdtemp(join(tmpdir(), 'kura-bench-extent-'));
  const store = await ExtentStore.open({ disk: new RealDisk({ root }), clock: new SystemClock(), groupCommit: appendCase.groupCommit });
  try {
    const record = Buffer.alloc(appendCase.recordBytes, 0x6b);
    // Like a stream: when the extent is full, continue on a new one (created before use).
    let extentId = 1;
    let nextOffset = 0;
    let created = store.create({ streamId: 1, extentId, epoch: 1 });
    const result = await runClosedLoop({
      concurrency: appendCase.concurrency,
      durationMs: bounds.durationMs,
      operationsMax: bounds.operationsMax,
      bytesPerOperation: appendCase.recordBytes,
      operation: async () => {
        if (nextOffset + record.length > extentBytesMax) {
          extentId += 1;
          nextOffset = 0;
          created = store.create({ streamId: 1, extentId, epoch: 1 });
        }
        const [target, offset, ready] = [extentId, nextOffset, created];
        nextOffset += record.length;
        await ready;
        await store.append(target, offset, record);
      },
    });
    return { result, stats: store.stats() };
  } finally {
    await store.close();
    await rm(root, { recursive: true, force: true });
  }
}

export async function runStreamAppendCases(cases: readonly AppendCase[], bounds: Bounds, onProgress: (done: number, label: string) => void): Promise<AppendCaseResult[]> {
  const results: AppendCaseResult[] = [];
  for (const [index, appendCase] of cases.entries()) {
    onProgress(index, caseLabel(appendCase));
    // The raw limit is measured right before each case, not once per size: on a shared or
    // virtual disk the limit drifts by 2-3× within minutes, and a ratio needs both figures from
    // the same moment.
    const raw = await measureRawDurableAppend({ directory: tmpdir(), recordBytes: appendCase.recordBytes, ...bounds });
    const { result: kura, stats } = await measureExtentStoreAppend(appendCase, bounds);
    results.push({ ...appendCase, kura, fsyncs: fsyncFigures(stats), raw, bytesRatio: kura.mibPerSecond / raw.mibPerSecond, opsRatio: kura.opsPerSecond / raw.opsPerSecond });
  }
  onProgress(cases.length, 'done');
  return results;
}

export function caseLabel(appendCase: AppendCase): string {
  const size = appendCase.recordBytes >= 1 << 20 ? `${appendCase.recordBytes >> 20} MiB` : `${appendCase.recordBytes >> 10} KiB`;
  return `append ${size} ×${appendCase.concurrency} group-commit ${appendCase.groupCommit ? 'on' : 'off'}`;
}

export function streamAppendCases(): AppendCase[] {
  const cases: AppendCase[] = [];
  for (const recordBytes of [4096, 65536, 1 << 20]) {
    for (const concurrency of [1, 16]) {
      for (const groupCommit of [true, false]) cases.push({ recordBytes, concurrency, groupCommit });
    }
  }
  return cases;
}
