// The partition layer's roles (docs/simulation.md, "What runs"): partition servers (ps0…) that own
// ranges under MetaStore leases, and partition manager candidates (pm0, pm1) of which one leads,
// assigns, moves and splits. Each runs the real code of src/partition in a SimProcess and reaches
// the MetaStore (sim/meta-service.ts) and the stream manager only over the network, so crashes,
// network partitions and clock jumps hit them as they would hit `kura partition-server` and
// `kura partition-manager` processes.
//
// Partition servers run with small engine limits (checkpoints, compactions and GC within a run)
// and the simulator's table schema (simTableSchema): every data ref is in a dataRefs column (data
// GC on) and a writer's batch or page blob is one group, so a split never separates the rows of a
// transaction. The manager splits at a small size (splitBytes) so splits happen in every run.
//
// Invariants: a role's process is replaced on every start; it keeps nothing across restarts (all
// its state is in the MetaStore and the streams); every answer a server gives and every log
// record it sends are shown to the OwnershipMonitor (sim/ownership.ts).
import type { Logger } from 'pino';
import { PartitionManager } from '../src/partition/partition-manager.ts';
import type { PartitionLimits } from '../src/partition/partition.ts';
import { blobDataReferences, blobSplitBoundary } from '../src/frontend/blob-service/blob-table-schema.ts';
import { PartitionServer } from '../src/partition/partition-server.ts';
import type { TableSchema } from '../src/partition/table-schema.ts';
import type { Network, RpcCallOptions, RpcHandler, RpcRequest, RpcResponse, RpcServer } from '../src/rpc/network.ts';
import { StreamManagerProxy } from '../src/stream/stream-manager-proxy.ts';
import { MetaStoreProxy } from './meta-service.ts';
import type { OwnershipMonitor } from './ownership.ts';
import type { SimProcess } from './process.ts';
import { managerAddress } from './roles.ts';
import type { RoleKind, SimRole, SimStamp } from './stamp.ts';
import { bodyBytes } from '../src/util/body-parts.ts';

/** Small limits so checkpoints, many runs and compactions happen within a short run. */
export const simPartitionLimits: Partial<PartitionLimits> = {
  memtableBytesMax: 8 * 1024, blockBytesTarget: 2048, runBytesMax: 16 * 1024, runsCompactionTrigger: 3, rowCacheEntriesMax: 64, blockCacheBytesMax: 64 * 1024,
  checkpointIntervalMs: 60_000,
  // Garbage collection within a short run: extents dead for 5 s are dropped, small tails sealed.
  dataGcIntervalMs: 15_000, dataGcGraceMs: 5_000, dataGcTailSealBytes: 64 * 1024,
};

/** Blob rows start with 'B' (src/frontend/blob-service/keys.ts); the workload's with 'w'. */
const blobKeyTag = 'B'.charCodeAt(0);

/** A partition's memtable + run bytes past which the manager splits it (a few splits per run). */
export const simSplitBytes = 24 * 1024;

/**
 * The workload's keys (sim/workload.ts): `w<writer>/b<sequence>/<i>` (a batch), `w<writer>/pb/<page>`
 * (a page blob) and `w<writer>/o<n>` with its snapshots `w<writer>/o<n>@s<m>` (which copy its data
 * ref) are groups a split keeps together, as the blob schema keeps a blob's rows together; every
 * other row is its own group. Valid for the keys the workload writes. Blob rows (`B…`) follow the
 * blob tables' schema.
 */
export const simTableSchema: TableSchema = {
  // The blob tables' rows (sim/blob-workload.ts) share the partitions: their schema for theirs.
  dataReferences: blobDataReferences,
  splitBoundary: (key) => {
    if (key[0] === blobKeyTag) return blobSplitBoundary(key);
    const text = key.toString('latin1');
    // An object's group is its row `w1/o8` and every key after it with that prefix: its snapshots
    // `w1/o8@s…` and successors a split may propose (`w1/o8\0`); the workload's objects are o0…o9.
    const group = /^w\d+\/(?:b\d+\/|pb\/|o\d+)/.exec(text)?.[0];
    if (group === undefined || text === group) return key;
    const end = Buffer.from(group, 'latin1');
    end[end.length - 1] = (end[end.length - 1] ?? 0) + 1; // the first key after every key of the group
    return end;
  },
};

/** The Network a partition server uses: answers and log appends are shown to the monitor. */
class ObservedNetwork implements Network {
  private readonly inner: Network;
  private readonly monitor: OwnershipMonitor;
  private readonly serverId: string;
  private readonly leaseOf: () => number | null;

  constructor(options: { inner: Network; monitor: OwnershipMonitor; serverId: string; leaseOf: () => number | null }) {
    this.inner = options.inner;
    this.monitor = options.monitor;
    this.serverId = options.serverId;
    this.leaseOf = options.leaseOf;
  }

  listen(address: string, handler: RpcHandler): Promise<RpcServer> {
    return this.inner.listen(address, async (request, context) => {
      const response = await handler(request, context);
      if (request.method.startsWith('partition.') && request.method !== 'partition.split') this.monitor.answered(this.serverId, this.leaseOf(), request.method);
      return response;
    });
  }

  call(address: string, request: RpcRequest, options?: RpcCallOptions): Promise<RpcResponse> {
    if (request.method === 'extent.append') this.monitor.appendSent(this.serverId, bodyBytes(request.body));
    return this.inner.call(address, request, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export class PartitionServerRole implements SimRole {
  readonly name: string;
  readonly kind: RoleKind = 'partition-server';
  readonly faultDomain = null;
  process: SimProcess | null = null;
  server: PartitionServer | null = null;
  private readonly stamp: SimStamp;
  private readonly monitor: OwnershipMonitor;
  private readonly logger: Logger | undefined;
  private incarnation = 0;

  constructor(stamp: SimStamp, options: { index: number; monitor: OwnershipMonitor; logger?: Logger }) {
    this.stamp = stamp;
    this.name = `ps${options.index}`;
    this.monitor = options.monitor;
    this.logger = options.logger;
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.server !== null;
  }

  async start(): Promise<void> {
    this.kill();
    this.incarnation += 1;
    const process = this.stamp.newProcess(this.name, this.name);
    this.process = process;
    let server: PartitionServer | null = null;
    const network = new ObservedNetwork({ inner: process.network, monitor: this.monitor, serverId: this.name, leaseOf: () => server?.leaseId ?? null });
    server = new PartitionServer({
      serverId: this.name, metaStore: new MetaStoreProxy({ network: process.network, clock: process.clock }), network,
      listenAddress: `${this.name}:1`, streamManager: new StreamManagerProxy({ network: process.network, address: managerAddress }), clock: process.clock,
      random: this.stamp.random(`${this.name}:${this.incarnation}`), partitionLimits: simPartitionLimits, table: simTableSchema, clientId: `${this.name}-${this.incarnation}`,
      ...(this.logger === undefined ? {} : { logger: this.logger }),
    });
    const started = server;
    await process.guard(() => process.run(() => started.start()));
    this.server = started;
    this.stamp.trace(`${this.name} registered lease=${started.leaseId}`);
  }

  kill(): void {
    this.process?.kill();
    this.process = null;
    this.server = null;
  }

  powerLoss(): void {
    // No disks of its own: everything it keeps is in the MetaStore and the streams.
  }
}

export class PartitionManagerRole implements SimRole {
  readonly name: string;
  readonly kind: RoleKind = 'partition-manager';
  readonly faultDomain = null;
  process: SimProcess | null = null;
  manager: PartitionManager | null = null;
  private readonly stamp: SimStamp;
  private readonly logger: Logger | undefined;

  constructor(stamp: SimStamp, options: { index: number; logger?: Logger }) {
    this.stamp = stamp;
    this.name = `pm${options.index}`;
    this.logger = options.logger;
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.manager !== null;
  }

  get leading(): boolean {
    return this.up && this.manager?.leading === true;
  }

  start(): Promise<void> {
    this.kill();
    const process = this.stamp.newProcess(this.name, this.name);
    this.process = process;
    const manager = new PartitionManager({
      managerId: this.name, metaStore: new MetaStoreProxy({ network: process.network, clock: process.clock }), network: process.network,
      streamManager: new StreamManagerProxy({ network: process.network, address: managerAddress }), clock: process.clock, splitBytes: simSplitBytes,
      ...(this.logger === undefined ? {} : { logger: this.logger }),
    });
    process.run(() => manager.start());
    this.manager = manager;
    return Promise.resolve();
  }

  kill(): void {
    this.process?.kill();
    this.process = null;
    this.manager = null;
  }

  powerLoss(): void {
    // No disks of its own.
  }
}
