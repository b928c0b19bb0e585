// The one way Kura creates or replaces a whole small file (manifests, checkpoints, node
// identity): STYLE.md's disk idiom "write tmp, fsync, rename, fsync the directory".
//
//   write  <path>.tmp   (truncated first: a crash may have left an old one)
//   sync   <path>.tmp   the bytes are durable under the tmp name
//   rename <path>.tmp → <path>   atomic: readers see the old file or the new one, never a mix
//   syncDirectory(parent)        the rename itself is durable
//
// Invariants: when writeFileDurably resolves, a crash leaves exactly `data` at `path`. If it
// rejects or the power fails during it, `path` holds its old content or the new one, whole;
// a stale `<path>.tmp` may remain and is overwritten by the next call. One writer per path
// (two concurrent calls for the same path would share the tmp file): a caller's invariant.
// Fault model: any step may fail with a StorageError; the error is passed on unchanged after
// the handle is closed and the tmp file removed where possible.
import { readBytesMax } from '../constants.ts';
import { assertByteCount } from '../util/assert.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import type { Disk, DiskFile } from './disk.ts';
import { assertDiskPath, parentDirectory } from './disk-path.ts';

/** Suffix of the temporary file written next to the target. */
export const temporaryFileSuffix = '.tmp';

/** Creates or replaces `path` with `data`, durably and atomically (see the file header). */
export async function writeFileDurably(disk: Disk, path: string, data: Uint8Array): Promise<void> {
  assertDiskPath(path, { allowRoot: false });
  const temporaryPath = `${path}${temporaryFileSuffix}`;
  const file = await disk.open(temporaryPath, { create: true });
  try {
    await file.truncate(0);
    await file.write(0, data);
    await file.sync();
  } catch (error) {
    await closeQuietly(file);
    await removeQuietly(disk, temporaryPath);
    throw error;
  }
  await file.close();
  await disk.rename(temporaryPath, path);
  await disk.syncDirectory(parentDirectory(path));
}

export interface ReadFileOptions {
  /** Larger files fail with wire.too_large instead of being read into memory. */
  readonly bytesMax?: number;
}

/** The whole content of `path`, or null if there is no such file. */
export async function readFileFully(disk: Disk, path: string, options: ReadFileOptions = {}): Promise<Buffer | null> {
  const bytesMax = options.bytesMax ?? readBytesMax;
  assertByteCount(bytesMax, 'bytesMax');
  let file: DiskFile;
  try {
    file = await disk.open(path, { create: false });
  } catch (error) {
    if (isStorageError(error, 'io.not_found')) return null;
    throw error;
  }
  try {
    const size = await file.size();
    if (size > bytesMax) {
      throw new StorageError('wire.too_large', `${path} is ${size} bytes, more than the ${bytesMax} allowed`, {
        context: { path, size, bytesMax },
      });
    }
    return await file.read(0, size);
  } finally {
    await closeQuietly(file);
  }
}

/** Closes a handle on an error path; a StorageError here would hide the original one. */
async function closeQuietly(file: DiskFile): Promise<void> {
  try {
    await file.close();
  } catch (error) {
    if (!isStorageError(error)) throw error;
  }
}

async function removeQuietly(disk: Disk, path: string): Promise<void> {
  try {
    await disk.remove(path);
  } catch (error) {
    if (!isStorageError(error)) throw error;
  }
}
