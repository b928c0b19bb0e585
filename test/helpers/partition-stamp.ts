// Backends for partition tests: where a partition's streams live and how an owner dies.
// - MemoryBackend: MemoryStreamStore (fast; injects append failures and duplicates).
// - StampBackend: the REAL stream layer in one process: a StreamManager on an EmbeddedMetaStore,
//   three ExtentNodes in three fault domains on SimDisks, SimNetwork, a virtual clock driven one
//   millisecond at a time; each owner gets its own StreamClient behind StreamLayerPartitionStreams.
//   Nodes can be stopped and restarted on their disks; diskBytesUsed() sums every node's files.
// A session's revoke() is its owner's process dying: no new call starts, and a call in flight
// either lands or not but its caller never learns the outcome. settle() waits until the dead
// owner's calls in flight are over, which is what a partition lease's expiry guarantees before a
// new owner loads (the partition server and its leases come next; here the test waits).
import { SimDisk } from '../../src/io/sim-disk.ts';
import { EmbeddedMetaStore } from '../../src/metastore/embedded-meta-store.ts';
import { StreamLayerPartitionStreams } from '../../src/partition/partition-streams.ts';
import type { PartitionStreamIds, PartitionStreams, StreamAppendPosition, StreamExtent } from '../../src/partition/partition-streams.ts';
import { SimNetwork } from '../../src/rpc/sim-network.ts';
import { ExtentNode } from '../../src/stream/extent-node.ts';
import { StreamClient } from '../../src/stream/stream-client.ts';
import { StreamManager } from '../../src/stream/stream-manager.ts';
import { ManualClock } from '../../src/util/clock.ts';
import type { Clock } from '../../src/util/clock.ts';
import { StorageError } from '../../src/util/errors.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { MemoryStreamStore } from './memory-partition-streams.ts';
import type { Body } from '../../src/util/body-parts.ts';

export interface OwnerSession {
  readonly streams: PartitionStreams;
  revoke(): void;
  /** Resolves when no call of this session is in flight any more. */
  settle(): Promise<void>;
}

export interface PartitionBackend {
  readonly name: string;
  readonly clock: Clock;
  readonly memory: MemoryStreamStore | null;
  createPartitionStreams(): Promise<PartitionStreamIds>;
  session(): OwnerSession;
  /** Runs the backend (virtual time) until `promise` settles. */
  drive<T>(promise: Promise<T>): Promise<T>;
  /** Lets the backend make progress for a little while (a few ms of virtual time, or microtasks). */
  step(count: number): Promise<void>;
  close(): Promise<void>;
}

/** Wraps PartitionStreams so a dead owner starts nothing and learns nothing. */
export class RevocableStreams implements PartitionStreams, OwnerSession {
  private readonly inner: PartitionStreams;
  private revoked = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(inner: PartitionStreams) {
    this.inner = inner;
  }

  get streams(): PartitionStreams {
    return this;
  }

  revoke(): void {
    this.revoked = true;
  }

  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    return this.call(() => this.inner.append(streamId, data));
  }

  read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer> {
    return this.call(() => this.inner.read(streamId, extentId, offset, length));
  }

  extents(streamId: number): Promise<readonly StreamExtent[]> {
    return this.call(() => this.inner.extents(streamId));
  }

  sealTail(streamId: number): Promise<void> {
    return this.call(() => this.inner.sealTail(streamId));
  }

  dropExtents(streamId: number, extentIds: readonly number[]): Promise<void> {
    return this.call(() => this.inner.dropExtents(streamId, extentIds));
  }

  private async call<T>(operation: () => Promise<T>): Promise<T> {
    if (this.revoked) throw dead();
    const promise = operation();
    this.inFlight.add(promise);
    try {
      const result = await promise;
      if (this.revoked) throw dead();
      return result;
    } finally {
      this.inFlight.delete(promise);
    }
  }
}

function dead(): StorageError {
  return new StorageError('rpc.unreachable', 'this owner is dead (session revoked)');
}

export class MemoryBackend implements PartitionBackend {
  readonly name = 'in-memory streams';
  readonly clock = new ManualClock();
  readonly memory = new MemoryStreamStore({ extentBytesMax: 16 * 1024 });

  createPartitionStreams(): Promise<PartitionStreamIds> {
    return Promise.resolve(this.memory.createPartitionStreams());
  }

  session(): OwnerSession {
    return new RevocableStreams(this.memory.session());
  }

  drive<T>(promise: Promise<T>): Promise<T> {
    return promise;
  }

  async step(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Large enough never to fill; set so SimDisk counts the bytes in use. */
const simDiskCapacityBytes = 1024 ** 4;

/** Timers at whole milliseconds (ExtentStore wants integral creation times; see the stream stamp test). */
class WholeMillisecondClock extends ManualClock {
  override setTimer(ms: number, callback: () => void): ReturnType<ManualClock['setTimer']> {
    return super.setTimer(Math.ceil(ms), callback);
  }
}

export class StampBackend implements PartitionBackend {
  readonly name = 'real stream layer (3 ExtentNodes on SimDisk, SimNetwork, StreamManager, virtual clock)';
  readonly clock = new WholeMillisecondClock(1_700_000_000_000);
  readonly memory = null;
  private readonly random: SeededRandom;
  /** The fabric, the stream manager and its MetaStore: partition server tests build on them. */
  readonly network: SimNetwork;
  private readonly nodes: ExtentNode[] = [];
  /** Each extent node's disk (index i = node `en<i>`): figures of bytes on disk come from here. */
  readonly disks: SimDisk[] = [];
  manager!: StreamManager;
  metaStore!: EmbeddedMetaStore;
  private sessions = 0;

  private constructor(seed: number) {
    this.random = new SeededRandom(seed);
    this.network = new SimNetwork({ clock: this.clock, random: this.random, faults: { delayMsMin: 0, delayMsMax: 1 }, localAddress: 'partition:1' });
  }

  static async start(seed: number): Promise<StampBackend> {
    const backend = new StampBackend(seed);
    const metaStore = await EmbeddedMetaStore.open({ disk: new SimDisk({ random: backend.random, name: 'sim:meta' }), directory: 'meta', clock: backend.clock });
    backend.metaStore = metaStore;
    backend.manager = new StreamManager({ metaStore, network: backend.network.endpoint('sm:1'), clock: backend.clock, random: backend.random, replicaCountDefault: 3 });
    await backend.manager.start();
    for (let i = 0; i < 3; i++) {
      backend.disks.push(new SimDisk({ random: backend.random, name: `sim:en${i}`, capacityBytes: simDiskCapacityBytes }));
      backend.nodes.push(await backend.startNode(i));
    }
    return backend;
  }

  private startNode(index: number): Promise<ExtentNode> {
    const nodeId = `en${index}`;
    const disk = this.disks[index];
    if (disk === undefined) throw new Error(`no disk ${index}`);
    return this.drive(ExtentNode.start({
      nodeId, disk, clock: this.clock, random: this.random, network: this.network.endpoint(`${nodeId}:1`), listenAddress: `${nodeId}:1`,
      manager: this.manager, faultDomain: `fd${index}`, upgradeDomain: `ud${index}`, groupCommit: true,
    }));
  }

  /** Stops node `en<index>` (its disk keeps what it synced; calls to it fail until restartNode). */
  async stopNode(index: number): Promise<void> {
    const node = this.nodes[index];
    if (node !== undefined) await this.drive(node.stop());
  }

  /** Starts node `en<index>` again on its disk: it registers, and the manager reconciles it. */
  async restartNode(index: number): Promise<ExtentNode> {
    const node = await this.startNode(index);
    this.nodes[index] = node;
    return node;
  }

  /** Bytes of every file on every extent node's disk (extent files, journals, node state). */
  async diskBytesUsed(): Promise<number> {
    let used = 0;
    for (const disk of this.disks) used += simDiskCapacityBytes - await disk.freeBytes();
    return used;
  }

  async createPartitionStreams(): Promise<PartitionStreamIds> {
    const create = async (name: string): Promise<number> => (await this.drive(this.manager.createStream({ name }))).streamId;
    return { meta: await create('p/meta'), log: await create('p/log'), checkpoint: await create('p/checkpoint'), data: await create('p/data') };
  }

  session(): OwnerSession {
    this.sessions += 1;
    const client = new StreamClient({ manager: this.manager, network: this.network, clock: this.clock, clientId: `owner-${this.sessions}` });
    return new RevocableStreams(new StreamLayerPartitionStreams({ client, manager: this.manager }));
  }

  async drive<T>(promise: Promise<T>): Promise<T> {
    let done = false;
    promise.then(() => { done = true; }, () => { done = true; });
    for (let steps = 0; !done && steps < 600_000; steps++) await this.clock.advance(1);
    if (!done) throw new Error('promise did not settle within 600 s of virtual time');
    return promise;
  }

  async step(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.clock.advance(1);
  }

  async close(): Promise<void> {
    await this.drive(this.manager.close());
    for (const node of this.nodes) await this.drive(node.stop());
    await this.network.close();
  }
}
