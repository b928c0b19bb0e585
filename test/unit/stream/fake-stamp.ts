// A small stamp for stream manager tests of one race each: an EmbeddedMetaStore on a SimDisk, a
// SimNetwork on a ManualClock, lengths-only fake extent nodes (create, info, seal, copyFrom,
// remove, status; epoch-fenced as the protocol says), and a failpoint host whose `sleep` is a gate
// the test opens, so a test can stop the manager at a named failpoint, change the world, and let
// it go on.
import assert from 'node:assert/strict';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import type { RpcHeader, RpcRequest, RpcResponse } from '../../../src/rpc/network.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { StorageError } from '../../../src/util/errors.ts';
import { disableFailpoint, enableFailpoint, setFailpointHost } from '../../../src/util/failpoints.ts';
import type { FailpointName } from '../../../src/util/failpoints.ts';
import { StreamManager } from '../../../src/stream/stream-manager.ts';
import { extentNodeRequests, parseHeader } from '../../../src/stream/protocol.ts';
import type { StreamView } from '../../../src/stream/protocol.ts';

export const heartbeatTimeoutMs = 10_000;

interface FakeExtent {
  readonly streamId: number;
  length: number;
  sealedLength: number | null;
}

export class FakeNode {
  readonly nodeId: string;
  readonly address: string;
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  readonly extents = new Map<number, FakeExtent>();
  highestEpoch = 0;
  private readonly peers: ReadonlyMap<string, FakeNode>;

  constructor(index: number, peers: ReadonlyMap<string, FakeNode>) {
    this.nodeId = `en${index}`;
    this.address = `en${index}:7000`;
    this.faultDomain = `fd${index % 3}`;
    this.upgradeDomain = `ud${index}`;
    this.peers = peers;
  }

  registration(): { nodeId: string; address: string; faultDomain: string; upgradeDomain: string; disk: string } {
    return { nodeId: this.nodeId, address: this.address, faultDomain: this.faultDomain, upgradeDomain: this.upgradeDomain, disk: `sim:${this.nodeId}` };
  }

  handle(request: RpcRequest): Promise<RpcResponse> {
    return Promise.resolve({ header: this.answer(request), body: Buffer.alloc(0) });
  }

  private admit(epoch: number): void {
    if (epoch < this.highestEpoch) throw new StorageError('extent.stale_epoch', `epoch ${epoch} < ${this.highestEpoch}`);
    this.highestEpoch = epoch;
  }

  private extent(extentId: number): FakeExtent {
    const extent = this.extents.get(extentId);
    if (extent === undefined) throw new StorageError('extent.not_found', `no extent ${extentId} on ${this.nodeId}`);
    return extent;
  }

  private answer(request: RpcRequest): RpcHeader {
    switch (request.method) {
      case 'extent.create': {
        const r = parseHeader(extentNodeRequests['extent.create'], request.header, request.method);
        this.admit(r.epoch);
        this.extents.set(r.extentId, { streamId: r.streamId, length: 0, sealedLength: null });
        return {};
      }
      case 'extent.info': {
        const r = parseHeader(extentNodeRequests['extent.info'], request.header, request.method);
        const e = this.extent(r.extentId);
        return { length: e.length, state: e.sealedLength === null ? { kind: 'open' } : { kind: 'sealed', sealedLength: e.sealedLength } };
      }
      case 'extent.seal': {
        const r = parseHeader(extentNodeRequests['extent.seal'], request.header, request.method);
        this.admit(r.epoch);
        const e = this.extent(r.extentId);
        if (e.length < r.length) throw new StorageError('extent.out_of_range', 'replica shorter than the sealed length');
        e.length = r.length;
        e.sealedLength = r.length;
        return {};
      }
      case 'extent.copyFrom': {
        const r = parseHeader(extentNodeRequests['extent.copyFrom'], request.header, request.method);
        this.admit(r.epoch);
        const source = r.sources.map((s) => this.peers.get(s.nodeId)?.extents.get(r.extentId)).find((e) => e !== undefined && e.length >= r.sealedLength);
        if (source === undefined) throw new StorageError('stream.unavailable', 'no source holds the extent');
        this.extents.set(r.extentId, { streamId: r.streamId, length: r.sealedLength, sealedLength: r.sealedLength });
        return { length: r.sealedLength };
      }
      case 'extent.remove': {
        const r = parseHeader(extentNodeRequests['extent.remove'], request.header, request.method);
        this.admit(r.epoch);
        return { removed: this.extents.delete(r.extentId) };
      }
      case 'node.status':
        return { extentIds: [...this.extents.keys()] };
      default:
        throw new StorageError('config.invalid', `fake node does not serve ${request.method}`);
    }
  }
}

export interface FakeStamp {
  readonly clock: ManualClock;
  readonly network: SimNetwork;
  readonly metaStore: EmbeddedMetaStore;
  readonly nodes: Map<string, FakeNode>;
  readonly random: SeededRandom;
}

export async function newFakeStamp(nodeCount: number, seed: number): Promise<FakeStamp> {
  const clock = new ManualClock();
  const random = new SeededRandom(seed);
  const network = new SimNetwork({ clock, random, localAddress: 'sm:9000' });
  const metaStore = await EmbeddedMetaStore.open({ disk: new SimDisk({ random }), directory: 'meta', clock });
  const nodes = new Map<string, FakeNode>();
  for (let i = 0; i < nodeCount; i++) {
    const node = new FakeNode(i, nodes);
    nodes.set(node.nodeId, node);
    await network.listen(node.address, (request) => node.handle(request));
  }
  return { clock, network, metaStore, nodes, random };
}

export async function newManager(stamp: FakeStamp): Promise<StreamManager> {
  const manager = new StreamManager({
    metaStore: stamp.metaStore, network: stamp.network, clock: stamp.clock, random: stamp.random, replicaCountDefault: 3, nodeHeartbeatTimeoutMs: heartbeatTimeoutMs,
  });
  await manager.start();
  return manager;
}

export async function registerAll(stamp: FakeStamp, manager: StreamManager): Promise<void> {
  for (const node of stamp.nodes.values()) await manager.registerNode(node.registration());
}

/** Runs a call to completion, moving virtual time 1 ms at a time (the SimNetwork's delays). */
export async function settle<T>(clock: ManualClock, promise: Promise<T>, limitMs = 120_000): Promise<T> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  for (let elapsed = 0; !done && elapsed < limitMs; elapsed++) await clock.advance(1);
  return promise;
}

export function tail(view: StreamView): StreamView['extents'][number] {
  const last = view.extents.at(-1);
  assert.ok(last !== undefined);
  return last;
}

/** Every replica of the tail extent gets `length` bytes (appends, without bytes). */
export function setTailLength(stamp: FakeStamp, view: StreamView, length: number): void {
  for (const replica of tail(view).replicas) {
    const extent = stamp.nodes.get(replica.nodeId)?.extents.get(tail(view).extentId);
    assert.ok(extent !== undefined);
    extent.length = length;
  }
}

/** A failpoint armed to stop once: `reached` resolves when code hits it, `open()` lets it go on. */
export interface Gate {
  readonly reached: Promise<void>;
  open(): void;
  /** Disarms the failpoint and restores the previous failpoint host. */
  close(): void;
}

export function gateAt(name: FailpointName): Gate {
  let reach = (): void => undefined;
  let release = (): void => undefined;
  const reached = new Promise<void>((resolve) => { reach = resolve; });
  const released = new Promise<void>((resolve) => { release = resolve; });
  const previous = setFailpointHost({
    crash: () => new Promise<never>(() => undefined),
    sleep: async () => {
      reach();
      await released;
    },
  });
  enableFailpoint(name, { action: { kind: 'sleep', ms: 1 }, count: 1 });
  return {
    reached,
    open: release,
    close: () => {
      disableFailpoint(name);
      setFailpointHost(previous);
    },
  };
}
