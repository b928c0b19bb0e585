// The machine's sequential read limit: one reader reading a file record by record with
// positional reads, wrapping at its end. The file is written and fsync'd just before, so it is
// in the page cache — as blobs just written by a server are when the get loops read them; the
// figure is the ceiling of a read served from memory through the file system, not of the disk.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runClosedLoop, type ThroughputResult } from '../lib/stats.ts';

const writeChunkBytes = 8 << 20;

export async function measureRawSequentialRead(options: {
  readonly directory: string;
  readonly recordBytes: number;
  readonly fileBytes: number;
  readonly durationMs: number;
  readonly operationsMax: number;
}): Promise<ThroughputResult> {
  const directory = await mkdtemp(join(options.directory, 'raw-read-'));
  const path = join(directory, 'read.bin');
  const fileBytes = Math.max(options.recordBytes, options.fileBytes - (options.fileBytes % options.recordBytes));
  try {
    await writeFile(path, fileBytes);
    const file = await open(path, 'r');
    const buffer = Buffer.allocUnsafe(options.recordBytes);
    let position = 0;
    try {
      return await runClosedLoop({
        concurrency: 1,
        durationMs: options.durationMs,
        operationsMax: options.operationsMax,
        bytesPerOperation: options.recordBytes,
        operation: async () => {
          const { bytesRead } = await file.read(buffer, 0, options.recordBytes, position);
          if (bytesRead !== options.recordBytes) throw new Error(`short read: ${bytesRead} of ${options.recordBytes}`);
          position = (position + options.recordBytes) % fileBytes;
        },
      });
    } finally {
      await file.close();
    }
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

async function writeFile(path: string, fileBytes: number): Promise<void> {
  const file = await open(path, 'w');
  const chunk = Buffer.alloc(writeChunkBytes, 0x72);
  try {
    for (let written = 0; written < fileBytes; written += chunk.length) {
      await file.write(chunk, 0, Math.min(chunk.length, fileBytes - written));
    }
    await file.sync();
  } finally {
    await file.close();
  }
}
