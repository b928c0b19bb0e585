// The roles of today's simulated stamp (docs/simulation.md, "What runs"): the stream manager
// with its embedded MetaStore, extent nodes, and one partition owner. Each runs the real code of
// src/ in a SimProcess; start() after kill() is a process restart from the same disks.
//
// Invariants: a role's process is replaced on every start (the old one is dead first); what a
// role keeps across restarts is only what a real process keeps: its disks (and, for the
// partition, its stream ids, which a partition manager would hold); the extent nodes and the
// partition reach the manager only over the network (StreamManagerProxy at sm:1), as in a cluster.
import type { Logger } from 'pino';
import { SimDisk } from '../src/io/sim-disk.ts';
import { EmbeddedMetaStore } from '../src/metastore/embedded-meta-store.ts';
import { Partition } from '../src/partition/partition.ts';
import type { PartitionLimits } from '../src/partition/partition.ts';
import { StreamLayerPartitionStreams } from '../src/partition/partition-streams.ts';
import type { PartitionStreamIds } from '../src/partition/partition-streams.ts';
import type { RpcServer } from '../src/rpc/network.ts';
import { ExtentNode } from '../src/stream/extent-node.ts';
import { StreamClient } from '../src/stream/stream-client.ts';
import { StreamManager } from '../src/stream/stream-manager.ts';
import { StreamManagerProxy, serveStreamManager } from '../src/stream/stream-manager-proxy.ts';
import { StorageError } from '../src/util/errors.ts';
import type { DiskFaultState, SimProcess } from './process.ts';
import type { RoleKind, SimRole, SimStamp } from './stamp.ts';

export const managerAddress = 'sm:1';

export function noDiskFaults(): DiskFaultState {
  return { latencyMs: 0, misdirectedWrites: 0, misdirectSectors: 0, misdirected: 0 };
}

/** The stream manager and its embedded MetaStore: one process, one disk (embedded mode). */
export class ManagerRole implements SimRole {
  readonly name = 'manager';
  readonly kind: RoleKind = 'manager';
  readonly faultDomain = null;
  readonly disk: SimDisk;
  readonly diskFaults = noDiskFaults();
  private readonly stamp: SimStamp;
  private readonly logger: Logger | undefined;
  process: SimProcess | null = null;
  private metaStore: EmbeddedMetaStore | null = null;
  private server: RpcServer | null = null;
  /** Every manager of the current process, newest last (older ones are stale leaders). */
  private managers: StreamManager[] = [];
  private incarnation = 0;

  constructor(stamp: SimStamp, logger?: Logger) {
    this.stamp = stamp;
    this.logger = logger;
    this.disk = new SimDisk({ random: stamp.random('disk:meta'), name: 'sim:meta' });
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.server !== null;
  }

  /** The leading manager (tests and checkers use it in-process, as an operator tool would). */
  get leader(): StreamManager | null {
    return this.up ? this.managers.at(-1) ?? null : null;
  }

  /** Runs `work` on the leading manager as the manager process's code (it dies with it). */
  callLeader<T>(work: (manager: StreamManager) => Promise<T>): Promise<T> {
    const process = this.process;
    const leader = this.leader;
    if (process === null || leader === null) return Promise.reject(new StorageError('rpc.unreachable', 'the stream manager is down', { retryable: true }));
    return process.guard(() => process.run(() => work(leader)));
  }

  async start(): Promise<void> {
    this.kill();
    const process = this.stamp.newProcess('manager', 'sm');
    this.process = process;
    this.metaStore = await process.guard(() => process.run(() => EmbeddedMetaStore.open({ disk: process.disk(this.disk, this.diskFaults), directory: 'meta', clock: process.clock })));
    await this.lead(process);
  }

  /** A new StreamManager takes the next epoch; the old one keeps running until it is fenced. */
  async changeLeader(): Promise<void> {
    const process = this.process;
    if (process === null || !process.isAlive) return;
    await this.lead(process);
  }

  private async lead(process: SimProcess): Promise<void> {
    const metaStore = this.metaStore;
    if (metaStore === null) throw new StorageError('meta.unavailable', 'manager role has no MetaStore');
    this.incarnation += 1;
    const manager = new StreamManager({
      metaStore, network: process.network, clock: process.clock, random: this.stamp.random(`manager:${this.incarnation}`), replicaCountDefault: 3,
      ...(this.logger === undefined ? {} : { logger: this.logger }),
    });
    await process.guard(() => process.run(() => manager.start()));
    const previous = this.server;
    this.server = null;
    if (previous !== null) await process.guard(() => previous.close());
    this.server = await process.guard(() => process.run(() => serveStreamManager(process.network, managerAddress, manager)));
    this.managers.push(manager);
    process.run(() => manager.startRepairLoop());
    this.stamp.trace(`manager leads epoch=${manager.epoch}`);
  }

  kill(): void {
    this.process?.kill();
    this.process = null;
    this.server = null;
    this.metaStore = null;
    this.managers = [];
  }

  powerLoss(): void {
    this.disk.crash({ tornWrites: true });
  }
}

export interface ExtentNodeRoleOptions {
  readonly index: number;
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  readonly groupCommit: boolean;
  readonly logger?: Logger;
}

/** One extent node on one SimDisk. */
export class ExtentNodeRole implements SimRole {
  readonly name: string;
  readonly kind: RoleKind = 'extent-node';
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  readonly groupCommit: boolean;
  readonly diskFaults = noDiskFaults();
  disk: SimDisk;
  process: SimProcess | null = null;
  node: ExtentNode | null = null;
  private readonly stamp: SimStamp;
  private readonly logger: Logger | undefined;
  private diskGeneration = 0;

  constructor(stamp: SimStamp, options: ExtentNodeRoleOptions) {
    this.stamp = stamp;
    this.name = `en${options.index}`;
    this.faultDomain = options.faultDomain;
    this.upgradeDomain = options.upgradeDomain;
    this.groupCommit = options.groupCommit;
    this.logger = options.logger;
    this.disk = this.newDisk();
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.node !== null;
  }

  get address(): string {
    return `${this.name}:1`;
  }

  async start(): Promise<void> {
    this.kill();
    const process = this.stamp.newProcess(this.name, this.name);
    this.process = process;
    const manager = new StreamManagerProxy({ network: process.network, address: managerAddress });
    this.node = await process.guard(() => process.run(() => ExtentNode.start({
      nodeId: this.name, disk: process.disk(this.disk, this.diskFaults), clock: process.clock, random: this.stamp.random(`node:${this.name}`),
      network: process.network, listenAddress: this.address, manager, faultDomain: this.faultDomain, upgradeDomain: this.upgradeDomain,
      groupCommit: this.groupCommit, ...(this.logger === undefined ? {} : { logger: this.logger }),
    })));
  }

  kill(): void {
    this.process?.kill();
    this.process = null;
    this.node = null;
  }

  powerLoss(): void {
    this.disk.crash({ tornWrites: true });
  }

  /** The node comes back with a blank disk (replaced hardware): a new disk name. */
  replaceDisk(): void {
    this.disk = this.newDisk();
  }

  private newDisk(): SimDisk {
    this.diskGeneration += 1;
    const suffix = this.diskGeneration === 1 ? '' : `-r${this.diskGeneration}`;
    return new SimDisk({ random: this.stamp.random(`disk:${this.name}:${this.diskGeneration}`), name: `sim:${this.name}${suffix}` });
  }
}

/** Small limits so checkpoints, many runs and compactions happen within a short run. */
export const simPartitionLimits: Partial<PartitionLimits> = {
  memtableBytesMax: 8 * 1024, blockBytesTarget: 2048, runBytesMax: 16 * 1024, runsCompactionTrigger: 3, rowCacheEntriesMax: 64, blockCacheBytesMax: 64 * 1024,
  checkpointIntervalMs: 60_000,
  // Garbage collection within a short run: extents dead for 5 s are dropped, small tails sealed.
  dataGcIntervalMs: 15_000, dataGcGraceMs: 5_000, dataGcTailSealBytes: 64 * 1024,
};

/** How often the owner asks its partition whether a time-based checkpoint is due. */
const checkpointPollMs = 10_000;
/** How often the owner runs a garbage-collection pass (what a partition server's timer does). */
const garbagePollMs = 15_000;

/** The owner of one partition (what a partition server does for each range it holds). */
export class PartitionRole implements SimRole {
  readonly name = 'partition';
  readonly kind: RoleKind = 'partition';
  readonly faultDomain = null;
  readonly partitionId = 1;
  process: SimProcess | null = null;
  partition: Partition | null = null;
  /** Owner epoch of the current (or last) load; every load takes a higher one. */
  generation = 0;
  private readonly stamp: SimStamp;
  private readonly streamIds: PartitionStreamIds;

  constructor(stamp: SimStamp, streamIds: PartitionStreamIds) {
    this.stamp = stamp;
    this.streamIds = streamIds;
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.partition !== null;
  }

  async start(): Promise<void> {
    this.kill();
    this.generation += 1;
    const process = this.stamp.newProcess('partition', 'ps');
    this.process = process;
    const manager = new StreamManagerProxy({ network: process.network, address: managerAddress });
    const client = new StreamClient({ manager, network: process.network, clock: process.clock, clientId: `ps-${this.generation}`, random: this.stamp.random(`client:ps:${this.generation}`) });
    const streams = new StreamLayerPartitionStreams({ client, manager });
    this.partition = await process.guard(() => process.run(() => Partition.open({
      partitionId: this.partitionId, streams, streamIds: this.streamIds, clock: process.clock, ownerEpoch: this.generation, limits: simPartitionLimits,
    })));
    this.pollCheckpoints(process);
    this.pollGarbage(process);
  }

  /** Runs `work` against the loaded partition, as its owner's code; partition.unavailable if down. */
  call<T>(work: (partition: Partition) => Promise<T>): Promise<T> {
    const partition = this.partition;
    const process = this.process;
    if (partition === null || process === null || !process.isAlive) {
      return Promise.reject(new StorageError('partition.unavailable', 'partition is not loaded', { retryable: true, context: { notSent: true } }));
    }
    return process.run(() => work(partition));
  }

  kill(): void {
    this.process?.kill();
    this.process = null;
    this.partition = null;
  }

  powerLoss(): void {
    // No disks of its own: everything it keeps is in streams.
  }

  private pollGarbage(process: SimProcess): void {
    process.clock.setTimer(garbagePollMs, () => {
      const partition = this.partition;
      if (partition === null || this.process !== process) return;
      partition.collectGarbage().then(
        (report) => this.stamp.trace(`gc ${report === null ? 'skipped' : `dropped=${report.extentsDropped} copied=${report.bytesCopied} rewritten=${report.rowsRewritten}`}`),
        () => this.stamp.trace('gc failed'),
      ).finally(() => this.pollGarbage(process));
    });
  }

  private pollCheckpoints(process: SimProcess): void {
    process.clock.setTimer(checkpointPollMs, () => {
      const partition = this.partition;
      if (partition === null || this.process !== process) return;
      partition.checkpointIfDue().catch(() => undefined).finally(() => this.pollCheckpoints(process));
    });
  }
}
