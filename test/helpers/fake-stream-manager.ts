// A small in-memory StreamManagerApi for extent-node and stream-client tests: it places every
// extent on the first `replicaCount` registered nodes not marked excluded, seals at the smallest
// length the answering replicas report (docs/stream-protocol.md, "Seal"), and records corruption
// reports and heartbeats. It keeps no MetaStore; the real StreamManager is tested on its own.
import type { Network } from '../../src/rpc/network.ts';
import { StorageError } from '../../src/util/errors.ts';
import { extentInfoSchema, parseResponse } from '../../src/stream/extent-node-rpc.ts';
import type { ExtentView, NodeRegistration, StreamManagerApi, StreamView } from '../../src/stream/protocol.ts';

interface FakeStream {
  readonly streamId: number;
  readonly name: string;
  readonly replicaCount: number;
  extents: ExtentView[];
}

export class FakeStreamManager implements StreamManagerApi {
  epoch = 1;
  readonly nodes = new Map<string, NodeRegistration>();
  readonly excluded = new Set<string>();
  readonly corruptionReports: Array<{ extentId: number; nodeId: string }> = [];
  readonly checkedTokens: string[] = [];
  readonly validTokens = new Set<string>();
  heartbeats = 0;
  seals = 0;
  private readonly network: Network;
  private readonly streams = new Map<number, FakeStream>();
  private nextStreamId = 1;
  private nextExtentId = 1;
  private sealing: Promise<void> = Promise.resolve();

  constructor(options: { readonly network: Network }) {
    this.network = options.network;
  }

  registerNode(registration: NodeRegistration): Promise<{ epoch: number }> {
    this.nodes.set(registration.nodeId, registration);
    return Promise.resolve({ epoch: this.epoch });
  }

  heartbeat(beat: { nodeId: string }): Promise<{ epoch: number }> {
    if (!this.nodes.has(beat.nodeId)) return Promise.reject(new StorageError('node.not_found', `unknown node ${beat.nodeId}`));
    this.heartbeats += 1;
    return Promise.resolve({ epoch: this.epoch });
  }

  async createStream(request: { name: string; replicaCount?: number }): Promise<StreamView> {
    const stream: FakeStream = { streamId: this.nextStreamId++, name: request.name, replicaCount: request.replicaCount ?? 3, extents: [] };
    stream.extents.push(await this.placeExtent(stream));
    this.streams.set(stream.streamId, stream);
    return this.view(stream);
  }

  getStream(streamId: number): Promise<StreamView> {
    return Promise.resolve(this.view(this.stream(streamId)));
  }

  /** One seal at a time (as the real manager does per stream), so concurrent calls make one extent. */
  dropExtents(): Promise<{ dropped: readonly number[] }> {
    return Promise.reject(new StorageError('config.invalid', 'the fake stream manager does not drop extents'));
  }

  sealAndExtend(request: { streamId: number; extentId: number }): Promise<StreamView> {
    const run = this.sealing.then(() => this.sealAndExtendNow(request));
    this.sealing = run.then(() => undefined, () => undefined);
    return run;
  }

  private async sealAndExtendNow(request: { streamId: number; extentId: number }): Promise<StreamView> {
    const stream = this.stream(request.streamId);
    const index = stream.extents.findIndex((extent) => extent.extentId === request.extentId);
    const extent = stream.extents[index];
    if (extent === undefined) throw new StorageError('extent.not_found', `extent ${request.extentId} not in stream`);
    if (extent.state.kind === 'sealed') return this.view(stream);
    const sealedLength = await this.seal(extent);
    stream.extents[index] = { ...extent, state: { kind: 'sealed', sealedLength } };
    stream.extents.push(await this.placeExtent(stream));
    return this.view(stream);
  }

  reportCorruption(report: { extentId: number; nodeId: string }): Promise<void> {
    this.corruptionReports.push(report);
    return Promise.resolve();
  }

  liveReplicas(nodeId: string): Promise<readonly number[]> {
    const ids = [...this.streams.values()].flatMap((stream) => stream.extents)
      .filter((extent) => extent.replicas.some((replica) => replica.nodeId === nodeId))
      .map((extent) => extent.extentId);
    return Promise.resolve(ids);
  }

  /** A token in release-token.ts's shape (claims "." signature), valid until revoked. */
  releaseToken(nodeId: string): Promise<string> {
    const disk = this.nodes.get(nodeId)?.disk ?? 'unknown';
    const claims = { nodeId, disk, epoch: this.epoch, placementVersion: 0, issuedAtMs: 0 };
    const token = `${Buffer.from(JSON.stringify(claims)).toString('base64url')}.fake-signature`;
    this.validTokens.add(token);
    return Promise.resolve(token);
  }

  checkToken(token: string): Promise<boolean> {
    this.checkedTokens.push(token);
    return Promise.resolve(this.validTokens.has(token));
  }

  private stream(streamId: number): FakeStream {
    const stream = this.streams.get(streamId);
    if (stream === undefined) throw new StorageError('stream.not_found', `stream ${streamId}`);
    return stream;
  }

  private view(stream: FakeStream): StreamView {
    return { streamId: stream.streamId, name: stream.name, extents: [...stream.extents] };
  }

  private async placeExtent(stream: FakeStream): Promise<ExtentView> {
    const chosen = [...this.nodes.values()].filter((node) => !this.excluded.has(node.nodeId)).slice(0, stream.replicaCount);
    if (chosen.length === 0) throw new StorageError('stream.no_placement', 'no nodes');
    const extentId = this.nextExtentId++;
    for (const node of chosen) {
      await this.network.call(node.address, { method: 'extent.create', header: { epoch: this.epoch, streamId: stream.streamId, extentId }, body: Buffer.alloc(0) }, { deadlineMs: 1000 });
    }
    return {
      extentId,
      streamId: stream.streamId,
      replicas: chosen.map((node) => ({ nodeId: node.nodeId, address: node.address })),
      state: { kind: 'open' },
      epoch: this.epoch,
    };
  }

  /** Seals at the smallest length among replicas answering extent.info; tells every replica. */
  private async seal(extent: ExtentView): Promise<number> {
    this.seals += 1;
    const lengths: number[] = [];
    for (const replica of extent.replicas) {
      try {
        const response = await this.network.call(replica.address, { method: 'extent.info', header: { extentId: extent.extentId }, body: Buffer.alloc(0) }, { deadlineMs: 1000 });
        lengths.push(parseResponse(extentInfoSchema, response.header, 'extent.info').length);
      } catch {
        // A replica that does not answer is left out of the seal, as in the protocol.
      }
    }
    if (lengths.length === 0) throw new StorageError('stream.unavailable', `no replica of extent ${extent.extentId} answered`);
    const sealedLength = Math.min(...lengths);
    for (const replica of extent.replicas) {
      try {
        await this.network.call(replica.address, { method: 'extent.seal', header: { epoch: this.epoch, extentId: extent.extentId, length: sealedLength }, body: Buffer.alloc(0) }, { deadlineMs: 1000 });
      } catch {
        // Sealed when it returns, or replaced: not this fake's concern.
      }
    }
    return sealedLength;
  }
}
