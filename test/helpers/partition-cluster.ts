// A simulated partition cluster on the real stream layer (StampBackend: StreamManager, three
// ExtentNodes on SimDisks, SimNetwork, virtual clock): a PartitionManager, any number of
// PartitionServers and a PartitionClient, all on the stamp's MetaStore, network and clock.
// Times are short (lease 2 s, poll 50 ms, tick 100 ms) so failovers take a few virtual seconds.
import type { MetaStore } from '../../src/metastore/meta-store.ts';
import { PartitionClient } from '../../src/partition/partition-client.ts';
import type { MaintenancePolicy } from '../../src/partition/partition-balance.ts';
import { PartitionManager } from '../../src/partition/partition-manager.ts';
import { readMap } from '../../src/partition/partition-map.ts';
import type { PartitionMap } from '../../src/partition/partition-map.ts';
import { PartitionServer } from '../../src/partition/partition-server.ts';
import type { WriteAcknowledged } from '../../src/partition/partition-server.ts';
import type { PartitionLimits } from '../../src/partition/partition.ts';
import type { Column } from '../../src/wire/partition-row.ts';
import { StampBackend } from './partition-stamp.ts';

export const clusterLeaseTtlMs = 2_000;

/** A row key from text. */
export function key(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** One string column `v`. */
export function text(value: string): Column[] {
  return [{ name: 'v', value: { kind: 'string', value } }];
}

/** The string in a row's first column, or null. */
export function valueOf(row: { columns: readonly Column[] } | null): string | null {
  const column = row?.columns[0]?.value;
  return column?.kind === 'string' ? column.value : null;
}

export interface ManagerSettings {
  readonly splitBytes?: number;
  readonly policy?: Partial<MaintenancePolicy>;
  readonly moveIntervalMs?: number;
  readonly maintenanceIntervalMs?: number;
}

/** Partition servers' settings (data GC tests: GC on, short intervals). */
export interface ServerSettings {
  readonly dataGc?: boolean;
  readonly partitionLimits?: Partial<PartitionLimits>;
  /** Re-read the map this often besides its watch (default partitionMapRecheckMs). */
  readonly mapRecheckMs?: number;
}

export class PartitionCluster {
  readonly stamp: StampBackend;
  manager: PartitionManager;
  private readonly loadWindowMs: number | undefined;
  private readonly serverSettings: ServerSettings;
  private managerCount = 1;
  readonly servers = new Map<string, PartitionServer>();
  readonly client: PartitionClient;
  readonly acknowledged: WriteAcknowledged[] = [];

  private constructor(stamp: StampBackend, settings: ManagerSettings, loadWindowMs: number | undefined, serverSettings: ServerSettings) {
    this.stamp = stamp;
    this.serverSettings = serverSettings;
    this.loadWindowMs = loadWindowMs;
    this.manager = this.newManager(settings);
    this.client = new PartitionClient({ metaStore: stamp.metaStore, network: stamp.network.endpoint('fe:1'), clock: stamp.clock });
  }

  static async start(options: { readonly seed: number; readonly servers: readonly string[]; readonly loadWindowMs?: number; readonly serverSettings?: ServerSettings } & ManagerSettings): Promise<PartitionCluster> {
    const cluster = new PartitionCluster(await StampBackend.start(options.seed), options, options.loadWindowMs, options.serverSettings ?? {});
    for (const serverId of options.servers) await cluster.addServer(serverId);
    cluster.manager.start();
    return cluster;
  }

  private newManager(settings: ManagerSettings): PartitionManager {
    const managerId = `pm-${this.managerCount}`;
    return new PartitionManager({
      managerId, metaStore: this.stamp.metaStore, network: this.stamp.network.endpoint(`${managerId}:1`), streamManager: this.stamp.manager, clock: this.stamp.clock,
      leaseTtlMs: clusterLeaseTtlMs, tickMs: 100, splitBytes: settings.splitBytes ?? Number.MAX_SAFE_INTEGER,
      ...(settings.policy === undefined ? {} : { policy: settings.policy }),
      ...(settings.moveIntervalMs === undefined ? {} : { moveIntervalMs: settings.moveIntervalMs }),
      ...(settings.maintenanceIntervalMs === undefined ? {} : { maintenanceIntervalMs: settings.maintenanceIntervalMs }),
    });
  }

  /** The leader steps down (its lease released) and a manager with other settings takes over. */
  async replaceManager(settings: ManagerSettings): Promise<PartitionManager> {
    await this.stamp.drive(this.manager.stop());
    this.managerCount += 1;
    this.manager = this.newManager(settings);
    this.manager.start();
    return this.manager;
  }

  /** A server on the stamp; `metaStore` replaces the stamp's (e.g. one the test can cut off). */
  async addServer(serverId: string, options: { readonly metaStore?: MetaStore } = {}): Promise<PartitionServer> {
    const server = new PartitionServer({
      serverId, metaStore: options.metaStore ?? this.stamp.metaStore, network: this.stamp.network.endpoint(`${serverId}:1`), listenAddress: `${serverId}:1`,
      streamManager: this.stamp.manager, clock: this.stamp.clock, leaseTtlMs: clusterLeaseTtlMs,
      ...(this.loadWindowMs === undefined ? {} : { loadWindowMs: this.loadWindowMs }),
      onWriteAcknowledged: (event) => this.acknowledged.push(event),
      partitionLimits: { memtableBytesMax: 16 * 1024, blockBytesTarget: 1024, runBytesMax: 64 * 1024, ...this.serverSettings.partitionLimits },
      ...(this.serverSettings.dataGc === undefined ? {} : { dataGc: this.serverSettings.dataGc }),
      ...(this.serverSettings.mapRecheckMs === undefined ? {} : { mapRecheckMs: this.serverSettings.mapRecheckMs }),
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

/** Watches the map (call observe() at every step) to judge acknowledgements given after the map
 * stopped listing their partition at their epoch (a split, merge or move retired it). */
export class MapWatch {
  private readonly cluster: PartitionCluster;
  private readonly retiredAtMs = new Map<string, number>();
  private lastSeen = new Set<string>();

  constructor(cluster: PartitionCluster) {
    this.cluster = cluster;
  }

  async observe(): Promise<void> {
    const map = await this.cluster.map();
    const now = new Set(map.partitions.map((entry) => `${entry.partitionId}@${entry.ownerEpoch}`));
    for (const held of this.lastSeen) if (!now.has(held) && !this.retiredAtMs.has(held)) this.retiredAtMs.set(held, this.cluster.stamp.clock.monotonicMs());
    this.lastSeen = now;
  }

  lateAcknowledgements(): number {
    return this.cluster.acknowledged.filter((event) => {
      const retired = this.retiredAtMs.get(`${event.partitionId}@${event.ownerEpoch}`);
      return retired !== undefined && event.atMs >= retired;
    }).length;
  }
}
