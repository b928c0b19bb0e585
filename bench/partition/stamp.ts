// The partition layer on the real stream layer, in one process, on real disks, for benchmarks:
// an EmbeddedMetaStore and three ExtentNodes (three fault domains, group commit on), each on a
// RealDisk in its own directory under one temporary root, a StreamManager, SystemClock, and the
// in-process LocalNetwork (src/rpc/local-network.ts: no sockets, no frame encoding, bodies by
// reference) between them. A PartitionManager bootstraps the map (one partition over every key);
// the benchmark either opens that partition's engine directly (`openEngine`) or starts a
// PartitionServer and a PartitionClient, the front end's path (`startServer`).
//
// Invariant: the engine and a server never hold the partition at once (the engine is closed
// before the server is started); every directory is removed by close().
// Fault model: none injected; a failure aborts the benchmark (close() still removes the files).
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealDisk } from '../../src/io/real-disk.ts';
import { EmbeddedMetaStore } from '../../src/metastore/embedded-meta-store.ts';
import { PartitionClient } from '../../src/partition/partition-client.ts';
import { PartitionManager } from '../../src/partition/partition-manager.ts';
import { readMap } from '../../src/partition/partition-map.ts';
import type { PartitionEntry } from '../../src/partition/partition-map.ts';
import { PartitionServer } from '../../src/partition/partition-server.ts';
import { StreamLayerPartitionStreams } from '../../src/partition/partition-streams.ts';
import { Partition } from '../../src/partition/partition.ts';
import type { PartitionLimits } from '../../src/partition/partition.ts';
import { LocalNetwork } from '../../src/rpc/local-network.ts';
import { ExtentNode } from '../../src/stream/extent-node.ts';
import { StreamClient } from '../../src/stream/stream-client.ts';
import { StreamManager } from '../../src/stream/stream-manager.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { SeededRandom } from '../../src/util/random.ts';

export const stampDescription = 'EmbeddedMetaStore + StreamManager + 3 ExtentNodes (group commit on), each on a RealDisk in a temp dir; SystemClock; LocalNetwork (in-process)';

/** How long the benchmark waits for the map bootstrap or a server to serve the partition. */
const readyTimeoutMs = 30_000;
const readyPollMs = 20;

export interface BenchStampOptions {
  /** Limits every partition of the stamp runs with (engine and server). */
  readonly limits?: Partial<PartitionLimits>;
  /** Each extent node's read cache of verified blocks, bytes. */
  readonly readCacheBytes?: number;
}

export class BenchStamp {
  readonly clock = new SystemClock();
  readonly root: string;
  readonly network: LocalNetwork;
  private readonly random = new SeededRandom(7);
  private readonly nodes: ExtentNode[] = [];
  private metaStore: EmbeddedMetaStore | null = null;
  private streamManager: StreamManager | null = null;
  private partitionManager: PartitionManager | null = null;
  private server: PartitionServer | null = null;
  private engines = 0;
  /** Limits every partition of the stamp runs with (engine and server): the bench may shrink the block cache. */
  private readonly limits: Partial<PartitionLimits>;
  /** Each extent node's read cache, bytes (undefined = the node's default). */
  private readonly readCacheBytes: number | undefined;

  private constructor(root: string, options: BenchStampOptions) {
    this.root = root;
    this.limits = options.limits ?? {};
    this.readCacheBytes = options.readCacheBytes;
    this.network = new LocalNetwork({ clock: this.clock, localAddress: 'bench' });
  }

  static async start(options: BenchStampOptions = {}): Promise<BenchStamp> {
    const stamp = new BenchStamp(await mkdtemp(join(tmpdir(), 'kura-bench-partition-')), options);
    await stamp.startStreamLayer();
    return stamp;
  }

  get manager(): StreamManager {
    if (this.streamManager === null) throw new Error('stream manager not started');
    return this.streamManager;
  }

  get meta(): EmbeddedMetaStore {
    if (this.metaStore === null) throw new Error('metastore not open');
    return this.metaStore;
  }

  private async disk(name: string): Promise<RealDisk> {
    const root = join(this.root, name);
    await mkdir(root, { recursive: true });
    return new RealDisk({ root });
  }

  private async startStreamLayer(): Promise<void> {
    const { clock, random } = this;
    this.metaStore = await EmbeddedMetaStore.open({ disk: await this.disk('meta'), directory: 'store', clock });
    this.streamManager = new StreamManager({ metaStore: this.metaStore, network: this.network.endpoint('sm:1'), clock, random, replicaCountDefault: 3 });
    await this.streamManager.start();
    for (let i = 0; i < 3; i++) {
      const nodeId = `en${i}`;
      this.nodes.push(await ExtentNode.start({
        nodeId, disk: await this.disk(nodeId), clock, random, network: this.network.endpoint(`${nodeId}:1`), listenAddress: `${nodeId}:1`,
        manager: this.streamManager, faultDomain: `fd${i}`, upgradeDomain: `ud${i}`, groupCommit: true,
        ...(this.readCacheBytes === undefined ? {} : { readCacheBytes: this.readCacheBytes }),
      }));
    }
  }

  /** Starts the partition manager and waits for its map: one partition over every key, no owner yet. */
  async bootstrapMap(): Promise<PartitionEntry> {
    this.partitionManager = new PartitionManager({
      managerId: 'pm-1', metaStore: this.meta, network: this.network.endpoint('pm:1'), streamManager: this.manager, clock: this.clock,
    });
    this.partitionManager.start();
    return this.waitFor(async () => (await readMap(this.meta))?.map.partitions[0] ?? null);
  }

  /** The engine alone: a Partition on the map's streams through its own StreamClient. */
  async openEngine(entry: PartitionEntry): Promise<Partition> {
    this.engines += 1;
    const client = new StreamClient({ manager: this.manager, network: this.network.endpoint(`engine-${this.engines}`), clock: this.clock, clientId: `bench-engine-${this.engines}` });
    return Partition.open({
      partitionId: entry.partitionId, streams: new StreamLayerPartitionStreams({ client, manager: this.manager }), streamIds: entry.streams,
      clock: this.clock, ownerEpoch: Math.max(1, entry.ownerEpoch), limits: this.limits,
    });
  }

  /** The front end's path: a PartitionServer that the manager assigns the partition to, and a client. */
  async startServer(): Promise<{ server: PartitionServer; client: PartitionClient; loadMs: number }> {
    const server = new PartitionServer({
      serverId: 'ps-1', metaStore: this.meta, network: this.network.endpoint('ps-1:1'), listenAddress: 'ps-1:1', streamManager: this.manager, clock: this.clock,
      partitionLimits: this.limits,
    });
    this.server = server;
    const startMs = performance.now();
    await server.start();
    await this.waitFor(() => Promise.resolve(server.servingPartitions().length > 0 ? true : null));
    const client = new PartitionClient({ metaStore: this.meta, network: this.network.endpoint('fe:1'), clock: this.clock });
    return { server, client, loadMs: performance.now() - startMs };
  }

  private async waitFor<T>(probe: () => Promise<T | null>): Promise<T> {
    const startMs = performance.now();
    for (;;) {
      const value = await probe();
      if (value !== null) return value;
      if (performance.now() - startMs > readyTimeoutMs) throw new Error(`not ready within ${readyTimeoutMs} ms`);
      await this.clock.sleep(readyPollMs);
    }
  }

  async close(): Promise<void> {
    try {
      await this.partitionManager?.stop();
      await this.server?.stop();
      await this.streamManager?.close();
      for (const node of this.nodes) await node.stop();
      await this.metaStore?.close();
      await this.network.close();
    } finally {
      await rm(this.root, { recursive: true, force: true });
    }
  }
}
