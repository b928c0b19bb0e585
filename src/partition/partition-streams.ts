// What a partition needs from the stream layer (docs/formats/partition-log.md, "A partition's
// streams"), as one small seam: append a record to a stream, read verified bytes back, list a
// stream's extents with their state, and seal a stream's tail so every extent but a new empty one
// has a known, final length; and drop extents a partition no longer needs (docs/partition-gc.md). StreamLayerPartitionStreams adapts StreamClient + StreamManagerApi;
// tests also run partitions on an in-memory implementation with fault injection.
//
// Invariants (every implementation):
// - append resolves only when the bytes are durable (on every replica); the bytes of one append
//   are stored contiguously in one extent or not at all; a failed append's outcome is unknown;
// - read returns exactly the bytes appended there (CRC-verified) or throws;
// - after sealTail resolves, every extent listed before the new tail is sealed with its length.
// Owner epochs: StreamLayerPartitionStreams built with an ownerEpoch passes it to every append and
// seal, so the stream layer refuses this owner once a newer one took the streams over
// (stream.fenced; docs/partition-protocol.md, "The fencing argument").
// Fault model: any call may fail with a StorageError (stream.unavailable, extent.*, rpc.*); an
// append may be stored twice across a seal (records carry their own sequence numbers).
import type { StreamClient } from '../stream/stream-client.ts';
import type { StreamManagerApi } from '../stream/protocol.ts';
import { dropExtentsPerCallMax } from '../constants.ts';
import { StorageError } from '../util/errors.ts';
import type { Body } from '../util/body-parts.ts';

export interface StreamAppendPosition {
  readonly extentId: number;
  readonly offset: number;
  readonly length: number;
}

export type StreamExtentState = { readonly kind: 'open' } | { readonly kind: 'sealed'; readonly length: number };

export interface StreamExtent {
  readonly extentId: number;
  readonly state: StreamExtentState;
}

export interface PartitionStreams {
  append(streamId: number, data: Body): Promise<StreamAppendPosition>;
  read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer>;
  /** The stream's extents in order; the last one is the tail. */
  extents(streamId: number): Promise<readonly StreamExtent[]>;
  /** Seals the current tail at its committed length and starts a new, empty tail. */
  sealTail(streamId: number): Promise<void>;
  /**
   * Garbage collection: removes sealed, non-tail extents from the stream for good (their bytes
   * are deleted from every replica). Idempotent; fenced by the owner epoch (docs/partition-gc.md).
   */
  dropExtents(streamId: number, extentIds: readonly number[]): Promise<void>;
  /** Diagnostics only: the stream an extent is known to belong to (a cache; no call), or null. */
  streamOfExtent?(extentId: number): number | null;
}

/** The four streams of one partition. */
export interface PartitionStreamIds {
  readonly meta: number;
  readonly log: number;
  readonly checkpoint: number;
  readonly data: number;
}

/** PartitionStreams over the real stream layer. */
export class StreamLayerPartitionStreams implements PartitionStreams {
  private readonly client: StreamClient;
  private readonly manager: StreamManagerApi;
  private readonly ownerEpoch: number | undefined;

  constructor(options: { readonly client: StreamClient; readonly manager: StreamManagerApi; readonly ownerEpoch?: number }) {
    this.client = options.client;
    this.manager = options.manager;
    this.ownerEpoch = options.ownerEpoch;
  }

  append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    return this.client.append(streamId, data, this.ownerEpoch === undefined ? {} : { ownerEpoch: this.ownerEpoch });
  }

  read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer> {
    return this.client.read(extentId, offset, length, { streamId });
  }

  async extents(streamId: number): Promise<readonly StreamExtent[]> {
    const view = await this.manager.getStream(streamId);
    return view.extents.map((extent) => ({
      extentId: extent.extentId,
      state: extent.state.kind === 'sealed' ? { kind: 'sealed', length: extent.state.sealedLength } : { kind: 'open' },
    }));
  }

  async sealTail(streamId: number): Promise<void> {
    const view = await this.manager.getStream(streamId);
    const tail = view.extents.at(-1);
    if (tail === undefined) throw new StorageError('stream.unavailable', `stream ${streamId} has no extents`, { retryable: true });
    const request = this.ownerEpoch === undefined ? { streamId, extentId: tail.extentId } : { streamId, extentId: tail.extentId, ownerEpoch: this.ownerEpoch };
    await this.manager.sealAndExtend(request);
    this.client.invalidate(streamId);
  }

  streamOfExtent(extentId: number): number | null {
    return this.client.cachedStreamOf(extentId);
  }

  async dropExtents(streamId: number, extentIds: readonly number[]): Promise<void> {
    for (let index = 0; index < extentIds.length; index += dropExtentsPerCallMax) {
      await this.manager.dropExtents({ streamId, extentIds: extentIds.slice(index, index + dropExtentsPerCallMax), ownerEpoch: this.ownerEpoch ?? 0 });
    }
    this.client.invalidate(streamId);
  }
}
