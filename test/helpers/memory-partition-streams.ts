// In-memory PartitionStreams for partition tests: streams of extents with the stream layer's
// contract (an append is stored whole in one extent; sealTail fixes lengths and starts a new
// extent), plus what the real layer can do to a partition on a bad day, on demand:
// - failNextAppend(streamId, 'lost' | 'landed'): the append throws; its bytes are dropped or kept
//   (an unknown outcome, as after a timeout);
// - duplicateNextAppend(streamId): the append is stored twice, the second copy in a new extent
//   (a retry applied again across a seal after a replica restart);
// - sessions: each Partition gets its own view; revoke() makes every later call of that view
//   throw, as when its process dies (appends already stored stay).
// Extents are cut at `extentBytesMax` so logs and runs span many extents.
import { StorageError } from '../../src/util/errors.ts';
import type { PartitionStreamIds, PartitionStreams, StreamAppendPosition, StreamExtent } from '../../src/partition/partition-streams.ts';
import { bodyBytes, type Body } from '../../src/util/body-parts.ts';

interface MemoryExtent {
  readonly extentId: number;
  data: Buffer;
  sealed: boolean;
}

type AppendFault = 'lost' | 'landed' | 'duplicate';

export class MemoryStreamStore {
  private readonly streams = new Map<number, MemoryExtent[]>();
  private readonly faults = new Map<number, AppendFault>();
  private nextStreamId = 1;
  private nextExtentId = 1;
  private readonly extentBytesMax: number;
  appends = 0;
  faultsInjected = 0;
  extentsDropped = 0;

  constructor(options: { readonly extentBytesMax?: number } = {}) {
    this.extentBytesMax = options.extentBytesMax ?? 1024 * 1024;
  }

  createStream(): number {
    const streamId = this.nextStreamId++;
    this.streams.set(streamId, [this.newExtent()]);
    return streamId;
  }

  createPartitionStreams(): PartitionStreamIds {
    return { meta: this.createStream(), log: this.createStream(), checkpoint: this.createStream(), data: this.createStream() };
  }

  failNextAppend(streamId: number, outcome: 'lost' | 'landed'): void {
    this.faults.set(streamId, outcome);
  }

  /** Forgets injected faults that no append consumed. */
  clearFaults(): void {
    this.faults.clear();
  }

  duplicateNextAppend(streamId: number): void {
    this.faults.set(streamId, 'duplicate');
  }

  /** A view for one partition owner; revoke() is its process dying. */
  session(): MemoryStreamSession {
    return new MemoryStreamSession(this);
  }

  append(streamId: number, data: Buffer): StreamAppendPosition {
    const fault = this.faults.get(streamId);
    this.faults.delete(streamId);
    this.appends += 1;
    if (fault === 'lost') return this.injected(streamId);
    const position = this.store(streamId, data);
    if (fault === 'landed') {
      return this.injected(streamId);
    }
    if (fault === 'duplicate') {
      this.faultsInjected += 1;
      this.sealTail(streamId);
      this.store(streamId, data);
    }
    return position;
  }

  read(streamId: number, extentId: number, offset: number, length: number): Buffer {
    const extent = this.extentsOf(streamId).find((candidate) => candidate.extentId === extentId);
    if (extent === undefined) throw new StorageError('extent.not_found', `extent ${extentId} is not in stream ${streamId}`);
    if (offset + length > extent.data.length) throw new StorageError('extent.out_of_range', `read past extent ${extentId}'s length`);
    return Buffer.from(extent.data.subarray(offset, offset + length));
  }

  extents(streamId: number): StreamExtent[] {
    return this.extentsOf(streamId).map((extent) => ({
      extentId: extent.extentId,
      state: extent.sealed ? { kind: 'sealed', length: extent.data.length } : { kind: 'open' },
    }));
  }

  sealTail(streamId: number): void {
    const extents = this.extentsOf(streamId);
    const tail = extents.at(-1);
    if (tail !== undefined) tail.sealed = true;
    extents.push(this.newExtent());
  }

  /** Garbage collection: removes sealed, non-tail extents (ids no longer present are skipped). */
  dropExtents(streamId: number, extentIds: readonly number[]): void {
    const extents = this.extentsOf(streamId);
    const tail = extents.at(-1);
    for (const extentId of extentIds) {
      const index = extents.findIndex((extent) => extent.extentId === extentId);
      if (index === -1) continue;
      const extent = extents[index];
      if (extent === undefined || !extent.sealed || extent === tail) throw new StorageError('config.invalid', `extent ${extentId} is open or the tail`);
      extents.splice(index, 1);
      this.extentsDropped += 1;
    }
  }

  /** Total bytes held by a stream (for figures). */
  streamBytes(streamId: number): number {
    return this.extentsOf(streamId).reduce((sum, extent) => sum + extent.data.length, 0);
  }

  private store(streamId: number, data: Buffer): StreamAppendPosition {
    let tail = this.extentsOf(streamId).at(-1);
    if (tail === undefined || tail.sealed || (tail.data.length > 0 && tail.data.length + data.length > this.extentBytesMax)) {
      this.sealTail(streamId);
      tail = this.extentsOf(streamId).at(-1);
    }
    if (tail === undefined) throw new Error('unreachable: a stream has a tail after sealTail');
    const offset = tail.data.length;
    tail.data = Buffer.concat([tail.data, data]);
    return { extentId: tail.extentId, offset, length: data.length };
  }

  private injected(streamId: number): never {
    this.faultsInjected += 1;
    throw new StorageError('stream.unavailable', `injected append failure on stream ${streamId}`, { retryable: true });
  }

  private extentsOf(streamId: number): MemoryExtent[] {
    const extents = this.streams.get(streamId);
    if (extents === undefined) throw new StorageError('stream.not_found', `no stream ${streamId}`);
    return extents;
  }

  private newExtent(): MemoryExtent {
    return { extentId: this.nextExtentId++, data: Buffer.alloc(0), sealed: false };
  }
}

/** One owner's view of the store. Calls resolve on a later microtask, as real I/O does. */
export class MemoryStreamSession implements PartitionStreams {
  private readonly store: MemoryStreamStore;
  private revoked = false;

  constructor(store: MemoryStreamStore) {
    this.store = store;
  }

  revoke(): void {
    this.revoked = true;
  }

  async append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    await this.alive();
    return this.store.append(streamId, bodyBytes(data));
  }

  async read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer> {
    await this.alive();
    return this.store.read(streamId, extentId, offset, length);
  }

  async extents(streamId: number): Promise<readonly StreamExtent[]> {
    await this.alive();
    return this.store.extents(streamId);
  }

  async sealTail(streamId: number): Promise<void> {
    await this.alive();
    this.store.sealTail(streamId);
  }

  async dropExtents(streamId: number, extentIds: readonly number[]): Promise<void> {
    await this.alive();
    this.store.dropExtents(streamId, extentIds);
  }

  private async alive(): Promise<void> {
    await Promise.resolve();
    if (this.revoked) throw new StorageError('rpc.unreachable', 'this owner is dead (session revoked)');
  }
}

/** PartitionStreams that pass every call to `inner`: a base for tests that change one call. */
export class ForwardingStreams implements PartitionStreams {
  readonly inner: PartitionStreams;

  constructor(inner: PartitionStreams) {
    this.inner = inner;
  }

  append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    return this.inner.append(streamId, data);
  }

  read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer> {
    return this.inner.read(streamId, extentId, offset, length);
  }

  extents(streamId: number): Promise<readonly StreamExtent[]> {
    return this.inner.extents(streamId);
  }

  sealTail(streamId: number): Promise<void> {
    return this.inner.sealTail(streamId);
  }

  dropExtents(streamId: number, extentIds: readonly number[]): Promise<void> {
    return this.inner.dropExtents(streamId, extentIds);
  }
}
