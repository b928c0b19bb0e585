// The machine's own durable-write limit, measured in the same run as Kura: a plain file append
// followed by fdatasync, one writer, for a given record size. Kura's figures are reported as
// ratios to this number (a durable append cannot be cheaper than one fsync'd write, unless
// several appends share one fsync — which is what group commit does). `method: 'direct'` appends
// through an O_DIRECT | O_DSYNC descriptor from page-aligned memory instead, the way Kura writes a
// large block since the tenth session (docs/formats/extent-file.md, "Writing"): on a VM where
// filling fresh page-cache pages is dear it is the faster durable append, so the limit a large
// upload is judged against must include it.
import { constants as fsConstants } from 'node:fs';
import { open, rm, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { AlignedBuffers } from '../../src/io/aligned-buffers.ts';
import { runClosedLoop, type ThroughputResult } from './stats.ts';

export async function measureRawDurableAppend(options: {
  readonly directory: string;
  readonly recordBytes: number;
  readonly durationMs: number;
  readonly operationsMax: number;
  /** 'fdatasync' (default): write then fdatasync; 'direct': one O_DIRECT | O_DSYNC write (recordBytes a multiple of 4 KiB). */
  readonly method?: DurableAppendMethod;
}): Promise<ThroughputResult> {
  const direct = options.method === 'direct';
  if (direct && options.recordBytes % directPageBytes !== 0) throw new Error(`an O_DIRECT append needs a multiple of ${directPageBytes} bytes, not ${options.recordBytes}`);
  const directory = await mkdtemp(join(options.directory, 'raw-append-'));
  const path = join(directory, 'append.bin');
  const file = direct ? await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_DIRECT | fsConstants.O_DSYNC, 0o644) : await open(path, 'w');
  const record = direct ? pageAlignedBuffer(options.recordBytes) : Buffer.alloc(options.recordBytes, 0x5a);
  let position = 0;
  try {
    return await runClosedLoop({
      concurrency: 1,
      durationMs: options.durationMs,
      operationsMax: options.operationsMax,
      bytesPerOperation: options.recordBytes,
      operation: async () => {
        if (!direct) {
          await file.write(record);
          await file.datasync();
          return;
        }
        await file.write(record, 0, record.length, position);
        position += record.length;
      },
    });
  } finally {
    await file.close();
    await rm(directory, { recursive: true, force: true });
  }
}

export type DurableAppendMethod = 'fdatasync' | 'direct';

const directPageBytes = 4096;

/** Bytes in page-aligned memory, as O_DIRECT requires (Kura's own staging-buffer pool makes it). */
function pageAlignedBuffer(bytes: number): Buffer {
  const buffer = new AlignedBuffers({ bufferBytes: bytes, buffersMax: 1 }).acquire();
  if (buffer === null) throw new Error('no aligned buffer');
  return buffer.subarray(0, bytes).fill(0x5a);
}
