// ExtentStore: the extent replicas of one extent node on one disk (docs/formats/extent-file.md,
// docs/formats/journal.md). Offsets and lengths are logical (sums of block bodies); an in-memory
// index of block starts per extent maps them to file positions.
//
// Write path (P1, P4). Every append is reserved synchronously (offset, file position) and
// queued on its extent's FIFO of pending appends; one drainer per extent (drain()) is the only
// writer of that extent file and settles the FIFO strictly in offset order:
// - group commit ON: append hands its journal record to the journal (leader/follower group
//   commit, one O_DSYNC write per batch, up to D batches in flight, reported durable in file
//   order; see journal.ts). When records are durable, the
//   drainer publishes and resolves the whole run of durable blocks at the head of the FIFO, then
//   writes it to the extent file in one write (no fsync); a read of a block of that run waits for
//   the write (docs/formats/journal.md, "Acknowledge before the extent-file write"). A background step
//   (extentSyncIntervalMs) fsyncs dirty extent files and then retires journal files whose
//   records are all in synced extent files. The extent file only ever receives blocks whose
//   journal record is durable, so a crash can leave it with holes or torn blocks only where the
//   journal can repair them.
// - group commit OFF (the reference path): the drainer writes the block, fsyncs the extent file
//   and resolves; one append at a time per extent, so only the last block can be torn by a crash.
//   With group commit on, appends of at least directAppendBytesMin take this path too (their
//   bytes, not the fsync, dominate; journaling them would write them twice).
// Each pending append remembers the mode it was issued in, so switching at run time is safe.
//
// Invariants:
// - Durable first, then publish: `length` (what reads and info see) advances, in offset order,
//   only over appends that are durable; appends resolve in offset order.
// - Every byte returned by read/readBlocks came from a block whose header and body CRCs were
//   checked against the index; a mismatch is extent.corrupt plus onCorruption, never bytes.
//   The read cache (docs/stream-protocol.md, "Read cache") holds only bodies that passed that
//   check and lends them read-only (no holder of a read's answer writes into it; the read
//   buffer pool never holds a cached body), re-checks a body's CRC on its first hit and every
//   extentReadCacheRecheckHits-th hit after (the cheap assertion of that rule: a mismatch drops
//   the entry and reads the disk), drops it extentReadCacheEntryMsMax after its disk read, and is emptied of an extent's blocks when they leave the index (seal cut,
//   removal); verify (the scrub) always reads the disk.
// - Any failed write, fsync or directory sync on the write path fails the store: every later
//   write rejects with extent.failed; nothing is retried as if it were safe (fsyncgate).
// - Recovery (open) restores every acknowledged append in both modes: scan every extent file
//   (damaged tail blocks of an open extent are left out of the index), replay the journal
//   idempotently, then judge what is left past the index: a record the file ends inside is a
//   torn write and is cut; a whole record that fails its check is rot of synced bytes and marks
//   the replica damaged (never cut silently); then fsync what changed and delete the old
//   journal files.
// - A replica recovery cannot prove complete is marked damaged, durably, before the journal that
//   proves the damage is deleted (docs/formats/damage-marker.md): a bad journal record followed
//   by a good one (not a torn tail) at an offset the extent file does not hold, a record that
//   leaves a gap or conflicts, a bad record of unknown extent with no later record of an open
//   extent, or a damaged whole tail record of an open extent that no journal record restores.
//   The mark is kept until the replica is removed; a damaged replica never takes an
//   append (extent.failed for that extent, the store stays writable) but may be sealed.
//
// Fault model: process crash and power loss at any point (un-synced writes dropped, torn or
// reordered), bit flips in extent and journal files, EIO/ENOSPC on any call, failed fsync.
import {
  appendBytesMax, directAppendBytesMin, extentBytesMax, extentReadCacheBlockBytesMax, extentReadCacheBytes, extentReadCacheEntryMsMax, extentSyncIntervalMs, groupCommitBytesMax, journalBatchOverlapAfterMs,
  readBytesMax,
} from '../constants.ts';
import type { Disk, DiskFile } from '../io/disk.ts';
import { assert, assertByteCount } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { crc32c } from '../util/crc32c.ts';
import { type CheckedCacheEntry, judgeCacheEntry } from '../util/checked-cache-entry.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import { LruCache } from '../util/lru-cache.ts';
import {
  blockHeaderBytes, encodeDataBlock, encodeDataBlockHeader, encodeExtentHeader, encodeSealTrailer, extentBlockBytesMax, extentFileName, extentFormatVersion, extentHeaderBytes, identityCrc,
  parseExtentFileName, sealBodyBytes,
} from '../wire/extent-format.ts';
import { damageMarkerName, decodeDamageMarker, encodeDamageMarker, extentFileNameOfMarker } from '../wire/damage-marker-format.ts';
import type { DamageReason } from '../wire/damage-marker-format.ts';
import { encodeJournalAppendHeader, encodeJournalRemove, journalFileName, parseJournalFileName } from '../wire/journal-format.ts';
import type { JournalHeader, JournalRecord } from '../wire/journal-format.ts';
import { readBlockBody, scanExtentFile, tailRecordAt } from './extent-file.ts';
import type { BlockEntry, TailRecord } from './extent-file.ts';
import { Journal, journalDirectory, judgeBadRecord, scanJournalFile } from './journal.ts';
import type { JournalFileState, JournalScan, JournalStats } from './journal.ts';
import { type BodyParts, bodyCrc32c, bodyPartsOf } from '../util/body-parts.ts';

export interface ExtentIdentity {
  readonly streamId: number;
  readonly extentId: number;
  readonly epoch: number;
}

export type ExtentState = { readonly kind: 'open' } | { readonly kind: 'sealed'; readonly sealedLength: number };

export interface ExtentInfo extends ExtentIdentity {
  readonly length: number;
  readonly state: ExtentState;
  readonly createdAtMs: number;
}

/**
 * Why a replica is damaged (docs/formats/damage-marker.md). `unknown`: its marker did not decode
 * (the mark stands). `length`: its length when the damage was found; null when unknown.
 */
export interface ExtentDamage {
  readonly reason: DamageReason | 'unknown';
  readonly length: number | null;
}

export interface CorruptionEvent {
  readonly extentId: number;
  readonly offset: number;
  readonly reason: string;
}

export interface ExtentStoreOptions {
  readonly disk: Disk;
  readonly clock: Clock;
  /** P4 off switch: false = fsync every append into its extent file, no journal. */
  readonly groupCommit: boolean;
  /** With group commit on, appends of at least this many bytes bypass the journal (default
   * directAppendBytesMin); tests lower it to mix both paths in one extent. */
  readonly directAppendBytesMin?: number;
  /** A further journal batch starts while others are in flight only once the newest has been in
   * flight this long (default journalBatchOverlapAfterMs; docs/formats/journal.md). */
  readonly journalBatchOverlapAfterMs?: number;
  readonly onCorruption?: (event: CorruptionEvent) => void;
  /** Bytes of verified block bodies kept in memory (default extentReadCacheBytes; 0 = none). */
  readonly readCacheBytes?: number;
  /** Called once when the store fails (a failed write or fsync, also a background one). */
  readonly onFailure?: (error: StorageError) => void;
}

/** What open() found and did; a replica that lost or repaired data says so here (P7). */
export interface ExtentStoreRecoveryReport {
  extentFiles: number;
  /** Files whose header or name did not check: left untouched, not served. */
  unreadableFiles: string[];
  temporaryFilesRemoved: number;
  tornTailBytesTruncated: number;
  /** Damaged blocks kept in the index (reads fail) because sound blocks follow them. */
  corruptBlocksFound: number;
  journalFiles: number;
  journalRecords: number;
  journalRecordsApplied: number;
  blocksRepaired: number;
  /** Records skipped: already applied, removed or sealed-away extents. */
  journalRecordsSkipped: number;
  /** Records that conflict with an extent file or leave a gap: reported, not applied. */
  journalRecordsConflicting: number;
  /** Bad journal records in the synced part of the journal (a good record follows, or the record
   * is whole with a bad body): damage, not a torn tail. */
  journalRecordsDamaged: number;
  /** Bytes of torn journal tails ignored (the batch in flight at a crash, never acknowledged). */
  journalTornTailBytes: number;
  /** Bad regions followed by good records inside the last in-flight window of a crashed file:
   * torn, not damage (journal.md, Recovery; the records after them count as applied or skipped). */
  journalTornWindowRegions: number;
  /** Extents this start marked damaged (docs/formats/damage-marker.md). */
  extentsMarkedDamaged: number;
  /** Open extents whose file ends in a whole record that fails its check, not restored by the
   * journal (rot of synced bytes, reason extent_tail_damaged). */
  extentTailsDamaged: number;
  /** Damage markers whose extent file was gone (a removal interrupted by a crash): deleted. */
  orphanMarkersRemoved: number;
}

export interface ExtentStoreStats {
  appends: number;
  appendFsyncs: number;
  extentSyncs: number;
  journal: JournalStats;
  readCache: ReadCacheStats;
}

export interface ReadCacheStats {
  /** Block reads served from memory (body CRC re-checked). */
  hits: number;
  /** Block reads that went to the disk (not cached, expired or too large to cache). */
  misses: number;
  /** Cached bodies that failed their CRC re-check (memory changed under the cache): dropped, read again. */
  rechecksFailed: number;
  bytes: number;
}

/** A block body that passed its checks, with its CRC32C. */
interface VerifiedBody {
  readonly body: Buffer;
  readonly crc: number;
}

interface CachedBlock extends VerifiedBody, CheckedCacheEntry {}

export const extentDirectory = 'extents';

/** A bad journal record in the synced part of the journal, after `recordsBefore` good ones. */
interface JournalDamage {
  readonly header: JournalHeader | null;
  readonly recordsBefore: number;
}

/** The journal as recovery replays it (indexes are into `records`). */
interface JournalReplay {
  readonly records: readonly JournalRecord[];
  readonly damage: readonly JournalDamage[];
  /** Records from this index on follow a torn window (journal.md, Recovery): none was acknowledged. */
  readonly tornWindowFrom: number;
  readonly lastTombstone: ReadonlyMap<number, number>;
  readonly lastAppend: ReadonlyMap<number, number>;
}
const temporarySuffix = '.tmp';

interface ExtentEntry {
  readonly identity: ExtentIdentity;
  readonly createdAtMs: number;
  /** The largest block its file's format version takes (a v1 file stays at v1's 4 MiB). */
  readonly blockBytesMax: number;
  readonly path: string;
  readonly file: DiskFile;
  readonly blocks: BlockEntry[];
  /** Published length: every byte below it is durable. */
  length: number;
  /** Where the next append must start (length plus appends in flight). */
  endOffset: number;
  /** File position of the next record. */
  fileEnd: number;
  state: ExtentState;
  /** Non-null once marked damaged (durably): no appends, ever. */
  damage: ExtentDamage | null;
  sealing: { readonly length: number; readonly promise: Promise<void> } | null;
  removing: boolean;
  /** Appends reserved and not yet settled, in offset order: pending[pendingHead..] are live. */
  pending: PendingAppend[];
  pendingHead: number;
  /** True while drain() runs: the extent file has one writer. */
  draining: boolean;
  /** Called when no append is pending (seal, remove and close wait for this). */
  idleWaiters: Array<() => void>;
  readonly readers: Set<Promise<unknown>>;
  /** A run published before its extent-file write returned: blocks from `fromOffset` on are not in the file until `written` settles (it never rejects). */
  fileWrite: { readonly fromOffset: number; readonly written: Promise<void> } | null;
  /** Journal files holding records of this extent whose blocks are not yet fsync'd here. */
  unsynced: JournalFileState[];
}

/** One append between its reservation and its settlement. */
interface PendingAppend {
  readonly block: BlockEntry;
  /** As the caller gave it: one buffer or parts (each record written with one writev of header + parts). */
  readonly body: Uint8Array | BodyParts;
  readonly bodyCrc: number;
  /** Issued with group commit on: durable once its journal record is. */
  readonly journaled: boolean;
  /** The journal file holding its durable record; null until then (and when not journaled). */
  journalFile: JournalFileState | null;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class ExtentStore {
  readonly recovery: ExtentStoreRecoveryReport;
  private readonly disk: Disk;
  private readonly clock: Clock;
  private readonly onCorruption: (event: CorruptionEvent) => void;
  private readonly onFailure: (error: StorageError) => void;
  private readonly extents = new Map<number, ExtentEntry>();
  private readonly creating = new Set<number>();
  private readonly journal: Journal;
  private readonly counters = { appends: 0, appendFsyncs: 0, extentSyncs: 0 };
  private groupCommit: boolean;
  private readonly directAppendBytesMin: number;
  private failure: StorageError | null = null;
  private closed = false;
  private syncTimer: TimerHandle | null = null;
  private syncing: Promise<void> | null = null;
  /** During open only: open extents whose file goes past their index, with the file's size. */
  private readonly recoveredTails = new Map<ExtentEntry, number>();
  /** Verified bodies by their index entry (an entry object leaves the index when its block does). */
  private readonly readCache: LruCache<BlockEntry, CachedBlock>;
  private readonly readCacheCounters = { hits: 0, misses: 0, rechecksFailed: 0 };

  private constructor(options: ExtentStoreOptions, recovery: ExtentStoreRecoveryReport, firstJournalSequence: number) {
    this.disk = options.disk;
    this.clock = options.clock;
    this.groupCommit = options.groupCommit;
    this.directAppendBytesMin = options.directAppendBytesMin ?? directAppendBytesMin;
    this.onCorruption = options.onCorruption ?? (() => {});
    this.onFailure = options.onFailure ?? (() => {});
    this.readCache = new LruCache(options.readCacheBytes ?? extentReadCacheBytes);
    this.recovery = recovery;
    this.journal = new Journal({
      disk: this.disk, clock: this.clock, firstSequence: firstJournalSequence, onFailure: (error) => this.fail(error),
      batchOverlapAfterMs: options.journalBatchOverlapAfterMs ?? journalBatchOverlapAfterMs,
    });
  }

  /** Opens the store on `disk`, recovering every acknowledged append (see the file header). */
  static async open(options: ExtentStoreOptions): Promise<ExtentStore> {
    const { disk } = options;
    for (const directory of [extentDirectory, journalDirectory]) await disk.makeDirectory(directory);
    await disk.syncDirectory('');
    const recovery = emptyReport();
    const journalNames = await disk.list(journalDirectory);
    const sequences = journalNames.map(parseJournalFileName).filter((sequence) => sequence !== null);
    const store = new ExtentStore(options, recovery, sequences.length === 0 ? 1 : Math.max(...sequences) + 1);
    await store.loadExtents();
    await store.replayJournal(sequences.sort((a, b) => a - b));
    return store;
  }

  // ---------------------------------------------------------------- public API

  /** Creates an empty extent replica, durably (tmp, fsync, rename, fsync directory). */
  async create(identity: ExtentIdentity): Promise<void> {
    this.checkWritable();
    assertByteCount(identity.streamId, 'streamId');
    assertByteCount(identity.extentId, 'extentId');
    assertByteCount(identity.epoch, 'epoch');
    const { extentId } = identity;
    if (this.extents.has(extentId) || this.creating.has(extentId)) {
      throw new StorageError('extent.exists', `extent ${extentId} already exists`, { context: { extentId } });
    }
    this.creating.add(extentId);
    try {
      const createdAtMs = this.clock.nowMs();
      const path = `${extentDirectory}/${extentFileName(identity)}`;
      await this.writeNewFile(path, encodeExtentHeader({ ...identity, createdAtMs }));
      const file = await this.disk.open(path, { create: false });
      this.extents.set(extentId, newEntry({ identity, createdAtMs, formatVersion: extentFormatVersion, path, file, blocks: [], sealedLength: null }));
    } finally {
      this.creating.delete(extentId);
    }
  }

  /** Appends one block at `expectedOffset`; resolves only when it is durable. */
  async append(extentId: number, expectedOffset: number, data: Uint8Array | BodyParts): Promise<{ offset: number; length: number }> {
    // Checks and the reservation run synchronously (before any await), so concurrent appends
    // at consecutive offsets pipeline in call order.
    const entry = this.appendable(extentId, expectedOffset, data);
    // A journal record body is at most appendBytesMax (journal.md): a larger append is direct.
    const journaled = this.groupCommit && data.length < this.directAppendBytesMin && data.length <= appendBytesMax;
    // A body in parts (the socket chunks a request body arrived in) stays in parts, journaled or
    // not: the journal record and the extent-file block are each one writev of header + parts, so
    // the body is never joined into a fresh buffer (a copy and an allocation per append).
    // The CRC is over the exact bytes written: the same parts, in the same order, as the writevs.
    const bodyCrc = bodyCrc32c(data);
    const block = reserveBlock(entry, data.length, bodyCrc);
    await new Promise<void>((resolve, reject) => {
      this.enqueue(entry, { block, body: data, bodyCrc, journaled, journalFile: null, resolve, reject });
    });
    return { offset: block.offset, length: block.length };
  }

  /** Reads [offset, offset + length) verified; extent.corrupt rather than bad bytes. */
  async read(extentId: number, offset: number, length: number): Promise<Buffer> {
    return (await this.readRange(extentId, offset, length)).data;
  }

  /**
   * As read, with the CRC32C of the bytes returned: a read of exactly one whole block answers
   * the CRC its check already proved (no second pass over the bytes), any other is computed.
   */
  async readWithCrc(extentId: number, offset: number, length: number): Promise<{ data: Buffer; crc32c: number }> {
    const { data, crc } = await this.readRange(extentId, offset, length);
    return { data, crc32c: crc ?? crc32c(data) };
  }

  /** The verified bytes; `crc` is theirs when they are one whole block, else null. */
  private async readRange(extentId: number, offset: number, length: number): Promise<{ data: Buffer; crc: number | null }> {
    const entry = this.readable(extentId);
    checkRange(entry, offset, length);
    if (length > readBytesMax) {
      throw new StorageError('extent.too_large', `read of ${length} bytes exceeds ${readBytesMax}`, { context: { extentId, length } });
    }
    if (length === 0) return { data: Buffer.alloc(0), crc: null };
    const firstIndex = blockIndexAt(entry.blocks, offset);
    const first = entry.blocks[firstIndex];
    assert(first !== undefined, 'a read below the length lies in indexed blocks');
    if (offset + length <= first.offset + first.length) {
      // Within one block (a whole blob body, usually): its verified body, not a copy of it.
      const { body, crc } = await this.readVerified(entry, first);
      const whole = offset === first.offset && length === first.length;
      return { data: whole ? body : body.subarray(offset - first.offset, offset - first.offset + length), crc: whole ? crc : null };
    }
    const out = Buffer.allocUnsafe(length);
    let copied = 0;
    for (let index = firstIndex; copied < length; index++) {
      const block = entry.blocks[index];
      assert(block !== undefined, 'a read below the length lies in indexed blocks');
      const { body } = await this.readVerified(entry, block);
      const from = offset + copied - block.offset;
      copied += body.copy(out, copied, from, Math.min(body.length, from + length - copied));
    }
    return { data: out, crc: null };
  }

  /** Seals at `length` (a block boundary at or below the durable length), durably. */
  async seal(extentId: number, length: number): Promise<void> {
    this.checkWritable();
    const entry = this.live(extentId);
    if (entry.state.kind === 'sealed') {
      if (entry.state.sealedLength === length) return;
      throw new StorageError('extent.sealed', `extent ${extentId} is sealed at ${entry.state.sealedLength}, not ${length}`, { context: { extentId, length } });
    }
    if (entry.sealing !== null) {
      if (entry.sealing.length === length) return entry.sealing.promise;
      throw new StorageError('extent.sealed', `extent ${extentId} is being sealed at ${entry.sealing.length}`, { context: { extentId, length } });
    }
    const promise = this.sealNow(entry, length);
    entry.sealing = { length, promise };
    try {
      await promise;
    } finally {
      entry.sealing = null;
    }
  }

  info(extentId: number): ExtentInfo | null {
    const entry = this.extents.get(extentId);
    return entry === undefined || entry.removing ? null : infoOf(entry);
  }

  /** Why the replica is damaged, or null when it is not (or does not exist). */
  damage(extentId: number): ExtentDamage | null {
    const entry = this.extents.get(extentId);
    return entry === undefined || entry.removing ? null : entry.damage;
  }

  /** True once any write, fsync or directory sync failed (also a background extent sync). */
  get failed(): boolean {
    return this.failure !== null;
  }

  list(): ExtentInfo[] {
    return [...this.extents.values()].filter((entry) => !entry.removing).map(infoOf).sort((a, b) => a.extentId - b.extentId);
  }

  /** Deletes the replica durably (journal tombstone first when the journal may hold its records). */
  async remove(extentId: number): Promise<void> {
    this.checkWritable();
    const entry = this.live(extentId);
    entry.removing = true;
    await idle(entry);
    await entry.sealing?.promise.catch(() => {});
    await drainReaders(entry);
    if (this.journal.hasFiles() || this.groupCommit) await this.guard(this.journal.appendDurable(encodeJournalRemove(extentId)));
    while (this.syncing !== null) await this.syncing;
    for (const file of entry.unsynced.splice(0)) this.journal.release(file);
    this.extents.delete(extentId);
    this.forget(entry.blocks);
    await entry.file.close();
    await this.guard(this.disk.remove(entry.path));
    await this.guard(this.disk.syncDirectory(extentDirectory));
    if (entry.damage !== null) {
      // Only after the extent file's removal is durable: a crash in between leaves an orphan
      // marker (deleted at open), never an unmarked damaged replica.
      await this.guard(this.disk.remove(markerPath(entry)));
      await this.guard(this.disk.syncDirectory(extentDirectory));
    }
  }

  /** Scrub: reads and checks every block; reports each damaged one (by logical offset). */
  async verify(extentId: number): Promise<{ blocks: number; corruptBlocks: number[] }> {
    const entry = this.readable(extentId);
    const corruptBlocks: number[] = [];
    let blocks = 0;
    for (const block of entry.blocks) {
      if (block.offset >= entry.length) break;
      blocks += 1;
      try {
        // The scrub reads the disk, never the cache: it is how rot under a cached block is found.
        await this.readVerified(entry, block, false);
      } catch (error) {
        if (!isStorageError(error, 'extent.corrupt')) throw error;
        corruptBlocks.push(block.offset);
      }
    }
    return { blocks, corruptBlocks };
  }

  /** Verified blocks from `fromOffset` to the durable length (for copying to another node). */
  async *readBlocks(extentId: number, fromOffset: number): AsyncIterable<{ offset: number; data: Buffer }> {
    let entry = this.readable(extentId);
    checkRange(entry, fromOffset, 0);
    let offset = fromOffset;
    while (offset < entry.length) {
      const block = entry.blocks[blockIndexAt(entry.blocks, offset)];
      assert(block !== undefined, 'an offset below the length lies in an indexed block');
      const { body } = await this.readVerified(entry, block);
      yield { offset, data: body.subarray(offset - block.offset) };
      offset = block.offset + block.length;
      entry = this.readable(extentId);
    }
  }

  /** P4: switches group commit at run time; switching off drains the journal in the background. */
  setGroupCommit(enabled: boolean): void {
    this.groupCommit = enabled;
    if (!enabled) this.scheduleSync(0);
  }

  stats(): ExtentStoreStats {
    return { ...this.counters, journal: { ...this.journal.stats }, readCache: { ...this.readCacheCounters, bytes: this.readCache.totalWeight } };
  }

  /** Waits for appends in flight, syncs dirty extent files, retires the journal, closes files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const entry of this.extents.values()) await idle(entry);
    for (const entry of this.extents.values()) await drainReaders(entry);
    this.syncTimer?.cancel();
    this.syncTimer = null;
    this.readCache.clear();
    while (this.syncing !== null) await this.syncing;
    if (this.failure === null) await this.syncDirtyExtents();
    await this.journal.close();
    for (const entry of this.extents.values()) await entry.file.close();
  }

  // ---------------------------------------------------------------- append

  private appendable(extentId: number, expectedOffset: number, data: Uint8Array | BodyParts): ExtentEntry {
    this.checkWritable();
    const entry = this.live(extentId);
    if (entry.state.kind === 'sealed' || entry.sealing !== null) {
      throw new StorageError('extent.sealed', `extent ${extentId} is sealed`, { context: { extentId } });
    }
    if (entry.damage !== null) {
      throw new StorageError('extent.failed', `extent ${extentId} is damaged (${entry.damage.reason}): it takes no appends`, { context: { extentId, damaged: true } });
    }
    if (data.length === 0 || data.length > entry.blockBytesMax) {
      // A format v1 file refuses a block over 4 MiB: the client seals it and goes on in a new (v2) extent.
      throw new StorageError('extent.too_large', `an append to extent ${extentId} is 1..${entry.blockBytesMax} bytes, got ${data.length}`, { context: { extentId, bytes: data.length } });
    }
    if (expectedOffset !== entry.endOffset) {
      throw new StorageError('extent.offset_mismatch', `extent ${extentId}: append at ${expectedOffset}, but its end is ${entry.endOffset}`, {
        context: { extentId, expectedOffset, endOffset: entry.endOffset },
      });
    }
    if (entry.endOffset + data.length > extentBytesMax) {
      throw new StorageError('extent.too_large', `extent ${extentId} would pass ${extentBytesMax} bytes`, { context: { extentId } });
    }
    return entry;
  }

  /** Queues a reserved append; with group commit on, hands its record to the journal at once. */
  private enqueue(entry: ExtentEntry, pending: PendingAppend): void {
    entry.pending.push(pending);
    if (!pending.journaled) {
      this.kick(entry);
      return;
    }
    const { block, body, bodyCrc } = pending;
    try {
      this.journal.append({
        header: encodeJournalAppendHeader({ extentId: entry.identity.extentId, offset: block.offset, body, bodyCrc }),
        body,
        tracked: true,
        onDurable: (file) => {
          pending.journalFile = file;
          this.kick(entry);
        },
        onFailed: () => this.kick(entry),
      });
    } catch (error) {
      if (!isStorageError(error)) throw error;
      this.fail(error);
      this.kick(entry);
    }
  }

  /** Starts the extent's drainer unless it is running (it rechecks the FIFO after every step). */
  private kick(entry: ExtentEntry): void {
    if (entry.draining) return;
    entry.draining = true;
    // drain() settles every pending append itself; it rejects only on a programmer error
    // (a failed assertion), which must crash the process as an unhandled rejection.
    void this.drain(entry);
  }

  /** The one writer of an extent file: settles pending appends in offset order (see the header). */
  private async drain(entry: ExtentEntry): Promise<void> {
    // One microtask first: the journal reports a whole batch durable in one synchronous loop, so
    // every record of the batch is marked before the run is taken (one write, not 1 + n-1).
    await Promise.resolve();
    try {
      for (let head = entry.pending[entry.pendingHead]; head !== undefined; head = entry.pending[entry.pendingHead]) {
        if (this.failure !== null) {
          rejectPending(entry, this.failure);
          break;
        }
        if (!head.journaled) await this.writeSynced(entry, head);
        else if (head.journalFile !== null) await this.writeJournaled(entry);
        else break; // its journal record is not durable yet: onDurable or onFailed kicks again
      }
    } catch (error) {
      if (!isStorageError(error)) throw error;
      rejectPending(entry, this.fail(error));
    } finally {
      entry.draining = false;
      if (entry.pendingHead === entry.pending.length) wakeIdle(entry);
    }
  }

  /** Group commit off: write one block, fsync the extent file, publish, resolve. */
  private async writeSynced(entry: ExtentEntry, pending: PendingAppend): Promise<void> {
    const { block, body, bodyCrc } = pending;
    // Header and body as one writev: the body (up to 8 MiB) is not copied into a record buffer;
    // written and made durable in one call (an O_DSYNC write on RealDisk; extent-file.md, Writing).
    const header = encodeDataBlockHeader({ extentId: entry.identity.extentId, offset: block.offset, body, bodyCrc });
    await failpoint('extent-store.append.before-fsync');
    await this.guard(entry.file.writevSynced(block.filePosition, [header, ...bodyPartsOf(body)]));
    await failpoint('extent-store.append.after-fsync');
    this.counters.appendFsyncs += 1;
    if (this.failure !== null) return;
    takePending(entry, 1);
    this.publish(entry, pending);
  }

  /**
   * Group commit on: the run of journal-durable appends at the head of the FIFO is published and
   * resolved (the journal made it durable), then goes to the extent file in one write (its blocks
   * are contiguous there); reads of the run wait for that write (readFromFile). Its journal
   * records become releasable (`unsynced`) only once the write returned.
   */
  private async writeJournaled(entry: ExtentEntry): Promise<void> {
    const run = durableRun(entry);
    const first = run[0];
    assert(first !== undefined, 'a durable run has at least one append');
    takePending(entry, run.length);
    for (const pending of run) this.publish(entry, pending);
    // The sync timer runs from the acknowledgement on (again below, in case it fires before the write returns).
    this.scheduleSync(extentSyncIntervalMs);
    const write = this.guard(entry.file.writev(first.block.filePosition, blockParts(entry.identity.extentId, run)));
    entry.fileWrite = { fromOffset: first.block.offset, written: write.then(() => undefined, () => undefined) };
    try {
      await write;
    } finally {
      entry.fileWrite = null;
    }
    await failpoint('extent-store.group-commit.after-extent-write');
    for (const pending of run) {
      assert(pending.journalFile !== null, 'only journal-durable appends are written with group commit');
      entry.unsynced.push(pending.journalFile);
    }
    this.scheduleSync(extentSyncIntervalMs);
  }

  /**
   * The block's body from the extent file (null: it failed its check). A published block whose
   * extent-file write has not returned is not on disk yet: this waits for that write first, and
   * answers the store's failure if the write failed (never the half-written bytes).
   */
  private async readFromFile(entry: ExtentEntry, block: BlockEntry): Promise<Buffer | null> {
    const write = entry.fileWrite;
    if (write !== null && block.offset >= write.fromOffset) {
      await write.written;
      if (this.failure !== null) throw this.failure;
    }
    return readBlockBody(entry.file, entry.identity.extentId, block);
  }

  /** Durable first, then publish: the length advances over a durable block, then it resolves. */
  private publish(entry: ExtentEntry, pending: PendingAppend): void {
    const { block } = pending;
    assert(entry.length === block.offset, 'appends publish in offset order');
    entry.length = block.offset + block.length;
    this.counters.appends += 1;
    pending.resolve();
  }

  // ---------------------------------------------------------------- background extent sync

  private scheduleSync(delayMs: number): void {
    if (this.syncTimer !== null || this.closed) return;
    this.syncTimer = this.clock.setTimer(delayMs, () => {
      this.syncTimer = null;
      if (this.syncing !== null) {
        this.scheduleSync(extentSyncIntervalMs);
        return;
      }
      this.syncing = this.syncDirtyExtents()
        .catch((error: unknown) => { this.fail(error); })
        .finally(() => { this.syncing = null; });
    });
  }

  /** fsyncs every extent file with journal-acknowledged writes, then retires journal files. */
  private async syncDirtyExtents(): Promise<void> {
    for (const entry of this.extents.values()) {
      if (entry.unsynced.length === 0 || this.failure !== null) continue;
      const files = entry.unsynced.splice(0);
      await this.guard(entry.file.sync());
      this.counters.extentSyncs += 1;
      for (const file of files) this.journal.release(file);
    }
    await failpoint('extent-store.sync.before-journal-retire');
    if (this.failure === null) await this.guard(this.journal.retire());
  }

  // ---------------------------------------------------------------- seal

  private async sealNow(entry: ExtentEntry, length: number): Promise<void> {
    await idle(entry);
    await drainReaders(entry);
    this.checkWritable();
    const extentId = entry.identity.extentId;
    const cut = entry.blocks.findIndex((block) => block.offset >= length);
    const cutBlock = cut === -1 ? undefined : entry.blocks[cut];
    const atBoundary = cutBlock === undefined ? length === entry.length : cutBlock.offset === length;
    if (!Number.isSafeInteger(length) || length < 0 || length > entry.length || !atBoundary) {
      throw new StorageError('extent.out_of_range', `extent ${extentId}: ${length} is not a block boundary at or below its length ${entry.length}`, {
        context: { extentId, length, extentLength: entry.length },
      });
    }
    const filePosition = cutBlock === undefined ? entry.fileEnd : cutBlock.filePosition;
    if (cut !== -1) this.forget(entry.blocks.splice(cut));
    entry.length = length;
    entry.endOffset = length;
    const trailer = encodeSealTrailer(extentId, length);
    await this.guard(entry.file.truncate(filePosition));
    await failpoint('extent-store.seal.before-trailer');
    await this.guard(entry.file.write(filePosition, trailer));
    await this.guard(entry.file.sync());
    entry.fileEnd = filePosition + trailer.length;
    entry.state = { kind: 'sealed', sealedLength: length };
    for (const file of entry.unsynced.splice(0)) this.journal.release(file);
  }

  // ---------------------------------------------------------------- reads

  /**
   * Reads one block, checked; extent.corrupt (and onCorruption) if it does not check. From the
   * read cache when `cached` allows and it holds the block (its CRC re-checked on some hits:
   * cachedBody).
   */
  private async readVerified(entry: ExtentEntry, block: BlockEntry, cached = true): Promise<VerifiedBody> {
    const hit = cached ? this.cachedBody(block) : null;
    if (hit !== null) return hit;
    const read = this.readFromFile(entry, block);
    entry.readers.add(read);
    try {
      const body = await read;
      if (body !== null) {
        // readBlockBody proved the body against the header's CRC, which equals the index's when it knows one.
        const verified = { body, crc: block.bodyCrc ?? crc32c(body) };
        if (cached && body.length <= extentReadCacheBlockBytesMax && !this.closed && this.extents.get(entry.identity.extentId) === entry && entry.blocks[blockIndexAt(entry.blocks, block.offset)] === block) {
          this.readCache.set(block, { ...verified, readAtMs: this.clock.monotonicMs(), hitsServed: 0 }, body.length);
        }
        return verified;
      }
    } finally {
      entry.readers.delete(read);
    }
    const event = { extentId: entry.identity.extentId, offset: block.offset, reason: block.corrupt ? 'block damaged (found at recovery)' : 'block CRC or header mismatch' };
    this.onCorruption(event);
    throw new StorageError('extent.corrupt', `extent ${event.extentId}: block at ${event.offset} failed its check`, { context: { ...event } });
  }

  /**
   * A cached body of `block` that is young enough, or null. Its bytes are the ones checked when
   * read from disk as long as every holder treats a lent body as read-only (the file header's
   * rule); a CRC pass per hit (~15 µs per 64 KiB, ~2 % of a small Get) would re-prove that on
   * every hit, so the rule is asserted cheaply instead: on the entry's first hit and then every
   * extentReadCacheRecheckHits-th, a mismatch dropping the entry (rechecksFailed) for a disk read.
   */
  private cachedBody(block: BlockEntry): VerifiedBody | null {
    const cached = this.readCache.get(block);
    if (cached === undefined) {
      this.readCacheCounters.misses += 1;
      return null;
    }
    const verdict = judgeCacheEntry(cached, cached.body, this.clock.monotonicMs(), extentReadCacheEntryMsMax);
    if (verdict !== 'serve') {
      this.readCache.delete(block);
      if (verdict === 'rotten') this.readCacheCounters.rechecksFailed += 1;
      else this.readCacheCounters.misses += 1;
      return null;
    }
    this.readCacheCounters.hits += 1;
    return cached;
  }

  /** Drops blocks that left the index from the read cache. */
  private forget(blocks: readonly BlockEntry[]): void {
    for (const block of blocks) this.readCache.delete(block);
  }

  // ---------------------------------------------------------------- recovery

  private async loadExtents(): Promise<void> {
    const names = await this.disk.list(extentDirectory);
    for (const name of names) {
      const path = `${extentDirectory}/${name}`;
      if (name.endsWith(temporarySuffix)) {
        await this.disk.remove(path);
        this.recovery.temporaryFilesRemoved += 1;
        continue;
      }
      const parsed = parseExtentFileName(name);
      if (parsed === null) continue;
      this.recovery.extentFiles += 1;
      const entry = await this.loadExtent(path, parsed);
      if (entry === null) this.recovery.unreadableFiles.push(path);
      else this.extents.set(entry.identity.extentId, entry);
    }
    await this.loadDamageMarkers(names);
    await this.disk.syncDirectory(extentDirectory);
  }

  /** Attaches each damage marker to its extent; deletes markers whose extent file is gone. */
  private async loadDamageMarkers(names: readonly string[]): Promise<void> {
    const present = new Set(names);
    const byPath = new Map([...this.extents.values()].map((entry) => [entry.path, entry]));
    for (const name of names) {
      const extentName = extentFileNameOfMarker(name);
      if (extentName === null) continue;
      const path = `${extentDirectory}/${name}`;
      if (!present.has(extentName)) {
        await this.disk.remove(path);
        this.recovery.orphanMarkersRemoved += 1;
        continue;
      }
      const entry = byPath.get(`${extentDirectory}/${extentName}`);
      if (entry !== undefined) entry.damage = await this.readDamageMarker(path);
    }
  }

  /** A marker's reason; `unknown` when it does not decode (its presence is the mark). */
  private async readDamageMarker(path: string): Promise<ExtentDamage> {
    const file = await this.disk.open(path, { create: false });
    try {
      const marker = decodeDamageMarker(await file.read(0, await file.size()));
      return { reason: marker.reason, length: marker.length };
    } catch (error) {
      if (isStorageError(error) && error.code.startsWith('wire.')) return { reason: 'unknown', length: null };
      throw error;
    } finally {
      await file.close();
    }
  }

  private async loadExtent(path: string, parsed: { extentId: number; identityCrc: number }): Promise<ExtentEntry | null> {
    const file = await this.disk.open(path, { create: false });
    let scan;
    try {
      scan = await scanExtentFile(file);
    } catch (error) {
      await file.close();
      if (isStorageError(error) && error.code.startsWith('wire.')) return null;
      throw error;
    }
    const { header } = scan;
    if (header.extentId !== parsed.extentId || identityCrc(header) !== parsed.identityCrc || this.extents.has(header.extentId)) {
      await file.close();
      return null;
    }
    if (scan.sealedLength !== null && scan.fileBytes > scan.validEnd) {
      await file.truncate(scan.validEnd);
      await file.sync();
      this.recovery.tornTailBytesTruncated += scan.fileBytes - scan.validEnd;
    }
    for (const block of scan.blocks.filter((candidate) => candidate.corrupt)) {
      this.recovery.corruptBlocksFound += 1;
      this.onCorruption({ extentId: header.extentId, offset: block.offset, reason: 'damaged block found at recovery' });
    }
    const entry = newEntry({ identity: header, createdAtMs: header.createdAtMs, formatVersion: header.formatVersion, path, file, blocks: scan.blocks, sealedLength: scan.sealedLength });
    // An open extent's bytes past its index are judged after the journal replay (settleTail).
    if (scan.sealedLength === null && scan.fileBytes > scan.validEnd) this.recoveredTails.set(entry, scan.fileBytes);
    return entry;
  }

  private async replayJournal(sequences: readonly number[]): Promise<void> {
    const journal = await this.scanJournal(sequences);
    const { records, lastTombstone } = journal;
    this.recovery.journalRecords = records.length;
    const touched = new Set<ExtentEntry>();
    const damaged = new Map<ExtentEntry, DamageReason>();
    for (const [index, record] of records.entries()) {
      if (record.kind === 'remove' || index < (lastTombstone.get(record.extentId) ?? -1)) continue;
      const journalIntact = journal.damage.every((region) => region.recordsBefore > index);
      const entry = await this.replayRecord(record, touched, { journalIntact, pastTornWindow: index >= journal.tornWindowFrom });
      if (entry !== null && !damaged.has(entry)) damaged.set(entry, 'journal_gap');
    }
    for (const [entry, fileBytes] of this.recoveredTails) await this.settleTail(entry, fileBytes, damaged);
    for (const region of journal.damage) this.attributeDamage(region, journal, damaged);
    // Markers are durable before any tail is cut: a crash in between repeats the same verdict.
    for (const [entry, reason] of damaged) await this.markDamaged(entry, reason);
    await failpoint('extent-store.recovery.before-tail-cut');
    for (const [entry, fileBytes] of this.recoveredTails) await this.cutTail(entry, fileBytes, touched);
    this.recoveredTails.clear();
    for (const entry of touched) await entry.file.sync();
    for (const sequence of sequences) await this.disk.remove(`${journalDirectory}/${journalFileName(sequence)}`);
    await this.disk.syncDirectory(journalDirectory);
  }

  /**
   * Every good record of the journal files in order, and the bad ones that are damage rather than
   * a torn tail: followed by a good record (in this or a later file), or whole with a bad body.
   */
  private async scanJournal(sequences: readonly number[]): Promise<JournalReplay> {
    const scans: JournalScan[] = [];
    for (const sequence of sequences) scans.push(await scanJournalFile(this.disk, `${journalDirectory}/${journalFileName(sequence)}`));
    this.recovery.journalFiles += scans.length;
    const records: JournalRecord[] = [];
    const damage: JournalDamage[] = [];
    let tornWindowFrom: number | null = null;
    for (const [fileIndex, scan] of scans.entries()) {
      const laterFileHasRecord = scans.slice(fileIndex + 1).some((later) => later.items.some((item) => item.kind === 'record'));
      for (const [index, item] of scan.items.entries()) {
        if (item.kind === 'record') {
          records.push(item.record);
          continue;
        }
        const verdict = judgeBadRecord(scan, index, laterFileHasRecord);
        if (verdict === 'damage') {
          damage.push({ header: item.header, recordsBefore: records.length });
          this.recovery.journalRecordsDamaged += 1;
        } else if (item.endsFile) {
          this.recovery.journalTornTailBytes += scan.fileBytes - item.position;
        } else {
          this.recovery.journalTornWindowRegions += 1;
        }
        if (verdict === 'torn-window') tornWindowFrom ??= records.length;
      }
    }
    const lastTombstone = new Map<number, number>();
    const lastAppend = new Map<number, number>();
    records.forEach((record, index) => (record.kind === 'remove' ? lastTombstone : lastAppend).set(record.extentId, index));
    return { records, damage, tornWindowFrom: tornWindowFrom ?? records.length, lastTombstone, lastAppend };
  }

  /**
   * Which extents a damaged journal region may have robbed of an acknowledged append (see
   * docs/formats/journal.md, Recovery): its own extent if its header checks and the extent file
   * does not hold that offset; if its extent is unknown, every open extent with no append record
   * after it (a later record that applied proves the extent complete past the region).
   */
  private attributeDamage(region: JournalDamage, journal: JournalReplay, damaged: Map<ExtentEntry, DamageReason>): void {
    const { header, recordsBefore } = region;
    if (header === null) {
      for (const entry of this.extents.values()) {
        const proven = (journal.lastAppend.get(entry.identity.extentId) ?? -1) >= recordsBefore;
        if (entry.state.kind === 'open' && !proven && !damaged.has(entry)) damaged.set(entry, 'journal_damage_unattributed');
      }
      return;
    }
    const entry = this.extents.get(header.extentId);
    const removedAfter = (journal.lastTombstone.get(header.extentId) ?? -1) >= recordsBefore;
    if (entry === undefined || removedAfter || header.kind !== 'append' || damaged.has(entry)) return;
    if (entry.state.kind === 'sealed' && header.offset >= entry.state.sealedLength) return;
    if (!holdsBlock(entry, header)) damaged.set(entry, 'journal_record_damaged');
  }

  /**
   * After the replay: judges an open extent's file past its index (docs/formats/extent-file.md,
   * "Recovery"). Whole sound blocks are indexed; a record the file ends inside is a torn write
   * (cut later); a whole record that fails its check is rot of synced bytes: the replica is
   * damaged (a torn write leaves a short file, and no journal record restored it).
   */
  private async settleTail(entry: ExtentEntry, fileBytes: number, damaged: Map<ExtentEntry, DamageReason>): Promise<void> {
    const tail = await this.indexSoundTail(entry, fileBytes);
    if (tail?.kind !== 'damaged') return;
    this.recovery.extentTailsDamaged += 1;
    const extentId = entry.identity.extentId;
    this.onCorruption({ extentId, offset: entry.length, reason: 'damaged tail record (whole: not a torn write) found at recovery' });
    if (!damaged.has(entry)) damaged.set(entry, 'extent_tail_damaged');
  }

  /**
   * Indexes the whole sound blocks at the end of the index of an open extent's file (`fileBytes`
   * long as found): blocks cut off by the scan only because a run of damaged blocks before them
   * could not be resynced, and that the replay has since restored. Returns what stopped it
   * (null: the file's end).
   */
  private async indexSoundTail(entry: ExtentEntry, fileBytes: number): Promise<TailRecord | null> {
    const extentId = entry.identity.extentId;
    while (entry.fileEnd < fileBytes) {
      const tail = await tailRecordAt(entry.file, { extentId, position: entry.fileEnd, offset: entry.length, fileBytes });
      if (tail.kind !== 'block') return tail;
      entry.blocks.push(tail.block);
      entry.length = entry.endOffset = tail.block.offset + tail.block.length;
      entry.fileEnd += blockHeaderBytes + tail.block.length;
    }
    return null;
  }

  /**
   * Truncates an open extent's file after its last indexed record: a torn write. A damaged
   * replica keeps its bytes as evidence for an operator (it takes no append; a seal truncates).
   */
  private async cutTail(entry: ExtentEntry, fileBytes: number, touched: Set<ExtentEntry>): Promise<void> {
    if (fileBytes <= entry.fileEnd || entry.damage !== null) return;
    await entry.file.truncate(entry.fileEnd);
    this.recovery.tornTailBytesTruncated += fileBytes - entry.fileEnd;
    touched.add(entry);
  }

  /** Writes the extent's damage marker durably (before the journal that proves it is deleted). */
  private async markDamaged(entry: ExtentEntry, reason: DamageReason): Promise<void> {
    if (entry.damage !== null) return;
    const marker = encodeDamageMarker({ ...entry.identity, reason, length: entry.length, markedAtMs: Math.max(0, Math.floor(this.clock.nowMs())) });
    await this.writeNewFile(markerPath(entry), marker);
    entry.damage = { reason, length: entry.length };
    this.recovery.extentsMarkedDamaged += 1;
  }

  /**
   * Replays one append record; returns the extent if the record left a gap or conflicts.
   * `journalIntact`: no damaged region precedes it; `pastTornWindow`: a torn window precedes it
   * (it was not acknowledged: past a gap it is skipped, not damage).
   */
  private async replayRecord(record: Extract<JournalRecord, { kind: 'append' }>, touched: Set<ExtentEntry>, where: { journalIntact: boolean; pastTornWindow: boolean }): Promise<ExtentEntry | null> {
    const { journalIntact, pastTornWindow } = where;
    const entry = this.extents.get(record.extentId);
    const fileBytes = entry === undefined ? undefined : this.recoveredTails.get(entry);
    // A direct append (not journaled) may sit past a run the replay just restored: index it first.
    const tail = entry !== undefined && fileBytes !== undefined && record.offset > entry.length ? await this.indexSoundTail(entry, fileBytes) : null;
    if (entry?.state.kind === 'open' && record.offset > entry.length && ((journalIntact && tail?.kind !== 'damaged') || pastTornWindow)) {
      // Past a dropped direct append: the file ends cleanly (or torn) before this record and no
      // journal record was lost before it, so the bytes in between were never durable and this
      // record (acknowledged only after them) was never acknowledged (journal.md, Recovery).
      // Past a torn window: the gap's record was in a batch in flight at the crash, and this one,
      // acknowledged only after it, never was.
      this.recovery.journalRecordsSkipped += 1;
      return null;
    }
    const sealedAway = entry?.state.kind === 'sealed' && record.offset >= entry.state.sealedLength;
    if (entry === undefined || sealedAway) {
      this.recovery.journalRecordsSkipped += 1;
      return null;
    }
    const bytes = encodeDataBlock({ extentId: record.extentId, offset: record.offset, body: record.body, bodyCrc: record.bodyCrc });
    if (record.offset === entry.length && entry.state.kind === 'open') {
      const block: BlockEntry = { offset: record.offset, length: record.body.length, filePosition: entry.fileEnd, bodyCrc: record.bodyCrc, corrupt: false };
      await entry.file.write(block.filePosition, bytes);
      entry.blocks.push(block);
      entry.length = entry.endOffset = block.offset + block.length;
      entry.fileEnd += bytes.length;
      this.recovery.journalRecordsApplied += 1;
      touched.add(entry);
      return null;
    }
    const block = record.offset < entry.length ? entry.blocks[blockIndexAt(entry.blocks, record.offset)] : undefined;
    const same = block !== undefined && block.offset === record.offset && block.length === record.body.length && (block.bodyCrc === null || block.bodyCrc === record.bodyCrc);
    if (!same) {
      this.recovery.journalRecordsConflicting += 1;
      this.onCorruption({ extentId: record.extentId, offset: record.offset, reason: 'journal record conflicts with the extent file' });
      return entry;
    }
    if ((await readBlockBody(entry.file, record.extentId, block)) !== null) {
      this.recovery.journalRecordsSkipped += 1;
      return null;
    }
    await entry.file.write(block.filePosition, bytes);
    block.bodyCrc = record.bodyCrc;
    block.corrupt = false;
    this.recovery.blocksRepaired += 1;
    touched.add(entry);
    return null;
  }

  // ---------------------------------------------------------------- helpers

  /** tmp, fsync, rename, fsync extents/ (STYLE.md, Disk idioms). */
  private async writeNewFile(path: string, header: Buffer): Promise<void> {
    const temporaryPath = `${path}${temporarySuffix}`;
    const file = await this.disk.open(temporaryPath, { create: true });
    try {
      await file.truncate(0);
      await file.write(0, header);
      await this.guard(file.sync());
    } finally {
      await file.close();
    }
    await failpoint('extent-store.create.before-rename');
    await this.disk.rename(temporaryPath, path);
    await this.guard(this.disk.syncDirectory(extentDirectory));
  }

  /** Awaits a write-path I/O step; any failure fails the store (never retried as safe). */
  private async guard<T>(step: Promise<T>): Promise<T> {
    try {
      return await step;
    } catch (error) {
      throw this.fail(error);
    }
  }

  private fail(error: unknown): StorageError {
    if (this.failure === null) {
      const message = error instanceof Error ? error.message : String(error);
      this.failure = new StorageError('extent.failed', `extent store on ${this.disk.name} failed: ${message}`, { cause: error });
      this.onFailure(this.failure);
    }
    return this.failure;
  }

  private checkWritable(): void {
    if (this.closed) throw new StorageError('io.closed', 'extent store is closed');
    if (this.failure !== null) throw this.failure;
  }

  private live(extentId: number): ExtentEntry {
    const entry = this.extents.get(extentId);
    if (entry === undefined || entry.removing) {
      throw new StorageError('extent.not_found', `extent ${extentId} not found on ${this.disk.name}`, { context: { extentId } });
    }
    return entry;
  }

  private readable(extentId: number): ExtentEntry {
    if (this.closed) throw new StorageError('io.closed', 'extent store is closed');
    return this.live(extentId);
  }
}

function newEntry(fields: {
  identity: ExtentIdentity; createdAtMs: number; formatVersion: number; path: string; file: DiskFile; blocks: BlockEntry[]; sealedLength: number | null;
}): ExtentEntry {
  const last = fields.blocks.at(-1);
  const length = last === undefined ? 0 : last.offset + last.length;
  const dataEnd = last === undefined ? extentHeaderBytes : last.filePosition + blockHeaderBytes + last.length;
  const sealed = fields.sealedLength !== null;
  return {
    identity: { streamId: fields.identity.streamId, extentId: fields.identity.extentId, epoch: fields.identity.epoch },
    createdAtMs: fields.createdAtMs,
    blockBytesMax: extentBlockBytesMax(fields.formatVersion),
    path: fields.path,
    file: fields.file,
    blocks: fields.blocks,
    length,
    endOffset: length,
    fileEnd: sealed ? dataEnd + blockHeaderBytes + sealBodyBytes : dataEnd,
    state: fields.sealedLength === null ? { kind: 'open' } : { kind: 'sealed', sealedLength: fields.sealedLength },
    damage: null,
    sealing: null,
    removing: false,
    pending: [],
    pendingHead: 0,
    draining: false,
    fileWrite: null,
    idleWaiters: [],
    readers: new Set(),
    unsynced: [],
  };
}

/** Reserves the next block of an extent (synchronously, so concurrent appends pipeline). */
function reserveBlock(entry: ExtentEntry, length: number, bodyCrc: number): BlockEntry {
  const block: BlockEntry = { offset: entry.endOffset, length, filePosition: entry.fileEnd, bodyCrc, corrupt: false };
  entry.blocks.push(block);
  entry.endOffset += block.length;
  entry.fileEnd += blockHeaderBytes + block.length;
  return block;
}

/** The journal-durable appends at the head of the FIFO, at most groupCommitBytesMax bytes (at least one). */
function durableRun(entry: ExtentEntry): PendingAppend[] {
  const run: PendingAppend[] = [];
  let bytes = 0;
  for (let index = entry.pendingHead; index < entry.pending.length; index++) {
    const pending = entry.pending[index];
    if (pending === undefined || !pending.journaled || pending.journalFile === null) break;
    if (run.length > 0 && bytes + pending.block.length > groupCommitBytesMax) break;
    bytes += pending.block.length;
    run.push(pending);
  }
  return run;
}

/**
 * The block records of a run, contiguous in the file, as writev parts (header, body, ...): the
 * bodies are written from the appends' own buffers, not copied into a run buffer.
 */
function blockParts(extentId: number, run: readonly PendingAppend[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let position = run[0]?.block.filePosition ?? 0;
  for (const { block, body, bodyCrc } of run) {
    assert(block.filePosition === position && body.length === block.length, 'a run of blocks is contiguous in the file');
    parts.push(encodeDataBlockHeader({ extentId, offset: block.offset, body, bodyCrc }), ...bodyPartsOf(body));
    position += blockHeaderBytes + block.length;
  }
  return parts;
}

/** Drops `count` settled appends from the head of the FIFO (compacting it now and then). */
function takePending(entry: ExtentEntry, count: number): void {
  entry.pendingHead += count;
  assert(entry.pendingHead <= entry.pending.length, 'only pending appends are taken');
  if (entry.pendingHead === entry.pending.length) {
    entry.pending.length = 0;
    entry.pendingHead = 0;
  } else if (entry.pendingHead >= 1024) {
    entry.pending.splice(0, entry.pendingHead);
    entry.pendingHead = 0;
  }
}

/** The store failed: every pending append of the extent rejects, in order. */
function rejectPending(entry: ExtentEntry, error: StorageError): void {
  const rest = entry.pending.slice(entry.pendingHead);
  entry.pending.length = 0;
  entry.pendingHead = 0;
  for (const pending of rest) pending.reject(error);
}

/** Resolves once no append of the extent is pending (every one issued so far has settled). */
function idle(entry: ExtentEntry): Promise<void> {
  if (entry.pendingHead === entry.pending.length && !entry.draining) return Promise.resolve();
  return new Promise((resolve) => {
    entry.idleWaiters.push(resolve);
  });
}

function wakeIdle(entry: ExtentEntry): void {
  for (const resolve of entry.idleWaiters.splice(0)) resolve();
}

function markerPath(entry: ExtentEntry): string {
  return `${extentDirectory}/${damageMarkerName(entry.identity)}`;
}

/** The extent file holds the block a journal header describes (same offset, length and CRC). */
function holdsBlock(entry: ExtentEntry, header: JournalHeader): boolean {
  if (header.offset >= entry.length) return false;
  const block = entry.blocks[blockIndexAt(entry.blocks, header.offset)];
  return block !== undefined && block.offset === header.offset && block.length === header.bodyBytes && (block.bodyCrc === null || block.bodyCrc === header.bodyCrc);
}

function infoOf(entry: ExtentEntry): ExtentInfo {
  return { ...entry.identity, length: entry.length, state: entry.state, createdAtMs: entry.createdAtMs };
}

function checkRange(entry: ExtentEntry, offset: number, length: number): void {
  const valid = Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0;
  if (!valid || offset + length > entry.length) {
    throw new StorageError('extent.out_of_range', `extent ${entry.identity.extentId}: [${offset}, +${length}) is past its length ${entry.length}`, {
      context: { extentId: entry.identity.extentId, offset, length, extentLength: entry.length },
    });
  }
}

/** Index of the block containing `offset` (binary search over block starts). */
function blockIndexAt(blocks: readonly BlockEntry[], offset: number): number {
  let low = 0;
  let high = blocks.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if ((blocks[middle]?.offset ?? 0) <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}

async function drainReaders(entry: ExtentEntry): Promise<void> {
  while (entry.readers.size > 0) await Promise.allSettled([...entry.readers]);
}

function emptyReport(): ExtentStoreRecoveryReport {
  return {
    extentFiles: 0, unreadableFiles: [], temporaryFilesRemoved: 0, tornTailBytesTruncated: 0, corruptBlocksFound: 0, journalFiles: 0,
    journalRecords: 0, journalRecordsApplied: 0, blocksRepaired: 0, journalRecordsSkipped: 0, journalRecordsConflicting: 0,
    journalRecordsDamaged: 0, journalTornTailBytes: 0, journalTornWindowRegions: 0, extentsMarkedDamaged: 0, extentTailsDamaged: 0, orphanMarkersRemoved: 0,
  };
}
