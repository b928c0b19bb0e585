// SimDisk: the Disk seam (src/io/disk.ts) in memory, with the faults of TESTING.md injected on
// demand and every random choice drawn from one seeded Random, so a run is replayable by seed.
//
// Model: a tiny inode file system.
//   inode (file)       current bytes + an undo log of every write/truncate since the last sync;
//                      durable bytes = current bytes with the undo log rolled back, then the
//                      log's synced writes (writevSynced) applied again in order.
//   inode (directory)  two entry maps, name → inode: `live` (what calls see) and `durable`
//                      (what survives power loss). syncDirectory(d) copies d.live to d.durable.
//   handle             an inode reference stamped with the disk's crash generation.
// Invariants:
// - sync() of a file empties its undo log (current bytes become durable); nothing else does.
// - writevSynced() is an O_DSYNC write, not write + fsync: it marks only its own log record synced
//   (and the truncates before it: the file size it needs). Other un-synced writes of the file
//   stay volatile, so a crash can keep a synced write past an earlier write it drops or tears
//   (the gap reads as zeros, as an unwritten extent does).
// - only syncDirectory() changes a `durable` map, so a create, rename or remove is durable only
//   after the parent directory is synced, as the Disk contract says.
// - an inode lives while a live map, a durable map or an open handle refers to it (refcounts),
//   so a removed-but-not-yet-durable file can come back after a crash with its bytes.
// - all byte offsets are safe integers; paths pass assertDiskPath.
//
// Fault model (each counted in faultCounts()):
// - crash({ tornWrites }): power loss. Every directory's live map is replaced by its durable
//   map; entries whose parent directory is not itself durably reachable vanish (orphans); every
//   file rolls back to its last fsync'd bytes and replays its log in order: a synced write is
//   kept whole; with tornWrites, each un-synced write is dropped, kept whole, or kept up to a
//   random 512-byte sector boundary (absolute file offset) strictly inside it, and each
//   un-synced truncate is dropped or kept; without, every un-synced change is dropped.
//   Kept writes may follow dropped ones: the disk reorders. All open handles become stale:
//   their calls fail with io.closed (close() still succeeds).
// - flipBit(path, offset, bit): media corruption: the bit flips in the current bytes and in
//   the durable bytes, so it is seen now and after a crash.
// - failNext({ operation, path?, code, count? }): the next `count` (default 1) matching calls
//   fail with `code`; a failed read, write or open changes nothing. A failed sync poisons the
//   handle (later calls fail with io.fsync_failed) and, as after fsyncgate, the kernel "drops
//   the dirty pages": the file rolls back to its durable bytes for every reader. A failed
//   writevSynced takes a 'sync' rule (after its write) and fails the same way, its write lost. A failed
//   syncDirectory leaves the directory's durable entries unchanged. A rule's path is matched
//   against the path the handle was opened with (as with a real fd, a rename does not change it).
//   close() of a poisoned or stale handle still succeeds, so cleanup code never leaks.
// - capacityBytes: a write that would grow the total size of all files past it fails with
//   io.enospc and writes nothing. Truncate never fails (files are not sparse here, but a
//   truncate that grows a file is allowed past capacity, as sparse files would be).
// - canary.skipFsync (test-only): sync(), syncDirectory() and writevSynced's sync do nothing, so the suite can prove
//   it notices a missing fsync.
// There is no latency or clock: every call does its work when called and resolves at once.
import { assert, assertByteCount } from '../util/assert.ts';
import { canary } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import type { Random } from '../util/random.ts';
import type { Disk, DiskFile, OpenOptions } from './disk.ts';
import { assertDiskPath, baseName, parentDirectory, pathSegments } from './disk-path.ts';

/** Torn writes are cut at this granularity, the classic disk sector. */
export const simSectorBytes = 512;

export interface SimDiskOptions {
  /** Source of every random choice (torn-write cuts); the run is replayable by its seed. */
  readonly random: Random;
  /** Total bytes of all files; writes past it fail with io.enospc. Unlimited if absent. */
  readonly capacityBytes?: number;
  readonly name?: string;
}

export type SimFaultOperation = 'read' | 'write' | 'sync' | 'open' | 'syncDirectory';

export interface SimFaultRule {
  readonly operation: SimFaultOperation;
  /** Only calls on this path (exact) or matching this pattern; any path if absent. */
  readonly path?: string | RegExp;
  readonly code: 'io.eio' | 'io.enospc';
  /** How many matching calls fail (default 1). */
  readonly count?: number;
}

export interface SimCrashOptions {
  readonly tornWrites?: boolean;
}

export interface SimFaultCounts {
  crashes: number;
  /** Un-synced writes and truncates a crash dropped entirely. */
  unsyncedWritesDropped: number;
  /** Un-synced writes a crash kept only up to a sector boundary inside them. */
  unsyncedWritesTorn: number;
  /** Un-synced writes and truncates a torn crash kept whole (not a fault; shows the mix). */
  unsyncedWritesKept: number;
  /** Synced writes (writevSynced) a crash kept after an earlier un-synced write of the file it dropped or tore. */
  syncedWritesPastLostWrites: number;
  /** Directory entries (creates, renames, removes) a crash undid. */
  directoryEntriesDropped: number;
  bitFlips: number;
  eioInjected: number;
  enospcInjected: number;
  /** Writes refused because capacityBytes was reached. */
  enospcCapacity: number;
  /** Failed syncs (file or directory), injected. */
  fsyncFailures: number;
}

export type SimSnapshotView = 'durable' | 'live';

/** A SimDisk file: a DiskFile whose writevSynced can also be run in two halves. */
export interface SimDiskFile extends DiskFile {
  /**
   * writevSynced's write, volatile until the returned `complete()` resolves (then durable as after
   * writevSynced). For a caller that lets time pass between the halves (sim/process.ts: a crash
   * between them drops or tears the write, as before an O_DSYNC write returns).
   */
  startSyncedWrite(position: number, parts: readonly Uint8Array[]): Promise<SimSyncedWrite>;
}

export interface SimSyncedWrite {
  complete(): Promise<void>;
}

export class SimDisk implements Disk {
  readonly name: string;
  private readonly state: SimState;

  constructor(options: SimDiskOptions) {
    if (options.capacityBytes !== undefined) assertByteCount(options.capacityBytes, 'capacityBytes');
    this.name = options.name ?? 'sim:0';
    this.state = new SimState(options.random, options.capacityBytes ?? null);
  }

  open(path: string, options: OpenOptions): Promise<SimDiskFile> {
    return settle(() => this.state.open(path, options));
  }

  list(directory: string): Promise<string[]> {
    return settle(() => this.state.list(directory));
  }

  makeDirectory(directory: string): Promise<void> {
    return settle(() => this.state.makeDirectory(directory));
  }

  rename(from: string, to: string): Promise<void> {
    return settle(() => this.state.rename(from, to));
  }

  remove(path: string): Promise<void> {
    return settle(() => this.state.remove(path));
  }

  syncDirectory(directory: string): Promise<void> {
    return settle(() => this.state.syncDirectory(directory));
  }

  exists(path: string): Promise<boolean> {
    return settle(() => this.state.exists(path));
  }

  freeBytes(): Promise<number> {
    return settle(() => this.state.freeBytes());
  }

  /** Power loss; see the fault model in the file header. */
  crash(options: SimCrashOptions = {}): void {
    this.state.crash(options.tornWrites === true);
  }

  /** Flips bit `bit` (0..7) of byte `byteOffset` of `path` in current and durable bytes. */
  flipBit(path: string, byteOffset: number, bit: number): void {
    this.state.flipBit(path, byteOffset, bit);
  }

  /** Makes the next matching call(s) fail; rules are checked in the order they were added. */
  failNext(rule: SimFaultRule): void {
    this.state.faults.add(rule);
  }

  /** Forgets every pending failNext rule. */
  clearFaults(): void {
    this.state.faults.clear();
  }

  faultCounts(): SimFaultCounts {
    return { ...this.state.counts };
  }

  /** Every file's bytes by path, sorted: what survives a crash ('durable') or what reads see. */
  snapshotFiles(view: SimSnapshotView = 'durable'): Map<string, Buffer> {
    return this.state.snapshot(view);
  }

  /** Handles opened and not yet closed in the current crash generation. */
  openFileCount(): number {
    return this.state.openFileCount();
  }
}

/** Runs a synchronous step as an async call: its result or its error arrives as a promise. */
function settle<T>(step: () => T): Promise<T> {
  try {
    return Promise.resolve(step());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

// ---------------------------------------------------------------------------------------------
// File content: current bytes plus the undo log of un-synced changes.

type PendingChange =
  | { readonly kind: 'write'; readonly position: number; readonly data: Buffer }
  | { readonly kind: 'truncate'; readonly length: number };

interface UndoRecord {
  readonly change: PendingChange;
  /** Made durable by an O_DSYNC write (writevSynced) or the file size one needed: a crash keeps it. */
  synced: boolean;
  readonly oldLength: number;
  /** The bytes the change overwrote or cut off, which rollback restores at savedPosition. */
  readonly savedPosition: number;
  readonly savedBytes: Buffer;
}

const emptyBuffer = Buffer.alloc(0);

class FileContent {
  private bytes: Buffer = emptyBuffer;
  length = 0;
  undo: UndoRecord[] = [];

  read(position: number, length: number): Buffer {
    const end = Math.min(this.length, position + length);
    return position >= end ? Buffer.alloc(0) : Buffer.from(this.bytes.subarray(position, end));
  }

  /** Returns the write's record, which writevSynced marks synced. */
  write(position: number, data: Uint8Array): UndoRecord {
    const savedEnd = Math.min(this.length, position + data.byteLength);
    const savedBytes = position < savedEnd ? Buffer.from(this.bytes.subarray(position, savedEnd)) : emptyBuffer;
    const change: PendingChange = { kind: 'write', position, data: Buffer.from(data) };
    const record: UndoRecord = { change, synced: false, oldLength: this.length, savedPosition: position, savedBytes };
    this.undo.push(record);
    this.applyWrite(position, data);
    return record;
  }

  truncate(length: number): void {
    const savedBytes = length < this.length ? Buffer.from(this.bytes.subarray(length, this.length)) : emptyBuffer;
    this.undo.push({ change: { kind: 'truncate', length }, synced: false, oldLength: this.length, savedPosition: length, savedBytes });
    this.resize(length);
  }

  /** sync(): the current bytes become the durable bytes. */
  commit(): void {
    this.undo = [];
  }

  /**
   * The O_DSYNC write of `record` returned: it and the truncates before it (the file size it
   * needs) survive a crash; other un-synced writes stay volatile. A record already gone was
   * committed by a sync, which made it durable too.
   */
  markSynced(record: UndoRecord): void {
    const index = this.undo.lastIndexOf(record);
    if (index < 0) return;
    record.synced = true;
    for (const earlier of this.undo.slice(0, index)) if (earlier.change.kind === 'truncate') earlier.synced = true;
    // Every change synced (a journal file, only ever written this way): the current bytes are the
    // durable bytes, so the log is dropped as by sync(), not kept growing with every batch.
    if (this.undo.every((each) => each.synced)) this.commit();
  }

  /** Back to the durable bytes, every un-synced change dropped (a failed fsync). */
  dropUnsynced(): void {
    const synced = this.undo.filter((record) => record.synced);
    this.rollback();
    for (const record of synced) this.apply(record.change);
    this.commit();
  }

  /** Back to the durable bytes, undoing un-synced changes newest first. */
  rollback(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const record = this.undo[i];
      assert(record !== undefined, 'undo record exists');
      this.resize(record.oldLength);
      this.bytes.set(record.savedBytes, record.savedPosition);
    }
    this.undo = [];
  }

  durableBytes(): Buffer {
    const copy = new FileContent();
    copy.applyWrite(0, this.bytes.subarray(0, this.length));
    copy.undo = this.undo;
    copy.rollback();
    for (const record of this.undo) if (record.synced) copy.apply(record.change);
    return copy.read(0, copy.length);
  }

  durableLength(): number {
    let length = this.undo[0]?.oldLength ?? this.length;
    for (const { change, synced } of this.undo) {
      if (synced) length = change.kind === 'write' ? Math.max(length, change.position + change.data.length) : change.length;
    }
    return length;
  }

  /** Flips a bit in every version of the byte: current bytes, every saved (older) copy, synced writes. */
  flipBit(offset: number, mask: number): void {
    if (offset < this.length) this.bytes[offset] = (this.bytes[offset] ?? 0) ^ mask;
    for (const record of this.undo) {
      flipIn(record.savedBytes, offset - record.savedPosition, mask);
      if (record.synced && record.change.kind === 'write') flipIn(record.change.data, offset - record.change.position, mask);
    }
  }

  apply(change: PendingChange): void {
    if (change.kind === 'write') this.applyWrite(change.position, change.data);
    else this.applyTruncate(change.length);
  }

  applyWrite(position: number, data: Uint8Array): void {
    this.resize(Math.max(this.length, position + data.byteLength));
    this.bytes.set(data, position);
  }

  applyTruncate(length: number): void {
    this.resize(length);
  }

  /** Sets the length; bytes that appear when growing are zero (a hole reads as zeros). */
  private resize(length: number): void {
    if (length > this.length) {
      if (length > this.bytes.length) {
        const grown = Buffer.alloc(Math.max(length, this.bytes.length * 2, 4096));
        this.bytes.copy(grown, 0, 0, this.length);
        this.bytes = grown;
      }
      this.bytes.fill(0, this.length, length);
    }
    this.length = length;
  }
}

function flipIn(bytes: Buffer, index: number, mask: number): void {
  if (index >= 0 && index < bytes.length) bytes[index] = (bytes[index] ?? 0) ^ mask;
}

// ---------------------------------------------------------------------------------------------
// Inodes, handles and the simulated file system.

interface FileInode {
  readonly kind: 'file';
  readonly id: number;
  readonly content: FileContent;
  /** References from live and durable directory maps. */
  links: number;
  handles: number;
}

interface DirectoryInode {
  readonly kind: 'directory';
  readonly id: number;
  live: Map<string, number>;
  durable: Map<string, number>;
  links: number;
}

type Inode = FileInode | DirectoryInode;

const rootId = 0;

function notFound(path: string, operation: string): StorageError {
  return new StorageError('io.not_found', `${operation} ${path}: no such file or directory`, { context: { operation, path } });
}

function simEio(path: string, operation: string, reason: string): StorageError {
  return new StorageError('io.eio', `${operation} ${path}: ${reason}`, { context: { operation, path } });
}

class FaultRules {
  private readonly rules: { rule: SimFaultRule; remaining: number }[] = [];
  private readonly counts: SimFaultCounts;

  constructor(counts: SimFaultCounts) {
    this.counts = counts;
  }

  add(rule: SimFaultRule): void {
    const remaining = rule.count ?? 1;
    assert(Number.isSafeInteger(remaining) && remaining > 0, 'failNext count must be a positive integer');
    this.rules.push({ rule, remaining });
  }

  clear(): void {
    this.rules.length = 0;
  }

  /** The injected error code for this call, if a rule matches (and is used up by it). */
  take(operation: SimFaultOperation, path: string): 'io.eio' | 'io.enospc' | null {
    const index = this.rules.findIndex((entry) => entry.rule.operation === operation && pathMatches(entry.rule.path, path));
    const entry = this.rules[index];
    if (entry === undefined) return null;
    entry.remaining -= 1;
    if (entry.remaining === 0) this.rules.splice(index, 1);
    if (entry.rule.code === 'io.eio') this.counts.eioInjected += 1;
    else this.counts.enospcInjected += 1;
    return entry.rule.code;
  }

  /** Throws the injected error for a read, write or open, if one is due. */
  raise(operation: SimFaultOperation, path: string): void {
    const code = this.take(operation, path);
    if (code === null) return;
    throw new StorageError(code, `${operation} ${path}: injected ${code}`, { context: { operation, path, injected: true } });
  }
}

function pathMatches(pattern: string | RegExp | undefined, path: string): boolean {
  if (pattern === undefined) return true;
  if (typeof pattern === 'string') return pattern === path;
  pattern.lastIndex = 0; // a /g pattern keeps state between test() calls
  return pattern.test(path);
}

export function zeroSimFaultCounts(): SimFaultCounts {
  return {
    crashes: 0,
    unsyncedWritesDropped: 0,
    unsyncedWritesTorn: 0,
    unsyncedWritesKept: 0,
    syncedWritesPastLostWrites: 0,
    directoryEntriesDropped: 0,
    bitFlips: 0,
    eioInjected: 0,
    enospcInjected: 0,
    enospcCapacity: 0,
    fsyncFailures: 0,
  };
}

class SimState {
  readonly counts: SimFaultCounts = zeroSimFaultCounts();
  readonly faults = new FaultRules(this.counts);
  readonly random: Random;
  private readonly capacityBytes: number | null;
  private readonly inodes = new Map<number, Inode>();
  private nextInodeId = rootId + 1;
  private usedBytes = 0;
  /** Bumped by crash(); a handle from an older generation is stale. */
  generation = 0;

  constructor(random: Random, capacityBytes: number | null) {
    this.random = random;
    this.capacityBytes = capacityBytes;
    // The root directory is pinned by a permanent link.
    this.inodes.set(rootId, { kind: 'directory', id: rootId, live: new Map(), durable: new Map(), links: 1 });
  }

  open(path: string, options: OpenOptions): SimDiskFile {
    assertDiskPath(path, { allowRoot: false });
    this.faults.raise('open', path);
    const parent = this.parentOf(path, 'open');
    const name = baseName(path);
    const exclusive = options.exclusive === true;
    const existingId = parent.live.get(name);
    if (existingId !== undefined) {
      const inode = this.inode(existingId);
      if (exclusive) {
        throw new StorageError('io.already_exists', `open ${path}: file exists`, { context: { operation: 'open', path } });
      }
      if (inode.kind === 'directory') throw simEio(path, 'open', 'is a directory');
      return this.newHandle(path, inode);
    }
    if (!options.create && !exclusive) throw notFound(path, 'open');
    const inode: FileInode = { kind: 'file', id: this.nextInodeId++, content: new FileContent(), links: 0, handles: 0 };
    this.inodes.set(inode.id, inode);
    this.link(parent.live, name, inode.id);
    return this.newHandle(path, inode);
  }

  list(directory: string): string[] {
    assertDiskPath(directory, { allowRoot: true });
    const inode = this.lookup(directory);
    if (inode?.kind !== 'directory') throw notFound(directory, 'list');
    return [...inode.live.keys()].sort();
  }

  makeDirectory(directory: string): void {
    assertDiskPath(directory, { allowRoot: true });
    let current = this.directory(rootId);
    for (const segment of pathSegments(directory)) {
      const id = current.live.get(segment);
      if (id === undefined) {
        const created: DirectoryInode = { kind: 'directory', id: this.nextInodeId++, live: new Map(), durable: new Map(), links: 0 };
        this.inodes.set(created.id, created);
        this.link(current.live, segment, created.id);
        current = created;
        continue;
      }
      const inode = this.inode(id);
      if (inode.kind === 'file') {
        throw new StorageError('io.already_exists', `makeDirectory ${directory}: a file is in the way`, { context: { path: directory } });
      }
      current = inode;
    }
  }

  rename(from: string, to: string): void {
    assertDiskPath(from, { allowRoot: false });
    assertDiskPath(to, { allowRoot: false });
    const fromParent = this.parentOf(from, 'rename');
    const id = fromParent.live.get(baseName(from));
    if (id === undefined) throw notFound(from, 'rename');
    const toParent = this.parentOf(to, 'rename');
    if (from === to) return;
    const source = this.inode(id);
    if (source.kind === 'directory' && to.startsWith(`${from}/`)) throw simEio(from, 'rename', 'cannot move a directory into itself');
    const targetId = toParent.live.get(baseName(to));
    if (targetId !== undefined) {
      const target = this.inode(targetId);
      if (target.kind !== source.kind) throw simEio(to, 'rename', `cannot replace a ${target.kind} with a ${source.kind}`);
      if (target.kind === 'directory' && target.live.size > 0) throw simEio(to, 'rename', 'directory not empty');
    }
    this.link(toParent.live, baseName(to), id);
    this.unlink(fromParent.live, baseName(from));
  }

  remove(path: string): void {
    assertDiskPath(path, { allowRoot: false });
    const parent = this.parentOf(path, 'remove');
    const id = parent.live.get(baseName(path));
    if (id === undefined) throw notFound(path, 'remove');
    const inode = this.inode(id);
    if (inode.kind === 'directory' && inode.live.size > 0) throw simEio(path, 'remove', 'directory not empty');
    this.unlink(parent.live, baseName(path));
  }

  syncDirectory(directory: string): void {
    assertDiskPath(directory, { allowRoot: true });
    const inode = this.lookup(directory);
    if (inode?.kind !== 'directory') throw notFound(directory, 'syncDirectory');
    if (canary.skipFsync) return;
    const code = this.faults.take('syncDirectory', directory);
    if (code !== null) {
      this.counts.fsyncFailures += 1;
      throw new StorageError('io.fsync_failed', `fsync of directory ${directory} failed (injected ${code})`, {
        context: { path: directory, injected: code },
      });
    }
    const previous = inode.durable;
    inode.durable = new Map(inode.live);
    for (const id of inode.durable.values()) this.reference(id);
    for (const id of previous.values()) this.release(id);
  }

  exists(path: string): boolean {
    assertDiskPath(path, { allowRoot: true });
    return this.lookup(path) !== null;
  }

  freeBytes(): number {
    if (this.capacityBytes === null) return Number.MAX_SAFE_INTEGER;
    return Math.max(0, this.capacityBytes - this.usedBytes);
  }

  // --- file operations, called by SimFile after it has checked its own state ---------------

  readFile(path: string, inode: FileInode, position: number, length: number): Buffer {
    this.faults.raise('read', path);
    return inode.content.read(position, length);
  }

  writeFile(path: string, inode: FileInode, position: number, data: Uint8Array): UndoRecord {
    this.faults.raise('write', path);
    const growth = Math.max(0, position + data.byteLength - inode.content.length);
    if (this.capacityBytes !== null && this.usedBytes + growth > this.capacityBytes) {
      this.counts.enospcCapacity += 1;
      throw new StorageError('io.enospc', `write ${path}: no space left on sim disk`, {
        context: { path, position, length: data.byteLength, capacityBytes: this.capacityBytes },
      });
    }
    const record = inode.content.write(position, data);
    this.usedBytes += growth;
    return record;
  }

  truncateFile(inode: FileInode, length: number): void {
    const before = inode.content.length;
    inode.content.truncate(length);
    this.usedBytes += length - before;
  }

  /** Returns the injected error code if this sync fails (the file is then rolled back). */
  syncFile(path: string, inode: FileInode): 'io.eio' | 'io.enospc' | null {
    return this.syncOrFail(path, inode, () => inode.content.commit());
  }

  /** The O_DSYNC half of writevSynced: makes `record` durable, or fails as syncFile does. */
  syncWrite(path: string, inode: FileInode, record: UndoRecord): 'io.eio' | 'io.enospc' | null {
    return this.syncOrFail(path, inode, () => inode.content.markSynced(record));
  }

  private syncOrFail(path: string, inode: FileInode, makeDurable: () => void): 'io.eio' | 'io.enospc' | null {
    if (canary.skipFsync) return null;
    const code = this.faults.take('sync', path);
    if (code === null) {
      makeDurable();
      return null;
    }
    this.counts.fsyncFailures += 1;
    const before = inode.content.length;
    inode.content.dropUnsynced();
    this.usedBytes += inode.content.length - before;
    return code;
  }

  closeFile(inode: FileInode, generation: number): void {
    if (generation !== this.generation) return; // the crash already forgot every handle
    assert(inode.handles > 0, 'closing a handle that is not counted');
    inode.handles -= 1;
    this.freeIfUnused(inode);
  }

  // --- fault injection ---------------------------------------------------------------------

  crash(tornWrites: boolean): void {
    this.counts.crashes += 1;
    this.generation += 1;
    this.keepOnlyDurablyReachable();
    for (const inode of this.inodes.values()) {
      if (inode.kind === 'directory') {
        this.counts.directoryEntriesDropped += entriesDiffering(inode.live, inode.durable);
        inode.live = new Map(inode.durable);
      }
    }
    this.recountReferences();
    this.usedBytes = 0;
    for (const inode of this.inodes.values()) {
      if (inode.kind === 'file') {
        this.crashFile(inode.content, tornWrites);
        this.usedBytes += inode.content.length;
      }
    }
  }

  flipBit(path: string, byteOffset: number, bit: number): void {
    assertDiskPath(path, { allowRoot: false });
    assertByteCount(byteOffset, 'flipBit offset');
    assert(Number.isInteger(bit) && bit >= 0 && bit < 8, `flipBit bit must be 0..7, got ${bit}`);
    const inode = this.lookup(path);
    assert(inode?.kind === 'file', `flipBit: ${path} is not a file`);
    const length = Math.max(inode.content.length, inode.content.durableLength());
    assert(byteOffset < length, `flipBit: offset ${byteOffset} is past the end of ${path} (${length} bytes)`);
    inode.content.flipBit(byteOffset, 1 << bit);
    this.counts.bitFlips += 1;
  }

  snapshot(view: SimSnapshotView): Map<string, Buffer> {
    const files = new Map<string, Buffer>();
    const visit = (directory: DirectoryInode, prefix: string): void => {
      const entries = view === 'durable' ? directory.durable : directory.live;
      for (const name of [...entries.keys()].sort()) {
        const inode = this.inode(entries.get(name) ?? -1);
        const path = prefix === '' ? name : `${prefix}/${name}`;
        if (inode.kind === 'directory') visit(inode, path);
        else files.set(path, view === 'durable' ? inode.content.durableBytes() : inode.content.read(0, inode.content.length));
      }
    };
    visit(this.directory(rootId), '');
    return files;
  }

  openFileCount(): number {
    let count = 0;
    for (const inode of this.inodes.values()) if (inode.kind === 'file') count += inode.handles;
    return count;
  }

  // --- helpers -----------------------------------------------------------------------------

  private crashFile(content: FileContent, tornWrites: boolean): void {
    const records = content.undo;
    content.rollback();
    let lostBefore = false;
    for (const record of records) {
      if (record.synced) {
        content.apply(record.change);
        if (lostBefore && record.change.kind === 'write') this.counts.syncedWritesPastLostWrites += 1;
      } else if (!tornWrites) {
        this.counts.unsyncedWritesDropped += 1;
        lostBefore = true;
      } else if (this.replayTorn(content, record.change) === 'lost') {
        lostBefore = true;
      }
    }
    content.commit();
  }

  /** Replays one un-synced change as a power cut might have left it; 'lost' if dropped or torn. */
  private replayTorn(content: FileContent, change: PendingChange): 'kept' | 'lost' {
    if (change.kind === 'truncate') return this.keepOrDrop(content, change, this.random.int(2) === 1);
    const end = change.position + change.data.length;
    // Sector boundaries strictly inside the write; a write within one sector is atomic.
    const firstBoundary = (Math.floor(change.position / simSectorBytes) + 1) * simSectorBytes;
    const boundaries = firstBoundary < end ? Math.ceil((end - firstBoundary) / simSectorBytes) : 0;
    const choice = this.random.int(boundaries > 0 ? 3 : 2); // 0: dropped, 1: kept whole, 2: torn
    if (choice < 2) return this.keepOrDrop(content, change, choice === 1);
    const cut = firstBoundary + this.random.int(boundaries) * simSectorBytes;
    content.applyWrite(change.position, change.data.subarray(0, cut - change.position));
    this.counts.unsyncedWritesTorn += 1;
    return 'lost';
  }

  private keepOrDrop(content: FileContent, change: PendingChange, keep: boolean): 'kept' | 'lost' {
    if (!keep) {
      this.counts.unsyncedWritesDropped += 1;
      return 'lost';
    }
    content.apply(change);
    this.counts.unsyncedWritesKept += 1;
    return 'kept';
  }

  private keepOnlyDurablyReachable(): void {
    const reachable = new Set<number>([rootId]);
    const pending = [rootId];
    for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
      const inode = this.inode(id);
      if (inode.kind !== 'directory') continue;
      for (const child of inode.durable.values()) {
        if (!reachable.has(child)) {
          reachable.add(child);
          pending.push(child);
        }
      }
    }
    for (const id of [...this.inodes.keys()]) if (!reachable.has(id)) this.inodes.delete(id);
  }

  /** After a crash: no handles, and every entry is in exactly one live and one durable map. */
  private recountReferences(): void {
    for (const inode of this.inodes.values()) {
      inode.links = inode.id === rootId ? 1 : 0;
      if (inode.kind === 'file') inode.handles = 0;
    }
    // Each reachable inode is referenced once by a live map and once by a durable map.
    for (const inode of this.inodes.values()) {
      if (inode.kind === 'directory') for (const child of inode.durable.values()) this.inode(child).links += 2;
    }
  }

  private newHandle(path: string, inode: FileInode): SimDiskFile {
    inode.handles += 1;
    return new SimFile(this, path, inode, this.generation);
  }

  private link(entries: Map<string, number>, name: string, id: number): void {
    const previous = entries.get(name);
    entries.set(name, id);
    this.reference(id);
    if (previous !== undefined) this.release(previous);
  }

  private unlink(entries: Map<string, number>, name: string): void {
    const previous = entries.get(name);
    assert(previous !== undefined, `unlink of a missing entry ${name}`);
    entries.delete(name);
    this.release(previous);
  }

  private reference(id: number): void {
    this.inode(id).links += 1;
  }

  private release(id: number): void {
    const inode = this.inode(id);
    assert(inode.links > 0, `inode ${id} released more often than referenced`);
    inode.links -= 1;
    this.freeIfUnused(inode);
  }

  private freeIfUnused(inode: Inode): void {
    if (inode.links > 0 || (inode.kind === 'file' && inode.handles > 0)) return;
    this.inodes.delete(inode.id);
    if (inode.kind === 'file') {
      this.usedBytes -= inode.content.length;
      return;
    }
    for (const id of inode.live.values()) this.release(id);
    for (const id of inode.durable.values()) this.release(id);
  }

  private lookup(path: string): Inode | null {
    let current: Inode = this.inode(rootId);
    for (const segment of pathSegments(path)) {
      if (current.kind !== 'directory') return null;
      const id = current.live.get(segment);
      if (id === undefined) return null;
      current = this.inode(id);
    }
    return current;
  }

  private parentOf(path: string, operation: string): DirectoryInode {
    const parent = this.lookup(parentDirectory(path));
    if (parent?.kind !== 'directory') throw notFound(path, operation);
    return parent;
  }

  private inode(id: number): Inode {
    const inode = this.inodes.get(id);
    assert(inode !== undefined, `inode ${id} exists`);
    return inode;
  }

  private directory(id: number): DirectoryInode {
    const inode = this.inode(id);
    assert(inode.kind === 'directory', `inode ${id} is a directory`);
    return inode;
  }
}

function entriesDiffering(live: ReadonlyMap<string, number>, durable: ReadonlyMap<string, number>): number {
  let count = 0;
  for (const [name, id] of live) if (durable.get(name) !== id) count += 1;
  for (const name of durable.keys()) if (!live.has(name)) count += 1;
  return count;
}

type HandleState = { readonly kind: 'open' } | { readonly kind: 'poisoned'; readonly code: string } | { readonly kind: 'closed' };

class SimFile implements SimDiskFile {
  readonly path: string;
  private readonly disk: SimState;
  private readonly inode: FileInode;
  private readonly generation: number;
  private state: HandleState = { kind: 'open' };

  constructor(disk: SimState, path: string, inode: FileInode, generation: number) {
    this.disk = disk;
    this.path = path;
    this.inode = inode;
    this.generation = generation;
  }

  size(): Promise<number> {
    return settle(() => {
      this.checkUsable();
      return this.inode.content.length;
    });
  }

  read(position: number, length: number): Promise<Buffer> {
    return settle(() => {
      assertByteCount(position, 'read position');
      assertByteCount(length, 'read length');
      this.checkUsable();
      return this.disk.readFile(this.path, this.inode, position, length);
    });
  }

  write(position: number, data: Uint8Array): Promise<void> {
    return settle(() => {
      this.writeRecorded(position, data);
    });
  }

  writev(position: number, parts: readonly Uint8Array[]): Promise<void> {
    // One write of the concatenation: a crash tears it only to a prefix, as any single write.
    return this.write(position, Buffer.concat(parts));
  }

  async writevSynced(position: number, parts: readonly Uint8Array[]): Promise<void> {
    const write = await this.startSyncedWrite(position, parts);
    await write.complete();
  }

  startSyncedWrite(position: number, parts: readonly Uint8Array[]): Promise<SimSyncedWrite> {
    return settle(() => {
      const record = this.writeRecorded(position, Buffer.concat(parts));
      return { complete: () => settle(() => this.syncWritten(record)) };
    });
  }

  private writeRecorded(position: number, data: Uint8Array): UndoRecord {
    assertByteCount(position, 'write position');
    assertByteCount(position + data.byteLength, 'write end');
    this.checkUsable();
    return this.disk.writeFile(this.path, this.inode, position, data);
  }

  truncate(length: number): Promise<void> {
    return settle(() => {
      assertByteCount(length, 'truncate length');
      this.checkUsable();
      this.disk.truncateFile(this.inode, length);
    });
  }

  sync(): Promise<void> {
    return settle(() => {
      this.checkUsable();
      this.poisonOnFailure(this.disk.syncFile(this.path, this.inode));
    });
  }

  private syncWritten(record: UndoRecord): void {
    this.checkUsable();
    this.poisonOnFailure(this.disk.syncWrite(this.path, this.inode, record));
  }

  /** A failed sync poisons the handle: the kernel may have dropped the dirty pages (fsyncgate). */
  private poisonOnFailure(code: 'io.eio' | 'io.enospc' | null): void {
    if (code === null) return;
    this.state = { kind: 'poisoned', code };
    throw new StorageError('io.fsync_failed', `fsync of ${this.path} failed (injected ${code}); data written since the last sync is lost`, {
      context: { path: this.path, injected: code },
    });
  }

  close(): Promise<void> {
    if (this.state.kind !== 'closed') {
      this.state = { kind: 'closed' };
      this.disk.closeFile(this.inode, this.generation);
    }
    return Promise.resolve();
  }

  private checkUsable(): void {
    if (this.generation !== this.disk.generation) {
      throw new StorageError('io.closed', `file ${this.path} was invalidated by a crash`, { context: { path: this.path } });
    }
    switch (this.state.kind) {
      case 'open':
        return;
      case 'poisoned':
        throw new StorageError('io.fsync_failed', `file ${this.path} is poisoned by an earlier failed sync`, {
          context: { path: this.path, injected: this.state.code },
        });
      case 'closed':
        throw new StorageError('io.closed', `file ${this.path} is closed`, { context: { path: this.path } });
    }
  }
}
