// The machine's limits, measured in the same run as the peers (issue 5): fsync'd sequential
// file append and sequential read, at every size the workloads use. The third limit, the null
// server, is a peer like the others. Kura's figures are reported as ratios to these.
import { tmpdir } from 'node:os';
import { measureRawDurableAppend } from '../lib/raw-limit.ts';
import type { ThroughputResult } from '../lib/stats.ts';
import { measureRawSequentialRead } from './raw-read.ts';

export interface SizedLimit {
  readonly sizeBytes: number;
  readonly result: ThroughputResult;
}

export interface MachineLimits {
  /** One writer: write(record) then fdatasync, per record size. */
  readonly fsyncAppend: readonly SizedLimit[];
  /** One reader: sequential positional reads of a page-cached file, per record size. */
  readonly sequentialRead: readonly SizedLimit[];
}

/**
 * The fsync'd append of a large record (the upload's 8 MiB block) is measured over at least this
 * many bytes and for at least largeAppendDurationMsMin: over the quick profile's 32 appends (256 MiB,
 * ~0.5 s) it read 939 MiB/s against 402 over the full profile's 128, and 32 appends in a row
 * measured 249 and 527 MiB/s minutes apart (bench/README.md, "eighth session: large upload").
 */
export const largeAppendBytesMin = 1024 * 1024 * 1024;
export const largeAppendDurationMsMin = 5_000;
/** Record sizes from this one up get largeAppendBytesMin / largeAppendDurationMsMin. */
const largeAppendRecordBytesMin = 1024 * 1024;

/** The fsync'd append loop's bounds for one record size: [durationMs, operationsMax]. */
export function fsyncAppendBounds(sizeBytes: number, options: { readonly durationMs: number; readonly operationsMax: number; readonly bytesMax: number }): { durationMs: number; operationsMax: number } {
  const large = sizeBytes >= largeAppendRecordBytesMin;
  const bytesMax = large ? Math.max(options.bytesMax, largeAppendBytesMin) : options.bytesMax;
  return {
    durationMs: large ? Math.max(options.durationMs, largeAppendDurationMsMin) : options.durationMs,
    operationsMax: Math.max(1, Math.min(options.operationsMax, Math.floor(bytesMax / sizeBytes))),
  };
}

export async function measureMachineLimits(options: {
  readonly sizesBytes: readonly number[];
  readonly durationMs: number;
  readonly operationsMax: number;
  readonly bytesMax: number;
  readonly onProgress: (label: string) => void;
}): Promise<MachineLimits> {
  const fsyncAppend: SizedLimit[] = [];
  const sequentialRead: SizedLimit[] = [];
  for (const sizeBytes of options.sizesBytes) {
    options.onProgress(`limit: fsync'd append ${sizeBytes} B`);
    fsyncAppend.push({ sizeBytes, result: await measureRawDurableAppend({ directory: tmpdir(), recordBytes: sizeBytes, ...fsyncAppendBounds(sizeBytes, options) }) });
    options.onProgress(`limit: sequential read ${sizeBytes} B`);
    sequentialRead.push({ sizeBytes, result: await measureRawSequentialRead({ directory: tmpdir(), recordBytes: sizeBytes, fileBytes: Math.min(options.bytesMax, 256 << 20), durationMs: options.durationMs, operationsMax: options.operationsMax }) });
  }
  return { fsyncAppend, sequentialRead };
}

export function limitFor(limits: readonly SizedLimit[], sizeBytes: number): ThroughputResult | null {
  return limits.find((limit) => limit.sizeBytes === sizeBytes)?.result ?? null;
}
