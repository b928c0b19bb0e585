// The machine's limits, measured in the same run as the peers (issue 5): fsync'd sequential
// file append and sequential read, at every size the workloads use. The third limit, the null
// server, is a peer like the others. Kura's figures are reported as ratios to these.
import { tmpdir } from 'node:os';
import { measureRawDurableAppend, type DurableAppendMethod } from '../lib/raw-limit.ts';
import type { ThroughputResult } from '../lib/stats.ts';
import { measureRawSequentialRead } from './raw-read.ts';

export interface SizedLimit {
  readonly sizeBytes: number;
  readonly result: ThroughputResult;
  /** For the durable append: how the faster way appended (absent in results before the tenth session: fdatasync). */
  readonly method?: DurableAppendMethod;
  /** The other way's result, when both were measured. */
  readonly slower?: { readonly method: DurableAppendMethod; readonly result: ThroughputResult };
}

export interface MachineLimits {
  /** One writer's durable append per record size: write(record) then fdatasync, and for large
   * page-multiple records also an O_DIRECT | O_DSYNC write; the faster of the two is the limit. */
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
    fsyncAppend.push(await measureDurableAppendLimit(sizeBytes, options));
    options.onProgress(`limit: sequential read ${sizeBytes} B`);
    sequentialRead.push({ sizeBytes, result: await measureRawSequentialRead({ directory: tmpdir(), recordBytes: sizeBytes, fileBytes: Math.min(options.bytesMax, 256 << 20), durationMs: options.durationMs, operationsMax: options.operationsMax }) });
  }
  return { fsyncAppend, sequentialRead };
}

/** Records this large (and a multiple of 4 KiB) are also appended through O_DIRECT, as Kura writes them. */
const directAppendRecordBytesMin = 1024 * 1024;

async function measureDurableAppendLimit(sizeBytes: number, options: { readonly durationMs: number; readonly operationsMax: number; readonly bytesMax: number; readonly onProgress: (label: string) => void }): Promise<SizedLimit> {
  const bounds = fsyncAppendBounds(sizeBytes, options);
  options.onProgress(`limit: fsync'd append ${sizeBytes} B`);
  const buffered = await measureRawDurableAppend({ directory: tmpdir(), recordBytes: sizeBytes, ...bounds });
  if (sizeBytes < directAppendRecordBytesMin || sizeBytes % 4096 !== 0) return { sizeBytes, result: buffered, method: 'fdatasync' };
  options.onProgress(`limit: O_DIRECT append ${sizeBytes} B`);
  const direct = await measureRawDurableAppend({ directory: tmpdir(), recordBytes: sizeBytes, ...bounds, method: 'direct' });
  return fasterAppend(sizeBytes, { method: 'fdatasync', result: buffered }, { method: 'direct', result: direct });
}

type MethodResult = { readonly method: DurableAppendMethod; readonly result: ThroughputResult };

/** The limit is the faster way; the slower is kept beside it for the report. */
export function fasterAppend(sizeBytes: number, a: MethodResult, b: MethodResult): SizedLimit {
  const [faster, slower] = a.result.mibPerSecond >= b.result.mibPerSecond ? [a, b] : [b, a];
  return { sizeBytes, result: faster.result, method: faster.method, slower };
}

export function limitFor(limits: readonly SizedLimit[], sizeBytes: number): ThroughputResult | null {
  return limits.find((limit) => limit.sizeBytes === sizeBytes)?.result ?? null;
}
