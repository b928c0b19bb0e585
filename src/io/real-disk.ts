// RealDisk: the Disk seam (src/io/disk.ts) over node:fs/promises, rooted at one directory.
//
// Invariants:
// - every path is checked by assertDiskPath before it is joined under the root, so no call can
//   reach outside the root ('..' or an absolute path is a programmer error: AssertionFailure).
// - sync() is fdatasync(2) (FileHandle.datasync): it flushes the data and the metadata needed to
//   read it back, including the file size; mtime is not needed by Kura.
// - writevSynced() writes through a second descriptor of the file opened O_DSYNC (opened on first
//   use, closed with the file or at a truncate): POSIX synchronized I/O data integrity, what fdatasync gives, for
//   that write's range; a failure poisons the handle as a failed sync() does. A write whose
//   4 KiB-aligned middle is at least directWriteBytesMin goes in three synchronous pieces, in file
//   order: head and tail through the O_DSYNC descriptor, the middle through a third descriptor
//   opened O_DIRECT | O_DSYNC from an aligned staging buffer (docs/formats/extent-file.md,
//   "Writing"): the page cache's copy into new pages is what such a write cost. Once the file
//   system refused O_DIRECT, no file of the disk keeps that descriptor: the file that met the
//   refusal closes it at once, the others at their next synced write.
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
// last holder give it back instead of leaving it to the garbage collector. A read of at least
// directReadBytesMin reads its 4 KiB-aligned cover through a descriptor opened
// O_RDONLY | O_DIRECT (open only while large reads of the file are in flight: the first opens it,
// the last closes it, so a sealed extent's file holds one descriptor between reads) into an
// aligned staging buffer (its own pool, beside the write staging) and copies the asked bytes out
// into the buffer it returns (docs/formats/extent-file.md, "Reading"):
// a block just written O_DIRECT is not in the page cache, and filling new page-cache pages is what
// such a read cost. The staging buffer is back in its pool before read() returns, so nothing a
// caller holds is ever reused under it. No staging buffer free, a cover larger than one, or EINVAL
// from the file system (before any byte; then for every file of the disk): buffered.
// Every large read and write is counted by the way it went (directIo(): O_DIRECT, or buffered for
// want of a staging buffer, a refusal or a cover too large; docs/metrics.md kura_disk_large_*), and
// the first refusal in each direction is logged (warn) when the disk has a logger.
//
// Test-only canary: when canary.skipFsync is set, sync() and syncDirectory() skip the fsync
// itself (argument and state checks still run), so the suite can prove it notices a missing
// fsync (TESTING.md, canary builds).
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, rename, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { join } from 'node:path';
import { assert, assertByteCount } from '../util/assert.ts';
import { canary } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import type { StorageErrorCode } from '../util/errors.ts';
import type { ReadBufferPool } from '../util/read-buffer-pool.ts';
import { dataAppendBytesMax, directReadBuffers, directReadBytesMin, directWriteBuffers, directWriteBytesMin } from '../constants.ts';
import { AlignedBuffers } from './aligned-buffers.ts';
import type { DirectIoReport, Disk, DiskFile, LargeIoCounts, LargeIoMode, OpenOptions } from './disk.ts';
import { assertDiskPath } from './disk-path.ts';

export interface RealDiskOptions {
  /** The directory that holds everything this disk stores; it must exist. */
  readonly root: string;
  /** Where large reads take their buffers from; absent: a fresh buffer per read. */
  readonly readBuffers?: ReadBufferPool;
  /** Staging buffers for O_DIRECT writes (a pool may serve several disks: directWriteStaging);
   * absent: directWriteBuffers of its own; null: never O_DIRECT. */
  readonly directWrites?: AlignedBuffers | null;
  /** Opens the O_DIRECT descriptor of a file; absent: open(2). The seam where tests put a file
   * system that accepts the open and refuses the write (no such file system is at hand here). */
  readonly openDirect?: DescriptorOpener;
  /** Staging buffers for O_DIRECT reads (a pool may serve several disks: directReadStaging);
   * absent: directReadBuffers of its own; null: never O_DIRECT. */
  readonly directReads?: AlignedBuffers | null;
  /** Reads of at least this many bytes go O_DIRECT (default directReadBytesMin; tests lower it). */
  readonly directReadBytesMin?: number;
  /** Where the disk says, once per direction, that the file system refused O_DIRECT; absent: silent. */
  readonly logger?: Logger;
}

/** The file system refused O_DIRECT: from now on this disk's large writes (or reads) go buffered. */
interface DirectRefusal {
  readonly io: 'write' | 'read';
  /** The file whose open or transfer was refused (relative to the disk's root). */
  readonly path: string;
  readonly at: 'open' | 'transfer';
  readonly errno: string;
}

/** Opens a second descriptor of a file with the given flags (node:fs/promises' open). */
export type DescriptorOpener = (fullPath: string, flags: number) => Promise<FileHandle>;

/** O_DIRECT pieces start and end on page boundaries (any device's logical block divides 4 KiB). */
const directAlignmentBytes = 4096;

/** What a disk's files share about O_DIRECT in one direction (writes or reads): the staging
 * buffers, whether the file system takes it, and how its large transfers went. */
class DirectIo {
  readonly buffers: AlignedBuffers;
  readonly open: DescriptorOpener;
  /** Transfers of at least this many bytes are large: O_DIRECT if they can. */
  readonly bytesMin: number;
  readonly counts: LargeIoCounts = { direct: 0, noStagingBuffer: 0, refused: 0, coverTooLarge: 0 };
  /** False once the file system refused O_DIRECT (EINVAL): every file of the disk goes buffered. */
  supported = true;
  private readonly io: DirectRefusal['io'];
  private readonly onRefused: ((refusal: DirectRefusal) => void) | null;

  constructor(fields: { readonly io: DirectRefusal['io']; readonly buffers: AlignedBuffers; readonly open: DescriptorOpener; readonly bytesMin: number; readonly onRefused: ((refusal: DirectRefusal) => void) | null }) {
    this.io = fields.io;
    this.buffers = fields.buffers;
    this.open = fields.open;
    this.bytesMin = fields.bytesMin;
    this.onRefused = fields.onRefused;
  }

  get mode(): LargeIoMode {
    return this.supported ? 'direct' : 'refused';
  }

  /** A staging buffer for one large transfer; null (counted: refused, or none free): buffered. */
  staging(): Buffer | null {
    if (!this.supported) {
      this.counts.refused += 1;
      return null;
    }
    const buffer = this.buffers.acquire();
    if (buffer === null) this.counts.noStagingBuffer += 1;
    return buffer;
  }

  /** The file system refused a large transfer's O_DIRECT: it goes buffered, and so does every later one. */
  refuse(refusal: Omit<DirectRefusal, 'io'>): void {
    this.counts.refused += 1;
    if (!this.supported) return;
    this.supported = false;
    this.onRefused?.({ io: this.io, ...refusal });
  }
}

const noLargeIo: LargeIoCounts = { direct: 0, noStagingBuffer: 0, refused: 0, coverTooLarge: 0 };

/** An append-sized staging buffer: an 8 MiB body and its record header. */
const stagingBytes = dataAppendBytesMax + directAlignmentBytes;

/** A pool of up to buffersMax append-sized staging buffers, for one RealDisk or shared by several. */
export function directWriteStaging(buffersMax: number): AlignedBuffers {
  return new AlignedBuffers({ bufferBytes: stagingBytes, buffersMax });
}

/** Read staging: a whole 8 MiB record with its header, from the page before it to the page after. */
export function directReadStaging(buffersMax: number): AlignedBuffers {
  return new AlignedBuffers({ bufferBytes: stagingBytes + directAlignmentBytes, buffersMax });
}

export class RealDisk implements Disk {
  readonly name: string;
  private readonly root: string;
  private readonly readBuffers: ReadBufferPool | null;
  private readonly direct: DirectIo | null;
  private readonly directReads: DirectIo | null;

  constructor(options: RealDiskOptions) {
    this.root = options.root;
    this.name = options.root;
    this.readBuffers = options.readBuffers ?? null;
    const logger = options.logger;
    const onRefused = logger === undefined ? null : (refusal: DirectRefusal): void => {
      logger.warn({ disk: this.name, ...refusal }, 'the file system refused O_DIRECT: this disk\'s large writes (io=write) or reads (io=read) go through the page cache from now on');
    };
    const buffers = options.directWrites === undefined ? directWriteStaging(directWriteBuffers) : options.directWrites;
    this.direct = buffers === null ? null : new DirectIo({ io: 'write', buffers, open: options.openDirect ?? open, bytesMin: directWriteBytesMin, onRefused });
    const readStaging = options.directReads === undefined ? directReadStaging(directReadBuffers) : options.directReads;
    this.directReads = readStaging === null ? null : new DirectIo({ io: 'read', buffers: readStaging, open, bytesMin: options.directReadBytesMin ?? directReadBytesMin, onRefused });
  }

  /** How large synced writes go: 'direct' (O_DIRECT middles), 'refused' (the file system said
   * EINVAL once: buffered O_DSYNC from then on) or 'off' (no staging buffers). */
  get directWriteMode(): LargeIoMode {
    return this.direct?.mode ?? 'off';
  }

  directIo(): DirectIoReport {
    const report = (way: DirectIo | null): DirectIoReport['writes'] => ({ mode: way?.mode ?? 'off', counts: { ...(way?.counts ?? noLargeIo) } });
    return { writes: report(this.direct), reads: report(this.directReads) };
  }

  async open(path: string, options: OpenOptions): Promise<DiskFile> {
    const full = this.resolve(path, { allowRoot: false });
    const exclusive = options.exclusive === true;
    let flags = fsConstants.O_RDWR;
    if (options.create || exclusive) flags |= fsConstants.O_CREAT;
    if (exclusive) flags |= fsConstants.O_EXCL;
    try {
      return new RealFile({ path, fullPath: full, handle: await open(full, flags, 0o644), readBuffers: this.readBuffers, direct: this.direct, directReads: this.directReads });
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
  private readonly handle: FileHandle;
  private readonly readBuffers: ReadBufferPool | null;
  private state: HandleState = { kind: 'open' };
  /** The same file opened O_WRONLY | O_DSYNC for writevSynced, on its first use. */
  private readonly synced: ExtraDescriptor;
  /** The same file opened O_WRONLY | O_DSYNC | O_DIRECT for a large writevSynced's aligned middle. */
  private readonly directSynced: ExtraDescriptor;
  private readonly direct: DirectIo | null;
  /** The same file opened O_RDONLY | O_DIRECT while large reads are in flight. */
  private readonly directRead: ExtraDescriptor;
  private readonly directReads: DirectIo | null;

  constructor(fields: { path: string; fullPath: string; handle: FileHandle; readBuffers: ReadBufferPool | null; direct: DirectIo | null; directReads: DirectIo | null }) {
    this.path = fields.path;
    this.handle = fields.handle;
    this.readBuffers = fields.readBuffers;
    this.direct = fields.direct;
    this.directReads = fields.directReads;
    this.synced = new ExtraDescriptor(fields.fullPath, fsConstants.O_WRONLY | fsConstants.O_DSYNC);
    this.directSynced = new ExtraDescriptor(fields.fullPath, fsConstants.O_WRONLY | fsConstants.O_DSYNC | fsConstants.O_DIRECT, fields.direct?.open);
    this.directRead = new ExtraDescriptor(fields.fullPath, fsConstants.O_RDONLY | fsConstants.O_DIRECT);
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
    const direct = await this.readDirect(position, length);
    if (direct !== null) return direct;
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

  /** A large read through O_DIRECT via a staging buffer (see the header); null: read it the buffered way. */
  private async readDirect(position: number, length: number): Promise<Buffer | null> {
    const direct = this.directReads;
    if (direct === null || length < direct.bytesMin) return null;
    const start = Math.floor(position / directAlignmentBytes) * directAlignmentBytes;
    const end = Math.ceil((position + length) / directAlignmentBytes) * directAlignmentBytes;
    if (end - start > direct.buffers.bufferBytes) {
      direct.counts.coverTooLarge += 1;
      return null;
    }
    const staging = direct.staging();
    if (staging === null) return null;
    try {
      const filled = await this.fillDirect(start, staging.subarray(0, end - start));
      if (filled === null) return null;
      direct.counts.direct += 1;
      // Short only at the end of the file, as a buffered read.
      const available = Math.max(0, Math.min(length, filled - (position - start)));
      const buffer = this.readBuffers?.acquire(length) ?? Buffer.allocUnsafe(length);
      staging.copy(buffer, 0, position - start, position - start + available);
      return available === length ? buffer : buffer.subarray(0, available);
    } finally {
      direct.buffers.release(staging);
    }
  }

  /** Fills `target` from the aligned `position` up to the end of the file; the bytes read, or null if the file system refuses O_DIRECT. */
  private async fillDirect(position: number, target: Buffer): Promise<number | null> {
    let handle: FileHandle;
    try {
      handle = await this.directRead.borrow();
    } catch (error) {
      if (errnoCode(error) === 'EINVAL') return this.refuseDirectReads('open');
      throw fsError(error, 'open', this.path, { flags: 'O_RDONLY|O_DIRECT' });
    }
    try {
      return await this.preadDirect(handle, position, target);
    } finally {
      await this.directRead.giveBack();
    }
  }

  /** Reads through the O_DIRECT descriptor from the aligned `position` into `target` (see fillDirect). */
  private async preadDirect(handle: FileHandle, position: number, target: Buffer): Promise<number | null> {
    let filled = 0;
    try {
      // A read that stops off a page boundary has met the end of the file (a next one would be unaligned).
      while (filled < target.byteLength && filled % directAlignmentBytes === 0) {
        const { bytesRead } = await handle.read(target, filled, target.byteLength - filled, position + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
    } catch (error) {
      // EINVAL before any byte moved: the file system checked the alignment and said no.
      if (filled === 0 && errnoCode(error) === 'EINVAL') return this.refuseDirectReads('transfer');
      throw fsError(error, 'read', this.path, { position, length: target.byteLength, direct: true });
    }
    return filled;
  }

  private refuseDirectReads(at: DirectRefusal['at']): null {
    this.directReads?.refuse({ path: this.path, at, errno: 'EINVAL' });
    return null;
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
    const write: PartsWrite = { position, parts, total, written: 0 };
    try {
      await writeBetween(this.handle, write, total);
    } catch (error) {
      throw fsError(error, 'write', this.path, { position, length: total, written: write.written });
    }
  }

  /**
   * One pwritev through an O_DSYNC descriptor: it returns once the bytes and the file size are on
   * stable storage, one thread-pool job where writev + sync are two with a main-thread hop between.
   * A large one writes its aligned middle through O_DIRECT (see the header).
   */
  async writevSynced(position: number, parts: readonly Uint8Array[]): Promise<void> {
    if (canary.skipFsync) return this.writev(position, parts);
    const total = checkedWriteBytes(position, parts);
    this.checkUsable();
    const synced = await this.openSynced();
    const write: PartsWrite = { position, parts, total, written: 0 };
    // Opened before another file of the disk met the refusal: it will never write.
    if (this.direct?.supported === false && this.directSynced.opened) await this.directSynced.release();
    const middle = this.directMiddle(position, total);
    const staging = middle === null ? null : (this.direct?.staging() ?? null);
    try {
      if (middle === null || staging === null) await writeBetween(synced, write, total);
      else await this.writeThroughDirect(synced, write, { ...middle, staging });
    } catch (error) {
      throw this.failedSyncedWrite(error, write);
    } finally {
      if (staging !== null) this.direct?.buffers.release(staging);
    }
  }

  /** The page-aligned middle of [position, position + total) if it is large enough for O_DIRECT. */
  private directMiddle(position: number, total: number): { readonly start: number; readonly end: number } | null {
    if (this.direct === null) return null;
    const start = Math.ceil(position / directAlignmentBytes) * directAlignmentBytes;
    const end = Math.floor((position + total) / directAlignmentBytes) * directAlignmentBytes;
    const length = end - start;
    return length >= this.direct.bytesMin && length <= this.direct.buffers.bufferBytes ? { start, end } : null;
  }

  /** Head, aligned middle, tail: each durable before the next starts, so a crash leaves a prefix. */
  private async writeThroughDirect(synced: FileHandle, write: PartsWrite, middle: { readonly start: number; readonly end: number; readonly staging: Buffer }): Promise<void> {
    await writeBetween(synced, write, middle.start - write.position);
    const aligned = middle.staging.subarray(0, middle.end - middle.start);
    copyBetween(write.parts, write.written, aligned);
    if (!(await this.writeDirect(middle.start, aligned, write))) await writeBetween(synced, write, middle.end - write.position);
    await writeBetween(synced, write, write.total);
  }

  /** The aligned bytes through O_DIRECT; false (nothing written) if the file system refuses it. */
  private async writeDirect(position: number, aligned: Buffer, write: PartsWrite): Promise<boolean> {
    let handle: FileHandle;
    try {
      handle = await this.directSynced.open();
    } catch (error) {
      if (errnoCode(error) !== 'EINVAL') throw error;
      return this.refuseDirect('open');
    }
    let done = 0;
    try {
      while (done < aligned.byteLength) {
        const { bytesWritten } = await handle.write(aligned, done, aligned.byteLength - done, position + done);
        done += bytesWritten;
        write.written += bytesWritten;
      }
    } catch (error) {
      // EINVAL before any byte moved: the file system checked the alignment and said no; the
      // descriptor it opened will never write.
      if (done !== 0 || errnoCode(error) !== 'EINVAL') throw error;
      await this.directSynced.release();
      return this.refuseDirect('transfer');
    }
    if (this.direct !== null) this.direct.counts.direct += 1;
    return true;
  }

  private refuseDirect(at: DirectRefusal['at']): false {
    this.direct?.refuse({ path: this.path, at, errno: 'EINVAL' });
    return false;
  }

  private async openSynced(): Promise<FileHandle> {
    try {
      return await this.synced.open();
    } catch (error) {
      throw fsError(error, 'open', this.path, { flags: 'O_WRONLY|O_DSYNC' });
    }
  }

  /** The bytes may be in the page cache with their flush failed: lost, as after a failed sync. */
  private failedSyncedWrite(error: unknown, write: PartsWrite): unknown {
    this.state = { kind: 'poisoned', cause: error };
    const errno = errnoCode(error);
    if (errno === 'ENOSPC' || errno === 'EDQUOT') return fsError(error, 'write', this.path, { position: write.position, length: write.total, written: write.written });
    return fsyncFailed(error, this.path);
  }

  async truncate(length: number): Promise<void> {
    assertByteCount(length, 'truncate length');
    this.checkUsable();
    try {
      await this.handle.truncate(length);
      // A truncate ends a run of synced writes (an extent's seal starts with one): the extra
      // descriptors go, so a sealed extent's file holds one descriptor, not four (a large read
      // opens its O_DIRECT one for as long as large reads of the file are in flight).
      await this.releaseExtras();
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
      await this.releaseExtras();
    } catch (error) {
      throw fsError(error, 'close', this.path);
    }
  }

  private async releaseExtras(): Promise<void> {
    await this.synced.release();
    await this.directSynced.release();
    await this.directRead.release();
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

/** A write of parts at a file position, and how many of its bytes are written so far. */
interface PartsWrite {
  readonly position: number;
  readonly parts: readonly Uint8Array[];
  readonly total: number;
  written: number;
}

/** Writes the write's bytes from `written` up to `end` (pwritev(2) may write less than asked: it goes on). */
async function writeBetween(handle: FileHandle, write: PartsWrite, end: number): Promise<void> {
  while (write.written < end) {
    const { bytesWritten } = await handle.writev(partsBetween(write.parts, write.written, end), write.position + write.written);
    write.written += bytesWritten;
  }
}

/** The parts' bytes [from, to) as views, no copies. */
function partsBetween(parts: readonly Uint8Array[], from: number, to: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  let partStart = 0;
  for (const part of parts) {
    const partEnd = partStart + part.byteLength;
    if (partEnd > from && partStart < to) views.push(part.subarray(Math.max(0, from - partStart), Math.min(part.byteLength, to - partStart)));
    partStart = partEnd;
  }
  return views;
}

/** Copies the parts' bytes from `from` on into `target`, filling it. */
function copyBetween(parts: readonly Uint8Array[], from: number, target: Buffer): void {
  let filled = 0;
  for (const view of partsBetween(parts, from, from + target.byteLength)) {
    target.set(view, filled);
    filled += view.byteLength;
  }
  assert(filled === target.byteLength, 'the staging buffer is filled from the parts');
}

/** A second descriptor of a file with other flags, opened on first use, closed at release; or
 * borrowed: opened by the first borrower, closed when the last one gives it back. */
class ExtraDescriptor {
  private handle: Promise<FileHandle> | null = null;
  private borrowers = 0;
  private readonly fullPath: string;
  private readonly flags: number;
  private readonly opener: DescriptorOpener;

  constructor(fullPath: string, flags: number, opener: DescriptorOpener = open) {
    this.fullPath = fullPath;
    this.flags = flags;
    this.opener = opener;
  }

  open(): Promise<FileHandle> {
    this.handle ??= this.opener(this.fullPath, this.flags).catch((error: unknown) => {
      this.handle = null;
      throw error;
    });
    return this.handle;
  }

  get opened(): boolean {
    return this.handle !== null;
  }

  /** open() for one more borrower, who calls giveBack() when done with it. */
  async borrow(): Promise<FileHandle> {
    this.borrowers += 1;
    try {
      return await this.open();
    } catch (error) {
      this.borrowers -= 1;
      throw error;
    }
  }

  /** The last borrower's giveBack closes it. */
  async giveBack(): Promise<void> {
    assert(this.borrowers > 0, 'a descriptor is given back only after it was borrowed');
    this.borrowers -= 1;
    if (this.borrowers === 0) await this.release();
  }

  /** Closes it if open (a failed open left nothing to close). */
  async release(): Promise<void> {
    const opened = this.handle;
    if (opened === null) return;
    this.handle = null;
    const handle = await opened.catch(() => null);
    await handle?.close();
  }
}
