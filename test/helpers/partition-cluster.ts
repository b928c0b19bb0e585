// A simulated partition cluster on the real stream layer (StampBackend: StreamManager, three
// ExtentNodes on SimDisks, SimNetwork, virtual clock): a PartitionManager, any number of
// PartitionServers and a PartitionClient, all on the stamp's MetaStore, network and clock.
// Times are short (lease 2 s, poll 50 ms, tick 100 ms) so failovers take a few virtual seconds.
import { PartitionClient } from '../../src/partition/partition-client.ts';
import { PartitionManager } from '../../src/partition/partition-manager.ts';
import { readMap } from '../../src/partition/partition-map.ts';
import type { PartitionMap } from '../../src/partition/partition-map.ts';
import { PartitionServer } from '../../src/partition/partition-server.ts';
import type { WriteAcknowledged } from '../../src/partition/partition-server.ts';
import { StampBackend } from './partition-stamp.ts';

export const clusterLeaseTtlMs = 2_000;

export class PartitionCluster {
  readonly stamp: StampBackend;
  readonly manager: PartitionManager;
  readonly servers = new Map<string, PartitionServer>();
  readonly client: PartitionClient;
  readonly acknowledged: WriteAcknowledged[] = [];

  private constructor(stamp: StampBackend, splitBytes: number) {
    this.stamp = stamp;
    this.manager = new PartitionManager({
      managerId: 'pm-1', metaStore: stamp.metaStore, network: stamp.network.endpoint('pm:1'), streamManager: stamp.manager, clock: stamp.clock,
      leaseTtlMs: clusterLeaseTtlMs, tickMs: 100, splitBytes,
    });
    this.client = new PartitionClient({ metaStore: stamp.metaStore, network: stamp.network.endpoint('fe:1'), clock: stamp.clock });
  }

  static async start(options: { readonly seed: number; readonly servers: readonly string[]; readonly splitBytes?: number }): Promise<PartitionCluster> {
    const cluster = new PartitionCluster(await StampBackend.start(options.seed), options.splitBytes ?? Number.MAX_SAFE_INTEGER);
    for (const serverId of options.servers) await cluster.addServer(serverId);
    cluster.manager.start();
    return cluster;
  }

  async addServer(serverId: string): Promise<PartitionServer> {
    const server = new PartitionServer({
      serverId, metaStore: this.stamp.metaStore, network: this.stamp.network.endpoint(`${serverId}:1`), listenAddress: `${serverId}:1`,
      streamManager: this.stamp.manager, clock: this.stamp.clock, leaseTtlMs: clusterLeaseTtlMs, mapPollMs: 50,
      onWriteAcknowledged: (event) => this.acknowledged.push(event),
      partitionLimits: { memtableBytesMax: 16 * 1024, blockBytesTarget: 1024, runBytesMax: 64 * 1024 },
    });
    this.servers.set(serverId, server);
    await this.stamp.drive(server.start());
    return server;
  }

  server(serverId: string): PartitionServer {
    const server = this.servers.get(serverId);
    if (server === undefined) throw new Error(`no server ${serverId}`);
    return server;
  }

  async map(): Promise<PartitionMap> {
    const current = await readMap(this.stamp.metaStore);
    if (current === null) throw new Error('no map yet');
    return current.map;
  }

  /** Advances virtual time until `condition` holds (bounded), returning the virtual ms waited. */
  async until(condition: () => boolean | Promise<boolean>, limitMs = 60_000): Promise<number> {
    const startMs = this.stamp.clock.monotonicMs();
    while (!(await condition())) {
      if (this.stamp.clock.monotonicMs() - startMs > limitMs) throw new Error(`condition not met within ${limitMs} virtual ms`);
      await this.stamp.step(1);
    }
    return this.stamp.clock.monotonicMs() - startMs;
  }

  /** Every partition of the map is served by its owner. */
  async allServed(): Promise<boolean> {
    const map = await readMap(this.stamp.metaStore);
    if (map === null) return false;
    return map.map.partitions.every((entry) => entry.owner !== null && (this.servers.get(entry.owner.serverId)?.servingPartitions().includes(entry.partitionId) ?? false));
  }

  async close(): Promise<void> {
    await this.stamp.drive(this.manager.stop());
    for (const server of this.servers.values()) await this.stamp.drive(server.stop());
    await this.stamp.close();
  }
}
