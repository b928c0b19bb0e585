// RealDisk: the Disk seam (src/io/disk.ts) over node:fs/promises, rooted at one directory.
//
// Invariants:
// - every path is checked by assertDiskPath before it is joined under the root, so no call can
//   reach outside the root ('..' or an absolute path is a programmer error: AssertionFailure).
// - sync() is fdatasync(2) (FileHandle.datasync): it flushes the data and the metadata needed to
//   read it back, including the file size; mtime is not needed by Kura.
// - writevSynced() writes through a second descriptor of the file opened O_DSYNC (opened on first
//   use, closed with the file or at a truncate): POSIX synchronized I/O data integrity, what fdatasync gives, for
//   that write's range; a failure poisons the handle as a failed sync() does.
// - syncDirectory() opens the directory O_RDONLY|O_DIRECTORY and fsyncs it, which is what makes
//   a create, rename or unlink in it durable on Linux file systems.
// - a failed sync() poisons the handle: every later call on it (except close) fails with
//   io.fsync_failed. After a failed fsync the kernel may have marked the dirty pages clean and
//   dropped the error (fsyncgate, PostgreSQL 2018), so retrying fsync could "succeed" while the
//   data is gone. The caller must treat everything written since the last good sync as lost.
// - close() always releases the descriptor and is idempotent; other calls after close fail with
//   io.closed.
//
// Fault model: whatever the device and kernel do. Errors are mapped to StorageErrors:
//   EIO → io.eio, ENOSPC/EDQUOT → io.enospc, ENOENT/ENOTDIR → io.not_found,
//   EEXIST → io.already_exists, anything else with an errno → io.eio (errno in context).
// Errors without an errno (TypeError and the like) are programmer errors and pass unchanged.
//
// Reads of large blocks may take their buffer from a ReadBufferPool (src/util/read-buffer-pool.ts)
// given at construction: the caller of read() owns the buffer as before; the pool only lets the
// last holder give it back instead of leaving it to the garbage collector.
//
// Test-only canary: when canary.skipFsync is set, sync() and syncDirectory() skip the fsync
// itself (argument and state checks still run), so the suite can prove it notices a missing
// fsync (TESTING.md, canary builds).
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, rename, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { assertByteCount } from '../util/assert.ts';
import { canary } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import type { StorageErrorCode } from '../util/errors.ts';
import type { ReadBufferPool } from '../util/read-buffer-pool.ts';
import type { Disk, DiskFile, OpenOptions } from './disk.ts';
import { assertDiskPath } from './disk-path.ts';

export interface RealDiskOptions {
  /** The directory that holds everything this disk stores; it must exist. */
  readonly root: string;
  /** Where large reads take their buffers from; absent: a fresh buffer per read. */
  readonly readBuffers?: ReadBufferPool;
}

export class RealDisk implements Disk {
  readonly name: string;
  private readonly root: string;
  private readonly readBuffers: ReadBufferPool | null;

  constructor(options: RealDiskOptions) {
    this.root = options.root;
    this.name = options.root;
    this.readBuffers = options.readBuffers ?? null;
  }

  async open(path: string, options: OpenOptions): Promise<DiskFile> {
    const full = this.resolve(path, { allowRoot: false });
    const exclusive = options.exclusive === true;
    let flags = fsConstants.O_RDWR;
    if (options.create || exclusive) flags |= fsConstants.O_CREAT;
    if (exclusive) flags |= fsConstants.O_EXCL;
    try {
      return new RealFile({ path, fullPath: full, handle: await open(full, flags, 0o644), readBuffers: this.readBuffers });
    } catch (error) {
      throw fsError(error, 'open', path);
    }
  }

  async list(directory: string): Promise<string[]> {
    const full = this.resolve(directory, { allowRoot: true });
    try {
      const names = await readdir(full);
      return names.sort();
    } catch (error) {
      throw fsError(error, 'list', directory);
    }
  }

  async makeDirectory(directory: string): Promise<void> {
    const full = this.resolve(directory, { allowRoot: true });
    try {
      await mkdir(full, { recursive: true });
    } catch (error) {
      throw fsError(error, 'makeDirectory', directory);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    const fullFrom = this.resolve(from, { allowRoot: false });
    const fullTo = this.resolve(to, { allowRoot: false });
    try {
      await rename(fullFrom, fullTo);
    } catch (error) {
      throw fsError(error, 'rename', from, { to });
    }
  }

  async remove(path: string): Promise<void> {
    const full = this.resolve(path, { allowRoot: false });
    try {
      await unlink(full);
    } catch (error) {
      // unlink(2) of a directory fails with EISDIR on Linux (EPERM elsewhere); remove it as an
      // (empty) directory instead.
      const code = errnoCode(error);
      if (code !== 'EISDIR' && code !== 'EPERM') throw fsError(error, 'remove', path);
      await this.removeDirectory(full, path);
    }
  }

  async syncDirectory(directory: string): Promise<void> {
    const full = this.resolve(directory, { allowRoot: true });
    let handle: FileHandle;
    try {
      handle = await open(full, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    } catch (error) {
      throw fsError(error, 'syncDirectory', directory);
    }
    try {
      if (!canary.skipFsync) await handle.sync();
    } catch (error) {
      throw fsyncFailed(error, directory);
    } finally {
      await handle.close();
    }
  }

  async exists(path: string): Promise<boolean> {
    const full = this.resolve(path, { allowRoot: true });
    try {
      await stat(full);
      return true;
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw fsError(error, 'exists', path);
    }
  }

  async freeBytes(): Promise<number> {
    try {
      const info = await statfs(this.root);
      return Math.min(Number.MAX_SAFE_INTEGER, info.bavail * info.bsize);
    } catch (error) {
      throw fsError(error, 'freeBytes', '');
    }
  }

  private async removeDirectory(full: string, path: string): Promise<void> {
    try {
      await rmdir(full);
    } catch (error) {
      throw fsError(error, 'remove', path);
    }
  }

  private resolve(path: string, options: { readonly allowRoot: boolean }): string {
    assertDiskPath(path, options);
    return path === '' ? this.root : join(this.root, path);
  }
}

type HandleState = { readonly kind: 'open' } | { readonly kind: 'poisoned'; readonly cause: unknown } | { readonly kind: 'closed' };

class RealFile implements DiskFile {
  readonly path: string;
  private readonly fullPath: string;
  private readonly handle: FileHandle;
  private readonly readBuffers: ReadBufferPool | null;
  private state: HandleState = { kind: 'open' };
  /** The same file opened O_WRONLY | O_DSYNC for writevSynced, on its first use. */
  private syncedHandle: Promise<FileHandle> | null = null;

  constructor(fields: { path: string; fullPath: string; handle: FileHandle; readBuffers: ReadBufferPool | null }) {
    this.path = fields.path;
    this.fullPath = fields.fullPath;
    this.handle = fields.handle;
    this.readBuffers = fields.readBuffers;
  }

  async size(): Promise<number> {
    this.checkUsable();
    try {
      return (await this.handle.stat()).size;
    } catch (error) {
      throw fsError(error, 'size', this.path);
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    assertByteCount(position, 'read position');
    assertByteCount(length, 'read length');
    this.checkUsable();
    // Not zero-filled: only the bytes read are returned (a short read returns a shorter view).
    const buffer = this.readBuffers?.acquire(length) ?? Buffer.allocUnsafe(length);
    let filled = 0;
    try {
      while (filled < length) {
        const { bytesRead } = await this.handle.read(buffer, filled, length - filled, position + filled);
        if (bytesRead === 0) break; // end of file
        filled += bytesRead;
      }
    } catch (error) {
      throw fsError(error, 'read', this.path, { position, length });
    }
    return filled === length ? buffer : buffer.subarray(0, filled);
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    assertByteCount(position, 'write position');
    assertByteCount(position + data.byteLength, 'write end');
    this.checkUsable();
    let written = 0;
    try {
      // pwrite(2) may write less than asked (a signal, a full quota); loop until all is written.
      while (written < data.byteLength) {
        const { bytesWritten } = await this.handle.write(data, written, data.byteLength - written, position + written);
        written += bytesWritten;
      }
    } catch (error) {
      throw fsError(error, 'write', this.path, { position, length: data.byteLength, written });
    }
  }

  async writev(position: number, parts: readonly Uint8Array[]): Promise<void> {
    const total = checkedWriteBytes(position, parts);
    this.checkUsable();
    const progress = { written: 0 };
    try {
      await writeAllParts(this.handle, position, parts, total, progress);
    } catch (error) {
      throw fsError(error, 'write', this.path, { position, length: total, written: progress.written });
    }
  }

  /**
   * One pwritev through an O_DSYNC descriptor: it returns once the bytes and the file size are on
   * stable storage, one thread-pool job where writev + sync are two with a main-thread hop between.
   */
  async writevSynced(position: number, parts: readonly Uint8Array[]): Promise<void> {
    if (canary.skipFsync) return this.writev(position, parts);
    const total = checkedWriteBytes(position, parts);
    this.checkUsable();
    const handle = await this.openSynced();
    const progress = { written: 0 };
    try {
      await writeAllParts(handle, position, parts, total, progress);
    } catch (error) {
      // The bytes may be in the page cache with their flush failed: lost, as after a failed sync.
      this.state = { kind: 'poisoned', cause: error };
      const errno = errnoCode(error);
      if (errno === 'ENOSPC' || errno === 'EDQUOT') throw fsError(error, 'write', this.path, { position, length: total, written: progress.written });
      throw fsyncFailed(error, this.path);
    }
  }

  private openSynced(): Promise<FileHandle> {
    this.syncedHandle ??= open(this.fullPath, fsConstants.O_WRONLY | fsConstants.O_DSYNC).catch((error: unknown) => {
      this.syncedHandle = null;
      throw fsError(error, 'open', this.path, { flags: 'O_WRONLY|O_DSYNC' });
    });
    return this.syncedHandle;
  }

  async truncate(length: number): Promise<void> {
    assertByteCount(length, 'truncate length');
    this.checkUsable();
    try {
      await this.handle.truncate(length);
      // A truncate ends a run of synced writes (an extent's seal starts with one): the O_DSYNC
      // descriptor goes, so a sealed extent's file holds one descriptor, not two.
      await this.releaseSynced();
    } catch (error) {
      throw fsError(error, 'truncate', this.path, { length });
    }
  }

  async sync(): Promise<void> {
    this.checkUsable();
    if (canary.skipFsync) return;
    try {
      await this.handle.datasync();
    } catch (error) {
      this.state = { kind: 'poisoned', cause: error };
      throw fsyncFailed(error, this.path);
    }
  }

  async close(): Promise<void> {
    if (this.state.kind === 'closed') return;
    this.state = { kind: 'closed' };
    try {
      await this.handle.close();
      await this.releaseSynced();
    } catch (error) {
      throw fsError(error, 'close', this.path);
    }
  }

  /** Closes the O_DSYNC descriptor if one is open (a failed open left nothing: writevSynced reported it). */
  private async releaseSynced(): Promise<void> {
    const synced = this.syncedHandle;
    if (synced === null) return;
    this.syncedHandle = null;
    const handle = await synced.catch(() => null);
    await handle?.close();
  }

  private checkUsable(): void {
    switch (this.state.kind) {
      case 'open':
        return;
      case 'poisoned':
        throw new StorageError('io.fsync_failed', `file ${this.path} is poisoned by an earlier failed sync`, {
          cause: this.state.cause,
          context: { path: this.path },
        });
      case 'closed':
        throw new StorageError('io.closed', `file ${this.path} is closed`, { context: { path: this.path } });
    }
  }
}

function errnoCode(error: unknown): string | null {
  if (!(error instanceof Error) || !('code' in error)) return null;
  return typeof error.code === 'string' ? error.code : null;
}

function storageCodeOf(errno: string): StorageErrorCode {
  switch (errno) {
    case 'ENOENT':
    case 'ENOTDIR':
      return 'io.not_found';
    case 'EEXIST':
      return 'io.already_exists';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'io.enospc';
    default:
      return 'io.eio';
  }
}

/** Maps a node:fs error to a StorageError; errors without an errno are rethrown as they are. */
function fsError(error: unknown, operation: string, path: string, extra: Readonly<Record<string, unknown>> = {}): unknown {
  const errno = errnoCode(error);
  // System errors carry a numeric errno; Node's own ERR_* codes are programmer errors.
  const isSystemError = error instanceof Error && 'errno' in error && typeof error.errno === 'number';
  if (errno === null || !isSystemError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StorageError(storageCodeOf(errno), `${operation} ${path}: ${message}`, {
    cause: error,
    context: { operation, path, errno, ...extra },
  });
}

function fsyncFailed(error: unknown, path: string): StorageError {
  const errno = errnoCode(error);
  return new StorageError('io.fsync_failed', `fsync of ${path} failed; data written since the last sync is lost`, {
    cause: error,
    context: { path, errno },
  });
}

/** The total of a write's parts, its position and end checked. */
function checkedWriteBytes(position: number, parts: readonly Uint8Array[]): number {
  const total = parts.reduce((sum, part) => sum + part.byteLength, 0);
  assertByteCount(position, 'write position');
  assertByteCount(position + total, 'write end');
  return total;
}

/** pwritev(2) may write less than asked: goes on from the first byte not written. */
async function writeAllParts(handle: FileHandle, position: number, parts: readonly Uint8Array[], total: number, progress: { written: number }): Promise<void> {
  while (progress.written < total) {
    const { bytesWritten } = await handle.writev(partsFrom(parts, progress.written), position + progress.written);
    progress.written += bytesWritten;
  }
}

/** The parts past their first `skip` bytes (views, no copies). */
function partsFrom(parts: readonly Uint8Array[], skip: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let left = skip;
  for (const part of parts) {
    if (left >= part.byteLength) {
      left -= part.byteLength;
      continue;
    }
    rest.push(left === 0 ? part : part.subarray(left));
    left = 0;
  }
  return rest;
}
