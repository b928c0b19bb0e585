// The machine's own durable-write limit, measured in the same run as Kura: a plain file append
// followed by fdatasync, one writer, for a given record size. Kura's figures are reported as
// ratios to this number (a durable append cannot be cheaper than one fsync'd write, unless
// several appends share one fsync — which is what group commit does).
import { open, rm, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { runClosedLoop, type ThroughputResult } from './stats.ts';

export async function measureRawDurableAppend(options: {
  readonly directory: string;
  readonly recordBytes: number;
  readonly durationMs: number;
  readonly operationsMax: number;
}): Promise<ThroughputResult> {
  const directory = await mkdtemp(join(options.directory, 'raw-append-'));
  const file = await open(join(directory, 'append.bin'), 'w');
  const record = Buffer.alloc(options.recordBytes, 0x5a);
  try {
    return await runClosedLoop({
      concurrency: 1,
      durationMs: options.durationMs,
      operationsMax: options.operationsMax,
      bytesPerOperation: options.recordBytes,
      operation: async () => {
        await file.write(record);
        await file.datasync();
      },
    });
  } finally {
    await file.close();
    await rm(directory, { recursive: true, force: true });
  }
}
