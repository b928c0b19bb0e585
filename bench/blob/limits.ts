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
    const operationsMax = Math.max(1, Math.min(options.operationsMax, Math.floor(options.bytesMax / sizeBytes)));
    options.onProgress(`limit: fsync'd append ${sizeBytes} B`);
    fsyncAppend.push({ sizeBytes, result: await measureRawDurableAppend({ directory: tmpdir(), recordBytes: sizeBytes, durationMs: options.durationMs, operationsMax }) });
    options.onProgress(`limit: sequential read ${sizeBytes} B`);
    sequentialRead.push({ sizeBytes, result: await measureRawSequentialRead({ directory: tmpdir(), recordBytes: sizeBytes, fileBytes: Math.min(options.bytesMax, 256 << 20), durationMs: options.durationMs, operationsMax: options.operationsMax }) });
  }
  return { fsyncAppend, sequentialRead };
}

export function limitFor(limits: readonly SizedLimit[], sizeBytes: number): ThroughputResult | null {
  return limits.find((limit) => limit.sizeBytes === sizeBytes)?.result ?? null;
}
