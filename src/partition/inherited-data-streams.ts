// PartitionStreams for a partition born of a split (docs/partition-protocol.md, "Splits"): its
// rows may hold data refs into an ancestor's data stream. Reads of the partition's own data
// stream that name an extent not in it are tried in the inherited data streams, newest ancestor
// first; everything else passes through.
//
// Invariants: only reads are redirected, never appends, seals or drops (inherited streams are
// read-only to the child); a ref found nowhere fails as the last stream's error.
// Fault model: as PartitionStreams; extent.not_found from one stream moves to the next.
import { assert } from '../util/assert.ts';
import { isStorageError } from '../util/errors.ts';
import type { PartitionStreams, StreamAppendPosition, StreamExtent } from './partition-streams.ts';
import type { Body } from '../util/body-parts.ts';

export interface InheritedDataStreamsOptions {
  readonly inner: PartitionStreams;
  readonly dataStreamId: number;
  readonly inherited: readonly number[];
}

export class InheritedDataStreams implements PartitionStreams {
  private readonly inner: PartitionStreams;
  private readonly dataStreamId: number;
  private readonly inherited: readonly number[];

  constructor(options: InheritedDataStreamsOptions) {
    this.inner = options.inner;
    this.dataStreamId = options.dataStreamId;
    this.inherited = options.inherited;
  }

  append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    return this.inner.append(streamId, data);
  }

  async read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer> {
    if (streamId !== this.dataStreamId) return this.inner.read(streamId, extentId, offset, length);
    const candidates = [streamId, ...this.inherited];
    for (const [index, candidate] of candidates.entries()) {
      try {
        return await this.inner.read(candidate, extentId, offset, length);
      } catch (error) {
        if (!isStorageError(error, 'extent.not_found') || index === candidates.length - 1) throw error;
      }
    }
    return this.inner.read(streamId, extentId, offset, length);
  }

  extents(streamId: number): Promise<readonly StreamExtent[]> {
    return this.inner.extents(streamId);
  }

  sealTail(streamId: number): Promise<void> {
    return this.inner.sealTail(streamId);
  }

  streamOfExtent(extentId: number): number | null {
    return this.inner.streamOfExtent?.(extentId) ?? null;
  }

  /** Own streams only: an inherited stream is read-only to the child (its sibling reads it too). */
  dropExtents(streamId: number, extentIds: readonly number[]): Promise<void> {
    assert(!this.inherited.includes(streamId), 'a child never drops extents of an inherited data stream');
    return this.inner.dropExtents(streamId, extentIds);
  }
}
