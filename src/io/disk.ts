// The Disk seam (STYLE.md principle 7): every byte Kura stores goes through this interface, so
// the same code runs on the real file system (RealDisk) and on SimDisk, which injects the
// faults of TESTING.md: torn writes, bit flips, lost un-synced writes, EIO, ENOSPC.
//
// Paths are relative to the disk's root and use '/' separators; they never contain '..'.
//
// Fault model and contract, honoured by every implementation:
// - write() data is volatile until sync() of that file returns. A crash may drop any un-synced
//   write, or keep a prefix of it torn at sector (512 B) granularity.
// - writev(position, parts) is one write of the parts' concatenation, without concatenating
//   them in memory (a record header and a 4 MiB body it did not copy): the same crash rule, a
//   prefix of the whole or nothing, never a later part without the earlier ones.
// - writevSynced(position, parts) is writev then sync, as one call: it resolves once the parts
//   and the file size are on stable storage (the data of earlier writes to the file need not be);
//   until then the crash rule of writev holds. A failure poisons the file as a failed sync does.
// - a new directory entry (create, rename, unlink) is durable only after syncDirectory() of
//   its parent returns.
// - a failed sync() poisons the file: every later call on it fails with io.fsync_failed, because
//   the kernel may already have dropped the dirty pages (fsyncgate); the caller must treat all
//   data written since the last successful sync as lost.
// - errors are StorageErrors: io.eio, io.enospc, io.fsync_failed, io.not_found, io.already_exists.

export interface DiskFile {
  readonly path: string;
  /** Current length in bytes (including un-synced writes). */
  size(): Promise<number>;
  /** Reads up to `length` bytes at `position`; shorter only at end of file. */
  read(position: number, length: number): Promise<Buffer>;
  /** Writes all of `data` at `position` (volatile until sync). */
  write(position: number, data: Uint8Array): Promise<void>;
  /** Writes the parts back to back from `position` as one write (see the header); volatile until sync. */
  writev(position: number, parts: readonly Uint8Array[]): Promise<void>;
  /** writev + sync of those bytes in one call (see the header): durable when this resolves. */
  writevSynced(position: number, parts: readonly Uint8Array[]): Promise<void>;
  truncate(length: number): Promise<void>;
  /** fsync: data and size are on stable storage when this resolves. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Create the file if absent. */
  readonly create: boolean;
  /** Fail with io.already_exists if the file exists (implies create). */
  readonly exclusive?: boolean;
}

export interface Disk {
  /** A human-readable name (the root directory, or "sim:N"). */
  readonly name: string;
  open(path: string, options: OpenOptions): Promise<DiskFile>;
  /** Names (not paths) in a directory, sorted; io.not_found if it does not exist. */
  list(directory: string): Promise<string[]>;
  /** Creates a directory and its parents; durable after syncDirectory of each new parent. */
  makeDirectory(directory: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  /** fsync of a directory: makes creates, renames and removes in it durable. */
  syncDirectory(directory: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Bytes free for new data, as far as the implementation knows. */
  freeBytes(): Promise<number>;
  /** How large reads and writes went, O_DIRECT or buffered and why (RealDisk only; metrics). */
  directIo?(): DirectIoReport;
}

/** 'direct': large transfers go O_DIRECT when a staging buffer is free; 'refused': the file system
 * refused O_DIRECT (EINVAL), all go buffered; 'off': the disk has no staging buffers. */
export type LargeIoMode = 'direct' | 'refused' | 'off';

/** Large transfers (RealDisk: reads and synced writes of at least 1 MiB), by how they went. */
export interface LargeIoCounts {
  /** Through O_DIRECT from or into a staging buffer. */
  direct: number;
  /** Buffered: every staging buffer was lent. */
  noStagingBuffer: number;
  /** Buffered: the file system refused O_DIRECT (at this transfer or an earlier one). */
  refused: number;
  /** Buffered: a read whose 4 KiB-aligned cover is larger than a staging buffer (never a write). */
  coverTooLarge: number;
}

export interface DirectIoReport {
  readonly writes: { readonly mode: LargeIoMode; readonly counts: Readonly<LargeIoCounts> };
  readonly reads: { readonly mode: LargeIoMode; readonly counts: Readonly<LargeIoCounts> };
}
